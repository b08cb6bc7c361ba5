"""CUDA only: bitwise repeatability, mixed devices, streams, block-unaligned shapes in float16
and bfloat16, and one long sequence.

Every test takes the ``cuda`` fixture: skipped, with the reason, where orchard-flash has no
CUDA device. The grids of the other test files run on CUDA too (the ``device`` fixture), the GPU
dropout mask against the CPU's among them (test_dropout.py, with Metal's).
"""

from __future__ import annotations

import re

import numpy as np
import orchard_core as oc
import orchard_flash as of
import pytest
import torch
from _flash_devices import as_torch, on
from _flash_devices import backward as run_backward
from _flash_devices import forward as run_forward
from _flash_reference import as_numpy, assert_lse_close, max_error, random_qkv, reference, reference_keep_mask

MASKS = [(False, "bottom_right"), (True, "bottom_right"), (True, "top_left")]
MASK_IDS = ["full", "causal_br", "causal_tl"]
GRAD_RTOL = 3e-5  # float32 gradients, relative to the largest entry (see test_backward.py)
SLACK = 1e-5  # the absolute floor of the 16-bit bounds (see test_bfloat16.py)


def random_seed(rng) -> int:
    return int(rng.integers(0, 2**64, dtype=np.uint64))


def torch_on(x, device, dtype) -> torch.Tensor:
    """numpy values as a torch ``dtype`` tensor on ``device`` (converted on the CPU)."""
    return torch.tensor(np.asarray(x), dtype=dtype).to(device)


def test_available_devices_lists_cpu_and_cuda(cuda):
    devices = of.available_devices()
    assert devices[0] == "cpu" and cuda in devices


# ---- determinism -----------------------------------------------------------------------------


def random_problem(rng, device, dtype):
    """One random shape with several query and key blocks, GQA, and a random dropout seed."""
    heads_kv = int(rng.choice([1, 2, 4]))
    shape = (2, 4 * heads_kv, heads_kv, int(rng.integers(200, 800)), int(rng.integers(200, 1200)))
    dim = int(rng.choice([40, 64, 128]))
    q, k, v = (torch_on(x, device, dtype) for x in random_qkv(rng, *shape, dim))
    dout = torch_on(rng.standard_normal(q.shape), device, dtype)
    dlse = torch_on(rng.standard_normal(q.shape[:3]), device, torch.float32)
    options = dict(causal=True, dropout_p=0.15, seed=random_seed(rng))
    print(f"shape {(*shape, dim)}, {options}")
    return q, k, v, dout, dlse, options


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32], ids=str)
def test_forward_is_bitwise_repeatable(rng, cuda, dtype):
    q, k, v, _, _, options = random_problem(rng, cuda, dtype)
    first = [as_torch(t).clone() for t in of.forward(q, k, v, **options)]
    for run in range(100):
        again = of.forward(q, k, v, **options)
        for name, a, b in zip(("out", "lse"), first, again, strict=True):
            assert torch.equal(a, as_torch(b)), f"{name} differs on run {run + 1}"


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32], ids=str)
def test_backward_is_bitwise_repeatable(rng, cuda, dtype):
    q, k, v, dout, dlse, options = random_problem(rng, cuda, dtype)
    out, lse = of.forward(q, k, v, **options)
    first = [as_torch(t).clone() for t in of.backward(dout, q, k, v, out, lse, dlse=dlse, **options)]
    for run in range(100):
        again = of.backward(dout, q, k, v, out, lse, dlse=dlse, **options)
        for name, a, b in zip(("dq", "dk", "dv"), first, again, strict=True):
            assert torch.equal(a, as_torch(b)), f"{name} differs on run {run + 1}"


