"""Calibration: what one trial of a cost shape costs, measured on the trial's own code path.

:func:`calibrate` builds the trial exactly as :func:`sweeps.trial.run_trial` does
(:func:`~sweeps.trial.prepare_trial`: real data, vocabulary, model, method, optimizer) and
times it: the set-up, a few training steps through :func:`dropattack.fit` with the method's
own passes (the first step, which warms caches and allocators, is timed apart), one
evaluation pass over evenly spaced validation batches (evaluation batches of text are sorted
by length, so the first ones would overstate it), one save of the epoch checkpoint, and the
peak memory: the CUDA allocator's peak on a GPU, the process's resident memory on a CPU
(sampled every 5 ms). :meth:`Calibration.trial_seconds` extrapolates the whole trial.

:func:`probe` runs ``k`` calibrations at once in separate processes (``python -m
sweeps.cost.calibrate``), released together after their set-up, and counts training steps in one
shared window: the throughput behind ``gpus: auto`` and ``cpus: auto``.

Nothing here imports Ray, MLflow, Optuna or pydantic: a GPU machine with only torch,
tokenizers, numpy and scipy runs it (``bench/gpu_run.py``).

>>> from sweeps.cost.calibrate import calibrate
>>> c = calibrate("digits-lenet5", method="dropattack", k=3, budget=5)  # doctest: +SKIP
>>> c.passes, round(c.trial_seconds())  # doctest: +SKIP
(7, 4)
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch

from dropattack.train import Callback, fit
from sweeps.trial import PreparedTrial, TrialConfig, prepare_trial

__all__ = ["Calibration", "Probe", "calibrate", "probe", "trial_config"]

#: Training steps timed at most per calibration (after the warm-up step).
MAX_STEPS = 30
#: Training steps timed at least, whatever the budget.
MIN_STEPS = 3
#: Validation batches evaluated at most.
MAX_EVAL_BATCHES = 8


@dataclass
class Calibration:
    """What one trial of a shape costs on the machine that measured it.

    Attributes:
        task, method, device: the trial's.
        threads: torch's intra-op threads during the measurement.
        passes: forward/backward passes a training step of the method costs.
        setup_seconds: data, vocabulary, model, method (what a trial does before its first step).
        first_step_seconds: the first training step (warm-up), timed apart.
        step_seconds: mean of the other timed steps.
        steps_timed: steps behind ``step_seconds``.
        steps_per_epoch, epochs: the trial's.
        eval_seconds_per_example: one evaluation pass's time per example.
        val_examples, test_examples: the trial's evaluation set sizes.
        checkpoint_seconds: saving one epoch's checkpoint state (``torch.save`` to a file).
        peak_memory_bytes: the CUDA allocator's peak (GPU) or the process's peak resident set.
        memory: ``"cuda_allocator"`` or ``"resident"``.
        seconds: the calibration's own wall time (a process's one-time warm-up included).
        warmup_seconds: that warm-up (the first calibration in a process; 0 after): what a
            trial worker's first trial pays once.
    """

    task: str
    method: str
    device: str
    threads: int
    passes: int | None
    setup_seconds: float
    first_step_seconds: float
    step_seconds: float
    steps_timed: int
    steps_per_epoch: int
    epochs: int
    eval_seconds_per_example: float
    val_examples: int
    test_examples: int
    checkpoint_seconds: float
    peak_memory_bytes: int
    memory: str
    seconds: float
    warmup_seconds: float = 0.0

    def epoch_seconds(self) -> float:
        """One epoch: its training steps, the validation pass and the epoch checkpoint."""
        return (
            self.steps_per_epoch * self.step_seconds
            + self.val_examples * self.eval_seconds_per_example
            + self.checkpoint_seconds
        )

    def trial_seconds(self, epochs: int | None = None) -> float:
        """The whole trial: set-up, first-step warm-up, every epoch, the test pass."""
        n = self.epochs if epochs is None else epochs
        return (
            self.setup_seconds
            + (self.first_step_seconds - self.step_seconds)
            + n * self.epoch_seconds()
            + self.test_examples * self.eval_seconds_per_example
        )

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["trial_seconds"] = self.trial_seconds()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def trial_config(trial: TrialConfig | Mapping[str, Any] | str, **fields_: Any) -> TrialConfig:
    """A :class:`TrialConfig` from itself, a sweep's trial dict, or a task name and fields."""
    if isinstance(trial, TrialConfig):
        return trial
    data = {"task": trial} if isinstance(trial, str) else dict(trial)
    data.update(fields_)
    names = {f.name for f in fields(TrialConfig)}
    kwargs = {k: v for k, v in data.items() if k in names and v is not None}
    kwargs["attack"] = tuple(kwargs.get("attack") or ())
    return TrialConfig(**kwargs)


