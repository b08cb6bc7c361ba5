"""torch's ``*_like`` creation functions, and ``flatten``/``unflatten``/``unbind`` (views, as in
torch), written over the bound operators: reshape, view and indexing carry the autograd history."""

# ruff: noqa: A002 - `input` is torch's name for the argument

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, SupportsIndex

from . import _core


def _like(input: _core.Tensor, dtype: Any, device: Any) -> dict[str, Any]:
    return {
        "dtype": input.dtype if dtype is None else dtype,
        "device": input.device if device is None else device,
    }


def empty_like(
    input: _core.Tensor, *, dtype: Any = None, device: Any = None, requires_grad: bool = False
) -> _core.Tensor:
    return _core.empty(input.shape, **_like(input, dtype, device), requires_grad=requires_grad)


def zeros_like(
    input: _core.Tensor, *, dtype: Any = None, device: Any = None, requires_grad: bool = False
) -> _core.Tensor:
    return _core.zeros(input.shape, **_like(input, dtype, device), requires_grad=requires_grad)


def ones_like(
    input: _core.Tensor, *, dtype: Any = None, device: Any = None, requires_grad: bool = False
) -> _core.Tensor:
    return _core.ones(input.shape, **_like(input, dtype, device), requires_grad=requires_grad)


def full_like(
    input: _core.Tensor,
    fill_value: SupportsIndex | float,
    *,
    dtype: Any = None,
    device: Any = None,
    requires_grad: bool = False,
) -> _core.Tensor:
    return _core.full(input.shape, fill_value, **_like(input, dtype, device), requires_grad=requires_grad)


def rand_like(
    input: _core.Tensor, *, dtype: Any = None, device: Any = None, requires_grad: bool = False
) -> _core.Tensor:
    return _core.rand(input.shape, **_like(input, dtype, device), requires_grad=requires_grad)


def randn_like(
    input: _core.Tensor, *, dtype: Any = None, device: Any = None, requires_grad: bool = False
) -> _core.Tensor:
    return _core.randn(input.shape, **_like(input, dtype, device), requires_grad=requires_grad)


def randint_like(
    input: _core.Tensor,
    low: SupportsIndex,
    high: SupportsIndex | None = None,
    *,
    dtype: Any = None,
    device: Any = None,
    requires_grad: bool = False,
) -> _core.Tensor:
    """Integers in [low, high) in input's shape; randint_like(input, high) draws from [0, high)."""
    if high is None:
        low, high = 0, low
    result = _core.randint(low, high, input.shape, **_like(input, dtype, device))
    return result.requires_grad_() if requires_grad else result


def _wrap_dim(dim: SupportsIndex, ndim: int, name: str) -> int:
    value = dim.__index__()
    rank = max(ndim, 1)  # a 0-d tensor takes dims 0 and -1, as in torch
    if not -rank <= value < rank:
        raise IndexError(f"{name}: dimension {value} is out of range for a tensor of {ndim} dims")
    return value % rank


def flatten(input: _core.Tensor, start_dim: SupportsIndex = 0, end_dim: SupportsIndex = -1) -> _core.Tensor:
    """Dims start_dim..end_dim merged into one: a view where reshape can make one, as in torch."""
    start = _wrap_dim(start_dim, input.ndim, "flatten")
    end = _wrap_dim(end_dim, input.ndim, "flatten")
    if start > end:
        raise ValueError(
            f"flatten: start_dim {start_dim.__index__()} comes after end_dim {end_dim.__index__()}"
        )
    if input.ndim == 0:
        return input.reshape(1)
    if start == end:
        return input
    shape = input.shape
    return input.reshape(*shape[:start], math.prod(shape[start : end + 1]), *shape[end + 1 :])


def unflatten(input: _core.Tensor, dim: SupportsIndex, sizes: Sequence[SupportsIndex]) -> _core.Tensor:
    """Dim `dim` split into `sizes` (one may be -1): always a view."""
    if input.ndim == 0:
        raise IndexError("unflatten: a 0-d tensor has no dim to unflatten")
    d = _wrap_dim(dim, input.ndim, "unflatten")
    split = [s.__index__() for s in sizes]
    if not split:
        raise ValueError("unflatten: sizes must be non-empty")
    size = input.shape[d]
    known = math.prod(s for s in split if s != -1)
    if (
        split.count(-1) > 1
        or (-1 not in split and known != size)
        or (-1 in split and (known == 0 or size % known))
    ):
        raise ValueError(f"unflatten: sizes {split} don't multiply up to the size of dim {d} ({size})")
    if -1 in split:
        split[split.index(-1)] = size // known
    return input.view(*input.shape[:d], *split, *input.shape[d + 1 :])


def unbind(input: _core.Tensor, dim: SupportsIndex = 0) -> tuple[_core.Tensor, ...]:
    """The slices along dim, with dim removed: views of input, differentiable."""
    if input.ndim == 0:
        raise IndexError("unbind: a 0-d tensor has no dim to unbind")
    d = _wrap_dim(dim, input.ndim, "unbind")
    lead = (slice(None),) * d
    return tuple(input[(*lead, i)] for i in range(input.shape[d]))


def install(cls: type) -> None:
    for function in (flatten, unflatten, unbind):
        setattr(cls, function.__name__, function)
