"""matmul, Tensor.matmul and @ against torch (shapes, dtypes) and float64 (values).

Tolerances follow the usual bound for a sum of K products computed in precision u:
|computed - exact| <= c * K * u * (|A| @ |B|) elementwise. float32 and float64 use their own
u; bfloat16 and float16 accumulate in float32 (u = 2**-24) and round the result once to their
type (relative 2**-8 and 2**-11), so their bound adds that times (|A| @ |B|); a float16 result
small enough to be subnormal may also be off by half its spacing there, 2**-25 (absolute).
float16 operands are scaled to magnitudes of 1e-6..4, so no sum of products overflows.
"""

from __future__ import annotations

import numpy as np
import orchard_core as oc
import pytest
import torch
from _core_helpers import OC, TORCH, host_values, random_array
from orchard_core import _core

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
DTYPES = ["float32", "float64", "bfloat16", "float16"]
# Layouts of both operands: as created, a transposed view, a strided slice of a wider tensor.
LAYOUTS = ["contiguous", "transposed", "sliced"]
UNIT_ROUNDOFF = {"float32": 2.0**-24, "float64": 2.0**-53, "bfloat16": 2.0**-24, "float16": 2.0**-24}
RESULT_ROUNDING = {"float32": 0.0, "float64": 0.0, "bfloat16": 2.0**-8, "float16": 2.0**-11}
RESULT_FLOOR = {"float32": 0.0, "float64": 0.0, "bfloat16": 0.0, "float16": 2.0**-25}


def rounded(rng, shape, dtype: str) -> np.ndarray:
    """float64 values already rounded to `dtype` (float16's scaled into its range)."""
    if dtype == "float16":
        return (random_array(rng, shape, "float32") / 1000).astype(np.float16).astype(np.float64)
    values = random_array(rng, shape, dtype)
    if dtype == "bfloat16":
        values = torch.from_numpy(values).to(torch.bfloat16).float().numpy()
    return values.astype(np.float64)


def operand(rng, shape, dtype: str, layout: str, device: str):
    """Random values (float64, already rounded to `dtype`) and an orchard view of them."""
    values = rounded(rng, shape, dtype)
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
    bound = (RESULT_ROUNDING[dtype] + 2 * max(k, 1) * UNIT_ROUNDOFF[dtype]) * magnitude + RESULT_FLOOR[dtype]
    error = np.abs(host_values(result).astype(np.float64) - exact)
    assert np.all(error <= bound), np.max(error - bound)


def assert_within_bound(result: np.ndarray, a_values, b_values, dtype: str) -> None:
    """The module's bound for a product of float64 values already rounded to `dtype`."""
    exact = np.matmul(a_values, b_values)
    magnitude = np.matmul(np.abs(a_values), np.abs(b_values))
    terms = max(a_values.shape[-1], 1)
    bound = (RESULT_ROUNDING[dtype] + 2 * terms * UNIT_ROUNDOFF[dtype]) * magnitude + RESULT_FLOOR[dtype]
    error = np.abs(result.astype(np.float64) - exact)
    assert np.all(error <= bound), np.max(error - bound)


# M, N and K span several of the Metal kernel's 32x32x16 tiles, each with a partial last one.
TILED_SIDES = {"m": 37, "k": 41, "n": 35}


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_walks_batched_views(rng, device, dtype):
    """Batch dims no walk can merge (a's permuted), a batch dim b broadcasts (a zero stride), a
    transposed a and a sliced b."""
    m, k, n = TILED_SIDES["m"], TILED_SIDES["k"], TILED_SIDES["n"]
    stored, _ = operand(rng, (2, 3, k, m), dtype, "contiguous", "cpu")
    a = oc.tensor(stored).to(OC[dtype]).to(device).permute(1, 0, 3, 2)
    b_values, b = operand(rng, (2, k, n), dtype, "sliced", device)

    result = a @ b

    assert result.shape == (3, 2, m, n)
    assert_within_bound(host_values(result), stored.transpose(1, 0, 3, 2), b_values, dtype)


# MatmulParams of src/backend/metal/kernels/matmul_params.h, with its StridedParams (params.h).
MATMUL_PARAMS = np.dtype(
    [
        *((name, "<i8") for name in ("m", "n", "k", "a_row", "a_col", "b_row", "b_col", "numel")),
        ("ndim", "<i4"),
        ("pad", "<i4"),
        ("shape", "<i8", (8,)),
        ("strides", "<i8", (4, 8)),
    ]
)


