"""Read a CIFAR-10 pickle batch into plain Python values and numpy arrays, and nothing else.

The data folder is shared and replayed by ``landscape`` and ``confirm``, so a planted batch
must neither run code nor reach numpy's unpickling internals (``numpy.dtype.__setstate__``
accepts states that crash the process or turn object dtypes back on). :func:`load_batch`
uses Python's own pure-Python unpickler with every global replaced by an inert record: the
names numpy's pickles use (``numpy.dtype``, ``numpy.ndarray``, ``_reconstruct``,
``_frombuffer``, ``scalar``, ``_codecs.encode``) become records, BUILD is allowed only on
an array or dtype record, and no numpy object exists until the load has ended. Each array
is then made by ``numpy.frombuffer`` from its raw bytes, with a dtype from :data:`DTYPES`
(a fixed list of strings: integers, floats, booleans; no object, void or structured dtype).
Anything else is refused with :class:`pickle.UnpicklingError`.
"""

from __future__ import annotations

import io
import math
import pickle
from typing import Any

import numpy as np

__all__ = ["DTYPES", "load_batch"]

#: The dtypes an array may have (numpy's type codes; byte order from the pickle).
DTYPES = frozenset({"b1", "u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8", "f2", "f4", "f8"})
_ORDERS = frozenset({"<", ">", "|", "="})
_CORES = ("numpy.core", "numpy._core")


class _DType:
    """``numpy.dtype(code, align, copy)`` and its BUILD state, checked, not yet made."""

    def __init__(self, code: Any, *_flags: Any) -> None:
        if isinstance(code, bytes):
            code = code.decode("latin1")
        if not isinstance(code, str) or code.lstrip("<>|=") not in DTYPES:
            raise pickle.UnpicklingError(
                f"dtype {code!r} is not allowed; an array may have only {sorted(DTYPES)}"
            )
        self.code = code.lstrip("<>|=")
        self.order = code[0] if code[0] in _ORDERS else "|"

    def build(self, state: Any) -> None:
        # numpy's dtype state: (version, byte order, subarray, names, fields, size, align, flags)
        if not isinstance(state, tuple) or len(state) < 5 or not isinstance(state[1], str):
            raise pickle.UnpicklingError("a dtype's state is not a plain dtype's")
        if state[1] not in _ORDERS or any(part is not None for part in state[2:5]):
            raise pickle.UnpicklingError(
                "a dtype with fields or a subarray is not allowed (only plain number dtypes)"
            )
        self.order = state[1]

    def make(self) -> np.dtype:
        order = "|" if self.code in ("b1", "u1", "i1") else self.order
        return np.dtype(("" if order == "|" else order) + self.code)


class _Array:
    """An array from ``_reconstruct`` plus BUILD, or from ``_frombuffer``: bytes, a dtype
    record, a shape; made only at the end."""

    def __init__(self) -> None:
        self.state: tuple | None = None
        self.made: np.ndarray | None = None

    def build(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) != 5:
            raise pickle.UnpicklingError("an array's state is not (version, shape, dtype, ...)")
        self.state = state

    def make(self) -> np.ndarray:
        if self.made is None:
            if self.state is None:
                raise pickle.UnpicklingError("an array without its data")
            _, shape, dtype, fortran, raw = self.state
            self.made = _array(raw, dtype, shape, "F" if fortran else "C")
        return self.made


class _Scalar:
    """``numpy...scalar(dtype, bytes)``: one value."""

    def __init__(self, dtype: Any, raw: Any = b"") -> None:
        self.dtype, self.raw = dtype, raw

    def make(self) -> np.generic:
        return _array(self.raw, self.dtype, (), "C")[()]


