"""matmul, Tensor.matmul and @ against torch (shapes, dtypes) and float64 (values).

Tolerances follow the usual bound for a sum of K products computed in precision u:
|computed - exact| <= c * K * u * (|A| @ |B|) elementwise. float32 and float64 use their own
u; bfloat16 accumulates in float32 (u = 2**-24) and rounds the result once to bfloat16
(relative 2**-8), so its bound adds 2**-8 * (|A| @ |B|).
"""

from __future__ import annotations

import numpy as np
import orchard_core as oc
import pytest
import torch
from _core_helpers import OC, TORCH, host_values, random_array

# (shape of a, shape of b): 1-D promotion, size-0 and size-1 dims, broadcast batch dims,
# and sizes that are multiples of no block size.
CASES = [
    ((5,), (5,)),
    ((0,), (0,)),
    ((3,), (3, 7)),
    ((7, 3), (3,)),
    ((5, 3), (3, 7)),
    ((1, 1), (1, 1)),
    ((1, 9), (9, 1)),
    ((9, 1), (1, 9)),
    ((1, 6), (6, 5)),
    ((5, 6), (6, 1)),
    ((4, 0), (0, 6)),
    ((0, 3), (3, 5)),
    ((3, 5), (5, 0)),
    ((2, 5, 3), (3, 7)),
    ((3,), (2, 3, 4)),
    ((2, 4, 3), (3,)),
    ((2, 1, 5, 3), (3, 3, 4)),
    ((1, 3, 5), (4, 5, 2)),
    ((0, 3, 5), (5, 2)),
    ((3, 13, 11), (1, 11, 9)),
    ((67, 65), (65, 33)),
]
DTYPES = ["float32", "float64", "bfloat16"]
# Layouts of both operands: as created, a transposed view, a strided slice of a wider tensor.
LAYOUTS = ["contiguous", "transposed", "sliced"]
UNIT_ROUNDOFF = {"float32": 2.0**-24, "float64": 2.0**-53, "bfloat16": 2.0**-24}
RESULT_ROUNDING = {"float32": 0.0, "float64": 0.0, "bfloat16": 2.0**-8}


def operand(rng, shape, dtype: str, layout: str, device: str):
    """Random values (float64, already rounded to `dtype`) and an orchard view of them."""
    values = random_array(rng, shape, dtype)
    if dtype == "bfloat16":
        values = torch.from_numpy(values).to(torch.bfloat16).float().numpy()
    values = values.astype(np.float64)
    if layout == "transposed" and len(shape) >= 2:
        base = oc.tensor(np.ascontiguousarray(np.swapaxes(values, -1, -2))).to(OC[dtype]).to(device)
        view = base.mT
    elif layout == "sliced":
        wide = np.zeros((*shape[:-1], 2 * shape[-1] + 1))
        wide[..., 1::2] = values
        view = oc.tensor(wide).to(OC[dtype]).to(device)[..., 1::2]
    else:
        view = oc.tensor(values).to(OC[dtype]).to(device)
    assert view.shape == tuple(shape)
    return values, view


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("a_shape", "b_shape"), CASES)
def test_matmul_matches_torch_and_float64(rng, device, a_shape, b_shape, dtype, layout):
    a_values, a = operand(rng, a_shape, dtype, layout, device)
    b_values, b = operand(rng, b_shape, dtype, layout, device)
    expected = torch.matmul(
        torch.from_numpy(a_values).to(TORCH[dtype]), torch.from_numpy(b_values).to(TORCH[dtype])
    )

    result = a @ b

    assert result.dtype == OC[dtype]
    assert result.shape == tuple(expected.shape)
    assert result.device == oc.device(device)
    exact = np.matmul(a_values, b_values)
    magnitude = np.matmul(np.abs(a_values), np.abs(b_values))
    k = a_shape[-1]
    bound = (RESULT_ROUNDING[dtype] + 2 * max(k, 1) * UNIT_ROUNDOFF[dtype]) * magnitude
    error = np.abs(host_values(result).astype(np.float64) - exact)
    assert np.all(error <= bound), np.max(error - bound)


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_large_enough_to_run_in_parallel(rng, dtype):
    a_values, a = operand(rng, (2, 203, 181), dtype, "transposed", "cpu")
    b_values, b = operand(rng, (181, 197), dtype, "sliced", "cpu")
    exact = np.matmul(a_values, b_values)
    magnitude = np.matmul(np.abs(a_values), np.abs(b_values))
    bound = (RESULT_ROUNDING[dtype] + 2 * 181 * UNIT_ROUNDOFF[dtype]) * magnitude
    assert np.all(np.abs(host_values(oc.matmul(a, b)).astype(np.float64) - exact) <= bound)


