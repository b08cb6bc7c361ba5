"""cumsum, sort, argsort and topk against torch: dtypes, shapes, values, indices, NaN order,
gradients and errors, on every device."""

from __future__ import annotations

import numpy as np
import orchard_core as oc
import pytest
import torch
from _core_helpers import OC, TORCH, host_values, random_array

FLOATS = ["float32", "float64", "bfloat16", "float16"]
INTEGERS = ["int32", "int64", "bool"]
# (shape, dim): 0-d, 1-d, dims first/middle/last, an empty dim, rows no block size divides.
CASES = [((), 0), ((13,), 0), ((5, 37), 1), ((37, 5), 0), ((3, 0, 4), 2), ((2, 7, 9), 1), ((2, 3, 301), -1)]


def values_for(rng, shape, dtype: str) -> np.ndarray:
    if dtype == "bool":
        return rng.integers(0, 2, size=shape).astype(bool)
    if dtype in ("int32", "int64"):
        return rng.integers(-50, 50, size=shape).astype(dtype)
    return random_array(rng, shape, "float32" if dtype in ("bfloat16", "float16") else dtype)


def pair(rng, shape, dtype: str, device: str, transposed: bool = False):
    """(orchard tensor, torch tensor) of the same values; the orchard one a transposed view when
    asked (and its shape allows)."""
    values = values_for(rng, shape, dtype)
    reference = torch.from_numpy(values.copy()).to(TORCH[dtype])
    if transposed and len(shape) >= 2:
        ours = oc.tensor(np.ascontiguousarray(values.swapaxes(0, 1))).to(OC[dtype]).to(device).transpose(0, 1)
    else:
        ours = oc.tensor(values).to(OC[dtype]).to(device)
    return ours, reference


def wide(t) -> np.ndarray:
    """Values as numpy, 16-bit floats widened (exactly) to float32."""
    if isinstance(t, torch.Tensor):
        return (t.float() if t.dtype in (torch.bfloat16, torch.float16) else t).numpy()
    return host_values(t.to(oc.float32) if t.dtype in (oc.bfloat16, oc.float16) else t)


# ---- cumsum ------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", FLOATS + INTEGERS)
@pytest.mark.parametrize(("shape", "dim"), CASES)
def test_cumsum_matches_torch(rng, device, shape, dim, dtype):
    ours, reference = pair(rng, shape, dtype, device, transposed=True)
    result = oc.cumsum(ours, dim)
    expected = torch.cumsum(reference, dim)
    assert result.dtype == OC[str(expected.dtype).removeprefix("torch.")] and result.shape == expected.shape
    assert result.device == oc.device(device)
    if dtype in INTEGERS:
        np.testing.assert_array_equal(host_values(result), expected.numpy())
        return
    # float64 running sums of the values as stored, bounded by n roundings of the running |sum|.
    exact = np.cumsum(wide(reference).astype(np.float64), axis=dim) if shape else wide(reference)
    magnitude = np.cumsum(np.abs(wide(reference)).astype(np.float64), axis=dim) if shape else np.abs(exact)
    n = shape[dim] if shape else 1
    u = {"float32": 2.0**-24, "float64": 2.0**-53, "bfloat16": 2.0**-8, "float16": 2.0**-11}[dtype]
    # The result rounds once to dtype; the float32 accumulation of 16-bit values (and Metal's
    # float32 one of float32) adds up to n roundings of the running sum.
    bound = (u + n * 2.0**-24) * magnitude
    assert np.all(np.abs(wide(result).astype(np.float64) - exact) <= bound)


def test_cumsum_dtype_casts_first_and_method_agrees(rng, device):
    ours, reference = pair(rng, (4, 9), "int32", device)
    result = ours.cumsum(1, dtype=oc.float32)
    assert result.dtype == oc.float32
    np.testing.assert_array_equal(
        host_values(result), torch.cumsum(reference, 1, dtype=torch.float32).numpy()
    )
    np.testing.assert_array_equal(host_values(oc.cumsum(ours, dim=0)), torch.cumsum(reference, 0).numpy())


