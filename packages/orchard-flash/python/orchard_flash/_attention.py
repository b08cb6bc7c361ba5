"""Python entry points of the fused attention kernels."""

from __future__ import annotations

import numbers
from typing import Any, Literal, overload

import orchard_core
from orchard_core.autograd import Function, FunctionCtx

from . import _flash

Alignment = Literal["bottom_right", "top_left"]


def _as_tensor(value: Any, name: str) -> orchard_core.Tensor:
    """An orchard tensor as is; any other DLPack producer (numpy, torch) without a copy."""
    if isinstance(value, orchard_core.Tensor):
        return value
    if hasattr(value, "__dlpack__"):
        return orchard_core.from_dlpack(value)
    raise TypeError(f"{name} must be an orchard_core.Tensor or support DLPack, got {type(value).__name__}")


def _optional_tensor(value: Any, name: str) -> orchard_core.Tensor | None:
    return None if value is None else _as_tensor(value, name)


def _check_int(value: Any, name: str, bits: int) -> int:
    """An int (numpy's too) in [0, 2**bits), checked here so the binding never answers with its signature."""
    message = f"flash attention: {name} must be an int in [0, 2**{bits}), got {value!r}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{message} of type {type(value).__name__}")
    if not 0 <= value < 2**bits:
        raise ValueError(message)
    return int(value)


def _check_real(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"flash attention: {name} must be a real number, got {value!r} of type {type(value).__name__}"
        )
    return float(value)


def _check_flag(value: Any, name: str) -> bool:
    # numpy's bool (named "bool_" before numpy 2) is no subclass of bool.
    if type(value).__name__ not in ("bool", "bool_"):
        raise TypeError(
            f"flash attention: {name} must be a bool, got {value!r} of type {type(value).__name__}"
        )
    return bool(value)


