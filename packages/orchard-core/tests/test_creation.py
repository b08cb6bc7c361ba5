"""Creation: tensor() with torch's dtype inference, empty/zeros/ones/full/arange, all dtypes."""

from __future__ import annotations

import numpy as np
import orchard_core as oc
import pytest
import torch
from _core_helpers import DTYPES, NUMPY_DTYPES, OC, TORCH, assert_matches_torch, random_array, random_shape


def _python_data(rng, shape, kind):
    values = random_array(rng, shape, {"float": "float64", "int": "int64", "bool": "bool"}[kind])
    return values.tolist()


@pytest.mark.parametrize("kind", ["float", "int", "bool"])
def test_tensor_infers_dtype_from_python_data_like_torch(rng, device, kind):
    data = _python_data(rng, random_shape(rng), kind)
    ours = oc.tensor(data, device=device)
    reference = torch.tensor(data)
    assert ours.device == device
    assert_matches_torch(ours, reference, strides=True)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (True, "bool"),
        (7, "int64"),
        (-2.5, "float32"),
        ([True, False, True], "bool"),
        ([3, -4, 5], "int64"),
        ([3, 4.5], "float32"),  # mixed int and float: float
        ([[1.25, -3.0], [0.0, 7.5]], "float32"),
        ([True, 2], "int64"),
    ],
)
def test_tensor_inference_table(data, expected):
    ours = oc.tensor(data)
    assert ours.dtype.name == expected
    assert str(torch.tensor(data).dtype) == f"torch.{expected}"
    assert_matches_torch(ours, torch.tensor(data))


@pytest.mark.parametrize("dtype", NUMPY_DTYPES)
def test_tensor_keeps_numpy_dtype(rng, device, dtype):
    array = random_array(rng, random_shape(rng), dtype)
    ours = oc.tensor(array, device=device)
    assert ours.dtype == OC[dtype]
    assert_matches_torch(ours, torch.tensor(array), strides=True)
    # A copy: later writes to the array do not show.
    before = ours.tolist()
    array.reshape(-1)[0] = array.reshape(-1)[-1] + 1 if dtype != "bool" else not array.reshape(-1)[0]
    assert ours.tolist() == before


@pytest.mark.parametrize("dtype", NUMPY_DTYPES)
def test_tensor_keeps_numpy_scalar_dtype(rng, dtype):
    scalar = random_array(rng, (), dtype)[()]
    ours = oc.tensor(scalar)
    assert ours.shape == ()
    assert_matches_torch(ours, torch.tensor(scalar))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["float", "int", "bool"])
def test_tensor_with_explicit_dtype_matches_torch(rng, device, dtype, kind):
    data = _python_data(rng, random_shape(rng), kind)
    if kind == "float" and dtype in ("int32", "int64"):
        data = np.clip(np.asarray(data), -1e6, 1e6).tolist()  # float -> int truncates, like torch
    ours = oc.tensor(data, dtype=OC[dtype], device=device)
    assert ours.device == device
    assert_matches_torch(ours, torch.tensor(data, dtype=TORCH[dtype]))


def test_tensor_float64_keeps_full_precision():
    # Python floats must not be rounded through float32 on the way to float64.
    data = [0.1, 1e300, 16777217.0, -(2.0**-1070)]
    assert oc.tensor(data, dtype=oc.float64).tolist() == data
    assert oc.tensor(data, dtype="float64").tolist() == torch.tensor(data, dtype=torch.float64).tolist()


def test_tensor_dtype_spellings_agree(rng):
    data = _python_data(rng, (5,), "float")
    expected = oc.tensor(data, dtype=oc.float16).tolist()
    for spelling in ("float16", np.float16, np.dtype("float16"), torch.float16):
        assert oc.tensor(data, dtype=spelling).tolist() == expected


@pytest.mark.parametrize("alias", ["long", "int", "float", "double", "half"])
def test_torch_dtype_aliases_name_the_same_dtypes(alias):
    torch_name = str(getattr(torch, alias)).removeprefix("torch.")
    assert oc.arange(3, dtype=getattr(oc, alias)).dtype.name == torch_name


def test_tensor_from_tensor_copies(rng, device):
    source = oc.tensor(random_array(rng, (3, 5), "float32"), device=device)
    copy = oc.tensor(source)
    assert not copy.is_alias_of(source)
    assert copy.tolist() == source.tolist()
    source.fill_(1.5)
    assert copy.tolist() != source.tolist()


def test_tensor_rejects_ragged_and_non_numeric():
    with pytest.raises(ValueError, match="rectangular"):
        oc.tensor([[1, 2], [3]])
    with pytest.raises(TypeError, match="<U1"):
        oc.tensor(["a", "b"])
    with pytest.raises(TypeError, match="non-numeric"):
        oc.tensor([None, 1])
    with pytest.raises(TypeError, match="complex128"):
        oc.tensor([1 + 2j])


def _contiguous_strides(shape):
    return torch.empty(shape).stride()


