"""torch.ops.orchard.flash_attention and the SDPA-compatible wrapper against torch itself:
float64 SDPA as the reference, autograd, gradcheck, torch.compile without graph breaks,
torch's generator for dropout, and the errors."""

from __future__ import annotations

from types import SimpleNamespace

import orchard_flash
import pytest
import torch
import torch.nn.functional as F
from orchard_torch_bridge import attention, flash_attention
from orchard_torch_bridge.attention import _check


@pytest.fixture
def gen(seed) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def qkv(gen, batch, heads, heads_kv, len_q, len_k, dim, dtype=torch.float32):
    shapes = [(batch, heads, len_q, dim), (batch, heads_kv, len_k, dim), (batch, heads_kv, len_k, dim)]
    return [torch.randn(s, generator=gen, dtype=torch.float64).to(dtype).requires_grad_() for s in shapes]


def reference(q, k, v, dout, *, is_causal, scale=None):
    """SDPA in float64 on the same (rounded) inputs: output and gradients."""
    q, k, v = (t.detach().double().requires_grad_() for t in (q, k, v))
    group = q.shape[1] // k.shape[1]
    out = F.scaled_dot_product_attention(
        q, k.repeat_interleave(group, 1), v.repeat_interleave(group, 1), is_causal=is_causal, scale=scale
    )
    out.backward(dout.double())
    return out.detach(), q.grad, k.grad, v.grad


SHAPES = [  # batch, heads, heads_kv, len_q, len_k, dim
    (2, 4, 4, 67, 67, 64),
    (1, 6, 2, 130, 130, 40),  # grouped-query
    (2, 4, 1, 50, 90, 16),  # multi-query, Lq < Lk
    (1, 2, 2, 90, 50, 8),  # Lq > Lk: with is_causal (top-left) every row still sees key 0
]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("is_causal", [False, True])
def test_matches_float64_sdpa(gen, shape, is_causal):
    q, k, v = qkv(gen, *shape)
    dout = torch.randn(q.shape, generator=gen)
    out = flash_attention(q, k, v, is_causal=is_causal)
    out.backward(dout)
    want = reference(q, k, v, dout, is_causal=is_causal)
    assert (out.detach().double() - want[0]).abs().max() < 1e-4
    for got, w in zip((q.grad, k.grad, v.grad), want[1:], strict=True):
        # float32 rounding of sums over up to 130 keys, relative to the gradient's size.
        assert (got.double() - w).abs().max() < 1e-4 * max(1.0, w.abs().max().item())


def test_top_left_causal_differs_from_bottom_right(gen):
    # Lq != Lk is where the alignments differ: the wrapper follows torch (top-left).
    q, k, v = qkv(gen, 1, 2, 2, 20, 50, 8)
    ours = flash_attention(q, k, v, is_causal=True)
    theirs = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert (ours - theirs).abs().max() < 1e-5


def test_scale_and_gqa_flag(gen):
    q, k, v = qkv(gen, 1, 4, 2, 33, 33, 16)
    ours = flash_attention(q, k, v, scale=0.3, enable_gqa=True)
    theirs = F.scaled_dot_product_attention(q, k, v, scale=0.3, enable_gqa=True)
    assert (ours - theirs).abs().max() < 1e-5


@pytest.mark.parametrize("is_causal", [False, True])
def test_gradcheck_float64(gen, is_causal):
    q, k, v = qkv(gen, 1, 4, 2, 9, 7, 8, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a, b, c: flash_attention(a, b, c, is_causal=is_causal), (q, k, v))


def test_gradcheck_float64_with_dropout(gen):
    q, k, v = qkv(gen, 1, 2, 2, 8, 8, 8, dtype=torch.float64)

    def dropped(a, b, c):
        torch.manual_seed(1234)  # the same mask on every call gradcheck makes
        return flash_attention(a, b, c, dropout_p=0.3, is_causal=True)

    assert torch.autograd.gradcheck(dropped, (q, k, v))


def test_dropout_follows_torch_manual_seed(gen):
    q, k, v = qkv(gen, 2, 2, 2, 40, 40, 16)
    torch.manual_seed(5)
    first = flash_attention(q, k, v, dropout_p=0.2)
    torch.manual_seed(5)
    again = flash_attention(q, k, v, dropout_p=0.2)
    other = flash_attention(q, k, v, dropout_p=0.2)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    assert not torch.equal(first, flash_attention(q, k, v))


