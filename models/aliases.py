"""The paper's layer names (appendix Tables 5-9) and their resolution to parameter names.

Every model of this package is a :class:`PaperModel`: it publishes ``aliases``, a mapping from
the paper's names ("Embedding", "Lstm.ih.w", "Conv.1.w", "BatchNorm.8.w", "Input", ...) to the
parameter names of ``model.named_parameters()`` (or ``"input"``, the model's float input).
:func:`resolve` turns a list of aliases, parameter names or globs into parameter names, which is
what :func:`dropattack.targets.resolve` and the comparison methods take.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence

from torch import nn

__all__ = ["INPUT", "PaperModel", "check_aliases", "resolve", "split_list"]

INPUT = "input"


class PaperModel(nn.Module):
    """An ``nn.Module`` that names its tensors the way the paper's tables do.

    Subclasses set ``paper_name`` and implement :meth:`paper_aliases`. ``input_alias`` is the
    paper's name of the input target: "Embedding" (the embedding weight, §3) for text models,
    "Input" (the float input tensor) for vision models.
    """

    paper_name: str = ""
    input_alias: str = ""

    def paper_aliases(self) -> dict[str, list[str]]:
        raise NotImplementedError

    @property
    def aliases(self) -> dict[str, list[str]]:
        """Paper alias -> parameter names (``"input"`` for the input tensor), in model order."""
        return self.paper_aliases()


def check_aliases(model: PaperModel) -> None:
    """Every alias names at least one tensor and only tensors that exist.

    Raises:
        ValueError: an alias is empty or names a parameter the model lacks.
    """
    params = {name for name, _ in model.named_parameters()} | {INPUT}
    for alias, names in model.aliases.items():
        missing = [n for n in names if n not in params]
        if not names or missing:
            raise ValueError(
                f"{type(model).__name__}: alias {alias!r} names missing parameters {missing}"
            )


def split_list(value: str | Iterable[str]) -> list[str]:
    """``"A,B"`` or ``"A;B"`` (the paper CSV's separator) or a list -> ``["A", "B"]``."""
    parts = value.replace(";", ",").split(",") if isinstance(value, str) else list(value)
    return [p.strip() for p in parts if p and p.strip()]


def resolve(model: PaperModel, items: str | Sequence[str]) -> list[str]:
    """Resolve paper aliases, parameter names and globs to parameter names, each once, in order.

    An item is tried as an exact alias, then as an alias ignoring case (only where that is
    unambiguous), then as ``"input"`` (vision models only), then as an exact parameter name,
    then as a glob over parameter names.

    Raises:
        ValueError: an item matches nothing; the message lists the valid aliases.
    """
    wanted = split_list(items)
    if not wanted:
        raise ValueError("attack: expected at least one alias or parameter name")
    aliases = model.aliases
    folded = _casefold_index(aliases)
    params = [name for name, _ in model.named_parameters()]
    out: list[str] = []
    for item in wanted:
        names = _resolve_one(model, item, aliases, folded, params)
        out.extend(n for n in names if n not in out)
    return out


def _casefold_index(aliases: Mapping[str, list[str]]) -> dict[str, str | None]:
    index: dict[str, str | None] = {}
    for alias in aliases:
        key = alias.casefold()
        index[key] = None if key in index and index[key] != alias else alias
    return index


def _resolve_one(
    model: PaperModel,
    item: str,
    aliases: Mapping[str, list[str]],
    folded: Mapping[str, str | None],
    params: list[str],
) -> list[str]:
    if item in aliases:
        return list(aliases[item])
    alias = folded.get(item.casefold())
    if alias is not None:
        return list(aliases[alias])
    if item == INPUT and any(INPUT in names for names in aliases.values()):
        return [INPUT]
    if item in params:
        return [item]
    matches = [p for p in params if fnmatch.fnmatchcase(p, item)]
    if matches:
        return matches
    hint = ""
    if item.casefold() == INPUT and model.input_alias != "Input":
        hint = (
            f" ({model.paper_name} reads token ids: its input attack is "
            f"{model.input_alias!r}, the embedding weight)"
        )
    raise ValueError(
        f"attack: unknown alias or parameter {item!r} for {model.paper_name}{hint}; "
        f"valid aliases: {', '.join(aliases)}; or a parameter name or glob among: "
        f"{', '.join(params)}"
    )
