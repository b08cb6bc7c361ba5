"""Elementwise operators against torch (dtypes, shapes, promotion, errors) and against a
float64 computation (values), over broadcasting, size-0/size-1 dims and strided views.

Tolerances: results are compared with the float64 result rounded to the output dtype.
float32 add/sub/mul/div are correctly rounded, so they match to an ulp (rtol 2**-23);
library exp/log/tanh/erf are within a few ulps (rtol 4e-7, doubled for composites).
float64 gets the same ulp counts at its epsilon. bfloat16 computes in float32 and rounds
once, so it is within one bfloat16 ulp of the rounded exact value (rtol 2**-7). Integer
results must be exact. An absolute slack scaled by the input magnitude covers the
cancellation in gelu for large negative inputs, which torch's formula shares.
"""

from __future__ import annotations

import operator

import numpy as np
import orchard_core as oc
import pytest
import torch
from _core_helpers import OC, TORCH, assert_matches_torch, host_values, random_array, torch_values

LAYOUTS = ["contiguous", "transposed", "sliced"]
# Pairs of broadcastable shapes: equal, rows, columns, leading dims, size 1, size 0, 0-d.
SHAPE_PAIRS = [
    ((5, 7), (5, 7)),
    ((6, 7), (7,)),
    ((3, 1, 5), (4, 1)),
    ((1, 9), (7, 1)),
    ((0, 3), (1, 3)),
    ((4, 0), (4, 1)),
    ((), (3, 5)),
    ((11,), ()),
]
RTOL = {"float32": 2.0**-23, "float64": 2.0**-52, "bfloat16": 2.0**-7}
FLOAT_OPS_DTYPES = ["float32", "float64", "bfloat16"]


def make_operand(rng, shape, dtype, device, layout):
    """The same values as an orchard tensor and a torch tensor, laid out as asked."""
    ndim = len(shape)
    if layout == "transposed" and ndim >= 2:
        values = random_array(rng, shape[::-1], dtype)
        ours, theirs = _both(values, dtype, device)
        return ours.T, theirs.permute(*reversed(range(ndim)))
    if layout == "sliced" and ndim >= 1:
        values = random_array(rng, (*shape[:-1], 2 * shape[-1]), dtype)
        ours, theirs = _both(values, dtype, device)
        return ours[..., ::2], theirs[..., ::2]
    return _both(random_array(rng, shape, dtype), dtype, device)


def _both(values: np.ndarray, dtype: str, device: str):
    ours = oc.tensor(values, device=device)
    if dtype == "bfloat16":
        ours = ours.to(oc.bfloat16)
    return ours, torch.from_numpy(values.copy()).to(TORCH[dtype])


def assert_close(ours: oc.Tensor, reference: torch.Tensor, dtype: str, ulps: float, magnitude=0.0):
    """Same dtype and shape as torch's result; values within `ulps` of the float64 result."""
    assert ours.dtype.name == str(reference.dtype).removeprefix("torch."), (ours.dtype, reference.dtype)
    assert ours.shape == tuple(reference.shape)
    got = host_values(ours)
    if ours.dtype in (oc.float32, oc.float64, oc.bfloat16, oc.float16):
        rtol = RTOL.get(ours.dtype.name, 2.0**-10) * ulps
        np.testing.assert_allclose(
            got, torch_values(reference), rtol=rtol, atol=rtol * magnitude, equal_nan=True
        )
    else:
        np.testing.assert_array_equal(got, torch_values(reference), strict=True)


def float64_reference(fn, *tensors, like: torch.Tensor):
    """fn on float64 copies of the inputs, rounded to the dtype torch gives `like`."""
    wide = [t.double() if t.dtype.is_floating_point else t for t in tensors]
    return fn(*wide).to(like.dtype)


