"""The orchard ops on torch's mps tensors: orchard-flash's Metal kernels through the bridge.

The host-side half runs everywhere: mps maps to orchard's "metal" device, unsupported builds and
dtypes are refused naming it, fake mps tensors (what torch.compile sees) pass both ops' fake
kernels, the GPT-2 switch routes mps attention to the op, and the eager kernels allocate their
outputs, wait for torch, run orchard-flash and wait for orchard, in that order (with the waits and
orchard-flash replaced by recorders). The other half runs the ops on an Apple GPU and is skipped
without one: none of it has run yet (docs/bridge.md, "Apple GPUs (MPS)").
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import orchard_core
import orchard_flash
import pytest
import torch
import torch.nn.functional as F
from orchard_torch_bridge import attention, flash_attention, from_torch, to_torch
from orchard_torch_bridge.attention import _check

MPS = torch.device("mps")


def fake(device: torch.device, dtype: torch.dtype = torch.float32) -> SimpleNamespace:
    """What _check reads of a tensor, claiming to live on ``device``."""
    return SimpleNamespace(dim=lambda: 4, dtype=dtype, device=device, shape=(1, 2, 3, 8))


@pytest.fixture
def metal_kernels(monkeypatch):
    """A build whose orchard-flash has Metal kernels (float16 and float32, say), as _check sees it."""
    monkeypatch.setattr(attention, "_DEVICES", ("cpu", "metal"))
    monkeypatch.setitem(attention._DTYPES, "mps", (torch.float16, torch.float32))


# --- host-side: runs without an Apple GPU -----------------------------------------------------------


@pytest.mark.parametrize("spec", ["mps", "mps:0"])
def test_mps_runs_where_orchard_flash_has_metal_kernels(spec, monkeypatch):
    monkeypatch.setattr(attention, "_DEVICES", ("cpu", "metal"))
    assert attention._device_supported(torch.device(spec))
    monkeypatch.setattr(attention, "_DEVICES", ("cpu", "cuda:0"))
    assert not attention._device_supported(torch.device(spec))


def test_mps_without_metal_kernels_is_refused_naming_them(monkeypatch):
    monkeypatch.setattr(attention, "_DEVICES", ("cpu",))
    message = (
        r"tensors on mps are not supported; orchard-flash has no Metal kernels \(mps tensors run on "
        r"orchard's metal device\) in this build \(it has: cpu\)"
    )
    with pytest.raises(ValueError, match=message):
        _check(fake(MPS), fake(MPS), fake(MPS), 0.0)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float64])
def test_mps_dtypes_are_those_of_the_metal_kernels(metal_kernels, dtype):
    _check(fake(MPS, torch.float16), fake(MPS, torch.float16), fake(MPS, torch.float16), 0.0)
    with pytest.raises(TypeError, match=f"query is {dtype}; supported on mps: float16, float32"):
        _check(fake(MPS, dtype), fake(MPS, dtype), fake(MPS, dtype), 0.0)


def test_mps_and_cpu_tensors_do_not_mix(metal_kernels):
    with pytest.raises(ValueError, match="devices differ: mps, cpu, mps"):
        _check(fake(MPS), fake(torch.device("cpu")), fake(MPS), 0.0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32])
def test_fake_kernels_on_mps_tensors(metal_kernels, dtype):
    # What torch.compile sees of mps inputs, without an Apple GPU: fake mps tensors through both
    # ops' fake kernels.
    from torch._subclasses.fake_tensor import FakeTensorMode

    seed = torch.zeros((), dtype=torch.int64)
    with FakeTensorMode(allow_non_fake_inputs=True):
        q = torch.empty(2, 4, 16, 32, device=MPS, dtype=dtype)
        kv = torch.empty(2, 2, 24, 32, device=MPS, dtype=dtype)
        out, lse = torch.ops.orchard.flash_attention(q, kv, kv, 0.1, True, 0.5, seed)
        grads = torch.ops.orchard.flash_attention_backward(
            out, lse, q, kv, kv, out, lse, 0.1, True, 0.5, seed
        )
    assert (out.device.type, out.dtype, out.shape) == ("mps", dtype, q.shape)
    assert (lse.device.type, lse.dtype, lse.shape) == ("mps", torch.float32, q.shape[:3])
    for got, like in zip(grads, (q, kv, kv), strict=True):
        assert (got.device.type, got.dtype, got.shape) == ("mps", dtype, like.shape)


@pytest.fixture
def recorded(monkeypatch) -> list[str]:
    """torch's and orchard's waits, recorded instead of made."""
    events: list[str] = []
    monkeypatch.setattr(torch.mps, "synchronize", lambda: events.append("torch waits"))
    monkeypatch.setattr(
        orchard_core, "synchronize", lambda device: events.append(f"orchard waits ({device})")
    )
    return events


@pytest.mark.parametrize("spec", ["cpu", "cuda:0", "meta"])
def test_only_mps_waits(recorded, spec):
    # CPU kernels are done when they return and CUDA kernels queue on torch's stream: no wait.
    attention._synchronized(torch.device(spec), recorded.append, "kernels")
    assert recorded == ["kernels"]


def test_mps_waits_for_torch_before_and_for_orchard_after(recorded):
    attention._synchronized(MPS, recorded.append, "kernels")
    assert recorded == ["torch waits", "kernels", "orchard waits (metal)"]


def test_mps_waits_for_orchard_when_the_kernels_raise(recorded):
    # Work queued before the error may still use torch's memory, which torch frees on the way out.
    def kernels(event: str) -> None:
        recorded.append(event)
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        attention._synchronized(MPS, kernels, "kernels")
    assert recorded == ["torch waits", "kernels", "orchard waits (metal)"]


def test_eager_kernels_allocate_then_wait_run_and_wait(metal_kernels, recorded, monkeypatch):
    # The ops' eager bodies on fake mps tensors: torch allocates the outputs before the wait for
    # torch (so that wait covers the memory's earlier use too), orchard-flash fills exactly those
    # outputs, and the wait for orchard comes before torch can read them.
    from torch._subclasses.fake_tensor import FakeTensorMode

    filled = {}

    # Stand-ins for orchard-flash's binding, with its positional signature.
    def forward(q, k, v, causal, scale, alignment, dropout_p, seed, out, lse, stream):
        recorded.append("orchard-flash forward")
        filled.update(out=out, lse=lse, stream=stream)

    def backward(
        dout,
        q,
        k,
        v,
        out,
        lse,
        causal,
        scale,
        alignment,
        dropout_p,
        seed,
        dlse,
        dq,
        dk,
        dv,
        deterministic,
        stream,
    ):
        recorded.append("orchard-flash backward")
        filled.update(dq=dq, dk=dk, dv=dv)

    monkeypatch.setattr(attention, "_kernels", SimpleNamespace(_forward=forward, _backward=backward))
    # Fake tensors have no memory to share: the stand-ins above get the torch tensors themselves.
    monkeypatch.setattr(attention, "_orchard", lambda t: t)
    with FakeTensorMode():
        q, k, v = (torch.empty(1, 2, 8, 16, device=MPS) for _ in range(3))
        seed = torch.tensor(5)  # a constant, which int() reads under FakeTensorMode
        inside = []  # fake tensors' empty_like calls torch.empty: one record per outer call

        for name in ("empty", "empty_like"):
            allocate = getattr(torch, name)

            def recording(*args, allocate=allocate, **kwargs):
                if not inside:
                    recorded.append("torch allocates")
                inside.append(True)
                try:
                    return allocate(*args, **kwargs)
                finally:
                    inside.pop()

            monkeypatch.setattr(torch, name, recording)
        out, lse = attention._flash_forward(q, k, v, 0.0, False, 0.25, seed)
        assert recorded == [
            *["torch allocates"] * 2,
            "torch waits",
            "orchard-flash forward",
            "orchard waits (metal)",
        ]
        assert filled["out"] is out and filled["lse"] is lse
        assert filled["stream"] == 0  # no CUDA stream: Metal work goes on orchard's own queue
        recorded.clear()
        grads = attention._flash_backward(out, None, q, k, v, out, lse, 0.0, False, 0.25, seed)
        assert recorded == [
            *["torch allocates"] * 3,
            "torch waits",
            "orchard-flash backward",
            "orchard waits (metal)",
        ]
        assert all(filled[name] is grad for name, grad in zip(("dq", "dk", "dv"), grads, strict=True))


def test_gpt2_switch_routes_mps_attention_to_the_op(metal_kernels, monkeypatch):
    # The switch's own decision: the op where the kernels can run, stock sdpa (with the reason)
    # where they cannot.
    pytest.importorskip("transformers")
    from orchard_torch_bridge import gpt2

    assert gpt2._unsupported(fake(MPS), fake(MPS), fake(MPS), None, 0.1, {}) == ""
    reason = gpt2._unsupported(*[fake(MPS, torch.bfloat16)] * 3, None, 0.1, {})
    assert "query is torch.bfloat16; supported on mps: float16, float32" in reason
    monkeypatch.setattr(attention, "_DEVICES", ("cpu",))
    assert "orchard-flash has no Metal kernels" in gpt2._unsupported(*[fake(MPS)] * 3, None, 0.1, {})


# --- on an Apple GPU: skipped elsewhere -------------------------------------------------------------


def _skip_reason() -> str:
    if not torch.backends.mps.is_available():
        return "needs an Apple GPU: torch.backends.mps.is_available() is False"
    if "metal" not in orchard_flash.available_devices():
        return 'needs orchard-flash\'s Metal kernels ("metal" in orchard_flash.available_devices())'
    return ""


_SKIP_REASON = _skip_reason()
on_apple_gpu = pytest.mark.skipif(bool(_SKIP_REASON), reason=_SKIP_REASON)


@pytest.fixture
def gen(seed) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def qkv(gen, batch, heads, heads_kv, len_q, len_k, dim, dtype=torch.float32):
    """Leaf tensors on the GPU, drawn on the CPU (so a seed gives the same values everywhere)."""
    shapes = [(batch, heads, len_q, dim), (batch, heads_kv, len_k, dim), (batch, heads_kv, len_k, dim)]
    return [
        torch.randn(s, generator=gen, dtype=torch.float64).to(MPS, dtype).requires_grad_() for s in shapes
    ]


def sdpa(q, k, v, dout, *, is_causal, dtype, device):
    """torch's SDPA on the same (rounded) inputs in ``dtype`` on ``device``: output and gradients."""
    q, k, v = (t.detach().to(device, dtype).requires_grad_() for t in (q, k, v))
    group = q.shape[1] // k.shape[1]
    out = F.scaled_dot_product_attention(
        q, k.repeat_interleave(group, 1), v.repeat_interleave(group, 1), is_causal=is_causal
    )
    out.backward(dout.to(device, dtype))
    return [t.detach().cpu().double() for t in (out, q.grad, k.grad, v.grad)]


