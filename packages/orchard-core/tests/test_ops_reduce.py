"""Reductions (sum, mean, max, min, argmax, argmin, var, std, logsumexp) and softmax /
log_softmax, against torch for semantics (dtype, shape, strides, indices) and against a
float64 reference for numerics, over contiguous and non-contiguous inputs on every device.

Tolerances: a sum of n values carries rounding of about sqrt(n) * eps relative to the sum
of their magnitudes (blocked summation, random signs), so sums are checked to
8 * sqrt(n) * eps * sum|x| plus one rounding of the result in the output dtype. var, std and
logsumexp compute in double and round once: a few eps of the output dtype. softmax rounds a
few times per element (exp within an ulp, one product or difference): 8 * eps relative to
each element, or to the magnitude of x and the offset for log_softmax.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import orchard_core as oc
import pytest
import torch
from _core_helpers import OC, TORCH, random_array

EPS = {"float32": 2.0**-23, "float64": 2.0**-52, "bfloat16": 2.0**-8}
# Each layout builds a view of `shape`: plain, transposed (its memory is the reversed shape)
# or sliced (every other element of a last dim twice as long).
LAYOUTS = ["contiguous", "transposed", "sliced"]
SHAPES = [(5, 7, 3), (1, 13, 2), (9,), (4, 0, 3), ()]
# Rows longer than a Metal threadgroup (256 threads), and many short rows of its transpose.
LONG_ROWS = (3, 300)
# Few rows longer than 8192: Metal sums them in pieces, then the pieces' sums.
LONG_SUM_ROWS = (3, 9000)
DIMS = [None, 0, -1, (0, -1), (2, 0, 1)]


def make_pair(rng, shape, dtype, layout, device, magnitude=None):
    """The same random values (scaled to at most `magnitude`, if given) as an orchard view
    (on `device`) and a torch view."""
    if layout == "transposed":
        memory = shape[::-1]
    elif layout == "sliced" and shape:
        memory = (*shape[:-1], 2 * shape[-1])
    else:
        memory = shape
    values = random_array(rng, memory, dtype)
    if magnitude is not None and values.size:
        values = np.asarray(
            values * (magnitude / max(float(np.abs(values).max()), 1e-30)), dtype=values.dtype
        )
    ours = oc.tensor(values).to(OC[dtype]).to(device)
    reference = torch.from_numpy(values.copy()).to(TORCH[dtype])
    if layout == "transposed":
        reverse = list(reversed(range(len(shape))))
        ours, reference = ours.permute(reverse), reference.permute(reverse)
    elif layout == "sliced" and shape:
        ours, reference = ours[..., ::2], reference[..., ::2]
    return ours, reference


def valid_dims(dim, ndim):
    """The dims argument if it fits a tensor of `ndim` dims, else None (case skipped)."""
    if dim is None:
        return None
    dims = dim if isinstance(dim, tuple) else (dim,)
    rank = max(ndim, 1)
    if any(not -rank <= d < rank for d in dims) or len({d % rank for d in dims}) < len(dims):
        raise pytest.skip.Exception("dims do not fit this shape", _use_item_location=True)
    return dim


def values(t) -> np.ndarray:
    t = t.cpu()
    return (t.to(oc.float64) if t.dtype.is_floating_point else t).numpy()


def check_semantics(ours, want: torch.Tensor, contiguous_input: bool):
    assert ours.dtype.name == str(want.dtype).removeprefix("torch.")
    assert ours.shape == tuple(want.shape)
    if contiguous_input:  # torch keeps a permuted input's memory order; orchard is always contiguous
        assert ours.stride() == want.stride()
    assert ours.is_contiguous()


def torch_dims(dim):
    return () if dim is None else dim


# name -> (orchard call, torch call, dtypes): sums and means, checked to a sqrt(n) bound.
SUM_CASES = {
    "sum": (oc.sum, torch.sum, ["float32", "float64", "bfloat16", "int32", "int64", "bool"]),
    "mean": (oc.mean, torch.mean, ["float32", "float64", "bfloat16"]),
}


@pytest.mark.parametrize("name", SUM_CASES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", [*SHAPES, LONG_SUM_ROWS], ids=str)
@pytest.mark.parametrize("dim", DIMS, ids=str)
def test_sum_mean(rng, device, name, layout, shape, dim):
    ours_fn, torch_fn, dtypes = SUM_CASES[name]
    dim = valid_dims(dim, len(shape))
    for i, dtype in enumerate(dtypes):
        keepdim = i % 2 == 1  # alternating covers both without doubling the cases
        x, ref = make_pair(rng, shape, dtype, layout, device)
        if dim is None:
            got, want = ours_fn(x), torch_fn(ref)
            exact = torch_fn(ref.double())
            magnitude = ref.double().abs().sum()
        else:
            got = ours_fn(x, dim, keepdim)
            want = torch_fn(ref, torch_dims(dim), keepdim)
            exact = torch_fn(ref.double(), torch_dims(dim), keepdim)
            magnitude = ref.double().abs().sum(torch_dims(dim), keepdim)
        check_semantics(got, want, layout == "contiguous")
        if dtype not in EPS:
            np.testing.assert_array_equal(values(got), want.numpy())
            continue
        n = max(ref.numel() // max(exact.numel(), 1), 1)
        if name == "mean":
            magnitude = magnitude / n
        eps = EPS[dtype]
        accumulate = 2.0**-23 if dtype == "bfloat16" else eps
        tol = 8 * math.sqrt(n) * accumulate * magnitude.numpy() + eps * exact.abs().numpy()
        np.testing.assert_array_less(np.abs(values(got) - exact.numpy()), tol + 1e-300, err_msg=f"{dtype}")


def assert_float32_sum(got, ref: torch.Tensor, dims, keepdim=False, mean=False):
    """`got` is ref's sum (or mean) over `dims` within the module's float32 summation bound.

    The values span 1e-3..1e3 with mixed signs, so a result can be far smaller than its
    terms: the bound is relative to the sum of magnitudes, not to the result."""
    exact = ref.double().sum(dims, keepdim)
    magnitude = ref.double().abs().sum(dims, keepdim)
    n = max(ref.numel() // max(exact.numel(), 1), 1)
    if mean:
        exact, magnitude = exact / n, magnitude / n
    eps = EPS["float32"]
    tol = 8 * math.sqrt(n) * eps * magnitude.numpy() + eps * exact.abs().numpy()
    assert values(got).shape == exact.shape
    np.testing.assert_array_less(np.abs(values(got) - exact.numpy()), tol + 1e-300)


def test_sum_methods_and_dtype(rng, device):
    x, ref = make_pair(rng, (4, 6), "float32", "contiguous", device)
    assert_float32_sum(x.sum(dim=1, keepdim=True), ref, 1, keepdim=True)
    assert_float32_sum(x.mean((0, 1)), ref, (0, 1), mean=True)
    assert_float32_sum(oc.sum(x, np.int64(-1)), ref, -1)
    assert_float32_sum(x.sum([np.int32(0)]), ref, 0)
    as_double = oc.sum(x, dtype=oc.float64)
    assert as_double.dtype == oc.float64
    np.testing.assert_allclose(as_double.item(), ref.double().sum().item(), rtol=1e-12)
    ints, ints_ref = make_pair(rng, (3, 5), "int32", "contiguous", device)
    assert ints.mean(dtype=oc.float64).item() == pytest.approx(ints_ref.double().mean().item())


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", [(301, 2500), (4100, 37)], ids=str)
def test_large_sums_use_every_path(rng, device, layout, shape):
    """Sizes past the block, tile and threading thresholds, full and along each dim; (4100, 37)
    along dim 0 is a bias gradient's column sum, which CUDA cuts into pieces over two passes."""
    x, ref = make_pair(rng, shape, "float32", layout, device)
    exact, magnitude = ref.double(), ref.double().abs()
    for dim in [None, 0, 1]:
        got = oc.sum(x) if dim is None else oc.sum(x, dim)
        want = exact.sum() if dim is None else exact.sum(dim)
        bound = magnitude.sum() if dim is None else magnitude.sum(dim)
        n = ref.numel() // max(want.numel(), 1)
        tol = 8 * math.sqrt(n) * EPS["float32"] * bound.numpy()
        np.testing.assert_array_less(np.abs(values(got) - want.numpy()), tol)