def test_lse_output_is_differentiable(gen):
    q, k, v = qkv(gen, 1, 2, 2, 6, 9, 8, dtype=torch.float64)
    seed = torch.zeros((), dtype=torch.int64)

    def lse_only(a, b, c):
        return torch.ops.orchard.flash_attention(a, b, c, 0.0, True, 0.5, seed)[1]

    assert torch.autograd.gradcheck(lse_only, (q, k, v))


def test_opcheck_both_ops(gen):
    q, k, v = (t.detach() for t in qkv(gen, 1, 4, 2, 19, 23, 16))
    seed = torch.tensor(77, dtype=torch.int64)
    torch.library.opcheck(torch.ops.orchard.flash_attention.default, (q, k, v, 0.1, True, 0.25, seed))
    out, lse = torch.ops.orchard.flash_attention(q, k, v, 0.1, True, 0.25, seed)
    dout = torch.randn(q.shape, generator=gen)
    args = (dout, None, q, k, v, out, lse, 0.1, True, 0.25, seed)
    torch.library.opcheck(torch.ops.orchard.flash_attention_backward.default, args)


def test_eager_calls_skip_the_dispatcher_and_modes_see_the_op(gen, monkeypatch):
    # Eager calls run the op's own functions through a plain autograd.Function (less host time
    # per call), with the op's results (test_torch_compile_fullgraph_matches_eager); under a
    # dispatch mode (FlopCounterMode, recorders) the op itself runs, forward and backward.
    from torch.utils._python_dispatch import TorchDispatchMode

    q, k, v = qkv(gen, 1, 2, 2, 11, 11, 8)
    dout = torch.randn(q.shape, generator=gen)

    class Record(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            seen.append(str(func))
            return func(*args, **(kwargs or {}))

    seen: list[str] = []
    with Record():
        flash_attention(q, k, v, is_causal=True).backward(dout)
    assert "orchard.flash_attention.default" in seen
    assert "orchard.flash_attention_backward.default" in seen
    through_op = [t.grad.clone() for t in (q, k, v)]

    def refuse(*args, **kwargs):
        raise AssertionError("the eager path called the custom op")

    monkeypatch.setattr(attention, "_forward", refuse)
    for t in (q, k, v):
        t.grad = None
    flash_attention(q, k, v, is_causal=True).backward(dout)
    for got, want in zip((q.grad, k.grad, v.grad), through_op, strict=True):
        assert torch.equal(got, want)


def test_torch_compile_fullgraph_matches_eager(gen):
    q, k, v = qkv(gen, 2, 4, 2, 37, 37, 16)
    dout = torch.randn(q.shape, generator=gen)

    def step(a, b, c):
        return flash_attention(a, b, c, is_causal=True, dropout_p=0.1) * 2.0

    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    results = []
    for fn in (step, compiled):
        for t in (q, k, v):
            t.grad = None
        torch.manual_seed(3)
        out = fn(q, k, v)
        out.backward(dout)
        results.append([out.detach(), *(t.grad.clone() for t in (q, k, v))])
    for eager, traced in zip(*results, strict=True):
        assert torch.equal(eager, traced)


def test_errors_surface_under_torch_compile(gen):
    q, k, v = (t.detach() for t in qkv(gen, 1, 2, 2, 8, 8, 12))
    compiled = torch.compile(lambda a, b, c: flash_attention(a, b, c), fullgraph=True, backend="aot_eager")
    with pytest.raises(Exception, match="head dim 12 must be a positive multiple of 8"):
        compiled(q, k, v)


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        (lambda q, k, v: (q[..., :12], k[..., :12], v[..., :12]), ValueError, "head dim 12"),
        (lambda q, k, v: (q.int(), k.int(), v.int()), TypeError, r"query is torch.int32; supported"),
        (lambda q, k, v: (q, k.double(), v), TypeError, "dtypes differ"),
        (lambda q, k, v: (q[0], k, v), ValueError, "query must be 4-d"),
        (
            lambda q, k, v: (q, k[:, :3], v[:, :3]),
            ValueError,
            "query's 4 heads are not divisible by key/value's 3",
        ),
        (lambda q, k, v: (q, k[..., :8], v), ValueError, "head dims differ"),
    ],
)
def test_bad_inputs_raise(gen, change, error, message):
    q, k, v = (t.detach() for t in qkv(gen, 1, 4, 4, 5, 5, 16))
    with pytest.raises(error, match=message):
        flash_attention(*change(q, k, v))


