"""How a hidden test's recorded value travels from the kernel to the grader, and how the grader
reads it back.

Inside the kernel, ``grader_record(key, value, **options)`` (defined by :data:`RECORDER_SOURCE`,
the first cell the grader runs) publishes the value as a Jupyter ``display_data`` message of its
own MIME type on the kernel's IOPub channel. Nothing is written to a file the kernel could
rewrite later: the trusted driver (:mod:`autograder.kernel`) receives the message while the test
cell runs, and counts it for that cell only (see there).

The message is untrusted input: :func:`decode_record` checks its type, structure, dtype, shape
and declared size against the bytes actually sent before any array is built, and returns a
plain NumPy value (an array, a list of arrays, or a dict of arrays) or a reason.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from dataclasses import dataclass

import numpy as np

MIME_TYPE = "application/vnd.cvcourse.record+json"
KEY_PATTERN = re.compile(r"[A-Za-z0-9_.\-/]{1,200}")
# Plain numbers only, little-endian; an object, a string or a structured dtype cannot travel.
DTYPES = {name: np.dtype(name).newbyteorder("<") for name in (
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64")}
MAX_ITEMS = 4096  # arrays in one list or dict (a Keras model has a few dozen)
MAX_NDIM = 8
MAX_OPTIONS = 32

RECORDER_SOURCE = r'''
def grader_record(key, value, **options):
    """Send a hidden test's value to the grader: a number, a numeric array, a list or tuple of
    numeric arrays, or a dict of them. Plain numbers only, never objects."""
    import base64 as _base64, re as _re
    import numpy as _np
    from IPython.display import publish_display_data as _publish
    if not isinstance(key, str) or not _re.fullmatch(r"[A-Za-z0-9_.\-/]{1,200}", key):
        raise ValueError(f"grader_record: bad key {key!r}")

    def _encode(name, item):
        array = _np.asarray(item)
        if array.dtype.kind not in "biuf":
            raise TypeError(f"grader_record: the value for {key} is not numeric (dtype {array.dtype})")
        array = _np.array(array, dtype=array.dtype.newbyteorder("<"), order="C")  # keeps 0-d arrays 0-d
        return {"name": name, "dtype": array.dtype.name, "shape": list(array.shape),
                "data": _base64.b64encode(array.tobytes()).decode("ascii")}

    if isinstance(value, dict):
        kind, items = "dict", [_encode(str(name), item) for name, item in value.items()]
    elif isinstance(value, (list, tuple)) and value and all(isinstance(v, _np.ndarray) for v in value):
        kind, items = "list", [_encode(None, item) for item in value]
    else:
        kind, items = "array", [_encode(None, value)]
    options = {k: v for k, v in options.items() if isinstance(v, (str, int, float, bool))}
    _publish({"__MIME__": {"key": key, "kind": kind, "items": items, "options": options}}, metadata={})
'''.replace("__MIME__", MIME_TYPE)

Value = "np.ndarray | list[np.ndarray] | dict[str, np.ndarray]"


@dataclass(frozen=True)
class Record:
    """One decoded record: its key, value, byte size and (trusted only for the solution) options."""

    key: str
    value: object  # np.ndarray, list of np.ndarray, or dict of str -> np.ndarray
    nbytes: int
    options: dict


class BadRecord(ValueError):
    """The message does not hold a valid record; the message says which rule it broke."""


def _decode_array(item: object, budget: int) -> np.ndarray:
    if not isinstance(item, dict):
        raise BadRecord("an item is not an object")
    dtype = DTYPES.get(item.get("dtype")) if isinstance(item.get("dtype"), str) else None
    if dtype is None:
        raise BadRecord(f"dtype {str(item.get('dtype'))[:40]!r} is not a plain number type")
    shape = item.get("shape")
    if (not isinstance(shape, list) or len(shape) > MAX_NDIM
            or not all(type(n) is int and 0 <= n <= 2**40 for n in shape)):
        raise BadRecord("the shape is not a short list of sizes")
    declared = math.prod(shape) * dtype.itemsize
    data = item.get("data")
    if not isinstance(data, str):
        raise BadRecord("no data")
    # Compare the declared size with what was sent before decoding anything.
    if declared > budget or len(data) > 4 * (budget // 3 + 1):
        raise BadRecord(f"{declared} bytes, over the records limit")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as error:
        raise BadRecord("the data is not base64") from error
    if len(raw) != declared:
        raise BadRecord(f"shape {tuple(shape)} of {dtype.name} needs {declared} bytes, {len(raw)} were sent")
    return np.frombuffer(raw, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def decode_record(content: object, budget: int) -> Record:
    """The record in a ``display_data`` message's MIME bundle entry, using at most ``budget``
    bytes; raises :class:`BadRecord` for anything else."""
    if not isinstance(content, dict):
        raise BadRecord("not an object")
    key = content.get("key")
    if not isinstance(key, str) or not KEY_PATTERN.fullmatch(key):
        raise BadRecord("bad key")
    kind, items = content.get("kind"), content.get("items")
    if kind not in ("array", "list", "dict") or not isinstance(items, list) or not items:
        raise BadRecord(f"{key}: bad kind or no items")
    if len(items) > MAX_ITEMS or (kind == "array" and len(items) != 1):
        raise BadRecord(f"{key}: {len(items)} items")
    arrays, used = [], 0
    for item in items:
        array = _decode_array(item, budget - used)
        used += array.nbytes
        arrays.append(array)
    if kind == "array":
        value: object = arrays[0]
    elif kind == "list":
        value = arrays
    else:
        names = [item.get("name") for item in items]
        if not all(isinstance(n, str) and 0 < len(n) <= 100 for n in names) or len(set(names)) != len(names):
            raise BadRecord(f"{key}: the dict's names are not distinct short strings")
        value = dict(zip(names, arrays))
    options = content.get("options", {})
    if not isinstance(options, dict) or len(options) > MAX_OPTIONS:
        options = {}
    options = {str(k)[:64]: v for k, v in options.items()
               if isinstance(v, (str, int, float, bool)) and not (isinstance(v, str) and len(v) > 200)}
    return Record(key, value, used, options)


def value_arrays(value: object) -> list[tuple[str, np.ndarray]]:
    """The arrays of a value with a label each: ``[("", a)]``, ``[("[0]", a), ...]`` or ``[("[W]", a), ...]``."""
    if isinstance(value, np.ndarray):
        return [("", value)]
    if isinstance(value, list):
        return [(f"[{i}]", a) for i, a in enumerate(value)]
    return [(f"[{name}]", a) for name, a in value.items()]


def describe(value: object) -> str:
    """A short, fixed-format description of a value's structure, for reasons shown to instructors."""
    if isinstance(value, np.ndarray):
        return f"array of shape {value.shape}"
    if isinstance(value, list):
        return f"list of {len(value)} arrays"
    return f"dict with {sorted(value)}"
