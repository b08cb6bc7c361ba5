"""orchard-torch-bridge: Orchard's kernels inside PyTorch programs (temporary).

Pure Python. Tensors cross between torch and orchard_core through DLPack,
without copies. ``flash_attention`` is a drop-in for torch's
scaled_dot_product_attention on orchard-flash's fused kernels, registered as
``torch.ops.orchard.flash_attention``.
"""

from __future__ import annotations

from .attention import flash_attention
from .convert import from_torch, to_torch

__version__ = "0.1.0"

__all__ = ["flash_attention", "from_torch", "to_torch"]
