"""orchard-flash's fused attention as PyTorch custom ops, with autograd and fake kernels.

``torch.ops.orchard.flash_attention(q, k, v, dropout_p, is_causal, scale, seed)`` returns
(out, lse) and ``torch.ops.orchard.flash_attention_backward`` its gradients; both are opaque
to torch.compile (fake kernels give their shapes), and autograd connects them. In eager mode
``flash_attention`` runs the same two functions through a plain ``torch.autograd.Function``:
the custom-op machinery costs more host time per call than a small GPU call takes
(docs/benchmarks/host_overhead_cuda.md). Tensors reach orchard-flash through DLPack without
copies, and the outputs are allocated by torch. CPU
tensors run orchard-flash's CPU kernels; CUDA tensors its CUDA kernels, on torch's current
stream; MPS tensors its Metal kernels, on orchard's own Metal queue between two waits (see
``_synchronized``); each when this orchard-flash build has them
(``orchard_flash.available_devices()``).
``flash_attention`` wraps them with the arguments of
``torch.nn.functional.scaled_dot_product_attention``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import orchard_core
import orchard_flash
import torch
from orchard_flash import _flash as _kernels
from torch.utils._python_dispatch import is_in_torch_dispatch_mode

# PyTorch's is_causal: query row i sees keys 0..i (orchard-flash's "top_left" alignment).
_ALIGNMENT = "top_left"


# orchard's name for each torch device type the bridge runs: torch's "mps" is orchard's "metal".
_ORCHARD_DEVICE_TYPES = {"cpu": "cpu", "cuda": "cuda", "mps": "metal"}


def _dtypes(device_type: str) -> tuple[torch.dtype, ...]:
    """The torch dtypes orchard-flash's kernels for ``device_type`` compute in (none: no kernels)."""
    return tuple(getattr(torch, name) for name in orchard_flash.supported_dtypes(device_type))


# Asked once at import: _check runs inside torch.compile's traced code, where a call into the
# native module would break the graph, while constants are folded away.
_DEVICES = tuple(orchard_flash.available_devices())
_CUDA_INDICES = tuple(int(d.split(":", 1)[1]) for d in _DEVICES if d.startswith("cuda:"))
# The dtypes per torch device type; "meta" (shape-only tracing) takes what any device type takes.
_DTYPES = {torch_type: _dtypes(orchard_type) for torch_type, orchard_type in _ORCHARD_DEVICE_TYPES.items()}
_DTYPES["meta"] = tuple(
    sorted(dict.fromkeys(d for dtypes in _DTYPES.values() for d in dtypes), key=lambda d: d.itemsize)
)


def _device_supported(device: torch.device) -> bool:
    if device.type in ("cpu", "meta"):
        return True
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return index in _CUDA_INDICES
    if device.type == "mps":
        return "metal" in _DEVICES
    return False


def _unsupported_device_message(device: torch.device) -> str:
    kernels = f"kernels for {device}"
    if device.type == "mps":
        kernels = "Metal kernels (mps tensors run on orchard's metal device)"
    return (
        f"orchard flash_attention: tensors on {device} are not supported; orchard-flash has no {kernels} "
        f"in this build (it has: {', '.join(_DEVICES)})"
    )


