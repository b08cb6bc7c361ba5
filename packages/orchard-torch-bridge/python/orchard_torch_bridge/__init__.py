"""orchard-torch-bridge: Orchard's kernels inside PyTorch programs (temporary).

Pure Python. Tensors cross between torch and orchard_core through DLPack,
without copies.
"""

from __future__ import annotations

from .convert import from_torch, to_torch

__version__ = "0.1.0"

__all__ = ["from_torch", "to_torch"]
