"""GPT-2 written once, as a torch user writes it, for any library with torch's nn API.

``gpt2_class(torch)`` and ``gpt2_class(orchard_core)`` give the same model on either library: the
code below touches only names the two share (``nn.Module``, ``nn.Linear``, ``nn.functional``,
``Tensor`` methods). The layout follows transformers' ``GPT2LMHeadModel`` (pre-norm blocks, tanh
GELU, learned positions, output projection tied to the token embedding), with its initialisation:
normal(0, 0.02) weights, zero biases, residual projections scaled by 1/sqrt(2 * layers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import ModuleType
from typing import Any


@dataclass(frozen=True)
class GPT2Config:
    vocab_size: int
    seq_len: int
    n_layer: int
    n_head: int
    n_embd: int
    dropout: float


def gpt2_class(lib: ModuleType) -> Any:
    """The GPT2 module class built on `lib` (torch or orchard_core)."""
    nn, F = lib.nn, lib.nn.functional

    class Attention(nn.Module):
        def __init__(self, config: GPT2Config) -> None:
            super().__init__()
            self.n_head, self.dropout = config.n_head, config.dropout
            self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
            self.c_proj = nn.Linear(config.n_embd, config.n_embd)
            self.resid_dropout = nn.Dropout(config.dropout)

        def forward(self, x: Any) -> Any:
            batch, length, width = x.shape
            q, k, v = self.c_attn(x).split(width, dim=2)
            shape = (batch, length, self.n_head, width // self.n_head)
            q, k, v = (t.view(*shape).transpose(1, 2) for t in (q, k, v))
            p = self.dropout if self.training else 0.0
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
            y = y.transpose(1, 2).reshape(batch, length, width)
            return self.resid_dropout(self.c_proj(y))

    class MLP(nn.Module):
        def __init__(self, config: GPT2Config) -> None:
            super().__init__()
            self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd)
            self.act = nn.GELU(approximate="tanh")
            self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd)
            self.dropout = nn.Dropout(config.dropout)

        def forward(self, x: Any) -> Any:
            return self.dropout(self.c_proj(self.act(self.c_fc(x))))

    class Block(nn.Module):
        def __init__(self, config: GPT2Config) -> None:
            super().__init__()
            self.ln_1 = nn.LayerNorm(config.n_embd)
            self.attn = Attention(config)
            self.ln_2 = nn.LayerNorm(config.n_embd)
            self.mlp = MLP(config)

        def forward(self, x: Any) -> Any:
            x = x + self.attn(self.ln_1(x))
            return x + self.mlp(self.ln_2(x))

    class GPT2(nn.Module):
        def __init__(self, config: GPT2Config) -> None:
            super().__init__()
            self.config = config
            self.wte = nn.Embedding(config.vocab_size, config.n_embd)
            self.wpe = nn.Embedding(config.seq_len, config.n_embd)
            self.drop = nn.Dropout(config.dropout)
            self.h = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
            self.ln_f = nn.LayerNorm(config.n_embd)
            self.apply(self._init_weights)
            for name, parameter in self.named_parameters():
                if name.endswith("c_proj.weight"):
                    nn.init.normal_(parameter, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

        @staticmethod
        def _init_weights(module: Any) -> None:
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)

        def forward(self, idx: Any, targets: Any = None) -> Any:
            """Logits (batch, length, vocab); with `targets`, the mean cross-entropy instead."""
            positions = lib.arange(idx.shape[1], device=idx.device)
            x = self.drop(self.wte(idx) + self.wpe(positions))
            for block in self.h:
                x = block(x)
            logits = F.linear(self.ln_f(x), self.wte.weight)  # tied to the token embedding
            if targets is None:
                return logits
            return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))

    return GPT2
