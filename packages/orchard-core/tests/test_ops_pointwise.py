"""lerp, addcmul and addcdiv (the optimizer's fused ops) against torch (dtypes, shapes, promotion,
errors, gradients) and against float64 (values), over broadcasting and strided views.

Tolerances: each result is one rounding of a few float operations in the computation dtype
(16-bit floats compute in float32 and round once), so it lies within a few units of that
dtype's epsilon of the float64 result, scaled by the size of the terms it adds (`_magnitude`),
which bounds the cancellation of e.g. end - (end - start) * (1 - weight). torch's result
obeys the same bound; dtypes and shapes must equal torch's.
"""

from __future__ import annotations

import numpy as np
import orchard_core as oc
import pytest
import torch
from _core_helpers import OC, TORCH, assert_matches_torch, host_values

FLOATS = ["float32", "float64", "bfloat16", "float16"]
EPS = {"float32": 2.0**-23, "float64": 2.0**-52, "bfloat16": 2.0**-8, "float16": 2.0**-11}
LAYOUTS = ["contiguous", "transposed", "sliced"]
# Three broadcastable shapes (input, other, weight or tensor2): equal, rows, leading dims, 0-d, size 0.
SHAPES = [
    ((5, 7), (5, 7), (5, 7)),
    ((6, 7), (7,), (6, 1)),
    ((3, 1, 5), (4, 1), (5,)),
    ((), (3, 5), ()),
    ((0, 3), (1, 3), (3,)),
]


def _values(rng, shape, dtype: str) -> np.ndarray:
    if dtype.startswith("int"):
        return rng.integers(-50, 50, size=shape).astype(dtype)
    # float16 keeps to unit magnitudes, where products stay finite.
    spread = 0.0 if dtype == "float16" else 2.0
    values = rng.standard_normal(shape) * 10.0 ** rng.uniform(-spread, spread, shape)
    return values.astype("float32" if dtype in ("bfloat16", "float16") else dtype)


def _make(rng, shape, dtype: str, device: str, layout: str = "contiguous", values=None):
    """The same values as an orchard tensor (laid out as asked) and a torch tensor."""
    ndim = len(shape)
    if layout == "transposed" and ndim >= 2:
        base = _values(rng, shape[::-1], dtype) if values is None else values.T.copy()
        ours, theirs = _make(rng, shape[::-1], dtype, device, values=base)
        return ours.T, theirs.permute(*reversed(range(ndim)))
    if layout == "sliced" and ndim >= 1:
        base = _values(rng, (*shape[:-1], 2 * shape[-1]), dtype)
        if values is not None:
            base[..., ::2] = values
        ours, theirs = _make(rng, base.shape, dtype, device, values=base)
        return ours[..., ::2], theirs[..., ::2]
    base = _values(rng, shape, dtype) if values is None else values
    theirs = torch.from_numpy(np.array(base, copy=True)).to(TORCH[dtype])
    return oc.tensor(theirs.float().numpy() if dtype in ("bfloat16", "float16") else base, device=device).to(
        OC[dtype]
    ), theirs


def _weights(rng, shape) -> np.ndarray:
    # Both of lerp's branches (|w| < 0.5 and not), negative and above 1, and the exact ends.
    values = rng.uniform(-0.7, 1.7, shape)
    values = np.where(rng.random(shape) < 0.2, rng.choice([0.0, 0.5, 1.0], shape), values)
    return values.astype(np.float32)


def _magnitude(op: str, x, a, b, value) -> torch.Tensor:
    if op == "lerp":
        w = b if isinstance(b, torch.Tensor) else torch.tensor(b, dtype=torch.float64)
        return (x.abs() + a.abs()) * (1 + w.abs())
    term = a * b if op == "addcmul" else a / b
    return x.abs() + abs(value) * term.abs()


def _reference(op: str, x, a, b, value):
    if op == "lerp":
        return x + b * (a - x)
    return x + value * (a * b if op == "addcmul" else a / b)


