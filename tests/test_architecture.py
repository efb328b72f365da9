"""The layout's rules, read from the source: no import circles, no private names across modules,
packages in layers, a short top level in ``sweeps/``, and docs/architecture.md matching the tree.

Every import counts, the ones inside functions and under ``TYPE_CHECKING`` too: a lazy import
hides a circle from the interpreter, not from a reader.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("dropattack", "models", "sweeps")

#: The service's packages and top-level modules, lowest first: each may import only those
#: before it (and ``dropattack`` and ``models``). This is the data flow of docs/architecture.md.
LAYERS = (
    "sweeps.trial",
    "sweeps.specs",
    "sweeps.records",
    "sweeps.cluster",
    "sweeps.cost",
    "sweeps.execution",
    "sweeps.report",
    "sweeps.landscape",
    "sweeps.commands",
    "sweeps.cli",
)
MAX_FLAT_MODULES = 8


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            out[name.removesuffix(".__init__")] = path
    return out


MODULES = _modules()


def _imports(module: str) -> Iterator[tuple[str, str | None, int]]:
    """(imported module, imported name or None, line) for every import in ``module``."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                if full in MODULES:  # ``from package import module``
                    yield full, None, node.lineno
                else:
                    yield base, alias.name, node.lineno


def _owner(name: str) -> str | None:
    """The project module that ``name`` (a module path) lives in, if any."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for module in MODULES:
        for target, _, _ in _imports(module):
            owner = _owner(target)
            if owner and owner != module:
                graph[module].add(owner)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle():
    """The check below can fail: a circle of three and a lone module."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_no_import_circles():
    assert _cycles(_graph()) == []


def test_no_module_imports_another_modules_private_names():
    bad = [
        f"{module}:{line} imports {name} from {target}"
        for module in MODULES
        for target, name, line in _imports(module)
        if name and name.startswith("_") and not name.startswith("__") and _owner(target)
    ]
    assert bad == []


def _layer(module: str) -> int | None:
    for i, layer in enumerate(LAYERS):
        if module == layer or module.startswith(layer + "."):
            return i
    return None


def test_every_sweeps_module_has_a_layer():
    assert [m for m in MODULES if m.startswith("sweeps.") and _layer(m) is None] == []


def test_packages_import_only_the_layers_below_them():
    bad = []
    for module, targets in _graph().items():
        mine = _layer(module)
        for target in targets:
            theirs = _layer(target)
            if mine is not None and theirs is not None and theirs > mine:
                bad.append(f"{module} imports {target}: {LAYERS[theirs]} is above {LAYERS[mine]}")
    assert bad == []


@pytest.mark.parametrize("package", ["dropattack", "models"])
def test_the_library_imports_no_service(package):
    """``dropattack`` is torch only; the tasks (``models``) need no sweep service either."""
    banned = ("ray", "mlflow", "optuna", "sweeps") + (
        ("models",) if package == "dropattack" else ()
    )
    bad = [
        f"{module}:{line} imports {target}"
        for module in MODULES
        if module.split(".")[0] == package
        for target, _, line in _imports(module)
        if target.split(".")[0] in banned
    ]
    assert bad == []


def test_sweeps_top_level_stays_short():
    flat = sorted(p.name for p in (ROOT / "sweeps").glob("*.py"))
    assert len(flat) <= MAX_FLAT_MODULES, flat


def _architecture() -> str:
    return (ROOT / "docs" / "architecture.md").read_text()


def test_architecture_page_names_every_package_and_top_level_module():
    """docs/architecture.md lists each ``sweeps/`` package and flat module in its table, and
    nothing that is not in the tree."""
    text = _architecture()
    listed = set(re.findall(r"^\| `sweeps/([\w./]+)` \|", text, re.M))
    tree = {p.name + "/" for p in (ROOT / "sweeps").iterdir() if (p / "__init__.py").exists()}
    tree |= {p.name for p in (ROOT / "sweeps").glob("*.py") if p.name != "__init__.py"}
    assert listed == tree


def test_architecture_page_modules_exist():
    """Every ``sweeps.x.y`` the page names imports from a module of the tree."""
    names = set(re.findall(r"`(sweeps(?:\.\w+)+)`", _architecture()))
    assert names, "the page names no module"
    missing = [n for n in sorted(names) if _owner(n) is None]
    assert missing == []


def test_architecture_layers_match_the_test():
    """The page's layer list is this test's :data:`LAYERS`, in order."""
    text = _architecture()
    block = text[text.index("<!-- layers -->") : text.index("<!-- /layers -->")]
    found = re.findall(r"`(sweeps[\w.]*)`", block)
    assert tuple(found) == LAYERS
