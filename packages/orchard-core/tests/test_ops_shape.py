"""Shape/data-movement operators (cat, stack, split, chunk, index_select, gather, scatter_add,
embedding, one_hot, tril/triu, constant_pad_nd) against torch, and the Philox random operators (rand, randn,
randint, dropout) for known answers, reproducibility, thread independence and statistics.

Data movement copies values exactly, so those results must equal torch's bit for bit;
scatter_add sums, so its floats are checked against a float64 reference instead."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import orchard_core as oc
import pytest
import torch
from _core_helpers import OC, assert_matches_torch, host_values, random_pair

LAYOUTS = ["contiguous", "transposed", "sliced"]
MOVE_DTYPES = ["float32", "float64", "bfloat16", "int64", "bool"]


def make_pair(rng, shape, dtype, device, layout="contiguous"):
    """Random values as an orchard tensor on `device` and a torch tensor, both in `layout`:
    transposed (all dims reversed) and sliced (every other element of the last dim) are
    non-contiguous views of a larger tensor."""
    shape = tuple(shape)
    if layout == "transposed" and len(shape) >= 2:
        ours, reference = random_pair(rng, shape[::-1], dtype, device)
        perm = tuple(reversed(range(len(shape))))
        return ours.permute(*perm), reference.permute(*perm)
    if layout == "sliced" and len(shape) >= 1:
        ours, reference = random_pair(rng, (*shape[:-1], 2 * shape[-1] + 1), dtype, device)
        return ours[..., 1::2], reference[..., 1::2]
    return random_pair(rng, shape, dtype, device)


def index_pair(values, device, dtype="int64"):
    array = np.asarray(values, dtype=dtype)
    return oc.tensor(array).to(device), torch.from_numpy(array.copy())


# --- cat / stack ------------------------------------------------------------------------

CAT_CASES = [
    ([(3, 5), (2, 5), (1, 5)], 0),
    ([(3, 5), (3, 1), (3, 0), (3, 7)], 1),
    ([(2, 3, 5), (2, 3, 5)], -1),
    ([(2, 3, 5), (2, 1, 5), (2, 4, 5)], -2),
    ([(0,), (4, 3), (2, 3)], 0),  # torch skips a 1-d empty tensor
    ([(1,), (7,), (0,)], 0),
    ([(0, 3), (0, 3)], 1),
]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(("shapes", "dim"), CAT_CASES)
def test_cat_matches_torch(rng, device, shapes, dim, layout):
    for dtype in MOVE_DTYPES:
        pairs = [make_pair(rng, s, dtype, device, layout) for s in shapes]
        ours = oc.cat([p[0] for p in pairs], dim=dim)
        assert_matches_torch(ours, torch.cat([p[1] for p in pairs], dim=dim))
        assert ours.device == device


def test_cat_promotes_dtypes_like_torch(rng, device):
    a, ta = make_pair(rng, (2, 3), "int64", device)
    b, tb = make_pair(rng, (1, 3), "float32", device)
    c, tc = make_pair(rng, (2, 3), "bool", device)
    assert_matches_torch(oc.cat([a, b, c]), torch.cat([ta, tb, tc]))
    assert_matches_torch(oc.cat([a, c]), torch.cat([ta, tc]))


def test_cat_of_many_inputs_of_mixed_sizes(rng, device):
    """More inputs than one launch takes (CUDA copies up to 32 a launch, in the widest unit all of
    them allow): sizes whose byte counts are odd, even and multiples of 16, some empty, 0-d ones
    stacked as clip_grad_norm_ stacks its per-parameter norms."""
    for dtype in MOVE_DTYPES:
        pairs = [make_pair(rng, (2, int(n)), dtype, device) for n in rng.integers(0, 40, 75)]
        assert_matches_torch(oc.cat([p[0] for p in pairs], dim=1), torch.cat([p[1] for p in pairs], dim=1))
        pairs = [make_pair(rng, (), dtype, device) for _ in range(70)]
        assert_matches_torch(oc.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs]))


STACK_CASES = [((3, 5), 3, 0), ((3, 5), 2, 2), ((3, 5), 4, -1), ((1, 0, 3), 2, 1), ((), 5, 0), ((7,), 1, -2)]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(("shape", "count", "dim"), STACK_CASES)
def test_stack_matches_torch(rng, device, shape, count, dim, layout):
    for dtype in MOVE_DTYPES:
        pairs = [make_pair(rng, shape, dtype, device, layout) for _ in range(count)]
        assert_matches_torch(
            oc.stack([p[0] for p in pairs], dim=dim), torch.stack([p[1] for p in pairs], dim=dim)
        )


# --- split / chunk ----------------------------------------------------------------------

SPLIT_CASES = [
    ((7, 3), 2, 0),
    ((7, 3), 3, 1),
    ((7, 3), 10, 0),
    ((5, 9), [2, 0, 7], -1),
    ((5, 9), (5,), 0),
    ((0, 4), 3, 0),
    ((0, 4), 0, 0),
    ((3, 5, 2), [1, 1, 1], 0),
]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(("shape", "sizes", "dim"), SPLIT_CASES)
def test_split_returns_views_like_torch(rng, device, shape, sizes, dim, layout):
    ours, reference = make_pair(rng, shape, "float32", device, layout)
    pieces = oc.split(ours, sizes, dim)
    expected = torch.split(reference, sizes, dim)
    assert isinstance(pieces, tuple)
    assert len(pieces) == len(expected)
    for piece, want in zip(pieces, expected, strict=True):
        assert_matches_torch(piece, want)
        assert piece.is_alias_of(ours)
    method = ours.split(sizes, dim=dim)
    assert [p.shape for p in method] == [p.shape for p in pieces]


CHUNK_CASES = [((7, 3), 3, 0), ((7, 3), 2, 1), ((6,), 4, 0), ((5, 2), 9, 0), ((0, 3), 3, 0), ((4, 1), 1, -1)]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(("shape", "chunks", "dim"), CHUNK_CASES)
def test_chunk_returns_views_like_torch(rng, device, shape, chunks, dim, layout):
    ours, reference = make_pair(rng, shape, "int64", device, layout)
    pieces = oc.chunk(ours, chunks, dim)
    expected = torch.chunk(reference, chunks, dim)
    assert len(pieces) == len(expected)
    for piece, want in zip(pieces, expected, strict=True):
        assert_matches_torch(piece, want)
        assert piece.is_alias_of(ours)
    assert [p.shape for p in ours.chunk(chunks, dim)] == [p.shape for p in pieces]


# --- index_select / embedding -----------------------------------------------------------

INDEX_SELECT_CASES = [
    ((7, 5), 0, 11, "int64"),
    ((7, 5), 1, 3, "int32"),
    ((3, 5, 9), -1, 13, "int64"),
    ((3, 5, 9), 1, 0, "int64"),
    ((1, 9), 0, 5, "int32"),
    ((9,), 0, 1, "int64"),
]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(("shape", "dim", "count", "index_dtype"), INDEX_SELECT_CASES)
def test_index_select_matches_torch(rng, device, shape, dim, count, index_dtype, layout):
    index, tindex = index_pair(rng.integers(0, shape[dim], count), device, index_dtype)
    for dtype in MOVE_DTYPES:
        ours, reference = make_pair(rng, shape, dtype, device, layout)
        assert_matches_torch(oc.index_select(ours, dim, index), torch.index_select(reference, dim, tindex))
        assert_matches_torch(ours.index_select(dim, index), reference.index_select(dim, tindex))


EMBEDDING_CASES = [((5,), 11, 7), ((3, 4), 7, 1), ((2, 0), 3, 5), ((), 9, 3), ((2, 3, 5), 13, 17)]


@pytest.mark.parametrize(("index_shape", "rows", "width"), EMBEDDING_CASES)
def test_embedding_matches_torch(rng, device, index_shape, rows, width):
    for index_dtype in ["int64", "int32"]:
        index, tindex = index_pair(rng.integers(0, rows, index_shape), device, index_dtype)
        for dtype in ["float32", "float64", "bfloat16"]:
            weight, tweight = make_pair(rng, (rows, width), dtype, device, "transposed")
            expected = torch.nn.functional.embedding(tindex, tweight)
            assert_matches_torch(oc.embedding(index, weight), expected)


# --- gather / scatter_add ---------------------------------------------------------------

GATHER_CASES = [
    ((7, 5), 0, (11, 5)),
    ((7, 5), 1, (7, 13)),
    ((7, 5), 1, (3, 2)),  # index smaller than input off dim
    ((3, 5, 9), -1, (3, 5, 1)),
    ((3, 5, 9), 1, (2, 7, 9)),
    ((3, 5, 9), 0, (0, 5, 9)),
    ((9,), 0, (13,)),
]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(("shape", "dim", "index_shape"), GATHER_CASES)
def test_gather_matches_torch(rng, device, shape, dim, index_shape, layout):
    index, tindex = index_pair(rng.integers(0, shape[dim], index_shape), device)
    for dtype in MOVE_DTYPES:
        ours, reference = make_pair(rng, shape, dtype, device, layout)
        assert_matches_torch(oc.gather(ours, dim, index), torch.gather(reference, dim, tindex))
        assert_matches_torch(ours.gather(dim, index), reference.gather(dim, tindex))


SCATTER_CASES = [
    ((7, 5), 0, (11, 5), (11, 5)),
    ((7, 5), 1, (7, 13), (7, 13)),
    ((7, 5), 1, (3, 2), (5, 7)),  # src larger than index: only the index's extent is read
    ((3, 5, 9), -1, (3, 5, 20), (3, 5, 20)),
    ((3, 5, 9), 1, (2, 7, 9), (3, 7, 9)),
    ((3, 5, 9), 0, (0, 5, 9), (1, 5, 9)),
    ((9,), 0, (40,), (40,)),
]


def scatter_add_reference(base, dim, index, src):
    """float64 sums, and per output element the sum of |terms| that bounds rounding error."""
    total = base.astype(np.float64)
    magnitude = np.abs(total)
    coords = list(np.indices(index.shape))
    coords[dim] = index
    values = src[tuple(slice(0, n) for n in index.shape)].astype(np.float64)
    np.add.at(total, tuple(coords), values)
    np.add.at(magnitude, tuple(coords), np.abs(values))
    return total, magnitude


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(("shape", "dim", "index_shape", "src_shape"), SCATTER_CASES)
def test_scatter_add_matches_torch_and_float64(rng, device, shape, dim, index_shape, src_shape, layout):
    index_values = rng.integers(0, shape[dim], index_shape)
    index, tindex = index_pair(index_values, device)
    for dtype in ["float32", "float64", "int64"]:
        base, tbase = make_pair(rng, shape, dtype, device, layout)
        src, tsrc = make_pair(rng, src_shape, dtype, device, layout)
        ours = oc.scatter_add(base, dim, index, src)
        expected = torch.scatter_add(tbase, dim, tindex, tsrc)
        assert ours.dtype.name == dtype and ours.shape == tuple(expected.shape)
        if dtype == "int64":
            assert_matches_torch(ours, expected)
        else:
            # Each output is a sum of at most k+1 terms added in some order: the error is
            # bounded by k * eps * (sum of |terms|), k the number of additions (<= len(index)).
            total, magnitude = scatter_add_reference(
                host_values(base), dim % len(shape), index_values, host_values(src)
            )
            eps = np.finfo(dtype).eps
            bound = (index_values.size + 1) * eps * magnitude
            assert np.all(np.abs(host_values(ours) - total) <= bound)
        in_place = base.clone()
        assert in_place.scatter_add_(dim, index, src).data_ptr() == in_place.data_ptr()
        np.testing.assert_array_equal(host_values(in_place), host_values(ours))


def test_scatter_add_into_a_non_contiguous_view(rng, device):
    base, tbase = make_pair(rng, (5, 6), "int64", device, "transposed")
    src, tsrc = make_pair(rng, (4, 6), "int64", device)
    index, tindex = index_pair(rng.integers(0, 5, (4, 6)), device)
    base.scatter_add_(0, index, src)
    tbase.scatter_add_(0, tindex, tsrc)
    assert_matches_torch(base, tbase)


# --- one_hot / tril / triu --------------------------------------------------------------

ONE_HOT_CASES = [((7,), -1), ((3, 5), 9), ((0,), 4), ((), 3), ((2, 3), 1)]


@pytest.mark.parametrize(("shape", "num_classes"), ONE_HOT_CASES)
def test_one_hot_matches_torch(rng, device, shape, num_classes):
    high = num_classes if num_classes > 0 else 6
    index, tindex = index_pair(rng.integers(0, high, shape), device)
    expected = torch.nn.functional.one_hot(tindex, num_classes)
    assert_matches_torch(oc.one_hot(index, num_classes), expected)


TRIANGLE_CASES = [((5, 7), 0), ((7, 5), 2), ((7, 5), -3), ((3, 4, 6), 1), ((2, 3, 1, 5), -1), ((5, 5), 9)]
TRIANGLE_CASES += [((5, 5), -9), ((0, 4), 0), ((2, 3, 0), 1)]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(("shape", "diagonal"), TRIANGLE_CASES)
def test_tril_triu_match_torch(rng, device, shape, diagonal, layout):
    for dtype in MOVE_DTYPES:
        ours, reference = make_pair(rng, shape, dtype, device, layout)
        lower = torch.tril(reference, diagonal)
        assert_matches_torch(oc.tril(ours, diagonal), lower)
        assert_matches_torch(ours.tril(diagonal), lower)
        assert_matches_torch(oc.triu(ours, diagonal=diagonal), torch.triu(reference, diagonal=diagonal))


PAD_CASES = [((5, 7), (1, 2)), ((5, 7), (0, 3, 2, 0)), ((3, 4, 6), (-1, 2, 1, -2, 0, 1)), ((9,), (-3, -4))]
PAD_CASES += [((2, 3), (-2, -1)), ((2, 0, 3), (1, 1, 2, 0)), ((4, 3), ()), ((3, 5), (-5, 2))]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(("shape", "pad"), PAD_CASES)
def test_constant_pad_nd_matches_torch(rng, device, shape, pad, layout):
    for dtype, value in zip(MOVE_DTYPES, [-1.5, 2.0, 0.25, 3.7, 1], strict=True):
        ours, reference = make_pair(rng, shape, dtype, device, layout)
        got = oc.constant_pad_nd(ours, pad, value)
        assert_matches_torch(got, torch.constant_pad_nd(reference, pad, value))
        assert not got.is_alias_of(ours)


@pytest.mark.parametrize(("shape", "pad"), PAD_CASES[:4])
def test_constant_pad_nd_gradient_crops_the_padding(rng, device, shape, pad):
    ours, reference = make_pair(rng, shape, "float32", device)
    ours.requires_grad, reference.requires_grad = True, True
    seed, seed_reference = make_pair(rng, torch.constant_pad_nd(reference, pad).shape, "float32", device)
    oc.constant_pad_nd(ours, pad, 0.5).backward(seed)
    torch.constant_pad_nd(reference, pad, 0.5).backward(seed_reference)
    assert_matches_torch(ours.grad, reference.grad)


def test_large_inputs_take_the_threaded_paths(rng):
    """Sizes above the OpenMP thresholds, for the kernels' parallel loops."""
    ours, reference = make_pair(rng, (300, 257), "float32", "cpu")
    index, tindex = index_pair(rng.integers(0, 300, 400), "cpu")
    assert_matches_torch(oc.index_select(ours, 0, index), torch.index_select(reference, 0, tindex))
    index, tindex = index_pair(rng.integers(0, 257, (300, 300)), "cpu")
    assert_matches_torch(oc.gather(ours, 1, index), torch.gather(reference, 1, tindex))
    src, tsrc = make_pair(rng, (300, 300), "int64", "cpu")
    base, tbase = make_pair(rng, (300, 257), "int64", "cpu")
    assert_matches_torch(oc.scatter_add(base, 1, index, src), torch.scatter_add(tbase, 1, tindex, tsrc))
    long, tlong = make_pair(rng, (700_001,), "float32", "cpu")  # one row, copied in 1 MiB pieces
    assert_matches_torch(oc.cat([long, long[:5]]), torch.cat([tlong, tlong[:5]]))
    assert_matches_torch(oc.cat([ours, base.to(oc.float32)], 1), torch.cat([reference, tbase.float()], 1))
    flat, tflat = index_pair(rng.integers(0, 257, 2000), "cpu", "int32")
    assert_matches_torch(oc.index_select(ours, 1, flat), torch.index_select(reference, 1, tflat))


