"""Parity cases: elementwise operators, in-place chains, views and copies."""

from __future__ import annotations

import numpy as np
import orchard_core as oc
from _parity import OpCase, array, broadcast_shapes, shapes
from hypothesis import strategies as st


@st.composite
def unary_args(draw, low=-3.0, high=3.0):
    return [draw(array(draw(shapes()), low, high))]


@st.composite
def binary_args(draw, low=-3.0, high=3.0, other_low=None, other_high=None):
    a, b = draw(broadcast_shapes(2))
    other_low = low if other_low is None else other_low
    other_high = high if other_high is None else other_high
    return [draw(array(a, low, high)), draw(array(b, other_low, other_high))]


# Python numbers as operands, away from zero (they divide).
NUMBERS = st.floats(-2.5, 2.5).filter(lambda x: abs(x) > 0.1)


@st.composite
def tensor_and_number(draw, low=-3.0, high=3.0):
    return [draw(array(draw(shapes()), low, high)), draw(NUMBERS)]


@st.composite
def ternary_args(draw):
    c, a, b = draw(broadcast_shapes(3))
    mask = np.asarray(draw(array(c)).values > 0)
    return [mask, draw(array(a)), draw(array(b))]


@st.composite
def broadcast_to(draw, shape):
    """A shape that broadcasts to `shape` without growing it (trailing dims, some set to 1)."""
    cut = draw(st.integers(0, len(shape)))
    return tuple(1 if draw(st.booleans()) else s for s in shape[cut:])


@st.composite
def masked_fill_args(draw, tensor_value: bool):
    x = draw(shapes())
    mask = np.asarray(draw(array(draw(broadcast_to(x)))).values > 0)
    value = draw(array(())) if tensor_value else draw(st.floats(-3, 3))
    return [draw(array(x)), mask, value]


@st.composite
def clamp_tensor_args(draw):
    x = draw(shapes())  # torch's clamp keeps the input's shape: the bounds broadcast to it
    lo, hi = draw(broadcast_to(x)), draw(broadcast_to(x))
    return [draw(array(x)), draw(array(lo, -1.5, 0.0)), draw(array(hi, 0.0, 1.5))]


@st.composite
def inplace_args(draw):
    """A tensor and an operand that broadcasts to its shape (in-place ops keep self's shape)."""
    shape = draw(shapes(min_dims=1))
    return [draw(array(shape)), draw(array(draw(broadcast_to(shape)), 0.5, 2.0))]


@st.composite
def view_args(draw, min_dims=1):
    return [draw(array(draw(shapes(min_dims=min_dims))))]


@st.composite
def matrix_args(draw):
    return [draw(array(draw(shapes(min_dims=2, max_dims=2))))]


@st.composite
def reshape_args(draw):
    shape = draw(shapes(min_dims=1, min_side=1))
    arg = draw(array(shape))
    numel = arg.values.size
    divisors = [d for d in range(1, numel + 1) if numel % d == 0]
    first = draw(st.sampled_from(divisors))
    return [arg, (first, -1)]


@st.composite
def permute_args(draw):
    shape = draw(shapes(min_dims=1))
    return [draw(array(shape)), draw(st.permutations(range(len(shape))))]


@st.composite
def expand_args(draw):
    """A shape and a target it expands to: size-1 dims grow (or stay), new leading dims appear."""
    shape = draw(shapes(max_dims=3))
    grown = tuple(draw(st.integers(0, 4)) if s == 1 else s for s in shape)
    lead = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    return [draw(array(shape)), lead + grown]


@st.composite
def dim_args(draw, extra=0):
    shape = draw(shapes(min_dims=1))
    ndim = len(shape) + extra
    return [draw(array(shape)), draw(st.integers(-ndim, ndim - 1))]


@st.composite
def select_args(draw):
    shape = draw(shapes(min_dims=1, min_side=1))
    dim = draw(st.integers(-len(shape), len(shape) - 1))
    return [draw(array(shape)), dim, draw(st.integers(-shape[dim], shape[dim] - 1))]


@st.composite
def slice_args(draw):
    shape = draw(shapes(min_dims=1))
    dim = draw(st.integers(0, len(shape) - 1))
    start = draw(st.integers(-MAX, MAX) | st.none())
    stop = draw(st.integers(-MAX, MAX) | st.none())
    return [draw(array(shape)), dim, slice(start, stop, draw(st.integers(1, 3)))]


MAX = 7


def _slice(t, dim, s):
    return t[(slice(None),) * dim + (s,)]


def _select(t, dim, index):
    return t[(slice(None),) * (dim % t.ndim) + (index,)]


def _gelu(lib, x, approximate):
    return oc.gelu(x, approximate) if lib is oc else lib.nn.functional.gelu(x, approximate=approximate)


def _inplace(op):
    # A non-leaf copy takes the in-place op; the chain repeats it, as `x.div_(2)` twice would.
    def run(lib, x, other):
        y = x * 1.5
        getattr(y, op)(other)
        getattr(y, op)(2.0)
        return y

    return run


def _copy_into_copy(lib, x, other):
    # The old values of the copy get no gradient; `other` gets it, summed over broadcast dims.
    y = x * 2.0
    y.copy_(other * 3.0)
    return y * x


