"""Edge cases: rows that see no key, empty tensors (no keys, no queries, no batch, no heads),
huge logits in the backward pass, and strided gradients of the output; on every instruction set,
on CUDA and on Metal."""

from __future__ import annotations

import numpy as np
import orchard_core as oc
import orchard_flash as of
import pytest
from _flash_devices import backward as run_backward
from _flash_devices import device_tensor, on, require_kernels_for
from _flash_devices import forward as run_forward
from _flash_reference import as_numpy, random_qkv, reference, reference_keep_mask

DTYPES = [oc.float32, oc.bfloat16, oc.float64]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("dropout_p", [0.0, 0.3])
def test_rows_that_see_no_key(rng, device, dtype, dropout_p):
    require_kernels_for(device, dtype)
    check_rows_that_see_no_key(rng, device, dtype, dropout_p)


@pytest.mark.parametrize("dropout_p", [0.0, 0.3])
def test_rows_that_see_no_key_float16(rng, accelerator, dropout_p):
    check_rows_that_see_no_key(rng, accelerator, oc.float16, dropout_p)


def check_rows_that_see_no_key(rng, device, dtype, dropout_p):
    # Bottom-right causal with len_q > len_k: row i sees keys j <= i - (len_q - len_k), so the
    # first 150 rows (more than two query blocks) see nothing: output 0, lse -inf, and no
    # gradient flows from them (even with a dlse); no NaN anywhere.
    batch, heads, heads_kv, len_q, len_k, dim = 2, 4, 2, 230, 80, 16
    empty = len_q - len_k
    q, k, v = random_qkv(rng, batch, heads, heads_kv, len_q, len_k, dim)
    dout, dlse = rng.standard_normal(q.shape), rng.standard_normal(q.shape[:3])
    tensors = [on(x, device, dtype) for x in (q, k, v, dout)]
    row = oc.float64 if dtype == oc.float64 else oc.float32
    kw = dict(causal=True, dropout_p=dropout_p, seed=11)
    out, lse = run_forward(*tensors[:3], **kw)
    grads = run_backward(tensors[3], *tensors[:3], out, lse, dlse=on(dlse, device, row), **kw)
    got_out, got_lse = as_numpy(out), as_numpy(lse)
    assert np.all(got_out[:, :, :empty] == 0)
    assert np.all(got_lse[:, :, :empty] == -np.inf)
    assert np.isfinite(got_lse[:, :, empty:]).all() and np.isfinite(got_out).all()
    for g in grads:
        assert np.isfinite(as_numpy(g)).all()
    assert np.all(as_numpy(grads[0])[:, :, :empty] == 0)
    # And the rest is right (float64 reference on the rounded inputs).
    exact = [as_numpy(t) for t in tensors]
    keep = (
        reference_keep_mask(batch, heads, len_q, len_k, dropout_p=dropout_p, seed=11) if dropout_p else None
    )
    want_out, _, *want = reference(*exact, dlse, causal=True, keep=keep, dropout_p=dropout_p)
    tol = 0.05 if dtype in (oc.bfloat16, oc.float16) else 1e-4
    assert np.abs(got_out - want_out).max() < tol
    for g, w in zip(grads, want, strict=True):
        assert np.abs(as_numpy(g) - w).max() < tol * max(1.0, np.abs(w).max())


def test_whole_problem_without_visible_keys(rng, device):
    # len_q much longer than len_k with one key: only the last row sees it.
    q, k, v = (on(x, device) for x in random_qkv(rng, 1, 1, 1, 200, 1, 8))
    out, lse = run_forward(q, k, v, causal=True)
    got_out, got_lse = as_numpy(out), as_numpy(lse)
    assert np.all(got_out[:, :, :199] == 0) and np.all(got_lse[:, :, :199] == -np.inf)
    np.testing.assert_allclose(got_out[0, 0, 199], as_numpy(v)[0, 0, 0], rtol=1e-6)


EMPTY = [  # batch, heads, heads_kv, len_q, len_k: one of them 0
    (2, 4, 2, 5, 0),
    (2, 4, 2, 0, 7),
    (0, 4, 2, 5, 7),
    (2, 0, 2, 5, 7),
    (2, 4, 2, 0, 0),
]


