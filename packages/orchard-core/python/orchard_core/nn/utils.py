"""``clip_grad_norm_`` and ``get_total_norm``, as torch.nn.utils's."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from functools import reduce

from .. import _core
from .._core import Tensor
from ..autograd import no_grad

__all__ = ["clip_grad_norm_", "get_total_norm", "vector_norm"]


def vector_norm(x: Tensor, ord: float = 2.0) -> Tensor:  # noqa: A002 - torch.linalg's name
    """The ``ord``-norm of all of ``x``'s elements, as a 0-d tensor on x's device."""
    if ord == 2.0:
        return (x * x).sum().sqrt()
    magnitude = x.abs()
    if ord == math.inf:
        return magnitude.max()
    if ord == -math.inf:
        return magnitude.min()
    if ord == 0.0:
        return _core.ne(x, 0).to(x.dtype).sum()
    if ord == 1.0:
        return magnitude.sum()
    return magnitude.pow(ord).sum().pow(1.0 / ord)


# Tensors whose norm is taken together, from one cat: a norm per gradient cost a few launches
# each, the host time of most of clip_grad_norm_ on a GPU (148 parameters in GPT-2). The cap
# bounds the cat's extra memory.
_NORM_GROUP_ELEMENTS = 1 << 24


def _norm_groups(items: list[Tensor]) -> Iterator[list[Tensor]]:
    """Consecutive tensors of one device and dtype, up to _NORM_GROUP_ELEMENTS together (or one
    larger tensor alone). The norm of all elements is the norm of the groups' norms."""
    group: list[Tensor] = []
    size = 0
    for t in items:
        fits = size + t.numel() <= _NORM_GROUP_ELEMENTS
        if group and not (fits and t.device == group[0].device and t.dtype == group[0].dtype):
            yield group
            group, size = [], 0
        group.append(t)
        size += t.numel()
    if group:
        yield group


def get_total_norm(
    tensors: Tensor | Iterable[Tensor], norm_type: float = 2.0, error_if_nonfinite: bool = False
) -> Tensor:
    """The norm of all tensors' elements together, computed on the device: no host sync unless
    ``error_if_nonfinite`` asks for a check (one sync).
    """
    items = [tensors] if isinstance(tensors, Tensor) else [t for t in tensors if t is not None]
    norm_type = float(norm_type)
    if not items:
        return _core.zeros(())
    first_device = items[0].device
    # Order 0 is no norm of norms (torch counts the tensors with a nonzero count): no groups.
    groups = _norm_groups(items) if norm_type != 0.0 else ([t] for t in items)
    norms = [
        vector_norm(group[0] if len(group) == 1 else _core.cat([t.reshape(-1) for t in group]), norm_type)
        for group in groups
    ]
    dtype = reduce(_core.promote_types, [n.dtype for n in norms])
    total = vector_norm(_core.stack([n.to(device=first_device, dtype=dtype) for n in norms]), norm_type)
    if error_if_nonfinite and not math.isfinite(total.item()):
        raise RuntimeError(
            f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, "
            "so it cannot "
            "be clipped. To disable this error and scale the gradients by the non-finite norm anyway, set "
            "`error_if_nonfinite=False`"
        )
    return total


def clip_grad_norm_(
    parameters: Tensor | Iterable[Tensor],
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
    foreach: bool | None = None,
) -> Tensor:
    """Scales the parameters' gradients in place so that their total norm is at most ``max_norm``.

    Returns the total norm before clipping as a 0-d tensor. The scale factor
    ``min(1, max_norm / (total + 1e-6))`` stays on the device: nothing waits for the host.
    ``foreach`` is accepted for torch's signature; the gradients are scaled one by one.
    """
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    grads = [p.grad for p in params if p.grad is not None]
    with no_grad():
        total = get_total_norm(grads, norm_type, error_if_nonfinite)
        if not grads:
            return total
        clip_coef = float(max_norm) / (total + 1e-6)
        clamped = _core.clamp(clip_coef, max=1.0)
        for grad in grads:
            grad.mul_(clamped.to(grad.device))
    return total