@pytest.mark.skipif(not hasattr(oc._core, "_metal_harness_run"), reason="built without -Dmetal=emulated")
@pytest.mark.parametrize("order", [("default", 0), ("random", 1)])
def test_metal_float16_kernel(rng, order):
    """Metal's float16 kernel called directly in the harness, on a batch of 2 with b broadcast
    (batch stride 0) and given transposed."""
    m, k, n = TILED_SIDES["m"], TILED_SIDES["k"], TILED_SIDES["n"]
    a = rng.standard_normal((2, m, k)).astype(np.float16)
    b_transposed = rng.standard_normal((n, k)).astype(np.float16)
    out = np.full((2, m, n), np.nan, np.float16)
    params = np.zeros(1, MATMUL_PARAMS)
    fields = {"m": m, "n": n, "k": k, "a_row": k, "a_col": 1, "b_row": 1, "b_col": k, "numel": 2, "ndim": 1}
    for name, value in fields.items():
        params[name] = value
    params["shape"][0, 0] = 2
    params["strides"][0, :3, 0] = (m * n, m * k, 0)  # out, a, b
    groups = ((n + 31) // 32, (m + 31) // 32, 2)
    buffers = {0: a, 1: b_transposed, 2: out, 3: params}
    oc._core._metal_harness_run("matmul_float16", buffers, {}, groups, (128, 1, 1), *order)
    assert_within_bound(out, a.astype(np.float64), b_transposed.T.astype(np.float64), "float16")


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_large_enough_to_run_in_parallel(rng, dtype):
    a_values, a = operand(rng, (2, 203, 181), dtype, "transposed", "cpu")
    b_values, b = operand(rng, (181, 197), dtype, "sliced", "cpu")
    exact = np.matmul(a_values, b_values)
    magnitude = np.matmul(np.abs(a_values), np.abs(b_values))
    bound = (RESULT_ROUNDING[dtype] + 2 * 181 * UNIT_ROUNDOFF[dtype]) * magnitude + RESULT_FLOOR[dtype]
    assert np.all(np.abs(host_values(oc.matmul(a, b)).astype(np.float64) - exact) <= bound)


@pytest.fixture
def restore_isa():
    saved = _core._cpu_isa()
    yield
    _core._set_cpu_isa(saved)


# Past several of the avx512_bf16 kernel's 14 x 32 tiles, each with a partial last one, more
# than one of its blocks of A rows and of 256 columns, and an odd K (a zero-padded last pair).
# The AMX kernel walks a block's column panels inside its row panels for K up to 1024 (333 here)
# and the other way round beyond (1027).
BF16_SIDES = {"m": 401, "n": 291}


@pytest.mark.parametrize("k", [1027, 333])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_bfloat16_on_every_instruction_set(rng, restore_isa, layout, k):
    """Every tier this CPU runs (avx512_bf16 multiplies pairs on vdpbf16ps, the others widen
    to float for BLAS), through matmul and through linear with a bias, within the bound; a
    batch with a broadcast operand (packed once) and a small product (one thread) as well."""
    m, n = BF16_SIDES["m"], BF16_SIDES["n"]
    a_values, a = operand(rng, (m, k), "bfloat16", layout, "cpu")
    b_values, b = operand(rng, (k, n), "bfloat16", layout, "cpu")
    bias_values, bias = operand(rng, (n,), "bfloat16", layout, "cpu")
    batch_values, batch = operand(rng, (3, 17, k), "bfloat16", layout, "cpu")
    small_values, small = operand(rng, (5, 3), "bfloat16", layout, "cpu")
    for isa in _core._cpu_isas():
        _core._set_cpu_isa(isa)
        assert_within_bound(host_values(a @ b), a_values, b_values, "bfloat16")
        assert_within_bound(host_values(batch @ b), batch_values, b_values, "bfloat16")
        assert_within_bound(host_values(small @ small.mT), small_values, small_values.T, "bfloat16")
        result = host_values(oc.linear(a, b.mT, bias)).astype(np.float64)
        exact = a_values @ b_values + bias_values
        magnitude = np.abs(a_values) @ np.abs(b_values) + np.abs(bias_values)
        bound = (RESULT_ROUNDING["bfloat16"] + 2 * (k + 1) * UNIT_ROUNDOFF["bfloat16"]) * magnitude
        assert np.all(np.abs(result - exact) <= bound), (isa, np.max(np.abs(result - exact) - bound))


def test_bfloat16_infinities_and_nan_propagate(rng, restore_isa):
    """An infinity or NaN in a row of A reaches every output of that row as IEEE arithmetic
    has it (inf, or NaN where inf meets 0 or -inf), on every tier."""
    a_values = rounded(rng, (20, 37), "bfloat16")
    b_values = rounded(rng, (37, 40), "bfloat16")
    b_values[5, 7] = 0.0
    a_values[3, 5] = np.inf
    a_values[11, 2] = np.nan
    a_values[16, 4], a_values[16, 9] = np.inf, -np.inf
    exact = np.matmul(a_values, b_values)
    a = oc.tensor(a_values).to(oc.bfloat16)
    b = oc.tensor(b_values).to(oc.bfloat16)
    for isa in _core._cpu_isas():
        _core._set_cpu_isa(isa)
        result = host_values(a @ b).astype(np.float64)
        np.testing.assert_array_equal(np.isnan(result), np.isnan(exact), err_msg=isa)
        np.testing.assert_array_equal(result[np.isinf(exact)], exact[np.isinf(exact)], err_msg=isa)


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
