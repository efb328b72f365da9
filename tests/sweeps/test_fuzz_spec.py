"""Fuzzing the spec loader: every malformed spec ends in a SpecError naming the file.

Each example starts from a valid grid spec and breaks it in one to three ways drawn from a
table of mutations, each invalid on its own (wrong types, unknown keys, eps/p/lr out of range,
NaN and huge numbers, empty or repeated grid values, unknown tasks, methods and attack aliases,
misused search settings, non-mapping documents), or corrupts the YAML text itself. The loader
must raise :class:`~sweeps.specs.spec.SpecError` whose message starts with the file's path; any
other exception, or a spec that loads, fails the test. The ``dropattack sweep --dry-run`` command
must answer the same inputs with exit status 2 and an error line, never a traceback.

Hypothesis runs derandomized (the same examples on every run) without its example database.
Inputs found to end in other exceptions are listed at the end as strict xfails.
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sweeps.cli import main
from sweeps.specs.load import load_spec
from sweeps.specs.spec import ALGORITHMS, PAPER_TABLES, SpecError

FUZZ = settings(
    max_examples=600,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
CLI_FUZZ = settings(FUZZ, max_examples=40)

BASE: dict[str, Any] = {
    "name": "fuzz",
    "paper_table": "quickstart",
    "defaults": {
        "task": "digits-lenet5",
        "method": "dropattack",
        "attack": ["Input"],
        "epochs": 2,
    },
    "space": {"eps": [1.0, 5.0], "p": [0.3, 0.7]},
    "trials": [{"variant": "a"}, {"attack": ["Input", "Conv.1.w"], "variant": "b"}],
    "seeds": [0, 1],
    "search": {"algorithm": "grid", "metric": "val_acc", "mode": "max"},
    "resources": {"cpus": 1, "max_failures": 1},
}
BASE_TEXT = yaml.safe_dump(BASE, sort_keys=False)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-spec")


def test_the_base_spec_is_valid(folder: Path) -> None:
    """Every mutation below is measured against a spec that loads."""
    path = folder / "base.yaml"
    path.write_text(BASE_TEXT)
    spec = load_spec(path)
    assert spec.name == "fuzz" and len(spec.trials) == 2


# --------------------------------------------------------------------------- values

# Words that no float, int, bool or enum parser accepts ("x" keeps "inf"/"nan" out).
WORD = st.from_regex(r"x[a-z]{0,8}", fullmatch=True)
UNKNOWN_NAME = st.from_regex(r"zz[a-z0-9_]{0,10}", fullmatch=True)
NOT_SCALAR = st.one_of(st.lists(st.integers(), max_size=2), st.dictionaries(WORD, st.integers()))
NAN_OR_INF = st.sampled_from([math.nan, math.inf, -math.inf])
HUGE = st.sampled_from([1e308, -1e308, 10**30, -(10**30)])

NEGATIVE = st.floats(max_value=-1e-6, allow_nan=False, allow_infinity=True)
NOT_POSITIVE_INT = st.one_of(st.integers(max_value=0), st.just(-(10**30)))
FRACTIONAL = st.integers(-(10**6), 10**6).map(lambda i: i + 0.5)

BAD_FLOAT_TYPE = st.one_of(WORD, NOT_SCALAR)
BAD_INT = st.one_of(NOT_POSITIVE_INT, FRACTIONAL, NAN_OR_INF, WORD, NOT_SCALAR)

#: (path, invalid values): setting the path to any of the values makes the spec invalid.
BAD_VALUES: list[tuple[tuple[str, ...], st.SearchStrategy[Any]]] = [
    (
        ("name",),
        st.one_of(
            st.sampled_from(["", "has space", "-dash", "a/b", "ünïcode", ".dot"]),
            st.integers(),
            NOT_SCALAR,
        ),
    ),
    (("paper_table",), st.one_of(WORD, st.integers()).filter(lambda v: v not in PAPER_TABLES)),
    (
        ("defaults", "eps"),
        st.one_of(NEGATIVE, st.just(math.nan), st.just(-(10**30)), BAD_FLOAT_TYPE),
    ),
    (
        ("defaults", "p"),
        st.one_of(
            st.floats(min_value=1.000001, allow_nan=False, allow_infinity=True),
            NEGATIVE,
            NAN_OR_INF,
            HUGE,
            BAD_FLOAT_TYPE,
        ),
    ),
    (("defaults", "k"), BAD_INT),
    (("defaults", "epochs"), BAD_INT),
    (("defaults", "train_size"), BAD_INT),
    (("defaults", "batch_size"), BAD_INT),
    (
        ("defaults", "lr"),
        st.one_of(st.floats(max_value=0, allow_nan=False), st.just(math.nan), BAD_FLOAT_TYPE),
    ),
    (("defaults", "groups"), st.one_of(WORD, st.integers(), NOT_SCALAR)),
    (("defaults", "task"), st.one_of(UNKNOWN_NAME, st.integers(), NOT_SCALAR)),
    (("defaults", "method"), st.one_of(UNKNOWN_NAME, st.integers(), NOT_SCALAR)),
    (
        ("defaults", "attack"),
        st.one_of(
            st.lists(UNKNOWN_NAME.map(str.capitalize), min_size=1, max_size=3),
            st.lists(st.one_of(st.integers(), st.lists(st.just("Input"), min_size=1)), min_size=1),
            st.integers(),
            st.dictionaries(WORD, st.integers(), min_size=1),
        ),
    ),
    (
        ("defaults", "hp"),
        st.one_of(
            st.dictionaries(UNKNOWN_NAME, st.integers(), min_size=1, max_size=3),
            st.fixed_dictionaries({"eps": NOT_SCALAR}),
            WORD,
            st.lists(st.integers(), min_size=1),
        ),
    ),
    (
        ("seeds",),
        st.one_of(
            st.just([]),
            st.integers(max_value=0),
            st.integers(0, 9).map(lambda s: [s, s]),
            st.lists(WORD, min_size=1, max_size=3),
            st.dictionaries(WORD, st.integers(), min_size=1),
            FRACTIONAL.map(lambda v: [v]),
        ),
    ),
    (("search", "algorithm"), st.one_of(WORD, st.integers()).filter(lambda v: v not in ALGORITHMS)),
    (("search", "metric"), st.one_of(WORD, st.sampled_from(["test_acc", "loss"]), st.integers())),
    (("search", "mode"), st.one_of(WORD, st.integers())),
    (("search", "scheduler"), st.one_of(WORD, st.integers())),
    (("search", "num_samples"), st.one_of(st.integers(max_value=0), st.integers(2, 10**6), WORD)),
    (("search", "grace_period"), st.one_of(st.integers(max_value=0), WORD)),
    (("search", "reduction_factor"), st.one_of(st.floats(max_value=1.0, allow_nan=False), WORD)),
    (("search", "storage"), st.one_of(st.integers(), NOT_SCALAR)),
    (
        ("resources", "cpus"),
        st.one_of(st.floats(max_value=0, allow_nan=False), st.just(math.nan), WORD),
    ),
    (
        ("resources", "gpus"),
        st.one_of(
            NEGATIVE,
            st.floats(min_value=1.01, max_value=1e6).filter(lambda v: not v.is_integer()),
            WORD,
        ),
    ),
    (("resources", "max_concurrent"), st.one_of(st.integers(max_value=0), FRACTIONAL, WORD)),
    (("resources", "max_failures"), st.one_of(st.integers(max_value=-1), FRACTIONAL, WORD)),
    (
        ("resources", "reuse_actors"),
        st.one_of(st.sampled_from(["maybe", "sometimes", 2, -1]), NOT_SCALAR),
    ),
    (
        ("space", "eps"),
        st.one_of(st.just([]), st.just([1.0, 1.0]), st.lists(NEGATIVE, min_size=1, max_size=3)),
    ),
    (
        ("space", "p"),
        st.one_of(
            st.lists(st.floats(min_value=1.000001, allow_nan=False), min_size=1, max_size=3),
            st.just([math.nan]),
            st.integers(),
            WORD,
            st.fixed_dictionaries({"low": st.just(0.1), "high": st.just(0.9)}),
            st.dictionaries(WORD, st.integers(), min_size=1),
        ),
    ),
    (
        ("space", "k"),
        st.one_of(st.lists(NOT_POSITIVE_INT, min_size=1, max_size=3), st.just([1, 1])),
    ),
    (("keep_checkpoint",), st.one_of(st.sampled_from(["yes", "no", "true", 1, 0]), NOT_SCALAR)),
    (("trials",), st.one_of(WORD, st.integers(), st.dictionaries(WORD, st.integers(), min_size=1))),
    (("trials", 0), st.one_of(WORD, st.integers(), st.lists(st.integers(), min_size=1))),
    (("trials", 1, "eps"), st.one_of(NEGATIVE, st.just(math.nan), BAD_FLOAT_TYPE)),
    (("trials", 1, "task"), UNKNOWN_NAME),
]


def _set(doc: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    """Set ``doc[path]``, creating mappings on the way. Where another mutation already
    replaced a parent by something else, nothing is set: that parent keeps the spec invalid."""
    node: Any = doc
    for part in path[:-1]:
        if isinstance(node, dict):
            node = node.setdefault(part, {})
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            return
    key = path[-1]
    if isinstance(node, dict) or (
        isinstance(node, list) and isinstance(key, int) and key < len(node)
    ):
        node[key] = value


# --------------------------------------------------------------------------- mutations

Draw = Callable[[st.SearchStrategy[Any]], Any]


def bad_value(doc: dict[str, Any], draw: Draw) -> str:
    # The head of a shuffle: every path is as likely (sampled_from favours the first ones).
    path, values = draw(st.permutations(BAD_VALUES))[0]
    value = draw(values)
    _set(doc, path, value)
    event(f"bad_value {'.'.join(map(str, path))}")
    return f"{'.'.join(map(str, path))} = {value!r}"


SECTIONS: list[tuple[Any, ...]] = [(), ("defaults",), ("search",), ("resources",), ("trials", 0)]


def unknown_key(doc: dict[str, Any], draw: Draw) -> str:
    section = draw(st.sampled_from(SECTIONS))
    key = draw(UNKNOWN_NAME)
    _set(doc, (*section, key), draw(st.integers()))
    return f"unknown key {key} in {section or 'top level'}"


def unknown_axis(doc: dict[str, Any], draw: Draw) -> str:
    key = draw(st.one_of(UNKNOWN_NAME, st.sampled_from(["hp", "seed", "variant", "data_dir"])))
    _set(doc, ("space", key), [1, 2])
    return f"unknown axis {key}"


def grid_range(doc: dict[str, Any], draw: Draw) -> str:
    axis = draw(st.sampled_from(["eps", "p", "lr"]))
    _set(doc, ("space", axis), {"low": 0.1, "high": 0.5})
    return f"range on the grid axis {axis}"


def reversed_range(doc: dict[str, Any], draw: Draw) -> str:
    low = draw(st.floats(min_value=0.2, max_value=1.0))
    _set(doc, ("space", "p"), {"low": low, "high": low / 2})
    _set(doc, ("search", "algorithm"), "tpe")
    return f"p range low={low} > high"


def no_task(doc: dict[str, Any], draw: Draw) -> str:
    trials = doc.get("trials")
    for entry in [doc.get("defaults"), *(trials if isinstance(trials, list) else [])]:
        if isinstance(entry, dict):
            entry.pop("task", None)
    return "no task anywhere"


def repeated_trial(doc: dict[str, Any], draw: Draw) -> str:
    trials = doc.get("trials")
    if isinstance(trials, list) and trials:
        trials.append(copy.deepcopy(trials[draw(st.integers(0, len(trials) - 1))]))
    else:
        doc["trials"] = [{"variant": "x"}, {"variant": "x"}]
    return "a trial listed twice"


def sampled_search_misuse(doc: dict[str, Any], draw: Draw) -> str:
    algorithm = draw(st.sampled_from(["tpe", "random"]))
    _set(doc, ("search", "algorithm"), algorithm)  # with trials and two seeds: both refused
    return f"{algorithm} search with explicit trials and two seeds"


def attack_for_a_method_without_targets(doc: dict[str, Any], draw: Draw) -> str:
    _set(doc, ("defaults", "method"), "standard")  # the base's attack sets stay
    return "attack targets for method standard"


MUTATIONS = [
    bad_value,  # four times: it has 38 paths to cover
    bad_value,
    bad_value,
    bad_value,
    unknown_key,
    unknown_axis,
    grid_range,
    reversed_range,
    no_task,
    repeated_trial,
    sampled_search_misuse,
    attack_for_a_method_without_targets,
]

# Lines that make the YAML invalid wherever they are inserted.
POISON_LINES = [
    "key: [unclosed",
    'quoted: "unterminated',
    "a: b: c",
    "\tindented: with a tab",
    "- a list item among mapping keys",
    "{",
    "]",
    "*undefined_alias",
    "!!python/object/apply:os.system ['true']",
    "%YAML 1.1",
]


@st.composite
def broken_texts(draw: Draw) -> tuple[str, str, str]:
    """(YAML text, kind of breakage, what exactly was broken)."""
    kind = draw(st.sampled_from(["mutate", "mutate", "mutate", "poison", "not-mapping", "text"]))
    if kind == "mutate":
        doc = copy.deepcopy(BASE)
        chosen = [draw(st.permutations(MUTATIONS))[0] for _ in range(draw(st.integers(1, 3)))]
        done = [mutate(doc, draw) for mutate in chosen]
        for mutate in chosen:
            event(mutate.__name__)
        return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), kind, "; ".join(done)
    if kind == "poison":
        lines = BASE_TEXT.splitlines()
        at = draw(st.integers(0, len(lines)))
        poison = draw(st.sampled_from(POISON_LINES))
        text = "\n".join([*lines[:at], poison, *lines[at:]]) + "\n"
        return text, kind, f"line {at}: {poison!r}"
    if kind == "not-mapping":
        value = draw(
            st.one_of(
                st.lists(st.integers(), max_size=3),
                st.text(max_size=30),
                st.integers(),
                st.floats(),
                st.none(),
                st.booleans(),
            )
        )
        return yaml.safe_dump(value), kind, f"document {value!r}"
    text = draw(st.text(st.characters(exclude_categories=("Cs",)), max_size=300))
    return text, kind, "random text"


def _write(folder: Path, text: str) -> Path:
    path = folder / "spec.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@FUZZ
@given(case=broken_texts())
def test_malformed_specs_raise_spec_error_naming_the_file(
    folder: Path, case: tuple[str, str, str]
) -> None:
    text, kind, what = case
    event(kind)
    path = _write(folder, text)
    try:
        spec = load_spec(path)
    except SpecError as e:
        assert _names_the_file(str(e), path), (what, str(e))
        assert str(e).strip() != f"{path}:"
    except Exception as e:  # anything else is a bug: show the input
        pytest.fail(f"{type(e).__name__} for ({what}):\n{text}\n{e!r}")
    else:
        pytest.fail(f"loaded a malformed spec ({what}):\n{text}\n-> {spec!r}")


@CLI_FUZZ
@given(case=broken_texts())
def test_cli_answers_malformed_specs_with_an_error_line(
    folder: Path, case: tuple[str, str, str]
) -> None:
    text, _, what = case
    path = _write(folder, text)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["sweep", str(path), "--dry-run"])
    message = err.getvalue()
    assert code == 2, (what, message)
    prefix = "dropattack sweep: error: "
    assert message.startswith(prefix), (what, message)
    assert _names_the_file(message.removeprefix(prefix), path), (what, message)
    assert "Traceback" not in message


# --------------------------------------------------------------------------- found bugs
# Inputs the fuzzing (and its probes) found that end in another exception, or load when they
# should not. Strict xfails: when sweeps/specs/spec.py handles one, its case passes and fails the
# run, so the case moves up into the generators.

# Inputs the fuzzer once found escaping as other errors (or silently accepted); fixed.
FOUND_BY_FUZZING = {
    "invalid UTF-8 (UnicodeDecodeError, no file named)": BASE_TEXT.encode() + b"# \xff\xfe\n",
    "deep nesting (RecursionError)": b"space: " + b"[" * 3000 + b"]" * 3000 + b"\n",
    "an integer of 5000 digits (ValueError of int(), no file named)": (
        BASE_TEXT.replace("epochs: 2", "epochs: " + "9" * 5000).encode()
    ),
    "variant placeholder with an attribute (AttributeError)": (
        BASE_TEXT.replace("variant: a", "variant: '{eps.real}'").encode()
    ),
    "integer range with an infinite bound (OverflowError)": yaml.safe_dump(
        {
            "name": "x",
            "defaults": {"task": "digits-lenet5"},
            "space": {"epochs": {"low": 1, "high": math.inf}},
            "search": {"algorithm": "tpe", "num_samples": 2},
        }
    ).encode(),
    "a key given twice (the first value is dropped silently)": (
        BASE_TEXT + "seeds: [5]\n"
    ).encode(),
    "a source key (the internal field: overwritten silently)": (BASE_TEXT + "source: x\n").encode(),
    "hp named model (loads; every trial then raises TypeError)": (
        BASE_TEXT.replace("epochs: 2", "epochs: 2\n  hp: {model: 1}").encode()
    ),
}


@pytest.mark.parametrize("data", list(FOUND_BY_FUZZING.values()), ids=list(FOUND_BY_FUZZING))
def test_inputs_found_by_fuzzing_give_a_spec_error(folder: Path, data: bytes) -> None:
    path = folder / "bug.yaml"
    path.write_bytes(data)
    with pytest.raises(SpecError, match=f"^{path}"):
        load_spec(path)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (("seeds:\n- 0\n- 1", "seeds: 100000000"), r"seeds: .*1\.\.1000"),
        (("epochs: 2", "epochs: 2\n  eps: .inf"), r"finite eps"),
        (("variant: a", "variant: '{eps[0]}'"), r"variant: cannot fill"),
    ],
)
def test_limits_found_while_fuzzing(folder: Path, change: tuple[str, str], match: str) -> None:
    assert change[0] in BASE_TEXT
    path = folder / "limit.yaml"
    path.write_text(BASE_TEXT.replace(*change))
    with pytest.raises(SpecError, match=match):
        load_spec(path)


def _names_the_file(message: str, path) -> bool:
    """One error as ``PATH: field: ...``, or several as ``N errors in PATH:`` and one such line
    each."""
    first, *rest = message.splitlines()
    if first.startswith(f"{path}:"):
        return True
    return (
        re.fullmatch(rf"\d+ errors in {re.escape(str(path))}:", first) is not None
        and len(rest) >= 2
        and all(line.startswith(f"{path}:") for line in rest)
    )