SHAPES = [  # batch, heads, heads_kv, len_q, len_k, dim
    (2, 4, 4, 200, 200, 64),
    (1, 8, 2, 301, 301, 128),  # grouped-query, lengths not a multiple of any block
    (2, 4, 1, 70, 257, 32),  # multi-query, Lq < Lk
    (1, 2, 2, 130, 50, 8),  # Lq > Lk: with is_causal (top-left) every row still sees key 0
]
# Error allowed on top of 3x torch's own MPS SDPA (relative to the largest reference value), as
# for CUDA: bfloat16 and float16 round P to 16 bits before P V.
FLOOR = {torch.bfloat16: 8e-3, torch.float16: 1e-3, torch.float32: 1e-5}


@on_apple_gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32], ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("is_causal", [False, True])
def test_matches_float64_sdpa(gen, dtype, shape, is_causal):
    if dtype not in attention._DTYPES["mps"]:
        pytest.skip(f"orchard-flash's Metal kernels do not take {dtype}")
    q, k, v = qkv(gen, *shape, dtype=dtype)
    dout = torch.randn(q.shape, generator=gen).to(MPS, dtype)
    out = flash_attention(q, k, v, is_causal=is_causal)
    assert out.device.type == "mps" and out.dtype == dtype and out.shape == q.shape
    out.backward(dout)
    want = sdpa(q, k, v, dout, is_causal=is_causal, dtype=torch.float64, device="cpu")
    theirs = sdpa(q, k, v, dout, is_causal=is_causal, dtype=dtype, device=MPS)
    ours = (out.detach(), q.grad, k.grad, v.grad)
    for name, got, w, t in zip(("out", "dq", "dk", "dv"), ours, want, theirs, strict=True):
        assert got.dtype == dtype and got.shape == w.shape, name
        size = max(1.0, w.abs().max().item())
        ours_err = (got.cpu().double() - w).abs().max().item()
        torch_err = (t - w).abs().max().item()
        assert math.isfinite(ours_err), name
        assert ours_err <= 3 * torch_err + FLOOR[dtype] * size, (name, ours_err, torch_err)


