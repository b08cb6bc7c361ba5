"""The bad-input catalogue's findings: each case raises a clear error naming the value, or gives
torch's answer. One test per case; add the next finding here with its fix."""

from __future__ import annotations

import re

import numpy as np
import orchard_core as oc
import pytest
import torch
from _core_helpers import host_values

BIG = 2**40


def _raises(error: type[Exception], named: object):
    """pytest.raises whose message must contain `named` (the offending value), literally."""
    return pytest.raises(error, match=re.escape(str(named)))


# 1. Python numbers into integer dtypes: a range check, as torch's "without overflow".
@pytest.mark.parametrize(
    "make",
    [
        lambda: oc.full((2,), BIG, dtype=oc.int32),
        lambda: oc.zeros(2, dtype=oc.int32).fill_(BIG),
        lambda: oc.zeros(2, dtype=oc.int32).masked_fill(oc.tensor([True, False]), BIG),
        lambda: oc.tensor(BIG, dtype=oc.int32),
        lambda: oc.tensor([1, BIG], dtype="int32"),
        lambda: oc.ones(3, dtype=oc.int32) + BIG,
        lambda: oc.arange(0, BIG + 1, BIG, dtype=oc.int32),
    ],
    ids=["full", "fill_", "masked_fill", "tensor", "tensor-list", "add", "arange"],
)
def test_an_integer_beyond_the_dtype_is_refused(make):
    with _raises(ValueError, BIG):
        make()


def test_setitem_beyond_the_dtype_is_refused_and_writes_nothing():
    x = oc.tensor([5, 6], dtype=oc.int32)
    with _raises(ValueError, BIG):
        x[0] = BIG
    assert x.tolist() == [5, 6]


@pytest.mark.parametrize("dtype", ["int32", "int64"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), 1e19, -1e30])
def test_non_finite_or_huge_floats_into_integers_are_refused(dtype, value):
    with pytest.raises(ValueError, match="cannot be converted"):
        oc.full((2,), value, dtype=getattr(oc, dtype))
    with pytest.raises(ValueError, match="cannot be converted"):
        oc.tensor([1.0, value], dtype=dtype)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_finite_floats_beyond_a_float_dtype_are_refused(dtype):
    with pytest.raises(ValueError, match=f"cannot be converted to {dtype}"):
        oc.full((2,), 1e300, dtype=getattr(oc, dtype))
    assert np.isinf(host_values(oc.full((1,), float("inf"), dtype=getattr(oc, dtype)))).all()


@pytest.mark.parametrize(
    ("value", "dtype"),
    [
        (2.7, "int32"),
        (-2.7, "int32"),
        (-(2**31), "int32"),
        (2**31 - 1, "int32"),
        (-(2**63), "int64"),
        (7, "bool"),
    ],
)
def test_values_that_fit_convert_as_torch(value, dtype):
    ours = oc.full((2,), value, dtype=getattr(oc, dtype))
    assert ours.tolist() == torch.full((2,), value, dtype=getattr(torch, dtype)).tolist()
    assert oc.tensor(value, dtype=dtype).item() == torch.tensor(value, dtype=getattr(torch, dtype)).item()


@pytest.mark.parametrize(
    ("bounds", "expected"),
    [({"max": BIG}, [-3, 0, 7]), ({"min": -BIG}, [-3, 0, 7]), ({"min": -BIG, "max": 2}, [-3, 0, 2])],
)
def test_clamp_bounds_beyond_int32_saturate(bounds, expected):
    assert oc.tensor([-3, 0, 7], dtype=oc.int32).clamp(**bounds).tolist() == expected


def test_clamp_bounds_beyond_float16_saturate_and_unreachable_ones_raise():
    x = oc.tensor([-3.0, 0.5, 7.0], dtype=oc.float16)
    assert x.clamp(max=1e10).tolist() == [-3.0, 0.5, 7.0]
    assert x.clamp(min=-1e10, max=1.0).tolist() == [-3.0, 0.5, 1.0]
    with _raises(ValueError, BIG):
        oc.tensor([1], dtype=oc.int32).clamp(min=BIG)  # every value would become 2**40


