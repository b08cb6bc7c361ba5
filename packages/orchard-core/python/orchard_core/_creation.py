"""``orchard_core.tensor``: a copy of Python data, with torch's dtype inference."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _core

_NUMPY_KEEPS = {"float16", "float32", "float64", "int32", "int64", "bool"}


def _inferred_dtype(data: Any, array: np.ndarray) -> _core.dtype:
    kind, name = array.dtype.kind, array.dtype.name
    if kind == "b":
        return _core.bool
    if kind in "iu":
        return _core.dtype.__members__[name] if name in _NUMPY_KEEPS else _core.int64
    if kind == "f":
        # Python floats default to float32 as in torch; numpy data keeps its precision.
        if isinstance(data, np.ndarray | np.generic) and name in _NUMPY_KEEPS:
            return _core.dtype.__members__[name]
        return _core.float32
    raise TypeError(f"tensor() cannot hold data of numpy dtype {array.dtype} (from {type(data).__name__})")


_INT64_MAX = 2**63 - 1


def _reject_object_elements(data: Any, array: np.ndarray) -> None:
    """Raises for data numpy could only hold as objects, naming the element at fault."""
    for item in array.flat:
        if isinstance(item, int) and not -(2**63) <= item <= _INT64_MAX:
            raise ValueError(f"tensor(): integer {item} does not fit in int64")
    raise TypeError(f"tensor() cannot convert {type(data).__name__} data with non-numeric elements")


def _check_fits(staged: _core.Tensor, target: _core.dtype) -> None:
    """Raises ValueError naming a value the cast to an integer dtype would wrap (torch raises too)."""
    if target not in (_core.int32, _core.int64) or staged.dtype == target or staged.numel() == 0:
        return
    values = staged.numpy()
    info = np.iinfo(target.name)
    if values.dtype.kind == "f":
        # Floats truncate toward zero; 2**(bits - 1) is exact in float64, int64's max is not.
        with np.errstate(invalid="ignore"):
            limit = 2.0 ** (info.bits - 1)
            bad = ~np.isfinite(values) | (values >= limit) | (np.trunc(values) < -limit)
    else:
        bad = (values < info.min) | (values > info.max)
    if bad.any():
        raise ValueError(
            f"tensor(): value {values[bad].flat[0]} cannot be converted to {target.name} without overflow"
        )


def tensor(data: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> _core.Tensor:
    """A new tensor holding a copy of ``data`` (nested sequences, numbers, arrays, tensors).

    Without ``dtype``: bools give bool, integers int64, Python floats float32
    (numpy arrays keep their dtype), as in ``torch.tensor``. The result is a leaf of the
    autograd graph; ``requires_grad=True`` makes it record operations.
    """
    if isinstance(data, _core.Tensor):
        result = data.detach().clone()
    else:
        try:
            array = np.asarray(data)
        except ValueError as error:
            raise ValueError(f"tensor() needs rectangular data: {error}") from None
        if array.dtype == object:
            _reject_object_elements(data, array)
        if array.dtype.kind == "u" and array.size and array.max() > _INT64_MAX:
            raise ValueError(
                f"tensor(): value {array.max()} of numpy dtype {array.dtype} does not fit in int64"
            )
        inferred = _inferred_dtype(data, array)
        # Stage in the data's own precision (Python floats are float64) and cast once to the
        # target, so tensor([0.1], dtype=float64) is not rounded through float32 first.
        if array.dtype.name in _NUMPY_KEEPS:
            staging = array.dtype.name
        else:
            staging = inferred.name if inferred.name in _NUMPY_KEEPS else "float32"
        staged = _core.from_numpy(np.array(array, dtype=staging, order="C", copy=True))
        target = inferred if dtype is None else _core.dtype(dtype)
        _check_fits(staged, target)
        result = staged.to(target)
    if dtype is not None:
        result = result.to(dtype)
    if device is not None:
        result = result.to(device)
    if requires_grad:
        result.requires_grad_()
    return result
