"""Which part of the authors' DropAttack step moves the update gradient, and by how much.

The notebook step (``DropAttack(step="notebook")``) differs from Algorithms 1-2 as printed
(``step="paper"``) in two ways:

- **cumulative ascent**: step ``t`` perturbs the already perturbed weights, so pass ``t`` runs
  at ``theta + r_0 + ... + r_t`` instead of ``theta + r_t``;
- **stale weights in the backward**: the weights are perturbed in place and the update
  gradient comes from one backward over every pass's retained graph, so a weight that a
  backward reads (the LSTM's input weights, read for the gradient w.r.t. the embeddings) is
  read as the last perturbation left it, in every graph.

On the IMDB LSTM (``imdb-lstm``, random embeddings, the task's batch size, real batches of
the IMDB sample) this computes, per batch, the update gradient of four steps: ``paper``
(neither), ``cumulative`` (only the ascent), ``stale`` (only the backward), ``notebook``
(both), at eps 5 with the same masks (p 0.7) and dropout draws in each, targets the
embedding then ``rnn.weight_ih_l0`` (the authors' order). It prints each one's distance from
``paper`` relative to ``paper``'s norm, per parameter (the embedding's looked-up rows, the
LSTM's input weights, everything else), and checks the two ends against the library's steps.

Run: ``python bench/step_fidelity.py [--data-dir ../shared/data] [--batches 8] [--k 1,3]
[--warmup-steps 0] [--json out.json]``. Smoke test: ``--batches 1 --k 1``.
"""

from __future__ import annotations

import sys

# bench/ holds scripts named like stdlib modules (tokenize.py): keep it off the import path.
sys.path[:] = [p for p in sys.path if p != __file__.rsplit("/", 1)[0]]
# ruff: noqa: E402

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA_DIR = str(ROOT.parent / "shared" / "data")
TARGETS = ("embedding.weight", "rnn.weight_ih_l0")
VARIANTS = {  # name: (cumulative ascent, stale weights in the backward)
    "paper": (False, False),
    "cumulative": (True, False),
    "stale": (False, True),
    "notebook": (True, True),
}


def variant_grads(model, x, y, masks, eps: float, k: int, cumulative: bool, stale: bool, seed):
    """The update gradient of one step with the chosen parts of the authors' step."""
    named = {n: p for n, p in model.named_parameters() if p.requires_grad}
    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)  # the same dropout draws in every variant
    total = F.cross_entropy(model(x), y)
    total.backward(retain_graph=stale)
    g0 = {n: p.grad.clone() for n, p in named.items()}
    update = {n: g.clone() for n, g in g0.items()}
    for name in TARGETS:
        for n, p in named.items():
            p.grad = g0[n].clone()
        param = named[name]
        saved = param.data.clone()
        for _ in range(k):
            d = param.grad
            r = eps * d / torch.linalg.vector_norm(d) * masks[name]
            if cumulative:
                param.data.add_(r)
            else:
                param.data.copy_(saved + r)
            loss = F.cross_entropy(model(x), y) / k
            loss.backward(retain_graph=stale)
            if stale:
                total = total + loss
        if not stale:
            for n, p in named.items():
                update[n] += p.grad - g0[n]
        param.data = saved
    if stale:
        model.zero_grad(set_to_none=True)
        total.backward()
        update = {n: p.grad.clone() for n, p in named.items()}
    model.zero_grad(set_to_none=True)
    return update


def library_grads(model, x, y, eps: float, k: int, step: str, seed: int):
    from dropattack import DropAttack

    method = DropAttack(
        model, attack=list(TARGETS), eps=eps, p=1.0, k=k, groups="per_target", step=step
    )
    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    method.backward(x, y, F.cross_entropy)
    out = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return out