class _MemoryPeak:
    """The peak of the CUDA allocator (GPU) or of the process's resident set (CPU)."""

    def __init__(self, device: torch.device, interval: float = 0.005) -> None:
        self.cuda = device.type == "cuda"
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def kind(self) -> str:
        return "cuda_allocator" if self.cuda else "resident"

    def __enter__(self) -> _MemoryPeak:
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        else:
            self.peak = _rss()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, _rss())

    def __exit__(self, *exc: Any) -> None:
        if self.cuda:
            torch.cuda.synchronize()
            self.peak = int(torch.cuda.max_memory_allocated())
        else:
            self._stop.set()
            if self._thread is not None:
                self._thread.join()
            self.peak = max(self.peak, _rss())


def _rss() -> int:
    """The process's resident set in bytes (``/proc``; else its lifetime peak)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        scale = 1 if sys.platform == "darwin" else 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


class _Clock(Callback):
    """Times each training step and the validation pass after them (fit's own hooks)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.marks: list[float] = []
        self.epoch_end = 0.0
        self.state: dict[str, Any] = {}

    def _now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def on_epoch_start(self, epoch: int, batches: int | None) -> None:
        self.marks = [self._now()]

    def on_batch_end(self, epoch: int, step: int, examples: int) -> None:
        self.marks.append(self._now())

    def on_epoch_end(self, metrics: Any, model: Any, state: dict[str, Any]) -> None:
        self.epoch_end = self._now()
        self.state = state


def _limited(batches: Iterable[Any], stop: Callable[[int], bool]) -> Iterator[Any]:
    """``batches`` until ``stop(count)``."""
    for n, batch in enumerate(batches):
        if stop(n):
            return
        yield batch


def _spaced(batches: Any, n: int) -> tuple[list[Any], int]:
    """``n`` evenly spaced batches of ``batches`` and how many examples all of them hold."""
    total = len(batches)
    stride = max(1, total // max(1, n))
    chosen = []
    examples = 0
    for i, (x, y) in enumerate(batches):
        examples += len(y)
        if i % stride == 0 and len(chosen) < n:
            chosen.append((x, y))
    return chosen, examples


def calibrate(
    trial: TrialConfig | Mapping[str, Any] | str,
    *,
    budget: float = 10.0,
    threads: int | None = None,
    window: float | None = None,
    ready: Callable[[], None] | None = None,
    **fields_: Any,
) -> Calibration:
    """Measure one trial of ``trial``'s shape (a :class:`TrialConfig`, a sweep's trial dict or
    a task name with :class:`TrialConfig` fields as keywords).

    Args:
        budget: seconds for the timed steps and the evaluation (the set-up is what it is):
            steps run until about half of it is spent (at least ``MIN_STEPS``, at most
            ``MAX_STEPS``), then up to ``MAX_EVAL_BATCHES`` validation batches.
        threads: torch's intra-op threads while measuring (the trial's CPUs); restored after.
        window: count steps for exactly this many seconds instead (no step limit, no
            evaluation): what :func:`probe` uses so that concurrent calibrations overlap.
        ready: called after the set-up, before the first step (a barrier for :func:`probe`).

    Raises:
        ValueError, models.data.DataError: as :func:`sweeps.trial.run_trial` would.
    """
    cfg = trial_config(trial, **fields_)
    t_start = time.perf_counter()
    warmup = _warm()
    old_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(max(1, int(threads)))
    try:
        device = torch.device(cfg.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device: {cfg.device!r} requested but torch sees no CUDA device")
        with _MemoryPeak(device) as memory:
            prepared = prepare_trial(cfg)
            clock = _Clock(prepared.device)
            train, val, val_examples = _calibration_batches(prepared, budget, window, clock)
            if ready is not None:
                ready()
            fit(
                prepared.model,
                prepared.method,
                prepared.optimizer,
                train,
                val,
                None,
                epochs=1,
                device=prepared.device,
                callbacks=[clock],
            )
            checkpoint = _checkpoint_seconds(clock.state)
        result = _result(prepared, clock, memory, checkpoint, val, val_examples, threads, t_start)
        result.warmup_seconds = warmup
        return result
    finally:
        torch.set_num_threads(old_threads)


_WARMED = False


def _warm() -> float:
    """Pay a process's one-time costs before timing; their seconds (0 after the first call).

    The first optimizer imports ``torch._dynamo`` (seconds): a sweep's trial worker pays it
    once, in its first trial, so the plan counts it with the workers' start-up.
    """
    global _WARMED
    if _WARMED:
        return 0.0
    t0 = time.perf_counter()
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])
    _WARMED = True
    return time.perf_counter() - t0


def _calibration_batches(
    prepared: PreparedTrial,
    budget: float,
    window: float | None,
    clock: _Clock,
) -> tuple[Iterator[Any], list[Any], int]:
    """The training batches to time (a budget or a window) and the validation sample."""

    def stop(n: int) -> bool:
        if n == 0:
            return False
        spent = time.perf_counter() - clock.marks[0] if clock.marks else 0.0
        if window is not None:
            return spent >= window
        timed = n - 1  # the first step is the warm-up
        return timed >= MAX_STEPS or (timed >= MIN_STEPS and spent >= budget / 2)

    train = _limited(prepared.train, stop)
    val_batches = prepared.eval_batches("val")
    n_val = 1 if window is not None else MAX_EVAL_BATCHES
    val, val_examples = _spaced(val_batches, n_val)
    return train, val, val_examples


def _checkpoint_seconds(state: dict[str, Any]) -> float:
    """One save of the epoch's checkpoint state, as the trainable writes it each epoch."""
    if not state:
        return 0.0
    with tempfile.TemporaryDirectory(prefix="dropattack-calibrate-") as tmp:
        t0 = time.perf_counter()
        torch.save(state, Path(tmp) / "state.pt")
        return time.perf_counter() - t0


def _result(
    prepared: PreparedTrial,
    clock: _Clock,
    memory: _MemoryPeak,
    checkpoint: float,
    val: list[Any],
    val_examples: int,
    threads: int | None,
    t_start: float,
) -> Calibration:
    marks = clock.marks
    steps = [b - a for a, b in zip(marks, marks[1:], strict=False)]
    first = steps[0] if steps else 0.0
    rest = steps[1:] or steps
    step = sum(rest) / len(rest) if rest else 0.0
    evaluated = sum(len(y) for _, y in val)
    eval_seconds = max(0.0, clock.epoch_end - marks[-1]) if marks else 0.0
    cfg = prepared.config
    return Calibration(
        task=cfg.task,
        method=cfg.method,
        device=str(prepared.device),
        threads=int(threads) if threads is not None else torch.get_num_threads(),
        passes=getattr(prepared.method, "passes", None),
        setup_seconds=prepared.setup_seconds,
        first_step_seconds=first,
        step_seconds=step,
        steps_timed=len(rest),
        steps_per_epoch=len(prepared.train),
        epochs=prepared.epochs,
        eval_seconds_per_example=eval_seconds / evaluated if evaluated else 0.0,
        val_examples=val_examples,
        test_examples=len(prepared.data.test),
        checkpoint_seconds=checkpoint,
        peak_memory_bytes=int(memory.peak),
        memory=memory.kind,
        seconds=time.perf_counter() - t_start,
    )


# --------------------------------------------------------------------------- concurrency


@dataclass
class Probe:
    """``k`` calibrations at once with ``threads`` threads each, counted over one window.

    Attributes:
        k, threads: processes and torch threads per process.
        step_seconds: each process's mean step time in the window.
        trials_per_hour: all ``k`` together, from their step rates and the trial's steps.
        peak_memory_bytes: the largest process's peak.
    """

    k: int
    threads: int
    step_seconds: list[float]
    trials_per_hour: float
    peak_memory_bytes: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def probe(
    trial: TrialConfig | Mapping[str, Any],
    k: int,
    *,
    threads: int = 1,
    window: float = 3.0,
    timeout: float = 300.0,
) -> Probe:
    """Run ``k`` calibrations of ``trial`` at once, each in its own process with ``threads``
    threads, released together after their set-up, and count their steps over ``window``.

    Raises:
        RuntimeError: a process failed (its last error line).
        TimeoutError: they took longer than ``timeout`` seconds in all (they are killed).
    """
    cfg = asdict(trial_config(trial))
    request = json.dumps({"trial": cfg, "threads": threads, "window": window})
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    # a task from the user's code imports from this folder, as it does here
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (os.getcwd(), env.get("PYTHONPATH"))))
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "sweeps.cost.calibrate"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=str(Path(__file__).resolve().parents[2]),
        )
        for _ in range(k)
    ]
    deadline = time.monotonic() + timeout
    try:
        for p in procs:
            p.stdin.write(request + "\n")
            p.stdin.flush()
        for p in procs:  # wait until every one has finished its set-up
            line = _readline(p, deadline)
            if line.strip() != "ready":
                raise RuntimeError(_failure(p, max(1.0, deadline - time.monotonic())))
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        results = []
        for p in procs:
            try:
                out, err = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                raise TimeoutError(f"{k} calibrations took over {timeout:.0f}s") from None
            if p.returncode != 0:
                raise RuntimeError(_last_line(err) or f"calibration exited {p.returncode}")
            results.append(Calibration.from_dict(json.loads(out.strip().splitlines()[-1])))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    steps = [c.step_seconds for c in results]
    per_trial = results[0].steps_per_epoch * results[0].epochs
    rate = sum(1.0 / s for s in steps if s > 0)  # steps per second, all processes
    return Probe(
        k=k,
        threads=threads,
        step_seconds=steps,
        trials_per_hour=3600.0 * rate / per_trial if per_trial else 0.0,
        peak_memory_bytes=max(c.peak_memory_bytes for c in results),
    )


def _readline(p: subprocess.Popen, deadline: float) -> str:
    """A line of ``p``'s output, or ``TimeoutError`` past ``deadline``."""
    import selectors

    with selectors.DefaultSelector() as sel:
        sel.register(p.stdout, selectors.EVENT_READ)
        if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
            raise TimeoutError("calibration set-up did not finish in time")
    return p.stdout.readline()


def _failure(p: subprocess.Popen, timeout: float) -> str:
    try:
        _, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        _, err = p.communicate()
    return _last_line(err) or f"calibration exited {p.returncode}"


def _last_line(text: str) -> str:
    lines = [ln for ln in (text or "").strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def _serve() -> int:
    """``python -m sweeps.cost.calibrate``: one request line in, ``ready``, wait for a line, one
    JSON line out (the :class:`Calibration`)."""
    request = json.loads(sys.stdin.readline())

    def ready() -> None:
        print("ready", flush=True)
        sys.stdin.readline()

    result = calibrate(
        request["trial"],
        threads=request.get("threads"),
        window=request.get("window"),
        budget=float(request.get("budget", 10.0)),
        ready=ready,
    )
    print(json.dumps(result.as_dict()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_serve())
