"""Max error of orchard-core against torch for every aten op a GPT-2 training step uses.

Each row of ``OP_TABLE`` maps one aten op to what orchard-core has for it: ``native`` (one
orchard-core operator), ``composite`` (a few orchard-core operators together) or
``missing``, and names a measurement. A measurement runs one function written once for
both libraries (``fn(lib, *args)``, the convention of orchard-core's parity tables in
packages/orchard-core/tests/_parity_*.py, whose case functions are reused by name) on
random float32 inputs of GPT-2-like shapes. The orchard inputs are the torch inputs passed
through ``orchard_torch_bridge.from_torch``; outputs come back through ``to_torch``. It
reports the max abs error of the outputs, then of the input gradients for the same random
output gradients (torch autograd vs orchard-core autograd). Backward aten ops
(``tanh_backward``, ...) point at their forward op's measurement and report its gradient error.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orchard_core as oc
import torch
from orchard_torch_bridge import from_torch, to_torch

ROOT = Path(__file__).resolve().parents[3]
CORE_TESTS = ROOT / "packages" / "orchard-core" / "tests"

# GPT-2-like sizes, small enough for a quick run: batch, length, width, heads, vocabulary.
B, T, C, H, V = 2, 128, 256, 4, 1024
D = C // H


def core_cases() -> dict[str, Callable[..., Any]]:
    """The case functions of orchard-core's parity tables, by case name."""
    if str(CORE_TESTS) not in sys.path:
        sys.path.insert(0, str(CORE_TESTS))
    import _parity_elementwise
    import _parity_linalg
    import _parity_reduce
    import _parity_shape

    tables = (_parity_elementwise, _parity_reduce, _parity_shape, _parity_linalg)
    return {case.name: case.fn for table in tables for case in table.CASES}


@dataclass
class Result:
    forward: float | None  # max abs error of the outputs; None: not comparable (random, uninitialised)
    backward: float | None  # max abs error of the input gradients; None: not differentiable
    note: str = ""


def _outputs(result: Any, kind: type) -> list[Any]:
    if isinstance(result, kind):
        return [result]
    return [item for item in result if isinstance(item, kind)]


def compare(fn: Callable[..., Any], *args: Any, grad: bool = True, forward: bool = True) -> Result:
    """``fn(torch, *args)`` against ``fn(orchard_core, *args)``; float tensors get gradients."""
    theirs, ours = [], []
    for arg in args:
        if isinstance(arg, torch.Tensor):
            t = arg.detach().clone()
            o = from_torch(arg.detach().clone())
            if grad and t.is_floating_point():
                t.requires_grad_()
                o.requires_grad_()
            theirs.append(t)
            ours.append(o)
        else:
            theirs.append(arg)
            ours.append(arg)
    want = _outputs(fn(torch, *theirs), torch.Tensor)
    got = _outputs(fn(oc, *ours), oc.Tensor)
    assert len(want) == len(got), f"{len(got)} outputs vs torch's {len(want)}"
    fwd = None
    if forward:
        fwd = 0.0
        for w, g in zip(want, got, strict=True):
            g = to_torch(g.detach())
            assert tuple(g.shape) == tuple(w.shape), f"shape {tuple(g.shape)} vs {tuple(w.shape)}"
            fwd = max(fwd, (g.double() - w.detach().double()).abs().max().item() if w.numel() else 0.0)
    wrt = [i for i, t in enumerate(theirs) if isinstance(t, torch.Tensor) and t.requires_grad]
    roots = [k for k, w in enumerate(want) if w.requires_grad]
    if not wrt or not roots:
        return Result(fwd, None)
    gen = torch.Generator().manual_seed(1)
    seeds = [torch.randn(want[k].shape, generator=gen) for k in roots]
    grads_t = torch.autograd.grad(
        [want[k] for k in roots], [theirs[i] for i in wrt], seeds, allow_unused=True
    )
    grads_o = oc.autograd.grad(
        [got[k] for k in roots],
        [ours[i] for i in wrt],
        [from_torch(s.clone()) for s in seeds],
        allow_unused=True,
    )
    bwd = 0.0
    for g_t, g_o in zip(grads_t, grads_o, strict=True):
        if g_t is None:
            continue
        assert g_o is not None, "orchard-core gave no gradient where torch has one"
        bwd = max(bwd, (to_torch(g_o).double() - g_t.double()).abs().max().item())
    return Result(fwd, bwd)


# --- inputs -------------------------------------------------------------------------------


def randn(*shape: int, scale: float = 1.0) -> torch.Tensor:
    return torch.randn(*shape) * scale