def test_bad_arguments_raise(gen):
    q, k, v = (t.detach() for t in qkv(gen, 1, 2, 2, 5, 5, 16))
    for p in (1.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match="dropout_p must be in"):
            flash_attention(q, k, v, dropout_p=p)
    with pytest.raises(ValueError, match="attn_mask is not supported"):
        flash_attention(q, k, v, attn_mask=torch.ones(5, 5, dtype=torch.bool))


@pytest.mark.parametrize("device", ["cuda:0", "xpu"])
def test_unsupported_device_is_named(device, monkeypatch):
    # The check itself, on tensors that say they live elsewhere, with a build that has no kernels
    # there (CUDA builds are tested on the GPU in test_cuda_op.py, mps in test_mps.py).
    monkeypatch.setattr(attention, "_CUDA_INDICES", ())
    where = torch.device(device)
    fake = SimpleNamespace(dim=lambda: 4, dtype=torch.float32, device=where, shape=(1, 2, 3, 8))
    message = f"tensors on {device} are not supported; orchard-flash has no kernels for {device} in this"
    with pytest.raises(ValueError, match=message):
        _check(fake, fake, fake, 0.0)


# What a CUDA build of orchard-flash answers for "cuda" (the test below checks this build's).
CUDA_DTYPES = (torch.bfloat16, torch.float16, torch.float32, torch.float64)


def test_dtype_table_is_orchard_flashs_answer():
    # The table _check uses is the capability query's answer, asked once at import; torch's
    # "mps" asks for orchard's "metal".
    for torch_type, orchard_type in (("cpu", "cpu"), ("cuda", "cuda"), ("mps", "metal")):
        names = orchard_flash.supported_dtypes(orchard_type)
        assert attention._DTYPES[torch_type] == tuple(getattr(torch, name) for name in names)
    assert attention._DTYPES["cpu"] == (torch.bfloat16, torch.float16, torch.float32, torch.float64)
    assert attention._DTYPES["cuda"] in ((), CUDA_DTYPES)  # a CUDA build has every one
    every = {*attention._DTYPES["cpu"], *attention._DTYPES["cuda"], *attention._DTYPES["mps"]}
    assert set(attention._DTYPES["meta"]) == every
    assert [d.itemsize for d in attention._DTYPES["meta"]] == sorted(d.itemsize for d in every)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_fake_kernels_on_cuda_tensors(monkeypatch, dtype):
    # What torch.compile sees of CUDA inputs, without a GPU: fake CUDA tensors through both ops'
    # fake kernels, as if this build had kernels for cuda:0.
    from torch._subclasses.fake_tensor import FakeTensorMode

    monkeypatch.setattr(attention, "_CUDA_INDICES", (0,))
    monkeypatch.setitem(attention._DTYPES, "cuda", CUDA_DTYPES)
    seed = torch.zeros((), dtype=torch.int64)
    with FakeTensorMode(allow_non_fake_inputs=True):
        q = torch.empty(2, 4, 16, 32, device="cuda", dtype=dtype)
        kv = torch.empty(2, 2, 24, 32, device="cuda", dtype=dtype)
        out, lse = torch.ops.orchard.flash_attention(q, kv, kv, 0.1, True, 0.5, seed)
        grads = torch.ops.orchard.flash_attention_backward(
            out, lse, q, kv, kv, out, lse, 0.1, True, 0.5, seed
        )
    assert (out.device, out.dtype, out.shape) == (q.device, dtype, q.shape)
    assert (lse.device, lse.dtype, lse.shape) == (q.device, torch.float32, q.shape[:3])
    for got, like in zip(grads, (q, kv, kv), strict=True):
        assert (got.device, got.dtype, got.shape) == (like.device, dtype, like.shape)
