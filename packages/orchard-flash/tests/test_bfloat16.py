"""16-bit inputs: flash-attn's rule. On the same rounded inputs, the kernel's error against
float64 attention is at most twice that of naive attention computed in the same 16-bit dtype
(torch on the same device, on the CPU for Metal: scores, softmax and products in that dtype, as
torch eager runs them) for the output, and three times for the gradients. Both on every
instruction set, on CUDA and on Metal."""

from __future__ import annotations

import orchard_core as oc
import pytest
import torch
from _flash_devices import backward as run_backward
from _flash_devices import device_tensor, torch_device
from _flash_devices import forward as run_forward
from _flash_reference import as_numpy, assert_lse_close, max_error, random_qkv, reference

SHAPES = [  # batch, heads, heads_kv, len_q, len_k, dim
    (1, 1, 1, 1, 1, 8),
    (2, 4, 2, 113, 203, 40),
    (1, 2, 1, 203, 113, 128),
    (1, 3, 1, 67, 67, 256),
    (2, 3, 1, 70, 300, 64),
    (1, 2, 2, 45, 77, 72),  # head dims inside a tile tier: Metal's 128 and 256 kernels cut their loops
    (1, 1, 1, 29, 51, 136),
    (1, 1, 1, 1000, 1000, 64),
]
MASKS = [(False, "bottom_right"), (True, "bottom_right"), (True, "top_left")]

# With one key (len_k = 1) the exact dq and dk are 0 and naive 16-bit attention gets exactly 0,
# while the kernel's dS = P (dP - rowsum(dO * O)) cancels two float32 dot products of the same
# values summed in different orders: float32 rounding noise (~1e-7 here), far below one 16-bit
# ulp of the other gradients. That much absolute slack keeps "2x zero" from failing on noise,
# on Metal too (the same two float32 dot products, in other orders); CUDA gets ten times more, as
# its reductions (warp shuffles, other orders) are not the CPU's.
SLACK = {"cpu": 1e-6, "cuda": 1e-5, "metal": 1e-6}


def check_16bit(rng, device, dtype, shape, causal, alignment) -> None:
    """The kernels on ``device`` in ``dtype`` (torch's) against float64 and naive attention."""
    q, k, v = (torch.tensor(x, dtype=dtype) for x in random_qkv(rng, *shape))
    dout = torch.tensor(rng.standard_normal(q.shape), dtype=dtype)
    kw = dict(causal=causal, alignment=alignment)
    exact = [as_numpy(x) for x in (q, k, v, dout)]  # the 16-bit values, exactly, in float64
    want_out, want_lse, *want_grads = reference(*exact, **kw)
    naive_out, _, *naive_grads = reference(*exact, dtype=dtype, device=torch_device(device), **kw)

    q, k, v, dout = (device_tensor(x, device) for x in (q, k, v, dout))
    out, lse = run_forward(q, k, v, causal=causal, causal_alignment=alignment)
    grads = run_backward(dout, q, k, v, out, lse, causal=causal, causal_alignment=alignment)
    assert out.dtype == getattr(oc, str(dtype).removeprefix("torch.")) and lse.dtype == oc.float32
    assert all(g.dtype == out.dtype for g in grads)

    slack = SLACK[device.partition(":")[0]]
    out_err, naive_err = max_error(out, want_out), max_error(naive_out, want_out)
    assert out_err <= 2 * naive_err + slack, (out_err, naive_err)
    for name, g, w, n in zip(("dq", "dk", "dv"), grads, want_grads, naive_grads, strict=True):
        err, naive_err = max_error(g, w), max_error(n, w)
        assert err <= 3 * naive_err + slack, (name, err, naive_err)
    # lse is float32, computed from the exact 16-bit values: float32 accuracy, not 16-bit's.
    assert_lse_close(lse, want_lse, atol=1e-4)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize(("causal", "alignment"), MASKS, ids=["full", "causal_br", "causal_tl"])
def test_bfloat16_within_flash_attn_bounds(rng, device, shape, causal, alignment):
    check_16bit(rng, device, torch.bfloat16, shape, causal, alignment)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize(("causal", "alignment"), MASKS, ids=["full", "causal_br", "causal_tl"])
def test_float16_within_flash_attn_bounds(rng, device, shape, causal, alignment):
    check_16bit(rng, device, torch.float16, shape, causal, alignment)
