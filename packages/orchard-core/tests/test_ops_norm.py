"""layer_norm and cross_entropy (fused kernels, one backward kernel each) against torch for
semantics (dtype, shape, errors) and against float64 references for numerics, on every device.

Tolerances, from the kernels' arithmetic: sums run over 16 accumulators in blocks, so a sum of n
terms carries about sqrt(n) * eps of the sum of their magnitudes; each formula adds a few
roundings of its terms. layer_norm's normalized value h = (x - mean) * rstd is then good to
8 * sqrt(n) * eps * (|h| + rstd * mean|x|) (the mean's error, scaled by rstd, shifts every h),
and every bound below is 8 * sqrt(count) * eps times the magnitudes of the terms it sums.
cross_entropy works in double from the row's max and sum of exponentials (exp within an ulp),
so a row's loss is good to 8 * sqrt(C) * eps plus the smoothing term's sum, one rounding of the
loss and one of the row's logsumexp (loss = lse - x[target] keeps lse's rounding when they cancel).
bfloat16 and float16 compute in float32 from their own values and round once at the output:
the float32 bound plus one rounding (eps of the output dtype) of the reference.
"""

from __future__ import annotations

import numpy as np
import orchard_core as oc
import pytest
import torch
import torch.nn.functional as F
from _core_helpers import OC, TORCH, host_values, random_array
from orchard_core.autograd import gradcheck

EPS = {"float32": 2.0**-23, "float64": 2.0**-52, "bfloat16": 2.0**-8, "float16": 2.0**-11}
# Row lengths of no vector width or threadgroup size: short, odd, longer than 256 and 1024.
LN_SHAPES = [
    ((7, 13), (13,)),
    ((3, 5, 37), (37,)),
    ((4, 3, 11), (3, 11)),
    ((2, 1031), (1031,)),
    ((19, 1000), (1000,)),
    ((9,), (9,)),
]
CE_SHAPES = [(9, 11), (4, 1029), (1, 3), (17,)]


def _rounding(dtype: str, want: np.ndarray) -> np.ndarray:
    """One rounding of `want` into dtype: half an ulp, or half the subnormal spacing near 0."""
    if dtype == "float64":
        return np.zeros_like(want)
    tiny = {"float32": 2.0**-150, "bfloat16": 2.0**-134, "float16": 2.0**-25}[dtype]
    return EPS[dtype] * np.abs(want) + tiny


def _skip_float64_on_metal(device: str, dtype: str) -> None:
    if dtype == "float64" and device.startswith("metal"):
        pytest.skip("Metal has no float64")


def _to(values: np.ndarray, dtype: str, device: str, requires_grad: bool = False):
    """The same values as an orchard tensor on `device` and a torch tensor (rounded to dtype)."""
    ours = oc.tensor(values).to(OC[dtype]).to(device)
    reference = torch.from_numpy(values.copy()).to(TORCH[dtype])
    if requires_grad:
        ours.requires_grad_(True)
        reference.requires_grad_(True)
    return ours, reference


def _exact(t: torch.Tensor) -> np.ndarray:
    """The values a (possibly 16-bit) torch tensor holds, in float64."""
    return t.detach().double().numpy()