@pytest.mark.parametrize("dtype", ["int64", "bfloat16"])
def test_column_sums_in_pieces_are_exact(rng, device, dtype):
    """The two-pass column sum of integers: exact in int64, and in bfloat16 the exact sum rounded
    once (partial sums in float64 hold integers exactly)."""
    values_ = rng.integers(-50, 50, (4100, 37))
    got = oc.sum(oc.tensor(values_).to(OC[dtype]).to(device), 0)
    want = oc.tensor(values_.sum(0)).to(OC[dtype])
    np.testing.assert_array_equal(values(got), values(want))


def test_empty_reductions(device):
    empty = oc.zeros(0, 3, device=device)
    assert oc.sum(empty).item() == 0
    assert values(oc.sum(empty, 0)).tolist() == [0.0, 0.0, 0.0]
    assert oc.sum(empty, 1).shape == (0,)
    assert oc.sum(oc.zeros(0, dtype=oc.int32, device=device)).dtype == oc.int64
    assert np.isnan(values(oc.mean(empty, 0))).all()
    assert np.isnan(oc.var(empty).item())
    assert oc.logsumexp(empty, 0).tolist() == [-math.inf] * 3
    assert oc.max(empty, 1).values.shape == (0,)


# name -> (orchard call, torch call): max/min give (values, indices) with a dim.
NUMERIC = ["float32", "float64", "bfloat16", "int32", "int64"]
EXTREME_CASES = {  # torch has no argmax/argmin of bool
    "max": (oc.max, torch.max, [*NUMERIC, "bool"]),
    "min": (oc.min, torch.min, [*NUMERIC, "bool"]),
    "argmax": (oc.argmax, torch.argmax, NUMERIC),
    "argmin": (oc.argmin, torch.argmin, NUMERIC),
}


