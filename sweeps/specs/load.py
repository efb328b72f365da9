"""A spec file in, a validated :class:`~sweeps.specs.spec.Spec` out, its grid expanded.

:mod:`sweeps.specs.spec` validates a spec's data and :mod:`sweeps.specs.space` expands it into
trials; this module reads the YAML (safely, refusing duplicate keys) and does both, so that an empty
grid or a repeated cell fails when the file is loaded, before anything runs. Data flows one way:
spec -> space -> here.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

import yaml

from sweeps.specs.data import apply_data_dir
from sweeps.specs.space import expand_grid
from sweeps.specs.spec import SPEC_DIR, Spec, SpecError, parse_spec, spec_names

__all__ = ["find_spec_file", "load_spec"]


def find_spec_file(name_or_path: str | Path) -> Path:
    """The YAML file a spec argument names: a path, or a spec shipped in ``sweeps/specs``."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.parent != Path(".") or path.exists():
        if not path.is_file():
            raise SpecError(f"{path}: no such spec file")
        return path
    shipped = SPEC_DIR / f"{name_or_path}.yaml"
    if not shipped.is_file():
        raise SpecError(
            f"unknown spec {str(name_or_path)!r}; expected a path to a YAML file or one of: "
            f"{', '.join(spec_names())}"
        )
    return shipped


class _UniqueKeyLoader(yaml.SafeLoader):
    """The safe loader, refusing a key given twice (plain YAML keeps the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, Hashable) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} given twice", key_node.start_mark
                )
            if isinstance(key, Hashable):
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_spec(name_or_path: str | Path, data_dir: str | None = None) -> Spec:
    """Read and validate a spec: a shipped name (``quickstart``) or a YAML file path.

    Grids are expanded once here, so an empty grid or a repeated cell fails before launch.
    ``data_dir`` (``--data-dir``) replaces the spec's ``data_dir`` in every trial.

    Raises:
        SpecError: unknown spec, unreadable YAML, or an invalid field (path and allowed values).
    """
    path = find_spec_file(name_or_path)
    try:
        # A SafeLoader subclass: as safe as yaml.safe_load, plus duplicate keys refused.
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise SpecError(f"{path}:{where}: invalid YAML: {problem}") from None
    except UnicodeDecodeError as e:
        raise SpecError(
            f"{path}: not UTF-8 text (byte {e.start}); save the spec as UTF-8"
        ) from None
    except RecursionError:
        raise SpecError(f"{path}: nested too deeply to be a spec") from None
    except ValueError as e:  # e.g. an integer past Python's digit limit
        raise SpecError(f"{path}: invalid YAML value: {e}") from None
    except OSError as e:
        raise SpecError(f"{path}: cannot read: {e.strerror}") from None
    if isinstance(data, Mapping) and "source" in data:
        raise SpecError(f"{path}: source: not a spec field (it is set to the file's path)")

    def expand(spec: Spec) -> None:
        if spec.search.algorithm == "grid":
            expand_grid(spec)

    return parse_spec(apply_data_dir(data, data_dir), str(path), path.stem, expand)
