"""bfloat16 inputs: flash-attn's rule. On the same bf16-rounded inputs, the kernel's error
against float64 attention is at most twice that of naive attention computed in bf16 (torch,
scores, softmax and products in bf16) for the output, and three times for the gradients."""

from __future__ import annotations

import orchard_core as oc
import orchard_flash as of
import pytest
import torch
from _flash_reference import as_numpy, assert_lse_close, max_error, random_qkv, reference

SHAPES = [  # batch, heads, heads_kv, len_q, len_k, dim
    (1, 1, 1, 1, 1, 8),
    (2, 4, 2, 113, 203, 40),
    (1, 2, 1, 203, 113, 128),
    (1, 3, 1, 67, 67, 256),
    (2, 3, 1, 70, 300, 64),
    (1, 1, 1, 1000, 1000, 64),
]
MASKS = [(False, "bottom_right"), (True, "bottom_right"), (True, "top_left")]

# With one key (len_k = 1) the exact dq and dk are 0 and naive bf16 gets exactly 0, while the
# kernel's dS = P (dP - rowsum(dO * O)) cancels two float32 dot products of the same values
# summed in different orders: float32 rounding noise (~1e-7 here), far below one bf16 ulp of
# the other gradients. That much absolute slack keeps "2x zero" from failing on noise.
SLACK = 1e-6


def bf16(x) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.bfloat16)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize(("causal", "alignment"), MASKS, ids=["full", "causal_br", "causal_tl"])
def test_bfloat16_within_flash_attn_bounds(rng, isa, shape, causal, alignment):
    q, k, v = (bf16(x) for x in random_qkv(rng, *shape))
    dout = bf16(rng.standard_normal(q.shape))
    kw = dict(causal=causal, alignment=alignment)
    exact = [as_numpy(x) for x in (q, k, v, dout)]  # the bf16 values, exactly, in float64
    want_out, want_lse, *want_grads = reference(*exact, **kw)
    naive_out, _, *naive_grads = reference(*exact, dtype=torch.bfloat16, **kw)

    out, lse = of.forward(q, k, v, causal=causal, causal_alignment=alignment)
    grads = of.backward(dout, q, k, v, out, lse, causal=causal, causal_alignment=alignment)
    assert out.dtype == oc.bfloat16 and lse.dtype == oc.float32
    assert all(g.dtype == out.dtype for g in grads)

    out_err, naive_err = max_error(out, want_out), max_error(naive_out, want_out)
    assert out_err <= 2 * naive_err + SLACK, (out_err, naive_err)
    for name, g, w, n in zip(("dq", "dk", "dv"), grads, want_grads, naive_grads, strict=True):
        err, naive_err = max_error(g, w), max_error(n, w)
        assert err <= 3 * naive_err + SLACK, (name, err, naive_err)
    # lse is float32, computed from the exact bf16 values: float32 accuracy, not bf16's.
    assert_lse_close(lse, want_lse, atol=1e-4)