# name, orchard function, torch function, ulps (float ops), dtypes
BINARY_CASES = [
    ("add", oc.add, torch.add, 1, [*FLOAT_OPS_DTYPES, "int32", "int64", "bool"]),
    ("sub", oc.sub, torch.sub, 1, [*FLOAT_OPS_DTYPES, "int32", "int64"]),
    ("mul", oc.mul, torch.mul, 1, [*FLOAT_OPS_DTYPES, "int32", "int64", "bool"]),
    ("div", oc.div, torch.div, 1, [*FLOAT_OPS_DTYPES, "int32", "int64"]),
    ("operator +", lambda a, b: a + b, lambda a, b: a + b, 1, ["float32", "int64"]),
    ("operator -", lambda a, b: a - b, lambda a, b: a - b, 1, ["float32", "int32"]),
    ("operator *", lambda a, b: a * b, lambda a, b: a * b, 1, ["float64", "int64"]),
    ("operator /", lambda a, b: a / b, lambda a, b: a / b, 1, ["float32", "int64"]),
    ("maximum", oc.maximum, torch.maximum, 1, [*FLOAT_OPS_DTYPES, "int32", "bool"]),
    ("minimum", oc.minimum, torch.minimum, 1, [*FLOAT_OPS_DTYPES, "int64"]),
    ("eq", oc.eq, torch.eq, 1, ["float32", "bfloat16", "int64", "bool"]),
    ("ne", lambda a, b: a != b, lambda a, b: a != b, 1, ["float64", "int32"]),
    ("lt", lambda a, b: a < b, lambda a, b: a < b, 1, ["float32", "bfloat16", "int64"]),
    ("le", oc.le, torch.le, 1, ["float64", "int32", "bool"]),
    ("gt", lambda a, b: a > b, lambda a, b: a > b, 1, ["float32", "int32"]),
    ("ge", oc.ge, torch.ge, 1, ["float64", "bfloat16", "int64"]),
]
BINARY_PARAMS = [
    pytest.param(fns, dtype, layout, id=f"{fns[0]}-{dtype}-{layout}")
    for fns in BINARY_CASES
    for dtype in fns[4]
    for layout in LAYOUTS
]


@pytest.mark.parametrize(("case", "dtype", "layout"), BINARY_PARAMS)
def test_binary_matches_torch_and_float64(rng, device, case, dtype, layout):
    _, ours_fn, torch_fn, ulps, _ = case
    for shape_a, shape_b in SHAPE_PAIRS:
        a, ta = make_operand(rng, shape_a, dtype, device, layout)
        b, tb = make_operand(rng, shape_b, dtype, device, layout)
        ours = ours_fn(a, b)
        assert ours.device == device
        expected = torch_fn(ta, tb)
        assert_close(ours, float64_reference(torch_fn, ta, tb, like=expected), dtype, ulps)


# name, orchard function, torch function, ulps, domain (lo, hi) or None for random_array values
UNARY_CASES = [
    ("neg", oc.neg, torch.neg, 0, None),
    ("operator -", lambda t: -t, lambda t: -t, 0, None),
    ("abs", abs, abs, 0, None),
    ("exp", oc.exp, torch.exp, 4, (-30.0, 30.0)),
    ("log", oc.log, torch.log, 4, None),
    ("sqrt", oc.sqrt, torch.sqrt, 1, None),
    ("rsqrt", oc.rsqrt, torch.rsqrt, 4, None),
    ("tanh", oc.tanh, torch.tanh, 4, (-10.0, 10.0)),
    ("sigmoid", oc.sigmoid, torch.sigmoid, 8, (-30.0, 30.0)),
    ("relu", oc.relu, torch.relu, 0, None),
    ("gelu", oc.gelu, torch.nn.functional.gelu, 8, (-8.0, 8.0)),
    (
        "gelu tanh",
        lambda t: oc.gelu(t, approximate="tanh"),
        lambda t: torch.nn.functional.gelu(t, approximate="tanh"),
        8,
        (-8.0, 8.0),
    ),
]