@pytest.mark.parametrize("index_dtype", ["int32", "int64"])
def test_index_bounds_of_a_long_strided_index(rng, device, index_dtype):
    """Bounds of an index larger than one reduction block (Metal: partial bounds of many
    threadgroups, then merged), read through a strided view: the error still names the value."""
    values = rng.integers(0, 50, (100_003, 2)).astype(index_dtype)
    weight, tweight = make_pair(rng, (50, 3), "float32", device)
    index = oc.tensor(values).to(device)[:, 1]
    expected = torch.index_select(tweight, 0, torch.from_numpy(values[:, 1].astype(np.int64)))
    assert_matches_torch(oc.index_select(weight, 0, index), expected)
    values[61_234, 1] = 50
    with pytest.raises(IndexError, match="index 50 is out of range for dimension 0 with size 50"):
        oc.index_select(weight, 0, oc.tensor(values).to(device)[:, 1])
    values[99_000, 1] = -7  # the low bound is named first
    with pytest.raises(IndexError, match="index -7 is out of range"):
        oc.index_select(weight, 0, oc.tensor(values).to(device)[:, 1])


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "int64"])
def test_embedding_backward_shape_sums_in_the_cpus_order(rng, device, dtype):
    """scatter_add as embedding's backward calls it (dst [V, E], index [N] expanded along E, many
    repeats), E past one threadgroup: every device adds in index order, so the bits are the CPU's."""
    rows, width, count = 40, 300, 500
    positions = rng.integers(0, rows, (count, 1))
    values = oc.tensor(rng.standard_normal((count, width)).astype(np.float32) * 100).to(OC[dtype])
    index = oc.tensor(positions).expand(count, width)
    expected = oc.zeros(rows, width, dtype=OC[dtype]).scatter_add_(0, index, values)
    ours = oc.zeros(rows, width, dtype=OC[dtype], device=device)
    ours.scatter_add_(0, index.to(device), values.to(device))
    np.testing.assert_array_equal(host_values(ours), host_values(expected))


