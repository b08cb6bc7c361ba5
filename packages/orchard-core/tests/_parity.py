"""The parity harness: one table of operator cases, run forward and backward against torch.

A case is a function ``fn(lib, *args)`` written once for both libraries (orchard-core
keeps torch's names), and a hypothesis strategy drawing its arguments: random float
arrays (some laid out non-contiguously), index arrays and plain numbers. The harness
builds the same inputs in both libraries, on every orchard device, compares the outputs,
then backpropagates the same random output gradients through both and compares the
input gradients. A new backend runs every case by adding its device to conftest.DEVICES.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orchard_core as oc
import torch
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

LAYOUTS = ("contiguous", "transposed", "sliced")
MAX_SIDE = 6


@dataclass(frozen=True)
class Arg:
    """One input: float ``values`` become a tensor of the case's dtype (requiring grad when
    ``grad``), integer or bool arrays stay as they are; ``layout`` makes a non-contiguous view."""

    values: np.ndarray
    grad: bool = True
    layout: str = "contiguous"


@dataclass(frozen=True)
class OpCase:
    name: str
    fn: Callable[..., Any]
    args: st.SearchStrategy[list[Any]]
    grad: bool = True  # whether to compare gradients (False for comparisons, argmax, ...)
    dtypes: tuple[str, ...] = ("float32", "float64")
    # Extra tolerance factor over the harness's per-dtype defaults, for cases whose float32
    # results legitimately differ more between two implementations (long sums, cancellation).
    tolerance: float = 1.0
    gradcheck: bool = True
    tags: tuple[str, ...] = field(default=())


# --- strategies -------------------------------------------------------------------------


def shapes(min_dims: int = 0, max_dims: int = 4, min_side: int = 0, max_side: int = MAX_SIDE):
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side)


def broadcast_shapes(count: int, min_dims: int = 0, max_dims: int = 4, min_side: int = 0):
    """`count` shapes that broadcast together (size-1 and missing dims included)."""
    return hnp.mutually_broadcastable_shapes(
        num_shapes=count, min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=MAX_SIDE
    ).map(lambda result: result.input_shapes)


@st.composite
def values(draw, shape: Sequence[int], low: float = -3.0, high: float = 3.0) -> np.ndarray:
    """Random float64 values in [low, high) from a seed hypothesis draws (so failures replay)."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    return rng.uniform(low, high, size=tuple(shape))


@st.composite
def array(draw, shape: Sequence[int], low: float = -3.0, high: float = 3.0, grad: bool = True) -> Arg:
    return Arg(draw(values(shape, low, high)), grad=grad, layout=draw(st.sampled_from(LAYOUTS)))


@st.composite
def indices(draw, shape: Sequence[int], bound: int) -> np.ndarray:
    """int64 indices in [0, bound), duplicates likely."""
    seed = draw(st.integers(0, 2**32 - 1))
    return np.random.default_rng(seed).integers(0, max(bound, 1), size=tuple(shape), dtype=np.int64)


# --- building inputs --------------------------------------------------------------------

TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64}
OC_DTYPES = {"float32": oc.float32, "float64": oc.float64}


def _laid_out(values: np.ndarray, layout: str) -> tuple[np.ndarray, Callable[[Any], Any]]:
    """Storage values and the view that shows them as `values` (same for both libraries)."""
    ndim = values.ndim
    if layout == "transposed" and ndim >= 2:
        return np.ascontiguousarray(values.T), lambda t: t.permute(*reversed(range(ndim)))
    if layout == "sliced" and ndim >= 1:
        padded = np.repeat(values, 2, axis=-1)
        return padded, lambda t: t[..., ::2]
    return values, lambda t: t


def make_inputs(args: Sequence[Any], dtype: str, device: str) -> tuple[list[Any], list[Any]]:
    """The same inputs for orchard (on `device`) and torch; differentiable ones are leaves."""
    ours: list[Any] = []
    theirs: list[Any] = []
    for arg in args:
        if isinstance(arg, Arg):
            storage, view = _laid_out(arg.values, arg.layout)
            o = view(oc.tensor(storage, dtype=OC_DTYPES[dtype], device=device)).detach()
            t = view(torch.from_numpy(storage.copy()).to(TORCH_DTYPES[dtype])).detach()
            if arg.grad:
                o.requires_grad_()
                t.requires_grad_()
            ours.append(o)
            theirs.append(t)
        elif isinstance(arg, np.ndarray):
            ours.append(oc.tensor(arg, device=device))
            theirs.append(torch.from_numpy(arg.copy()))
        else:
            ours.append(arg)
            theirs.append(arg)
    return ours, theirs


