"""Caller-provided output buffers (a bridge passes torch-allocated tensors): written in place,
bitwise the results of a call that allocates its own, and checked before any write; on every
instruction set and on CUDA (torch CUDA buffers)."""

from __future__ import annotations

import orchard_flash as of
import pytest
import torch
from _flash_reference import random_qkv


def torch_qkv(rng, device, *shape):
    return [torch.from_numpy(x.astype("float32")).to(device) for x in random_qkv(rng, *shape)]


@pytest.mark.parametrize("causal", [False, True])
def test_buffers_receive_the_results(rng, device, causal):
    q, k, v = torch_qkv(rng, device, 2, 4, 2, 77, 130, 40)
    dout = torch.from_numpy(rng.standard_normal(q.shape).astype("float32")).to(device)
    want_out, want_lse = (
        torch.from_dlpack(t) for t in of.forward(q, k, v, causal=causal, dropout_p=0.2, seed=7)
    )
    out, lse = torch.full_like(q, float("nan")), torch.full(q.shape[:3], float("nan"), device=q.device)
    got = of.forward(q, k, v, causal=causal, dropout_p=0.2, seed=7, out=out, lse=lse)
    assert torch.from_dlpack(got[0]).data_ptr() == out.data_ptr()
    assert torch.equal(out, want_out) and torch.equal(lse, want_lse)
    want = of.backward(dout, q, k, v, out, lse, causal=causal, dropout_p=0.2, seed=7)
    grads = [torch.full_like(t, float("nan")) for t in (q, k, v)]
    got = of.backward(
        dout, q, k, v, out, lse, causal=causal, dropout_p=0.2, seed=7, dq=grads[0], dk=grads[1], dv=grads[2]
    )
    for g, buffer, w in zip(got, grads, want, strict=True):
        assert torch.from_dlpack(g).data_ptr() == buffer.data_ptr()
        assert torch.equal(buffer, torch.from_dlpack(w))


def test_bad_buffers_raise(rng, any_device):
    device = any_device
    q, k, v = torch_qkv(rng, device, 1, 2, 1, 9, 11, 16)
    out, lse = (torch.from_dlpack(t) for t in of.forward(q, k, v))
    dout = torch.randn_like(q)
    cases = [
        (
            {"out": torch.empty(1, 2, 9, 8, device=device)},
            r"out must be a contiguous float32 tensor of shape \(1, 2, 9, 16\)",
        ),
        ({"out": torch.empty_like(q, dtype=torch.float64)}, "got float64"),
        ({"out": torch.empty(1, 2, 16, 9, device=device).transpose(2, 3)}, "got a non-contiguous float32"),
        (
            {"lse": torch.empty(1, 2, 9, dtype=torch.float64, device=device)},
            r"lse must be a contiguous float32 tensor of shape \(1, 2, 9\)",
        ),
        ({"out": q}, "out overlaps the input q in memory"),
        ({"lse": k.view(-1)[:18].view(1, 2, 9)}, "lse overlaps the input k in memory"),
    ]
    for buffers, message in cases:
        with pytest.raises(ValueError, match=message):
            of.forward(q, k, v, **buffers)
    with pytest.raises(ValueError, match=r"dk must be a contiguous float32 tensor of shape \(1, 1, 11, 16\)"):
        of.backward(dout, q, k, v, out, lse, dk=torch.empty_like(q))
    with pytest.raises(ValueError, match="dq overlaps the input dout in memory"):
        of.backward(dout, q, k, v, out, lse, dq=dout)
