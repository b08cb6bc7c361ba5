"""Parity cases: reductions (sum, mean, max, min, var, std, logsumexp) and softmax."""

from __future__ import annotations

import math

import numpy as np
from _parity import Arg, OpCase, array, shapes
from hypothesis import strategies as st


@st.composite
def one_dim(draw, ndim: int) -> int:
    """A dim of a tensor of `ndim` dims, negative half the time (0 or -1 for a 0-d one)."""
    rank = max(ndim, 1)
    return draw(st.integers(-rank, rank - 1))


@st.composite
def dim_list(draw, ndim: int, allow_none: bool = True):
    """None (all dims), one int, or a tuple of distinct dims in any order, some negative."""
    kinds = ["int", "tuple"] + (["none"] if allow_none else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "none":
        return None
    if kind == "int" or ndim == 0:
        return draw(one_dim(ndim))
    chosen = draw(st.permutations(range(ndim)))[: draw(st.integers(1, ndim))]
    return tuple(d - ndim if draw(st.booleans()) else d for d in chosen)


def reduced_count(shape, dim) -> int:
    """How many input elements feed each output element."""
    if dim is None or not shape:
        return math.prod(shape)
    dims = [dim] if isinstance(dim, int) else dim
    return math.prod(shape[d] for d in dims)


@st.composite
def reduce_args(draw, allow_none: bool = True, low: float = -3.0, high: float = 3.0, min_side: int = 0):
    shape = draw(shapes(min_side=min_side))
    return [draw(array(shape, low, high)), draw(dim_list(len(shape), allow_none)), draw(st.booleans())]


@st.composite
def variance_args(draw):
    """Like reduce_args plus a correction below the reduced count (so the result is finite).
    No size-0 dims: torch warns of no degrees of freedom for any empty input."""
    x, dim, keepdim = draw(reduce_args(min_side=1))
    count = reduced_count(x.values.shape, dim)
    correction = draw(st.sampled_from([0, 1] if count > 1 else [0]))
    return [x, dim, correction, keepdim]


@st.composite
def along_dim_args(draw, low: float = -3.0, high: float = 3.0, nonempty: bool = False, min_side: int = 0):
    """An input and one dim; with `nonempty`, that dim is not of size 0 (other dims may be)."""
    shape = list(draw(shapes(min_side=min_side)))
    dim = draw(one_dim(len(shape)))
    if shape and nonempty:
        shape[dim] = max(shape[dim], 1)
    return [draw(array(shape, low, high)), dim]


@st.composite
def extreme_dim_args(draw):
    return [*draw(along_dim_args(nonempty=True)), draw(st.booleans())]


@st.composite
def nonempty_args(draw):
    return [draw(array(draw(shapes(min_side=1))))]


@st.composite
def tied_args(draw):
    """Values rounded to a few integers, so the largest and smallest repeat."""
    x = draw(array(draw(shapes(min_side=1)), -2.0, 2.0))
    return [Arg(np.array(np.round(x.values)), layout=x.layout)]


def _normalize(lib, x, dim):
    # A layer-norm-like chain: x reaches the output along three paths (direct, mean, std).
    # Its inputs have no size-0 dims, on which torch's std warns.
    centered = x - x.mean(dim, keepdim=True)
    return centered / (x.std(dim, correction=0, keepdim=True) + 0.5)


@st.composite
def arg_reduce_args(draw):
    """A tensor with no empty dim (argmax of nothing is an error) and a dim, distinct values."""
    shape = draw(shapes(min_dims=1, min_side=1))
    return [
        draw(array(shape, grad=False)),
        draw(st.integers(-len(shape), len(shape) - 1)),
        draw(st.booleans()),
    ]


CASES = [
    OpCase(
        "argmax", lambda lib, x, d, k: lib.argmax(x, d, k), arg_reduce_args(), grad=False, gradcheck=False
    ),
    OpCase("argmin", lambda lib, x, d, k: x.argmin(d, k), arg_reduce_args(), grad=False, gradcheck=False),
    OpCase("sum", lambda lib, x, d, k: lib.sum(x, d, keepdim=k), reduce_args()),
    OpCase("sum_method", lambda lib, x, d, k: x.sum(d, k) * 2.0, reduce_args()),
    OpCase(
        "sum_dtype_float64",
        lambda lib, x, d, k: lib.sum(x, d, keepdim=k, dtype=lib.float64),
        reduce_args(),
    ),
    OpCase("mean", lambda lib, x, d, k: lib.mean(x, d, keepdim=k), reduce_args()),
    OpCase("mean_dtype_float64", lambda lib, x, d, k: x.mean(d, keepdim=k, dtype=lib.float64), reduce_args()),
    OpCase("max", lambda lib, x: lib.max(x), nonempty_args()),
    OpCase("min", lambda lib, x: x.min(), nonempty_args()),
    # Equal extremes share the gradient evenly; finite differences cannot see that split.
    OpCase("max_ties", lambda lib, x: lib.max(x), tied_args(), gradcheck=False),
    OpCase("min_ties", lambda lib, x: lib.min(x), tied_args(), gradcheck=False),
    OpCase("max_dim", lambda lib, x, d, k: lib.max(x, d, keepdim=k), extreme_dim_args()),
    OpCase("min_dim", lambda lib, x, d, k: x.min(d, k), extreme_dim_args()),
    OpCase("var", lambda lib, x, d, c, k: lib.var(x, d, correction=c, keepdim=k), variance_args()),
    OpCase("std", lambda lib, x, d, c, k: x.std(d, correction=c, keepdim=k), variance_args()),
    OpCase("logsumexp", lambda lib, x, d, k: lib.logsumexp(x, d, k), reduce_args(allow_none=False)),
    # Large values: the result and its gradient must not overflow.
    OpCase(
        "logsumexp_large",
        lambda lib, x, d, k: x.logsumexp(d, k),
        reduce_args(allow_none=False, low=-90, high=90),
    ),
    OpCase("softmax", lambda lib, x, d: lib.softmax(x, d), along_dim_args()),
    OpCase("softmax_large", lambda lib, x, d: x.softmax(d), along_dim_args(-90, 90)),
    OpCase("softmax_dtype_float64", lambda lib, x, d: lib.softmax(x, d, dtype=lib.float64), along_dim_args()),
    OpCase("log_softmax", lambda lib, x, d: lib.log_softmax(x, d), along_dim_args()),
    OpCase("log_softmax_large", lambda lib, x, d: x.log_softmax(d), along_dim_args(-90, 90)),
    OpCase(
        "log_softmax_dtype_float64",
        lambda lib, x, d: x.log_softmax(d, dtype=lib.float64),
        along_dim_args(),
    ),
    OpCase("normalize", _normalize, along_dim_args(min_side=1)),
]