def flat_tensors(result: Any, kind: type) -> list[Any]:
    """The tensors of an op's result (a tensor, or a tuple / namedtuple / list of them)."""
    if isinstance(result, kind):
        return [result]
    return [item for item in result if isinstance(item, kind)]


# --- comparing --------------------------------------------------------------------------

# Two correct implementations differ by rounding: a few ulps per operation, more where
# sums run in a different order. The absolute part scales with the largest reference value.
RTOL = {"float32": 2e-5, "float64": 1e-12}


def assert_close(ours: oc.Tensor, reference: torch.Tensor, dtype: str, tolerance: float, what: str) -> None:
    assert ours.shape == tuple(reference.shape), f"{what}: shape {ours.shape} != {tuple(reference.shape)}"
    assert ours.dtype.name == str(reference.dtype).removeprefix("torch."), (
        f"{what}: {ours.dtype} vs {reference.dtype}"
    )
    got = np.asarray(ours.detach().to("cpu"))
    want = reference.detach().numpy()
    if got.dtype.kind not in "fc":
        np.testing.assert_array_equal(got, want, err_msg=what, strict=True)
        return
    rtol = RTOL[dtype] * tolerance
    finite = np.abs(want[np.isfinite(want)])
    scale = float(finite.max(initial=1.0))
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * scale, equal_nan=True, err_msg=what)


def check_parity(case: OpCase, args: Sequence[Any], dtype: str, device: str) -> None:
    """Forward values, then input gradients for the same random output gradients."""
    ours_in, torch_in = make_inputs(args, dtype, device)
    ours_out = flat_tensors(case.fn(oc, *ours_in), oc.Tensor)
    torch_out = flat_tensors(case.fn(torch, *torch_in), torch.Tensor)
    assert len(ours_out) == len(torch_out), f"{case.name}: {len(ours_out)} outputs vs {len(torch_out)}"
    for k, (o, t) in enumerate(zip(ours_out, torch_out, strict=True)):
        assert_close(o, t, dtype, case.tolerance, f"{case.name} output {k}")
    if not case.grad:
        return
    wrt = [i for i, t in enumerate(torch_in) if isinstance(t, torch.Tensor) and t.requires_grad]
    roots = [k for k, t in enumerate(torch_out) if t.requires_grad]
    for k in roots:
        assert ours_out[k].requires_grad, f"{case.name}: output {k} does not require grad"
    if not wrt or not roots:
        return
    rng = np.random.default_rng(abs(hash((case.name, *(o.shape for o in ours_out)))) % 2**32)
    seeds = [rng.standard_normal(torch_out[k].shape) for k in roots]
    want = torch.autograd.grad(
        [torch_out[k] for k in roots],
        [torch_in[i] for i in wrt],
        [torch.from_numpy(s).to(torch_out[k].dtype) for s, k in zip(seeds, roots, strict=True)],
        allow_unused=True,
    )
    got = oc.autograd.grad(
        [ours_out[k] for k in roots],
        [ours_in[i] for i in wrt],
        [oc.tensor(s, dtype=ours_out[k].dtype, device=device) for s, k in zip(seeds, roots, strict=True)],
        allow_unused=True,
    )
    for i, g_ours, g_torch in zip(wrt, got, want, strict=True):
        what = f"{case.name} gradient of input {i}"
        if g_torch is None:
            assert g_ours is None or not np.asarray(g_ours.to("cpu")).any(), f"{what}: torch has none"
            continue
        assert g_ours is not None, f"{what}: orchard gave None"
        assert_close(g_ours, g_torch, dtype, case.tolerance, what)


def check_gradcheck(case: OpCase, args: Sequence[Any], device: str) -> None:
    """orchard's analytical gradients against float64 finite differences."""
    ours_in, _ = make_inputs(args, "float64", device)
    if not any(isinstance(t, oc.Tensor) and t.requires_grad for t in ours_in):
        return
    assert oc.autograd.gradcheck(lambda *xs: case.fn(oc, *xs), ours_in, atol=1e-6, rtol=1e-4)
