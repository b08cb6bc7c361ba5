"""Mixed precision as torch.autocast gives it: inside ``with orchard_core.autocast("cuda"):``,
matrix products run in a 16-bit dtype and the ops that need range run in float32, while the
parameters (the master weights the optimizer updates) stay float32.

What casts, on tensors of the context's device type (others are left alone):

* to the context's dtype (bfloat16 by default, or float16): ``nn.functional.linear`` (so
  ``nn.Linear``), ``orchard_core.matmul`` and ``nn.functional.scaled_dot_product_attention``;
* to float32: ``nn.functional.layer_norm`` (``nn.LayerNorm``), ``cross_entropy``, ``softmax`` and
  ``log_softmax``.

Everything else runs in the dtype it is given, and mixed operands promote as usual (a float32
residual plus a bfloat16 projection is float32). The casts are differentiable, so gradients reach
the float32 parameters in float32. Unlike torch's, the ``@`` operator is not covered (use
``orchard_core.matmul`` or ``linear`` inside the context), and no cast is cached across ops.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from . import _core

_state = threading.local()


def _current() -> tuple[str, Any] | None:
    """(device type, dtype) of the innermost enabled context on this thread, or None."""
    return getattr(_state, "active", None)


@contextmanager
def autocast(device_type: str, dtype: Any = None, enabled: bool = True) -> Iterator[None]:
    """Runs the block's matrix products in `dtype` (bfloat16 by default) on `device_type`
    ("cuda", "cpu" or "metal"); see the module's docstring for what casts. Nests: the innermost
    context rules, and ``enabled=False`` turns casting off inside it."""
    if device_type not in ("cpu", "cuda", "metal"):
        raise ValueError(f"autocast: device_type must be 'cpu', 'cuda' or 'metal', got {device_type!r}")
    low = _core.bfloat16 if dtype is None else dtype
    if low not in (_core.bfloat16, _core.float16):
        raise ValueError(f"autocast: dtype must be orchard_core.bfloat16 or float16, got {dtype!r}")
    previous = _current()
    _state.active = (device_type, low) if enabled else None
    try:
        yield
    finally:
        _state.active = previous


def _cast(tensors: tuple[Any, ...], dtype: Any, device_type: str) -> tuple[Any, ...]:
    return tuple(
        t.to(dtype)
        if isinstance(t, _core.Tensor)
        and t.dtype != dtype
        and t.dtype.is_floating_point
        and t.device.type == device_type
        else t
        for t in tensors
    )


def to_low(*tensors: Any) -> tuple[Any, ...]:
    """The tensors in the context's 16-bit dtype (unchanged outside a context)."""
    active = _current()
    return tensors if active is None else _cast(tensors, active[1], active[0])


def to_float32(*tensors: Any) -> tuple[Any, ...]:
    """The tensors in float32 inside a context (unchanged outside one)."""
    active = _current()
    return tensors if active is None else _cast(tensors, _core.float32, active[0])


def matmul(input: Any, other: Any) -> Any:  # noqa: A002 - torch's name
    """Matrix product with torch's broadcasting rules (in the 16-bit dtype inside autocast)."""
    return _core.matmul(*to_low(input, other))