def _check(op: str, ours: oc.Tensor, theirs: torch.Tensor, inputs, value, ulps: float = 4.0) -> None:
    """ours has torch's dtype and shape; ours and torch's both lie near the float64 result."""
    assert ours.dtype.name == str(theirs.dtype).removeprefix("torch."), (ours.dtype, theirs.dtype)
    assert ours.shape == tuple(theirs.shape)
    if not theirs.dtype.is_floating_point:
        np.testing.assert_array_equal(host_values(ours), theirs.numpy(), strict=True)
        return
    wide = [t.double() if isinstance(t, torch.Tensor) else t for t in inputs]
    exact = _reference(op, *wide, value).numpy()
    bound = ulps * EPS[ours.dtype.name] * _magnitude(op, *wide, value).numpy() + np.finfo(np.float64).tiny
    for name, got in (("orchard", host_values(ours).astype(np.float64)), ("torch", theirs.double().numpy())):
        error = np.abs(got - exact)
        bad = ~((error <= bound) | (np.isnan(got) & np.isnan(exact)))
        assert not bad.any(), f"{name}: {got[bad][:5]} vs {exact[bad][:5]} (bound {bound[bad][:5]})"


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shapes", SHAPES, ids=str)
def test_lerp_matches_torch_and_float64(rng, device, shapes, dtype, layout):
    x, tx = _make(rng, shapes[0], dtype, device, layout)
    e, te = _make(rng, shapes[1], dtype, device, layout)
    w, tw = _make(rng, shapes[2], dtype, device, layout, values=_weights(rng, shapes[2]))
    _check("lerp", oc.lerp(x, e, w), torch.lerp(tx, te, tw), (tx, te, tw), None)
    _check("lerp", x.lerp(e, 0.75), tx.lerp(te, 0.75), (tx, te, 0.75), None)
    _check("lerp", oc.lerp(x, e, -0.25), torch.lerp(tx, te, -0.25), (tx, te, -0.25), None)


@pytest.mark.parametrize("op", ["addcmul", "addcdiv"])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shapes", SHAPES, ids=str)
def test_addcmul_addcdiv_match_torch_and_float64(rng, device, shapes, dtype, layout, op):
    x, tx = _make(rng, shapes[0], dtype, device, layout)
    a, ta = _make(rng, shapes[1], dtype, device, layout)
    b, tb = _make(rng, shapes[2], dtype, device, layout)
    _check(op, getattr(oc, op)(x, a, b), getattr(torch, op)(tx, ta, tb), (tx, ta, tb), 1)
    _check(op, getattr(x, op)(a, b, value=-0.3), getattr(tx, op)(ta, tb, value=-0.3), (tx, ta, tb), -0.3)


def test_lerp_is_exact_at_its_ends(rng, device):
    x, tx = _make(rng, (4, 9), "float32", device)
    e, te = _make(rng, (4, 9), "float32", device)
    assert_matches_torch(oc.lerp(x, e, 0.0), tx)
    assert_matches_torch(oc.lerp(x, e, 1.0), te)
    assert_matches_torch(oc.lerp(x, e, oc.zeros(4, 9, device=device)), tx)


@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_addcmul_on_integers_matches_torch(rng, device, dtype):
    x, tx = _make(rng, (3, 5), dtype, device)
    a, ta = _make(rng, (5,), dtype, device)
    b, tb = _make(rng, (3, 1), dtype, device, "sliced")
    assert_matches_torch(oc.addcmul(x, a, b, value=3), torch.addcmul(tx, ta, tb, value=3))
    x.addcmul_(a, b, value=-2)
    tx.addcmul_(ta, tb, value=-2)
    assert_matches_torch(x, tx)


PROMOTIONS = [
    ("int64", "float32", "float32"),
    ("float32", "float64", "float64"),
    ("bfloat16", "float32", "float32"),
    ("float16", "int32", "float32"),
    ("int32", "int64", "float64"),
]


@pytest.mark.parametrize(("input_dtype", "t1_dtype", "t2_dtype"), PROMOTIONS)
@pytest.mark.parametrize("op", ["addcmul", "addcdiv"])
def test_addc_type_promotion_matches_torch(rng, device, op, input_dtype, t1_dtype, t2_dtype):
    x, tx = _make(rng, (4, 3), input_dtype, device)
    a, ta = _make(rng, (3,), t1_dtype, device)
    b, tb = _make(rng, (4, 1), t2_dtype, device)
    _check(op, getattr(oc, op)(x, a, b, value=2), getattr(torch, op)(tx, ta, tb, value=2), (tx, ta, tb), 2)


