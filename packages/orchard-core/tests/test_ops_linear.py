"""linear (torch.nn.functional.linear) against torch (shapes, dtypes, errors) and float64 (values
and gradients), with the bound of test_ops_matmul.py: a sum of K products in precision u is
within c * K * u * (|A| @ |B|) of the exact value; the bias is one more term of the sum."""

from __future__ import annotations

import numpy as np
import orchard_core as oc
import pytest
import torch
from _core_helpers import OC, TORCH, host_values, random_array

UNIT_ROUNDOFF = {"float32": 2.0**-24, "float64": 2.0**-53, "bfloat16": 2.0**-24, "float16": 2.0**-24}
RESULT_ROUNDING = {"float32": 0.0, "float64": 0.0, "bfloat16": 2.0**-8, "float16": 2.0**-11}
# Half the spacing of float16's subnormals: the absolute rounding error of a tiny result.
RESULT_FLOOR = {"float32": 0.0, "float64": 0.0, "bfloat16": 0.0, "float16": 2.0**-25}
DTYPES = ["float32", "float64", "bfloat16", "float16"]

# (input shape, out_features): 1-D to 4-D inputs, empty dims, sizes that are multiples of no
# block size (the Metal kernel's 32x32x16 tiles with partial last ones).
CASES = [
    ((7,), 5),
    ((1, 7), 1),
    ((6, 1), 9),
    ((37, 41), 35),
    ((3, 5, 13), 11),
    ((2, 3, 4, 13), 6),
    ((0, 5), 3),
    ((4, 0), 3),
    ((4, 5), 0),
]
LAYOUTS = ["contiguous", "transposed", "sliced"]


def rounded(rng, shape, dtype: str) -> np.ndarray:
    """float64 values already rounded to `dtype` (float16's scaled into its range, 1e-6..4, so
    that no sum of products overflows)."""
    if dtype == "float16":
        return (random_array(rng, shape, "float32") / 1000).astype(np.float16).astype(np.float64)
    values = random_array(rng, shape, dtype)
    if dtype == "bfloat16":
        values = torch.from_numpy(values).to(torch.bfloat16).float().numpy()
    return values.astype(np.float64)


def on_device(values: np.ndarray, dtype: str, layout: str, device: str) -> oc.Tensor:
    """An orchard view of `values`: as created, a transposed view, or every other element."""
    if layout == "transposed" and values.ndim >= 2:
        view = oc.tensor(np.ascontiguousarray(np.swapaxes(values, -1, -2))).to(OC[dtype]).to(device).mT
    elif layout == "sliced":
        wide = np.zeros((*values.shape[:-1], 2 * values.shape[-1] + 1))
        wide[..., 1::2] = values
        view = oc.tensor(wide).to(OC[dtype]).to(device)[..., 1::2]
    else:
        view = oc.tensor(values).to(OC[dtype]).to(device)
    assert view.shape == values.shape
    return view


def assert_within_bound(result: np.ndarray, exact: np.ndarray, magnitude: np.ndarray, terms: int, dtype: str):
    relative = RESULT_ROUNDING[dtype] + 2 * max(terms, 1) * UNIT_ROUNDOFF[dtype]
    bound = relative * magnitude + RESULT_FLOOR[dtype]
    error = np.abs(result.astype(np.float64) - exact)
    assert np.all(error <= bound), np.max(error - bound)


@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("input_shape", "out_features"), CASES)
def test_linear_matches_torch_and_float64(rng, device, input_shape, out_features, dtype, layout, with_bias):
    in_features = input_shape[-1]
    x_values = rounded(rng, input_shape, dtype)
    w_values = rounded(rng, (out_features, in_features), dtype)
    b_values = rounded(rng, (out_features,), dtype) if with_bias else None
    x = on_device(x_values, dtype, layout, device)
    w = on_device(w_values, dtype, layout, device)
    b = on_device(b_values, dtype, layout, device) if with_bias else None
    expected = torch.nn.functional.linear(
        torch.from_numpy(x_values).to(TORCH[dtype]),
        torch.from_numpy(w_values).to(TORCH[dtype]),
        None if b_values is None else torch.from_numpy(b_values).to(TORCH[dtype]),
    )

    result = oc.linear(x, w, b)

    assert result.dtype == OC[dtype] and result.shape == tuple(expected.shape)
    assert result.device == oc.device(device) and result.is_contiguous()
    exact = x_values @ w_values.T + (0 if b_values is None else b_values)
    magnitude = np.abs(x_values) @ np.abs(w_values).T + (0 if b_values is None else np.abs(b_values))
    assert_within_bound(host_values(result), exact, magnitude, in_features + 1, dtype)