@pytest.mark.parametrize(("shape", "dim"), [((), 0), ((13,), 0), ((5, 37), 1), ((2, 7, 9), 1)])
def test_cumsum_gradient_is_the_reversed_running_sum(rng, device, shape, dim):
    ours, reference = pair(rng, shape, "float32", device, transposed=True)
    grad = values_for(rng, shape, "float32")
    ours.requires_grad_(True)
    reference.requires_grad_(True)
    oc.cumsum(ours, dim).backward(oc.tensor(grad).to(device))
    torch.cumsum(reference, dim).backward(torch.from_numpy(grad))
    np.testing.assert_allclose(host_values(ours.grad), reference.grad.numpy(), rtol=1e-5, atol=1e-5)


def test_cumsum_rejects_bad_dims_and_bool_dtype(rng):
    t = oc.tensor(values_for(rng, (3, 4), "float32"))
    with pytest.raises(IndexError, match="dimension 2 is out of range"):
        oc.cumsum(t, 2)
    with pytest.raises(TypeError, match="dtype bool is not supported"):
        oc.cumsum(t, 0, dtype=oc.bool)


# ---- sort, argsort, topk ---------------------------------------------------------------------


def with_specials(rng, shape, dtype: str) -> np.ndarray:
    """Random values with repeats, NaN, infinities and signed zeros sprinkled in (floats)."""
    values = values_for(rng, shape, dtype)
    if dtype in FLOATS and values.size:
        flat = values.reshape(-1)
        picks = rng.integers(0, flat.size, size=max(1, flat.size // 4))
        specials = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.5, 1.5], dtype=flat.dtype)
        flat[picks] = specials[rng.integers(0, specials.size, size=picks.size)]
    return values


@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("dtype", FLOATS + INTEGERS)
@pytest.mark.parametrize(("shape", "dim"), CASES)
def test_sort_matches_torch_stable(rng, device, shape, dim, dtype, descending):
    values = with_specials(rng, shape, dtype)
    reference = torch.from_numpy(values.copy()).to(TORCH[dtype])
    ours = oc.tensor(values).to(OC[dtype]).to(device)
    result = oc.sort(ours, dim, descending=descending)
    expected = torch.sort(reference, stable=True, dim=dim, descending=descending)
    assert isinstance(result, oc.ValuesIndices)
    assert result.values.dtype == OC[dtype] and result.indices.dtype == oc.int64
    assert result.values.shape == expected.values.shape
    np.testing.assert_array_equal(wide(result.values), wide(expected.values))
    np.testing.assert_array_equal(host_values(result.indices), expected.indices.numpy())
    np.testing.assert_array_equal(
        host_values(oc.argsort(ours, dim, descending=descending)), expected.indices.numpy()
    )


def test_sort_of_a_strided_view_and_methods(rng, device):
    ours, reference = pair(rng, (37, 6), "float32", device, transposed=True)
    view, ref_view = ours[::2], reference[::2]
    expected = torch.sort(ref_view, stable=True, dim=0)
    np.testing.assert_array_equal(host_values(view.sort(0).values), expected.values.numpy())
    np.testing.assert_array_equal(
        host_values(view.sort(dim=0, stable=True).indices), expected.indices.numpy()
    )
    np.testing.assert_array_equal(
        host_values(view.argsort(descending=True)), ref_view.argsort(descending=True, stable=True).numpy()
    )


@pytest.mark.parametrize("largest", [True, False])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "int64"])
@pytest.mark.parametrize(
    ("shape", "dim", "k"), [((13,), 0, 5), ((5, 37), 1, 7), ((37, 5), 0, 37), ((4, 9), 1, 0)]
)
def test_topk_matches_torch(rng, device, shape, dim, k, dtype, largest):
    values = with_specials(rng, shape, dtype)
    reference = torch.from_numpy(values.copy()).to(TORCH[dtype])
    ours = oc.tensor(values).to(OC[dtype]).to(device)
    result = oc.topk(ours, k, dim, largest=largest)
    expected = torch.topk(reference, k, dim, largest=largest)
    assert result.values.shape == expected.values.shape and result.indices.dtype == oc.int64
    np.testing.assert_array_equal(wide(result.values), wide(expected.values))
    # Ties may be broken differently; the indices must point at the values returned.
    gathered = torch.gather(reference, dim, torch.from_numpy(host_values(result.indices)))
    np.testing.assert_array_equal(wide(gathered), wide(expected.values))
    np.testing.assert_array_equal(wide(ours.topk(k, dim=dim, largest=largest).values), wide(result.values))