# ---- dropout ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("causal", "alignment"), MASKS, ids=MASK_IDS)
@pytest.mark.parametrize("dtype", [oc.float32, oc.bfloat16], ids=lambda d: d.name)
def test_dropout_matches_the_reference_with_the_cpu_mask(rng, cuda, dtype, causal, alignment):
    batch, heads, heads_kv, len_q, len_k, dim = 2, 4, 2, 133, 257, 64
    q, k, v = random_qkv(rng, batch, heads, heads_kv, len_q, len_k, dim)
    dout = rng.standard_normal(q.shape)
    dlse = rng.standard_normal(q.shape[:3]).astype(np.float32).astype(np.float64)  # as the kernels see it
    tensors = [on(x, cuda, dtype) for x in (q, k, v, dout)]
    exact = [as_numpy(t) for t in tensors]  # the values the kernels see
    p, seed = 0.3, random_seed(rng)
    keep = np.asarray(of.dropout_mask(batch, heads, len_q, len_k, dropout_p=p, seed=seed, device="cpu"))
    kw = dict(causal=causal, causal_alignment=alignment, dropout_p=p, seed=seed)
    out, lse = run_forward(*tensors[:3], **kw)
    grads = run_backward(tensors[3], *tensors[:3], out, lse, dlse=on(dlse, cuda), **kw)
    ref = dict(causal=causal, alignment=alignment, keep=keep, dropout_p=p)
    want_out, want_lse, *want = reference(*exact, dlse, **ref)
    assert_lse_close(lse, want_lse, atol=1e-4)
    if dtype == oc.float32:
        assert max_error(out, want_out) < 1e-4
        scale = max(np.abs(w).max() for w in want)
        for name, g, w in zip(("dq", "dk", "dv"), grads, want, strict=True):
            assert max_error(g, w) <= GRAD_RTOL * scale, name
        return
    naive_out, _, *naive = reference(*exact, dlse, dtype=torch.bfloat16, device=cuda, **ref)
    assert max_error(out, want_out) <= 2 * max_error(naive_out, want_out) + SLACK
    for name, g, w, n in zip(("dq", "dk", "dv"), grads, want, naive, strict=True):
        assert max_error(g, w) <= 3 * max_error(n, w) + SLACK, name


@pytest.mark.parametrize(("causal", "alignment"), MASKS, ids=MASK_IDS)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_dropout_forward_over_many_tiles_per_cta(rng, cuda, dtype, causal, alignment):
    # More query tiles (3 x 72 x 2) than any GPU has multiprocessors: each persistent CTA of the
    # Hopper forward takes several, its stage ring and (at D = 64) its warpgroups' turns running
    # on across them, and each tile draws its own dropout.
    batch, heads, heads_kv, len_q, len_k, dim = 2, 72, 24, 300, 290, 64
    q, k, v = (torch_on(x, cuda, dtype) for x in random_qkv(rng, batch, heads, heads_kv, len_q, len_k, dim))
    p, seed = 0.25, random_seed(rng)
    print(f"seed {seed}")
    keep = reference_keep_mask(batch, heads, len_q, len_k, dropout_p=p, seed=seed)
    exact = [as_numpy(x) for x in (q, k, v)]
    ref = dict(causal=causal, alignment=alignment, keep=keep, dropout_p=p)
    want, _ = reference(*exact, device=cuda, **ref)
    naive, _ = reference(*exact, dtype=dtype, device=cuda, **ref)
    out, _ = of.forward(q, k, v, causal=causal, causal_alignment=alignment, dropout_p=p, seed=seed)
    assert max_error(out, want) <= 2 * max_error(naive, want) + SLACK


# ---- devices and streams ---------------------------------------------------------------------


def test_mixed_devices_raise(rng, cuda):
    q, k, v = (on(x, cuda) for x in random_qkv(rng, 1, 2, 1, 9, 11, 16))
    # Both devices named, in the arguments' order, as for any other pair of devices.
    with pytest.raises(ValueError, match=re.escape(f"must be on one device, got {cuda}, cpu and {cuda}")):
        of.forward(q, k.cpu(), v)
    with pytest.raises(ValueError, match=re.escape(f"must be on one device, got cpu, {cuda} and {cuda}")):
        of.forward(q.cpu(), k, v)
    out, lse = (as_torch(t) for t in of.forward(q, k, v))
    dout = torch.ones_like(q)
    with pytest.raises(TypeError, match=f"dout is float32 on cpu, q is float32 on {cuda}"):
        of.backward(dout.cpu(), q, k, v, out, lse)
    with pytest.raises(ValueError, match=rf"lse must be float32 of shape .* on {cuda}, got .* on cpu"):
        of.backward(dout, q, k, v, out, lse.cpu())


def test_buffers_on_the_wrong_device_raise(rng, cuda):
    q, k, v = (on(x, cuda) for x in random_qkv(rng, 1, 2, 1, 9, 11, 16))
    on_gpu = rf"must be a contiguous float32 tensor of shape .* on {cuda}, got float32 .* on cpu"
    with pytest.raises(ValueError, match="out " + on_gpu):
        of.forward(q, k, v, out=torch.empty(q.shape))
    with pytest.raises(ValueError, match="lse " + on_gpu):
        of.forward(q, k, v, lse=torch.empty(q.shape[:3]))
    out, lse = (as_torch(t) for t in of.forward(q, k, v))
    dout = torch.ones_like(q)
    with pytest.raises(ValueError, match="dq " + on_gpu):
        of.backward(dout, q, k, v, out, lse, dq=torch.empty(q.shape))
    with pytest.raises(ValueError, match="dv " + on_gpu):
        of.backward(dout, q, k, v, out, lse, dv=torch.empty(v.shape))
    # And a CUDA buffer for CPU inputs.
    cpu = [x.cpu() for x in (q, k, v)]
    on_cpu = rf"must be a contiguous float32 tensor of shape .* on cpu, got float32 .* on {cuda}"
    with pytest.raises(ValueError, match="out " + on_cpu):
        of.forward(*cpu, out=torch.empty(q.shape, device=cuda))


