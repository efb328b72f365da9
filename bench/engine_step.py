"""Step time of DropAttack against a standard step and against the authors' notebook shape.

For the paper's IMDB LSTM (embedding 300, LSTM 300-300, batch 64; targets Embedding + Lstm.ih.w)
and LeNet-5 (batch 128, 28x28; targets Input + Conv.1.w), each with G = 2 groups, it measures in
one process, interleaving the variants round-robin. ``imdb-lstm`` is a seeded batch of 64 rows of
the real IMDB sample (``--data-dir``, default ../shared/data) with their own token lengths
(256 at most, the task's; vocabulary as loaded); ``imdb-lstm-synthetic`` is the earlier case,
random ids over a 30,000-word vocabulary, 64 tokens, every row full length. The variants:

- ``standard``: zero_grad, forward/backward, Adam step;
- ``fb``: one forward/backward accumulating into existing gradients (what an extra pass costs);
- ``dropattack-K``: zero_grad, ``DropAttack.backward``, Adam step, for K = 1 and 3;
- ``notebook-K``: a step shaped like the authors' notebooks at the same K: a NumPy Bernoulli mask
  over the whole parameter, ``retain_graph=True`` on every pass, and a final backward over the
  summed losses.

It reports ``floor = t_standard + K * G * t_fb`` and ``t_dropattack / floor`` (goal <= 1.10), the
speed-up over the notebook shape (goal >= 1.6x), and the peak memory a step adds, measured in a
fresh subprocess per variant (GPU: the allocator's peak; CPU: resident memory sampled every
millisecond above the level between steps).

On CPU the clock is the process's CPU time with one torch thread (``--threads``): on a shared
machine wall time measures the neighbours, CPU time measures the work. On CUDA it is wall time
with synchronisation. Run: ``python bench/engine_step.py [--reps 20] [--device cuda]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dropattack import DropAttack  # noqa: E402
from models.lenet import lenet5  # noqa: E402
from models.text_rnn import lstm  # noqa: E402

EPS, P, GROUPS = 5.0, 0.7, 2


_ROOT = Path(__file__).resolve().parents[1]
#: ../shared/data beside the checkout, or shared/data inside it (a copied working tree).
DATA_DIR = next(
    (str(p) for p in (_ROOT.parent / "shared" / "data", _ROOT / "shared" / "data") if p.is_dir()),
    str(_ROOT.parent / "shared" / "data"),
)


def real_imdb_batch(data_dir: str, size: int = 64) -> tuple[int, torch.Tensor, torch.Tensor]:
    """Vocabulary size and a seeded batch of ``size`` real IMDB training rows (their lengths)."""
    from models import tasks
    from models.data import DataOptions

    data = tasks.get("imdb-lstm").load(DataOptions(data_dir=data_dir))
    rows = torch.from_numpy(np.random.default_rng(0).permutation(len(data.train))[:size])
    return data.model_kwargs["vocab_size"], data.train.x[rows].long(), data.train.y[rows]


def build(name: str, device: torch.device, data_dir: str = DATA_DIR):
    """Model, batch and attack targets of one benchmark case (seeded)."""
    torch.manual_seed(0)
    if name == "imdb-lstm":
        vocab, x, y = real_imdb_batch(data_dir)
        torch.manual_seed(0)
        model = lstm(vocab)
        targets = ["embedding.weight", "rnn.weight_ih_l0"]
    elif name == "imdb-lstm-synthetic":
        model = lstm(30_000)
        x = torch.randint(1, 30_000, (64, 64))
        y = torch.randint(0, 2, (64,))
        targets = ["embedding.weight", "rnn.weight_ih_l0"]
    elif name == "lenet5":
        model = lenet5()
        x = torch.randn(128, 1, 28, 28)
        y = torch.randint(0, 10, (128,))
        targets = ["input", "conv1.weight"]
    else:
        raise ValueError(f"case: unknown {name!r}")
    return model.to(device), x.to(device), y.to(device), targets


def notebook_step(model, opt, x, y, targets, k: int) -> None:
    """The authors' notebook shape: whole-tensor NumPy masks, retained graphs, summed backward."""
    params = dict(model.named_parameters())
    opt.zero_grad()
    x_leaf = x.detach().requires_grad_(x.is_floating_point())
    loss = F.cross_entropy(model(x_leaf), y)
    loss.backward(retain_graph=True)
    losses = [loss]
    for name in targets:
        if name == "input":
            mask = torch.from_numpy(np.random.binomial(1, P, size=tuple(x.shape))).to(x)
            g = x_leaf.grad
            for _ in range(k):
                xa = (x + mask * EPS * g / g.norm()).detach().requires_grad_(True)
                adv = F.cross_entropy(model(xa), y) / k
                adv.backward(retain_graph=True)
                losses.append(adv)
                g = g + xa.grad
            continue
        param = params[name]
        backup = param.data.clone()
        mask = torch.from_numpy(np.random.binomial(1, P, size=tuple(param.shape))).to(param)
        for _ in range(k):
            g = param.grad
            param.data.copy_(backup + mask * EPS * g / g.norm())
            adv = F.cross_entropy(model(x), y) / k
            adv.backward(retain_graph=True)
            losses.append(adv)
        param.data.copy_(backup)
    opt.zero_grad()
    torch.stack(losses).sum().backward()
    opt.step()


