"""``Parameter``: a tensor that a :class:`~orchard_core.nn.Module` registers as a parameter."""

from __future__ import annotations

from typing import Any

from .. import _core
from .._core import Tensor


class Parameter(Tensor):
    """A Tensor that requires grad by default and that modules list in ``parameters()``.

    ``Parameter(data)`` shares ``data``'s values (a detached view), as torch's does.
    """

    def __init__(self, data: Tensor | None = None, requires_grad: bool = True) -> None:
        if data is None:
            data = _core.empty(0)
        if not isinstance(data, Tensor):
            raise TypeError(f"Parameter(data): data must be a Tensor, got {type(data).__name__}")
        super().__init__(data.detach())
        self.requires_grad_(requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + Tensor.__repr__(self)

    __str__ = __repr__

    def __reduce_ex__(self, protocol: Any) -> tuple[Any, ...]:
        from ..serialization import _rebuild_parameter

        return _rebuild_parameter, (Tensor.__reduce_ex__(self, protocol),)