def _array(raw: Any, dtype: Any, shape: Any, order: str) -> np.ndarray:
    if isinstance(raw, pickle.PickleBuffer):
        raw = bytes(raw)
    elif isinstance(raw, str):  # a Python 2 str, as the official release holds its pixels
        raw = raw.encode("latin1")
    if not isinstance(raw, bytes):
        raise pickle.UnpicklingError("an array's data is not raw bytes (object arrays refused)")
    if not isinstance(dtype, _DType):
        raise pickle.UnpicklingError("an array's dtype is not a plain dtype")
    if not isinstance(shape, tuple) or not all(type(n) is int and n >= 0 for n in shape):
        raise pickle.UnpicklingError(f"an array's shape {shape!r} is not a tuple of sizes")
    made = dtype.make()
    if len(raw) != math.prod(shape) * made.itemsize:
        raise pickle.UnpicklingError(
            f"an array of shape {shape} and dtype {made} needs "
            f"{math.prod(shape) * made.itemsize} bytes, got {len(raw)}"
        )
    return np.frombuffer(raw, dtype=made).reshape(shape, order=order).copy()


def _reconstruct(cls: Any, shape: Any, code: Any) -> _Array:
    if cls is not _NDARRAY:
        raise pickle.UnpicklingError("_reconstruct of something other than numpy.ndarray")
    return _Array()


def _frombuffer(raw: Any, dtype: Any, shape: Any, order: Any) -> _Array:
    array = _Array()
    array.state = (1, shape, dtype, order == "F", raw)
    return array


def _latin1_bytes(text: Any, encoding: Any = "utf-8") -> bytes:
    """``_codecs.encode`` as Python 3's protocol-2 pickles use it for bytes, latin-1 only."""
    if encoding != "latin1" or not isinstance(text, str):
        raise pickle.UnpicklingError(f"_codecs.encode with {encoding!r} is not allowed")
    return text.encode("latin1")


_NDARRAY = object()  # what the name numpy.ndarray stands for: only _reconstruct takes it
_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _DType,
    ("_codecs", "encode"): _latin1_bytes,
    **{(f"{core}.multiarray", "_reconstruct"): _reconstruct for core in _CORES},
    **{(f"{core}.multiarray", "scalar"): _Scalar for core in _CORES},
    **{(f"{core}.numeric", "_frombuffer"): _frombuffer for core in _CORES},
}


class _Unpickler(pickle._Unpickler):  # the pure-Python one: its BUILD can be replaced
    dispatch = dict(pickle._Unpickler.dispatch)

    def find_class(self, module: str, name: str) -> Any:
        found = _GLOBALS.get((module, name))
        if found is None:
            raise pickle.UnpicklingError(
                f"refused global {module}.{name}: a CIFAR-10 batch holds only dicts, lists, "
                "strings, numbers and numpy arrays, and other globals can run code when loaded"
            )
        return found

    def load_build(self) -> None:
        state = self.stack.pop()
        target = self.stack[-1]
        if not isinstance(target, _DType | _Array):
            raise pickle.UnpicklingError(
                f"BUILD on {type(target).__name__}: only arrays and dtypes are built"
            )
        target.build(state)

    dispatch[pickle.BUILD[0]] = load_build

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are not allowed")


def _plain(value: Any, depth: int = 0) -> Any:
    if depth > 50:
        raise pickle.UnpicklingError("nested deeper than a CIFAR-10 batch is")
    if isinstance(value, _Array | _Scalar):
        return value.make()
    if isinstance(value, _DType):
        raise pickle.UnpicklingError("a bare dtype where a value was expected")
    if value is _NDARRAY or callable(value):
        raise pickle.UnpicklingError("a global where a value was expected")
    if isinstance(value, dict):
        return {_plain(k, depth + 1): _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v, depth + 1) for v in value]
    if isinstance(value, tuple):
        return tuple(_plain(v, depth + 1) for v in value)
    return value


def load_batch(data: bytes) -> Any:
    """The pickle ``data`` as dicts, lists, tuples, strings, numbers and numpy arrays.

    Raises:
        pickle.UnpicklingError: a global, BUILD, dtype or array shape that is not allowed
            (and the usual unpickling errors for a broken file).
    """
    return _plain(_Unpickler(io.BytesIO(data), encoding="latin1").load())
