"""orchard-torch-bridge: Orchard's kernels inside PyTorch programs (temporary).

Pure Python. Tensors cross between torch and orchard_core through DLPack,
without copies. ``flash_attention`` is a drop-in for torch's
scaled_dot_product_attention on orchard-flash's fused kernels, registered as
``torch.ops.orchard.flash_attention``.

``enable()`` / ``disable()`` switch Hugging Face transformers' GPT-2 attention to that op and
back (see ``orchard_torch_bridge.gpt2``). The environment variable ``USE_FLASH_ATTN`` is applied
at import: unset, empty or "0" leaves everything stock (transformers is not imported), "2" calls
``enable()`` (ImportError without transformers), anything else raises ValueError.
"""

from __future__ import annotations

from .attention import flash_attention
from .convert import from_torch, to_torch
from .gpt2 import apply_env as _apply_env
from .gpt2 import disable, enable, is_enabled

__version__ = "0.1.0"

__all__ = ["disable", "enable", "flash_attention", "from_torch", "is_enabled", "to_torch"]

_apply_env()
