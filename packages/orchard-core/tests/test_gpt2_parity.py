"""A GPT-2 written against orchard_core.nn with torch's names trains as the same model in torch.

Same code for both libraries (only the module prefix differs), same initial weights, same
batches, fp32, dropout 0: the losses of 10 AdamW steps (with gradient clipping and a warmup +
cosine schedule) agree to 1e-5 relative.
"""

from __future__ import annotations

import math

import numpy as np
import orchard_core as oc
import pytest
import torch

VOCAB, WIDTH, HEADS, LAYERS, SEQ, BATCH = 64, 32, 2, 2, 16, 3


def _gpt2(lib, functional, arange):
    nn, F = lib, functional

    class CausalSelfAttention(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c_attn = nn.Linear(WIDTH, 3 * WIDTH)
            self.c_proj = nn.Linear(WIDTH, WIDTH)

        def forward(self, x):
            b, t, c = x.shape
            q, k, v = self.c_attn(x).split(WIDTH, dim=2)
            q, k, v = (z.view(b, t, HEADS, c // HEADS).transpose(1, 2) for z in (q, k, v))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.c_proj(y.transpose(1, 2).contiguous().view(b, t, c))

    class MLP(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c_fc = nn.Linear(WIDTH, 4 * WIDTH)
            self.gelu = nn.GELU(approximate="tanh")
            self.c_proj = nn.Linear(4 * WIDTH, WIDTH)
            self.dropout = nn.Dropout(0.0)

        def forward(self, x):
            return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.ln_1 = nn.LayerNorm(WIDTH)
            self.attn = CausalSelfAttention()
            self.ln_2 = nn.LayerNorm(WIDTH)
            self.mlp = MLP()

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            return x + self.mlp(self.ln_2(x))

    class GPT(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.wte = nn.Embedding(VOCAB, WIDTH)
            self.wpe = nn.Embedding(SEQ, WIDTH)
            self.drop = nn.Dropout(0.0)
            self.h = nn.ModuleList([Block() for _ in range(LAYERS)])
            self.ln_f = nn.LayerNorm(WIDTH)
            self.lm_head = nn.Linear(WIDTH, VOCAB, bias=False)
            self.lm_head.weight = self.wte.weight

        def forward(self, idx, targets):
            x = self.drop(self.wte(idx) + self.wpe(arange(idx.shape[1])))
            for block in self.h:
                x = block(x)
            logits = self.lm_head(self.ln_f(x))
            return F.cross_entropy(logits.view(-1, VOCAB), targets.view(-1))

    return GPT()


def _train(lib, model, batches, steps: int = 10) -> list[float]:
    nn, optim, tensor = (
        (torch.nn, torch.optim, torch.tensor) if lib is torch else (oc.nn, oc.optim, oc.tensor)
    )
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
        lr=3e-3,
        betas=(0.9, 0.95),
    )
    warmup = optim.lr_scheduler.LinearLR(opt, start_factor=0.1, total_iters=3)
    cosine = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps - 3, eta_min=3e-4)
    schedule = optim.lr_scheduler.SequentialLR(opt, [warmup, cosine], milestones=[3])
    losses = []
    for step in range(steps):
        x, y = batches[step % len(batches)]
        loss = model(tensor(x), tensor(y))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        schedule.step()
        losses.append(loss.item())
    return losses


def test_gpt2_losses_match_torch_for_10_adamw_steps(seed):
    pytest.importorskip("orchard_flash")
    torch.manual_seed(seed % 2**32)
    theirs = _gpt2(torch.nn, torch.nn.functional, torch.arange)
    with torch.no_grad():  # GPT-2's init: normal(0, 0.02) weights, zero biases
        for name, p in theirs.named_parameters():
            if name.endswith("bias"):
                p.zero_()
            elif p.ndim >= 2:
                p.normal_(0.0, 0.02 / (math.sqrt(2 * LAYERS) if name.endswith("c_proj.weight") else 1.0))
    ours = _gpt2(oc.nn, oc.nn.functional, oc.arange)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict(theirs.state_dict())

    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(4):
        tokens = rng.integers(0, VOCAB, size=(BATCH, SEQ + 1))
        batches.append((tokens[:, :-1].copy(), tokens[:, 1:].copy()))
    expected = _train(torch, theirs, batches)
    got = _train(oc, ours, batches)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=0)
    assert got[-1] < got[0] - 0.1  # it learns
