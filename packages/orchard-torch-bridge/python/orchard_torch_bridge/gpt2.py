"""Hugging Face transformers' GPT-2 attention on orchard-flash's kernels.

The switch goes through transformers' own extension points, ``AttentionInterface`` (the attention
functions) and ``AttentionMaskInterface`` (how masks are built for them). What each model does,
whenever it was created:

* ``attn_implementation="sdpa"`` (what transformers picks for GPT-2 by default): while the switch
  is on (``enable()``, or ``USE_FLASH_ATTN=2`` at import), every ``GPT2Attention`` module calls the
  orchard op; other models' sdpa layers are untouched. The choice is made on each forward call, so
  models created before ``enable()`` switch too, and after ``disable()`` they are stock sdpa again.
  An explicit ``attn_implementation="sdpa"`` cannot be told apart from the default and is switched
  the same way.
* ``attn_implementation="eager"``: always transformers' stock eager attention (the way to get
  attention weights, or ``reorder_and_upcast_attn``); the switch leaves it alone.
* ``attn_implementation="orchard"``: always the orchard op, switch on or off. The name exists once
  ``enable()`` or ``register()`` has run (transformers rejects unknown names when a model is
  created), and ``disable()`` keeps it.

Whichever way it is reached, the orchard function computes causal self-attention (or unmasked
attention, for cross-attention and one-token decoding) with the kernel's fused dropout: the
dropout transformers passes (GPT-2's ``attn_pdrop``) while the module is training, none in
evaluation mode; the seed comes from torch's default generator, so ``torch.manual_seed``
reproduces a run. Masks are built as for sdpa: no padding gives no mask. A call the kernel cannot
do (a padding or other explicit mask, an unsupported dtype, device or head dim, ``softcap``,
``position_bias``, attention sinks) runs transformers' stock sdpa instead, with one
``OrchardFallbackWarning`` per reason per process.

transformers is imported only by ``enable()``, ``register()`` and ``disable()``; the bridge works
without it.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Callable
from typing import Any

import torch

from . import attention as _attention

#: The name under which the orchard attention function (and its mask builder) is registered.
NAME = "orchard"
ENV_VAR = "USE_FLASH_ATTN"
#: USE_FLASH_ATTN values besides unset: "" and "0" leave transformers stock, "2" switches GPT-2 to orchard.
ACCEPTED_VALUES = ("", "0", "2")

__all__ = [
    "ACCEPTED_VALUES",
    "ENV_VAR",
    "NAME",
    "OrchardFallbackWarning",
    "disable",
    "enable",
    "is_enabled",
    "orchard_attention_forward",
    "register",
]


class OrchardFallbackWarning(UserWarning):
    """An attention call ran transformers' stock sdpa because the orchard kernel cannot do it."""


_lock = threading.RLock()
_enabled = False
_stock_sdpa: Callable[..., Any] | None = None  # transformers' own sdpa, saved by register()
_gpt2_attention: type | None = None
_warned: set[str] = set()

# Keyword arguments of other models' attention that change the result and the kernel has no
# equivalent for.
_UNSUPPORTED_KWARGS = ("softcap", "position_bias", "s_aux", "sinks")


def _warn_once(reason: str, fallback: bool = True) -> None:
    with _lock:
        if reason in _warned:
            return
        _warned.add(reason)
    message = f"orchard attention falls back to stock sdpa: {reason}" if fallback else reason
    warnings.warn(
        f"{message} (warned once)", OrchardFallbackWarning if fallback else UserWarning, stacklevel=3
    )


def _import_transformers() -> tuple[Any, Any, Any, type]:
    try:
        from transformers import AttentionInterface
        from transformers.masking_utils import AttentionMaskInterface, sdpa_mask
        from transformers.models.gpt2.modeling_gpt2 import GPT2Attention
    except ImportError as exc:
        raise ImportError(
            "orchard_torch_bridge's GPT-2 attention switch needs Hugging Face transformers "
            f"(pip install transformers): {exc}"
        ) from exc
    return AttentionInterface, AttentionMaskInterface, sdpa_mask, GPT2Attention


def _unsupported(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask, dropout, kwargs) -> str:
    """Why the kernel cannot run this call, or "" when it can."""
    if mask is not None:
        return (
            "an explicit attention mask (padding, or a non-causal pattern) was passed; the kernel only "
            "does causal or unmasked attention"
        )
    for name in _UNSUPPORTED_KWARGS:
        if kwargs.get(name) is not None:
            return f"`{name}` is not supported by the kernel"
    try:
        _attention._check(query, key, value, dropout)
    except (TypeError, ValueError) as exc:
        return str(exc)
    return ""


