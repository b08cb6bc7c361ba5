"""Which aten operations one GPT-2 training step calls: forward, backward and AdamW.

``record_training_step`` runs one step of a tiny ``GPT2LMHeadModel`` under a
``TorchDispatchMode`` that counts every aten op it sees (overloads merged), tagged with
the phase (forward / backward / optimizer) it ran in. ``orchard_attention`` registers
Orchard's attention with transformers (``orchard_torch_bridge.gpt2.register()``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import torch
from torch.utils._python_dispatch import TorchDispatchMode

PHASES = ("forward", "backward", "optimizer")
# Dispatcher bookkeeping that moves no data worth comparing.
IGNORED = {"aten::detach", "aten::lift_fresh", "aten::_to_copy"}


class _Recorder(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.phase = "forward"
        self.calls: Counter[tuple[str, str]] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func._schema.name  # "aten::addmm", "orchard::flash_attention", ...
        self.calls[(name, self.phase)] += 1
        return func(*args, **(kwargs or {}))


@dataclass
class StepOps:
    """Calls per aten op (overloads merged) and phase, for one training step."""

    calls: Counter[tuple[str, str]] = field(default_factory=Counter)

    def ops(self) -> list[str]:
        return sorted({name for name, _ in self.calls})

    def phases(self, op: str) -> list[str]:
        return [p for p in PHASES if self.calls[(op, p)]]

    def count(self, op: str) -> int:
        return sum(self.calls[(op, p)] for p in PHASES)


def tiny_config(n_positions: int = 64, dropout: float = 0.1, **overrides):
    from transformers import GPT2Config

    settings = dict(
        vocab_size=256,
        n_positions=n_positions,
        n_embd=64,
        n_layer=2,
        n_head=4,
        resid_pdrop=dropout,
        embd_pdrop=dropout,
        attn_pdrop=dropout,
        bos_token_id=0,
        eos_token_id=0,
    )
    settings.update(overrides)
    return GPT2Config(**settings)


def orchard_attention() -> str:
    """Registers Orchard's attention with transformers; returns its attn_implementation name."""
    from orchard_torch_bridge import gpt2

    gpt2.register()
    return gpt2.NAME


def make_model(attn_implementation: str = "sdpa", seed: int = 0, **config):
    """A tiny GPT-2 in train mode; "sdpa" is stock attention (the bridge's switch is turned off)."""
    from orchard_torch_bridge import gpt2
    from transformers import GPT2LMHeadModel

    if attn_implementation == "sdpa":
        gpt2.disable()  # enable() would route GPT-2's "sdpa" to the orchard op too

    torch.manual_seed(seed)
    model = GPT2LMHeadModel._from_config(tiny_config(**config), attn_implementation=attn_implementation)
    return model.train()


def record_training_step(attn_implementation: str = "sdpa", batch: int = 2, length: int = 32) -> StepOps:
    """Every aten op of one forward + backward + AdamW step of a tiny GPT-2, by phase."""
    model = make_model(attn_implementation, n_positions=max(64, length))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, foreach=False, fused=False)
    ids = torch.randint(0, model.config.vocab_size, (batch, length))
    # One untraced step first: AdamW creates its state (zeros) on the first step only.
    model(ids, labels=ids).loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    recorder = _Recorder()
    with recorder:
        recorder.phase = "forward"
        loss = model(ids, labels=ids).loss
        recorder.phase = "backward"
        loss.backward()
        recorder.phase = "optimizer"
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    calls = Counter({key: n for key, n in recorder.calls.items() if key[0] not in IGNORED})
    return StepOps(calls)