def _check(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dropout_p: float) -> None:
    """What can be checked without the data, so fake kernels (torch.compile) raise it too."""
    if not (q.device == k.device == v.device):
        raise ValueError(
            f"orchard flash_attention: query, key and value devices differ: {q.device}, {k.device}, "
            f"{v.device}"
        )
    if not _device_supported(q.device):
        raise ValueError(_unsupported_device_message(q.device))
    supported = _DTYPES[q.device.type]
    for name, t in (("query", q), ("key", k), ("value", v)):
        if t.dim() != 4:
            raise ValueError(
                f"orchard flash_attention: {name} must be 4-d (batch, heads, length, dim), got {t.dim()}-d"
            )
        if t.dtype not in supported:
            names = ", ".join(str(d).removeprefix("torch.") for d in supported)
            raise TypeError(
                f"orchard flash_attention: {name} is {t.dtype}; supported on {q.device.type}: {names}"
            )
    if not (q.dtype == k.dtype == v.dtype):
        raise TypeError(
            f"orchard flash_attention: query, key and value dtypes differ: {q.dtype}, {k.dtype}, {v.dtype}"
        )
    dim = q.shape[-1]
    if dim % 8 != 0 or not 0 < dim <= 256:
        raise ValueError(
            f"orchard flash_attention: head dim {dim} must be a positive multiple of 8 up to 256"
        )
    if k.shape[-1] != dim or v.shape[-1] != dim:
        raise ValueError(
            f"orchard flash_attention: head dims differ: query {dim}, key {k.shape[-1]}, value {v.shape[-1]}"
        )
    if k.shape[1] == 0 or q.shape[1] % k.shape[1] != 0:
        raise ValueError(
            f"orchard flash_attention: query's {q.shape[1]} heads are not divisible by key/value's "
            f"{k.shape[1]}"
        )
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"orchard flash_attention: dropout_p must be in [0, 1), got {dropout_p}")


def _check_seed(seed: torch.Tensor) -> None:
    """The ops' seed: one integer (int() of a float seed would truncate it, silently)."""
    if seed.dtype.is_floating_point or seed.dtype.is_complex or seed.dtype == torch.bool:
        raise TypeError(f"orchard flash_attention: seed must be an integer tensor, got {seed.dtype}")
    if seed.numel() != 1:
        raise ValueError(f"orchard flash_attention: seed must hold one value, got shape {tuple(seed.shape)}")


def _seed_value(seed: torch.Tensor) -> int:
    _check_seed(seed)
    value = int(seed)
    if value < 0:
        raise ValueError(f"orchard flash_attention: seed must be an int in [0, 2**64), got {value}")
    return value


def _orchard(t: torch.Tensor) -> orchard_core.Tensor:
    """An orchard tensor sharing ``t``'s memory: torch's DLPack export called directly, without
    ``Tensor.__dlpack__``'s Python-level checks (which refuse tensors that require grad; the
    tensors here are strided and real, and autograd is this module's business)."""
    return orchard_core.from_dlpack(torch.utils.dlpack.to_dlpack(t))


def _current_stream(device: torch.device) -> int:
    """torch's current stream on a CUDA device as a cudaStream_t int: through the raw query torch's
    own ops use where this torch has it (``torch.cuda.current_stream`` builds a Stream object
    each call, the largest share of the bridge's host time after DLPack)."""
    index = device.index if device.index is not None else torch.cuda.current_device()
    raw = getattr(torch._C, "_cuda_getCurrentRawStream", None)
    return int(raw(index)) if raw is not None else torch.cuda.current_stream(index).cuda_stream


def _row_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _stream(device: torch.device) -> int:
    """The cudaStream_t the kernels go on: torch's current stream on a CUDA device, without a
    sync; 0 (none) elsewhere."""
    return _current_stream(device) if device.type == "cuda" else 0


def _synchronized(device: torch.device, kernels: Callable[..., object], *args: Any) -> None:
    """Runs ``kernels(*args)`` ordered with torch's work on ``device``.

    CPU work is done when the call returns, and CUDA kernels go on torch's current stream. On
    MPS, orchard-flash's Metal kernels run on orchard's own command queue, which torch cannot
    see: torch's queued work, writes to the inputs and earlier use of the outputs' memory
    included, must finish first (torch's MPS stream is one per process, and
    ``torch.mps.synchronize`` waits for it), and orchard's must finish before torch reads the
    outputs or reuses any of the memory, whether the kernels succeeded or raised.
    """
    if device.type != "mps":
        kernels(*args)
        return
    torch.mps.synchronize()
    try:
        kernels(*args)
    finally:
        orchard_core.synchronize("metal")


