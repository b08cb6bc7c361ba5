"""dropout's backward. Its values are drawn from orchard's own Philox stream, so unlike the
parity cases they cannot be compared with torch's: the gradient is checked against the mask
of the same call, against finite differences with the stream restarted before each
evaluation, and for the identity cases (training=False, p=0)."""

from __future__ import annotations

import numpy as np
import orchard_core as oc
import pytest


def _leaf(values, dtype=oc.float64, device="cpu"):
    return oc.tensor(values, dtype=dtype, device=device).requires_grad_()


@pytest.mark.parametrize("p", [0.2, 0.5, 0.9])
@pytest.mark.parametrize("shape", [(37,), (5, 13), (3, 1, 9)])
def test_gradient_is_the_calls_mask_scaled(rng, device, shape, p):
    x = _leaf(rng.uniform(0.5, 2.0, size=shape), device=device)  # no zeros: out != 0 is the mask
    out = oc.dropout(x, p)
    g = rng.standard_normal(shape)
    out.backward(oc.tensor(g, dtype=oc.float64, device=device))
    kept = np.asarray(out.detach().to("cpu")) != 0
    np.testing.assert_allclose(np.asarray(x.grad.to("cpu")), g * kept / (1 - p), rtol=1e-15, atol=0)


def test_gradient_keeps_the_mask_where_the_input_is_zero(rng):
    # A dropped element and a kept zero both give 0 in the output: the gradient tells them apart.
    shape = (11, 17)
    values = rng.standard_normal(shape)
    values[rng.random(shape) < 0.5] = 0.0
    x = _leaf(values)
    oc.manual_seed(41)
    out = oc.dropout(x, 0.4)
    g = rng.standard_normal(shape)
    out.backward(oc.tensor(g, dtype=oc.float64))
    oc.manual_seed(41)
    scale = np.asarray(oc.dropout(oc.ones(*shape, dtype=oc.float64), 0.4))
    np.testing.assert_array_equal(np.asarray(x.grad), g * scale)
    assert (scale == 0).any() and (values[scale != 0] == 0).any()


@pytest.mark.parametrize("dtype", [oc.float32, oc.float64, oc.bfloat16])
def test_output_equals_the_plain_draw(rng, dtype):
    values = rng.standard_normal((23, 9))
    oc.manual_seed(7)
    plain = oc.dropout(oc.tensor(values, dtype=dtype), 0.3)
    oc.manual_seed(7)
    recorded = oc.dropout(_leaf(values, dtype), 0.3)
    assert recorded.grad_fn is not None
    assert recorded.dtype == dtype
    np.testing.assert_array_equal(
        np.asarray(recorded.detach().to(oc.float64)), np.asarray(plain.to(oc.float64))
    )


def test_gradcheck_with_the_stream_restarted_before_each_evaluation(rng):
    def fn(x):
        oc.manual_seed(1234)
        return oc.dropout(x, 0.35)

    assert oc.autograd.gradcheck(fn, [_leaf(rng.standard_normal((4, 6)))])


@pytest.mark.parametrize(("p", "training"), [(0.5, False), (0.0, True)])
def test_identity_cases_pass_the_gradient_through(rng, p, training):
    values = rng.standard_normal((6, 5))
    x = _leaf(values)
    out = oc.dropout(x, p, training=training)
    np.testing.assert_array_equal(np.asarray(out.detach()), values)
    g = rng.standard_normal((6, 5))
    (out * 1.0).backward(oc.tensor(g, dtype=oc.float64))
    np.testing.assert_array_equal(np.asarray(x.grad), g)


def test_empty_input(device):
    x = _leaf(np.zeros((0, 3)), device=device)
    out = oc.dropout(x, 0.5)
    out.backward(oc.zeros(0, 3, dtype=oc.float64, device=device))
    assert x.grad.shape == (0, 3)


@pytest.mark.parametrize("dtype", [oc.float32, oc.bfloat16, oc.float16])
def test_gradient_bits_are_the_gradient_times_the_calls_scales(rng, device, dtype):
    """The backward reruns the draw on the gradient (no mask kept): each element is the gradient
    times its scale in float32, rounded once, for a gradient of any layout."""
    shape = (7, 33)
    oc.manual_seed(5)
    x = oc.tensor(rng.standard_normal(shape), dtype=dtype, device=device).requires_grad_()
    out = oc.dropout(x, 0.3)
    g = oc.tensor(rng.standard_normal((shape[1], shape[0])), dtype=dtype, device=device).mT  # strided
    out.backward(g)
    oc.manual_seed(5)
    scale = np.asarray(oc.dropout(oc.ones(*shape, dtype=oc.float32), 0.3))
    want = oc.tensor(np.asarray(g.to("cpu").to(oc.float32)) * scale, dtype=oc.float32).to(dtype)
    np.testing.assert_array_equal(
        np.asarray(x.grad.to("cpu").to(oc.float32)), np.asarray(want.to(oc.float32))
    )


def test_the_stream_advances_once_per_call(rng):
    """The backward reuses the call's counters: later draws are those after a plain dropout."""
    x = _leaf(rng.standard_normal((4, 25)))
    oc.manual_seed(3)
    oc.dropout(x, 0.5).sum().backward()
    after_training = np.asarray(oc.rand(8))
    oc.manual_seed(3)
    oc.dropout(oc.tensor(rng.standard_normal((4, 25))), 0.5)
    np.testing.assert_array_equal(after_training, np.asarray(oc.rand(8)))