@pytest.mark.parametrize("dtype", DTYPES)
def test_empty(rng, device, dtype):
    shape = random_shape(rng)
    t = oc.empty(*shape, dtype=OC[dtype], device=device)
    assert t.shape == shape
    assert t.dtype == OC[dtype]
    assert t.device == device
    assert t.stride() == _contiguous_strides(shape)
    assert t.is_contiguous()
    assert t.storage_offset() == 0
    assert t.numel() == int(np.prod(shape))
    assert t.itemsize == torch.empty(0, dtype=TORCH[dtype]).element_size()
    assert t.nbytes == t.numel() * t.itemsize
    # Writable: values written through fill_ read back.
    value = True if dtype == "bool" else 3
    t.fill_(value)
    assert_matches_torch(t, torch.full(shape, value, dtype=TORCH[dtype]))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("factory", ["zeros", "ones"])
def test_zeros_ones(rng, device, dtype, factory):
    shape = random_shape(rng)
    ours = getattr(oc, factory)(shape, dtype=OC[dtype], device=device)
    assert ours.device == device
    assert_matches_torch(ours, getattr(torch, factory)(shape, dtype=TORCH[dtype]), strides=True)


def test_size_spellings():
    for spelled in (oc.zeros(3, 5), oc.zeros((3, 5)), oc.zeros([3, 5])):
        assert spelled.shape == (3, 5)
    assert oc.zeros().shape == ()
    assert oc.ones(()).tolist() == 1.0
    assert oc.zeros(0, 7).shape == (0, 7)
    assert oc.zeros(np.int64(3), 2).shape == (3, 2)
    assert oc.zeros(3, 5).dtype == oc.float32  # default dtype, as in torch


@pytest.mark.parametrize("dtype", DTYPES)
def test_full_matches_torch(rng, device, dtype):
    shape = random_shape(rng)
    for value in (float(rng.normal() * 100), int(rng.integers(-50, 50)), bool(rng.random() < 0.5)):
        ours = oc.full(shape, value, dtype=OC[dtype], device=device)
        assert ours.device == device
        assert_matches_torch(ours, torch.full(shape, value, dtype=TORCH[dtype]), strides=True)


@pytest.mark.parametrize("value", [2.75, -3, True, np.float32(1.5), np.int32(-9), np.bool_(False)])
def test_full_infers_dtype_like_torch(value):
    ours = oc.full((3, 5), value)
    assert_matches_torch(ours, torch.full((3, 5), torch.tensor(value).item()))


@pytest.mark.parametrize("dtype", [None, *(d for d in DTYPES if d != "bool")])  # torch: no bool arange
def test_arange_integer_arguments(rng, device, dtype):
    start = int(rng.integers(-40, 40))
    end = start + int(rng.integers(1, 60))
    step = int(rng.integers(1, 7))
    kwargs = {} if dtype is None else {"dtype": OC[dtype]}
    tkwargs = {} if dtype is None else {"dtype": TORCH[dtype]}
    for args in ((end - start,), (start, end), (start, end, step), (end, start, -step)):
        ours = oc.arange(*args, device=device, **kwargs)
        assert ours.device == device
        assert_matches_torch(ours, torch.arange(*args, **tkwargs))


@pytest.mark.parametrize("dtype", [None, "float32", "float64", "bfloat16", "float16"])
def test_arange_float_arguments(rng, device, dtype):
    start = float(np.round(rng.uniform(-20, 20), 3))
    step = float(np.round(rng.uniform(0.05, 3), 3))
    end = start + float(rng.uniform(1, 40))
    kwargs = {} if dtype is None else {"dtype": OC[dtype]}
    tkwargs = {} if dtype is None else {"dtype": TORCH[dtype]}
    ours = oc.arange(start, end, step, device=device, **kwargs)
    reference = torch.arange(start, end, step, **tkwargs)
    assert ours.shape == tuple(reference.shape)
    assert ours.dtype.name == str(reference.dtype).removeprefix("torch.")
    # torch computes start + i * step in reduced precision for 16-bit dtypes (errors of an
    # ulp of |start|), so the values are checked against float64 arithmetic rounded once to
    # the dtype (up to an ulp, for float64 rounding differences such as FMA contraction),
    # and against torch loosely.
    exact = torch.tensor(start + np.arange(ours.shape[0]) * step, dtype=torch.float64)
    exact = exact.to(reference.dtype).double().numpy()
    ulp = {"float64": 2.0**-52, "bfloat16": 2.0**-8, "float16": 2.0**-11}.get(dtype, 2.0**-24)
    magnitude = max(abs(start), abs(end))
    got = np.asarray(ours.to(oc.float64).tolist())
    np.testing.assert_allclose(got, exact, rtol=2 * ulp, atol=1e-12 * magnitude)
    np.testing.assert_allclose(got, reference.double().numpy(), rtol=0, atol=4 * ulp * magnitude)


def test_arange_empty_and_exact_end():
    assert oc.arange(5, 5).shape == (0,)
    assert oc.arange(0, 10, 2.5).tolist() == torch.arange(0, 10, 2.5).tolist()
    assert oc.arange(0.0, 1.0, 0.1).shape == tuple(torch.arange(0.0, 1.0, 0.1).shape)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((0, 10, 0), "step .*0"),
        ((10, 0, 1), r"step 1 does not lead from start=10 to end=0"),
        ((0, float("inf")), "inf"),
        ((0, 5, float("nan")), "nan"),
    ],
)
def test_arange_rejects_bad_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        oc.arange(*args)
