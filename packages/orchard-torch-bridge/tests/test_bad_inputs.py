"""Bad inputs to the bridge's custom ops (issue 14's catalogue): the seed tensor. A float seed
was truncated by int() (1.7 ran as 1); now every non-integer seed raises naming its dtype, in
eager calls, in the fake kernels torch.compile traces, and in the backward op."""

from __future__ import annotations

import re

import orchard_torch_bridge  # noqa: F401 (registers torch.ops.orchard)
import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

NOT_INTEGERS = [torch.float32, torch.float64, torch.bfloat16, torch.float16, torch.complex64, torch.bool]


@pytest.fixture
def gen(seed) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def inputs(gen: torch.Generator) -> tuple[torch.Tensor, ...]:
    # batch, heads, len_q, dim and heads_kv, len_k: no multiple of a block size.
    q = torch.randn(2, 4, 37, 24, generator=gen)
    k, v = (torch.randn(2, 2, 53, 24, generator=gen) for _ in range(2))
    return q, k, v


def forward(q, k, v, seed):
    return torch.ops.orchard.flash_attention(q, k, v, 0.2, True, 0.3, seed)


def backward(q, k, v, seed):
    out, lse = forward(q, k, v, torch.tensor(5))
    return torch.ops.orchard.flash_attention_backward(out, None, q, k, v, out, lse, 0.2, True, 0.3, seed)


@pytest.mark.parametrize("op", [forward, backward], ids=lambda f: f.__name__)
@pytest.mark.parametrize("fake", [False, True], ids=["eager", "fake"])
@pytest.mark.parametrize("dtype", NOT_INTEGERS, ids=str)
def test_non_integer_seed_raises_naming_its_dtype(gen, op, fake, dtype):
    q, k, v = inputs(gen)
    seed = torch.tensor(1.7).to(dtype)
    message = f"orchard flash_attention: seed must be an integer tensor, got {dtype}"
    with pytest.raises(TypeError, match=re.escape(message)):
        if fake:
            with FakeTensorMode(allow_non_fake_inputs=True):
                op(q, k, v, seed)
        else:
            op(q, k, v, seed)


@pytest.mark.parametrize("op", [forward, backward], ids=lambda f: f.__name__)
def test_seed_of_several_values_raises(gen, op):
    with pytest.raises(ValueError, match=re.escape("seed must hold one value, got shape (2,)")):
        op(*inputs(gen), torch.tensor([1, 2]))


def test_negative_seed_raises_naming_it(gen):
    with pytest.raises(ValueError, match=re.escape("seed must be an int in [0, 2**64), got -3")):
        forward(*inputs(gen), torch.tensor(-3))


@pytest.mark.parametrize("dtype", [torch.int32, torch.uint8, torch.int16, torch.uint64])
def test_integer_seeds_of_any_width_agree(gen, dtype):
    q, k, v = inputs(gen)
    want = forward(q, k, v, torch.tensor(77, dtype=torch.int64))
    got = forward(q, k, v, torch.tensor(77, dtype=dtype))
    for g, w in zip(got, want, strict=True):
        assert torch.equal(g, w)