def _forward_backward(q, k, v, dout, dlse, **options) -> list[torch.Tensor]:
    """forward + backward, each result cloned (on the current stream)."""
    out, lse = of.forward(q, k, v, **options)
    grads = of.backward(dout, q, k, v, out, lse, dlse=dlse, **options)
    return [as_torch(t).clone() for t in (out, lse, *grads)]


def _sleep(ms: int) -> None:
    """Keeps the current stream busy for about ``ms`` milliseconds (when torch can)."""
    if hasattr(torch.cuda, "_sleep"):
        torch.cuda._sleep(ms * 2_000_000)  # clock cycles; about ms at 2 GHz


@pytest.mark.parametrize("how", ["current", "argument"])
def test_other_stream_gives_the_default_streams_results(rng, cuda, how):
    # The kernels must run on torch's current stream (or stream=): here a side stream whose
    # q is written only after a ~50 ms sleep on that stream. Kernels on any other stream would
    # read q before the write and give other results.
    q, k, v, dout, dlse, options = random_problem(rng, cuda, torch.bfloat16)
    want = _forward_backward(q, k, v, dout, dlse, **options)
    side = torch.cuda.Stream(device=cuda)
    stale = torch.zeros_like(q)
    torch.cuda.synchronize()
    if how == "current":
        with torch.cuda.stream(side):
            _sleep(50)
            stale.copy_(q)
            got = _forward_backward(stale, k, v, dout, dlse, **options)
    else:
        with torch.cuda.stream(side):
            _sleep(50)
            stale.copy_(q)
        # Called from the default stream, naming the side stream; the clones below then run on
        # the default stream, so it must wait for the side stream first.
        out, lse = of.forward(stale, k, v, stream=side, **options)
        grads = of.backward(dout, stale, k, v, out, lse, dlse=dlse, stream=side, **options)
        torch.cuda.current_stream(cuda).wait_stream(side)
        got = [as_torch(t).clone() for t in (out, lse, *grads)]
    torch.cuda.synchronize()
    for name, a, b in zip(("out", "lse", "dq", "dk", "dv"), got, want, strict=True):
        assert torch.equal(a, b), f"{name} differs on another stream"


# ---- shapes that fit no block ----------------------------------------------------------------

ODD_SHAPES = [  # batch, heads, heads_kv, len_q, len_k: lengths around and between block sizes
    (1, 2, 2, 1, 1),
    (2, 8, 2, 17, 17),  # GQA 8:2
    (1, 4, 1, 63, 65),  # MQA
    (1, 8, 2, 65, 63),
    (2, 4, 1, 127, 129),
    (1, 2, 2, 129, 127),
    (1, 8, 2, 257, 257),
    (1, 4, 1, 1, 257),  # one query row (decoding)
    (1, 2, 1, 1000, 257),  # bottom-right: the first 743 rows see no key
    (1, 1, 1, 257, 1000),
    (1, 1, 1, 1000, 1000),
]


@pytest.mark.parametrize(("causal", "alignment"), MASKS, ids=MASK_IDS)
@pytest.mark.parametrize("dim", [8, 40, 64, 72, 128, 136, 256])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_odd_shapes(rng, cuda, dtype, dim, causal, alignment):
    # The float64 reference runs on the GPU here (float64 is float64 on either side; the CPU
    # would take seconds per test over eleven shapes).
    kw = dict(causal=causal, alignment=alignment)
    for batch, heads, heads_kv, len_q, len_k in ODD_SHAPES:
        shape = (batch, heads, heads_kv, len_q, len_k, dim)
        q, k, v = (torch_on(x, cuda, dtype) for x in random_qkv(rng, *shape))
        dout = torch_on(rng.standard_normal(q.shape), cuda, dtype)
        exact = [as_numpy(x) for x in (q, k, v, dout)]
        want_out, want_lse, *want = reference(*exact, device=cuda, **kw)
        naive_out, _, *naive = reference(*exact, dtype=dtype, device=cuda, **kw)
        out, lse = run_forward(q, k, v, causal=causal, causal_alignment=alignment)
        grads = run_backward(dout, q, k, v, out, lse, causal=causal, causal_alignment=alignment)
        where = f"shape {shape}"
        err, naive_err = max_error(out, want_out), max_error(naive_out, want_out)
        assert err <= 2 * naive_err + SLACK, (where, "out", err, naive_err)
        for name, g, w, n in zip(("dq", "dk", "dv"), grads, want, naive, strict=True):
            err, naive_err = max_error(g, w), max_error(n, w)
            assert err <= 3 * naive_err + SLACK, (where, name, err, naive_err)
        assert_lse_close(lse, want_lse, atol=1e-4)


