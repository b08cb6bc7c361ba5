"""``Optimizer``: parameter groups, per-parameter state and its state_dict, as torch's."""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from .. import _core
from .._core import Tensor
from ..autograd import enable_grad, no_grad
from ..profiler import record_function


class _RequiredParameter:
    def __repr__(self) -> str:
        return "<required parameter>"


required: Any = _RequiredParameter()

_FLOATING = (_core.float32, _core.float64, _core.bfloat16, _core.float16)


class Optimizer:
    """Base class: ``params`` is an iterable of tensors or of dicts (parameter groups) whose
    keys override ``defaults`` for their parameters.
    """

    def __init__(self, params: Iterable[Tensor] | Iterable[dict[str, Any]], defaults: dict[str, Any]) -> None:
        self.defaults = defaults
        self.state: defaultdict[Tensor, dict[str, Any]] = defaultdict(dict)
        self.param_groups: list[dict[str, Any]] = []
        if isinstance(params, Tensor):
            raise TypeError(
                "params argument given to the optimizer should be an iterable of Tensors or dicts, "
                "but got a Tensor"
            )
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def __repr__(self) -> str:
        lines = [type(self).__name__ + " ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines.extend(f"    {key}: {group[key]}" for key in sorted(group) if key != "params")
        return "\n".join([*lines, ")"])

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Adds a group of parameters with its own options (missing ones from ``defaults``)."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError(
                "optimizer parameters need to be organized in ordered collections, but the ordering of "
                "tensors "
                "in sets will change between runs. Please use a list instead."
            )
        else:
            params = list(params)
        for i, param in enumerate(params):
            if not isinstance(param, Tensor):
                raise TypeError(
                    f"optimizer can only optimize Tensors, but params[{i}] is a {type(param).__name__}"
                )
            if not param.is_leaf:
                raise ValueError(
                    f"can't optimize a non-leaf Tensor (params[{i}] has grad_fn={param.grad_fn!r})"
                )
        group = dict(param_group, params=params)
        for name, default in self.defaults.items():
            if default is required and name not in group:
                raise ValueError(
                    f"parameter group didn't specify a value of required optimization parameter {name}"
                )
            group.setdefault(name, default)
        if len({id(p) for p in params}) != len(params):
            raise ValueError("optimizer contains a parameter group with duplicate parameters")
        existing = {id(p) for g in self.param_groups for p in g["params"]}
        if existing & {id(p) for p in params}:
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clears the gradients of every optimized parameter (to None, or to zeros)."""
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                if set_to_none:
                    param.grad = None
                else:
                    param.grad.zero_()

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update of every parameter that has a gradient; returns closure() when given."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        with no_grad(), record_function(f"Optimizer.step#{type(self).__name__}.step"):
            for group in self.param_groups:
                self._update_group(group)
        return loss

    def _update_group(self, group: dict[str, Any]) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not define step()")

    def state_dict(self) -> dict[str, Any]:
        """{"state": {index: state}, "param_groups": [...]} with parameters numbered in group order."""
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            numbered = []
            for param in group["params"]:
                index.setdefault(id(param), len(index))
                numbered.append(index[id(param)])
            groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": numbered})
        state = {index[id(param)]: value for param, value in self.state.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restores state and options saved by :meth:`state_dict`; state tensors move to each
        parameter's device (floating ones to its dtype, except ``step``).
        """
        state_dict = copy.copy(state_dict)
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"loaded state dict has {len(saved_groups)} parameter groups, the optimizer has "
                f"{len(self.param_groups)}"
            )
        for i, (group, saved) in enumerate(zip(self.param_groups, saved_groups, strict=True)):
            if len(group["params"]) != len(saved["params"]):
                raise ValueError(
                    f"loaded state dict's parameter group {i} has {len(saved['params'])} parameters, the "
                    f"optimizer's has {len(group['params'])}"
                )
        by_index = {
            index: param
            for group, saved in zip(self.param_groups, saved_groups, strict=True)
            for index, param in zip(saved["params"], group["params"], strict=True)
        }
        self.state = defaultdict(dict)
        for index, value in state_dict["state"].items():
            if index not in by_index:
                continue
            param = by_index[index]
            self.state[param] = {key: _cast_state(param, key, v) for key, v in value.items()}
        self.param_groups = [
            {**{k: v for k, v in saved.items() if k != "params"}, "params": group["params"]}
            for group, saved in zip(self.param_groups, saved_groups, strict=True)
        ]


def _cast_state(param: Tensor, key: str, value: Any) -> Any:
    if not isinstance(value, Tensor):
        return value
    if key == "step":  # kept on the host in float32, as torch keeps it
        return value.clone()
    dtype = param.dtype if value.dtype in _FLOATING else None
    return value.to(device=param.device, dtype=dtype).clone()