def _addmm(lib, x, w, bias):
    # GPT-2's Conv1D keeps its weight (in, out): addmm in torch, linear of the transposed view here.
    if lib is torch:
        return torch.addmm(bias, x, w)
    return oc.linear(x, w.T, bias)


# The same call in both libraries: orchard_core.nn.functional has torch's names and arguments.
def _layer_norm(lib, x, w, b):
    return lib.nn.functional.layer_norm(x, (x.shape[-1],), w, b, eps=1e-5)


def _cross_entropy(lib, logits, labels):
    # The shifted labels of GPT2LMHeadModel's loss, -100 (ignored) on the last position.
    return lib.nn.functional.cross_entropy(logits, labels, ignore_index=-100)


def _pad_labels(lib, labels):
    # GPT2LMHeadModel's loss pads the labels with ignore_index before shifting them.
    return lib.nn.functional.pad(labels, (0, 1), value=-100)


def _dropout_kept(lib, x):
    # Masks differ (two generators); where both keep an element, both must give x / (1 - p).
    out = oc.dropout(x, 0.1, True) if lib is oc else torch.nn.functional.dropout(x, 0.1, True)
    return out


def _masked_softmax(lib, scores, mask):
    return scores.masked_fill(mask, float("-inf")).softmax(-1)


def _gelu_new(lib, x):
    if lib is oc:
        return oc.gelu(x, "tanh")
    # transformers' NewGELUActivation, as GPT-2 runs it (mul, pow, add, tanh in aten).
    return 0.5 * x * (1.0 + torch.tanh(0.7978845608028654 * (x + 0.044715 * torch.pow(x, 3.0))))


def _adamw_update(lib, p, g, m, v):
    # One AdamW update (step 1) as torch's single-tensor AdamW writes it, in place.
    lr, b1, b2, eps, wd = 1e-3, 0.9, 0.999, 1e-8, 0.01
    p.mul_(1 - lr * wd)
    m.lerp_(g, 1 - b1)
    v.mul_(b2).addcmul_(g, g, value=1 - b2)
    denom = (v.sqrt() / (1 - b2) ** 0.5).add_(eps)
    return p.addcdiv_(m, denom, value=-lr / (1 - b1))


def measurements() -> dict[str, Callable[[], Result]]:
    """Measurement name -> function returning its Result (float32, fixed seed)."""
    case = core_cases()
    torch.manual_seed(0)
    x = randn(B, T, C)
    x2 = randn(B * T, C)
    w = randn(C, 3 * C, scale=0.05)
    bias = randn(3 * C, scale=0.1)
    q, k = randn(B, H, T, D), randn(B, H, T, D)
    causal = torch.ones(T, T, dtype=torch.bool).triu(1)
    ids = torch.randint(0, V, (B, T))
    labels = torch.randint(0, V, (B * T,))
    labels[::T] = -100
    positive = torch.rand(B * T, C) + 0.1

    def no_grad_compare(fn, *args):
        return compare(fn, *args, grad=False)

    def dropout() -> Result:
        t = x.detach().clone()
        o = to_torch(oc.dropout(from_torch(x.detach().clone()), 0.1, True))
        kept = o != 0
        err = (o[kept] - t[kept] / 0.9).abs().max().item()
        frac = kept.float().mean().item()
        return Result(err, None, f"kept values vs x/(1-p); masks differ (own RNG), kept {frac:.3f} (p=0.1)")

    return {
        "matmul_2d": lambda: compare(case["matmul_2d_2d"], x2, w),
        "matmul_3d": lambda: compare(case["matmul_3d_3d"], q, k.transpose(-1, -2)),
        "addmm": lambda: compare(_addmm, x2, w, bias),
        "add": lambda: compare(case["add"], x, randn(C)),
        "sub": lambda: compare(case["sub"], x, randn(C)),
        "mul": lambda: compare(case["mul"], x, randn(B, T, C)),
        "div": lambda: compare(case["div"], x, positive.reshape(B, T, C)),
        "add_": lambda: compare(case["add_"], x, positive.reshape(B, T, C)),
        "mul_": lambda: compare(case["mul_"], x, positive.reshape(B, T, C)),
        "div_": lambda: compare(case["div_"], x, positive.reshape(B, T, C)),
        "pow": lambda: compare(case["pow_integer"], x),
        "tanh": lambda: compare(case["tanh"], x),
        "sqrt": lambda: compare(case["sqrt"], positive),
        "sum": lambda: compare(case["sum"], x, (0, 1), False),
        "softmax": lambda: compare(_masked_softmax, q @ k.transpose(-1, -2) / D**0.5, causal),
        "log_softmax": lambda: compare(case["log_softmax"], randn(B * T, V), -1),
        "embedding": lambda: compare(case["embedding"], ids, randn(V, C)),
        "view": lambda: compare(case["reshape"], x, (B * T, -1)),
        "transpose": lambda: compare(lambda lib, t: t.reshape(B, T, H, D).transpose(1, 2), x),
        "t": lambda: compare(case["T"], w),
        "expand": lambda: compare(case["expand"], randn(1, 1, T, T), (B, H, T, T)),
        "slice": lambda: compare(case["getitem_slice"], x, 1, slice(0, T - 1, 1)),
        "unsqueeze": lambda: compare(case["unsqueeze"], x, 1),
        "split": lambda: compare(case["split_size"], randn(B, T, 3 * C), C, 2),
        "cat": lambda: compare(case["cat"], 2, x, x * 2),
        "clone": lambda: compare(case["clone"], x),
        "tril": lambda: no_grad_compare(case["tril"], torch.ones(T, T), 0),
        "where": lambda: compare(case["where"], causal, randn(T, T), randn(T, T)),
        "fill": lambda: compare(case["fill_"], x),
        "zero_": lambda: compare(case["zero_"], x),
        "creation": lambda: Result(0.0, None, "constants: ones / zeros / full / arange / empty"),
        "item": lambda: no_grad_compare(lambda lib, t: t * 0 + t.max().item(), x2),
        "dropout": dropout,
        "layer_norm": lambda: compare(_layer_norm, x, 1 + randn(C, scale=0.1), randn(C, scale=0.1)),
        "cross_entropy": lambda: compare(_cross_entropy, randn(B * T, V), labels),
        "pad": lambda: no_grad_compare(_pad_labels, labels.reshape(B, T)),
        "gelu_new": lambda: compare(_gelu_new, x),
        "adamw": lambda: compare(
            _adamw_update, x2, randn(B * T, C), randn(B * T, C, scale=0.1), positive * 1e-3, grad=False
        ),
        "random": lambda: Result(None, None, "random numbers: own generator, not comparable"),
        "flash": flash_vs_sdpa,
    }


