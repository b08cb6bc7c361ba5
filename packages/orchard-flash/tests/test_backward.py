"""The fused backward pass against float64 gradients of naive attention (torch autograd), the
lse gradient, any strides, and its input checks, on every instruction set, on CUDA and on Metal."""

from __future__ import annotations

import numpy as np
import orchard_core as oc
import orchard_flash as of
import pytest
import torch
from _flash_devices import (
    DeviceTensor,
    as_device_tensor,
    cast,
    device_tensor,
    filled,
    kernel_dtypes,
    on,
    require_kernels_for,
    same_values,
)
from _flash_devices import backward as run_backward
from _flash_devices import forward as run_forward
from _flash_reference import as_numpy, assert_lse_close, max_error, random_qkv, reference, reference_keep_mask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from orchard_flash import _flash

ISAS = _flash._cpu_isas()

SHAPES = [  # batch, heads, heads_kv, len_q, len_k, dim
    (1, 1, 1, 1, 1, 8),
    (2, 4, 2, 113, 203, 40),  # GQA: dk, dv summed over two query heads each
    (1, 2, 1, 203, 113, 128),  # MQA; bottom-right rows that see nothing
    (2, 2, 2, 128, 128, 64),
    (1, 3, 1, 67, 67, 256),
    (1, 2, 1, 1, 300, 40),
    (1, 1, 1, 300, 1, 8),
    (1, 2, 1, 1000, 1000, 64),
]
MASKS = [(False, "bottom_right"), (True, "bottom_right"), (True, "top_left")]

# float32 gradient tolerance, relative to the largest entry of dq, dk and dv together (one
# scale for all three: with one key the exact dq and dk are 0, and the kernel's are rounding
# noise). Each gradient entry sums up to max(len_q, len_k) <= 1000 products (after dim-long dot
# products), so float32 rounding (u = 2^-24 = 6e-8) grows like sqrt(n) u ~ 2e-6 typically and
# n u = 6e-5 at worst; recomputing P = exp(s - lse) from the float32 lse adds |lse| u ~ 1e-6
# relative to every probability. 3e-5 is 500 u: about 8x the worst seen over hundreds of random
# shapes (3.7e-6; a naive float32 torch attention shows a third to all of that), while a wrong
# mask, scale, dropped block or group is off by 1e-3 or more.
GRAD_RTOL = 3e-5


def f32(x) -> oc.Tensor:
    return oc.tensor(x, dtype=oc.float32)


def rounded(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float32).astype(np.float64)


def assert_grads_close(got, want, rtol=GRAD_RTOL) -> None:
    scale = max(float(np.abs(w).max(initial=0.0)) for w in want)
    for name, g, w in zip(("dq", "dk", "dv"), got, want, strict=True):
        assert g.shape == w.shape, name
        err = max_error(g, w)
        assert err <= rtol * scale, f"{name}: max error {err:.3g} > {rtol} * {scale:.3g}"


def run(rng, device, shape, *, causal, alignment="bottom_right", with_dlse=False, **options):
    """flash forward + backward in float32 on ``device`` and the float64 reference on the same inputs."""
    q, k, v = map(rounded, random_qkv(rng, *shape))
    dout = rounded(rng.standard_normal(q.shape))
    dlse = rounded(rng.standard_normal(q.shape[:3])) if with_dlse else None
    kw = dict(causal=causal, causal_alignment=alignment, **options)
    inputs = [on(x, device) for x in (q, k, v)]
    out, lse = run_forward(*inputs, **kw)
    grads = run_backward(
        on(dout, device), *inputs, out, lse, dlse=None if dlse is None else on(dlse, device), **kw
    )
    want = reference(q, k, v, dout, dlse, causal=causal, alignment=alignment, scale=options.get("scale"))
    return out, lse, grads, want


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize(("causal", "alignment"), MASKS, ids=["full", "causal_br", "causal_tl"])
def test_float32_gradients_match_float64(rng, device, shape, causal, alignment):
    scale = float(rng.uniform(0.05, 0.5))
    _, _, grads, (_, _, *want) = run(rng, device, shape, causal=causal, alignment=alignment, scale=scale)
    for g, x in zip(grads, ("q", "k", "v"), strict=True):
        assert g.dtype == oc.float32 and g.is_contiguous(), x
    assert grads[1].shape == grads[2].shape == (shape[0], shape[2], shape[4], shape[5])
    for g in grads:
        assert not np.isnan(as_numpy(g)).any()
    assert_grads_close(grads, want)