UNARY = [
    ("neg", lambda lib, x: -x, -3, 3),
    ("abs", lambda lib, x: lib.abs(x), -3, 3),
    ("exp", lambda lib, x: lib.exp(x), -3, 3),
    ("log", lambda lib, x: lib.log(x), 0.1, 4),
    ("sqrt", lambda lib, x: lib.sqrt(x), 0.1, 4),
    ("rsqrt", lambda lib, x: lib.rsqrt(x), 0.1, 4),
    ("tanh", lambda lib, x: lib.tanh(x), -3, 3),
    ("sigmoid", lambda lib, x: lib.sigmoid(x), -3, 3),
    ("relu", lambda lib, x: lib.relu(x), -3, 3),
    ("gelu", lambda lib, x: _gelu(lib, x, "none"), -3, 3),
    ("gelu_tanh", lambda lib, x: _gelu(lib, x, "tanh"), -3, 3),
    ("pow_number", lambda lib, x: x**2.5, 0.1, 3),
    ("pow_integer", lambda lib, x: x**3, -3, 3),
    ("rpow", lambda lib, x: 1.7**x, -3, 3),
    ("clamp_numbers", lambda lib, x: lib.clamp(x, -1.0, 1.5), -3, 3),
    ("clamp_min", lambda lib, x: x.clamp(min=0.5), -3, 3),
    ("square_via_mul", lambda lib, x: x * x, -3, 3),  # one tensor used twice: gradients add
]

BINARY = [
    ("add", lambda lib, a, b: a + b, {}),
    ("sub", lambda lib, a, b: lib.sub(a, b), {}),
    ("mul", lambda lib, a, b: a * b, {}),
    ("div", lambda lib, a, b: a / b, {"other_low": 0.5, "other_high": 3.0}),
    ("pow", lambda lib, a, b: lib.pow(a, b), {"low": 0.2, "high": 3.0}),
    ("maximum", lambda lib, a, b: lib.maximum(a, b), {}),
    ("minimum", lambda lib, a, b: lib.minimum(a, b), {}),
]

CASES = [OpCase(name, fn, unary_args(low, high)) for name, fn, low, high in UNARY]
CASES += [OpCase(name, fn, binary_args(**bounds)) for name, fn, bounds in BINARY]
CASES += [
    OpCase("add_number", lambda lib, x, c: x + c, tensor_and_number()),
    OpCase("rsub_number", lambda lib, x, c: c - x, tensor_and_number()),
    OpCase("mul_number", lambda lib, x, c: lib.mul(x, c), tensor_and_number()),
    OpCase("div_number", lambda lib, x, c: x / c, tensor_and_number()),
    OpCase("rdiv_number", lambda lib, x, c: c / x, tensor_and_number(0.5, 3.0)),
    OpCase("lt", lambda lib, a, b: a < b, binary_args(), grad=False, gradcheck=False),
    OpCase("le", lambda lib, a, b: lib.le(a, b), binary_args(), grad=False, gradcheck=False),
    OpCase("gt", lambda lib, a, b: a > b, binary_args(), grad=False, gradcheck=False),
    OpCase("ge", lambda lib, a, b: a >= b, binary_args(), grad=False, gradcheck=False),
    OpCase("ne", lambda lib, a, b: lib.ne(a, b), binary_args(), grad=False, gradcheck=False),
    OpCase("eq_number", lambda lib, x, c: lib.eq(x, c), tensor_and_number(), grad=False, gradcheck=False),
    OpCase("where", lambda lib, c, a, b: lib.where(c, a, b), ternary_args()),
    OpCase("masked_fill", lambda lib, x, m, v: x.masked_fill(m, v), masked_fill_args(False)),
    OpCase("masked_fill_tensor_value", lambda lib, x, m, v: lib.masked_fill(x, m, v), masked_fill_args(True)),
    OpCase("clamp_tensors", lambda lib, x, lo, hi: lib.clamp(x, lo, hi), clamp_tensor_args()),
    OpCase("copy_", _copy_into_copy, inplace_args()),
    OpCase("fill_", lambda lib, x: (x * 1.0).fill_(2.5) * x, view_args()),
    OpCase("zero_", lambda lib, x: (x * 1.0).zero_() + x * x, view_args()),
    OpCase("add_", _inplace("add_"), inplace_args()),
    OpCase("sub_", _inplace("sub_"), inplace_args()),
    OpCase("mul_", _inplace("mul_"), inplace_args()),
    OpCase("div_", _inplace("div_"), inplace_args()),
    OpCase("view_flat", lambda lib, x: x.contiguous().view(-1), view_args()),
    OpCase("reshape", lambda lib, x, s: x.reshape(*s), reshape_args()),
    OpCase("transpose", lambda lib, x, d: x.transpose(0, d), dim_args()),
    OpCase("permute", lambda lib, x, p: x.permute(*p), permute_args()),
    OpCase("T", lambda lib, x: x.T, matrix_args()),
    OpCase("mT", lambda lib, x: x.mT, view_args(min_dims=2)),
    OpCase("expand", lambda lib, x, s: x.expand(s), expand_args()),
    OpCase("squeeze", lambda lib, x: x.squeeze(), view_args()),
    OpCase("squeeze_dim", lambda lib, x, d: x.squeeze(d), dim_args()),
    OpCase("unsqueeze", lambda lib, x, d: x.unsqueeze(d), dim_args(extra=1)),
    OpCase("select", lambda lib, x, d, i: _select(x, d, i), select_args()),
    OpCase("getitem_slice", lambda lib, x, d, s: _slice(x, d, s), slice_args()),
    OpCase("clone", lambda lib, x: x.clone() * 2.0, view_args()),
    OpCase("to_float64", lambda lib, x: x.to(lib.float64) * 3.0, view_args()),
]