@pytest.mark.parametrize("case", UNARY_CASES, ids=[c[0] for c in UNARY_CASES])
@pytest.mark.parametrize("dtype", FLOAT_OPS_DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_unary_float_matches_torch_and_float64(rng, device, case, dtype, layout):
    _, ours_fn, torch_fn, ulps, domain = case
    for shape in [(5, 7), (3, 1, 9), (0, 4), (13,), ()]:
        t, tt = make_operand(rng, shape, dtype, device, layout)
        if domain is not None:
            lo, hi = domain
            values = rng.uniform(lo, hi, tt.shape)
            t, tt = _both(
                np.asarray(values, dtype="float32" if dtype == "bfloat16" else dtype), dtype, device
            )
        expected = torch_fn(tt)
        magnitude = 1.0 + float(tt.double().abs().max()) if tt.numel() else 1.0
        reference = float64_reference(torch_fn, tt, like=expected)
        assert_close(ours_fn(t), reference, dtype, max(ulps, 1), magnitude)


@pytest.mark.parametrize("dtype", ["int32", "int64", "bool"])
def test_unary_on_integers_follows_torch_dtypes(rng, device, dtype):
    t, tt = make_operand(rng, (7, 3), dtype, device, "transposed")
    for ours_fn, torch_fn in [
        (oc.abs, torch.abs),
        (oc.relu, torch.relu),
        (oc.exp, torch.exp),
        (oc.sqrt, torch.sqrt),
    ]:
        if dtype == "bool" and torch_fn in (torch.relu, torch.abs):
            continue
        expected = torch_fn(tt)
        assert_close(ours_fn(t), float64_reference(torch_fn, tt, like=expected), dtype, 4)
    if dtype != "bool":
        assert_matches_torch(-t, -tt)


@pytest.mark.parametrize(
    ("a_shape", "b_shape"),
    [((6, 7), (7,)), ((6, 7), (6, 1)), ((6, 7), ()), ((2, 6, 7), (6, 1)), ((6, 7), (6, 7))],
)
@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64", "bfloat16"])
def test_division_by_zero_affects_only_its_element(rng, device, a_shape, b_shape, dtype):
    a, ta = make_operand(rng, a_shape, dtype, device, "contiguous")
    values = random_array(rng, b_shape, dtype)
    values[rng.random(b_shape) < 0.4] = 0  # zeros scattered over the broadcast denominator
    b, tb = _both(values, dtype, device)
    ours, expected = a / b, ta / tb
    assert_close(ours, float64_reference(torch.div, ta, tb, like=expected), dtype, 1)
    zeros = np.broadcast_to(torch_values(tb) == 0, expected.shape)
    assert not np.isfinite(host_values(ours)[zeros]).any()  # inf or nan exactly where b is 0
    # The same with the zero-bearing tensor as a transposed (strided) view.
    if len(b_shape) == 2:
        bt = oc.tensor(np.ascontiguousarray(values.T))
        bt = (bt.to(oc.bfloat16) if dtype == "bfloat16" else bt).to(device).T
        assert_close(a / bt, float64_reference(torch.div, ta, tb, like=expected), dtype, 1)


SCALARS = [2, -3, 2.5, True, 0.0]


@pytest.mark.parametrize("dtype", ["float32", "float64", "bfloat16", "float16", "int32", "int64", "bool"])
@pytest.mark.parametrize("scalar", SCALARS, ids=repr)
def test_scalar_promotion_matches_torch(rng, device, dtype, scalar):
    t, tt = make_operand(rng, (4, 3), dtype, device, "sliced")
    assert oc.result_type(t, scalar).name == str(torch.result_type(tt, scalar)).removeprefix("torch.")
    ops = [
        ("t + s", lambda x, s: x + s),
        ("s + t", lambda x, s: s + x),
        ("t * s", lambda x, s: x * s),
        ("s * t", lambda x, s: s * x),
        ("t / s", lambda x, s: x / s),
        ("s / t", lambda x, s: s / x),
        ("t > s", lambda x, s: x > s),
        ("t == s", lambda x, s: x == s),
    ]
    if dtype != "bool":
        ops.append(("clamp", lambda x, s: x.clamp(min=s)))
    if dtype != "bool" and not isinstance(scalar, bool):
        ops += [("t - s", lambda x, s: x - s), ("s - t", lambda x, s: s - x)]
    for name, fn in ops:
        expected = fn(tt, scalar)
        ours = fn(t, scalar)
        ulps = 2 if dtype in FLOAT_OPS_DTYPES or "/" in name else 1
        assert_close(ours, float64_reference(lambda x, f=fn: f(x, scalar), tt, like=expected), dtype, ulps)


@pytest.mark.parametrize("first", ["float32", "float64", "bfloat16", "float16", "int32", "int64", "bool"])
def test_promote_types_and_tensor_result_type_match_torch(first):
    for second in OC:
        assert oc.promote_types(OC[first], OC[second]).name == str(
            torch.promote_types(TORCH[first], TORCH[second])
        ).removeprefix("torch.")
        for a_shape, b_shape in [((2,), (2,)), ((), (2,)), ((2,), ()), ((), ())]:
            a, b = oc.zeros(a_shape, dtype=OC[first]), oc.zeros(b_shape, dtype=OC[second])
            ta, tb = torch.zeros(a_shape, dtype=TORCH[first]), torch.zeros(b_shape, dtype=TORCH[second])
            assert oc.result_type(a, b).name == str(torch.result_type(ta, tb)).removeprefix("torch.")
            if first != "bool" or second != "bool":
                assert (a + b).dtype.name == str((ta + tb).dtype).removeprefix("torch.")


def test_pow_matches_torch(rng, device):
    base = rng.uniform(0.1, 10.0, (5, 7))
    exponent = rng.uniform(-3.0, 3.0, (7,))
    for dtype in FLOAT_OPS_DTYPES:
        (b, tb), (e, te) = (
            _both(base.astype("float32" if dtype == "bfloat16" else dtype), dtype, device),
            _both(exponent.astype("float32" if dtype == "bfloat16" else dtype), dtype, device),
        )
        for ours, expected, fn in [
            (b**e, tb**te, torch.pow),
            (oc.pow(b, 2), tb**2, lambda x: x**2),
            (2.5**e, 2.5**te, lambda x: 2.5**x),
            (b.pow(0.5), tb.pow(0.5), lambda x: x**0.5),
        ]:
            inputs = (tb, te) if fn is torch.pow else ((te,) if expected.shape == te.shape else (tb,))
            assert_close(ours, float64_reference(fn, *inputs, like=expected), dtype, 8)
    ints, tints = _both(rng.integers(-9, 9, (4, 5)).astype("int64"), "int64", device)
    small, tsmall = _both(rng.integers(0, 5, (5,)).astype("int32"), "int32", device)
    assert_matches_torch(ints**small, tints**tsmall)
    assert_matches_torch(ints**3, tints**3)
    # Negative bases give NaN, whose sign bit libraries choose freely: compare values only.
    assert_close(ints**0.5, float64_reference(lambda x: x**0.5, tints, like=tints**0.5), "float32", 2)
    with pytest.raises(ValueError, match=r"negative integer powers.*-2"):
        ints**-2


def test_where_masked_fill_clamp_match_torch(rng, device):
    for dtype in ["float32", "int64", "bfloat16"]:
        a, ta = make_operand(rng, (5, 7), dtype, device, "transposed")
        b, tb = make_operand(rng, (7,), dtype, device, "sliced")
        cond_values = rng.random((5, 1)) < 0.5
        cond, tcond = _both(cond_values, "bool", device)
        assert_matches_torch(oc.where(cond, a, b), torch.where(tcond, ta, tb))
        assert_matches_torch(oc.where(cond, a, 1.5), torch.where(tcond, ta, 1.5))
        assert_matches_torch(a.where(cond, b), ta.where(tcond, tb))
        mask, tmask = _both(rng.random((7,)) < 0.5, "bool", device)
        assert_matches_torch(oc.masked_fill(a, mask, -2.5), torch.masked_fill(ta, tmask, -2.5))
        assert_matches_torch(a.masked_fill(mask, 3), ta.masked_fill(tmask, 3))
        zero_d, tzero_d = _both(
            np.asarray(7, dtype="float32" if dtype == "bfloat16" else dtype), dtype, device
        )
        assert_matches_torch(a.masked_fill(mask, zero_d), ta.masked_fill(tmask, tzero_d))
        for lo, hi in [(-1, 1), (None, 0.5), (-3.5, None), (4, -4)]:
            assert_matches_torch(oc.clamp(a, min=lo, max=hi), torch.clamp(ta, min=lo, max=hi))
        assert_matches_torch(a.clamp(b, None), ta.clamp(tb, None))
    nan = oc.tensor([float("nan"), 1.0, -5.0], device=device)
    assert_matches_torch(nan.clamp(-1.0, 0.5), torch.tensor([float("nan"), 1.0, -5.0]).clamp(-1.0, 0.5))
    assert_matches_torch(
        oc.maximum(nan, oc.tensor([0.0, float("nan"), 2.0], device=device)),
        torch.maximum(torch.tensor([float("nan"), 1.0, -5.0]), torch.tensor([0.0, float("nan"), 2.0])),
    )


INPLACE_CASES = [
    ("add_", operator.iadd),
    ("sub_", operator.isub),
    ("mul_", operator.imul),
    ("div_", operator.itruediv),
]


INPLACE_DTYPES = [("float32", "float32"), ("float32", "float64"), ("int64", "int32"), ("bfloat16", "float32"),
                  ("float64", "int64")]  # fmt: skip
# True division cannot store into an integer tensor: the error tests cover that.
INPLACE_PARAMS = [
    pytest.param(method, python_operator, dtype, other_dtype, id=f"{method}-{dtype}-{other_dtype}")
    for method, python_operator in INPLACE_CASES
    for dtype, other_dtype in INPLACE_DTYPES
    if not (method == "div_" and dtype.startswith("int"))
]


@pytest.mark.parametrize(("method", "python_operator", "dtype", "other_dtype"), INPLACE_PARAMS)
def test_inplace_matches_torch(rng, device, method, python_operator, dtype, other_dtype):
    for other_shape in [(5,), (3, 1), (), (3, 5)]:
        self_t, tself = make_operand(rng, (3, 5), dtype, device, "transposed")
        other, tother = make_operand(rng, other_shape, other_dtype, device, "sliced")
        result = getattr(self_t, method)(other)
        assert result is self_t
        getattr(tself, method)(tother)
        assert_close(self_t, tself, dtype, 2)
        # Python's in-place operator and a plain number.
        self2, tself2 = make_operand(rng, (3, 5), dtype, device, "contiguous")
        number = 3 if dtype.startswith("int") else 1.5
        alias = self2
        self2 = python_operator(self2, number)
        tself2 = python_operator(tself2, number)
        assert alias is self2
        assert_close(self2, tself2, dtype, 2)


def test_inplace_with_overlapping_operand_reads_old_values(rng, device):
    t, tt = make_operand(rng, (6, 6), "float64", device, "contiguous")
    t.add_(t.T)
    tt.add_(tt.T.clone())
    assert_matches_torch(t, tt)
    t.mul_(t)
    tt.mul_(tt)
    assert_matches_torch(t, tt)


def test_scalar_only_and_bad_inputs_raise_naming_the_value(device):
    a = oc.ones(2, 3, device=device)
    ints = oc.ones(2, 3, dtype=oc.int64, device=device)
    flags = oc.ones(3, dtype=oc.bool, device=device)
    cases = [
        (ValueError, r"\[2, 3\].*\[4\]", lambda: a + oc.ones(4, device=device)),
        (ValueError, r"\[2, 3\].*\[2\]", lambda: oc.maximum(a, oc.ones(2, device=device))),
        (TypeError, "float32 can't be cast.*int64", lambda: ints.add_(1.5)),
        (TypeError, "float32 can't be cast.*int64", lambda: ints.div_(2)),
        (
            TypeError,
            "float64 can't be cast.*int64",
            lambda: ints.mul_(oc.ones(3, dtype=oc.float64, device=device)),
        ),
        (ValueError, r"\[2, 3\].*\[3\]", lambda: oc.ones(3, device=device).add_(a)),
        (ValueError, r"stride 0 in dim 0 of shape \[4, 3\]", lambda: flags.expand(4, 3).add_(True)),
        (TypeError, "sub.*bool", lambda: flags - flags),
        (TypeError, "neg.*bool", lambda: -flags),
        (TypeError, "expected a number.*'x'", lambda: oc.add(a, "x")),
        (TypeError, "unsupported operand", lambda: a + "x"),
        (TypeError, "gelu.*int64", lambda: oc.gelu(ints)),
        (ValueError, "approximate.*'fast'", lambda: oc.gelu(a, approximate="fast")),
        (TypeError, "condition.*float32", lambda: oc.where(a, a, a)),
        (TypeError, "mask.*int64", lambda: oc.masked_fill(a, ints, 0)),
        (
            ValueError,
            r"mask of shape \[4\]",
            lambda: oc.masked_fill(a, oc.ones(4, dtype=oc.bool, device=device), 0),
        ),
        (ValueError, r"value.*shape \[3\]", lambda: oc.masked_fill(a, flags, oc.ones(3, device=device))),
        (ValueError, "at least one of min and max", lambda: oc.clamp(a)),
        (TypeError, "unsupported dtype 'float8'", lambda: oc.promote_types(oc.float32, "float8")),
    ]
    for error, message, fn in cases:
        with pytest.raises(error, match=message):
            fn()


def test_mixed_devices_raise(monkeypatch):
    monkeypatch.setenv("ORCHARD_METAL_FALLBACK", "cpu")
    with pytest.raises(ValueError, match="cpu and metal"):
        oc.add(oc.ones(2), oc.ones(2, device="metal"))


def test_large_tensors_split_over_threads_match_small_ones(rng):
    # Above the parallel threshold, in every row layout: results equal the one-row computation.
    a = rng.standard_normal((301, 257)).astype(np.float32)
    b = rng.standard_normal((257,)).astype(np.float32)
    oa, ob = oc.tensor(a), oc.tensor(b)
    np.testing.assert_array_equal((oa + ob).numpy(), a + b)
    np.testing.assert_array_equal((oa.T * oc.tensor(a.T.copy())).numpy(), a.T * a.T)
    np.testing.assert_array_equal((oa[:1] / ob).numpy(), a[:1] / b)
    long_rows = rng.standard_normal((2, 70001)).astype(np.float32)
    np.testing.assert_array_equal((oc.tensor(long_rows) - 1.0).numpy(), long_rows - 1)
    strided = oc.tensor(long_rows)[:, ::3]
    np.testing.assert_array_equal(oc.exp(strided).numpy(), oc.exp(strided.contiguous()).numpy())


# float32 exp/tanh/sigmoid/gelu run vectorized code of orchard's own (vector_math.h), not libm:
# measured in ulps of the float64 result over their whole range, tails and specials included.
TRANSCENDENTALS = {
    "exp": (oc.exp, torch.exp, lambda x: np.exp(x), 1.0),
    "tanh": (oc.tanh, torch.tanh, np.tanh, 3.0),
    "sigmoid": (oc.sigmoid, torch.sigmoid, lambda x: 1 / (1 + np.exp(-x)), 3.0),
    # gelu: the erfc fit it uses is itself within 1.2e-7 (2 ulps) of erfc.
    "gelu": (oc.gelu, torch.nn.functional.gelu, lambda x: 0.5 * x * _erfc(-x / np.sqrt(2)), 8.0),
    "gelu_tanh": (
        lambda t: oc.gelu(t, "tanh"),
        lambda t: torch.nn.functional.gelu(t, approximate="tanh"),
        lambda x: x / (1 + np.exp(-2 * np.sqrt(2 / np.pi) * (x + 0.044715 * x**3))),
        4.0,
    ),
}


def _erfc(x: np.ndarray) -> np.ndarray:
    import math

    return np.vectorize(math.erfc)(x)


def _ulps(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """|got - want| in units of the float32 spacing at want (subnormal spacing at least)."""
    with np.errstate(over="ignore"):
        rounded = want.astype(np.float32)
    spacing = np.maximum(np.spacing(np.abs(rounded)).astype(np.float64), 2.0**-149)
    with np.errstate(invalid="ignore"):
        error = np.abs(got.astype(np.float64) - want) / spacing
    error[got == rounded] = 0.0
    return error


@pytest.mark.parametrize("name", list(TRANSCENDENTALS))
def test_float32_transcendentals_over_their_whole_range(name, rng):
    ours, theirs, exact, max_ulps = TRANSCENDENTALS[name]
    grid = np.linspace(-110, 95, 200_003)
    magnitudes = np.logspace(-30, 2, 10_001)
    x = np.concatenate([grid, magnitudes, -magnitudes, rng.uniform(-12, 12, 50_001), [0.0, -0.0]])
    x = x.astype(np.float32)
    got = np.asarray(ours(oc.tensor(x)))
    with np.errstate(over="ignore"):
        want = exact(x.astype(np.float64))
    error = _ulps(got, want)
    core = np.abs(x) <= 5  # where values are of ordinary size
    assert error[core].max() <= max_ulps, x[core][np.argmax(error[core])]
    # In the far tails the result is tiny but keeps at least 4 significant digits (wherever
    # it is a normal float32; subnormals carry fewer digits by nature).
    finite = (np.abs(want) >= 2.0**-126) & (np.abs(want) <= np.finfo(np.float32).max)
    relative = np.abs(got[finite] - want[finite]) / np.abs(want[finite])
    assert relative.max() < 1e-4, x[finite][np.argmax(relative)]
    # Specials as torch gives them in float64 (see test_gelu_at_the_infinities for float32).
    specials = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0], dtype=np.float32)
    want_specials = theirs(torch.from_numpy(specials).double()).float()
    np.testing.assert_array_equal(np.asarray(ours(oc.tensor(specials))), want_specials)
    # Strided views and bfloat16 take the scalar path of the same functions.
    values = rng.uniform(-6, 6, (37, 41)).astype(np.float32)
    np.testing.assert_array_equal(
        np.asarray(ours(oc.tensor(values.T.copy()).T)), np.asarray(ours(oc.tensor(values)))
    )