@pytest.mark.parametrize("op", ["embedding", "index_select", "gather", "max"])
def test_index_backwards_refuse_an_index_modified_since_the_forward(rng, device, op):
    """These backwards scatter without checking the index's bounds again (on a GPU the check
    waits for the device): the forward checked them, or made the index. That holds only for the
    index the forward saw, so one modified in place since is refused, never scattered."""
    weight = oc.tensor(rng.standard_normal((5, 3))).to(device).requires_grad_()
    index = oc.tensor([[1, 4, 2]]).to(device)
    if op == "embedding":
        out = oc.nn.functional.embedding(index, weight)
    elif op == "index_select":
        out = oc.index_select(weight, 0, index[0])
    elif op == "gather":
        out = oc.gather(weight, 0, index)
    else:
        out, index = weight.max(dim=0)
    index.add_(10)  # past every bound
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        out.sum().backward()


def test_index_ops_past_one_threadgroup(rng, device):
    """Sizes that take many threadgroups (Metal) with ends that are no multiple of their width."""
    ours, reference = make_pair(rng, (300, 257), "float32", device, "transposed")
    index, tindex = index_pair(rng.integers(0, 300, 401), device)
    assert_matches_torch(oc.index_select(ours, 0, index), torch.index_select(reference, 0, tindex))
    index, tindex = index_pair(rng.integers(0, 257, (300, 301)), device)
    assert_matches_torch(oc.gather(ours, 1, index), torch.gather(reference, 1, tindex))
    base, tbase = make_pair(rng, (300, 257), "int64", device, "sliced")
    src, tsrc = make_pair(rng, (300, 301), "int64", device)
    assert_matches_torch(oc.scatter_add(base, 1, index, src), torch.scatter_add(tbase, 1, tindex, tsrc))
    assert_matches_torch(oc.cat([ours, base.to(oc.float32)], 1), torch.cat([reference, tbase.float()], 1))
    assert_matches_torch(oc.triu(ours, 3), torch.triu(reference, 3))