@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("input_shape", "out_features"), [((7,), 5), ((37, 41), 35), ((3, 5, 13), 11)])
def test_linear_gradients_match_float64(rng, device, input_shape, out_features, dtype, with_bias):
    """d_input = g @ W, d_weight = g^T @ x over the flattened rows, d_bias = g summed over them;
    the input given transposed and the gradient a non-contiguous view."""
    in_features = input_shape[-1]
    x_values = rounded(rng, input_shape, dtype)
    w_values = rounded(rng, (out_features, in_features), dtype)
    b_values = rounded(rng, (out_features,), dtype)
    g_values = rounded(rng, (*input_shape[:-1], out_features), dtype)
    x = on_device(x_values, dtype, "transposed", device).requires_grad_(True)
    w = on_device(w_values, dtype, "contiguous", device).requires_grad_(True)
    b = on_device(b_values, dtype, "sliced", device).requires_grad_(True) if with_bias else None
    out = oc.linear(x, w, b)
    assert out.grad_fn is not None
    out.backward(on_device(g_values, dtype, "sliced", device))

    rows = int(np.prod(input_shape[:-1]))
    g2, x2 = g_values.reshape(rows, out_features), x_values.reshape(rows, in_features)
    assert x.grad.shape == input_shape and w.grad.shape == (out_features, in_features)
    assert_within_bound(
        host_values(x.grad).reshape(rows, in_features), g2 @ w_values, np.abs(g2) @ np.abs(w_values),
        out_features, dtype,
    )  # fmt: skip
    assert_within_bound(host_values(w.grad), g2.T @ x2, np.abs(g2).T @ np.abs(x2), rows, dtype)
    if with_bias:
        assert b.grad.shape == (out_features,)
        assert_within_bound(host_values(b.grad), g2.sum(0), np.abs(g2).sum(0), rows, dtype)


def test_linear_gradients_match_torch_autograd(rng):
    """The same graph as torch's (linear then a nonlinear loss), gradients within float64 noise."""
    x_values = rounded(rng, (2, 5, 9), "float64")
    w_values, b_values = rounded(rng, (4, 9), "float64"), rounded(rng, (4,), "float64")
    ours = [oc.tensor(v, requires_grad=True) for v in (x_values, w_values, b_values)]
    theirs = [torch.tensor(v, requires_grad=True) for v in (x_values, w_values, b_values)]
    (oc.linear(*ours).tanh() * 3).sum().backward()
    (torch.nn.functional.linear(*theirs).tanh() * 3).sum().backward()
    for mine, reference in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(host_values(mine.grad), reference.grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("rows", "out_features"), [(1203, 197), (50, 1500)])
def test_linear_in_bands_is_thread_count_independent(rng, dtype, rows, out_features):
    """Products cut into bands of rows (or of columns, when out_features is the larger side),
    each band adding its part of the bias: within the bound and the same bits on 1 or 2 threads."""
    x_values = rounded(rng, (rows, 181), dtype)
    w_values = rounded(rng, (out_features, 181), dtype)
    b_values = rounded(rng, (out_features,), dtype)
    x, w, b = (on_device(v, dtype, "contiguous", "cpu") for v in (x_values, w_values, b_values))
    before = oc.get_num_threads()
    try:
        results = []
        for threads in (1, 2):
            oc.set_num_threads(threads)
            results.append(host_values(oc.linear(x, w, b)))
    finally:
        oc.set_num_threads(before)
    np.testing.assert_array_equal(results[0], results[1])
    exact = x_values @ w_values.T + b_values
    magnitude = np.abs(x_values) @ np.abs(w_values).T + np.abs(b_values)
    assert_within_bound(results[0], exact, magnitude, 182, dtype)


def test_linear_keywords_and_positional_bias_agree(rng):
    x = oc.tensor(random_array(rng, (4, 3), "float64"))
    w = oc.tensor(random_array(rng, (5, 3), "float64"))
    b = oc.tensor(random_array(rng, (5,), "float64"))
    reference = host_values(oc.linear(x, w, b))
    np.testing.assert_array_equal(host_values(oc.linear(input=x, weight=w, bias=b)), reference)
    np.testing.assert_array_equal(host_values(oc.linear(x, w)), host_values(x @ w.T))


ERRORS = [
    ((2, 3), (4, 5), (4,), "float32", ValueError, r"input's last dim 3 != weight's in_features 5"),
    ((2, 3), (4, 3), (5,), "float32", ValueError, r"bias of shape \[5\] does not match .* 4"),
    ((2, 3), (4, 3), (1, 4), "float32", ValueError, r"bias of shape \[1, 4\]"),
    ((2, 3), (3,), None, "float32", ValueError, r"weight 2 .*, got shapes \[2, 3\] and \[3\]"),
    ((), (4, 3), None, "float32", ValueError, r"input needs at least 1 dim"),
    ((2, 3), (4, 3), None, "int64", TypeError, "dtype int64 is not supported"),
]  # fmt: skip


@pytest.mark.parametrize(("x_shape", "w_shape", "b_shape", "dtype", "error", "message"), ERRORS)
def test_linear_rejects_bad_operands(rng, device, x_shape, w_shape, b_shape, dtype, error, message):
    def make(shape):
        return oc.tensor(random_array(rng, shape, "float32")).to(OC[dtype]).to(device)

    with pytest.raises(error, match=message):
        oc.linear(make(x_shape), make(w_shape), None if b_shape is None else make(b_shape))


def test_linear_rejects_mixed_dtypes_and_devices(rng, monkeypatch):
    x = oc.tensor(random_array(rng, (2, 3), "float32"))
    w = oc.tensor(random_array(rng, (4, 3), "float32"))
    with pytest.raises(TypeError, match="same dtype, got float32 and float64"):
        oc.linear(x, w.to(oc.float64))
    with pytest.raises(TypeError, match="same dtype, got float32 and bfloat16"):
        oc.linear(x, w, oc.zeros(4, dtype=oc.bfloat16))
    monkeypatch.setenv("ORCHARD_METAL_FALLBACK", "cpu")
    with pytest.raises(ValueError, match="different devices, cpu and metal"):
        oc.linear(x, w.to("metal"))