def _gelu_derivative(t: oc.Tensor) -> oc.Tensor:
    leaf = t.detach().requires_grad_()
    oc.gelu(leaf).sum().backward()
    return leaf.grad


@pytest.mark.parametrize("derivative", [False, True], ids=["gelu", "gelu_derivative"])
def test_exact_gelu_over_its_whole_range(rng, device, derivative):
    """Exact gelu, x Phi(x), and its derivative Phi(x) + x phi(x) in float32 on every device,
    against float64: Metal has no erf, so its kernels carry their own erfc (elementwise.metal),
    held here to the CPU's tolerances (test_float32_transcendentals_over_their_whole_range).
    The derivative's error is measured in ulps of Phi + |x| phi, as it cancels near x = -0.75."""
    grid = np.linspace(-110, 95, 20_003)
    magnitudes = np.logspace(-30, 2, 2_001)
    x = np.concatenate([grid, magnitudes, -magnitudes, rng.uniform(-12, 12, 10_001), [0.0, -0.0]])
    x = x.astype(np.float32)
    fn = _gelu_derivative if derivative else oc.gelu
    got = host_values(fn(oc.tensor(x).to(device)))
    xd = x.astype(np.float64)
    cdf = 0.5 * _erfc(-xd / np.sqrt(2))
    x_pdf = xd * np.exp(-0.5 * xd * xd) / np.sqrt(2 * np.pi)
    want = cdf + x_pdf if derivative else xd * cdf
    if derivative:
        spacing = np.spacing((cdf + np.abs(x_pdf)).astype(np.float32)).astype(np.float64)
        error = np.abs(got - want) / spacing
    else:
        error = _ulps(got, want)
    core = np.abs(x) <= 5
    assert error[core].max() <= 8.0, x[core][np.argmax(error[core])]
    # In the tails the result keeps 4 significant digits wherever it is a normal float32.
    tails = ~core & (np.abs(want) >= 2.0**-126)
    relative = np.abs(got[tails] - want[tails]) / np.abs(want[tails])
    assert relative.max() < 1e-4, x[tails][np.argmax(relative)]
    specials = np.array([np.inf, -np.inf, np.nan, 1e30, -1e30, 0.0, -0.0], dtype=np.float32)
    if derivative:  # Phi + x phi at +-inf: 1 + inf * 0 and 0 - inf * 0, NaN as torch gives them
        want_specials = [np.nan, np.nan, np.nan, 1.0, 0.0, 0.5, 0.5]
    else:
        want_specials = [np.inf, np.nan, np.nan, 1e30, -0.0, 0.0, -0.0]
    got_specials = host_values(fn(oc.tensor(specials).to(device)))
    np.testing.assert_array_equal(got_specials, np.float32(want_specials))


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("dtype", ["float32", "float64", "bfloat16"])
def test_gelu_at_the_infinities(approximate, dtype):
    """gelu(x) = x * Phi(x) (torch's documented definition; its tanh form likewise) evaluated
    as written: +inf * 1 = +inf and -inf * 0 = NaN. torch gives exactly that in float64 and for
    the tanh form; its float32 CPU kernel for approximate="none" gives NaN at +inf too (its
    vectorized erf), which orchard does not copy. Contiguous and strided paths agree."""
    specials = np.array([np.inf, -np.inf, np.nan, 1e30, -1e30], dtype=np.float32)
    want = np.array([np.inf, np.nan, np.nan, 1e30, -0.0])
    reference = torch.nn.functional.gelu(torch.from_numpy(specials).double(), approximate=approximate)
    np.testing.assert_array_equal(reference.numpy(), want.astype(np.float32).astype(np.float64))
    t = oc.tensor(specials).to(getattr(oc, dtype))
    strided = oc.tensor(np.repeat(specials, 2)).to(getattr(oc, dtype))[::2]
    want_in_dtype = np.asarray(t.to(oc.float64))  # +-1e30 rounded to the dtype: gelu is exact there
    want_in_dtype[:3] = want[:3]
    want_in_dtype[4] = -0.0
    for x in (t, strided):
        got = np.asarray(oc.gelu(x, approximate=approximate).to(oc.float64))
        np.testing.assert_array_equal(got, want_in_dtype)