@pytest.mark.parametrize("name", EXTREME_CASES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", [*(s for s in SHAPES if 0 not in s), LONG_ROWS], ids=str)
@pytest.mark.parametrize("dim", [None, 1, -1], ids=str)
def test_extremes(rng, device, name, layout, shape, dim):
    ours_fn, torch_fn, dtypes = EXTREME_CASES[name]
    dim = valid_dims(dim, len(shape))
    for i, dtype in enumerate(dtypes):
        keepdim = i % 2 == 1
        x, ref = make_pair(rng, shape, dtype, layout, device)
        if dim is None:
            got, want = ours_fn(x), torch_fn(ref)
        else:
            got, want = ours_fn(x, dim, keepdim), torch_fn(ref, dim, keepdim)
        pairs = zip(got, want, strict=True) if name in ("max", "min") and dim is not None else [(got, want)]
        for ours, theirs in pairs:
            check_semantics(ours, theirs, layout == "contiguous")
            theirs = theirs.double() if theirs.dtype == torch.bfloat16 else theirs
            np.testing.assert_array_equal(values(ours), theirs.numpy(), err_msg=dtype)


def test_max_min_named_results_and_nan(device):
    x = oc.tensor([[1.0, float("nan"), 3.0], [2.0, -1.0, 0.5]]).to(device)
    result = x.max(dim=1)
    assert isinstance(result, oc.ValuesIndices)
    values_, indices = result
    assert np.isnan(values_.cpu().numpy()[0]) and values_.cpu().numpy()[1] == 2.0
    assert indices.tolist() == [1, 0] and result.indices.dtype == oc.int64
    assert np.isnan(x.min().item())
    assert x.argmin(dim=1, keepdim=True).tolist() == [[1], [1]]


# name -> (orchard call, torch call): double accumulation, a few eps of the output dtype.
MOMENT_CASES = {
    "var": (oc.var, torch.var),
    "std": (oc.std, torch.std),
    "logsumexp": (oc.logsumexp, torch.logsumexp),
}


def exact_logsumexp(x64: torch.Tensor, dim) -> tuple[torch.Tensor, torch.Tensor]:
    """logsumexp in double as max + log1p(the terms of every element but one max), and the
    magnitude of that last sum, |max| + |log1p(...)| (0 where the max is not finite). torch's
    max + log(sum) rounds what the other terms add into the max's 1, which loses most digits of
    a result near 0 (a row whose max is 0 and whose other terms are ~1e-11)."""
    if x64.ndim == 0:
        return torch.logsumexp(x64, dim), torch.zeros(())  # the element itself
    dims = tuple(d % x64.ndim for d in (dim if isinstance(dim, tuple) else (dim,)))
    kept = [d for d in range(x64.ndim) if d not in dims]
    rows = x64.permute(*kept, *dims).reshape(*(x64.shape[d] for d in kept), -1)
    top = rows.max(-1, keepdim=True).values
    others = torch.exp(rows - top).scatter(-1, rows.argmax(-1, keepdim=True), 0.0).sum(-1)
    top, log_term = top.squeeze(-1), torch.log1p(others)
    finite = torch.isfinite(top)
    value = torch.where(finite, top + log_term, torch.logsumexp(x64, dims))
    return value, torch.where(finite, top.abs() + log_term.abs(), 0.0)


@pytest.mark.parametrize("name", MOMENT_CASES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", [*(s for s in SHAPES if 0 not in s), LONG_ROWS], ids=str)
@pytest.mark.parametrize("dim", [None, 0, -1, (0, -1)], ids=str)
@pytest.mark.filterwarnings("ignore:.*degrees of freedom is <= 0")  # torch's, for correction >= count
def test_var_std_logsumexp(rng, device, name, layout, shape, dim):
    ours_fn, torch_fn = MOMENT_CASES[name]
    dim = valid_dims(dim, len(shape))
    if name == "logsumexp" and dim is None:
        pytest.skip("logsumexp takes a dim")
    for correction, dtype in [(1, "float32"), (0, "float64"), (2.5, "float32"), (1, "float64")]:
        x, ref = make_pair(rng, shape, dtype, layout, device)
        if name == "logsumexp":
            got, want = ours_fn(x, dim), torch_fn(ref, dim)
            exact, last_sum = exact_logsumexp(ref.double(), dim)
        else:
            kwargs = {"correction": correction, "keepdim": True}
            got = ours_fn(x, dim, **kwargs)
            want, exact = torch_fn(ref, dim, **kwargs), torch_fn(ref.double(), dim, **kwargs)
            last_sum = torch.zeros(())
        check_semantics(got, want, layout == "contiguous")
        n = ref.numel() // max(exact.numel(), 1)
        # One rounding to the output dtype, plus the double passes of ours and of the
        # reference: n * eps relative to sum(x^2) / sum((x - mean)^2) (the conditioning), and
        # logsumexp's last double sum, max + log1p(...), which may cancel.
        x64 = ref.double()
        dims = dim if dim is not None else tuple(range(x64.ndim))
        spread = (x64 - x64.mean(dims, keepdim=True)).square().sum(dims, keepdim=name != "logsumexp")
        conditioning = x64.square().sum(dims, keepdim=name != "logsumexp") / spread
        rtol = 8 * EPS[dtype] + 8 * n * EPS["float64"] * conditioning.nan_to_num(posinf=0.0).numpy()
        have, want_values = values(got), exact.numpy()
        np.testing.assert_array_equal(have[~np.isfinite(want_values)], want_values[~np.isfinite(want_values)])
        finite = np.isfinite(want_values)
        # A result below the dtype's smallest subnormal rounds to 0 (a float32 logsumexp of 4e-117).
        underflow = np.finfo(np.float32 if dtype == "float32" else np.float64).smallest_subnormal
        last_sum_error = 8 * EPS["float64"] * np.broadcast_to(last_sum.numpy(), want_values.shape)[finite]
        relative = np.broadcast_to(rtol * np.abs(want_values), want_values.shape)[finite]
        bound = relative + last_sum_error + underflow
        assert (np.abs(have[finite] - want_values[finite]) <= bound).all(), dtype


def test_logsumexp_is_stable_and_promotes_ints(device):
    big = oc.tensor([1000.0, 1000.0, -math.inf]).to(device)
    assert oc.logsumexp(big, 0).item() == pytest.approx(1000.0 + math.log(2.0))
    assert oc.logsumexp(oc.tensor([-math.inf, -math.inf]).to(device), 0).item() == -math.inf
    ints = oc.tensor([1, 2]).to(device)
    assert ints.logsumexp(0).dtype == oc.float32
    assert ints.logsumexp(dim=0).item() == pytest.approx(torch.logsumexp(torch.tensor([1.0, 2.0]), 0).item())


SOFTMAX_CASES = {"softmax": (oc.softmax, torch.softmax), "log_softmax": (oc.log_softmax, torch.log_softmax)}


@pytest.mark.parametrize("name", SOFTMAX_CASES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", [(5, 7, 3), (1, 37), (3, 0), (11,), (), LONG_ROWS], ids=str)
@pytest.mark.parametrize("dim", [0, -1, 1], ids=str)
def test_softmax(rng, device, name, layout, shape, dim):
    ours_fn, torch_fn = SOFTMAX_CASES[name]
    valid_dims(dim, len(shape))
    for dtype in ["float32", "float64", "bfloat16"]:
        # Values of a few units, so rows are not all one saturated element.
        x, ref = make_pair(rng, shape, dtype, layout, device, magnitude=4.0)
        got, want, exact = ours_fn(x, dim), torch_fn(ref, dim), torch_fn(ref.double(), dim)
        check_semantics(got, want, True)
        eps = EPS[dtype]
        if name == "softmax":
            np.testing.assert_allclose(values(got), exact.numpy(), rtol=8 * eps, atol=1e-37, err_msg=dtype)
        else:
            offset = ref.double().exp().sum(dim, keepdim=True).log().abs()
            tol = 8 * eps * (ref.double().abs() + offset) + 1e-300
            np.testing.assert_array_less(np.abs(values(got) - exact.numpy()), tol.numpy(), err_msg=dtype)


def test_softmax_extremes(device):
    x = oc.tensor([[0.0, -math.inf, 1e30], [1000.0, 999.0, -1000.0]]).to(device)
    got = oc.softmax(x, 1).cpu().numpy()
    second = torch.softmax(torch.tensor([1000.0, 999.0, -1000.0]), 0).tolist()
    np.testing.assert_allclose(got, [[0.0, 0.0, 1.0], second], rtol=1e-6)
    assert oc.softmax(oc.tensor([[float("nan"), 1.0]]), -1).cpu().numpy().tolist()[0][1] != 1.0
    assert oc.log_softmax(x, 1, dtype=oc.float64).dtype == oc.float64
    assert x.softmax(dim=-1).shape == (2, 3)


ERROR_CASES = [
    (lambda x: oc.sum(x, 3), IndexError, r"dimension 3 is out of range"),
    (lambda x: oc.sum(x, (0, -2)), ValueError, r"dim -2 appears more than once"),
    (lambda x: oc.sum(x, "a"), TypeError, r"dim must be None, an int or a tuple of ints, got 'a'"),
    (
        lambda x: oc.mean(x.to(oc.int64)),
        TypeError,
        r"mean\(\) needs a floating point input or dtype, got int64",
    ),
    (lambda x: oc.var(x.to(oc.int32), 0), TypeError, r"var\(\) .* got int32"),
    (lambda x: oc.max(x[:0]), ValueError, r"max\(\) of an empty tensor \(shape \[0, 3\]\)"),
    (lambda x: oc.min(x[:, :0], 1), IndexError, r"min\(\): dim 1 of the input \(shape \[2, 0\]\) is empty"),
    (lambda x: oc.argmax(x[:0]), ValueError, r"argmax\(\) of an empty tensor \(shape \[0, 3\]\)"),
    (lambda x: oc.softmax(x.to(oc.int32), 0), TypeError, r"softmax\(\) .* got int32"),
    (lambda x: oc.log_softmax(x, -3), IndexError, r"dimension -3 is out of range"),
    (lambda x: oc.logsumexp(x, 2), IndexError, r"dimension 2 is out of range"),
]


@pytest.mark.parametrize(("call", "error", "match"), ERROR_CASES)
def test_bad_input(device, call, error, match):
    x = oc.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]).to(device)
    with pytest.raises(error, match=match):
        call(x)


THREADS_SCRIPT = """
import numpy as np, orchard_core as oc
x = oc.tensor(np.random.default_rng(1).standard_normal((700, 1500)).astype(np.float32))
results = [oc.sum(x), oc.sum(x, 0), oc.sum(x, 1), oc.mean(x.T, 1), oc.softmax(x, 1), oc.var(x, 1)]
print([r.numpy().tobytes().hex()[:4096] for r in results])
"""


def test_results_do_not_depend_on_thread_count():
    outputs = []
    for threads in ["1", "2", "3"]:
        env = {**os.environ, "OMP_NUM_THREADS": threads}
        run = subprocess.run([sys.executable, "-c", THREADS_SCRIPT], env=env, capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        outputs.append(run.stdout)
    assert outputs[0] == outputs[1] == outputs[2]
