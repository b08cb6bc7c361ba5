"""flash_attention through orchard_core's autograd: float64 gradcheck (finite differences)
with causal masks, GQA, dropout and the lse output, and .grad against backward().

On CUDA the finite differences are torch's (torch.autograd.gradcheck over forward/backward
wrapped in a torch.autograd.Function): orchard's gradcheck perturbs its inputs through numpy,
in host memory, and orchard-core has no CUDA operators to form a loss with. Metal has no float64,
so no finite differences: there .grad is checked against backward() in float32 and bfloat16."""

from __future__ import annotations

import numpy as np
import orchard_core as oc
import orchard_flash as of
import pytest
import torch
from _flash_devices import on, require_kernels_for
from _flash_reference import as_numpy, random_qkv
from orchard_core.autograd import gradcheck, no_grad


def orchard_on(x: np.ndarray, device: str, dtype: oc.dtype) -> oc.Tensor:
    """numpy values as an orchard tensor on ``device``; on CUDA an orchard view of a torch CUDA tensor."""
    t = on(x, device, dtype)
    return t if isinstance(t, oc.Tensor) else oc.from_dlpack(t)


def leaves(rng, shape, dtype=oc.float64, device="cpu"):
    """Orchard leaves that require grad."""
    return [orchard_on(x, device, dtype).requires_grad_() for x in random_qkv(rng, *shape)]


class TorchFlash(torch.autograd.Function):
    """orchard_flash.forward and backward as a torch autograd Function (for gradcheck on CUDA)."""

    @staticmethod
    def forward(ctx, q, k, v, options):
        # torch refuses to export tensors that require grad through DLPack: detach first.
        q, k, v = (x.detach() for x in (q, k, v))
        out, lse = (torch.from_dlpack(t) for t in of.forward(q, k, v, **options))
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.options = options
        return out, lse

    @staticmethod
    def backward(ctx, dout, dlse):
        q, k, v, out, lse = (x.detach() for x in ctx.saved_tensors)  # saved outputs require grad
        grads = of.backward(dout.detach(), q, k, v, out, lse, dlse=dlse.detach(), **ctx.options)
        return (*(torch.from_dlpack(g) for g in grads), None)


def torch_gradcheck(rng, device, shape, options, *, return_lse: bool) -> bool:
    inputs = [on(x, device, oc.float64).requires_grad_() for x in random_qkv(rng, *shape)]

    def fn(q, k, v):
        out, lse = TorchFlash.apply(q, k, v, options)
        return (out, lse) if return_lse else out

    return torch.autograd.gradcheck(fn, inputs)


GRADCHECKS = [  # shape (batch, heads, heads_kv, len_q, len_k, dim), options
    ((1, 1, 1, 5, 7, 8), {}),
    ((2, 2, 1, 6, 5, 8), {"causal": True}),  # GQA; bottom-right: row 0 sees nothing
    ((1, 4, 2, 7, 4, 8), {"causal": True, "causal_alignment": "top_left"}),
    ((1, 2, 1, 5, 9, 16), {"scale": 0.7}),
    ((1, 2, 2, 6, 7, 8), {"dropout_p": 0.3, "seed": 1234}),
    ((1, 4, 2, 5, 8, 8), {"dropout_p": 0.5, "seed": 2**63 + 5, "causal": True}),
]


@pytest.mark.parametrize(("shape", "options"), GRADCHECKS, ids=lambda x: str(x))
def test_gradcheck(rng, device, shape, options):
    require_kernels_for(device, oc.float64)
    if device != "cpu":
        assert torch_gradcheck(rng, device, shape, options, return_lse=False)
        return
    inputs = leaves(rng, shape)
    assert gradcheck(lambda q, k, v: of.flash_attention(q, k, v, **options), inputs)


@pytest.mark.parametrize(
    "options",
    [{}, {"causal": True}, {"causal": True, "causal_alignment": "top_left"}, {"dropout_p": 0.4, "seed": 99}],
    ids=["full", "causal_br", "causal_tl", "dropout"],
)
def test_gradcheck_with_lse(rng, device, options):
    # Both outputs: out and the row log-sum-exp (len_q <= len_k, so every row sees a key).
    require_kernels_for(device, oc.float64)
    if device != "cpu":
        assert torch_gradcheck(rng, device, (1, 4, 2, 5, 7, 8), options, return_lse=True)
        return
    inputs = leaves(rng, (1, 4, 2, 5, 7, 8))
    assert gradcheck(lambda q, k, v: of.flash_attention(q, k, v, return_lse=True, **options), inputs)


def test_gradcheck_lse_alone(rng):
    inputs = leaves(rng, (1, 2, 1, 4, 6, 8))
    assert gradcheck(lambda q, k, v: of.flash_attention(q, k, v, return_lse=True)[1], inputs)


