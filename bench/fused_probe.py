"""Fused-trial probe: M trials as one vectorised training step against M separate steps.

A sweep's trials of the paper's small models leave most of a GPU idle. Besides several trial
processes sharing it (``bench/gpu_packing.py``), M trials can be fused into one model in one
process (HFTA, MLSys 2021). This benchmark measures what fusion would give before any of it is
built into the service: for M = 1, 4, 8, 16, 64 members (8 to meet the packing benchmark's N = 8),
trial-steps per second (members x training steps, one step being zero_grad, forward,
cross-entropy, backward, Adam) of

LeNet-5 on MNIST-sized batches (``(128, 1, 28, 28)`` per member, random pixels: the shape is
what costs):

- ``separate``: M real ``LeNet5`` models, each with its own Adam, stepped one after another;
- ``vmap``: the M models' parameters stacked (``torch.func.stack_module_state``), one
  ``vmap``-ed ``functional_call`` forward, the summed losses' backward and one Adam over the
  stacked tensors (Adam is elementwise, so this is each member's own Adam);
- ``vmap_shared``: the same, every member reading one batch (a grid's trials that share a data
  seed see the same batches; a convolution over one input with M weight sets is one wider
  convolution, where M inputs need a grouped one);

the IMDB LSTM (``imdb-lstm``: embedding 300, LSTM 300, FC 2) on real batches (each member its
own seeded batches of the real IMDB sample in ``--data-dir``, with their real token lengths, as
``bench/text_step.py`` draws them):

- ``separate``: M real ``TextRNN`` models stepped one after another (oneDNN's LSTM on CPU,
  cuDNN's on CUDA);
- ``streams`` (CUDA only): the same, each member's step issued on its own CUDA stream;
- ``baddbmm``: :class:`FusedLSTM`, the M weight sets stacked, the input projection one
  ``baddbmm`` over all time steps and the recurrence a ``baddbmm`` per time step (``vmap`` has
  no batching rule for ``aten::lstm``, pytorch/pytorch#105982); the fused batch is as wide as
  the widest member batch;
- ``baddbmm_graphs`` (CUDA only): the whole fused step (forward, backward, Adam with
  ``capturable=True``) captured as one CUDA graph per batch shape and replayed;
- ``baddbmm_compile``: the fused step with the cell (recurrent product and gates)
  ``torch.compile``-d (one compiled function for all M; the first M compiles it, the next
  recompiles it once with M dynamic: the warm-up seconds say what that cost).

Clock: wall time with synchronisation on CUDA; process CPU time with ``--threads`` torch threads
on CPU (wall time on a shared machine measures the neighbours). Each variant runs one warm-up
round over the batches (compilation and graph capture happen there; their seconds are reported)
then ``--reps`` timed rounds; the figure is the median round. On CPU the variants' timed rounds
are interleaved (each round of one, then of the next); on CUDA each variant is built, timed and
freed before the next (the GPU is the process's own, and M = 64's variants would not all fit).
Peak memory (CUDA) is the allocator's peak while the variant was built and warmed up, over what
was allocated before it.
Each variant also records its first step's losses against ``separate``'s (same initial weights,
same batch): the fused computation is the same computation (``tests/test_gpu_run.py`` checks it
exactly in float64). A variant that fails is recorded with its error; the others go on.
``--budget`` bounds the whole probe: variants that would start after it are recorded as skipped,
and the JSON is rewritten after every variant, so a run stopped from outside keeps its figures.

Run: ``python bench/fused_probe.py [--device cpu|cuda] [--data-dir .devdata] [--ms 1,4,8,16,64]
[--models lenet5,lstm] [--variants ...] [--batches 2] [--reps 3] [--budget 90] [--json PATH]``.
"""

from __future__ import annotations

import sys

# bench/ holds scripts named like stdlib modules: keep it off the import path.
sys.path[:] = [p for p in sys.path if p != __file__.rsplit("/", 1)[0]]
# ruff: noqa: E402

import argparse
import copy
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import models
from models.lenet import LeNet5