@pytest.mark.parametrize("sizes", EMPTY, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
def test_empty_tensors(any_device, sizes, causal, dtype):
    # Nothing to attend to, or nothing asking: shapes come out right, rows with no key are 0
    # with lse -inf, and every gradient is 0 (out does not depend on q when there is no key).
    require_kernels_for(any_device, dtype)
    batch, heads, heads_kv, len_q, len_k = sizes
    dim = 16
    q = on(np.ones((batch, heads, len_q, dim)), any_device, dtype)
    k = on(np.ones((batch, heads_kv, len_k, dim)), any_device, dtype)
    v = on(np.ones((batch, heads_kv, len_k, dim)), any_device, dtype)
    kw = dict(causal=causal, dropout_p=0.1, seed=3)
    out, lse = run_forward(q, k, v, **kw)
    assert out.shape == q.shape and out.dtype == dtype
    assert lse.shape == (batch, heads, len_q)
    if len_k == 0:
        assert np.all(as_numpy(out) == 0) and np.all(as_numpy(lse) == -np.inf)
    dq, dk, dv = run_backward(q, q, k, v, out, lse, **kw)
    assert (dq.shape, dk.shape, dv.shape) == (q.shape, k.shape, v.shape)
    for g in (dq, dk, dv):
        assert g.dtype == dtype and np.all(as_numpy(g) == 0)


def test_empty_tensors_through_autograd():
    q = oc.ones(1, 2, 4, 8, dtype=oc.float64).requires_grad_()
    k = oc.ones(1, 1, 0, 8, dtype=oc.float64).requires_grad_()
    v = oc.ones(1, 1, 0, 8, dtype=oc.float64).requires_grad_()
    out = of.flash_attention(q, k, v)
    out.sum().backward()
    assert q.grad.shape == q.shape and np.all(as_numpy(q.grad) == 0)
    assert k.grad.shape == (1, 1, 0, 8) and v.grad.shape == (1, 1, 0, 8)


def test_zero_kv_heads_raise(any_device):
    q = on(np.ones((1, 0, 4, 8)), any_device)
    with pytest.raises(ValueError, match="not divisible by k/v's 0"):
        of.forward(q, q, q)


def test_huge_logits_backward(rng, device):
    # Scores of order 1e4 - 1e5: the recomputed probabilities exp(s - lse) must not overflow
    # and nothing may be NaN. Rows whose two best keys are close get dout = 0, so they add
    # nothing to any gradient; the others are one-hot, and dv holds their dout rows. The
    # backward recomputes each score and lse in float32, so the kept probability is off by a
    # few roundings of |s| (u |s| ~ 2e-3 here), and dv with it: the tolerance is 16 u max|s|.
    len_q, len_k = 90, 300
    q, k, v = (
        np.asarray(x, dtype=np.float32).astype(np.float64) for x in random_qkv(rng, 1, 2, 1, len_q, len_k, 64)
    )
    q = q * 1e4
    scores = np.einsum("bhid,bjd->bhij", q, k[:, 0]) / 8.0
    scores = np.where(np.arange(len_k) <= np.arange(len_q)[:, None] + len_k - len_q, scores, -np.inf)
    top2 = np.sort(scores, axis=-1)[..., -2:]
    clear = top2[..., 1] - top2[..., 0] > 100
    dout = np.where(clear[..., None], rng.standard_normal(q.shape), 0.0).astype(np.float32)
    tensors = [on(x, device) for x in (q, k, v, dout)]
    out, lse = run_forward(*tensors[:3], causal=True)
    grads = run_backward(tensors[3], *tensors[:3], out, lse, causal=True)
    for g in grads:
        assert np.isfinite(as_numpy(g)).all()
    want_dv = reference(q, k, v, dout.astype(np.float64), causal=True)[4]
    rtol = 16 * 2.0**-24 * np.abs(top2[..., 1]).max()
    assert np.abs(as_numpy(grads[2]) - want_dv).max() < rtol * np.abs(want_dv).max()


def test_non_contiguous_dout_matches_contiguous(rng, device):
    q, k, v = (device_tensor(x.astype(np.float32), device) for x in random_qkv(rng, 2, 3, 1, 70, 90, 32))
    dout = device_tensor(rng.standard_normal((2, 70, 3, 32)).astype(np.float32), device).transpose(1, 2)
    assert not dout.is_contiguous()
    out, lse = run_forward(q, k, v, causal=True)
    got = run_backward(dout, q, k, v, out, lse, causal=True)
    want = run_backward(dout.contiguous(), q, k, v, out, lse, causal=True)
    for g, w in zip(got, want, strict=True):
        assert as_numpy(g).tobytes() == as_numpy(w).tobytes()
