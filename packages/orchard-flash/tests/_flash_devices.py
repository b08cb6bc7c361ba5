"""Devices for the orchard-flash tests: the CUDA device to use (or why a CUDA case is skipped),
inputs placed on a device, and forward/backward calls that on CUDA write into NaN-filled buffers.

Every kernel test draws its inputs on the CPU (numpy, from the ``rng`` fixture), places them on
the device under test, brings the results back and compares them with the same float64 CPU
reference. On the CPU the inputs are orchard tensors, as the CPU tests always passed them; on
CUDA they are torch CUDA tensors (through DLPack).

What the CUDA branches rely on (the CUDA contract):

* ``orchard_flash.available_devices()`` lists "cpu" and, with a CUDA build and a GPU, "cuda:0";
* ``forward``/``backward``/``flash_attention``/``dropout_mask(device=...)`` take torch CUDA
  tensors and return orchard tensors on the same device, which ``torch.from_dlpack`` views;
* ``out=``/``lse=``/``dq=``/``dk=``/``dv=`` take torch CUDA tensors and write every element;
* the kernels run on torch's current stream and are deterministic (bitwise, run to run).
"""

from __future__ import annotations

import functools
import os

import numpy as np
import orchard_core as oc
import orchard_flash as of
import pytest
import torch

REQUIRE_CUDA_ENV = "ORCHARD_TEST_REQUIRE_CUDA"


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
        if os.environ.get(REQUIRE_CUDA_ENV) == "1":
            pytest.fail(f"{REQUIRE_CUDA_ENV}=1 but {reason}")
        pytest.skip(reason)
    return _cuda_devices()[0]


# ---- tensors on a device ---------------------------------------------------------------------


def torch_dtype(dtype) -> torch.dtype:
    """The torch dtype of an orchard (or torch) dtype."""
    return dtype if isinstance(dtype, torch.dtype) else getattr(torch, dtype.name)


def on(x, device: str, dtype=oc.float32):
    """numpy values as ``dtype`` (an orchard dtype) on ``device``: an orchard tensor on the CPU,
    a torch tensor on CUDA (made on the CPU and copied, so a seed gives the same values)."""
    if device == "cpu":
        return oc.tensor(np.asarray(x), dtype=dtype)
    return torch.tensor(np.asarray(x), dtype=torch_dtype(dtype)).to(device)


def as_torch(t) -> torch.Tensor:
    """A torch view of an orchard tensor (zero-copy, any device); torch tensors as they are."""
    return t if isinstance(t, torch.Tensor) else torch.from_dlpack(t)


def on_cpu(t) -> bool:
    """Whether a torch or orchard tensor lives in host memory."""
    if isinstance(t, oc.Tensor):
        return str(t.device) == "cpu"
    return t.device.type == "cpu"


def cast(t, dtype_name: str):
    """t converted to the dtype named: with orchard's ``to`` for an orchard CPU tensor (as the CPU
    tests always did), with torch's otherwise (orchard-core has no CUDA operators)."""
    if isinstance(t, oc.Tensor) and on_cpu(t):
        return t.to(getattr(oc, dtype_name))
    return as_torch(t).to(getattr(torch, dtype_name))


def exact_numpy(t) -> np.ndarray:
    """t's values in its own dtype (bool masks, bitwise comparisons), brought to the host."""
    if isinstance(t, oc.Tensor) and on_cpu(t):
        return np.asarray(t)
    return as_torch(t).cpu().numpy()


def dropout_mask(device: str, *sizes: int, dropout_p: float, seed: int) -> oc.Tensor:
    """orchard_flash.dropout_mask on ``device`` (the CPU call passes no device, as before CUDA)."""
    if device == "cpu":
        return of.dropout_mask(*sizes, dropout_p=dropout_p, seed=seed)
    return of.dropout_mask(*sizes, dropout_p=dropout_p, seed=seed, device=device)


def row_dtype(dtype: torch.dtype) -> torch.dtype:
    """lse's dtype: float64 for float64 inputs, float32 for every other."""
    return torch.float64 if dtype == torch.float64 else torch.float32


# ---- calls that poison their outputs on CUDA -------------------------------------------------


def _gpu_tensor(t) -> bool:
    return not isinstance(t, np.ndarray) and not on_cpu(t)


def _poisoned(like: torch.Tensor, dtype: torch.dtype | None = None, shape=None) -> torch.Tensor:
    return torch.full(
        tuple(like.shape if shape is None else shape),
        float("nan"),
        dtype=like.dtype if dtype is None else dtype,
        device=like.device,
    )


def _check_buffers(name: str, got, buffers, fresh) -> None:
    """The results are the NaN-filled buffers, every element written, and bitwise those of a
    call that allocated its own outputs."""
    for what, result, buffer, alone in zip(name.split(), got, buffers, fresh, strict=True):
        view = as_torch(result)
        if buffer.numel():
            assert view.data_ptr() == buffer.data_ptr(), f"{what} is not the {what}= buffer"
        assert not buffer.isnan().any(), f"{what} has NaN: elements the kernels left unwritten"
        assert torch.equal(buffer, as_torch(alone)), f"{what} into a buffer differs from {what} allocated"


def forward(q, k, v, **options):
    """orchard_flash.forward. On CUDA twice: into out/lse buffers filled with NaN (an element the
    kernels leave unwritten fails every comparison) and without buffers; the results must be
    bitwise equal, and the first call's are returned."""
    if not _gpu_tensor(q):
        return of.forward(q, k, v, **options)
    tq = as_torch(q)
    buffers = (_poisoned(tq), _poisoned(tq, row_dtype(tq.dtype), tq.shape[:3]))
    got = of.forward(q, k, v, out=buffers[0], lse=buffers[1], **options)
    _check_buffers("out lse", got, buffers, of.forward(q, k, v, **options))
    return got


def backward(dout, q, k, v, out, lse, **options):
    """orchard_flash.backward. On CUDA twice: into NaN-filled dq/dk/dv buffers and without
    buffers; the results must be bitwise equal, and the first call's are returned."""
    if not _gpu_tensor(q):
        return of.backward(dout, q, k, v, out, lse, **options)
    buffers = tuple(_poisoned(as_torch(x)) for x in (q, k, v))
    got = of.backward(dout, q, k, v, out, lse, dq=buffers[0], dk=buffers[1], dv=buffers[2], **options)
    _check_buffers("dq dk dv", got, buffers, of.backward(dout, q, k, v, out, lse, **options))
    return got
