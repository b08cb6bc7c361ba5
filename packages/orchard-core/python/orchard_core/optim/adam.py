"""Adam and AdamW: torch's single-tensor algorithm, updating in place."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .. import _core
from .._core import Tensor
from .optimizer import Optimizer


class Adam(Optimizer):
    """Adam; with ``decoupled_weight_decay`` (AdamW) the decay scales the parameter directly.

    Without amsgrad, each parameter is updated by one fused kernel (``_core.adam_step_``) on the
    devices that have it (``orchard_core.supports(device, "adam_step", dtype)``), with the bits of
    the unfused in-place ops that the other devices, and amsgrad, run.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        decoupled_weight_decay: bool = False,
    ) -> None:
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        for i, beta in enumerate(betas):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"Invalid beta parameter at index {i}: {beta}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if capturable or differentiable or fused:
            raise NotImplementedError(
                f"{type(self).__name__}: capturable, differentiable and fused are not supported"
            )
        # foreach is accepted for torch's signature: parameters are updated one by one either way.
        defaults = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "amsgrad": amsgrad,
            "maximize": maximize,
            "foreach": foreach,
            "capturable": capturable,
            "differentiable": differentiable,
            "fused": fused,
            "decoupled_weight_decay": decoupled_weight_decay,
        }
        super().__init__(params, defaults)

    def _update_group(self, group: dict[str, Any]) -> None:
        for param in group["params"]:
            if param.grad is not None:
                self._update(param, group)

    def _state(self, param: Tensor, amsgrad: bool) -> dict[str, Any]:
        state = self.state[param]
        if not state:
            # step lives on the host as a float32 scalar, as in torch (no device sync to read it).
            state["step"] = _core.zeros((), dtype=_core.float32)
            state["exp_avg"] = _core.zeros(*param.shape, dtype=param.dtype, device=param.device)
            state["exp_avg_sq"] = _core.zeros(*param.shape, dtype=param.dtype, device=param.device)
            if amsgrad:
                state["max_exp_avg_sq"] = _core.zeros(*param.shape, dtype=param.dtype, device=param.device)
        return state

    def _update(self, param: Tensor, group: dict[str, Any]) -> None:
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        weight_decay, amsgrad = group["weight_decay"], group["amsgrad"]
        state = self._state(param, amsgrad)
        exp_avg, exp_avg_sq, step_t = state["exp_avg"], state["exp_avg_sq"], state["step"]

        step_t.add_(1)
        step = step_t.item()
        bias_correction1 = 1 - beta1**step
        bias_correction2 = 1 - beta2**step
        step_size = lr / bias_correction1
        bias_correction2_sqrt = bias_correction2**0.5
        if not amsgrad and _core.supports(param.device, "adam_step", param.dtype):
            # One launch instead of the ~9 ops below: the step is host-bound on a GPU.
            _core.adam_step_(
                param,
                param.grad,
                exp_avg,
                exp_avg_sq,
                lr=lr,
                beta1=beta1,
                beta2=beta2,
                eps=eps,
                weight_decay=weight_decay,
                decoupled_weight_decay=group["decoupled_weight_decay"],
                maximize=group["maximize"],
                step_size=step_size,
                bias_correction2_sqrt=bias_correction2_sqrt,
            )
            return

        grad = -param.grad if group["maximize"] else param.grad
        if weight_decay != 0:
            if group["decoupled_weight_decay"]:
                param.mul_(1 - lr * weight_decay)
            else:
                grad = grad + param * weight_decay
        exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        if amsgrad:
            max_exp_avg_sq = state["max_exp_avg_sq"]
            max_exp_avg_sq.copy_(_core.maximum(max_exp_avg_sq, exp_avg_sq))
            denom = max_exp_avg_sq.sqrt()
        else:
            denom = exp_avg_sq.sqrt()
        denom.div_(bias_correction2_sqrt).add_(eps)
        param.addcdiv_(exp_avg, denom, value=-step_size)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter), torch's defaults (weight_decay=1e-2)."""

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        super().__init__(
            params,
            lr,
            betas,
            eps,
            weight_decay,
            amsgrad,
            foreach=foreach,
            maximize=maximize,
            capturable=capturable,
            differentiable=differentiable,
            fused=fused,
            decoupled_weight_decay=True,
        )