@pytest.mark.parametrize(("value", "error"), [(float("nan"), ValueError), (float("inf"), OverflowError)])
def test_int_of_a_non_finite_tensor_raises_as_python(value, error):
    with pytest.raises(error):
        int(oc.tensor(value))
    assert int(oc.tensor(1e30, dtype=oc.float64)) == int(1e30)


# 2. numpy uint64 beyond int64.
def test_uint64_beyond_int64_is_refused():
    with _raises(ValueError, 2**63):
        oc.tensor(np.array([1, 2**63], dtype=np.uint64))
    assert oc.tensor(np.array([5], dtype=np.uint64)).tolist() == [5]


# 3. randint's range must fit the dtype.
def test_randint_range_beyond_the_dtype_is_refused():
    with _raises(ValueError, BIG):
        oc.randint(0, BIG, (4,), dtype=oc.int32)
    values = host_values(oc.randint(-(2**31), 2**31, (1000,), dtype=oc.int32))
    assert values.dtype == np.int32


# 4. arange has no bool form.
def test_arange_bool_is_refused():
    with pytest.raises(TypeError, match="bool"):
        oc.arange(3, dtype=oc.bool)


# 5. tril/triu diagonals near the int64 limits (a signed overflow before).
@pytest.mark.parametrize("diagonal", [2**63 - 1, -(2**63), 2**62, -(2**62), 4, -4, 3, -3])
@pytest.mark.parametrize("op", ["tril", "triu"])
def test_triangles_with_extreme_diagonals_match_torch(op, diagonal, rng):
    x = rng.standard_normal((2, 3, 5)).astype(np.float32)
    ours = getattr(oc, op)(oc.tensor(x), diagonal)
    np.testing.assert_array_equal(host_values(ours), getattr(torch, op)(torch.tensor(x), diagonal).numpy())


# 6. Writes into expanded (stride-0) destinations.
@pytest.mark.parametrize(
    "write",
    [
        lambda t: t.copy_(oc.arange(3.0)),
        lambda t: t.fill_(1.0),
        lambda t: t.__setitem__(slice(None), oc.arange(3.0)),
        lambda t: t.add_(1.0),
        lambda t: t.scatter_add_(0, oc.tensor([0, 1]), oc.ones(2)),
    ],
    ids=["copy_", "fill_", "setitem", "add_", "scatter_add_"],
)
def test_writes_into_an_expanded_tensor_are_refused(write):
    base = oc.zeros(1)
    with pytest.raises(ValueError, match="stride 0 in dim 0"):
        write(base.expand(3))
    assert base.tolist() == [0.0]


def test_an_empty_expanded_tensor_accepts_writes():
    oc.zeros(1, 0).expand(3, 0).fill_(1.0)