@on_apple_gpu
def test_views_with_storage_offsets(gen):
    # Views that start inside their MTLBuffer: DLPack's byte_offset, bound as the buffer's offset.
    base = torch.randn(2, 4, 48, 32, generator=gen)
    on_mps = base.to(MPS)
    starts = (1, 3, 8)
    got = flash_attention(*(on_mps[:, :, start : start + 40] for start in starts))
    want = flash_attention(*(base[:, :, start : start + 40] for start in starts))  # the CPU kernels
    torch.testing.assert_close(got.cpu(), want, rtol=1e-5, atol=1e-5)


@on_apple_gpu
def test_same_dropout_as_the_cpu_kernels(gen):
    # The mask depends on the seed and the coordinates alone; float32 on both (Metal has no float64).
    q, k, v = qkv(gen, 2, 4, 2, 45, 77, 16)
    dout = torch.randn(q.shape, generator=gen)
    seed = torch.tensor(987654321, dtype=torch.int64)
    results = []
    for device in ("cpu", MPS):
        a, b, c = (t.detach().to(device).requires_grad_() for t in (q, k, v))
        out, lse = torch.ops.orchard.flash_attention(a, b, c, 0.25, True, 0.3, seed)
        out.backward(dout.to(device))
        results.append([x.detach().cpu() for x in (out, lse, a.grad, b.grad, c.grad)])
    for name, on_cpu, on_mps in zip(("out", "lse", "dq", "dk", "dv"), *results, strict=True):
        torch.testing.assert_close(on_mps, on_cpu, rtol=1e-4, atol=1e-5, msg=name)


