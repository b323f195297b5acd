"""The raw NumPy arrays ``joblib.dump`` writes inside its pickle stream, sized exactly so they can be skipped.

joblib pickles each array as a ``NumpyArrayWrapper`` (subclass, shape, order, dtype, alignment) and, right
after that object's BUILD, writes the array's bytes into the same stream: a padding-length byte and
padding when ``numpy_array_alignment_bytes`` is set, then ``itemsize × prod(shape)`` bytes — or, for an
array of Python objects, a whole protocol-5 pickle, which must be analysed like any other.
(joblib/numpy_pickle.py, ``NumpyArrayWrapper.write_array`` / ``read_array``.)
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

_NPY_ITEM_REFCOUNT = 0x01  # dtype flag: the items are Python object references
_DIGITS = re.compile(r"[A-Za-z]+(\d+)")


@dataclass(frozen=True)
class ArrayLayout:
    """What follows a wrapper in the stream: ``padding`` is whether a padding-length byte comes first."""

    nbytes: int
    has_objects: bool
    padding: bool


def array_layout(wrapper_state: Any, dtype_args: Any, dtype_state: Any) -> ArrayLayout:
    """Read a wrapper's state (and its ``numpy.dtype`` call's arguments and state); raise if anything is off."""
    if not isinstance(wrapper_state, dict):
        raise ValueError("joblib array wrapper without a state dict")
    shape = wrapper_state.get("shape")
    if not (isinstance(shape, tuple) and all(type(n) is int and n >= 0 for n in shape)):
        raise ValueError(f"joblib array wrapper with an unreadable shape {shape!r}")
    if not (isinstance(dtype_args, tuple) and dtype_args and isinstance(dtype_args[0], str)):
        raise ValueError("joblib array wrapper with an unreadable dtype")
    if not (isinstance(dtype_state, tuple) and len(dtype_state) >= 8 and type(dtype_state[7]) is int):
        raise ValueError(f"joblib array dtype {dtype_args[0]!r} with an unreadable state")
    has_objects = bool(dtype_state[7] & _NPY_ITEM_REFCOUNT) or dtype_args[0].startswith("O")
    elsize = dtype_state[5]
    if type(elsize) is int and elsize > 0:
        itemsize = elsize
    elif match := _DIGITS.fullmatch(dtype_args[0]):
        itemsize = int(match.group(1))
    elif has_objects:
        itemsize = 8
    else:
        raise ValueError(f"joblib array dtype {dtype_args[0]!r} has no item size")
    alignment = wrapper_state.get("numpy_array_alignment_bytes")
    return ArrayLayout(itemsize * math.prod(shape), has_objects, alignment is not None and not has_objects)