# ---- a long sequence -------------------------------------------------------------------------


@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_long_sequence_bfloat16(rng, cuda, causal):
    # L = 4096, D = 128: the reference is float32 on the GPU (float64 on the CPU would take
    # minutes), which is exact enough next to bfloat16's errors (2^-24 against 2^-8). torch
    # multiplies float32 in full precision by default (no TF32), which this relies on.
    shape = (1, 4, 2, 4096, 4096, 128)
    q, k, v = (torch_on(x, cuda, torch.bfloat16) for x in random_qkv(rng, *shape))
    dout = torch_on(rng.standard_normal(q.shape), cuda, torch.bfloat16)
    exact = [as_numpy(x) for x in (q, k, v, dout)]
    want_out, want_lse, *want = reference(*exact, dtype=torch.float32, device=cuda, causal=causal)
    naive_out, _, *naive = reference(*exact, dtype=torch.bfloat16, device=cuda, causal=causal)
    out, lse = run_forward(q, k, v, causal=causal)
    grads = run_backward(dout, q, k, v, out, lse, causal=causal)
    err, naive_err = max_error(out, want_out), max_error(naive_out, want_out)
    assert err <= 2 * naive_err + SLACK, ("out", err, naive_err)
    for name, g, w, n in zip(("dq", "dk", "dv"), grads, want, naive, strict=True):
        err, naive_err = max_error(g, w), max_error(n, w)
        assert err <= 3 * naive_err + SLACK, (name, err, naive_err)
    # Sums of 4096 float32 terms, on both sides: 1e-3 rather than the 1e-4 of shorter rows.
    assert_lse_close(lse, want_lse, atol=1e-3)


# ---- the non-deterministic backward (dq summed with atomics) ----------------------------------


@pytest.mark.parametrize("p", [0.0, 0.2])
@pytest.mark.parametrize(("causal", "alignment"), MASKS, ids=MASK_IDS)
@pytest.mark.parametrize("dim", [40, 64, 96, 128])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_atomic_backward_matches_the_reference(rng, cuda, dtype, dim, causal, alignment, p):
    # deterministic=False takes the Hopper kernels' atomic dQ path where the GPU has it (the
    # other tiers ignore the flag): the deterministic kernels' bounds, dropout (a kernel of its
    # own) and dlse included.
    kw = dict(causal=causal, alignment=alignment)
    for batch, heads, heads_kv, len_q, len_k in [
        (2, 8, 2, 65, 200),
        (1, 4, 1, 300, 130),
        (1, 2, 2, 257, 257),
    ]:
        shape = (batch, heads, heads_kv, len_q, len_k, dim)
        q, k, v = (torch_on(x, cuda, dtype) for x in random_qkv(rng, *shape))
        dout = torch_on(rng.standard_normal(q.shape), cuda, dtype)
        dlse = torch_on(rng.standard_normal(q.shape[:3]), cuda, torch.float32)
        seed = random_seed(rng)
        keep = reference_keep_mask(batch, heads, len_q, len_k, dropout_p=p, seed=seed)
        exact = [as_numpy(x) for x in (q, k, v, dout)]
        drop = dict(keep=keep, dropout_p=p)
        _, _, *want = reference(*exact, dlse=as_numpy(dlse), device=cuda, **kw, **drop)
        _, _, *naive = reference(*exact, dlse=as_numpy(dlse), dtype=dtype, device=cuda, **kw, **drop)
        options = dict(causal=causal, causal_alignment=alignment, dropout_p=p, seed=seed)
        out, lse = of.forward(q, k, v, **options)
        fast = of.backward(dout, q, k, v, out, lse, dlse=dlse, deterministic=False, **options)
        where = f"shape {shape}"
        for name, g, w, n in zip(("dq", "dk", "dv"), fast, want, naive, strict=True):
            err, naive_err = max_error(g, w), max_error(n, w)
            assert err <= 3 * naive_err + SLACK, (where, name, err, naive_err)