@pytest.mark.parametrize("shape", [(2, 4, 2, 113, 203, 40), (1, 2, 1, 150, 90, 64)], ids=["gqa", "mqa"])
@pytest.mark.parametrize(("causal", "alignment"), MASKS, ids=["full", "causal_br", "causal_tl"])
def test_lse_gradient(rng, device, shape, causal, alignment):
    # Gradients of sum(out * dout) + sum(lse * dlse); rows that see no key have a constant
    # lse (-inf) and take nothing from their dlse.
    _, _, grads, (_, _, *want) = run(rng, device, shape, causal=causal, alignment=alignment, with_dlse=True)
    assert_grads_close(grads, want)


def test_lse_gradient_alone(rng, device):
    # dout = 0: the gradients come from dlse only (d lse / d scores = P).
    q, k, v = map(rounded, random_qkv(rng, 1, 2, 1, 70, 150, 32))
    dlse = rounded(rng.standard_normal(q.shape[:3]))
    inputs = [on(x, device) for x in (q, k, v)]
    out, lse = run_forward(*inputs)
    zeros = np.zeros_like(q)
    grads = run_backward(on(zeros, device), *inputs, out, lse, dlse=on(dlse, device))
    _, _, *want = reference(q, k, v, zeros, dlse)
    assert np.abs(want[2]).max() == 0  # v does not enter lse
    assert_grads_close(grads, want)


def test_float64_gradients_are_exact_to_rounding(rng, device):
    require_kernels_for(device, oc.float64)
    q, k, v = random_qkv(rng, 2, 4, 2, 70, 150, 24)
    dout, dlse = rng.standard_normal(q.shape), rng.standard_normal(q.shape[:3])
    inputs = [on(x, device, oc.float64) for x in (q, k, v)]
    out, lse = run_forward(*inputs, causal=True)
    grads = run_backward(
        on(dout, device, oc.float64), *inputs, out, lse, causal=True, dlse=on(dlse, device, oc.float64)
    )
    _, _, *want = reference(q, k, v, dout, dlse, causal=True)
    for g, w in zip(grads, want, strict=True):
        assert g.dtype == oc.float64
        np.testing.assert_allclose(as_numpy(g), w, rtol=1e-9, atol=1e-11)


def test_strided_backward_inputs_give_identical_gradients(rng, device):
    # dout, out, q, k, v as transposed views (the head dim strided for k too) and lse, dlse as
    # strided slices: bitwise the same gradients as from contiguous tensors.
    q, k, v = (device_tensor(x.astype(np.float32), device) for x in random_qkv(rng, 2, 4, 2, 77, 130, 40))
    dout = device_tensor(rng.standard_normal(q.shape).astype(np.float32), device)
    dlse = device_tensor(rng.standard_normal(q.shape[:3]).astype(np.float32), device)
    out, lse = run_forward(q, k, v, causal=True)
    out = as_device_tensor(out)
    want = run_backward(dout, q, k, v, out, lse, causal=True, dlse=dlse)
    got = run_backward(
        transposed(dout),
        transposed(q),
        dim_strided(k),
        transposed(v),
        transposed(out),
        every_other(as_device_tensor(lse)),
        causal=True,
        dlse=every_other(dlse),
    )
    for g, w in zip(got, want, strict=True):
        assert g.is_contiguous()
        assert as_numpy(g).tobytes() == as_numpy(w).tobytes()
    # The head dim of dout and out strided too: rowsum(dO * O) is one fused multiply-add chain
    # whatever the layout, so still bitwise.
    got = run_backward(dim_strided(dout), q, k, v, dim_strided(out), lse, causal=True, dlse=dlse)
    for g, w in zip(got, want, strict=True):
        assert as_numpy(g).tobytes() == as_numpy(w).tobytes()


def transposed(x: DeviceTensor) -> DeviceTensor:
    """The same values in a (batch, length, heads, dim) layout."""
    view = x.transpose(1, 2).contiguous().transpose(1, 2)
    assert not view.is_contiguous() and same_values(view, x)
    return view


def dim_strided(x: DeviceTensor) -> DeviceTensor:
    """The same values with the head dim not the contiguous one."""
    view = x.transpose(2, 3).contiguous().transpose(2, 3)
    assert view.stride(3) != 1 and same_values(view, x)
    return view


