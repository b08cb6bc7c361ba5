"""Parity cases: joining and splitting, indexing with gradients that scatter back (repeated
indices accumulate), embedding and triangles."""

from __future__ import annotations

import itertools

import numpy as np
import orchard_core as oc
from _parity import MAX_SIDE, OpCase, array, indices, shapes
from hypothesis import strategies as st

SIDES = st.integers(0, MAX_SIDE)


def _dim(draw, ndim: int) -> int:
    return draw(st.integers(-ndim, ndim - 1))


@st.composite
def cat_args(draw):
    """[dim, *tensors] equal except along dim, which takes any size (0 included)."""
    shape = list(draw(shapes(min_dims=1)))
    dim = _dim(draw, len(shape))
    parts = []
    for _ in range(draw(st.integers(1, 3))):
        shape[dim] = draw(SIDES)
        parts.append(draw(array(tuple(shape))))
    return [dim, *parts]


@st.composite
def cat_skipping_empty_args(draw):
    """torch's cat skips 1-d empty tensors beside tensors of any rank."""
    shape = draw(shapes(min_dims=1))
    return [draw(array((0,))), draw(array(shape)), draw(array((0,)))]


@st.composite
def stack_args(draw):
    shape = draw(shapes(max_dims=3))
    dim = _dim(draw, len(shape) + 1)
    return [dim, *(draw(array(shape)) for _ in range(draw(st.integers(1, 3))))]


@st.composite
def split_size_args(draw):
    shape = draw(shapes(min_dims=1))
    return [draw(array(shape)), draw(st.integers(1, MAX_SIDE + 1)), _dim(draw, len(shape))]


@st.composite
def split_sections_args(draw):
    shape = draw(shapes(min_dims=1))
    dim = _dim(draw, len(shape))
    cuts = sorted(draw(st.lists(st.integers(0, shape[dim]), max_size=3)))
    bounds = [0, *cuts, shape[dim]]
    sections = [b - a for a, b in itertools.pairwise(bounds)]  # zero-size pieces included
    return [draw(array(shape)), sections, dim]


@st.composite
def chunk_args(draw):
    shape = draw(shapes(min_dims=1))
    return [draw(array(shape)), draw(st.integers(1, MAX_SIDE + 1)), _dim(draw, len(shape))]


def _index_dtype(draw, index: np.ndarray) -> np.ndarray:
    return index.astype(draw(st.sampled_from([np.int64, np.int32])))


@st.composite
def index_select_args(draw):
    shape = draw(shapes())
    ndim = max(len(shape), 1)  # a 0-d input acts as 1-d of one element
    dim = _dim(draw, ndim)
    size = shape[dim] if shape else 1
    count = 1 if not shape else 0 if size == 0 else draw(st.integers(0, 2 * MAX_SIDE))
    return [draw(array(shape)), dim, _index_dtype(draw, draw(indices((count,), size)))]


@st.composite
def gather_args(draw):
    """Index no larger than the input outside dim, any length along it (duplicates likely)."""
    shape = draw(shapes())
    dim = _dim(draw, max(len(shape), 1))
    index_shape = [draw(st.integers(0, side)) for side in shape]
    if shape:
        index_shape[dim] = 0 if shape[dim] == 0 else draw(st.integers(0, 2 * MAX_SIDE))
    bound = shape[dim] if shape else 1
    return [draw(array(shape)), dim, draw(indices(tuple(index_shape), bound))]


@st.composite
def scatter_add_args(draw):
    """src of index's shape (torch's backward needs it), index no larger than self outside dim."""
    x, dim, index = draw(gather_args())
    return [x, dim, index, draw(array(index.shape))]


@st.composite
def embedding_args(draw):
    rows, width = draw(st.integers(1, MAX_SIDE)), draw(SIDES)
    lookup = draw(indices(draw(shapes(max_dims=3)), rows))
    return [_index_dtype(draw, lookup), draw(array((rows, width)))]


@st.composite
def triangle_args(draw):
    return [draw(array(draw(shapes(min_dims=2)))), draw(st.integers(-MAX_SIDE - 1, MAX_SIDE + 1))]


def _embedding(lib, lookup, weight):
    return oc.embedding(lookup, weight) if lib is oc else lib.nn.functional.embedding(lookup, weight)


def _scatter_add_inplace(lib, x, dim, index, src):
    # A non-leaf copy takes the in-place op; the second one adds src again.
    y = x * 1.5
    y.scatter_add_(dim, index, src)
    y.scatter_add_(dim, index, src)
    return y


@st.composite
def flip_args(draw):
    """A tensor and distinct dims to flip (negative ones included)."""
    shape = draw(shapes(min_dims=1))
    chosen = draw(st.lists(st.integers(0, len(shape) - 1), unique=True, max_size=len(shape)))
    dims = [d - len(shape) if draw(st.booleans()) else d for d in chosen]
    return [draw(array(shape)), dims]


@st.composite
def one_hot_args(draw):
    shape = draw(shapes(max_dims=3))
    classes = draw(st.integers(1, 7))
    return [draw(indices(shape, classes)), classes]


def _one_hot(lib, index, classes):
    return oc.one_hot(index, classes) if lib is oc else lib.nn.functional.one_hot(index, classes)


CASES = [
    OpCase("cat", lambda lib, dim, *xs: lib.cat(list(xs), dim), cat_args()),
    OpCase("cat_skips_1d_empty", lambda lib, *xs: lib.cat(list(xs)), cat_skipping_empty_args()),
    OpCase("stack", lambda lib, dim, *xs: lib.stack(list(xs), dim), stack_args()),
    OpCase("split_size", lambda lib, x, size, dim: lib.split(x, size, dim), split_size_args()),
    OpCase("split_sections", lambda lib, x, sections, dim: x.split(sections, dim), split_sections_args()),
    OpCase("chunk", lambda lib, x, chunks, dim: x.chunk(chunks, dim), chunk_args()),
    OpCase("index_select", lambda lib, x, dim, index: lib.index_select(x, dim, index), index_select_args()),
    OpCase("gather", lambda lib, x, dim, index: x.gather(dim, index), gather_args()),
    OpCase("scatter_add", lambda lib, x, d, i, src: lib.scatter_add(x, d, i, src), scatter_add_args()),
    OpCase("scatter_add_", _scatter_add_inplace, scatter_add_args()),
    OpCase("embedding", _embedding, embedding_args()),
    OpCase("one_hot", _one_hot, one_hot_args(), grad=False, gradcheck=False),
    OpCase("flip", lambda lib, x, dims: lib.flip(x, dims), flip_args()),
    OpCase("flip_method", lambda lib, x, dims: x.flip(*dims) if dims else x.flip(dims), flip_args()),
    OpCase("tril", lambda lib, x, diagonal: lib.tril(x, diagonal), triangle_args()),
    OpCase("triu", lambda lib, x, diagonal: x.triu(diagonal), triangle_args()),
]