def _check_str(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise TypeError(
            f"flash attention: {name} must be a str, got {value!r} of type {type(value).__name__}"
        )
    return value


def _check_scale(scale: Any) -> float | None:
    return None if scale is None else _check_real(scale, "scale")


def _stream_handle(stream: Any, values: tuple[Any, ...]) -> int:
    """The cudaStream_t the CUDA kernels run on, as an int (0: the legacy default stream).

    An int, or an object with ``cuda_stream`` (torch.cuda.Stream), is taken as is; None means
    torch's current stream of the first torch CUDA tensor among ``values``, else 0. Ignored on CPU.
    """
    if stream is not None:
        handle = getattr(stream, "cuda_stream", stream)
        if isinstance(handle, bool) or not isinstance(handle, int) or not 0 <= handle < 2**64:
            raise TypeError(f"stream must be a cudaStream_t int or have .cuda_stream, got {stream!r}")
        return handle
    for value in values:
        if type(value).__module__.startswith("torch") and getattr(value, "is_cuda", False):
            import torch  # only when torch tensors came in

            return int(torch.cuda.current_stream(value.device).cuda_stream)
    return 0


def _check_seed(seed: Any) -> int:
    return _check_int(seed, "seed", 64)


def draw_seed() -> int:
    """A dropout seed drawn from orchard_core's generator (so manual_seed reproduces it)."""
    return int(orchard_core.randint(0, 2**62, (1,)).item())


def forward(
    q: Any,
    k: Any,
    v: Any,
    *,
    causal: bool = False,
    scale: float | None = None,
    causal_alignment: Alignment = "bottom_right",
    dropout_p: float = 0.0,
    seed: int = 0,
    out: Any = None,
    lse: Any = None,
    stream: Any = None,
) -> tuple[orchard_core.Tensor, orchard_core.Tensor]:
    """Fused softmax(q k^T * scale) v, never forming the score matrix.

    q is (batch, heads, len_q, dim), k and v (batch, heads_kv, len_k, dim) with heads a
    multiple of heads_kv (grouped-query attention); any strides; float32, bfloat16, float16 or
    float64, no float64 on Metal (``supported_dtypes``). Tensors on a CUDA
    device run the CUDA kernels, asynchronously on ``stream`` (default: torch's current stream
    for torch tensors, else the default stream); orchard tensors on "metal" the Metal kernels.
    ``scale`` defaults to 1/sqrt(dim). With ``causal``, query row i sees key j when
    j <= i + len_k - len_q ("bottom_right", flash-attn's convention) or j <= i ("top_left",
    torch's is_causal). With ``dropout_p`` > 0 the probabilities are dropped by the mask that
    ``dropout_mask(..., seed)`` returns and the rest scaled by 1/(1 - p), p being ``dropout_p``
    rounded to the nearest multiple of 2**-16, the rate the mask applies (docs/flash.md).
    Returns (out, lse): out like q (contiguous), and the float32 (float64 for float64 inputs)
    log-sum-exp of each row's scaled scores: -inf for a row that sees no key, whose output is 0.
    ``out`` and ``lse``, when given, are contiguous buffers of those shapes and dtypes (say,
    from torch's allocator) that the kernels write into and return.
    """
    return _flash._forward(
        _as_tensor(q, "q"),
        _as_tensor(k, "k"),
        _as_tensor(v, "v"),
        _check_flag(causal, "causal"),
        _check_scale(scale),
        _check_str(causal_alignment, "causal_alignment"),
        _check_real(dropout_p, "dropout_p"),
        _check_seed(seed),
        _optional_tensor(out, "out"),
        _optional_tensor(lse, "lse"),
        _stream_handle(stream, (q, k, v)),
    )


def backward(
    dout: Any,
    q: Any,
    k: Any,
    v: Any,
    out: Any,
    lse: Any,
    *,
    causal: bool = False,
    scale: float | None = None,
    causal_alignment: Alignment = "bottom_right",
    dropout_p: float = 0.0,
    seed: int = 0,
    dlse: Any = None,
    dq: Any = None,
    dk: Any = None,
    dv: Any = None,
    deterministic: bool = True,
    stream: Any = None,
) -> tuple[orchard_core.Tensor, orchard_core.Tensor, orchard_core.Tensor]:
    """Gradients (dq, dk, dv) of ``forward``'s out given dout, from the saved out and lse.

    The keyword arguments must be the forward call's; ``dlse``, when given, is a gradient of
    the lse output too. Probabilities are recomputed block by block from q, k and lse, and the
    dropout mask is regenerated from the seed, so memory stays linear in the sequence length.
    dk and dv are summed over each group of query heads. ``dq``, ``dk`` and ``dv``, when given,
    are contiguous buffers like q, k and v that the kernels write into and return. By default
    the result is deterministic (no atomics): the same inputs give bitwise-equal gradients.
    ``deterministic=False`` lets the Hopper kernels sum dq with float32 atomics, faster, with
    the last bits of dq varying from run to run (the CPU and other GPUs ignore it).
    """
    return _flash._backward(
        _as_tensor(dout, "dout"),
        _as_tensor(q, "q"),
        _as_tensor(k, "k"),
        _as_tensor(v, "v"),
        _as_tensor(out, "out"),
        _as_tensor(lse, "lse"),
        _check_flag(causal, "causal"),
        _check_scale(scale),
        _check_str(causal_alignment, "causal_alignment"),
        _check_real(dropout_p, "dropout_p"),
        _check_seed(seed),
        _optional_tensor(dlse, "dlse"),
        _optional_tensor(dq, "dq"),
        _optional_tensor(dk, "dk"),
        _optional_tensor(dv, "dv"),
        _check_flag(deterministic, "deterministic"),
        _stream_handle(stream, (dout, q, k, v)),
    )


def dropout_mask(
    batch: int,
    heads: int,
    len_q: int,
    len_k: int,
    *,
    dropout_p: float,
    seed: int,
    device: str = "cpu",
    stream: Any = None,
) -> orchard_core.Tensor:
    """The keep mask (batch, heads, len_q, len_k) of bools that the kernels apply for ``seed``.

    Drawn by ``device``'s kernels ("cpu", "cuda:N" or "metal"): the same mask on every device.
    """
    return _flash._dropout_mask(
        *(
            _check_int(n, name, 63)
            for n, name in ((batch, "batch"), (heads, "heads"), (len_q, "len_q"), (len_k, "len_k"))
        ),
        _check_real(dropout_p, "dropout_p"),
        _check_seed(seed),
        _check_str(device, "device"),
        _stream_handle(stream, ()),
    )


def available_devices() -> list[str]:
    """Devices with flash kernels in this build on this host: "cpu", then "metal" (built against an
    orchard-core with a Metal backend), then "cuda:N" per GPU."""
    return list(_flash._available_devices())


def supported_dtypes(device: str) -> tuple[str, ...]:
    """The dtypes the kernels for ``device``'s type compute in, as orchard names them, narrowest first.

    ("bfloat16", "float16", "float32", "float64") on "cpu" and on "cuda" in a CUDA build,
    ("bfloat16", "float16", "float32") on "metal" where orchard-core has a Metal backend; () for a
    device type this build has no kernels for.
    """
    return tuple(_flash._supported_dtypes(_check_str(device, "device")))


class _FlashAttention(Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: FunctionCtx,
        q: orchard_core.Tensor,
        k: orchard_core.Tensor,
        v: orchard_core.Tensor,
        options: dict[str, Any],
        deterministic: bool,
    ) -> tuple[orchard_core.Tensor, orchard_core.Tensor]:
        out, lse = forward(q, k, v, **options)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.options = options  # type: ignore[attr-defined]
        ctx.deterministic = deterministic  # type: ignore[attr-defined]
        return out, lse

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: FunctionCtx, dout: orchard_core.Tensor, dlse: orchard_core.Tensor
    ) -> tuple[Any, ...]:
        q, k, v, out, lse = ctx.saved_tensors
        dq, dk, dv = backward(
            dout,
            q,
            k,
            v,
            out,
            lse,
            dlse=dlse,
            deterministic=ctx.deterministic,  # type: ignore[attr-defined]
            **ctx.options,  # type: ignore[attr-defined]
        )
        return dq, dk, dv, None, None