def every_other(x: DeviceTensor) -> DeviceTensor:
    """The same values at every other element of a NaN-filled buffer."""
    wide = filled(x, float("nan"), (*x.shape[:-1], 2 * x.shape[-1]))
    wide[..., ::2] = x
    return wide[..., ::2]


# ---- input checks ----------------------------------------------------------------------------


def saved_inputs(rng, device):
    """A backward call's arguments on ``device``; on CUDA all torch tensors, which the cases
    below slice and convert with torch (orchard-core has no CUDA operators); orchard's elsewhere."""
    q, k, v = (on(x, device) for x in random_qkv(rng, 2, 4, 2, 9, 11, 16))
    out, lse = of.forward(q, k, v)
    if device.startswith("cuda"):
        out, lse = torch.from_dlpack(out), torch.from_dlpack(lse)
    dout = on(rng.standard_normal((2, 4, 9, 16)), device)
    return {"dout": dout, "q": q, "k": k, "v": v, "out": out, "lse": lse}


@pytest.fixture
def saved(rng):
    return saved_inputs(rng, "cpu")


@pytest.fixture
def saved_on_any_device(rng, any_device):
    return saved_inputs(rng, any_device)


@pytest.mark.parametrize(
    ("name", "change", "error", "message"),
    [
        (
            "dout",
            lambda t: t[:, :, :8],
            ValueError,
            r"dout must have q's shape \(2, 4, 9, 16\), got \(2, 4, 8, 16\)",
        ),
        ("dout", lambda t: cast(t, "float64"), TypeError, "dout is float64"),
        ("dout", lambda t: cast(t, "bfloat16"), TypeError, "dout is bfloat16"),
        ("out", lambda t: t[:1], ValueError, "out must have q's shape"),
        ("out", lambda t: cast(t, "float64"), TypeError, "out is float64"),
        ("lse", lambda t: t[:, :, :8], ValueError, r"lse must be float32 of shape \(2, 4, 9\)"),
        ("lse", lambda t: cast(t, "float64"), ValueError, "lse must be float32.*got float64"),
        ("lse", lambda t: t.unsqueeze(-1), ValueError, "lse must be float32"),
        ("k", lambda t: t[..., :8], ValueError, "head dims differ"),
        ("v", lambda t: cast(t, "float64"), TypeError, "one dtype"),
    ],
)
def test_bad_backward_inputs_raise(saved_on_any_device, name, change, error, message):
    saved = saved_on_any_device
    saved[name] = change(saved[name])
    with pytest.raises(error, match=message):
        of.backward(**saved)


def test_bad_dlse_raises(saved_on_any_device, any_device):
    saved = saved_on_any_device
    with pytest.raises(ValueError, match=r"dlse must be float32 of shape \(2, 4, 9\)"):
        of.backward(**saved, dlse=on(np.zeros((2, 4, 8)), any_device))
    with pytest.raises(ValueError, match=r"dlse must be float32.*got float64"):
        of.backward(**saved, dlse=on(np.zeros((2, 4, 9)), any_device, oc.float64))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_lse_or_dlse_raises(saved, bad):
    # CPU only: CUDA and Metal do not check lse and dlse for NaN (that would need a device sync).
    # lse may be -inf (a row that sees no key) but never NaN or +inf; dlse must be finite.
    lse = saved["lse"].clone()
    lse[1, 2, 3] = bad
    with pytest.raises(ValueError, match="NaN or infinite"):
        of.backward(**{**saved, "lse": lse})
    dlse = oc.zeros(2, 4, 9)
    dlse[0, 1, 2] = bad
    with pytest.raises(ValueError, match="NaN or infinite"):
        of.backward(**saved, dlse=dlse)


def test_backward_row_dtypes_follow_the_inputs(rng, any_device):
    # lse is float32 for 16-bit inputs and float64 for float64 ones, in each dtype the device's
    # kernels have (float64: not Metal's).
    q, k, v = random_qkv(rng, 1, 2, 1, 5, 7, 8)
    dtypes = [d for d in (oc.bfloat16, oc.float64, oc.float16) if d.name in kernel_dtypes(any_device)]
    for dtype in dtypes:
        row = oc.float64 if dtype == oc.float64 else oc.float32
        t = [on(x, any_device, dtype) for x in (q, k, v)]
        out, lse = of.forward(*t)
        assert out.dtype == dtype and lse.dtype == row
        grads = of.backward(out, *t, out, lse, dlse=on(np.zeros((1, 2, 5)), any_device, row))
        assert all(g.dtype == dtype for g in grads)
        with pytest.raises(ValueError, match="lse must be"):
            of.backward(out, *t, out, cast(lse, "float16"))