DATA_DIR = next(
    (str(p) for p in (ROOT.parent / "shared" / "data", ROOT / ".devdata") if p.is_dir()),
    str(ROOT.parent / "shared" / "data"),
)
VARIANTS = {
    "lenet5": ("separate", "vmap", "vmap_shared"),
    "lstm": ("separate", "streams", "baddbmm", "baddbmm_graphs", "baddbmm_compile"),
}
CUDA_ONLY = {"streams", "baddbmm_graphs"}
LSTM_PARAMS = (
    "embedding.weight",
    "rnn.weight_ih_l0",
    "rnn.weight_hh_l0",
    "rnn.bias_ih_l0",
    "rnn.bias_hh_l0",
    "fc.weight",
    "fc.bias",
)


def member_losses(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Each member's mean cross-entropy: ``logits (M, B, C)``, ``y (M, B)`` -> ``(M,)``."""
    m, b, c = logits.shape
    return (
        F.cross_entropy(logits.reshape(m * b, c), y.reshape(m * b), reduction="none")
        .view(m, b)
        .mean(1)
    )


def _adam(params, lr: float, capturable: bool = False) -> torch.optim.Adam:
    return torch.optim.Adam(params, lr=lr, capturable=capturable)


class Separate:
    """M real models, each with its own Adam, one training step after another.

    With ``streams=True`` (CUDA) each member's step is issued on its own CUDA stream, so the
    GPU may overlap them; the host still issues them one by one.
    """

    def __init__(self, members: list[nn.Module], lr: float, *, streams: bool = False) -> None:
        self.members = members
        self.opts = [_adam(m.parameters(), lr) for m in members]
        self.streams = [torch.cuda.Stream() for _ in members] if streams else None

    @staticmethod
    def _one(model: nn.Module, opt: torch.optim.Optimizer, x, y) -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss.detach()

    def step(self, xs: list[torch.Tensor], ys: list[torch.Tensor]) -> torch.Tensor:
        """One step of every member on its own batch; the members' losses ``(M,)``."""
        if self.streams is None:
            losses = [
                self._one(*args) for args in zip(self.members, self.opts, xs, ys, strict=True)
            ]
            return torch.stack(losses)
        main = torch.cuda.current_stream()
        losses = []
        for args, stream in zip(
            zip(self.members, self.opts, xs, ys, strict=True), self.streams, strict=True
        ):
            stream.wait_stream(main)
            with torch.cuda.stream(stream):
                losses.append(self._one(*args))
        for stream in self.streams:
            main.wait_stream(stream)
        return torch.stack(losses)

    def member_state(self, i: int) -> dict[str, torch.Tensor]:
        return {n: p.detach() for n, p in self.members[i].named_parameters()}


class VmapFused:
    """M models of one architecture as one ``vmap``-ed functional model with stacked weights.

    ``step(x, y)`` takes ``x (M, B, ...)`` and ``y (M, B)``: each member its own batch; with
    ``shared_input`` it takes one batch ``x (B, ...)`` that every member reads (trials of a grid
    that share a data seed see the same batches), ``y`` still ``(M, B)``. The summed losses'
    backward gives each member's own gradients, and one Adam over the stacked tensors is each
    member's own Adam (same learning rate).
    """

    def __init__(self, members: list[nn.Module], lr: float, *, shared_input: bool = False):
        from torch.func import functional_call, stack_module_state, vmap

        self.params, self.buffers = stack_module_state(members)
        base = copy.deepcopy(members[0]).to("meta")

        def call(params, buffers, x):
            return functional_call(base, (params, buffers), (x,))

        self.forward = vmap(call, in_dims=(0, 0, None if shared_input else 0))
        self.opt = _adam(self.params.values(), lr)

    def step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.opt.zero_grad()
        losses = member_losses(self.forward(self.params, self.buffers, x), y)
        losses.sum().backward()
        self.opt.step()
        return losses.detach()

    def member_state(self, i: int) -> dict[str, torch.Tensor]:
        return {n: p[i].detach() for n, p in self.params.items()}


Cell = Callable[..., tuple[torch.Tensor, torch.Tensor]]
Step = Callable[[int], torch.Tensor]  # one training step of a variant on batch j; the losses


def lstm_cell(
    gates_x: torch.Tensor, h: torch.Tensor, c: torch.Tensor, w_hh_t: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One LSTM time step for M weight sets: ``gates_x (M, B, 4H)`` (input projection and both
    biases), ``h``, ``c (M, B, H)``, ``w_hh_t (M, H, 4H)``; PyTorch's gate order i, f, g, o."""
    gates = torch.baddbmm(gates_x, h, w_hh_t)
    i, f, g, o = gates.chunk(4, 2)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


class FusedLSTM:
    """M one-layer LSTM text classifiers (:func:`models.text_rnn.lstm`) as one model.

    The members' seven tensors are stacked (``M`` first). ``step(x, lengths, y)`` takes token
    ids ``x (M, B, W)`` right-padded to a common width, each row's length ``(M, B)`` and labels
    ``(M, B)``; each member reads its rows to their own lengths, as the real model does, and
    the padding row of each embedding gets no gradient (``nn.Embedding(padding_idx=...)``).
    ``cell`` replaces :func:`lstm_cell` (a compiled one); ``capturable`` makes Adam capturable
    in a CUDA graph.
    """

    def __init__(
        self,
        members: list[nn.Module],
        lr: float,
        *,
        cell: Cell = lstm_cell,
        capturable: bool = False,
    ) -> None:
        names = [n for n, _ in members[0].named_parameters()]
        if sorted(names) != sorted(LSTM_PARAMS):
            raise ValueError(f"FusedLSTM: expected a one-layer LSTM's {LSTM_PARAMS}, got {names}")
        self.padding_idx = members[0].padding_idx
        self.params = {
            n: torch.stack([dict(m.named_parameters())[n].detach() for m in members])
            .clone()
            .requires_grad_()
            for n in LSTM_PARAMS
        }
        self.cell = cell
        self.opt = _adam(self.params.values(), lr, capturable=capturable)

    def losses(self, x: torch.Tensor, lengths: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Each member's mean cross-entropy on its batch, ``(M,)``."""
        p = self.params
        table = p["embedding.weight"]
        m, vocab, dim = table.shape
        b, width = x.shape[1:]
        offsets = torch.arange(m, device=x.device).view(m, 1, 1) * vocab
        emb = F.embedding(x + offsets, table.reshape(m * vocab, dim))
        bias = (p["rnn.bias_ih_l0"] + p["rnn.bias_hh_l0"]).unsqueeze(1)
        proj = torch.baddbmm(bias, emb.reshape(m, b * width, dim), p["rnn.weight_ih_l0"].mT)
        proj = proj.view(m, b, width, -1)
        w_hh_t = p["rnn.weight_hh_l0"].mT
        hidden = w_hh_t.shape[1]
        h = proj.new_zeros(m, b, hidden)
        c = proj.new_zeros(m, b, hidden)
        outputs = []
        for t in range(width):
            h, c = self.cell(proj[:, :, t], h, c, w_hh_t)
            outputs.append(h)
        at = (lengths - 1).view(m, b, 1, 1).expand(m, b, 1, hidden)
        last = torch.stack(outputs, 2).gather(2, at).squeeze(2)
        logits = torch.baddbmm(p["fc.bias"].unsqueeze(1), last, p["fc.weight"].mT)
        return member_losses(logits, y)

    def step(self, x: torch.Tensor, lengths: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.opt.zero_grad()
        losses = self.losses(x, lengths, y)
        losses.sum().backward()
        self.params["embedding.weight"].grad[:, self.padding_idx].zero_()
        self.opt.step()
        return losses.detach()

    def member_state(self, i: int) -> dict[str, torch.Tensor]:
        return {n: p[i].detach() for n, p in self.params.items()}


class GraphedLSTM:
    """A :class:`FusedLSTM` (``capturable=True``) whose whole step is one CUDA graph per batch
    shape: captured on first sight of the shape (after two eager warm-up steps on a side
    stream), then replayed on the new batch copied into its static inputs. All graphs share
    one memory pool (they replay one at a time)."""

    def __init__(self, fused: FusedLSTM) -> None:
        self.fused = fused
        self.graphs: dict[tuple, tuple] = {}
        self.pool = None
        self.warmup_losses: list[torch.Tensor] = []

    def step(self, x: torch.Tensor, lengths: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        key = tuple(x.shape)
        if key not in self.graphs:
            self.graphs[key] = self._capture(x, lengths, y)
        graph, static, out = self.graphs[key]
        for target, value in zip(static, (x, lengths, y), strict=True):
            target.copy_(value)
        graph.replay()
        return out

    def _capture(self, x, lengths, y) -> tuple:
        static = (x.clone(), lengths.clone(), y.clone())
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):
                self.warmup_losses.append(self.fused.step(*static))
        torch.cuda.current_stream().wait_stream(side)
        self.fused.opt.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool):
            out = self.fused.step(*static)
        self.pool = graph.pool()
        return graph, static, out


# ---------------------------------------------------------------- members and batches


def lenet_members(m: int, *, dtype=torch.float32, device="cpu") -> list[nn.Module]:
    """M LeNet-5s, member ``i`` initialised with seed ``i``."""
    out = []
    for i in range(m):
        torch.manual_seed(i)
        with torch.device(device):  # initialised where it runs: no host copies
            out.append(LeNet5(10).to(dtype=dtype))
    return out


def lstm_members(
    m: int, vocab_size: int, *, hidden: int = 300, embed_dim: int = 300, dtype=torch.float32,
    device="cpu",
) -> list[nn.Module]:  # fmt: skip
    """M IMDB LSTMs (``models.get("lstm")``), member ``i`` initialised with seed ``i``."""
    out = []
    for i in range(m):
        torch.manual_seed(i)
        with torch.device(device):  # 8.4M embedding weights each: initialised where they run
            model = models.get("lstm", vocab_size=vocab_size, num_classes=2, hidden=hidden,
                               embed_dim=embed_dim)  # fmt: skip
        out.append(model.to(dtype=dtype))
    return out


def lenet_batches(m: int, batches: int, batch_size: int, *, dtype=torch.float32, device="cpu"):
    """``batches`` MNIST-sized batches per member: ``[(x (M, B, 1, 28, 28), y (M, B)), ...]``."""
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(batches):
        x = torch.randn(m, batch_size, 1, 28, 28, generator=g, dtype=dtype)
        y = torch.randint(0, 10, (m, batch_size), generator=g)
        out.append((x.to(device), y.to(device)))
    return out


class TextBatch:
    """One fused IMDB batch: each member's own rows, padded to the widest member's longest row.

    ``x (M, B, W)``, ``lengths (M, B)``, ``y (M, B)``; ``rows[i]`` is member ``i``'s batch as the
    loader gives it to a real model (``(B, max_len)``)."""

    def __init__(self, rows: list[torch.Tensor], ys: list[torch.Tensor], padding_idx: int):
        from models.text_rnn import sequence_lengths

        self.rows, self.ys = rows, ys
        lengths = torch.stack([sequence_lengths(r, padding_idx) for r in rows])
        width = int(lengths.max())
        self.x = torch.stack([r[:, :width] for r in rows])
        self.lengths, self.y = lengths, torch.stack(ys)
        self.member_widths = [int(v.max()) for v in lengths]

    def to(self, device) -> TextBatch:
        out = copy.copy(self)
        out.rows = [r.to(device) for r in self.rows]
        out.ys = [v.to(device) for v in self.ys]
        out.x, out.lengths, out.y = (t.to(device) for t in (self.x, self.lengths, self.y))
        return out


def load_imdb(data_dir: str):
    """The ``imdb-lstm`` task's data (``imdb/Train2500.csv`` under ``data_dir``)."""
    from models import tasks
    from models.data import DataOptions

    return tasks.get("imdb-lstm").load(DataOptions(data_dir=data_dir))


def imdb_batches(data, m: int, batches: int, batch_size: int) -> list[TextBatch]:
    """``batches`` fused batches of ``m`` members from the IMDB task's training split: member
    ``i``'s are the first full batches of its own seeded order (seed ``i``), as its trial would
    draw them."""
    from models.data import Batches

    train = data.train
    per_member = []
    for i in range(m):
        order = Batches(train, batch_size, shuffle=True, seed=i)
        picks = [idx for idx in order.batch_indices(0) if len(idx) == batch_size][:batches]
        if len(picks) < batches:
            sys.exit(f"--batch-size: {batches} batches of {batch_size} exceed {len(train.x)} rows")
        per_member.append([torch.from_numpy(idx) for idx in picks])
    pad = data.model_kwargs["padding_idx"]
    fused = [
        TextBatch(
            [train.x[per_member[i][j]].long() for i in range(m)],
            [train.y[per_member[i][j]] for i in range(m)],
            pad,
        )
        for j in range(batches)
    ]
    return fused


# ---------------------------------------------------------------- timing


class Probe:
    """Times variants within a budget and writes the JSON after each one."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.device = torch.device(args.device)
        self.cuda = self.device.type == "cuda"
        self.deadline = time.monotonic() + args.budget
        self.clock = time.perf_counter if self.cuda else time.process_time
        self.report = {
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "device": torch.cuda.get_device_name(self.device) if self.cuda else "cpu",
            "machine": f"{cpu_model()}, {os.cpu_count()} CPUs",
            "threads": None if self.cuda else args.threads,
            "clock": "wall, synchronised" if self.cuda else "process CPU time",
            "torch": torch.__version__,
            "settings": {
                k: getattr(args, k) for k in ("ms", "batches", "reps", "hidden", "embed_dim")
            },
        }

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def save(self) -> None:
        if self.args.json:
            self.args.json.write_text(json.dumps(self.report, indent=1))

    def warm(self, build: Callable[[], Step]) -> tuple[Step | None, dict]:
        """Build a variant (``build`` returns ``step(j)`` for batch ``j``) and run its warm-up
        round: ``(step, figures)``, or ``(None, {"error"|"skipped": ...})``."""
        if time.monotonic() > self.deadline:
            return None, {"skipped": "probe budget spent"}
        gc_collect()
        base = torch.cuda.memory_allocated(self.device) if self.cuda else 0
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
        try:
            t0 = time.perf_counter()
            step = build()
            first = step(0)
            for j in range(1, self.args.batches):
                step(j)
            self.sync()
            warmup = time.perf_counter() - t0
        except Exception as e:  # a variant's failure is a figure too; the others still run
            gc_collect()
            return None, {"error": f"{type(e).__name__}: {e}"[:1500]}
        first = getattr(step, "first_losses", first)
        peak = (torch.cuda.max_memory_allocated(self.device) - base) / 2**20 if self.cuda else None
        return step, {
            "warmup_s": round(warmup, 2),
            "peak_mib": None if peak is None else round(peak, 1),
            "first_losses": [round(float(v), 6) for v in first.cpu()],
            "compared": getattr(step, "compared", len(first)),
        }

    def timed_round(self, step: Step) -> float:
        """Seconds of one round over the batches (this device's clock)."""
        self.sync()
        t = self.clock()
        for j in range(self.args.batches):
            step(j)
        self.sync()
        return self.clock() - t

    def run_model(self, name: str, m: int, builders: dict[str, Callable[[], Step]]) -> dict:
        """Every asked variant of one model at ``m`` members, as a row of ``report[name]``.

        On CPU all variants are warmed up first and their timed rounds interleaved (each round
        sees the same neighbours); on CUDA, a machine of its own, each variant is warmed up,
        timed and freed before the next, so M = 64's variants need not fit at once.
        """
        row: dict = {"m": m, "variants": {}}
        self.report[name]["rows"].append(row)
        asked = [v for v in builders if v in self.args.variants]
        for v in [v for v in asked if v in CUDA_ONLY and not self.cuda]:
            row["variants"][v] = {"skipped": "CUDA only"}
            asked.remove(v)
        groups = [[v] for v in asked] if self.cuda else [asked]
        for group in groups:
            steps = {}
            for v in group:
                steps[v], row["variants"][v] = self.warm(builders[v])
            rounds: dict[str, list[float]] = {v: [] for v, step in steps.items() if step}
            try:
                for _ in range(self.args.reps):
                    for v in rounds:
                        rounds[v].append(self.timed_round(steps[v]))
            except Exception as e:  # recorded for the variant that raised it
                row["variants"][v] = {"error": f"{type(e).__name__}: {e}"[:1500]}
                rounds.pop(v)
            steps = None
            gc_collect()
            for v, times in rounds.items():
                if not times:
                    continue
                median = statistics.median(times)
                row["variants"][v].update(
                    ms_per_round=1e3 * median, trial_steps_per_s=m * self.args.batches / median
                )
            for v in group:
                self._describe(name, m, v, row["variants"])
        row["variants"] = {v: row["variants"][v] for v in builders if v in row["variants"]}
        return row

    def _describe(self, name: str, m: int, variant: str, variants: dict) -> None:
        """Add the speed-up over ``separate`` and the first-loss difference; print; save."""
        v, sep = variants[variant], variants.get("separate", {})
        if "trial_steps_per_s" in v and "trial_steps_per_s" in sep:
            v["speedup"] = v["trial_steps_per_s"] / sep["trial_steps_per_s"]
            n = v["compared"]  # members that read the same batch as in `separate`
            pairs = zip(v["first_losses"][:n], sep["first_losses"][:n], strict=True)
            v["first_loss_diff"] = max(abs(a - b) for a, b in pairs)
            line = (
                f"{v['trial_steps_per_s']:.1f} trial-steps/s, {v['speedup']:.2f}x separate, "
                f"peak {v['peak_mib']} MiB, warm-up {v['warmup_s']} s, "
                f"first-loss diff {v['first_loss_diff']:.1e}"
            )
        else:
            line = v.get("error") or v.get("skipped") or "no timed round"
        print(f"{name} M={m} {variant}: {line}", flush=True)
        self.save()

    def lenet5(self) -> None:
        a = self.args
        self.report["lenet5"] = {"batch_size": a.batch_size, "rows": []}
        for m in a.ms:
            batches = lenet_batches(m, a.batches, a.batch_size, device=self.device)
            self.run_model("lenet5", m, lenet_variants(m, batches, self.device))

    def lstm(self) -> None:
        a = self.args
        section = self.report["lstm"] = {"batch_size": a.batch_size, "rows": []}
        data = load_imdb(a.data_dir)
        size = {"vocab_size": data.model_kwargs["vocab_size"]}
        size.update(hidden=a.hidden, embed_dim=a.embed_dim)
        for m in a.ms:
            if time.monotonic() > self.deadline:
                section["rows"].append({"m": m, "skipped": "probe budget spent"})
                continue
            fused = [b.to(self.device) for b in imdb_batches(data, m, a.batches, a.batch_size)]
            widths = [w for b in fused for w in b.member_widths]
            row = self.run_model("lstm", m, lstm_variants(m, fused, size, self.device))
            row["widths"] = {
                "fused": [int(b.x.shape[2]) for b in fused],
                "member_mean": round(statistics.fmean(widths), 1),
                # positions the fused recurrence covers over those the M separate ones cover
                "fused_over_separate": round(
                    sum(int(b.x.shape[2]) * m for b in fused) / sum(widths), 3
                ),
            }
        self.save()


LR = 1e-3  # the paper's Adam learning rate


def lenet_variants(m: int, batches: list, device) -> dict[str, Callable[[], Step]]:
    """Builders of the LeNet-5 variants; each returns ``step(j)`` for batch ``j``."""
    xs = [list(x) for x, _ in batches]
    ys = [list(y) for _, y in batches]

    def separate() -> Step:
        s = Separate(lenet_members(m, device=device), LR)
        return lambda j: s.step(xs[j], ys[j])

    def vmap() -> Step:
        f = VmapFused(lenet_members(m, device=device), LR)
        return lambda j: f.step(*batches[j])

    def vmap_shared() -> Step:
        f = VmapFused(lenet_members(m, device=device), LR, shared_input=True)

        def step(j: int) -> torch.Tensor:
            x, y = batches[j]
            return f.step(x[0], y[0].expand(m, -1))

        step.compared = 1  # member 0 alone reads the batch it reads in `separate`
        return step

    return {"separate": separate, "vmap": vmap, "vmap_shared": vmap_shared}


def lstm_variants(m: int, fused: list[TextBatch], size: dict, device) -> dict:
    """Builders of the IMDB LSTM variants; each returns ``step(j)`` for fused batch ``j``."""

    def members() -> list[nn.Module]:
        return lstm_members(m, **size, device=device)

    def separate(streams: bool = False) -> Step:
        s = Separate(members(), LR, streams=streams)
        return lambda j: s.step(fused[j].rows, fused[j].ys)

    def baddbmm(cell: Cell = lstm_cell) -> Step:
        f = FusedLSTM(members(), LR, cell=cell)
        return lambda j: f.step(fused[j].x, fused[j].lengths, fused[j].y)

    def graphs() -> Step:
        g = GraphedLSTM(FusedLSTM(members(), LR, capturable=True))

        def step(j: int) -> torch.Tensor:
            out = g.step(fused[j].x, fused[j].lengths, fused[j].y)
            step.first_losses = g.warmup_losses[0]  # the graph's own first output is a replay's
            return out

        return step

    return {
        "separate": separate,
        "streams": lambda: separate(streams=True),
        "baddbmm": baddbmm,
        "baddbmm_graphs": graphs,
        "baddbmm_compile": lambda: baddbmm(compiled_cell()),
    }


_COMPILED: list[Cell] = []


def compiled_cell() -> Cell:
    """:func:`lstm_cell` through ``torch.compile`` (one compiled function for every M)."""
    if not _COMPILED:
        _COMPILED.append(torch.compile(lstm_cell, fullgraph=True))
    return _COMPILED[0]


def cpu_model() -> str:
    """The processor's name (``/proc/cpuinfo``'s model name), or the architecture."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def gc_collect() -> None:
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--data-dir", default=DATA_DIR, help="holds imdb/Train2500.csv")
    parser.add_argument("--ms", default="1,4,8,16,64", help="members per fused step")
    parser.add_argument("--models", default="lenet5,lstm")
    parser.add_argument("--variants", default=",".join(dict.fromkeys(sum(VARIANTS.values(), ()))))
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--batches", type=int, default=2, help="batches per member")
    parser.add_argument("--reps", type=int, default=3, help="timed rounds over the batches")
    parser.add_argument("--hidden", type=int, default=300, help="LSTM hidden size")
    parser.add_argument("--embed-dim", type=int, default=300, help="LSTM embedding size")
    parser.add_argument("--threads", type=int, default=1, help="torch threads on CPU")
    parser.add_argument("--budget", type=float, default=90, help="seconds for the whole probe")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args()
    args.ms = [int(v) for v in args.ms.split(",")]
    args.variants = args.variants.split(",")
    known = set(sum(VARIANTS.values(), ()))
    for flag, values, allowed in (
        ("--models", args.models.split(","), set(VARIANTS)),
        ("--variants", args.variants, known),
    ):
        if set(values) - allowed:
            parser.error(
                f"{flag}: unknown {sorted(set(values) - allowed)}; expected {sorted(allowed)}"
            )
    if "separate" not in args.variants:
        parser.error("--variants: 'separate' is the reference every figure is a ratio to")
    if min(args.ms) < 1:
        parser.error(f"--ms: expected positive member counts, got {args.ms}")
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: no CUDA device here")
    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    probe = Probe(args)
    for name in args.models.split(","):
        getattr(probe, name)()
    probe.save()


if __name__ == "__main__":
    main()