def _run_forward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    dropout_p: float,
    is_causal: bool,
    scale: float,
    seed: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The kernels on checked inputs: torch allocates the outputs, orchard-flash fills them.

    orchard-flash's binding is called directly: ``orchard_flash.forward``'s argument checks
    repeat ``_check``'s, and cost host time on every call (this package pins orchard-flash's
    version, so the binding's signature is known)."""
    out = torch.empty_like(q, memory_format=torch.contiguous_format)
    lse = torch.empty(q.shape[:3], dtype=_row_dtype(q.dtype), device=q.device)
    # After torch allocated the outputs: on MPS, the wait covers their memory's past use too.
    _synchronized(
        q.device,
        _kernels._forward,
        _orchard(q),
        _orchard(k),
        _orchard(v),
        is_causal,
        scale,
        _ALIGNMENT,
        dropout_p,
        seed,
        _orchard(out),
        _orchard(lse),
        _stream(q.device),
    )
    return out, lse


def _flash_forward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    dropout_p: float,
    is_causal: bool,
    scale: float,
    seed: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    _check(q, k, v, dropout_p)
    return _run_forward(q, k, v, dropout_p, is_causal, scale, _seed_value(seed))


# The eager kernels are plain functions too, so their order of allocations and waits is testable
# without the device (test_mps.py).
_forward = torch.library.custom_op("orchard::flash_attention", mutates_args=())(_flash_forward)