@pytest.mark.parametrize("name", ["dout", "out"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_backward_inputs_raise(saved, name, bad):
    # CPU only: CUDA and Metal do not check their inputs for NaN (that would need a device sync).
    values = as_numpy(saved[name]).copy()
    values[1, 3, 8, 15] = bad
    saved[name] = f32(values)
    with pytest.raises(ValueError, match="contain NaN or infinite values"):
        of.backward(**saved)


def test_backward_takes_the_forward_options(rng, any_device):
    # A wrong option in backward (here the scale) gives other gradients: nothing is remembered.
    q, k, v = (on(x, any_device) for x in random_qkv(rng, 1, 1, 1, 20, 20, 8))
    dout = on(rng.standard_normal((1, 1, 20, 8)), any_device)
    out, lse = of.forward(q, k, v, scale=0.3)
    right = of.backward(dout, q, k, v, out, lse, scale=0.3)
    wrong = of.backward(dout, q, k, v, out, lse)
    assert max_error(right[0], as_numpy(wrong[0])) > 1e-3


# ---- random shapes ---------------------------------------------------------------------------


RANDOM_SIZES = st.tuples(
    st.integers(1, 2),  # batch
    st.sampled_from([(1, 1), (2, 1), (3, 3), (4, 2), (6, 3)]),  # heads, heads_kv
    st.integers(1, 150),  # len_q
    st.integers(1, 400),  # len_k: up to 4 key blocks, split into chunks by the backward
    st.integers(1, 12).map(lambda n: 8 * n),  # dim
)


def check_random_shape(device, sizes, mask, dropout_p, seed) -> None:
    """Forward and backward (with dlse and dropout) on ``device`` against float64 attention."""
    batch, (heads, heads_kv), len_q, len_k, dim = sizes
    causal, alignment = mask
    rng = np.random.default_rng(seed)
    q, k, v = map(rounded, random_qkv(rng, batch, heads, heads_kv, len_q, len_k, dim))
    dout = rounded(rng.standard_normal(q.shape))
    dlse = rounded(rng.standard_normal(q.shape[:3]))
    keep = (
        reference_keep_mask(batch, heads, len_q, len_k, dropout_p=dropout_p, seed=seed) if dropout_p else None
    )
    kw = dict(causal=causal, causal_alignment=alignment, dropout_p=dropout_p, seed=seed)
    inputs = [on(x, device) for x in (q, k, v)]
    out, lse = run_forward(*inputs, **kw)
    grads = run_backward(on(dout, device), *inputs, out, lse, dlse=on(dlse, device), **kw)
    want_out, want_lse, *want = reference(
        q, k, v, dout, dlse, causal=causal, alignment=alignment, keep=keep, dropout_p=dropout_p
    )
    assert max_error(out, want_out) < 1e-4
    assert_lse_close(lse, want_lse, atol=1e-4)
    assert_grads_close(grads, want)


@settings(max_examples=30, deadline=None)
@given(
    sizes=RANDOM_SIZES,
    mask=st.sampled_from(MASKS),
    dropout_p=st.sampled_from([0.0, 0.0, 0.3]),
    which=st.sampled_from(ISAS),
    seed=st.integers(0, 2**64 - 1),
)
def test_random_shapes(sizes, mask, dropout_p, which, seed):
    saved = _flash._cpu_isa()
    _flash._set_cpu_isa(which)
    try:
        check_random_shape("cpu", sizes, mask, dropout_p, seed)
    finally:
        _flash._set_cpu_isa(saved)


# One device's random shapes: the cuda and metal fixtures only name the device, so nothing in them
# needs resetting between examples.
ON_ONE_DEVICE = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
RANDOM_PROBLEMS = given(
    sizes=RANDOM_SIZES,
    mask=st.sampled_from(MASKS),
    dropout_p=st.sampled_from([0.0, 0.0, 0.3]),
    seed=st.integers(0, 2**64 - 1),
)


@ON_ONE_DEVICE
@RANDOM_PROBLEMS
def test_random_shapes_cuda(cuda, sizes, mask, dropout_p, seed):
    check_random_shape(cuda, sizes, mask, dropout_p, seed)


@ON_ONE_DEVICE
@RANDOM_PROBLEMS
def test_random_shapes_metal(metal, sizes, mask, dropout_p, seed):
    check_random_shape(metal, sizes, mask, dropout_p, seed)
