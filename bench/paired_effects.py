"""Paired-by-seed effects of a sweep's arms on the test accuracy (the fidelity study's figures).

Every finished trial of the sweep ``EXPERIMENT`` is read back from MLflow; arms are the
configurations (method, k, step); each arm is paired with every other on the seeds both
finished. For each pair with at least ``--min-seeds`` shared seeds it prints the per-seed
differences, their mean with the paired t 95% CI and two-sided p, and each arm's mean and
standard deviation over those seeds.

Run: ``python bench/paired_effects.py fidelity-table3 --mlflow-uri sqlite:///RUNS/mlflow.db
[--metric test_acc] [--min-seeds 3] [--json out.json]``.
"""

from __future__ import annotations

import sys

# bench/ holds scripts named like stdlib modules (tokenize.py): keep it off the import path.
sys.path[:] = [p for p in sys.path if p != __file__.rsplit("/", 1)[0]]
# ruff: noqa: E402

import argparse
import itertools
import json
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def arm(params: dict[str, str]) -> str:
    if params.get("method") != "dropattack":
        return params.get("method", "?")
    return f"DropAttack-{params.get('k')} {params.get('step', 'paper')}"


def paired(a: dict[int, float], b: dict[int, float]) -> dict | None:
    """``a - b`` on the shared seeds: differences, mean, paired t CI and p."""
    from scipy import stats

    seeds = sorted(a.keys() & b.keys())
    if len(seeds) < 2:
        return None
    diffs = [a[s] - b[s] for s in seeds]
    mean = statistics.mean(diffs)
    sd = statistics.stdev(diffs)
    n = len(diffs)
    half = stats.t.ppf(0.975, n - 1) * sd / n**0.5
    p = float(stats.ttest_rel([a[s] for s in seeds], [b[s] for s in seeds]).pvalue)
    return {"seeds": seeds, "diffs": diffs, "mean": mean, "ci95": [mean - half, mean + half],
            "p": p}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("experiment")
    ap.add_argument("--mlflow-uri", required=True)
    ap.add_argument("--metric", default="test_acc")
    ap.add_argument("--min-seeds", type=int, default=3)
    ap.add_argument("--json")
    args = ap.parse_args()

    from sweeps.records.collect import collect

    runs = collect(args.experiment, args.mlflow_uri).runs
    arms: dict[str, dict[int, float]] = {}
    for r in runs:
        if r.status == "FINISHED" and args.metric in r.metrics:
            arms.setdefault(arm(r.params), {})[int(r.params["seed"])] = 100 * r.metrics[args.metric]
    out = {"arms": {}, "pairs": []}
    print(f"{args.experiment}: {args.metric} x 100, finished trials per arm")
    for name, vals in sorted(arms.items()):
        sd = statistics.stdev(vals.values()) if len(vals) > 1 else float("nan")
        print(f"  {name:<24} n={len(vals)} seeds={sorted(vals)} "
              f"mean={statistics.mean(vals.values()):.2f} sd={sd:.2f}")  # fmt: skip
        out["arms"][name] = vals
    for x, y in itertools.permutations(sorted(arms), 2):
        if not (y == "standard" or (x < y and x.split()[0] == y.split()[0])):
            continue  # every arm against standard, and each K's notebook against paper
        res = paired(arms[x], arms[y])
        if res is None or len(res["seeds"]) < args.min_seeds:
            continue
        diffs = " ".join(f"{d:+.2f}" for d in res["diffs"])
        print(f"{x} - {y}: {res['mean']:+.2f} [{res['ci95'][0]:+.2f}, {res['ci95'][1]:+.2f}] "
              f"p={res['p']:.3f} seeds {res['seeds']} diffs {diffs}")  # fmt: skip
        out["pairs"].append({"a": x, "b": y, **res})
    if args.json:
        Path(args.json).write_text(json.dumps(out))


if __name__ == "__main__":
    main()