# --- errors -----------------------------------------------------------------------------


def _t(values, dtype="int64"):
    return oc.tensor(np.asarray(values, dtype=dtype))


ERROR_CASES = [
    (lambda: oc.cat([]), ValueError, "non-empty list"),
    (lambda: oc.cat([oc.zeros(2, 3), oc.zeros(3, 4)]), ValueError, r"tensor 1 has shape \[3, 4\]"),
    (lambda: oc.cat([oc.zeros(2, 3), oc.zeros(2, 3)], dim=2), IndexError, "dimension 2"),
    (lambda: oc.cat([oc.zeros(()), oc.zeros(())]), ValueError, "zero-dimensional"),
    (lambda: oc.stack([oc.zeros(2, 3), oc.zeros(3, 2)]), ValueError, r"tensor 1 has shape \[3, 2\]"),
    (lambda: oc.split(oc.zeros(5), -1), ValueError, "split_size -1"),
    (lambda: oc.split(oc.zeros(5), [2, 2]), ValueError, r"sum to 4 .* size 5"),
    (lambda: oc.split(oc.zeros(5), [6, -1]), ValueError, "negative size -1"),
    (lambda: oc.chunk(oc.zeros(5), 0), ValueError, "chunks must be positive, got 0"),
    (lambda: oc.index_select(oc.zeros(5), 0, _t([1.0], "float32")), TypeError, "float32"),
    (lambda: oc.index_select(oc.zeros(5, 2), 0, _t([1, 5])), IndexError, "index 5 .* size 5"),
    (lambda: oc.index_select(oc.zeros(5, 2), 1, _t([-1, 0])), IndexError, "index -1 .* dimension 1"),
    (lambda: oc.index_select(oc.zeros(5), 0, _t([[1]])), ValueError, r"shape \[1, 1\]"),
    (lambda: oc.gather(oc.zeros(3, 4), 1, _t([[1]], "int32")), TypeError, "int32"),
    (lambda: oc.gather(oc.zeros(3, 4), 1, _t([1])), ValueError, "dimensions"),
    (lambda: oc.gather(oc.zeros(3, 4), 1, _t([[9]])), IndexError, "index 9 .* size 4"),
    (lambda: oc.gather(oc.zeros(3, 4), 1, _t([[0]] * 4)), ValueError, "dimension 0"),
    (lambda: oc.gather(oc.zeros(3, 4), 2, _t([[0]])), IndexError, "dimension 2"),
    (lambda: oc.scatter_add(oc.zeros(3), 0, _t([1]), _t([1])), TypeError, "src dtype int64"),
    (lambda: oc.scatter_add(oc.zeros(3), 0, _t([3]), oc.ones(1)), IndexError, "index 3 .* size 3"),
    (lambda: oc.scatter_add(oc.zeros(3), 0, _t([0, 1]), oc.ones(1)), ValueError, r"src \[1\]"),
    (lambda: oc.embedding(_t([1]), oc.zeros(4)), ValueError, r"2-d, got shape \[4\]"),
    (lambda: oc.embedding(_t([[1, 10]]), oc.zeros(4, 2)), IndexError, "index 10 .* size 4"),
    (lambda: oc.one_hot(_t([0, -1])), IndexError, "index -1"),
    (lambda: oc.one_hot(_t([0, 3]), 3), IndexError, "index 3"),
    (lambda: oc.one_hot(_t([0], "int32")), TypeError, "int32"),
    (lambda: oc.one_hot(_t([], "int64")), ValueError, "empty"),
    (lambda: oc.one_hot(_t([0]), -2), ValueError, "got -2"),
    (lambda: oc.tril(oc.zeros(4)), ValueError, r"shape \[4\]"),
    (lambda: oc.triu(oc.zeros(())), ValueError, r"shape \[\]"),
    (lambda: oc.constant_pad_nd(oc.zeros(2, 3), [1]), ValueError, r"padding \[1\] has 1 values"),
    (lambda: oc.constant_pad_nd(oc.zeros(3), [1, 1, 1, 1]), ValueError, r"pads 2 dimensions.*shape \[3\]"),
    (lambda: oc.constant_pad_nd(oc.zeros(2, 3), [-2, -2]), ValueError, "negative size -1"),
    (lambda: oc.constant_pad_nd(oc.zeros(2, 3), [1.5, 1]), TypeError, "1.5"),
    (lambda: oc.dropout(oc.zeros(4), 1.0), ValueError, "p=1"),
    (lambda: oc.dropout(oc.zeros(4), -0.25), ValueError, "p=-0.25"),
    (lambda: oc.dropout(_t([1, 2]), 0.5), TypeError, "int64"),
    (lambda: oc.rand(3, dtype=oc.int32), TypeError, "int32"),
    (lambda: oc.randn(3, dtype=oc.bool), TypeError, "bool"),
    (lambda: oc.randint(5, 5, (3,)), ValueError, "low 5 must be below high 5"),
    (lambda: oc.randint(0, (3,)), ValueError, "low 0 must be below high 0"),
    (lambda: oc.randint(1, 2, 3, (3,)), TypeError, "got 4 arguments"),
]


