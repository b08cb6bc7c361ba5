"""flash_attention through orchard_core's autograd: float64 gradcheck (finite differences)
with causal masks, GQA, dropout and the lse output, and .grad against backward()."""

from __future__ import annotations

import numpy as np
import orchard_core as oc
import orchard_flash as of
import pytest
import torch
from _flash_reference import as_numpy, random_qkv
from orchard_core.autograd import gradcheck, no_grad


def leaves(rng, shape, dtype=oc.float64):
    return [oc.tensor(x, dtype=dtype).requires_grad_() for x in random_qkv(rng, *shape)]


GRADCHECKS = [  # shape (batch, heads, heads_kv, len_q, len_k, dim), options
    ((1, 1, 1, 5, 7, 8), {}),
    ((2, 2, 1, 6, 5, 8), {"causal": True}),  # GQA; bottom-right: row 0 sees nothing
    ((1, 4, 2, 7, 4, 8), {"causal": True, "causal_alignment": "top_left"}),
    ((1, 2, 1, 5, 9, 16), {"scale": 0.7}),
    ((1, 2, 2, 6, 7, 8), {"dropout_p": 0.3, "seed": 1234}),
    ((1, 4, 2, 5, 8, 8), {"dropout_p": 0.5, "seed": 2**63 + 5, "causal": True}),
]


@pytest.mark.parametrize(("shape", "options"), GRADCHECKS, ids=lambda x: str(x))
def test_gradcheck(rng, isa, shape, options):
    inputs = leaves(rng, shape)
    assert gradcheck(lambda q, k, v: of.flash_attention(q, k, v, **options), inputs)


@pytest.mark.parametrize(
    "options",
    [{}, {"causal": True}, {"causal": True, "causal_alignment": "top_left"}, {"dropout_p": 0.4, "seed": 99}],
    ids=["full", "causal_br", "causal_tl", "dropout"],
)
def test_gradcheck_with_lse(rng, isa, options):
    # Both outputs: out and the row log-sum-exp (len_q <= len_k, so every row sees a key).
    inputs = leaves(rng, (1, 4, 2, 5, 7, 8))
    assert gradcheck(lambda q, k, v: of.flash_attention(q, k, v, return_lse=True, **options), inputs)


def test_gradcheck_lse_alone(rng):
    inputs = leaves(rng, (1, 2, 1, 4, 6, 8))
    assert gradcheck(lambda q, k, v: of.flash_attention(q, k, v, return_lse=True)[1], inputs)


@pytest.mark.parametrize("dtype", [oc.float32, oc.bfloat16, oc.float64], ids=lambda d: d.name)
@pytest.mark.parametrize("return_lse", [False, True])
def test_grad_matches_backward(rng, isa, dtype, return_lse):
    shape = (2, 4, 2, 70, 150, 24)
    q, k, v = leaves(rng, shape, dtype)
    dout = oc.tensor(rng.standard_normal((2, 4, 70, 24)), dtype=dtype)
    row = oc.float64 if dtype == oc.float64 else oc.float32
    dlse = oc.tensor(rng.standard_normal((2, 4, 70)), dtype=row)
    options = {"causal": True, "dropout_p": 0.2, "seed": 7}
    if return_lse:
        out, lse = of.flash_attention(q, k, v, return_lse=True, **options)
        loss = (out * dout).sum() + (lse * dlse).sum()
    else:
        out = of.flash_attention(q, k, v, **options)
        loss = (out * dout).sum()
    assert isinstance(out, oc.Tensor) and out.requires_grad
    loss.backward()
    with no_grad():
        saved_out, saved_lse = of.forward(q, k, v, **options)
        want = of.backward(dout, q, k, v, saved_out, saved_lse, dlse=dlse if return_lse else None, **options)
    for leaf, w in zip((q, k, v), want, strict=True):
        assert leaf.grad is not None and leaf.grad.shape == leaf.shape and leaf.grad.dtype == dtype
        np.testing.assert_allclose(as_numpy(leaf.grad), as_numpy(w), rtol=1e-6, atol=1e-7)


def test_self_attention_on_one_leaf_sums_the_gradients(rng):
    x = oc.tensor(rng.standard_normal((1, 2, 30, 16))).requires_grad_()
    dout = oc.tensor(rng.standard_normal((1, 2, 30, 16)))
    (of.flash_attention(x, x, x, causal=True) * dout).sum().backward()
    with no_grad():
        out, lse = of.forward(x, x, x, causal=True)
        dq, dk, dv = of.backward(dout, x, x, x, out, lse, causal=True)
    np.testing.assert_allclose(
        as_numpy(x.grad), as_numpy(dq) + as_numpy(dk) + as_numpy(dv), rtol=1e-12, atol=1e-14
    )


def test_only_some_inputs_need_grad(rng):
    q, k, v = (oc.tensor(x) for x in random_qkv(rng, 1, 2, 1, 9, 11, 8))
    q.requires_grad_()
    out = of.flash_attention(q, k, v, causal=True)
    (out * out).sum().backward()
    assert q.grad is not None and q.grad.shape == q.shape
    assert k.grad is None and v.grad is None


def test_torch_and_numpy_inputs_work_without_grad(rng):
    q, k, v = random_qkv(rng, 1, 2, 1, 9, 11, 8)
    want = as_numpy(of.forward(*(oc.tensor(x, dtype=oc.float32) for x in (q, k, v)), causal=True)[0])
    for make in (lambda x: torch.tensor(x, dtype=torch.float32), lambda x: x.astype(np.float32)):
        out = of.flash_attention(*(make(x) for x in (q, k, v)), causal=True)
        assert isinstance(out, oc.Tensor) and not out.requires_grad and out.grad_fn is None
        assert as_numpy(out).tobytes() == want.tobytes()
        out, lse = of.flash_attention(*(make(x) for x in (q, k, v)), causal=True, return_lse=True)
        assert lse.shape == (1, 2, 9)


def test_no_grad_records_nothing(rng):
    q, k, v = leaves(rng, (1, 1, 1, 5, 5, 8))
    with no_grad():
        out = of.flash_attention(q, k, v)
    assert not out.requires_grad and out.grad_fn is None


def test_rows_without_keys_give_zero_gradients(rng):
    # Bottom-right causal with len_q > len_k: the first rows see nothing; out is 0 there and
    # contributes no gradient, and nothing is NaN.
    q, k, v = leaves(rng, (1, 2, 1, 20, 6, 8), oc.float32)
    out, lse = of.flash_attention(q, k, v, causal=True, return_lse=True)
    got_out, got_lse = as_numpy(out), as_numpy(lse)
    assert np.all(got_out[:, :, :14] == 0) and np.all(got_lse[:, :, :14] == -np.inf)
    assert np.isfinite(got_lse[:, :, 14:]).all()
    (out * out.exp()).sum().backward()
    for leaf in (q, k, v):
        assert np.isfinite(as_numpy(leaf.grad)).all()
    assert np.all(as_numpy(q.grad)[:, :, :14] == 0)
