"""Reverse-mode automatic differentiation, with torch.autograd's names.

The engine is C++ (``orchard/autograd.h``): operators record a node when an input
requires grad, and :func:`backward` / :func:`grad` walk the graph. This module adds
grad-mode context managers, :class:`Function` for differentiable operators written in
Python, and :func:`gradcheck`.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

from . import _core
from ._core import Tensor, is_grad_enabled

__all__ = [
    "Function",
    "FunctionCtx",
    "GradcheckError",
    "backward",
    "enable_grad",
    "grad",
    "gradcheck",
    "is_grad_enabled",
    "no_grad",
    "set_grad_enabled",
]

_F = TypeVar("_F", bound=Callable[..., Any])


class _GradMode:
    """A context manager and decorator that sets grad mode, restoring it afterwards."""

    _enabled: bool

    def __enter__(self) -> None:
        self._previous = is_grad_enabled()
        _core._set_grad_enabled(self._enabled)

    def __exit__(self, *exc: object) -> None:
        _core._set_grad_enabled(self._previous)

    def __call__(self, fn: _F) -> _F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with type(self)():
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


class no_grad(_GradMode):
    """Operations inside record nothing: results do not require grad."""

    _enabled = False


class enable_grad(_GradMode):
    """Turns recording back on inside a :class:`no_grad` block."""

    _enabled = True


class set_grad_enabled(_GradMode):
    """Sets grad mode on or off now; as a context manager, only for its block."""

    def __init__(self, mode: bool) -> None:
        self._previous = is_grad_enabled()
        self._enabled = bool(mode)
        _core._set_grad_enabled(self._enabled)

    def __enter__(self) -> None:
        pass

    def __call__(self, fn: _F) -> _F:
        raise TypeError("set_grad_enabled(mode) is a context manager, not a decorator")


def _tensors(value: Tensor | Sequence[Tensor], what: str) -> list[Tensor]:
    items = [value] if isinstance(value, Tensor) else list(value)
    for i, item in enumerate(items):
        if not isinstance(item, Tensor):
            raise TypeError(f"{what}[{i}] must be a Tensor, got {type(item).__name__}")
    return items


def _grads(value: Tensor | Sequence[Tensor | None] | None, count: int, what: str) -> list[Tensor | None]:
    if value is None:
        return [None] * count
    items = [value] if isinstance(value, Tensor) else list(value)
    if len(items) != count:
        raise ValueError(f"{what} has {len(items)} entries but there are {count} outputs")
    for i, item in enumerate(items):
        if item is not None and not isinstance(item, Tensor):
            raise TypeError(f"{what}[{i}] must be a Tensor or None, got {type(item).__name__}")
    return items


def backward(
    tensors: Tensor | Sequence[Tensor],
    grad_tensors: Tensor | Sequence[Tensor | None] | None = None,
    retain_graph: bool = False,
) -> None:
    """Accumulates into ``.grad`` of every leaf the tensors depend on.

    ``grad_tensors`` holds d(loss)/d(tensor) for each tensor; None means 1 and needs a
    one-element tensor. Without ``retain_graph`` the graph's saved values are freed.
    """
    roots = _tensors(tensors, "tensors")
    _core._backward(roots, _grads(grad_tensors, len(roots), "grad_tensors"), bool(retain_graph))


def grad(
    outputs: Tensor | Sequence[Tensor],
    inputs: Tensor | Sequence[Tensor],
    grad_outputs: Tensor | Sequence[Tensor | None] | None = None,
    retain_graph: bool = False,
    allow_unused: bool = False,
) -> tuple[Tensor | None, ...]:
    """The gradients of ``outputs`` with respect to ``inputs``; ``.grad`` is left alone.

    An input the outputs do not depend on raises, or gives None with ``allow_unused``.
    """
    roots = _tensors(outputs, "outputs")
    targets = _tensors(inputs, "inputs")
    return _core._grad(
        roots, _grads(grad_outputs, len(roots), "grad_outputs"), targets, bool(retain_graph), allow_unused
    )


class FunctionCtx:
    """What ``forward`` leaves for ``backward``: saved tensors and any attributes set on it."""

    needs_input_grad: tuple[bool, ...]

    def __init__(self) -> None:
        self._saved: list[_core._SavedTensor | None] = []

    def save_for_backward(self, *tensors: Tensor | None) -> None:
        """Keeps tensors for backward; changing one in place before backward is an error there."""
        self._saved = [None if t is None else _core._SavedTensor(t) for t in tensors]

    @property
    def saved_tensors(self) -> tuple[Tensor | None, ...]:
        return tuple(None if s is None else s.unpack() for s in self._saved)


class Function:
    """A differentiable operator written in Python, as torch.autograd.Function.

    Subclasses define ``forward(ctx, *args)`` and ``backward(ctx, *grad_outputs)`` as
    static methods and are called through ``apply``. ``forward`` runs without recording;
    ``backward`` returns one gradient per argument of ``forward`` (None for non-tensors
    and for inputs that need none).
    """

    @staticmethod
    def forward(ctx: FunctionCtx, *args: Any) -> Any:
        raise NotImplementedError("subclasses of Function define forward(ctx, *args)")

    @staticmethod
    def backward(ctx: FunctionCtx, *grad_outputs: Tensor) -> Any:
        raise NotImplementedError("subclasses of Function define backward(ctx, *grad_outputs)")

    @classmethod
    def apply(cls, *args: Any) -> Any:
        ctx = FunctionCtx()
        ctx.needs_input_grad = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
        with no_grad():
            result = cls.forward(ctx, *args)
        if not (is_grad_enabled() and any(ctx.needs_input_grad)):
            return result
        outputs = [result] if isinstance(result, Tensor) else list(result)
        for i, out in enumerate(outputs):
            if not isinstance(out, Tensor):
                raise TypeError(
                    f"{cls.__name__}.forward returned {type(out).__name__} at position {i}; "
                    "only tensors (or a tuple of them) can carry gradients"
                )
            if any(out is a for a in args):
                raise RuntimeError(
                    f"{cls.__name__}.forward returned its input {i} unchanged; return a new "
                    "tensor (a view or a clone) instead"
                )
        inputs = [a if isinstance(a, Tensor) else None for a in args]

        def run_backward(*grads: Tensor) -> Any:
            result = cls.backward(ctx, *grads)
            return (result,) if isinstance(result, Tensor) or result is None else result

        _core._record_function(cls.__name__ + "Backward", inputs, outputs, run_backward)
        return result


class GradcheckError(RuntimeError):
    """Analytical and numerical gradients disagree."""


def _flat_outputs(value: Any) -> list[Tensor]:
    items = [value] if isinstance(value, Tensor) else list(value)
    return [t for t in items if isinstance(t, Tensor)]


def gradcheck(
    fn: Callable[..., Any],
    inputs: Tensor | Sequence[Any],
    *,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    raise_exception: bool = True,
) -> bool:
    """Compares autograd's Jacobian of ``fn`` with central finite differences.

    Every input that requires grad should be float64 (others warn: their finite differences
    are too coarse). Returns True when each entry agrees within ``atol + rtol * |numerical|``;
    otherwise raises :class:`GradcheckError` naming the first disagreement (or returns False).
    """
    args = (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)
    wrt = [i for i, a in enumerate(args) if isinstance(a, Tensor) and a.requires_grad]
    if not wrt:
        raise ValueError("gradcheck: no input requires grad")
    for i in wrt:
        if args[i].dtype != _core.float64:
            warnings.warn(
                f"gradcheck: input {i} is {args[i].dtype.name}, not float64; finite differences "
                "may disagree by rounding alone",
                stacklevel=2,
            )
    outputs = _flat_outputs(fn(*args))
    if not outputs:
        raise ValueError("gradcheck: fn returned no tensor")

    # Analytical: one backward pass per output element, with a one-hot gradient.
    analytical = [[np.zeros((args[i].numel(), o.numel())) for o in outputs] for i in wrt]
    for k, out in enumerate(outputs):
        if not out.requires_grad:
            continue
        for j in range(out.numel()):
            seed = np.zeros(out.numel())
            seed[j] = 1.0
            one_hot = _core.from_numpy(seed.reshape(out.shape)).to(out.dtype)
            grads = grad([out], [args[i] for i in wrt], [one_hot], retain_graph=True, allow_unused=True)
            for n, g in enumerate(grads):
                if g is not None:
                    analytical[n][k][:, j] = np.asarray(g.to(_core.float64)).reshape(-1)

    # Numerical: perturb each element of each input in place, under no_grad.
    for n, i in enumerate(wrt):
        values = args[i].detach().numpy()  # shares the tensor's memory
        with no_grad():
            flat_index = list(np.ndindex(values.shape))
            for e, index in enumerate(flat_index):
                original = values[index]
                values[index] = original + eps
                plus = [np.asarray(o.to(_core.float64)).reshape(-1).copy() for o in _flat_outputs(fn(*args))]
                values[index] = original - eps
                minus = [np.asarray(o.to(_core.float64)).reshape(-1).copy() for o in _flat_outputs(fn(*args))]
                values[index] = original
                for k in range(len(outputs)):
                    numerical = (plus[k] - minus[k]) / (2 * eps)
                    got = analytical[n][k][e]
                    bad = np.abs(got - numerical) > atol + rtol * np.abs(numerical)
                    if bad.any():
                        j = int(np.argmax(bad))
                        message = (
                            f"gradcheck: d(output {k}[{j}]) / d(input {i}{list(index)}) is "
                            f"{got[j]!r} by autograd but {numerical[j]!r} by finite differences"
                        )
                        if raise_exception:
                            raise GradcheckError(message)
                        return False
    return True