def orchard_attention_forward(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """A transformers attention function (``AttentionInterface``) on the orchard op.

    Takes query, key and value as (batch, heads, length, dim) and returns the output as (batch,
    length, heads, dim) and no attention weights, as transformers' sdpa function does. Causal
    when the module is (``module.is_causal``, or ``is_causal`` if given) and the query has more
    than one token, top-left aligned as in sdpa. Dropout ``dropout`` only while
    ``module.training``. Calls the kernel cannot do go to stock sdpa, warning once per reason.
    """
    p = float(dropout) if module.training else 0.0
    reason = _unsupported(query, key, value, attention_mask, p, kwargs)
    if reason:
        _warn_once(reason)
        return _stock()(
            module,
            query,
            key,
            value,
            attention_mask,
            dropout=p,
            scaling=scaling,
            is_causal=is_causal,
            **kwargs,
        )
    if kwargs.get("output_attentions", False):
        _warn_once(
            "`output_attentions=True`: orchard attention returns no attention weights, as sdpa does "
            "(use attn_implementation='eager' for them)",
            fallback=False,
        )
    causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    q_len = query.shape[2]
    causal = bool(causal) and q_len > 1
    if causal and key.shape[2] > q_len:
        # Prefill into an empty static cache: keys past the queries are masked anyway (as in sdpa).
        key, value = key[:, :, :q_len], value[:, :, :q_len]
    out = _attention.flash_attention(query, key, value, dropout_p=p, is_causal=causal, scale=scaling)
    return out.transpose(1, 2).contiguous(), None


def _gpt2_sdpa_forward(module: torch.nn.Module, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, Any]:
    """The "sdpa" entry while the switch is on: GPT-2 attention to orchard, anything else stock."""
    if _enabled and _gpt2_attention is not None and isinstance(module, _gpt2_attention):
        return orchard_attention_forward(module, *args, **kwargs)
    return _stock()(module, *args, **kwargs)


def _stock() -> Callable[..., Any]:
    if _stock_sdpa is None:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward
    return _stock_sdpa


def register() -> None:
    """Registers ``attn_implementation="orchard"`` with transformers (idempotent).

    Afterwards models can be created with ``attn_implementation="orchard"`` (or switched with
    ``model.set_attn_implementation("orchard")``); they use the orchard op whether or not the switch
    is on. Raises ImportError without transformers.
    """
    global _stock_sdpa, _gpt2_attention
    attention_interface, mask_interface, sdpa_mask, gpt2_attention = _import_transformers()
    with _lock:
        if _stock_sdpa is None:
            current = attention_interface._global_mapping["sdpa"]
            _stock_sdpa = current if current is not _gpt2_sdpa_forward else None
        _gpt2_attention = gpt2_attention
        attention_interface.register(NAME, orchard_attention_forward)
        # Masks as for sdpa: None when nothing is padded, so the kernel's is_causal does the masking.
        mask_interface.register(NAME, sdpa_mask)


def enable() -> None:
    """Turns the switch on: GPT-2's "sdpa" attention runs on the orchard op (idempotent).

    Applies to every ``GPT2Attention`` whose config says "sdpa", including models created before
    this call; also registers "orchard" (see ``register``). Other models and "eager" are unchanged.
    Raises ImportError without transformers.
    """
    global _enabled
    register()
    attention_interface = _import_transformers()[0]
    with _lock:
        attention_interface.register("sdpa", _gpt2_sdpa_forward)
        _enabled = True


def disable() -> None:
    """Turns the switch off: "sdpa" is transformers' own function again (idempotent).

    Models created with ``attn_implementation="orchard"`` keep the orchard op.
    """
    global _enabled
    with _lock:
        if not _enabled:
            return
        attention_interface = _import_transformers()[0]
        if attention_interface._global_mapping.get("sdpa") is _gpt2_sdpa_forward:
            attention_interface.register("sdpa", _stock())
        _enabled = False


def is_enabled() -> bool:
    """Whether GPT-2's "sdpa" attention currently runs on the orchard op."""
    return _enabled


def _parse_env(value: str | None) -> bool:
    """USE_FLASH_ATTN's value: True to switch on, False for stock; ValueError for anything else."""
    if value is None or value.strip() in ("", "0"):
        return False
    if value.strip() == "2":
        return True
    raise ValueError(
        f"{ENV_VAR}={value!r} is not supported; accepted values: unset, empty or '0' (stock transformers "
        "attention), '2' (GPT-2 attention on orchard-flash)"
    )


def apply_env(environ: dict[str, str] | None = None) -> bool:
    """Applies USE_FLASH_ATTN (read from ``environ``, default os.environ); returns whether enabled.

    Unset, empty or "0": nothing happens (transformers is not imported). "2": ``enable()``, which
    raises ImportError without transformers. Anything else: ValueError listing the accepted values.
    """
    env = os.environ if environ is None else environ
    if not _parse_env(env.get(ENV_VAR)):
        return False
    try:
        enable()
    except ImportError as exc:
        raise ImportError(
            f"{ENV_VAR}=2 switches transformers' GPT-2 attention to orchard, but {exc}"
        ) from exc
    return True