@_forward.register_fake
def _forward_fake(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    dropout_p: float,
    is_causal: bool,
    scale: float,
    seed: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    _check(q, k, v, dropout_p)
    _check_seed(seed)
    return q.new_empty(q.shape), q.new_empty(q.shape[:3], dtype=_row_dtype(q.dtype))


def _run_backward(
    dout: torch.Tensor,
    dlse: torch.Tensor | None,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    out: torch.Tensor,
    lse: torch.Tensor,
    dropout_p: float,
    is_causal: bool,
    scale: float,
    seed: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    dq, dk, dv = (torch.empty_like(t, memory_format=torch.contiguous_format) for t in (q, k, v))
    # As torch's own attention backends: dq summed by atomics (faster, last bits varying from
    # run to run) unless torch.use_deterministic_algorithms(True) asks for bitwise repeatability.
    _synchronized(
        q.device,
        _kernels._backward,
        *(_orchard(t) for t in (dout, q, k, v, out, lse)),
        is_causal,
        scale,
        _ALIGNMENT,
        dropout_p,
        seed,
        None if dlse is None else _orchard(dlse),
        _orchard(dq),
        _orchard(dk),
        _orchard(dv),
        torch.are_deterministic_algorithms_enabled(),
        _stream(q.device),
    )
    return dq, dk, dv


def _flash_backward(
    dout: torch.Tensor,
    dlse: torch.Tensor | None,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    out: torch.Tensor,
    lse: torch.Tensor,
    dropout_p: float,
    is_causal: bool,
    scale: float,
    seed: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return _run_backward(dout, dlse, q, k, v, out, lse, dropout_p, is_causal, scale, _seed_value(seed))


_backward = torch.library.custom_op("orchard::flash_attention_backward", mutates_args=())(_flash_backward)


@_backward.register_fake
def _backward_fake(
    dout: torch.Tensor,
    dlse: torch.Tensor | None,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    out: torch.Tensor,
    lse: torch.Tensor,
    dropout_p: float,
    is_causal: bool,
    scale: float,
    seed: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    _check_seed(seed)
    return q.new_empty(q.shape), k.new_empty(k.shape), v.new_empty(v.shape)


def _setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[torch.Tensor, torch.Tensor]) -> None:
    q, k, v, dropout_p, is_causal, scale, seed = inputs
    ctx.save_for_backward(q, k, v, *output, seed)
    ctx.options = (dropout_p, is_causal, scale)
    # An unused lse gets no gradient rather than a tensor of zeros to fill and read.
    ctx.set_materialize_grads(False)


def _autograd_backward(ctx: Any, dout: torch.Tensor | None, dlse: torch.Tensor | None) -> tuple[Any, ...]:
    q, k, v, out, lse, seed = ctx.saved_tensors
    if dout is None:  # only lse was used
        dout = torch.zeros_like(out)
    dq, dk, dv = _backward(dout, dlse, q, k, v, out, lse, *ctx.options, seed)
    return dq, dk, dv, None, None, None, None


_forward.register_autograd(_autograd_backward, setup_context=_setup_context)


class _EagerAttention(torch.autograd.Function):
    """The custom op's kernels in eager mode, without the dispatcher round trips: inputs checked
    once (by ``flash_attention``) and the seed a Python int, drawn as the op's is."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        dropout_p: float,
        is_causal: bool,
        scale: float,
        seed: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        out, lse = _run_forward(q, k, v, dropout_p, is_causal, scale, seed)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.options = (dropout_p, is_causal, scale, seed)
        ctx.set_materialize_grads(False)
        return out, lse

    @staticmethod
    def backward(ctx: Any, dout: torch.Tensor | None, dlse: torch.Tensor | None) -> tuple[Any, ...]:  # type: ignore[override]
        q, k, v, out, lse = ctx.saved_tensors
        if dout is None:  # only lse was used
            dout = torch.zeros_like(out)
        dq, dk, dv = _run_backward(dout, dlse, q, k, v, out, lse, *ctx.options)
        return dq, dk, dv, None, None, None, None


def _runs_eagerly(q: torch.Tensor) -> bool:
    """Whether a call takes ``_EagerAttention``: plain tensors on a real device in eager mode. The op
    itself runs while torch.compile traces, under a dispatch mode (which expects to see the op:
    FakeTensorMode, FlopCounterMode, recorders) and for anything else (meta and fake tensors,
    tensor subclasses), which its registrations handle."""
    return (
        type(q) is torch.Tensor
        and q.device.type != "meta"
        and not torch.compiler.is_compiling()
        and not is_in_torch_dispatch_mode()
    )


def flash_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
) -> torch.Tensor:
    """A drop-in for ``torch.nn.functional.scaled_dot_product_attention`` on orchard's kernels.

    Same layout (batch, heads, length, dim) and semantics: ``is_causal`` masks top-left aligned
    as PyTorch does, ``scale`` defaults to 1/sqrt(dim), key and value may have fewer heads
    than query (grouped-query attention; ``enable_gqa`` is accepted for compatibility and not
    needed). Dropout draws its seed from torch's default generator, so ``torch.manual_seed``
    reproduces a run. ``attn_mask`` is not supported: anything but None raises.
    """
    if attn_mask is not None:
        raise ValueError(
            "orchard flash_attention: attn_mask is not supported (use is_causal, or stock attention)"
        )
    del enable_gqa  # heads_kv < heads is always grouped-query attention here
    _check(query, key, value, dropout_p)
    if scale is None:
        scale = 1.0 / math.sqrt(query.shape[-1])
    dropout_p, is_causal, scale = float(dropout_p), bool(is_causal), float(scale)
    # The seed comes from torch's default CPU generator whatever the inputs' device
    # (torch.manual_seed reproduces it), and the op reads it without a device-to-host copy.
    if _runs_eagerly(query):
        seed = int(torch.randint(0, 2**62, (), dtype=torch.int64, device="cpu")) if dropout_p > 0 else 0
        return _EagerAttention.apply(query, key, value, dropout_p, is_causal, scale, seed)[0]
    if dropout_p > 0:
        seed_tensor = torch.randint(0, 2**62, (), dtype=torch.int64, device="cpu")
    else:
        seed_tensor = torch.zeros((), dtype=torch.int64, device="cpu")
    return _forward(query, key, value, dropout_p, is_causal, scale, seed_tensor)[0]