def _ln_reference(x: np.ndarray, k: int, w, b):
    """float64 layer_norm, its normalized values and the magnitude bound of each h."""
    axes = tuple(range(x.ndim - k, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    rstd = 1.0 / np.sqrt(((x - mean) ** 2).mean(axis=axes, keepdims=True) + 1e-5)
    h = (x - mean) * rstd
    h_scale = np.abs(h) + rstd * np.abs(x).mean(axis=axes, keepdims=True)
    y = h * (1.0 if w is None else w) + (0.0 if b is None else b)
    return y, h, h_scale, rstd


@pytest.mark.parametrize("dtype", ["float32", "float64", "bfloat16", "float16"])
@pytest.mark.parametrize(("shape", "normalized"), LN_SHAPES)
@pytest.mark.parametrize("affine", ["both", "weight", "bias", "none"])
def test_layer_norm_forward_and_backward(rng, device, dtype, shape, normalized, affine):
    _skip_float64_on_metal(device, dtype)
    eps32 = EPS["float32"] if dtype != "float64" else EPS["float64"]
    x, tx = _to(random_array(rng, shape, "float32").astype(np.float64), dtype, device, True)
    w = b = tw = tb = None
    if affine in ("both", "weight"):
        w, tw = _to(rng.standard_normal(normalized), dtype, device, True)
    if affine in ("both", "bias"):
        b, tb = _to(rng.standard_normal(normalized), dtype, device, True)
    y = oc.layer_norm(x, normalized, w, b)
    ty = F.layer_norm(tx, normalized, tw, tb)
    assert y.dtype == OC[dtype] and y.shape == tuple(ty.shape) and y.device == device

    k, n = len(normalized), int(np.prod(normalized))
    xv = _exact(tx)
    wv = None if tw is None else _exact(tw)
    bv = None if tb is None else _exact(tb)
    want, _, h_scale, rstd = _ln_reference(xv, k, wv, bv)
    w_abs = 1.0 if wv is None else np.abs(wv)
    bound = 8 * np.sqrt(n) * eps32 * (h_scale * w_abs + (0.0 if bv is None else np.abs(bv)))
    np.testing.assert_array_less(np.abs(host_values(y) - want), bound + _rounding(dtype, want) + 1e-300)

    g = random_array(rng, shape, "float32").astype(np.float64)
    (y * oc.tensor(g).to(OC[dtype]).to(device)).sum().backward()
    gv = _exact(torch.from_numpy(g).to(TORCH[dtype]))
    # float64 torch autograd on the same values is the reference.
    refs = [torch.from_numpy(v).requires_grad_(True) if v is not None else None for v in (xv, wv, bv)]
    (F.layer_norm(refs[0], normalized, refs[1], refs[2]) * torch.from_numpy(gv)).sum().backward()
    axes = tuple(range(x.ndim - k, x.ndim))
    gw = gv * w_abs
    row = lambda v: np.abs(v).mean(axis=axes, keepdims=True)  # noqa: E731
    dx_bound = 8 * np.sqrt(n) * eps32 * rstd * (np.abs(gw) + row(gw) + h_scale * row(gw * h_scale))
    lead = tuple(range(x.ndim - k))
    rows = max(1, xv.size // n)
    checks = [(x, refs[0], dx_bound)]
    if w is not None:
        checks.append(
            (w, refs[1], 8 * (np.sqrt(rows) + np.sqrt(n)) * eps32 * np.abs(gv * h_scale).sum(axis=lead))
        )
    if b is not None:
        checks.append((b, refs[2], 8 * np.sqrt(rows) * eps32 * np.abs(gv).sum(axis=lead)))
    for ours, ref, grad_bound in checks:
        assert ours.grad.dtype == OC[dtype] and ours.grad.shape == tuple(ref.shape)
        want = ref.grad.numpy()
        tol = grad_bound + _rounding(dtype, want)
        np.testing.assert_array_less(np.abs(host_values(ours.grad) - want), tol + 1e-300)
    # torch's own gradients agree in float32/64 within the same bounds (semantics: shapes, dtypes).
    (ty * torch.from_numpy(g).to(TORCH[dtype])).sum().backward()
    assert tuple(tx.grad.shape) == x.grad.shape


def test_layer_norm_of_a_non_contiguous_input(rng, device):
    values = random_array(rng, (13, 6, 5), "float32")
    x = oc.tensor(values).to(device).permute([2, 1, 0])  # (5, 6, 13), last dim strided
    w = oc.tensor(random_array(rng, (26,), "float32")).to(device)[::2]
    y = oc.layer_norm(x, [13], w, None, eps=1e-3)
    want = F.layer_norm(
        torch.from_numpy(values).permute(2, 1, 0), [13], torch.from_numpy(host_values(w)), None, 1e-3
    )
    np.testing.assert_allclose(
        host_values(y), want.numpy(), rtol=1e-4, atol=1e-4 * np.abs(want.numpy()).max()
    )


def test_layer_norm_gradcheck_float64(rng):
    x = oc.tensor(rng.standard_normal((3, 2, 5))).requires_grad_(True)
    w = oc.tensor(rng.standard_normal((2, 5))).requires_grad_(True)
    b = oc.tensor(rng.standard_normal((2, 5))).requires_grad_(True)
    assert gradcheck(lambda x, w, b: oc.layer_norm(x, (2, 5), w, b, eps=0.1), [x, w, b])
    assert gradcheck(lambda x: oc.layer_norm(x, 5), [x])


def _assert_same_with_any_thread_count(compute) -> None:
    """compute() gives bitwise the same tensors with 1, 2 and 3 threads."""
    results = []
    saved = oc.get_num_threads()
    try:
        for threads in (1, 2, 3):
            oc.set_num_threads(threads)
            results.append([host_values(t) for t in compute()])
    finally:
        oc.set_num_threads(saved)
    for other in results[1:]:
        for got, want in zip(other, results[0], strict=True):
            np.testing.assert_array_equal(got, want)


def test_layer_norm_is_the_same_with_any_thread_count(rng):
    values = random_array(rng, (300, 257), "float32")
    g = oc.tensor(random_array(rng, (300, 257), "float32"))

    def forward_backward():
        x = oc.tensor(values).requires_grad_(True)
        w = oc.ones(257).requires_grad_(True)
        b = oc.zeros(257).requires_grad_(True)
        y = oc.layer_norm(x, 257, w, b)
        (y * g).sum().backward()
        return [y, x.grad, w.grad, b.grad]

    _assert_same_with_any_thread_count(forward_backward)


def test_layer_norm_errors_name_the_value():
    x = oc.ones(4, 5)
    with pytest.raises(ValueError, match=r"normalized_shape \[4\].*shape \[4, 5\]"):
        oc.layer_norm(x, 4)
    with pytest.raises(ValueError, match=r"normalized_shape \[\]"):
        oc.layer_norm(x, [])
    with pytest.raises(ValueError, match=r"weight of shape \[4\] does not match normalized_shape \[5\]"):
        oc.layer_norm(x, 5, oc.ones(4))
    with pytest.raises(TypeError, match="bias is float64 but the input is float32"):
        oc.layer_norm(x, 5, None, oc.ones(5, dtype=oc.float64))
    with pytest.raises(TypeError, match="input must be a floating point tensor, got int64"):
        oc.layer_norm(oc.ones(4, 5, dtype=oc.int64), 5)
    with pytest.raises(ValueError, match="eps must be non-negative, got -1"):
        oc.layer_norm(x, 5, eps=-1.0)


def test_layer_norm_of_empty_rows():
    x = oc.ones(0, 5).requires_grad_(True)
    w = oc.ones(5).requires_grad_(True)
    y = oc.layer_norm(x, 5, w)
    assert y.shape == (0, 5)
    y.sum().backward()
    assert w.grad.tolist() == [0.0] * 5


def _ce_reference(logits: np.ndarray, target: np.ndarray, ignore: int, smoothing: float):
    """float64 per-row losses (0 where ignored), softmax, and each row's loss bound in units of eps."""
    top = logits.max(axis=-1, keepdims=True)
    total = np.exp(logits - top).sum(axis=-1, keepdims=True)
    lse = top + np.log(total)
    logp = logits - lse
    kept = target != ignore
    safe = np.where(kept, target, 0)
    nll = -np.take_along_axis(logp, safe[..., None], axis=-1)[..., 0]
    loss = np.where(kept, (1 - smoothing) * nll - smoothing * logp.mean(axis=-1), 0.0)
    c = logits.shape[-1]
    # The loss is lse - x[target]: one rounding of lse survives the cancellation, whatever the loss.
    units = np.where(
        kept,
        8 * np.sqrt(c) * (1 + smoothing * np.abs(logits).mean(axis=-1))
        + 2 * np.abs(loss)
        + np.abs(lse[..., 0]),
        0.0,
    )
    return loss, np.exp(logp), units, np.abs(lse[..., 0])


@pytest.mark.parametrize("dtype", ["float32", "float64", "bfloat16", "float16"])
@pytest.mark.parametrize("shape", CE_SHAPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.3])
def test_cross_entropy_forward_and_backward(rng, device, dtype, shape, reduction, smoothing):
    _skip_float64_on_metal(device, dtype)
    eps32 = EPS["float32"] if dtype != "float64" else EPS["float64"]
    c = shape[-1]
    values = rng.standard_normal(shape) * 10.0 ** rng.uniform(-2, 1.5, (*shape[:-1], 1))
    x, tx = _to(values, dtype, device, True)
    target_values = rng.integers(0, c, size=shape[:-1])
    if target_values.ndim and target_values.size > 2:
        target_values[1] = -100  # ignored
    target, ttarget = oc.tensor(target_values).to(device), torch.from_numpy(target_values)
    loss = oc.cross_entropy(x, target, reduction=reduction, label_smoothing=smoothing)
    tloss = F.cross_entropy(tx, ttarget, reduction=reduction, label_smoothing=smoothing)
    assert loss.dtype == OC[dtype] and loss.shape == tuple(tloss.shape) and loss.device == device

    xv = _exact(tx)
    rows, probs, units, lse_abs = _ce_reference(xv, target_values, -100, smoothing)
    kept = (target_values != -100).sum()
    scale = {"none": 1.0, "sum": 1.0, "mean": 1.0 / kept}[reduction]
    if reduction == "none":
        want, bound = rows, units * eps32
    else:
        want = rows.sum() * scale
        bound = (units.sum() + 8 * np.sqrt(rows.size) * np.abs(rows).sum()) * eps32 * scale
    np.testing.assert_array_less(np.abs(host_values(loss) - want), bound + _rounding(dtype, want) + 1e-300)

    g = rng.standard_normal(tloss.shape) + 0.5
    (loss * oc.tensor(g).to(OC[dtype]).to(device)).sum().backward()
    gv = _exact(torch.from_numpy(np.asarray(g)).to(TORCH[dtype]))
    row_scale = np.broadcast_to(np.asarray(gv * scale), target_values.shape)[..., None]
    onehot = np.zeros_like(xv)
    kept_rows = target_values != -100
    np.put_along_axis(onehot, np.where(kept_rows, target_values, 0)[..., None], 1.0, axis=-1)
    want_grad = np.where(
        kept_rows[..., None], (probs - (1 - smoothing) * onehot - smoothing / c) * row_scale, 0.0
    )
    # exp(x - lse) with x - lse rounded in float: its error grows with |x| + |lse|.
    err = probs * (2 * (np.abs(xv) + lse_abs[..., None]) + 8 * np.sqrt(c) + 2) + 2
    grad_bound = err * eps32 * np.abs(row_scale) + _rounding(dtype, want_grad)
    assert x.grad.dtype == OC[dtype] and x.grad.shape == xv.shape
    np.testing.assert_array_less(np.abs(host_values(x.grad) - want_grad), grad_bound + 1e-300)
    # torch's gradient on the same values agrees as closely (its 16-bit kernels round more often).
    if dtype in ("float32", "float64"):
        (tloss * torch.from_numpy(np.asarray(g)).to(TORCH[dtype])).sum().backward()
        np.testing.assert_array_less(np.abs(_exact(tx.grad) - want_grad), 4 * grad_bound + 1e-300)


def test_cross_entropy_with_spatial_dims(rng, device):
    values = rng.standard_normal((3, 5, 4, 2)).astype(np.float32)
    target_values = rng.integers(0, 5, size=(3, 4, 2))
    target_values[0, 1, 1] = 7
    for reduction in ("none", "mean"):
        x, tx = _to(values, "float32", device, True)
        loss = oc.cross_entropy(x, oc.tensor(target_values).to(device), ignore_index=7, reduction=reduction)
        tloss = F.cross_entropy(tx, torch.from_numpy(target_values), ignore_index=7, reduction=reduction)
        assert loss.shape == tuple(tloss.shape)
        np.testing.assert_allclose(host_values(loss), tloss.detach().numpy(), rtol=1e-5, atol=1e-6)
        loss.sum().backward()
        tloss.sum().backward()
        np.testing.assert_allclose(host_values(x.grad), tx.grad.numpy(), rtol=1e-5, atol=1e-7)


def test_cross_entropy_of_a_non_contiguous_input(rng, device):
    values = rng.standard_normal((11, 6)).astype(np.float32)
    x = oc.tensor(values).to(device).T  # (6, 11), rows strided
    target = rng.integers(0, 11, size=6)
    loss = oc.cross_entropy(x, oc.tensor(target).to(device), reduction="none")
    want = F.cross_entropy(torch.from_numpy(values).T, torch.from_numpy(target), reduction="none")
    np.testing.assert_allclose(host_values(loss), want.numpy(), rtol=1e-5, atol=1e-6)


def test_cross_entropy_all_ignored_is_nan_as_in_torch(device):
    x = oc.zeros(3, 4, device=device).requires_grad_(True)
    target = oc.tensor([-100, -100, -100]).to(device)
    loss = oc.cross_entropy(x, target)
    assert np.isnan(loss.item())
    assert np.isnan(F.cross_entropy(torch.zeros(3, 4), torch.tensor([-100] * 3)).item())
    assert oc.cross_entropy(x, target, reduction="sum").item() == 0.0
    oc.cross_entropy(x, target, reduction="sum").backward()
    assert host_values(x.grad).tolist() == [[0.0] * 4] * 3


def test_cross_entropy_gradcheck_float64(rng):
    x = oc.tensor(rng.standard_normal((5, 7))).requires_grad_(True)
    target = oc.tensor(np.array([3, -100, 0, 6, 2]))
    for reduction in ("mean", "sum", "none"):
        for smoothing in (0.0, 0.25):
            assert gradcheck(
                lambda x, r=reduction, s=smoothing: oc.cross_entropy(
                    x, target, reduction=r, label_smoothing=s
                ),
                [x],
            )


def test_cross_entropy_is_the_same_with_any_thread_count(rng):
    values = random_array(rng, (130, 301), "float32")
    target = oc.tensor(rng.integers(0, 301, size=130))

    def forward_backward():
        x = oc.tensor(values).requires_grad_(True)
        loss = oc.cross_entropy(x, target, label_smoothing=0.1)
        loss.backward()
        return [loss, x.grad]

    _assert_same_with_any_thread_count(forward_backward)


def test_cross_entropy_errors_name_the_value():
    x = oc.zeros(3, 4)
    with pytest.raises(IndexError, match=r"target 4 is out of bounds for 4 classes"):
        oc.cross_entropy(x, oc.tensor([0, 4, 1]))
    with pytest.raises(IndexError, match=r"target -3 is out of bounds for 4 classes"):
        oc.cross_entropy(x, oc.tensor([0, -3, -100]))
    with pytest.raises(ValueError, match="reduction must be 'none', 'mean' or 'sum', got 'avg'"):
        oc.cross_entropy(x, oc.tensor([0, 1, 2]), reduction="avg")
    with pytest.raises(ValueError, match=r"target of shape \[2\] does not match input of shape \[3, 4\]"):
        oc.cross_entropy(x, oc.tensor([0, 1]))
    with pytest.raises(TypeError, match="target must hold int64 class indices, got float32"):
        oc.cross_entropy(x, oc.zeros(3))
    with pytest.raises(TypeError, match="target must hold int64 class indices, got int32"):
        oc.cross_entropy(x, oc.tensor([0, 1, 2]).to(oc.int32))
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\], got 1.5"):
        oc.cross_entropy(x, oc.tensor([0, 1, 2]), label_smoothing=1.5)
    with pytest.raises(TypeError, match="input must be a floating point tensor, got int64"):
        oc.cross_entropy(oc.zeros(3, 4, dtype=oc.int64), oc.tensor([0, 1, 2]))
