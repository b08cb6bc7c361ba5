"""Zero-copy conversion between torch and orchard_core tensors, through DLPack.

torch's "mps" tensors and orchard's "metal" ones convert into each other (DLPack's Metal device:
the MTLBuffer and a byte offset). The two libraries queue Metal work on different command queues
and DLPack orders none of it: ``torch.mps.synchronize()`` before orchard uses memory torch wrote,
``orchard_core.synchronize("metal")`` before torch uses memory orchard wrote. The attention ops
do both themselves.
"""

from __future__ import annotations

import orchard_core
import torch


def from_torch(t: torch.Tensor) -> orchard_core.Tensor:
    """An orchard tensor sharing ``t``'s memory (same shape, strides and dtype)."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"from_torch expects a torch.Tensor, got {type(t).__name__}")
    if t.requires_grad:
        t = t.detach()  # DLPack refuses tensors that require grad; the memory is the same
    return orchard_core.from_dlpack(t)


def to_torch(t: orchard_core.Tensor) -> torch.Tensor:
    """A torch tensor sharing ``t``'s memory (same shape, strides and dtype)."""
    if not isinstance(t, orchard_core.Tensor):
        raise TypeError(f"to_torch expects an orchard_core.Tensor, got {type(t).__name__}")
    return torch.from_dlpack(t)
