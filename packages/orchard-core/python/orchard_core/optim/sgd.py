"""SGD with momentum, dampening, Nesterov and weight decay: torch's single-tensor algorithm."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .._core import Tensor
from .optimizer import Optimizer, required


def _add_scaled_(target: Tensor, other: Tensor, alpha: float) -> Tensor:
    """target += alpha * other, in place (torch's add_(other, alpha=alpha))."""
    return target.add_(other if alpha == 1 else other * alpha)


class SGD(Optimizer):
    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        if lr is not required and lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        if differentiable or fused:
            raise NotImplementedError("SGD: differentiable and fused are not supported")
        # foreach is accepted for torch's signature: parameters are updated one by one either way.
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "dampening": dampening,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
            "maximize": maximize,
            "foreach": foreach,
        }
        super().__init__(params, defaults)

    def _update_group(self, group: dict[str, Any]) -> None:
        lr, momentum, dampening = group["lr"], group["momentum"], group["dampening"]
        weight_decay, nesterov, maximize = group["weight_decay"], group["nesterov"], group["maximize"]
        for param in group["params"]:
            if param.grad is None:
                continue
            grad = -param.grad if maximize else param.grad
            if weight_decay != 0:
                grad = grad + param * weight_decay
            if momentum != 0:
                state = self.state[param]
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = grad.clone().detach()
                    state["momentum_buffer"] = buf
                else:
                    _add_scaled_(buf.mul_(momentum), grad, 1 - dampening)
                grad = grad + buf * momentum if nesterov else buf
            _add_scaled_(param, grad, -lr)
