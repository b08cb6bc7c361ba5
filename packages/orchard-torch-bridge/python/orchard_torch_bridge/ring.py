"""Context-parallel (ring) attention: a sequence split across the ranks of a process group.

Rank r holds the r-th of W equal, contiguous chunks of the sequence: its queries, keys and values.
The key/value chunks travel around the ring (rank r sends to r + 1, receives from r - 1), and each
rank runs the orchard op on its queries against every chunk, merging the partial results through
their log-sum-exp: with m = logaddexp(lse_a, lse_b), out = out_a*exp(lse_a - m) + out_b*exp(lse_b - m).
The backward pass goes around the ring again: given the merged out and lse, orchard's backward of
each chunk gives that chunk's exact share of dq, dk and dv, and the dk/dv sums travel with their
chunk until they are back on its rank. No dropout.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.distributed as dist

from . import attention as _attention


def _exchange(tensors: list[torch.Tensor], group: dist.ProcessGroup) -> list[torch.Tensor]:
    """Sends ``tensors`` to the next rank of ``group``; returns those of the previous rank."""
    rank, world = dist.get_rank(group), dist.get_world_size(group)
    if world == 1:
        return tensors
    send_to = dist.get_global_rank(group, (rank + 1) % world)
    receive_from = dist.get_global_rank(group, (rank - 1) % world)
    received = [torch.empty_like(t) for t in tensors]
    ops = [dist.P2POp(dist.isend, t.contiguous(), send_to, group) for t in tensors]
    ops += [dist.P2POp(dist.irecv, t, receive_from, group) for t in received]
    for request in dist.batch_isend_irecv(ops):
        request.wait()
    return received


def _steps(rank: int, world: int, is_causal: bool) -> list[bool | None]:
    """Per ring step, for the chunk held then (that of rank ``rank - step``): None when this rank's
    queries see none of it (a later chunk, under the causal mask), else whether to mask it causally
    (the rank's own chunk)."""
    steps: list[bool | None] = []
    for step in range(world):
        source = (rank - step) % world
        steps.append(None if is_causal and source > rank else is_causal and source == rank)
    return steps


class _RingAttention(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        is_causal: bool,
        scale: float,
        group: dist.ProcessGroup,
    ) -> torch.Tensor:
        world = dist.get_world_size(group)
        steps = _steps(dist.get_rank(group), world, is_causal)
        seed = torch.zeros((), dtype=torch.int64)
        out = lse = None
        kv = [k, v]
        for step, causal in enumerate(steps):
            if causal is not None:
                part, part_lse = _attention._forward(q, kv[0], kv[1], 0.0, causal, scale, seed)
                part = part.to(part_lse.dtype)  # merged in lse's precision (float32 for bfloat16)
                if out is None or lse is None:
                    out, lse = part, part_lse
                else:
                    merged = torch.logaddexp(lse, part_lse)
                    weight, part_weight = ((x - merged).exp().unsqueeze(-1) for x in (lse, part_lse))
                    out, lse = out * weight + part * part_weight, merged
            if step + 1 < world:
                kv = _exchange(kv, group)
        assert out is not None and lse is not None  # step 0 is the rank's own chunk
        out = out.to(q.dtype)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.options = (steps, scale, group)
        return out

    @staticmethod
    def backward(ctx: Any, dout: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        q, k, v, out, lse = ctx.saved_tensors
        steps, scale, group = ctx.options
        seed = torch.zeros((), dtype=torch.int64)
        dq = torch.zeros(q.shape, dtype=lse.dtype)  # sums in lse's precision, as the forward merges
        # The chunk held at each step, and the sums of its dk and dv so far, which travel with it.
        held = [k, v, torch.zeros(k.shape, dtype=lse.dtype), torch.zeros(v.shape, dtype=lse.dtype)]
        for step, causal in enumerate(steps):
            if causal is not None:
                part = _attention._backward(
                    dout, None, q, held[0], held[1], out, lse, 0.0, causal, scale, seed
                )
                dq += part[0]
                held[2] += part[1]
                held[3] += part[2]
            if step + 1 < len(steps):
                held = _exchange(held, group)
        # One pass more than the chunks made: each chunk's gradient sums are back on its own rank.
        dk, dv = _exchange(held[2:], group)
        return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype), None, None, None


def ring_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    is_causal: bool = False,
    scale: float | None = None,
    group: dist.ProcessGroup | None = None,
) -> torch.Tensor:
    """Attention over a sequence split across ``group``'s ranks (default: the whole world).

    Each rank passes its own contiguous chunk (batch, heads, chunk length, dim), the r-th of equal
    chunks on rank r, and gets the output for its queries: that of
    ``flash_attention(query, key, value, is_causal=is_causal, scale=scale)`` on the whole sequence,
    cut to its chunk. Differentiable; every rank of ``group`` must call it with the same arguments.
    """
    _attention._check(query, key, value, 0.0)
    if query.device.type != "cpu":
        raise ValueError(f"orchard ring_attention: only CPU tensors are supported, got {query.device}")
    if is_causal and key.shape[2] != query.shape[2]:
        raise ValueError(
            f"orchard ring_attention: causal chunks must have as many keys as queries, got "
            f"{key.shape[2]} keys for {query.shape[2]} queries"
        )
    if scale is None:
        scale = 1.0 / math.sqrt(query.shape[-1])
    group = group if group is not None else dist.group.WORLD
    return _RingAttention.apply(query, key, value, bool(is_causal), float(scale), group)
