"""Time tokenising AG News' 10,000 validation rows: vocabulary build plus encoding to 256 ids.

The text task pipeline (:mod:`models.data.vocab`): Hugging Face ``tokenizers`` at word level,
lowercase, punctuation and scikit-learn's English stop words dropped, up to 250,000 words, fixed
length 256. Reading the CSV is not timed; the vocabulary cache is bypassed (a fresh build each
repetition). Goal: under 1 s. Reports the minimum and median wall time of ``--reps``
repetitions (the minimum is the least disturbed by other processes), the median CPU time of the
process (all threads) and the machine's load average.

Run: ``python bench/tokenization.py [--reps 7] [--csv PATH] [--json]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

from models.data.text import TEXT_DATASETS, read_csv  # noqa: E402
from models.data.vocab import Vocabulary, stop_words  # noqa: E402

DEFAULT_CSV = Path(__file__).resolve().parents[2] / "shared" / "data" / "agnews" / "val_ag1.csv"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV, help="AG News CSV (text,label)")
    parser.add_argument("--reps", type=int, default=7, help="repetitions (default: 7)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if not args.csv.is_file():
        print(f"skipped: {args.csv} not found (the shared AG News sample)", file=sys.stderr)
        return 0
    spec = TEXT_DATASETS["agnews"]
    texts = read_csv(args.csv, spec.columns, spec.num_classes).texts
    stop_words()  # import sklearn's list outside the timing, as a long-running process would
    Vocabulary.build(texts[:100]).encode(texts[:100])  # warm-up
    build, encode, total, cpu = [], [], [], []
    for _ in range(args.reps):
        c0 = time.process_time()
        t0 = time.perf_counter()
        vocab = Vocabulary.build(texts)
        t1 = time.perf_counter()
        ids, lengths = vocab.encode(texts, 256)
        t2 = time.perf_counter()
        cpu.append(time.process_time() - c0)
        build.append(t1 - t0)
        encode.append(t2 - t1)
        total.append(t2 - t0)
    result = {
        "rows": len(texts),
        "vocab_size": len(vocab),
        "ids_shape": list(ids.shape),
        "mean_tokens": float(lengths.mean()),
        "total_min_s": min(total),
        "total_median_s": statistics.median(total),
        "cpu_median_s": statistics.median(cpu),
        "build_median_s": statistics.median(build),
        "encode_median_s": statistics.median(encode),
        "reps": args.reps,
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "python": platform.python_version(),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"tokenise {result['rows']:,} AG News rows (vocab build + encode to 256): "
            f"min {result['total_min_s']:.3f} s, median {result['total_median_s']:.3f} s, "
            f"CPU {result['cpu_median_s']:.3f} s "
            f"(build {result['build_median_s']:.3f} s, encode {result['encode_median_s']:.3f} s); "
            f"vocabulary {result['vocab_size']:,}, {result['mean_tokens']:.1f} tokens/text; "
            f"{result['cpus']} CPUs, load {result['load_average'][0]:.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
