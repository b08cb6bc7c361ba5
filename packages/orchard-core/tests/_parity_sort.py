"""Parity cases: linear (with and without bias, 1-D to 3-D inputs), cumsum, sort and topk along
any dim. Values are uniform floats, so sort and topk meet no ties and their gradients are
unique."""

from __future__ import annotations

from typing import Any

from _parity import OpCase, array, shapes
from _parity_reduce import along_dim_args
from hypothesis import strategies as st


def linear(lib: Any, x: Any, w: Any, b: Any = None) -> Any:
    """torch keeps it in torch.nn.functional, orchard-core at the top level."""
    return (lib.linear if hasattr(lib, "linear") and not hasattr(lib, "nn") else lib.nn.functional.linear)(
        x, w, b
    )


@st.composite
def linear_args(draw, bias: bool):
    batch = draw(shapes(min_dims=0, max_dims=2))
    k, n = draw(st.integers(0, 6)), draw(st.integers(0, 6))
    args = [draw(array((*batch, k))), draw(array((n, k)))]
    return [*args, draw(array((n,)))] if bias else args


@st.composite
def topk_args(draw):
    x, dim = draw(along_dim_args())
    size = x.values.shape[dim] if x.values.ndim else 1
    return [x, draw(st.integers(0, size)), dim, draw(st.booleans())]


CASES = [
    OpCase("linear_bias", lambda lib, x, w, b: linear(lib, x, w, b), linear_args(True)),
    OpCase("linear", lambda lib, x, w: linear(lib, x, w), linear_args(False)),
    OpCase("cumsum", lambda lib, x, d: lib.cumsum(x, d), along_dim_args()),
    OpCase("cumsum_method", lambda lib, x, d: x.cumsum(d), along_dim_args()),
    OpCase("sort", lambda lib, x, d: lib.sort(x, d).values, along_dim_args()),
    OpCase("sort_descending", lambda lib, x, d: x.sort(d, descending=True), along_dim_args()),
    OpCase("argsort", lambda lib, x, d: lib.argsort(x, d), along_dim_args(), grad=False),
    OpCase("topk", lambda lib, x, k, d, largest: lib.topk(x, k, d, largest=largest), topk_args()),
]