def test_topk_rejects_k_out_of_range(rng, device):
    t = oc.tensor(values_for(rng, (3, 4), "float32")).to(device)
    with pytest.raises(RuntimeError, match=r"k \(5\) is out of range for dim 1 of size 4"):
        oc.topk(t, 5)
    with pytest.raises(RuntimeError, match=r"k \(-1\) is out of range"):
        oc.topk(t, -1, 0)
    with pytest.raises(IndexError, match="dimension 3 is out of range"):
        oc.sort(t, 3)


@pytest.mark.parametrize("op", ["sort", "topk"])
def test_values_gradient_scatters_to_indices(rng, device, op):
    values = rng.permutation(5 * 37).reshape(5, 37) * 0.37 - 20  # no ties: one order only
    ours = oc.tensor(values).to(device).requires_grad_(True)
    reference = torch.from_numpy(values.copy()).requires_grad_(True)
    grad = values_for(rng, (5, 37 if op == "sort" else 6), "float64")
    if op == "sort":
        oc.sort(ours, 1, descending=True).values.backward(oc.tensor(grad).to(device))
        torch.sort(reference, 1, descending=True).values.backward(torch.from_numpy(grad))
    else:
        oc.topk(ours, 6, 1).values.backward(oc.tensor(grad).to(device))
        torch.topk(reference, 6, 1).values.backward(torch.from_numpy(grad))
    np.testing.assert_array_equal(host_values(ours.grad), reference.grad.numpy())


def test_sort_rows_in_parallel_are_thread_count_independent(rng):
    t = oc.tensor(values_for(rng, (301, 257), "float32"))
    before = oc.get_num_threads()
    try:
        results = []
        for threads in (1, 2):
            oc.set_num_threads(threads)
            results.append((host_values(oc.sort(t, 0).indices), host_values(oc.cumsum(t, 0))))
    finally:
        oc.set_num_threads(before)
    for a, b in zip(*results, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.skipif("metal" not in [str(d) for d in oc.devices()], reason="no metal device in this build")
@pytest.mark.parametrize(
    ("length", "dtype"), [(2048, "float32"), (2049, "bfloat16"), (5000, "float32"), (4500, "int64")]
)
def test_metal_sorts_long_rows_in_merged_runs(rng, monkeypatch, length, dtype):
    """Metal's kernels run (no fallback): rows up to 2048 sort in one threadgroup, longer ones in
    runs of 2048 merged pairwise (an odd run count included); ties and NaN give the CPU's order."""
    monkeypatch.delenv("ORCHARD_CPU_FALLBACK", raising=False)
    assert oc.supports("metal", "sort", dtype)
    values = with_specials(rng, (3, length), dtype)
    values[:, 1::2] = values[:, : length // 2]  # every value at least twice: ties
    stored = oc.tensor(np.ascontiguousarray(values.T)).to(OC[dtype])
    for descending in (False, True):
        on_cpu = oc.sort(stored.T, descending=descending)
        on_metal = oc.sort(stored.to("metal").T, descending=descending)
        np.testing.assert_array_equal(wide(on_metal.values), wide(on_cpu.values))
        np.testing.assert_array_equal(host_values(on_metal.indices), host_values(on_cpu.indices))
        top = oc.topk(stored.to("metal").T, 7, largest=descending)
        np.testing.assert_array_equal(wide(top.values), wide(on_cpu.values)[:, :7])
        np.testing.assert_array_equal(host_values(top.indices), host_values(on_cpu.indices)[:, :7])


@pytest.mark.parametrize("largest", [True, False])
def test_topk_is_the_stable_sorts_first_k(rng, device, largest):
    """topk partially sorts (the CPU's partial_sort by key, then index): the first k of the
    stable sort, ties included, along a middle dim of a strided view."""
    values = np.round(with_specials(rng, (3, 301, 4), "float32"), 0)  # many ties
    t = oc.tensor(values).to(device)[:, ::2]
    expected = oc.sort(t, 1, descending=largest)
    for k in (1, 9, 151):
        result = oc.topk(t, k, 1, largest=largest)
        np.testing.assert_array_equal(wide(result.values), wide(expected.values)[:, :k])
        np.testing.assert_array_equal(host_values(result.indices), host_values(expected.indices)[:, :k])
