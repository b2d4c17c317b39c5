"""Arrow arrays from Python lists without pyarrow's pandas-aware conversion (issue 13, process start).

`pa.array(list, type)` (and `pa.table`, `RecordBatch.from_arrays`/`from_pylist` given lists) first asks pyarrow's
pandas shim whether the object is a pandas Series, which imports pandas when it is installed (it is, through
`datasets`/`evaluate`): 0.2-0.3 CPU-s in every stage process that writes a shard. `column_array` builds the same
array from buffers (NumPy for offsets, validity and values; children built recursively), for the types the stage
schemas use: strings (and large strings), integers, floats, bools, lists and structs of those. Anything else, and any
value the fast path does not take exactly as pyarrow would (a non-str in a string column, a lone surrogate, a float
in an int column, a tuple for a struct, ...), goes to `pa.array`, so the result, or the error, is pyarrow's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import repeat
from operator import is_not
from typing import Any

import numpy as np
import pyarrow as pa

_NONE = type(None)
_INT_TYPES = {int, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32}
_FLOAT_VALUE_TYPES = {float, np.float64, np.float32, np.float16}
# Integers a float column takes from Python ints: pyarrow refuses an int it cannot hold exactly (2**53 for a double,
# 2**24 for a float); those go to pa.array, which raises its own error.
_EXACT_INT_LIMIT = {pa.float64(): 2**53, pa.float32(): 2**24}
_INT_RANGES = {
    pa.int8(): (-(2**7), 2**7 - 1),
    pa.int16(): (-(2**15), 2**15 - 1),
    pa.int32(): (-(2**31), 2**31 - 1),
    pa.int64(): (-(2**63), 2**63 - 1),
}
_NUMPY_DTYPES = {
    pa.int8(): np.int8,
    pa.int16(): np.int16,
    pa.int32(): np.int32,
    pa.int64(): np.int64,
    pa.float32(): np.float32,
    pa.float64(): np.float64,
}


def column_array(values: Sequence[Any], arrow_type: pa.DataType, name: str = "") -> pa.Array:
    """`pa.array(values, arrow_type)` without importing pandas, for a list of Python values; `name` (the column) is named
    in the error of an integer out of its type's range."""
    values = values if isinstance(values, list) else list(values)
    built = _build(values, arrow_type, name)
    if built is None:
        # a type or a value the buffer path does not take exactly as pyarrow does: pyarrow's own conversion (this is
        # the only path that may import pandas)
        return pa.array(values, arrow_type)
    return built


def _validity(values: list) -> tuple[pa.Buffer | None, int]:
    """The validity bitmap (None when every value is set) and the null count."""
    if None not in values:
        return None, 0
    valid = np.fromiter(map(is_not, values, repeat(None)), dtype=bool, count=len(values))
    return pa.py_buffer(np.packbits(valid, bitorder="little")), len(values) - int(np.count_nonzero(valid))


def _build(values: list, arrow_type: pa.DataType, name: str) -> pa.Array | None:
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return _strings(values, arrow_type)
    if arrow_type in _INT_RANGES:
        return _integers(values, arrow_type, name)
    if arrow_type in _EXACT_INT_LIMIT:
        return _floats(values, arrow_type)
    if pa.types.is_boolean(arrow_type):
        return _booleans(values)
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        return _lists(values, arrow_type, name)
    if pa.types.is_struct(arrow_type):
        return _structs(values, arrow_type, name)
    return None