@dataclass(frozen=True)
class Row:
    status: str  # native | composite | missing
    equivalent: str
    measurement: str | None  # key of measurements(); None: nothing to measure
    use: str = "forward"  # which of the measurement's errors this aten op reports: forward | backward


def native(equivalent: str, measurement: str | None, use: str = "forward") -> Row:
    return Row("native", equivalent, measurement, use)


def composite(equivalent: str, measurement: str | None, use: str = "forward") -> Row:
    return Row("composite", equivalent, measurement, use)


def missing(equivalent: str, measurement: str | None = None, use: str = "forward") -> Row:
    return Row("missing", equivalent, measurement, use)


# aten op (overloads merged) -> orchard-core's equivalent. An op a step uses that is not
# listed here shows as "unmapped" in docs/parity.md: add it.
OP_TABLE: dict[str, Row] = {
    # linear algebra (GPT-2's Conv1D is addmm; attention's math path bmm)
    "aten::addmm": native("linear (bias fused)", "addmm"),
    "aten::mm": native("matmul (2-d)", "matmul_2d"),
    "aten::bmm": native("matmul (batched)", "matmul_3d"),
    # elementwise
    "aten::add": native("add", "add"),
    "aten::sub": native("sub", "sub"),
    "aten::mul": native("mul", "mul"),
    "aten::div": native("div", "div"),
    "aten::add_": native("Tensor.add_", "add_"),
    "aten::mul_": native("Tensor.mul_", "mul_"),
    "aten::div_": native("Tensor.div_", "div_"),
    "aten::pow": native("pow", "pow"),
    "aten::tanh": native("tanh", "tanh"),
    "aten::tanh_backward": native("tanh's backward (autograd)", "tanh", "backward"),
    "aten::sqrt": native("sqrt", "sqrt"),
    "aten::where": native("where", "where"),
    "aten::tril": native("tril", "tril"),
    "aten::fill_": native("Tensor.fill_", "fill"),
    "aten::zero_": native("Tensor.zero_", "zero_"),
    # reductions, softmax, loss
    "aten::sum": native("sum", "sum"),
    "aten::_softmax": native("softmax", "softmax"),
    "aten::_safe_softmax": native("softmax (masked rows: -inf filled)", "softmax"),
    "aten::_softmax_backward_data": native("softmax's backward (autograd)", "softmax", "backward"),
    "aten::_log_softmax": native("log_softmax", "log_softmax"),
    "aten::_log_softmax_backward_data": native(
        "log_softmax's backward (autograd)", "log_softmax", "backward"
    ),
    "aten::nll_loss_forward": native("cross_entropy (log_softmax and nll fused)", "cross_entropy"),
    "aten::nll_loss_backward": native("cross_entropy's backward kernel", "cross_entropy", "backward"),
    "aten::native_layer_norm": native("layer_norm", "layer_norm"),
    "aten::native_layer_norm_backward": native("layer_norm's backward kernel", "layer_norm", "backward"),
    # embedding, dropout, random numbers
    "aten::embedding": native("embedding", "embedding"),
    "aten::embedding_dense_backward": native("embedding's backward (scatter-add)", "embedding", "backward"),
    "aten::bernoulli_": native("dropout (mask and scale in one op)", "dropout"),
    "aten::native_dropout": native("dropout", "dropout"),
    "aten::randint": native("randint", "random"),
    # views and copies
    "aten::view": native("view / reshape", "view"),
    "aten::_unsafe_view": native("reshape", "view"),
    "aten::reshape": native("reshape", "view"),
    "aten::alias": native("view (same shape)", "view"),
    "aten::t": native("Tensor.T", "t"),
    "aten::transpose": native("transpose", "transpose"),
    "aten::permute": native("permute", "transpose"),
    "aten::expand": native("expand", "expand"),
    "aten::slice": native("slicing (getitem)", "slice"),
    "aten::unsqueeze": native("unsqueeze", "unsqueeze"),
    "aten::split": native("split", "split"),
    "aten::cat": native("cat", "cat"),
    "aten::clone": native("clone", "clone"),
    "aten::copy_": native("Tensor.copy_", "clone"),
    "aten::constant_pad_nd": native("constant_pad_nd (nn.functional.pad)", "pad"),
    # creation
    "aten::ones": native("ones", "creation"),
    "aten::ones_like": native("ones(shape)", "creation"),
    "aten::zeros": native("zeros", "creation"),
    "aten::zeros_like": native("zeros(shape)", "creation"),
    "aten::empty_like": native("empty(shape)", "creation"),
    "aten::arange": native("arange", "creation"),
    "aten::scalar_tensor": native("tensor / full(())", "creation"),
    "aten::_local_scalar_dense": native("Tensor.item", "item"),
    # AdamW (torch.optim.AdamW, single-tensor path)
    "aten::lerp_": native("Tensor.lerp_", "adamw"),
    "aten::addcmul_": native("Tensor.addcmul_", "adamw"),
    "aten::addcdiv_": native("Tensor.addcdiv_", "adamw"),
    # attention
    "orchard::flash_attention": native("orchard_flash forward (bridge op)", "flash"),
    "orchard::flash_attention_backward": native("orchard_flash backward (bridge op)", "flash", "backward"),
}