def test_spellings_agree(rng):
    a = oc.tensor(random_array(rng, (4, 3), "float64"))
    b = oc.tensor(random_array(rng, (3, 5), "float64"))
    reference = host_values(a @ b)
    np.testing.assert_array_equal(host_values(oc.matmul(input=a, other=b)), reference)
    np.testing.assert_array_equal(host_values(a.matmul(other=b)), reference)


def test_result_owns_new_memory(rng):
    a = oc.tensor(random_array(rng, (3, 3), "float32"))
    result = a @ a
    assert not result.is_alias_of(a)
    assert result.is_contiguous()


ERRORS = [
    ((), (3,), "float32", "float32", ValueError, r"at least 1 dim, got shapes \[\] and \[3\]"),
    ((2, 3), (), "float32", "float32", ValueError, r"at least 1 dim, got shapes \[2, 3\] and \[\]"),
    (
        (2, 3),
        (4, 5),
        "float32",
        "float32",
        ValueError,
        r"\[2, 3\] and \[4, 5\] cannot be multiplied \(3 != 4\)",
    ),
    ((3,), (4,), "float64", "float64", ValueError, r"\[3\] and \[4\] cannot be multiplied"),
    (
        (2, 3, 4),
        (3, 4, 5),
        "float32",
        "float32",
        ValueError,
        r"batch dims of shapes \[2, 3, 4\] and \[3, 4, 5\]",
    ),
    ((2, 3), (3, 2), "float32", "float64", TypeError, "same dtype, got float32 and float64"),
    ((2, 3), (3, 2), "bfloat16", "float32", TypeError, "same dtype, got bfloat16 and float32"),
    ((2, 3), (3, 2), "int64", "int64", TypeError, "dtype int64 is not supported"),
    ((2, 3), (3, 2), "float16", "float16", TypeError, "dtype float16 is not supported"),
    ((2, 3), (3, 2), "bool", "bool", TypeError, "dtype bool is not supported"),
]


@pytest.mark.parametrize(("a_shape", "b_shape", "a_dtype", "b_dtype", "error", "message"), ERRORS)
def test_matmul_rejects_bad_operands(rng, device, a_shape, b_shape, a_dtype, b_dtype, error, message):
    a = oc.tensor(random_array(rng, a_shape, "float32")).to(OC[a_dtype]).to(device)
    b = oc.tensor(random_array(rng, b_shape, "float32")).to(OC[b_dtype]).to(device)
    with pytest.raises(error, match=message):
        oc.matmul(a, b)


def test_matmul_rejects_operands_on_two_devices(rng, monkeypatch):
    monkeypatch.setenv("ORCHARD_METAL_FALLBACK", "cpu")
    a = oc.tensor(random_array(rng, (2, 3), "float32"))
    with pytest.raises(ValueError, match="different devices, cpu and metal"):
        oc.matmul(a, a.T.to("metal"))


def test_matmul_operator_with_a_non_tensor_is_a_type_error(rng):
    a = oc.tensor(random_array(rng, (2, 2), "float32"))
    with pytest.raises(TypeError):
        a @ 2.0