def _strings(values: list, arrow_type: pa.DataType) -> pa.Array | None:
    try:
        # a flag of each str, no scan; every value is looked at (no short cut), so one that is not a str (None
        # included) raises the TypeError
        ascii_only = sum(map(str.isascii, values)) == len(values)
        validity, nulls = None, 0
        texts = values
    except TypeError:
        if not set(map(type, values)) <= {str, _NONE}:
            return None  # bytes (which pyarrow takes), str subclasses, anything else: pyarrow's rules
        validity, nulls = _validity(values)
        texts = [v if v is not None else "" for v in values]
        ascii_only = all(map(str.isascii, texts))
    if ascii_only:  # a character is a byte: one encode in all
        data = "".join(texts).encode("ascii")
        lengths = map(len, texts)
    else:
        # one encode per string, as pyarrow does (one encode of the whole column, then a map from code points to
        # bytes over it, was slower than pyarrow on 50 MB of Chinese text: bench/bench_writer_columns.py)
        try:
            encoded = [text.encode("utf-8") for text in texts]
        except UnicodeEncodeError:
            return None  # a lone surrogate: pyarrow's own error
        data = b"".join(encoded)
        lengths = map(len, encoded)
    offset_type = np.int64 if pa.types.is_large_string(arrow_type) else np.int32
    if len(data) > np.iinfo(offset_type).max:
        return None  # pyarrow splits it into chunks
    offsets = np.zeros(len(texts) + 1, dtype=offset_type)
    offsets[1:] = np.fromiter(lengths, dtype=np.int64, count=len(texts)).cumsum()
    return pa.Array.from_buffers(arrow_type, len(values), [validity, pa.py_buffer(offsets), pa.py_buffer(data)], nulls)


def _numbers(values: list, nulls: int, dtype) -> np.ndarray:
    present = [v if v is not None else 0 for v in values] if nulls else values
    return np.array(present, dtype=dtype)


def _integers(values: list, arrow_type: pa.DataType, name: str) -> pa.Array | None:
    if not set(map(type, values)) <= _INT_TYPES | {_NONE}:
        return None  # bools, floats, strings, numpy uint64: pyarrow's rules
    validity, nulls = _validity(values)
    present = [v for v in values if v is not None] if nulls else values
    low, high = _INT_RANGES[arrow_type]
    if present and (min(present) < low or max(present) > high):
        bad = next(v for v in present if v < low or v > high)
        raise pa.ArrowInvalid(f"column {name!r}: integer {bad} is out of the range of {arrow_type} [{low}, {high}]")
    data = _numbers(values, nulls, _NUMPY_DTYPES[arrow_type])
    return pa.Array.from_buffers(arrow_type, len(values), [validity, pa.py_buffer(data)], nulls)


def _floats(values: list, arrow_type: pa.DataType) -> pa.Array | None:
    kinds = set(map(type, values))
    if not kinds <= _FLOAT_VALUE_TYPES | _INT_TYPES | {_NONE}:
        return None
    if kinds & _INT_TYPES:
        limit = _EXACT_INT_LIMIT[arrow_type]
        if any(abs(v) > limit for v in values if type(v) in _INT_TYPES):
            return None
    validity, nulls = _validity(values)
    # via float64, which holds a Python float and every accepted int exactly; the cast to float32 rounds to nearest,
    # as pyarrow's C cast of a double does (NaN stays a NaN value, not a null, as in pa.array)
    with np.errstate(over="ignore"):  # a double beyond float32's range is an infinity, as in pyarrow's cast
        data = _numbers(values, nulls, np.float64).astype(_NUMPY_DTYPES[arrow_type], copy=False)
    return pa.Array.from_buffers(arrow_type, len(values), [validity, pa.py_buffer(data)], nulls)


def _booleans(values: list) -> pa.Array | None:
    if not set(map(type, values)) <= {bool, np.bool_, _NONE}:
        return None
    validity, nulls = _validity(values)
    bits = np.packbits(_numbers(values, nulls, bool), bitorder="little")
    return pa.Array.from_buffers(pa.bool_(), len(values), [validity, pa.py_buffer(bits)], nulls)


