"""The orchard ops on CUDA tensors: orchard-flash's CUDA kernels through the bridge.

Skipped unless torch sees a GPU and orchard-flash was built with CUDA kernels for it
(``"cuda:0" in orchard_flash.available_devices()``). Against float64 SDPA as the reference, with
torch's own CUDA SDPA in the same dtype as the yardstick for rounding error; gradcheck in float64;
dropout's mask the same as on the CPU; torch's current stream; opcheck; torch.compile
(fullgraph) equal to eager; the GPT-2 switch on a CUDA model.
"""

from __future__ import annotations

import math

import orchard_flash
import pytest
import torch
import torch.nn.functional as F
from orchard_torch_bridge import attention as bridge_attention
from orchard_torch_bridge import flash_attention


def _has_cuda_kernels() -> bool:
    return torch.cuda.is_available() and "cuda:0" in orchard_flash.available_devices()


pytestmark = pytest.mark.skipif(
    not _has_cuda_kernels(), reason='needs a GPU and orchard-flash built with CUDA ("cuda:0" available)'
)

DEVICE = torch.device("cuda:0")


@pytest.fixture
def gen(seed) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def qkv(gen, batch, heads, heads_kv, len_q, len_k, dim, dtype=torch.float32):
    """Leaf tensors on the GPU, drawn on the CPU (so a seed gives the same values everywhere)."""
    shapes = [(batch, heads, len_q, dim), (batch, heads_kv, len_k, dim), (batch, heads_kv, len_k, dim)]
    return [
        torch.randn(s, generator=gen, dtype=torch.float64).to(DEVICE, dtype).requires_grad_() for s in shapes
    ]


def sdpa(q, k, v, dout, *, is_causal, dtype):
    """torch's SDPA on the same (rounded) inputs, computed in ``dtype``: output and gradients."""
    q, k, v = (t.detach().to(dtype).requires_grad_() for t in (q, k, v))
    group = q.shape[1] // k.shape[1]
    out = F.scaled_dot_product_attention(
        q, k.repeat_interleave(group, 1), v.repeat_interleave(group, 1), is_causal=is_causal
    )
    out.backward(dout.to(dtype))
    return [t.detach().double() for t in (out, q.grad, k.grad, v.grad)]


SHAPES = [  # batch, heads, heads_kv, len_q, len_k, dim
    (2, 4, 4, 200, 200, 64),
    (1, 8, 2, 301, 301, 128),  # grouped-query, lengths not a multiple of any block
    (2, 4, 1, 70, 257, 32),  # multi-query, Lq < Lk
    (1, 2, 2, 130, 50, 8),  # Lq > Lk: with is_causal (top-left) every row still sees key 0
    (1, 2, 2, 64, 64, 256),
]
# Error allowed on top of 3x torch's own (relative to the largest reference value): bfloat16 and
# float16 round P to 16 bits before P V in flash kernels; float32 must stay float32 (no TF32).
FLOOR = {torch.bfloat16: 8e-3, torch.float16: 1e-3, torch.float32: 1e-5}


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32], ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("is_causal", [False, True])
def test_matches_float64_sdpa(gen, dtype, shape, is_causal):
    q, k, v = qkv(gen, *shape, dtype=dtype)
    dout = torch.randn(q.shape, generator=gen).to(DEVICE, dtype)
    out = flash_attention(q, k, v, is_causal=is_causal)
    assert out.device == DEVICE and out.dtype == dtype and out.shape == q.shape
    out.backward(dout)
    want = sdpa(q, k, v, dout, is_causal=is_causal, dtype=torch.float64)
    theirs = sdpa(q, k, v, dout, is_causal=is_causal, dtype=dtype)
    names = ("out", "dq", "dk", "dv")
    for name, got, w, t in zip(names, (out.detach(), q.grad, k.grad, v.grad), want, theirs, strict=True):
        assert got.dtype == dtype and got.shape == w.shape, name
        size = max(1.0, w.abs().max().item())
        ours_err = (got.double() - w).abs().max().item()
        torch_err = (t - w).abs().max().item()
        assert math.isfinite(ours_err), name
        assert ours_err <= 3 * torch_err + FLOOR[dtype] * size, (name, ours_err, torch_err)


@pytest.mark.parametrize("is_causal", [False, True])
def test_gradcheck_float64(gen, is_causal):
    q, k, v = qkv(gen, 1, 4, 2, 9, 7, 8, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a, b, c: flash_attention(a, b, c, is_causal=is_causal), (q, k, v))


