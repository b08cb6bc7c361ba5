"""Caller-provided output buffers (a bridge passes torch-allocated tensors): written in place,
bitwise the results of a call that allocates its own, and checked before any write; on every
instruction set, on CUDA (torch CUDA buffers) and on Metal (orchard metal buffers)."""

from __future__ import annotations

import orchard_core as oc
import orchard_flash as of
import pytest
from _flash_devices import DeviceTensor, as_device_tensor, device_tensor, filled, same_values
from _flash_reference import random_qkv

NAN = float("nan")


def device_qkv(rng, device, *shape) -> list[DeviceTensor]:
    return [device_tensor(x.astype("float32"), device) for x in random_qkv(rng, *shape)]


@pytest.mark.parametrize("causal", [False, True])
def test_buffers_receive_the_results(rng, device, causal):
    q, k, v = device_qkv(rng, device, 2, 4, 2, 77, 130, 40)
    dout = device_tensor(rng.standard_normal(q.shape).astype("float32"), device)
    want_out, want_lse = of.forward(q, k, v, causal=causal, dropout_p=0.2, seed=7)
    out, lse = filled(q, NAN), filled(q, NAN, q.shape[:3])
    got = of.forward(q, k, v, causal=causal, dropout_p=0.2, seed=7, out=out, lse=lse)
    assert got[0].data_ptr() == out.data_ptr()
    assert same_values(out, want_out) and same_values(lse, want_lse)
    want = of.backward(dout, q, k, v, out, lse, causal=causal, dropout_p=0.2, seed=7)
    grads = [filled(t, NAN) for t in (q, k, v)]
    got = of.backward(
        dout, q, k, v, out, lse, causal=causal, dropout_p=0.2, seed=7, dq=grads[0], dk=grads[1], dv=grads[2]
    )
    for g, buffer, w in zip(got, grads, want, strict=True):
        assert g.data_ptr() == buffer.data_ptr()
        assert same_values(buffer, w)


def test_bad_buffers_raise(rng, any_device):
    q, k, v = device_qkv(rng, any_device, 1, 2, 1, 9, 11, 16)
    out, lse = (as_device_tensor(t) for t in of.forward(q, k, v))
    dout = device_tensor(rng.standard_normal(q.shape).astype("float32"), any_device)
    cases = [
        (
            {"out": filled(q, NAN, (1, 2, 9, 8))},
            r"out must be a contiguous float32 tensor of shape \(1, 2, 9, 16\)",
        ),
        ({"out": filled(q, NAN, dtype=oc.float64)}, "got float64"),
        ({"out": filled(q, NAN, (1, 2, 16, 9)).transpose(2, 3)}, "got a non-contiguous float32"),
        (
            {"lse": filled(q, NAN, (1, 2, 9), oc.float64)},
            r"lse must be a contiguous float32 tensor of shape \(1, 2, 9\)",
        ),
        ({"out": q}, "out overlaps the input q in memory"),
        ({"lse": k.view(-1)[:18].view(1, 2, 9)}, "lse overlaps the input k in memory"),
    ]
    for buffers, message in cases:
        with pytest.raises(ValueError, match=message):
            of.forward(q, k, v, **buffers)
    with pytest.raises(ValueError, match=r"dk must be a contiguous float32 tensor of shape \(1, 1, 11, 16\)"):
        of.backward(dout, q, k, v, out, lse, dk=filled(q, NAN))
    with pytest.raises(ValueError, match="dq overlaps the input dout in memory"):
        of.backward(dout, q, k, v, out, lse, dq=dout)