def parts(grads: dict[str, torch.Tensor], rows: torch.Tensor) -> dict[str, torch.Tensor]:
    rest = [g.reshape(-1) for n, g in grads.items() if n not in TARGETS]
    return {
        "embedding": grads["embedding.weight"].index_select(0, rows),
        "lstm_ih": grads["rnn.weight_ih_l0"],
        "rest": torch.cat(rest),
    }


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=DATA_DIR)
    ap.add_argument("--train-size", type=int, default=500)
    ap.add_argument("--batches", type=int, default=8)
    ap.add_argument("--k", default="1,3")
    ap.add_argument("--eps", type=float, default=5.0)
    ap.add_argument("--p", type=float, default=0.7)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--warmup-steps", type=int, default=0, help="standard Adam steps first")
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.set_num_threads(1)

    from sweeps.trial import TrialConfig, prepare_trial

    prep = prepare_trial(
        TrialConfig(
            task="imdb-lstm",
            method="standard",
            train_size=args.train_size,
            seed=args.seed,
            data_dir=args.data_dir,
        )
    )
    model, train = prep.model, prep.train
    model.train()
    batches = iter(train)
    for _ in range(args.warmup_steps):
        x, y = next(batches)
        prep.optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        prep.optimizer.step()
    gen = torch.Generator().manual_seed(args.seed)
    ks = [int(v) for v in args.k.split(",")]
    rows_out: list[dict] = []
    t0 = time.perf_counter()
    for b in range(args.batches):
        x, y = next(batches)
        ids = torch.unique(x)
        named = dict(model.named_parameters())
        masks = {
            n: (torch.rand(named[n].shape, generator=gen) < args.p).to(named[n].dtype)
            for n in TARGETS
        }
        for k in ks:
            seed = 1000 * b + k
            grads = {
                v: variant_grads(model, x, y, masks, args.eps, k, *flags, seed)
                for v, flags in VARIANTS.items()
            }
            if b == 0:  # the two ends are the library's steps (masks all ones there)
                ones = {n: torch.ones_like(m) for n, m in masks.items()}
                for v in ("paper", "notebook"):
                    ours = variant_grads(model, x, y, ones, args.eps, k, *VARIANTS[v], seed)
                    lib = library_grads(model, x, y, args.eps, k, v, seed)
                    worst = max(rel(ours[n], lib[n]) for n in lib)
                    print(f"check k={k} {v}: library vs this script, worst rel diff {worst:.2e}")
                    assert worst < 1e-4, (v, k, worst)
            base = parts(grads["paper"], ids)
            for v in ("cumulative", "stale", "notebook"):
                got = parts(grads[v], ids)
                rows_out.append(
                    {"batch": b, "k": k, "variant": v, **{p: rel(got[p], base[p]) for p in base}}
                )
    print(f"{args.batches} batches in {time.perf_counter() - t0:.0f}s")
    print("relative distance from paper's update gradient, mean (sd) over batches")
    print(f"{'K':>2} {'variant':<11} {'embedding':>17} {'lstm_ih':>17} {'rest':>17}")
    summary = []
    for k in ks:
        for v in ("cumulative", "stale", "notebook"):
            sel = [r for r in rows_out if r["k"] == k and r["variant"] == v]
            cells = {}
            for p in ("embedding", "lstm_ih", "rest"):
                vals = [r[p] for r in sel]
                sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
                cells[p] = (statistics.mean(vals), sd)
            summary.append({"k": k, "variant": v, **{p: list(c) for p, c in cells.items()}})
            line = " ".join(f"{m:>9.3f} ({s:.3f})" for m, s in cells.values())
            print(f"{k:>2} {v:<11} {line}")
    if args.json:
        meta = {
            "args": vars(args),
            "torch": torch.__version__,
            "machine": platform.processor() or platform.machine(),
            "date": time.strftime("%Y-%m-%d", time.gmtime()),
        }
        Path(args.json).write_text(json.dumps({**meta, "rows": rows_out, "summary": summary}))


if __name__ == "__main__":
    main()