@on_apple_gpu
def test_ordered_with_torchs_work_around_it(gen):
    # Inputs written by torch kernels just queued, the output read by a torch kernel queued right
    # after, no synchronize in the test: without the bridge's waits the kernels would race them.
    q, k, v = (t.detach() for t in qkv(gen, 4, 8, 8, 1024, 1024, 64))
    expected = flash_attention(q, k, v, is_causal=True).cpu()
    a, b, c = (t * 1.0 for t in (q, k, v))
    got = flash_attention(a, b, c, is_causal=True) + 0.0
    torch.testing.assert_close(got.cpu(), expected, rtol=1e-2, atol=1e-2)  # a race is far off


@on_apple_gpu
def test_conversions_share_the_mtlbuffer():
    base = torch.arange(24, dtype=torch.float32, device=MPS).reshape(4, 6)
    view = base[1:, 2:]
    ours = from_torch(view)
    assert (ours.device, ours.shape, ours.stride()) == ("metal", (3, 4), view.stride())
    back = to_torch(ours)
    assert back.device.type == "mps"
    assert back.untyped_storage().data_ptr() == base.untyped_storage().data_ptr()  # the MTLBuffer
    assert back.storage_offset() == view.storage_offset()
    torch.mps.synchronize()  # torch's arange is done before orchard writes
    ours.fill_(-1.0)
    orchard_core.synchronize("metal")  # orchard's fill is done before torch reads
    assert (base[1:, 2:] == -1).all() and (base[0] == torch.arange(6, device=MPS)).all()


@on_apple_gpu
def test_opcheck_both_ops(gen):
    q, k, v = (t.detach() for t in qkv(gen, 1, 4, 2, 19, 23, 16))
    seed = torch.tensor(77, dtype=torch.int64)
    torch.library.opcheck(torch.ops.orchard.flash_attention.default, (q, k, v, 0.1, True, 0.25, seed))
    out, lse = torch.ops.orchard.flash_attention(q, k, v, 0.1, True, 0.25, seed)
    dout = torch.randn(q.shape, generator=gen).to(MPS)
    args = (dout, None, q, k, v, out, lse, 0.1, True, 0.25, seed)
    torch.library.opcheck(torch.ops.orchard.flash_attention_backward.default, args)


@on_apple_gpu
def test_torch_compile_fullgraph_matches_eager(gen):
    q, k, v = qkv(gen, 2, 4, 2, 37, 37, 16)
    dout = torch.randn(q.shape, generator=gen).to(MPS)

    def step(a, b, c):
        return flash_attention(a, b, c, is_causal=True, dropout_p=0.1) * 2.0

    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    results = []
    for f in (step, compiled):
        for t in (q, k, v):
            t.grad = None
        torch.manual_seed(3)
        out = f(q, k, v)
        out.backward(dout)
        results.append([out.detach(), *(t.grad.clone() for t in (q, k, v))])
    for eager, traced in zip(*results, strict=True):
        assert torch.equal(eager, traced)


@on_apple_gpu
def test_gpt2_switch_parity(seed, monkeypatch):
    pytest.importorskip("transformers")
    import orchard_torch_bridge as bridge
    from transformers import GPT2Config, GPT2LMHeadModel

    calls = []
    real = attention.flash_attention
    monkeypatch.setattr(attention, "flash_attention", lambda *a, **kw: calls.append(kw) or real(*a, **kw))
    config = GPT2Config(
        vocab_size=97,
        n_positions=128,
        n_embd=128,
        n_layer=2,
        n_head=4,
        attn_pdrop=0.0,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        bos_token_id=0,
        eos_token_id=0,
    )
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(config).to(MPS).train()
    ids = torch.randint(0, 97, (3, 100), generator=torch.Generator().manual_seed(seed + 1)).to(MPS)

    def logits_and_grads():
        model.zero_grad(set_to_none=True)
        result = model(ids, labels=ids)
        result.loss.backward()
        return result.logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}

    bridge.disable()
    stock_logits, stock_grads = logits_and_grads()
    bridge.enable()
    try:
        logits, grads = logits_and_grads()
    finally:
        bridge.disable()
    assert len(calls) == 2  # one per layer: nothing fell back to stock sdpa
    torch.testing.assert_close(logits, stock_logits, rtol=0, atol=1e-4)
    for name, grad in grads.items():
        torch.testing.assert_close(grad, stock_grads[name], rtol=0, atol=1e-4, msg=name)
