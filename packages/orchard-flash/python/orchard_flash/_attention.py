"""Python entry points of the fused attention kernels."""

from __future__ import annotations

from typing import Any

import orchard_core

from . import _flash


def _as_tensor(value: Any, name: str) -> orchard_core.Tensor:
    """An orchard tensor as is; any other DLPack producer (numpy, torch) without a copy."""
    if isinstance(value, orchard_core.Tensor):
        return value
    if hasattr(value, "__dlpack__"):
        return orchard_core.from_dlpack(value)
    raise TypeError(f"{name} must be an orchard_core.Tensor or support DLPack, got {type(value).__name__}")


def forward(
    q: Any,
    k: Any,
    v: Any,
    *,
    causal: bool = False,
    scale: float | None = None,
    causal_alignment: str = "bottom_right",
) -> tuple[orchard_core.Tensor, orchard_core.Tensor]:
    """Fused softmax(q k^T * scale) v, never forming the score matrix.

    q is (batch, heads, len_q, dim), k and v (batch, heads_kv, len_k, dim) with heads a
    multiple of heads_kv (grouped-query attention); any strides. ``scale`` defaults to
    1/sqrt(dim). With ``causal``, query row i sees key j when j <= i + len_k - len_q
    ("bottom_right", flash-attn's convention) or j <= i ("top_left", torch's is_causal).
    Returns (out, lse): out like q, and the log-sum-exp of each row's scaled scores (-inf
    for a row that sees no key, whose output is zeros).
    """
    return _flash._forward(
        _as_tensor(q, "q"), _as_tensor(k, "k"), _as_tensor(v, "v"), causal, scale, causal_alignment
    )