def _lists(values: list, arrow_type: pa.DataType, name: str) -> pa.Array | None:
    if not set(map(type, values)) <= {list, _NONE}:
        return None  # tuples, arrays, strings: pyarrow's rules
    validity, nulls = _validity(values)
    items = [x for v in values if v is not None for x in v]
    child = _build(items, arrow_type.value_type, name)
    if child is None:
        return None
    offset_type = np.int64 if pa.types.is_large_list(arrow_type) else np.int32
    if len(items) > np.iinfo(offset_type).max:
        return None
    offsets = np.zeros(len(values) + 1, dtype=offset_type)
    offsets[1:] = np.fromiter((len(v) if v is not None else 0 for v in values), np.int64, len(values)).cumsum()
    return pa.Array.from_buffers(arrow_type, len(values), [validity, pa.py_buffer(offsets)], nulls, children=[child])


def _structs(values: list, arrow_type: pa.DataType, name: str) -> pa.Array | None:
    if not set(map(type, values)) <= {dict, _NONE}:
        return None  # tuples and mappings other than dict: pyarrow's rules
    validity, nulls = _validity(values)
    children = []
    for i in range(arrow_type.num_fields):
        field = arrow_type.field(i)
        # pyarrow looks each field up by name: a missing key, or a null struct, is a null child value; other keys
        # are ignored
        child = _build([v.get(field.name) if v is not None else None for v in values], field.type, name)
        if child is None:
            return None
        children.append(child)
    return pa.Array.from_buffers(arrow_type, len(values), [validity], nulls, children=children)


# NumPy dtypes that map one to one onto an Arrow fixed-width type (what `pa.array(ndarray)` infers for them).
_FROM_NUMPY = {np.dtype(t): pa.from_numpy_dtype(t) for t in (np.int8, np.int16, np.int32, np.int64, np.uint8)}
_FROM_NUMPY.update({np.dtype(t): pa.from_numpy_dtype(t) for t in (np.uint16, np.uint32, np.uint64)})
_FROM_NUMPY.update({np.dtype(t): pa.from_numpy_dtype(t) for t in (np.float16, np.float32, np.float64)})


def numpy_array(values: np.ndarray, arrow_type: pa.DataType | None = None) -> pa.Array:
    """`pa.array(values, arrow_type)` for a 1-D NumPy array of numbers or bools, without importing pandas (no
    nulls: `pa.array` makes none from a NumPy array either, NaN included). Another dtype, or a `arrow_type` other than
    the dtype's own, goes to `pa.array`."""
    if values.ndim == 1 and values.dtype == np.bool_ and arrow_type in (None, pa.bool_()):
        bits = np.packbits(values, bitorder="little")
        return pa.Array.from_buffers(pa.bool_(), len(values), [None, pa.py_buffer(bits)], 0)
    own = _FROM_NUMPY.get(values.dtype)
    if values.ndim != 1 or own is None or arrow_type not in (None, own):
        return pa.array(values, arrow_type)  # a cast or an unusual dtype: pyarrow's own conversion
    data = np.ascontiguousarray(values)
    return pa.Array.from_buffers(own, len(values), [None, pa.py_buffer(data)], 0)


def to_numpy(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """`array.to_numpy(zero_copy_only=False)` without importing pandas (pyarrow's `to_numpy` asks its pandas shim
    too): numbers and bools without nulls as their NumPy dtype, strings as an object array of str; anything else
    goes to pyarrow's own `to_numpy`."""
    chunks = array.chunks if isinstance(array, pa.ChunkedArray) else [array]
    arrow_type = array.type
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        out = np.empty(len(array), dtype=object)
        out[:] = array.to_pylist()
        return out
    dtype = next((d for d, t in _FROM_NUMPY.items() if t == arrow_type), None)
    if array.null_count or (dtype is None and not pa.types.is_boolean(arrow_type)):
        return array.to_numpy(zero_copy_only=False)
    parts = []
    for chunk in chunks:
        data = chunk.buffers()[1]
        if pa.types.is_boolean(arrow_type):
            bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8), bitorder="little")
            parts.append(bits[chunk.offset : chunk.offset + len(chunk)].astype(bool))
        else:
            parts.append(np.frombuffer(data, dtype=dtype)[chunk.offset : chunk.offset + len(chunk)])
    if not parts:
        return np.empty(0, dtype=bool if dtype is None else dtype)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)
