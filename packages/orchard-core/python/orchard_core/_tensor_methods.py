"""Methods written in Python: printing, and conversion to Python lists and numpy."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from . import _core


def _host_array(t: _core.Tensor) -> np.ndarray:
    """A numpy view (or copy, off the CPU or for bfloat16) of the tensor's values."""
    if t.dtype == _core.bfloat16:
        t = t.to(_core.float32)
    return t.to("cpu").detach().numpy()


_PRINT_THRESHOLD, _PRINT_EDGE = 1000, 3  # numpy's defaults: summarise beyond 1000 elements


def _printed_values(t: _core.Tensor, dim: int = 0) -> np.ndarray:
    """What a summarised print shows, so a huge (or expanded) tensor is never converted whole.

    Each long dim keeps its first and last _PRINT_EDGE entries and one stand-in between them,
    which numpy's summary elides again: the text is numpy's for the whole tensor.
    """
    if dim == t.ndim:
        return _host_array(t)
    size = t.shape[dim]
    if size <= 2 * _PRINT_EDGE:
        return _printed_values(t, dim + 1)
    before = (slice(None),) * dim
    head = t[(*before, slice(0, _PRINT_EDGE + 1))]
    tail = t[(*before, slice(size - _PRINT_EDGE, size))]
    return np.concatenate([_printed_values(head, dim + 1), _printed_values(tail, dim + 1)], axis=dim)


def _repr(t: _core.Tensor) -> str:
    summarised = t.numel() > _PRINT_THRESHOLD
    values = _printed_values(t.detach()) if summarised else _host_array(t)
    body = np.array2string(
        values,
        separator=", ",
        prefix="tensor(",
        threshold=0 if summarised else _PRINT_THRESHOLD,
        edgeitems=_PRINT_EDGE,
    )
    extras = []
    if t.dtype not in (_core.float32, _core.int64, _core.bool):
        extras.append(f"dtype={t.dtype!r}")
    if t.device != "cpu":
        extras.append(f"device='{t.device}'")
    if t.numel() == 0:
        extras.append(f"size={t.shape}")
    if t.grad_fn is not None:
        extras.append(f"grad_fn={t.grad_fn!r}")
    elif t.requires_grad:
        extras.append("requires_grad=True")
    return "tensor(" + ", ".join([body, *extras]) + ")"


def _tolist(t: _core.Tensor) -> Any:
    return _host_array(t).tolist()


def _array(t: _core.Tensor, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
    zero_copy = t.device == "cpu" and t.dtype != _core.bfloat16
    if copy is False and not zero_copy:
        raise ValueError(f"a {t.dtype!r} tensor on '{t.device}' cannot become a numpy array without a copy")
    array = _host_array(t)
    if dtype is not None:
        array = array.astype(dtype, copy=False)
    return array.copy() if copy else array


def _dtype_repr(d: _core.dtype) -> str:
    return f"orchard_core.{d.name}"


def _iter(t: _core.Tensor) -> Iterator[_core.Tensor]:
    if t.ndim == 0:
        raise TypeError("iteration over a 0-d tensor")
    return (t[i] for i in range(len(t)))


def _backward(
    t: _core.Tensor, gradient: _core.Tensor | None = None, retain_graph: bool | None = None
) -> None:
    """Accumulates d(t)/d(leaf) into each leaf's .grad; gradient=None needs a one-element t."""
    from .autograd import backward

    backward([t], [gradient], retain_graph=bool(retain_graph))


def _reduce_ex(t: _core.Tensor, protocol: Any = None) -> tuple[Any, tuple[Any, ...]]:
    from .serialization import _tensor_reduce_ex

    return _tensor_reduce_ex(t, protocol)


def install(cls: type) -> None:
    methods = {
        "__repr__": _repr,
        "__str__": _repr,
        "tolist": _tolist,
        "__array__": _array,
        "__iter__": _iter,
        "backward": _backward,
        "__reduce_ex__": _reduce_ex,
    }
    for name, method in methods.items():
        setattr(cls, name, method)
    setattr(_core.dtype, "__repr__", _dtype_repr)  # noqa: B010 - assigning to a class of the extension
    setattr(_core.dtype, "__str__", _dtype_repr)  # noqa: B010