def flash_vs_sdpa(batch: int = 2, heads: int = H, length: int = 256, dim: int = D) -> Result:
    """Causal fp32 flash attention (the bridge op) against torch's SDPA: output and q/k/v grads."""
    from orchard_torch_bridge import flash_attention

    gen = torch.Generator().manual_seed(2)
    qkv = [torch.randn(batch, heads, length, dim, generator=gen) for _ in range(3)]
    seed = torch.randn(batch, heads, length, dim, generator=gen)
    results = []
    for fn in (flash_attention, torch.nn.functional.scaled_dot_product_attention):
        inputs = [t.clone().requires_grad_() for t in qkv]
        out = fn(*inputs, is_causal=True)
        results.append((out.detach(), torch.autograd.grad(out, inputs, seed)))
    (out_o, grads_o), (out_t, grads_t) = results
    fwd = (out_o - out_t).abs().max().item()
    bwd = max((a - b).abs().max().item() for a, b in zip(grads_o, grads_t, strict=True))
    return Result(fwd, bwd, f"causal, batch {batch}, {heads} heads, length {length}, head dim {dim}")


def gpt2_stock_vs_orchard(length: int = 128) -> Result:
    """The same GPT-2 (dropout off), stock SDPA vs Orchard attention: logits and parameter grads."""
    from gpt2_ops import make_model, orchard_attention

    name = orchard_attention()
    ids = torch.randint(0, 256, (2, length), generator=torch.Generator().manual_seed(3))
    results = []
    for impl in ("sdpa", name):
        model = make_model(impl, dropout=0.0, n_positions=length, n_embd=128, n_layer=2, n_head=2)
        out = model(ids, labels=ids)
        out.loss.backward()
        grads = {n: p.grad for n, p in model.named_parameters()}
        results.append((out.logits.detach(), grads))
    (logits_s, grads_s), (logits_o, grads_o) = results
    fwd = (logits_s - logits_o).abs().max().item()
    bwd = max((grads_s[n] - grads_o[n]).abs().max().item() for n in grads_s)
    note = f"2 layers, 2 heads, n_embd 128, batch 2, length {length}; logits / every parameter's gradient"
    return Result(fwd, bwd, note)
