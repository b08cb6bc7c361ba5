"""Functions behind the layers, with torch.nn.functional's names and arguments."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .. import _core
from .._autocast import to_float32, to_low
from .._core import Tensor
from .._deterministic import are_deterministic_algorithms_enabled

__all__ = [
    "cross_entropy",
    "dropout",
    "embedding",
    "gelu",
    "layer_norm",
    "linear",
    "log_softmax",
    "pad",
    "relu",
    "scaled_dot_product_attention",
    "softmax",
]


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:  # noqa: A002 - torch's name
    """input @ weight.T + bias, fused (orchard_core.linear); 16-bit inside autocast."""
    return _core.linear(*to_low(input, weight, bias))


def layer_norm(
    input: Tensor,  # noqa: A002
    normalized_shape: int | Sequence[int],
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """Normalises over the trailing ``normalized_shape`` dims (orchard_core.layer_norm); float32
    inside autocast."""
    x, w, b = to_float32(input, weight, bias)
    return _core.layer_norm(x, normalized_shape, w, b, eps)


def cross_entropy(
    input: Tensor,  # noqa: A002
    target: Tensor,
    weight: Tensor | None = None,
    size_average: Any = None,
    ignore_index: int = -100,
    reduce: Any = None,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Cross-entropy of logits against class indices (orchard_core.cross_entropy)."""
    if weight is not None:
        raise NotImplementedError("cross_entropy: per-class weight is not supported")
    if size_average is not None or reduce is not None:
        raise NotImplementedError("cross_entropy: size_average and reduce are deprecated; use reduction")
    (logits,) = to_float32(input)
    return _core.cross_entropy(
        logits, target, ignore_index=ignore_index, reduction=reduction, label_smoothing=label_smoothing
    )


def pad(input: Tensor, pad: Sequence[int], mode: str = "constant", value: float | None = None) -> Tensor:  # noqa: A002
    """Pads with ``value`` (0 by default): (before, after) pairs from the last dim back; negative crop."""
    if mode != "constant":
        raise NotImplementedError(f"pad: mode {mode!r} is not supported (only 'constant')")
    return _core.constant_pad_nd(input, pad, 0 if value is None else value)


def gelu(input: Tensor, approximate: str = "none") -> Tensor:  # noqa: A002
    return _core.gelu(input, approximate=approximate)


def relu(input: Tensor, inplace: bool = False) -> Tensor:  # noqa: A002
    if inplace:
        raise NotImplementedError("relu: inplace=True is not supported")
    return _core.relu(input)


def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:  # noqa: A002
    if inplace:
        raise NotImplementedError("dropout: inplace=True is not supported")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    return _core.dropout(input, p, training)


def softmax(input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype: Any = None) -> Tensor:  # noqa: A002
    if dim is None:
        raise TypeError("softmax: dim must be given (torch's implicit choice is deprecated)")
    return _core.softmax(*to_float32(input), dim, dtype=dtype)


def log_softmax(input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype: Any = None) -> Tensor:  # noqa: A002
    if dim is None:
        raise TypeError("log_softmax: dim must be given (torch's implicit choice is deprecated)")
    return _core.log_softmax(*to_float32(input), dim, dtype=dtype)


def embedding(
    input: Tensor,  # noqa: A002
    weight: Tensor,
    padding_idx: int | None = None,
    max_norm: float | None = None,
    norm_type: float = 2.0,
    scale_grad_by_freq: bool = False,
    sparse: bool = False,
) -> Tensor:
    """Rows of ``weight`` at the integer ``input``."""
    unsupported = {
        "padding_idx": padding_idx is not None,
        "max_norm": max_norm is not None,
        "scale_grad_by_freq": scale_grad_by_freq,
        "sparse": sparse,
    }
    for name, given in unsupported.items():
        if given:
            raise NotImplementedError(f"embedding: {name} is not supported")
    return _core.embedding(input, weight)


def _flash_attention() -> Any:
    try:
        import orchard_flash
    except ImportError as error:
        raise ImportError(
            "scaled_dot_product_attention runs on orchard-flash's kernels; install orchard-flash "
            f"(built against this orchard-core) to use it ({error})"
        ) from error
    return orchard_flash.flash_attention


def scaled_dot_product_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attn_mask: Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
) -> Tensor:
    """softmax(query @ key^T * scale) @ value over (batch, heads, len, dim), by orchard-flash.

    ``is_causal`` masks as torch does (query i sees keys j <= i). ``attn_mask`` is not
    supported; with ``enable_gqa`` query heads may be a multiple of key/value heads. Unless
    ``orchard_core.use_deterministic_algorithms(True)``, the backward may sum dq with atomics
    (Hopper GPUs: faster, dq's last bits varying from run to run), as torch's does.
    """
    if attn_mask is not None:
        raise NotImplementedError(
            "scaled_dot_product_attention: attn_mask is not supported (orchard-flash has no mask input); "
            "use is_causal=True for a causal mask"
        )
    for name, t in (("query", query), ("key", key), ("value", value)):
        if not isinstance(t, Tensor):
            raise TypeError(f"scaled_dot_product_attention: {name} must be a Tensor, got {type(t).__name__}")
        if t.ndim not in (3, 4):
            raise ValueError(
                f"scaled_dot_product_attention: {name} must be 3-d (batch, len, dim) or 4-d "
                f"(batch, heads, len, dim), got shape {tuple(t.shape)}"
            )
    if not query.ndim == key.ndim == value.ndim:
        raise ValueError(
            "scaled_dot_product_attention: query, key and value must have the same number of dims, got "
            f"shapes {tuple(query.shape)}, {tuple(key.shape)} and {tuple(value.shape)}"
        )
    if query.ndim == 4 and query.shape[1] != key.shape[1] and not enable_gqa:
        raise RuntimeError(
            f"scaled_dot_product_attention: query has {query.shape[1]} heads but key has {key.shape[1]}; "
            "pass enable_gqa=True for grouped-query attention"
        )
    if scale is not None and not math.isfinite(scale):
        raise ValueError(f"scaled_dot_product_attention: scale must be finite, got {scale}")
    flash_attention = _flash_attention()
    query, key, value = to_low(query, key, value)
    three_d = query.ndim == 3
    if three_d:
        query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
    out = flash_attention(
        query,
        key,
        value,
        causal=is_causal,
        dropout_p=dropout_p,
        scale=scale,
        causal_alignment="top_left",
        deterministic=are_deterministic_algorithms_enabled(),
    )
    return out.squeeze(1) if three_d else out