def test_gradcheck_float64_with_dropout_and_lse(gen):
    q, k, v = qkv(gen, 1, 2, 2, 8, 11, 8, dtype=torch.float64)
    seed = torch.tensor(1234, dtype=torch.int64)

    def both(a, b, c):
        return torch.ops.orchard.flash_attention(a, b, c, 0.3, True, 0.4, seed)

    assert torch.autograd.gradcheck(both, (q, k, v))


def test_same_results_as_the_cpu_kernels(gen):
    # Same seed, same dropout mask (Philox on the coordinates): float64 results agree across devices.
    q, k, v = qkv(gen, 2, 4, 2, 45, 77, 16, dtype=torch.float64)
    dout = torch.randn(q.shape, generator=gen, dtype=torch.float64)
    seed = torch.tensor(987654321, dtype=torch.int64)
    results = []
    for device in ("cpu", DEVICE):
        a, b, c = (t.detach().to(device).requires_grad_() for t in (q, k, v))
        out, lse = torch.ops.orchard.flash_attention(a, b, c, 0.25, True, 0.3, seed)
        out.backward(dout.to(device))
        results.append([x.detach().cpu() for x in (out, lse, a.grad, b.grad, c.grad)])
    for name, on_cpu, on_gpu in zip(("out", "lse", "dq", "dk", "dv"), *results, strict=True):
        torch.testing.assert_close(on_gpu, on_cpu, rtol=1e-9, atol=1e-9, msg=name)


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


def test_runs_on_torchs_current_stream(gen):
    q, k, v = (t.detach() for t in qkv(gen, 4, 8, 8, 1024, 1024, 64, dtype=torch.bfloat16))
    expected = flash_attention(q, k, v, is_causal=True)
    side = torch.cuda.Stream(DEVICE)
    side.wait_stream(torch.cuda.current_stream(DEVICE))
    with torch.cuda.stream(side):
        # Inputs written on the side stream after a busy wait: a kernel queued on any other
        # stream (torch's streams do not wait for each other) would read them unwritten.
        torch.cuda._sleep(100_000_000)
        a, b, c = (t * 1.0 for t in (q, k, v))
        got = flash_attention(a, b, c, is_causal=True)
        done = got.clone()
    torch.cuda.current_stream(DEVICE).wait_stream(side)
    torch.testing.assert_close(done, expected, rtol=1e-2, atol=1e-2)  # a race is far off, not close


def test_opcheck_both_ops(gen):
    q, k, v = (t.detach() for t in qkv(gen, 1, 4, 2, 19, 23, 16))
    seed = torch.tensor(77, dtype=torch.int64)
    torch.library.opcheck(torch.ops.orchard.flash_attention.default, (q, k, v, 0.1, True, 0.25, seed))
    out, lse = torch.ops.orchard.flash_attention(q, k, v, 0.1, True, 0.25, seed)
    dout = torch.randn(q.shape, generator=gen).to(DEVICE)
    args = (dout, None, q, k, v, out, lse, 0.1, True, 0.25, seed)
    torch.library.opcheck(torch.ops.orchard.flash_attention_backward.default, args)
    args = (dout, torch.randn(lse.shape, generator=gen).to(DEVICE), *args[2:])
    torch.library.opcheck(torch.ops.orchard.flash_attention_backward.default, args)


def _eager_and_compiled(fn, compiled, inputs, dout):
    results = []
    for f in (fn, compiled):
        for t in inputs:
            t.grad = None
        torch.manual_seed(3)
        out = f(*inputs)
        out.backward(dout)
        results.append([out.detach(), *(t.grad.clone() for t in inputs)])
    return results


@pytest.fixture
def deterministic_algorithms():
    """torch.use_deterministic_algorithms(True) for one test: the bridge's backward follows it."""
    previous = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    yield
    torch.use_deterministic_algorithms(previous, warn_only=warn_only)


def _gradients(q, k, v, dout):
    for t in (q, k, v):
        t.grad = None
    flash_attention(q, k, v, is_causal=True).backward(dout)
    return [t.grad.clone() for t in (q, k, v)]