@pytest.mark.parametrize(("call", "error", "message"), ERROR_CASES)
def test_bad_input_raises_naming_the_value(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_operands_on_two_devices_are_refused(monkeypatch):
    monkeypatch.setenv("ORCHARD_METAL_FALLBACK", "cpu")
    with pytest.raises(ValueError, match="cpu and metal"):
        oc.cat([oc.zeros(2), oc.zeros(2, device="metal")])
    with pytest.raises(ValueError, match="cpu and metal"):
        oc.index_select(oc.zeros(2), 0, _t([0]).to("metal"))


# --- random -----------------------------------------------------------------------------

# Random123's tests/kat_vectors, the three "philox4x32 10" lines: counter, key -> output.
PHILOX_KAT = [
    ([0, 0, 0, 0], [0, 0], [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]),
    ([0xFFFFFFFF] * 4, [0xFFFFFFFF] * 2, [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]),
    (
        [0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344],
        [0xA4093822, 0x299F31D0],
        [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1],
    ),
]


@pytest.mark.parametrize(("counter", "key", "expected"), PHILOX_KAT)
def test_philox_known_answers(counter, key, expected):
    assert list(oc._core._philox4x32_10(counter, key)) == expected


def test_rand_uses_counter_offset_plus_i(seed):
    """The vectorized CPU Philox (SSE2/AVX2 lanes) equals the reference block function: element
    i of a float64 draw is the top 53 bits of words 0 and 1 of counter (offset + i)."""
    seed %= 2**64
    oc.manual_seed(seed)
    skipped = 37  # the second draw starts mid-block
    oc.rand(skipped)
    got = host_values(oc.rand(41, dtype=oc.float64))
    key = [seed & 0xFFFFFFFF, seed >> 32]
    for i, value in enumerate(got):
        counter = skipped + i
        w = oc._core._philox4x32_10([counter & 0xFFFFFFFF, counter >> 32, 0, 0], key)
        assert value == ((w[0] << 32 | w[1]) >> 11) * 2.0**-53


DRAWS = {
    "rand": lambda n, device: oc.rand(n, device=device),
    "randn": lambda n, device: oc.randn(n, dtype=oc.float64, device=device),
    "randint": lambda n, device: oc.randint(-3, 1000, (n,), device=device),
    "dropout": lambda n, device: oc.dropout(oc.ones(n, device=device), p=0.3),
}


@pytest.mark.parametrize("draw", list(DRAWS))
def test_draws_repeat_per_seed_and_continue_the_stream(seed, device, draw):
    make = DRAWS[draw]
    oc.manual_seed(seed)
    whole = host_values(make(1000, device))
    oc.manual_seed(seed)
    first, second = host_values(make(600, device)), host_values(make(400, device))
    # Element i uses counter offset + i and each draw advances the offset by its size.
    np.testing.assert_array_equal(np.concatenate([first, second]), whole)
    assert not np.array_equal(host_values(make(1000, device)), whole)
    oc.manual_seed(seed + 1)
    assert not np.array_equal(host_values(make(1000, device)), whole)


FLOATING_DRAWS = {
    "rand": lambda n, dtype, device: oc.rand(n, dtype=dtype, device=device),
    "randn": lambda n, dtype, device: oc.randn(n, dtype=dtype, device=device),
    "randint": lambda n, dtype, device: oc.randint(-(2**11), 2**11, (n,), dtype=dtype, device=device),
    "dropout": lambda n, dtype, device: oc.dropout(oc.arange(n, device=device).to(dtype) - 500, p=0.3),
}
DEVICE_DRAWS = [(draw, dtype) for draw in FLOATING_DRAWS for dtype in ["float32", "bfloat16", "float16"]]
DEVICE_DRAWS += [("randint", "int32"), ("randint", "int64")]


@pytest.mark.parametrize(("draw", "dtype"), DEVICE_DRAWS, ids=[f"{d}-{t}" for d, t in DEVICE_DRAWS])
def test_draws_equal_the_cpu_bits(seed, device, draw, dtype):
    """Every device gives the CPU's values for the same seed and offset: element i depends on
    Philox counter (offset + i) alone, not on how the elements are split over threads. The draw
    starts mid-block and its size, 1003, is a multiple of no block (the CPU's 16 Philox lanes,
    Metal's 256-thread threadgroups). randn may differ in the last float32 bit on a GPU whose
    compiler fuses a * b + c in its log and cos polynomials (the Metal harness does not)."""
    make = FLOATING_DRAWS[draw]
    draws = {}
    for on in ["cpu", device]:
        oc.manual_seed(seed)
        oc.rand(37, device=on)
        draws[on] = host_values(make(1003, OC[dtype], on))
    if draw == "randn":  # a few float32 roundings, or one rounding step of a 16-bit dtype
        rtol = {"float32": 4 * 2.0**-23, "bfloat16": 2.0**-7, "float16": 2.0**-10}[dtype]
        np.testing.assert_allclose(draws[device], draws["cpu"], rtol=rtol, atol=0)
    else:
        np.testing.assert_array_equal(draws[device], draws["cpu"])


_THREAD_SCRIPT = textwrap.dedent(
    """
    import hashlib, sys
    import orchard_core as oc
    oc.manual_seed(int(sys.argv[1]))
    x = oc.randn(3, 100_003)
    parts = [oc.rand(200_003), x, oc.randint(0, 7, (200_003,)), oc.dropout(x, 0.4)]
    print(hashlib.sha256(b"".join(p.numpy().tobytes() for p in parts)).hexdigest())
    """
)


def test_results_do_not_depend_on_the_thread_count_or_simd_path(seed):
    digests = set()
    for threads, avx2 in [("1", True), ("2", True), ("3", True), ("2", False)]:
        env = {**os.environ, "OMP_NUM_THREADS": threads}
        if not avx2:
            env["ORCHARD_CPU_ISA"] = "generic"  # the SSE2 Philox path
        result = subprocess.run(
            [sys.executable, "-c", _THREAD_SCRIPT, str(seed % 2**63)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        digests.add(result.stdout.strip())
    assert len(digests) == 1


N_SAMPLES = 1_000_000
Z = 5.0  # standard errors allowed: a false alarm once in ~1.7 million runs per check


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_rand_is_uniform(seed, device, dtype):
    oc.manual_seed(seed)
    x = host_values(oc.rand(N_SAMPLES, dtype=OC[dtype], device=device)).astype(np.float64)
    assert x.min() >= 0.0 and x.max() < 1.0
    assert abs(x.mean() - 0.5) < Z * np.sqrt(1 / 12 / N_SAMPLES)
    assert abs(x.var() - 1 / 12) < Z * np.sqrt((1 / 80 - 1 / 144) / N_SAMPLES)  # Var of (U - 1/2)^2
    counts = np.histogram(x, bins=10, range=(0, 1))[0]
    assert np.all(np.abs(counts - N_SAMPLES / 10) < Z * np.sqrt(N_SAMPLES * 0.1 * 0.9))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_randn_is_standard_normal(seed, device, dtype):
    oc.manual_seed(seed)
    x = host_values(oc.randn(N_SAMPLES, dtype=OC[dtype], device=device)).astype(np.float64)
    assert np.all(np.isfinite(x))
    assert abs(x.mean()) < Z / np.sqrt(N_SAMPLES)
    assert abs(x.var() - 1) < Z * np.sqrt(2 / N_SAMPLES)
    inside = np.mean(np.abs(x) < 1)  # P(|Z| < 1) = 0.6827
    assert abs(inside - 0.682689) < Z * np.sqrt(0.6827 * 0.3173 / N_SAMPLES)


def test_half_precision_draws_stay_in_range(seed, device):
    oc.manual_seed(seed)
    for dtype in ["bfloat16", "float16"]:
        u = oc.rand(100_000, dtype=OC[dtype], device=device)
        assert u.dtype == OC[dtype]
        values = host_values(u.to(oc.float32))
        assert values.min() >= 0 and values.max() < 1  # never rounds up to 1
        assert abs(values.mean() - 0.5) < 0.01
        z = host_values(oc.randn(100_000, dtype=OC[dtype], device=device).to(oc.float32))
        assert abs(z.mean()) < 0.02 and abs(z.var() - 1) < 0.03


@pytest.mark.parametrize(("low", "high"), [(0, 7), (-50, -3), (-(2**40), 2**40), (5, 6)])
def test_randint_bounds_and_mean(seed, device, low, high):
    oc.manual_seed(seed)
    x = oc.randint(low, high, (N_SAMPLES,), device=device)
    assert x.dtype == oc.int64 and x.shape == (N_SAMPLES,)
    values = host_values(x)
    assert values.min() >= low and values.max() <= high - 1
    span = high - low
    assert abs(values.astype(np.float64).mean() - (low + high - 1) / 2) <= Z * np.sqrt(
        (span**2 - 1) / 12 / N_SAMPLES
    )
    if span < 100:
        assert set(np.unique(values)) == set(range(low, high))
    small = oc.randint(10, (2, 3), dtype=oc.int32, device=device)
    assert small.dtype == oc.int32 and small.shape == (2, 3)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dropout_keeps_and_scales(rng, seed, device, p, dtype):
    oc.manual_seed(seed)
    x, _ = make_pair(rng, (500, 401), dtype, device, "sliced")
    out = oc.dropout(x, p)
    assert out.dtype == x.dtype and out.shape == x.shape
    got, original = host_values(out), host_values(x)
    kept = got != 0
    nonzero = original != 0
    assert abs(kept[nonzero].mean() - (1 - p)) < 0.01
    # Kept values are x / (1 - p) rounded once in the dtype (or computed as x * (1/(1-p))).
    rtol = 2 * np.finfo(dtype).eps
    np.testing.assert_allclose(got[kept], original[kept] / (1 - p), rtol=rtol)
    for unchanged in [oc.dropout(x, p, training=False), oc.dropout(x, 0.0)]:
        assert unchanged.data_ptr() == x.data_ptr() and unchanged.stride() == x.stride()


def test_flip_rejects_repeated_and_out_of_range_dims():
    t = oc.arange(6).reshape(2, 3)
    with pytest.raises(ValueError, match="twice"):
        oc.flip(t, [1, -1])
    with pytest.raises(IndexError, match="2"):
        oc.flip(t, [2])
    assert oc.flip(oc.tensor(3.0), [0]).item() == 3.0  # 0-d, as in torch
    flipped = oc.flip(t, [])
    assert not flipped.is_alias_of(t) and flipped.tolist() == t.tolist()