@pytest.mark.parametrize("dtype", [oc.float32, oc.bfloat16, oc.float64], ids=lambda d: d.name)
@pytest.mark.parametrize("return_lse", [False, True])
def test_grad_matches_backward(rng, device, dtype, return_lse):
    # On CUDA and Metal the output gradients go in through orchard_core.autograd.backward (no
    # loss: orchard-core has no CUDA operators to form one, and its Metal ones are not under
    # test here); the engine must pass them on to the kernels.
    require_kernels_for(device, dtype)
    shape = (2, 4, 2, 70, 150, 24)
    q, k, v = leaves(rng, shape, dtype, device)
    row = oc.float64 if dtype == oc.float64 else oc.float32
    dout = orchard_on(rng.standard_normal((2, 4, 70, 24)), device, dtype)
    dlse = orchard_on(rng.standard_normal((2, 4, 70)), device, row)
    options = {"causal": True, "dropout_p": 0.2, "seed": 7}
    if return_lse:
        out, lse = of.flash_attention(q, k, v, return_lse=True, **options)
    else:
        out = of.flash_attention(q, k, v, **options)
    assert isinstance(out, oc.Tensor) and out.requires_grad
    if device == "cpu":
        loss = (out * dout).sum()
        if return_lse:
            loss = loss + (lse * dlse).sum()
        loss.backward()
    elif return_lse:
        oc.autograd.backward([out, lse], [dout, dlse])
    else:
        oc.autograd.backward([out], [dout])
    with no_grad():
        saved_out, saved_lse = of.forward(q, k, v, **options)
        want = of.backward(dout, q, k, v, saved_out, saved_lse, dlse=dlse if return_lse else None, **options)
    for leaf, w in zip((q, k, v), want, strict=True):
        assert leaf.grad is not None and leaf.grad.shape == leaf.shape and leaf.grad.dtype == dtype
        np.testing.assert_allclose(as_numpy(leaf.grad), as_numpy(w), rtol=1e-6, atol=1e-7)


def test_self_attention_on_one_leaf_sums_the_gradients(rng):
    x = oc.tensor(rng.standard_normal((1, 2, 30, 16))).requires_grad_()
    dout = oc.tensor(rng.standard_normal((1, 2, 30, 16)))
    (of.flash_attention(x, x, x, causal=True) * dout).sum().backward()
    with no_grad():
        out, lse = of.forward(x, x, x, causal=True)
        dq, dk, dv = of.backward(dout, x, x, x, out, lse, causal=True)
    np.testing.assert_allclose(
        as_numpy(x.grad), as_numpy(dq) + as_numpy(dk) + as_numpy(dv), rtol=1e-12, atol=1e-14
    )


def test_only_some_inputs_need_grad(rng):
    q, k, v = (oc.tensor(x) for x in random_qkv(rng, 1, 2, 1, 9, 11, 8))
    q.requires_grad_()
    out = of.flash_attention(q, k, v, causal=True)
    (out * out).sum().backward()
    assert q.grad is not None and q.grad.shape == q.shape
    assert k.grad is None and v.grad is None


def test_torch_and_numpy_inputs_work_without_grad(rng):
    q, k, v = random_qkv(rng, 1, 2, 1, 9, 11, 8)
    want = as_numpy(of.forward(*(oc.tensor(x, dtype=oc.float32) for x in (q, k, v)), causal=True)[0])
    for make in (lambda x: torch.tensor(x, dtype=torch.float32), lambda x: x.astype(np.float32)):
        out = of.flash_attention(*(make(x) for x in (q, k, v)), causal=True)
        assert isinstance(out, oc.Tensor) and not out.requires_grad and out.grad_fn is None
        assert as_numpy(out).tobytes() == want.tobytes()
        out, lse = of.flash_attention(*(make(x) for x in (q, k, v)), causal=True, return_lse=True)
        assert lse.shape == (1, 2, 9)


def test_no_grad_records_nothing(rng):
    q, k, v = leaves(rng, (1, 1, 1, 5, 5, 8))
    with no_grad():
        out = of.flash_attention(q, k, v)
    assert not out.requires_grad and out.grad_fn is None


def test_rows_without_keys_give_zero_gradients(rng):
    # Bottom-right causal with len_q > len_k: the first rows see nothing; out is 0 there and
    # contributes no gradient, and nothing is NaN.
    q, k, v = leaves(rng, (1, 2, 1, 20, 6, 8), oc.float32)
    out, lse = of.flash_attention(q, k, v, causal=True, return_lse=True)
    got_out, got_lse = as_numpy(out), as_numpy(lse)
    assert np.all(got_out[:, :, :14] == 0) and np.all(got_lse[:, :, :14] == -np.inf)
    assert np.isfinite(got_lse[:, :, 14:]).all()
    (out * out.exp()).sum().backward()
    for leaf in (q, k, v):
        assert np.isfinite(as_numpy(leaf.grad)).all()
    assert np.all(as_numpy(q.grad)[:, :, :14] == 0)


def test_the_profiler_sees_both_passes_inside_the_autograd_node(rng):
    q, k, v = leaves(rng, (2, 3, 1, 37, 41, 16), dtype=oc.float32)
    with oc.profiler.profile() as prof:
        out = of.flash_attention(q, k, v, causal=True, dropout_p=0.1)
        out.sum().backward()
    events = prof.events()
    names = [e.name for e in events]
    assert names.count("flash_attention") == 1
    assert names.count("flash_attention backward") == 1
    node = next(e for e in events if e.name == "flash_attention backward")
    assert node.depth >= 2  # inside the autograd node, inside backward()


@pytest.mark.parametrize("deterministic", [True, False])
def test_deterministic_reaches_the_backward(rng, monkeypatch, deterministic):
    """flash_attention's ``deterministic`` is backward's (the kernels' atomic dq path on Hopper,
    tested in test_cuda.py); the gradients are backward's either way."""
    from orchard_flash import _attention

    seen = []
    original = _attention.backward

    def backward(*args, **kwargs):
        seen.append(kwargs["deterministic"])
        return original(*args, **kwargs)

    monkeypatch.setattr(_attention, "backward", backward)
    q, k, v = leaves(rng, (1, 2, 2, 9, 11, 8))
    of.flash_attention(q, k, v, causal=True, deterministic=deterministic).sum().backward()
    assert seen == [deterministic]
    with pytest.raises(TypeError, match="deterministic"):
        of.flash_attention(q, k, v, deterministic=1)