@pytest.mark.parametrize("op", ["lerp", "addcmul", "addcdiv"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float64"])
def test_in_place_matches_torch_and_bumps_the_version(rng, device, op, dtype):
    for other_shape in [(5,), (3, 1), (), (3, 5)]:
        s, ts = _make(rng, (3, 5), dtype, device, "transposed")
        a, ta = _make(rng, other_shape, dtype, device, "sliced")
        if op == "lerp":
            b, tb = _make(rng, other_shape, dtype, device, values=_weights(rng, other_shape))
        else:
            b, tb = _make(rng, (5,), dtype, device)
        before = s._version
        extra = {} if op == "lerp" else {"value": 0.5}
        assert getattr(s, op + "_")(a, b, **extra) is s
        assert s._version > before
        tinputs = (ts.clone(), ta, tb)
        getattr(ts, op + "_")(ta, tb, **extra)
        _check(op, s, ts, tinputs, extra.get("value"))


def test_in_place_reads_overlapping_operands_before_writing(rng, device):
    t, tt = _make(rng, (6, 6), "float64", device)
    w, tw = _make(rng, (6, 6), "float64", device, values=_weights(rng, (6, 6)).astype(np.float64))
    t.lerp_(t.T, w)
    tt.lerp_(tt.T.clone(), tw)
    np.testing.assert_allclose(host_values(t), tt.numpy(), rtol=4 * EPS["float64"], atol=1e-300)
    t.addcmul_(t, t.T, value=0.5)
    tt.addcmul_(tt.clone(), tt.T.clone(), value=0.5)
    np.testing.assert_allclose(host_values(t), tt.numpy(), rtol=4 * EPS["float64"])
    t.addcdiv_(t.T, t)
    tt.addcdiv_(tt.T.clone(), tt.clone())
    np.testing.assert_allclose(host_values(t), tt.numpy(), rtol=4 * EPS["float64"])


def test_in_place_casts_to_self_as_torch_does(rng, device):
    s, ts = _make(rng, (2, 3), "float32", device)
    a, ta = _make(rng, (3,), "float64", device)
    s.addcmul_(a, a, value=2)
    ts.addcmul_(ta, ta, value=2)
    assert s.dtype == oc.float32
    np.testing.assert_allclose(host_values(s), ts.numpy(), rtol=4 * EPS["float32"])


def test_bad_inputs_raise_naming_the_value(device):
    f = oc.ones(2, 3, device=device)
    d = oc.ones(2, 3, dtype=oc.float64, device=device)
    i = oc.ones(2, 3, dtype=oc.int64, device=device)
    with pytest.raises(TypeError, match="int64"):
        oc.lerp(i, i, 0.5)
    with pytest.raises(TypeError, match="float32 for `end` but got dtype float64"):
        oc.lerp(f, d, 0.5)
    with pytest.raises(TypeError, match="float32 for `weight` but got dtype float64"):
        oc.lerp(f, f, d)
    with pytest.raises(TypeError, match="float64 for `end`"):
        d.lerp_(f, 0.5)
    with pytest.raises(TypeError, match=r"integer division.*int64.*int64"):
        oc.addcdiv(f, i, i)
    with pytest.raises(TypeError, match="dtype bool"):
        oc.addcmul(f > 0, f > 0, f > 0)
    with pytest.raises(TypeError, match="float32 can't be cast to the desired output type int64"):
        i.addcmul_(f, f)
    with pytest.raises(ValueError, match=r"shape \[4, 3\].*\[2, 3\]"):
        f.addcdiv_(oc.ones(4, 3, device=device), f)
    with pytest.raises(ValueError, match=r"shape \[4, 1, 3\]"):
        f.lerp_(f, oc.ones(4, 1, 3, device=device))
    with pytest.raises(ValueError, match="broadcast"):
        oc.addcmul(f, oc.ones(4, device=device), f)
    with pytest.raises(TypeError):
        oc.addcmul(f, f, f, 2.0)  # value is keyword-only, as in torch
    with pytest.raises(TypeError, match="'2'"):
        oc.addcmul(f, f, f, value="2")


def test_mixed_devices_raise():
    if "metal" not in [str(d) for d in oc.devices()]:
        pytest.skip("needs a second device")
    with pytest.raises(ValueError, match="cpu and metal"):
        oc.addcmul(oc.ones(2), oc.ones(2, device="metal"), oc.ones(2))
    with pytest.raises(ValueError, match="cpu and metal"):
        oc.lerp(oc.ones(2), oc.ones(2), oc.ones(2, device="metal"))


def _leaves(rng, shapes, dtype="float64"):
    pairs = [_make(rng, shape, dtype, "cpu") for shape in shapes]
    return [o.requires_grad_() for o, _ in pairs], [t.requires_grad_() for _, t in pairs]


@pytest.mark.parametrize("op", ["lerp", "lerp_number", "addcmul", "addcdiv"])
@pytest.mark.parametrize("in_place", [False, True], ids=["out_of_place", "in_place"])
def test_gradients_match_torch_autograd(rng, device, op, in_place):
    shapes = [(3, 4), (4,), (3, 1)]
    ours, theirs = _leaves(rng, shapes)
    if op == "lerp":
        values = _weights(rng, (3, 1)).astype(np.float64)
        ours[2] = oc.tensor(values).requires_grad_()
        theirs[2] = torch.from_numpy(values.copy()).requires_grad_()
    ours = [t.to(device).detach().requires_grad_() for t in ours]

    def apply(x, a, b, lib):
        if in_place:
            x = x * 1.0  # a non-leaf to update
        if op in ("lerp", "lerp_number"):
            weight = b if op == "lerp" else 0.3
            result = x.lerp_(a, weight) if in_place else lib.lerp(x, a, weight)
            return result if op == "lerp" else result * b
        fn = getattr(x, op + "_") if in_place else getattr(x, op)
        return fn(a, b, value=0.7)

    seed = rng.standard_normal((3, 4))
    apply(*ours, oc).backward(oc.tensor(seed, device=device))
    apply(*theirs, torch).backward(torch.from_numpy(seed))
    for o, t in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(host_values(o.grad), t.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_in_place_on_a_leaf_that_requires_grad_raises(device):
    x = oc.ones(3, device=device).requires_grad_()
    for call in (lambda: x.lerp_(x.detach(), 0.5), lambda: x.addcmul_(x.detach(), x.detach())):
        with pytest.raises(RuntimeError, match="leaf"):
            call()


def test_saved_operands_modified_later_raise(device):
    a = oc.ones(3, device=device).requires_grad_()
    b = oc.ones(3, device=device) * 2.0
    out = oc.addcmul(oc.zeros(3, device=device), a, b)
    b.add_(1.0)
    with pytest.raises(RuntimeError, match="modified"):
        out.sum().backward()


def test_large_tensors_split_over_threads_match_the_strided_path(rng):
    # Above the parallel threshold: the contiguous rows equal the buffered strided path bitwise.
    values = [rng.standard_normal((301, 257)).astype(np.float32) for _ in range(3)]
    contiguous = [oc.tensor(v) for v in values]
    strided = [oc.tensor(np.ascontiguousarray(v.T)).T for v in values]
    for fn in (
        lambda x, a, b: oc.lerp(x, a, b),
        lambda x, a, b: oc.lerp(x, a, 0.6),
        lambda x, a, b: oc.addcmul(x, a, b, value=0.3),
        lambda x, a, b: oc.addcdiv(x, a, b, value=0.3),
    ):
        np.testing.assert_array_equal(fn(*contiguous).numpy(), fn(*strided).numpy())
        np.testing.assert_array_equal(fn(*contiguous)[:7].numpy(), fn(*[t[:7] for t in contiguous]).numpy())
    # In place (its own vectorized loop) gives the bits of the out-of-place result.
    x, a, b = contiguous
    np.testing.assert_array_equal(x.clone().lerp_(a, b).numpy(), oc.lerp(x, a, b).numpy())
    np.testing.assert_array_equal(x.clone().lerp_(a, 0.6).numpy(), oc.lerp(x, a, 0.6).numpy())
    np.testing.assert_array_equal(
        x.clone().addcmul_(a, b, value=0.3).numpy(), oc.addcmul(x, a, b, value=0.3).numpy()
    )
    np.testing.assert_array_equal(
        x.clone().addcdiv_(a, b, value=0.3).numpy(), oc.addcdiv(x, a, b, value=0.3).numpy()
    )


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", ["float32", "float64", "bfloat16", "float16", "int32", "int64", "bool"])
def test_isnan_isinf_isfinite_match_torch(rng, device, dtype, layout):
    shape = (9, 7)
    values = _values(rng, shape, "int64" if dtype == "bool" else dtype)
    if dtype in FLOATS:
        specials = rng.choice(np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 7e4], dtype=values.dtype), shape)
        values = np.where(rng.random(shape) < 0.4, specials, values)
    elif dtype == "bool":
        values = values > 0
    x, tx = _make(rng, shape, dtype, device, layout, values=values)
    for name in ("isnan", "isinf", "isfinite"):
        assert_matches_torch(getattr(oc, name)(x), getattr(torch, name)(tx))
        assert_matches_torch(getattr(x, name)(), getattr(tx, name)())
    assert_matches_torch(oc.isnan(x[:0]), torch.isnan(tx[:0]))


def test_isfinite_of_a_large_tensor_splits_over_threads(rng):
    values = rng.standard_normal((301, 257)).astype(np.float32)
    values[rng.random(values.shape) < 0.1] = np.inf
    values[rng.random(values.shape) < 0.1] = np.nan
    np.testing.assert_array_equal(oc.isfinite(oc.tensor(values)).numpy(), np.isfinite(values))
    np.testing.assert_array_equal(oc.isnan(oc.tensor(values).T).numpy(), np.isnan(values.T))