def test_backward_follows_torchs_deterministic_switch(gen, deterministic_algorithms):
    q, k, v = qkv(gen, 2, 8, 2, 333, 333, 64, dtype=torch.bfloat16)
    dout = torch.randn(q.shape, generator=gen).to(DEVICE, torch.bfloat16)
    first, again = _gradients(q, k, v, dout), _gradients(q, k, v, dout)
    for a, b in zip(first, again, strict=True):
        assert torch.equal(a, b)
    torch.use_deterministic_algorithms(False)
    # The default (atomic dq on Hopper) agrees to bf16 rounding: float32 sums in another order.
    for name, fast, exact in zip(("dq", "dk", "dv"), _gradients(q, k, v, dout), first, strict=True):
        torch.testing.assert_close(fast, exact, rtol=2e-2, atol=2e-2, msg=name)


def test_torch_compile_fullgraph_matches_eager(gen, deterministic_algorithms):
    q, k, v = qkv(gen, 2, 4, 2, 37, 37, 16, dtype=torch.bfloat16)
    dout = torch.randn(q.shape, generator=gen).to(DEVICE, torch.bfloat16)

    def step(a, b, c):
        return flash_attention(a, b, c, is_causal=True, dropout_p=0.1) * 2.0

    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    for eager, traced in zip(*_eager_and_compiled(step, compiled, (q, k, v), dout), strict=True):
        assert torch.equal(eager, traced)


def test_torch_compile_inductor_matches_eager(gen):
    # Inductor draws torch.randint with its own generator, so no dropout here; its code around the
    # op (the scaling, the backward's sums) may round differently from eager.
    q, k, v = qkv(gen, 2, 4, 2, 65, 65, 32)
    dout = torch.randn(q.shape, generator=gen).to(DEVICE)

    def step(a, b, c):
        return flash_attention(a * 0.5, b, c, is_causal=True) * 2.0

    compiled = torch.compile(step, fullgraph=True)
    for eager, traced in zip(*_eager_and_compiled(step, compiled, (q, k, v), dout), strict=True):
        torch.testing.assert_close(traced, eager, rtol=1e-5, atol=1e-5)


def test_errors_surface_under_torch_compile(gen):
    q, k, v = (t.detach() for t in qkv(gen, 1, 2, 2, 8, 8, 12))
    compiled = torch.compile(lambda a, b, c: flash_attention(a, b, c), fullgraph=True, backend="aot_eager")
    with pytest.raises(Exception, match="head dim 12 must be a positive multiple of 8"):
        compiled(q, k, v)


def test_mixed_devices_raise(gen):
    q, k, v = (t.detach() for t in qkv(gen, 1, 2, 2, 8, 8, 16))
    with pytest.raises(ValueError, match="devices differ"):
        flash_attention(q, k.cpu(), v)


# --- the GPT-2 switch on a CUDA model ---------------------------------------------------------------

VOCAB = 97


@pytest.fixture
def gpt2_switch(monkeypatch):
    """The bridge's GPT-2 module with the switch off before and after; yields the kernel calls."""
    pytest.importorskip("transformers")
    import orchard_torch_bridge as bridge
    from orchard_torch_bridge import gpt2

    calls = []
    real = bridge_attention.flash_attention

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(bridge_attention, "flash_attention", spy)
    bridge.disable()
    gpt2._warned.clear()
    yield bridge, calls
    bridge.disable()
    gpt2._warned.clear()


def _logits_and_grads(model, ids):
    model.zero_grad(set_to_none=True)
    result = model(ids, labels=ids)
    result.loss.backward()
    return result.logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


def test_gpt2_switch_parity(seed, gpt2_switch):
    from transformers import GPT2Config, GPT2LMHeadModel

    bridge, calls = gpt2_switch
    config = GPT2Config(
        vocab_size=VOCAB,
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
    model = GPT2LMHeadModel(config).to(DEVICE).train()
    ids = torch.randint(0, VOCAB, (3, 100), generator=torch.Generator().manual_seed(seed + 1)).to(DEVICE)
    stock_logits, stock_grads = _logits_and_grads(model, ids)
    bridge.enable()
    logits, grads = _logits_and_grads(model, ids)
    assert len(calls) == 2  # one per layer: nothing fell back to stock sdpa
    torch.testing.assert_close(logits, stock_logits, rtol=0, atol=1e-4)
    assert grads.keys() == stock_grads.keys()
    for name, grad in grads.items():
        torch.testing.assert_close(grad, stock_grads[name], rtol=0, atol=1e-4, msg=name)
