"""Devices for the orchard-flash tests: the CUDA and Metal devices to use (or why their cases are
skipped), inputs placed on a device, and forward/backward calls that on CUDA and Metal write into
NaN-filled buffers.

Every kernel test draws its inputs on the CPU (numpy, from the ``rng`` fixture), places them on
the device under test, brings the results back and compares them with the same float64 CPU
reference. On the CPU the inputs are orchard tensors, as the CPU tests always passed them; on
CUDA they are torch CUDA tensors (through DLPack); on Metal orchard tensors on "metal", which the
helpers below copy to the host before torch or numpy reads them (torch would take a Metal DLPack
tensor as an "mps" one, unusable on a host without MPS).

What the CUDA branches rely on (the CUDA contract):

* ``orchard_flash.available_devices()`` lists "cpu" and, with a CUDA build and a GPU, "cuda:0";
* ``forward``/``backward``/``flash_attention``/``dropout_mask(device=...)`` take torch CUDA
  tensors and return orchard tensors on the same device, which ``torch.from_dlpack`` views;
* ``out=``/``lse=``/``dq=``/``dk=``/``dv=`` take torch CUDA tensors and write every element;
* the kernels run on torch's current stream and are deterministic (bitwise, run to run).

What the Metal branches rely on (the Metal contract; "metal" is, on Linux, orchard-core's Metal
harness: built with ``-Dmetal=emulated``, its memory host memory, its .metal kernels run on the
CPU):

* ``orchard_flash.available_devices()`` lists "metal" where orchard-core has the harness and
  orchard-flash its Metal kernels;
* the entry points take orchard tensors on "metal" of any strides (transposed, sliced with steps,
  offset, expanded with stride 0) and return orchard tensors on "metal";
* ``out=``/``lse=``/``dq=``/``dk=``/``dv=`` take contiguous orchard tensors on "metal" and write
  every element;
* the kernels compute in bfloat16, float16 and float32 (Metal has no double: float64 inputs raise
  the generic TypeError), do not check inputs for NaN (as on CUDA), are deterministic, and draw
  the CPU's dropout mask, bitwise.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from typing import Any, NoReturn, TypeAlias

import numpy as np
import numpy.typing as npt
import orchard_core as oc
import orchard_flash as of
import pytest
import torch

REQUIRE_CUDA_ENV = "ORCHARD_TEST_REQUIRE_CUDA"
REQUIRE_METAL_ENV = "ORCHARD_TEST_REQUIRE_METAL"

# What tests place on a device and take views of: torch's tensors on cpu and cuda, orchard's on
# metal (see device_tensor).
DeviceTensor: TypeAlias = torch.Tensor | oc.Tensor

# The dtypes each device type's kernels compute in, as orchard_flash.supported_dtypes must list them.
KERNEL_DTYPES = {
    "cpu": ("bfloat16", "float16", "float32", "float64"),
    "cuda": ("bfloat16", "float16", "float32", "float64"),
    "metal": ("bfloat16", "float16", "float32"),  # Metal has no double
}


def _skip_unless_required(require_env: str, reason: str) -> NoReturn:
    """Skips the test for ``reason``, or fails it where ``require_env`` is 1."""
    if os.environ.get(require_env) == "1":
        pytest.fail(f"{require_env}=1 but {reason}")
    pytest.skip(reason)


@functools.cache
def _cuda_devices() -> tuple[str, ...]:
    return tuple(d for d in of.available_devices() if d.startswith("cuda"))


def cuda_unavailable_reason() -> str | None:
    """Why the CUDA cases cannot run here, or None when they can."""
    if not _cuda_devices():
        return "orchard_flash.available_devices() lists no CUDA device (built without CUDA, or no GPU)"
    if not torch.cuda.is_available():
        return "orchard-flash has a CUDA device but torch does not (a CPU-only torch?)"
    return None


def cuda_device() -> str:
    """The first CUDA device orchard-flash lists ("cuda:0"). Without one the test is skipped,
    or fails when ORCHARD_TEST_REQUIRE_CUDA=1 (for the GPU machine, where a build that lost its
    CUDA kernels must not pass by skipping)."""
    reason = cuda_unavailable_reason()
    if reason is not None:
        _skip_unless_required(REQUIRE_CUDA_ENV, reason)
    return _cuda_devices()[0]


@functools.cache
def _metal_listed() -> bool:
    return "metal" in of.available_devices()


def metal_unavailable_reason() -> str | None:
    """Why the Metal cases cannot run here, or None when they can."""
    if _metal_listed():
        return None
    return (
        'orchard_flash.available_devices() lists no "metal" (orchard-core built without the Metal '
        "harness, -Dmetal=emulated, or orchard-flash without its Metal kernels)"
    )


def metal_device() -> str:
    """ "metal". Without it the test is skipped, or fails when ORCHARD_TEST_REQUIRE_METAL=1 (for
    CI's Metal session, where a build that lost its Metal kernels must not pass by skipping)."""
    reason = metal_unavailable_reason()
    if reason is not None:
        _skip_unless_required(REQUIRE_METAL_ENV, reason)
    return "metal"


def kernel_dtypes(device: str) -> tuple[str, ...]:
    """The dtypes the kernels of ``device``'s type compute in (KERNEL_DTYPES)."""
    return KERNEL_DTYPES[device.partition(":")[0]]


def require_kernels_for(device: str, dtype: oc.dtype) -> None:
    """Skips the test where ``device``'s kernels lack ``dtype`` (float64 on Metal)."""
    if dtype.name not in kernel_dtypes(device):
        pytest.skip(
            f"{device} has no {dtype.name} kernels (they compute in {', '.join(kernel_dtypes(device))})"
        )


# ---- tensors on a device ---------------------------------------------------------------------


def torch_dtype(dtype: oc.dtype | torch.dtype) -> torch.dtype:
    """The torch dtype of an orchard (or torch) dtype."""
    return dtype if isinstance(dtype, torch.dtype) else getattr(torch, dtype.name)


def is_metal(t: object) -> bool:
    """Whether t is an orchard tensor on "metal" (which torch cannot view)."""
    return isinstance(t, oc.Tensor) and t.device.type == "metal"


def on(x: npt.ArrayLike, device: str, dtype: oc.dtype = oc.float32) -> DeviceTensor:
    """numpy values as ``dtype`` (an orchard dtype) on ``device``: an orchard tensor on the CPU
    and on Metal, a torch tensor on CUDA (made on the CPU and copied, so a seed gives the same
    values)."""
    if device == "cpu":
        return oc.tensor(np.asarray(x), dtype=dtype)
    if device == "metal":
        return oc.tensor(np.asarray(x), dtype=dtype, device=device)
    return torch.tensor(np.asarray(x), dtype=torch_dtype(dtype)).to(device)


def device_tensor(x: np.ndarray | torch.Tensor, device: str) -> DeviceTensor:
    """x (numpy or a torch CPU tensor, in its dtype) copied to ``device`` for tests that take
    views of their inputs: a torch tensor on cpu and cuda, as those tests always made, an orchard
    tensor on metal. Both transpose, slice with steps, expand, view, index-assign and clone alike."""
    x = torch.as_tensor(x)
    if device == "metal":
        return oc.from_dlpack(x).to(device)
    return x.to(device)


def as_device_tensor(t: oc.Tensor) -> DeviceTensor:
    """An orchard result in device_tensor's kind: torch's zero-copy view on cpu and cuda, the
    tensor itself on metal."""
    return t if is_metal(t) else torch.from_dlpack(t)


def filled(
    like: DeviceTensor, value: float, shape: Sequence[int] | None = None, dtype: Any = None
) -> DeviceTensor:
    """A new contiguous tensor of ``value`` of like's kind (torch or orchard) and on its device,
    with like's shape and dtype unless given (a torch or orchard dtype). Orchard's is filled on
    the host and copied: Metal has no float64 kernels to fill with."""
    shape = tuple(like.shape if shape is None else shape)
    if isinstance(like, torch.Tensor):
        dtype = like.dtype if dtype is None else torch_dtype(dtype)
        return torch.full(shape, value, dtype=dtype, device=like.device)
    return oc.full(shape, value, dtype=like.dtype if dtype is None else dtype).to(like.device)


def as_torch(t: DeviceTensor) -> torch.Tensor:
    """An orchard tensor's values as torch's: a zero-copy view on cpu and cuda, a host copy of a
    metal tensor (torch would take it as an unusable "mps" tensor); torch tensors as they are."""
    if isinstance(t, torch.Tensor):
        return t
    return torch.from_dlpack(t.cpu() if is_metal(t) else t)


def same_values(a: DeviceTensor, b: DeviceTensor) -> bool:
    """torch.equal of two tensors on one device, torch's or orchard's (metal's through host copies)."""
    return torch.equal(as_torch(a), as_torch(b))


def on_cpu(t: DeviceTensor) -> bool:
    """Whether a torch or orchard tensor is on the "cpu" device (the harness keeps a metal tensor
    in host memory too, but it is no CPU tensor)."""
    if isinstance(t, oc.Tensor):
        return str(t.device) == "cpu"
    return t.device.type == "cpu"


def cast(t: DeviceTensor, dtype_name: str) -> DeviceTensor:
    """t converted to the dtype named: with orchard's ``to`` for an orchard CPU tensor (as the CPU
    tests always did) and for a metal one, on the host (Metal has no float64 kernels to convert
    with), with torch's otherwise (orchard-core has no CUDA operators)."""
    if is_metal(t):
        return t.cpu().to(getattr(oc, dtype_name)).to(t.device)
    if isinstance(t, oc.Tensor) and on_cpu(t):
        return t.to(getattr(oc, dtype_name))
    return as_torch(t).to(getattr(torch, dtype_name))


def exact_numpy(t: DeviceTensor) -> np.ndarray:
    """t's values in its own dtype (bool masks, bitwise comparisons), brought to the host."""
    if is_metal(t):
        t = t.cpu()
    if isinstance(t, oc.Tensor) and on_cpu(t):
        return np.asarray(t)
    return as_torch(t).cpu().numpy()


def torch_device(device: str) -> str:
    """Where torch computes naive attention for ``device``: there, or on the CPU for metal."""
    return "cpu" if device == "metal" else device


def dropout_mask(device: str, *sizes: int, dropout_p: float, seed: int) -> oc.Tensor:
    """orchard_flash.dropout_mask on ``device`` (the CPU call passes no device, as before CUDA)."""
    if device == "cpu":
        return of.dropout_mask(*sizes, dropout_p=dropout_p, seed=seed)
    return of.dropout_mask(*sizes, dropout_p=dropout_p, seed=seed, device=device)


def row_dtype(dtype: oc.dtype | torch.dtype) -> oc.dtype | torch.dtype:
    """lse's dtype, torch's or orchard's as ``dtype`` is: float64 for float64 inputs, float32 for
    every other."""
    if isinstance(dtype, torch.dtype):
        return torch.float64 if dtype == torch.float64 else torch.float32
    return oc.float64 if dtype == oc.float64 else oc.float32


# ---- calls that poison their outputs on CUDA and Metal ---------------------------------------


def _gpu_tensor(t: DeviceTensor | np.ndarray) -> bool:
    """Whether t is on CUDA or Metal."""
    return not isinstance(t, np.ndarray) and not on_cpu(t)


def _check_buffers(name: str, got, buffers, fresh) -> None:
    """The results are the NaN-filled buffers, every element written, and bitwise those of a
    call that allocated its own outputs."""
    for what, result, buffer, alone in zip(name.split(), got, buffers, fresh, strict=True):
        if buffer.numel():
            assert result.data_ptr() == buffer.data_ptr(), f"{what} is not the {what}= buffer"
        values = as_torch(buffer)
        assert not values.isnan().any(), f"{what} has NaN: elements the kernels left unwritten"
        assert torch.equal(values, as_torch(alone)), f"{what} into a buffer differs from {what} allocated"


def _buffer_like(t: DeviceTensor) -> DeviceTensor:
    """What the NaN-filled buffers are made like: a metal tensor itself, torch's view otherwise."""
    return t if is_metal(t) else as_torch(t)


def forward(q, k, v, **options):
    """orchard_flash.forward. On CUDA and Metal twice: into out/lse buffers filled with NaN (an
    element the kernels leave unwritten fails every comparison) and without buffers; the results
    must be bitwise equal, and the first call's are returned."""
    if not _gpu_tensor(q):
        return of.forward(q, k, v, **options)
    like = _buffer_like(q)
    buffers = (filled(like, float("nan")), filled(like, float("nan"), like.shape[:3], row_dtype(like.dtype)))
    got = of.forward(q, k, v, out=buffers[0], lse=buffers[1], **options)
    _check_buffers("out lse", got, buffers, of.forward(q, k, v, **options))
    return got


def backward(dout, q, k, v, out, lse, **options):
    """orchard_flash.backward. On CUDA and Metal twice: into NaN-filled dq/dk/dv buffers and
    without buffers; the results must be bitwise equal, and the first call's are returned."""
    if not _gpu_tensor(q):
        return of.backward(dout, q, k, v, out, lse, **options)
    buffers = tuple(filled(_buffer_like(x), float("nan")) for x in (q, k, v))
    got = of.backward(dout, q, k, v, out, lse, dq=buffers[0], dk=buffers[1], dv=buffers[2], **options)
    _check_buffers("dq dk dv", got, buffers, of.backward(dout, q, k, v, out, lse, **options))
    return got