def variants(
    case: str, device: torch.device, data_dir: str = DATA_DIR
) -> dict[str, Callable[[], None]]:
    model, x, y, targets = build(case, device, data_dir)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    das = {k: DropAttack(model, attack=targets, eps=EPS, p=P, k=k, seed=0) for k in (1, 3)}

    def standard():
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()

    def fb():
        F.cross_entropy(model(x), y).backward()

    def fb_input_grad():
        F.cross_entropy(model(x.detach().requires_grad_(True)), y).backward()

    def dropattack(k):
        opt.zero_grad()
        das[k].backward(x, y, F.cross_entropy)
        opt.step()

    out = {"standard": standard, "fb": fb}
    if x.is_floating_point():
        out["fb-input-grad"] = fb_input_grad
    for k in (1, 3):
        out[f"dropattack-{k}"] = lambda k=k: dropattack(k)
        out[f"notebook-{k}"] = lambda k=k: notebook_step(model, opt, x, y, targets, k)
    return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _clock(device: torch.device):
    return time.perf_counter if device.type == "cuda" else time.process_time


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def time_case(case: str, device: torch.device, reps: int, data_dir: str) -> dict[str, float]:
    """Median seconds per step of each variant, interleaved round-robin."""
    runs = variants(case, device, data_dir)
    for fn in runs.values():
        for _ in range(3):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in runs}
    clock = _clock(device)
    for _ in range(reps):
        for name, fn in runs.items():
            _sync(device)
            t = clock()
            fn()
            _sync(device)
            samples[name].append(clock() - t)
    return {name: statistics.median(s) for name, s in samples.items()}


def peak_memory(case: str, variant: str, device: torch.device, data_dir: str) -> float:
    """Memory in MiB a step of ``variant`` adds above the level between steps."""
    fn = variants(case, device, data_dir)[variant]
    for _ in range(2):
        fn()  # gradients and optimizer state now exist: the level between steps
    if device.type == "cuda":
        between = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        for _ in range(3):
            fn()
        return (torch.cuda.max_memory_allocated(device) - between) / 2**20
    between = _rss_mib()
    peak, done = [between], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss_mib())
            time.sleep(0.001)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    for _ in range(3):
        fn()
    done.set()
    sampler.join()
    return peak[0] - between


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch threads on CPU")
    parser.add_argument("--cases", default="imdb-lstm,imdb-lstm-synthetic,lenet5")
    parser.add_argument("--data-dir", default=DATA_DIR, help="data root of the imdb-lstm case")
    parser.add_argument("--no-peak", action="store_true", help="skip the peak-memory runs")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--peak", nargs=2, metavar=("CASE", "VARIANT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    if args.peak:
        print(peak_memory(*args.peak, device, args.data_dir))
        return
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads",
        "clock": "wall, synchronised" if device.type == "cuda" else "process CPU time",
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "cases": {},
    }
    for case in args.cases.split(","):
        t = time_case(case, device, args.reps, args.data_dir)
        _, x_case, _, _ = build(case, torch.device("cpu"), args.data_dir)
        x_rows, x_width = x_case.shape[:2]
        text = case.startswith("imdb")
        mean_tokens = float((x_case != 0).sum(1).float().mean()) if text else None
        rows = {}
        # The "input" target needs dL/dx, which a standard step never computes: in the clean
        # pass and in each ascent step but the last (Algorithm 2), so K times a step.
        input_grad = max(0.0, t.get("fb-input-grad", t["fb"]) - t["fb"])
        for k in (1, 3):
            floor = t["standard"] + k * GROUPS * t["fb"]
            rows[k] = {
                "floor_with_input_grad_ms": 1e3 * (floor + k * input_grad),
                "ratio_to_floor_with_input_grad": t[f"dropattack-{k}"] / (floor + k * input_grad),
                "dropattack_ms": 1e3 * t[f"dropattack-{k}"],
                "floor_ms": 1e3 * floor,
                "ratio_to_floor": t[f"dropattack-{k}"] / floor,
                "notebook_ms": 1e3 * t[f"notebook-{k}"],
                "speedup_vs_notebook": t[f"notebook-{k}"] / t[f"dropattack-{k}"],
            }
        peaks = {}
        for variant in ("standard", "dropattack-1", "dropattack-3", "notebook-1", "notebook-3"):
            if args.no_peak:
                break
            cmd = [
                sys.executable,
                __file__,
                "--device",
                args.device,
                "--threads",
                str(args.threads),
                "--data-dir",
                args.data_dir,
            ]
            cmd += ["--peak", case, variant]
            peaks[variant] = float(subprocess.check_output(cmd, text=True).split()[-1])
        report["cases"][case] = {
            "batch": {"rows": int(x_rows), "width": int(x_width), "mean_tokens": mean_tokens},
            "standard_ms": 1e3 * t["standard"],
            "fb_ms": 1e3 * t["fb"],
            "input_grad_ms": 1e3 * input_grad,
            "k": rows,
            "peak_mib": peaks,
        }
        print(f"\n{case} on {report['device']}: standard {1e3 * t['standard']:.1f} ms, "
              f"one extra forward/backward {1e3 * t['fb']:.1f} ms, "
              f"computing dL/dx adds {1e3 * input_grad:.1f} ms")  # fmt: skip
        head = ("K", "dropattack", "floor", "ratio", "ratio+dx", "notebook", "speedup")
        print("{:>2} {:>11} {:>8} {:>6} {:>8} {:>9} {:>8}".format(*head))
        for k, r in rows.items():
            print(
                f"{k:>2} {r['dropattack_ms']:>9.1f}ms {r['floor_ms']:>6.1f}ms "
                f"{r['ratio_to_floor']:>6.3f} {r['ratio_to_floor_with_input_grad']:>8.3f} "
                f"{r['notebook_ms']:>7.1f}ms "
                f"{r['speedup_vs_notebook']:>7.2f}x"
            )
        print("MiB a step adds: " + ", ".join(f"{v} {m:.0f}" for v, m in peaks.items()))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
