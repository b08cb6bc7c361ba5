"""``orchard_core.nn``: modules, parameters and layers with torch.nn's names and semantics."""

from __future__ import annotations

from . import functional, init, utils
from .containers import ModuleDict, ModuleList, Sequential
from .layers import GELU, CrossEntropyLoss, Dropout, Embedding, Identity, LayerNorm, Linear, ReLU
from .module import Module
from .parameter import Parameter

__all__ = [
    "GELU",
    "CrossEntropyLoss",
    "Dropout",
    "Embedding",
    "Identity",
    "LayerNorm",
    "Linear",
    "Module",
    "ModuleDict",
    "ModuleList",
    "Parameter",
    "ReLU",
    "Sequential",
    "functional",
    "init",
    "utils",
]