# 7. scatter_add_ whose source or index overlaps the destination.
def test_scatter_add_with_an_overlapping_source_is_refused():
    x = oc.tensor([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="src shares memory"):
        x.scatter_add_(0, oc.tensor([0, 1, 2]), x)
    with pytest.raises(ValueError, match="src shares memory"):
        x.scatter_add_(0, oc.tensor([0, 1]), x[1:])
    i = oc.tensor([0, 1, 2])
    with pytest.raises(ValueError, match="index shares memory"):
        i.scatter_add_(0, i, oc.tensor([1, 1, 1]))
    assert x.tolist() == [1.0, 2.0, 3.0]


def test_scatter_add_from_a_disjoint_part_of_the_storage_matches_torch():
    ours, theirs = oc.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([1.0, 2.0, 3.0, 4.0])
    ours[:2].scatter_add_(0, oc.tensor([1, 0]), ours[2:])
    theirs[:2].scatter_add_(0, torch.tensor([1, 0]), theirs[2:])
    assert ours.tolist() == theirs.tolist()


# 8. relu keeps NaN.
@pytest.mark.parametrize("dtype", ["float32", "float64", "bfloat16", "float16"])
def test_relu_keeps_nan(dtype):
    x = oc.tensor([float("nan"), -1.0, 2.0, -0.0], dtype=dtype)
    values = host_values(oc.relu(x)).astype(np.float64)
    assert np.isnan(values[0]) and values[1:].tolist() == [0.0, 2.0, 0.0]


# Messages: each names the value instead of dumping pybind11's signatures.
@pytest.mark.parametrize("seed", [-1, -(2**63), 2**64 - 1, 0])
def test_manual_seed_takes_torchs_range(seed):
    oc.manual_seed(seed)
    first = host_values(oc.rand(4))
    oc.manual_seed(seed % 2**64)  # a negative seed stands for seed + 2**64, as in torch
    np.testing.assert_array_equal(first, host_values(oc.rand(4)))


@pytest.mark.parametrize(
    ("seed", "error"), [(2**64, ValueError), (-(2**63) - 1, ValueError), (1.5, TypeError)]
)
def test_manual_seed_outside_its_range_is_named(seed, error):
    with _raises(error, seed):
        oc.manual_seed(seed)


@pytest.mark.parametrize("code", [-1, 7, 99])
def test_dtype_of_an_unknown_code_is_named(code):
    with pytest.raises(ValueError, match=rf"dtype\({code}\)"):
        oc.dtype(code)
    assert oc.dtype(6) == oc.bool and oc.dtype("float16") == oc.float16


def test_integers_beyond_int64_in_data_are_named():
    with _raises(ValueError, 2**70):
        oc.tensor([1, 2**70])
    with pytest.raises(TypeError, match="non-numeric"):
        oc.tensor([None, 1])


def test_repr_of_a_huge_expanded_tensor_converts_only_what_it_prints():
    text = repr(oc.zeros(1, dtype=oc.bfloat16).expand(2**40))
    assert text == "tensor([0., 0., 0., ..., 0., 0., 0.], dtype=orchard_core.bfloat16)"


@pytest.mark.parametrize("shape", [(40, 50), (3, 400, 5), (1001,), (7, 7, 7, 7)])
def test_summarised_repr_is_numpys_for_the_whole_tensor(shape, rng):
    x = rng.standard_normal(shape).astype(np.float32)
    expected = np.array2string(x, separator=", ", prefix="tensor(", threshold=1000, edgeitems=3)
    assert repr(oc.tensor(x)) == f"tensor({expected})"


# Shape arithmetic: strides that do not fit are an error, empty tensors stay cheap.
def test_shapes_whose_strides_overflow_are_refused():
    assert oc.empty(2**40, 2**40, 0).stride() == (2**40, 1, 1)
    with pytest.raises(ValueError, match="strides that do not fit in int64"):
        oc.empty(2**40, 2**40, 2**40, 0)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "int64", "bool"])
def test_empty_tensors_round_trip_every_copy_path(dtype):
    empty = oc.from_numpy(np.zeros((0, 3), dtype=np.float32)).to(dtype)
    assert empty.clone().shape == (0, 3)
    assert empty.to("cpu").contiguous().tolist() == []
    assert oc.tensor(empty).shape == (0, 3)


def test_shape_products_and_chunk_sizes_do_not_overflow():
    assert oc.empty(2**40, 2**40, 0).numel() == 0
    assert oc.empty(2**62, 2**62, 0).reshape(-1).shape == (0,)
    pieces = oc.arange(5.0).chunk(2**63 - 1, 0)
    assert [p.tolist() for p in pieces] == [[0.0], [1.0], [2.0], [3.0], [4.0]]


@pytest.mark.parametrize("name", ["exp", "tanh", "sigmoid", "gelu"])
def test_nan_passes_through_the_vectorised_math(name):
    x = oc.tensor([float("nan"), 1.0] * 20)
    values = host_values(getattr(oc, name)(x))
    assert np.isnan(values[0::2]).all() and np.isfinite(values[1::2]).all()