@overload
def flash_attention(
    q: Any,
    k: Any,
    v: Any,
    *,
    causal: bool = ...,
    dropout_p: float = ...,
    scale: float | None = ...,
    seed: int | None = ...,
    return_lse: Literal[False] = ...,
    causal_alignment: Alignment = ...,
    deterministic: bool = ...,
) -> orchard_core.Tensor: ...
@overload
def flash_attention(
    q: Any,
    k: Any,
    v: Any,
    *,
    causal: bool = ...,
    dropout_p: float = ...,
    scale: float | None = ...,
    seed: int | None = ...,
    return_lse: Literal[True],
    causal_alignment: Alignment = ...,
    deterministic: bool = ...,
) -> tuple[orchard_core.Tensor, orchard_core.Tensor]: ...
def flash_attention(
    q: Any,
    k: Any,
    v: Any,
    *,
    causal: bool = False,
    dropout_p: float = 0.0,
    scale: float | None = None,
    seed: int | None = None,
    return_lse: bool = False,
    causal_alignment: Alignment = "bottom_right",
    deterministic: bool = True,
) -> orchard_core.Tensor | tuple[orchard_core.Tensor, orchard_core.Tensor]:
    """Fused attention, differentiable through orchard_core's autograd.

    See ``forward`` for shapes and semantics. ``seed=None`` draws the dropout seed from
    ``orchard_core.manual_seed``'s generator (only when dropout_p > 0). With ``return_lse``
    also returns the row log-sum-exp (differentiable too). ``deterministic`` is ``backward``'s.
    """
    p = _check_real(dropout_p, "dropout_p")
    # Checked here as well as in C++ so that a refused call draws no seed from the generator.
    if not 0.0 <= p < 1.0:  # also catches NaN
        raise ValueError(f"flash attention: dropout_p must be in [0, 1), got {dropout_p!r}")
    if seed is None:
        seed = draw_seed() if p > 0 else 0
    options = {
        "causal": causal,
        "scale": scale,
        "causal_alignment": causal_alignment,
        "dropout_p": p,
        "seed": seed,
        # Taken now: torch tensors become orchard tensors below, whose stream torch cannot tell.
        "stream": _stream_handle(None, (q, k, v)),
    }
    tensors = [_as_tensor(x, name) for x, name in ((q, "q"), (k, "k"), (v, "v"))]
    out, lse = _FlashAttention.apply(*tensors, options, _check_flag(deterministic, "deterministic"))
    return (out, lse) if return_lse else out
