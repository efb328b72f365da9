"""Where a sweep's trials run: on a GPU share or on the CPU, said in one phrase.

``resources.gpus: auto`` (the paper specs' setting) gives each trial a GPU share where the Ray
cluster has GPUs, sized by ``dropattack plan``'s measurement of memory and throughput, and the
CPU where it has none. :func:`placement` words a resolved choice for the sweep's first line;
:func:`intended_placement` words the unresolved one for ``--dry-run``, which starts no Ray.
"""

from __future__ import annotations

from sweeps.specs.spec import Spec

__all__ = ["gpu_count_here", "intended_placement", "placement", "resolve_gpus_here"]


def placement(cpus: float | str, gpus: float) -> str:
    """``on CPU, 1 CPU a trial`` or ``on GPU, 0.25 GPU a trial (4 share a GPU), 1 CPU``."""
    cpu = "auto CPUs" if cpus == "auto" else f"{float(cpus):g} CPU"
    if not gpus:
        return f"on CPU, {cpu} a trial"
    if gpus < 1:
        return f"on GPU, {gpus:g} GPU a trial ({round(1 / gpus)} share a GPU), {cpu}"
    return f"on GPU, {gpus:g} GPU a trial (no GPU shared), {cpu}"


def gpu_count_here() -> int:
    """GPUs torch sees on this machine (imports torch)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def resolve_gpus_here(gpus: float | str) -> float | str:
    """``auto`` on a machine without GPUs is the CPU (0); anything else as given."""
    if gpus == "auto" and gpu_count_here() == 0:
        return 0.0
    return gpus


def intended_placement(spec: Spec, gpus_flag: float | str | None = None) -> str:
    """Where the trials will run, before any Ray starts: for ``--dry-run``'s header."""
    gpus = spec.resources.gpus if gpus_flag is None else gpus_flag
    cpus = spec.resources.cpus
    if gpus == "auto":
        here = gpu_count_here()
        where = (
            f"this machine has {here} GPU(s): a GPU share each"
            if here
            else "this machine has no GPU: on CPU"
        )
        return (
            f"gpus: auto (a GPU share per trial, sized by dropattack plan, where the Ray "
            f"cluster has GPUs; else the CPU; {where}), "
            + ("auto CPUs" if cpus == "auto" else f"{float(cpus):g} CPU")
            + " a trial"
        )
    return placement(cpus, float(gpus))
