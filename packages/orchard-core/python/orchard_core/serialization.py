"""Saving and loading tensors: safetensors files, pickling, and ``save``/``load`` as torch's.

Values travel as little-endian raw bytes of the tensor's own dtype; bfloat16, which numpy
lacks, as the upper halves of its exact float32 values.
"""

from __future__ import annotations

import os
import pickle
import sys
from collections.abc import Mapping
from typing import IO, Any

import numpy as np

from . import _core
from ._core import Tensor

if sys.byteorder != "little":  # pragma: no cover - every platform orchard builds for is little-endian
    raise ImportError("orchard_core.serialization assumes a little-endian host")

_SAFETENSORS_HINT = "`pip install safetensors` (or orchard-core[safetensors])"


def _safetensors() -> Any:
    try:
        import safetensors
    except ImportError as error:
        raise ImportError(
            f"saving and loading safetensors files needs the safetensors package: {_SAFETENSORS_HINT}"
        ) from error
    return safetensors


def _raw_bytes(t: Tensor) -> np.ndarray:
    """The tensor's values, in row-major order, as a contiguous uint8 array on the host."""
    t = t.detach()
    if t.dtype == _core.bfloat16:
        # bfloat16 -> float32 is exact; its bits are the float32's upper 16.
        wide = np.ascontiguousarray(t.to(_core.float32).cpu().numpy())
        return (wide.view(np.uint32) >> 16).astype(np.uint16).view(np.uint8).reshape(-1)
    return np.ascontiguousarray(t.cpu().numpy()).view(np.uint8).reshape(-1)


def _from_raw_bytes(
    data: bytes | bytearray | memoryview, dtype: _core.dtype, shape: tuple[int, ...], device: Any
) -> Tensor:
    """A new tensor holding ``data`` (as _raw_bytes writes it) with the given dtype and shape."""
    count = int(np.prod(shape, dtype=np.int64))
    if dtype == _core.bfloat16:
        halves = np.frombuffer(data, dtype="<u2", count=count)
        wide = (halves.astype(np.uint32) << 16).view(np.float32)
        result = _core.from_numpy(wide.reshape(shape)).to(_core.bfloat16)
    else:
        values = np.frombuffer(data, dtype=np.dtype(dtype.name), count=count).reshape(shape).copy()
        result = _core.from_numpy(values)
    return result.to(device)


# --- pickling -------------------------------------------------------------------------------


def _rebuild_tensor(
    data: bytes, dtype: str, shape: tuple[int, ...], device: str, requires_grad: bool
) -> Tensor:
    result = _from_raw_bytes(data, _core.dtype(dtype), tuple(shape), device)
    if requires_grad:
        result.requires_grad_()
    return result


def _rebuild_parameter(reduced: tuple[Any, tuple[Any, ...]]) -> Tensor:
    from .nn import Parameter

    rebuild, args = reduced
    tensor = rebuild(*args)
    return Parameter(tensor, requires_grad=tensor.requires_grad)


def _tensor_reduce_ex(t: Tensor, protocol: Any = None) -> tuple[Any, tuple[Any, ...]]:
    """Pickles values (a view pickles only what it shows), dtype, shape, device and requires_grad."""
    if t.grad_fn is not None:
        raise RuntimeError(
            "cannot pickle a tensor that is the output of an operation that records gradients "
            f"(grad_fn={t.grad_fn!r}); pickle t.detach() instead"
        )
    return _rebuild_tensor, (
        _raw_bytes(t).tobytes(),
        t.dtype.name,
        tuple(t.shape),
        str(t.device),
        t.requires_grad,
    )


def save(
    obj: Any, f: str | os.PathLike[str] | IO[bytes], pickle_protocol: int = pickle.DEFAULT_PROTOCOL
) -> None:
    """Pickles ``obj`` (a tensor, a state_dict, any picklable object) to a path or binary file."""
    if isinstance(f, str | os.PathLike):
        with open(f, "wb") as stream:
            pickle.dump(obj, stream, protocol=pickle_protocol)
    else:
        pickle.dump(obj, f, protocol=pickle_protocol)


def load(f: str | os.PathLike[str] | IO[bytes]) -> Any:
    """What :func:`save` wrote. Unpickling runs code the file names: load only trusted files."""
    if isinstance(f, str | os.PathLike):
        with open(f, "rb") as stream:
            return pickle.load(stream)
    return pickle.load(f)


# --- safetensors ----------------------------------------------------------------------------


def _specs(tensors: Mapping[str, Tensor]) -> tuple[dict[str, Any], list[np.ndarray]]:
    safetensors = _safetensors()
    specs, buffers = {}, []
    storages: dict[int, str] = {}
    for name, t in tensors.items():
        if not isinstance(name, str):
            raise TypeError(f"save_file: keys must be strings, got {name!r}")
        if not isinstance(t, Tensor):
            raise TypeError(f"save_file: value for {name!r} must be a Tensor, got {type(t).__name__}")
        # safetensors has no aliasing; torch's save_file refuses shared memory for the same reason.
        shared = storages.setdefault(t._storage_id(), name)
        if shared != name:
            raise RuntimeError(
                f"save_file: tensors {shared!r} and {name!r} share memory; save a .clone() of one of them "
                "(the format stores each tensor separately)"
            )
        raw = _raw_bytes(t)
        buffers.append(raw)
        specs[name] = safetensors.TensorSpec(
            dtype=t.dtype.name, shape=list(t.shape), data_ptr=raw.ctypes.data, data_len=raw.nbytes
        )
    return specs, buffers


def save_file(
    tensors: Mapping[str, Tensor], filename: str | os.PathLike[str], metadata: Mapping[str, str] | None = None
) -> None:
    """Writes ``tensors`` to ``filename`` in safetensors format (readable by safetensors.torch)."""
    specs, buffers = _specs(tensors)  # buffers: alive until the file is written, the specs point into them
    _safetensors().serialize_file(specs, filename, metadata=None if metadata is None else dict(metadata))
    buffers.clear()


def _dtype_of(code: str) -> _core.dtype:
    names = {
        "F32": "float32",
        "F64": "float64",
        "BF16": "bfloat16",
        "F16": "float16",
        "I32": "int32",
        "I64": "int64",
        "BOOL": "bool",
    }
    if code not in names:
        raise TypeError(f"safetensors dtype {code} has no orchard_core dtype (supported: {', '.join(names)})")
    return _core.dtype(names[code])


def load_file(filename: str | os.PathLike[str], device: Any = "cpu") -> dict[str, Tensor]:
    """The tensors of a safetensors file, on ``device``, keyed as saved."""
    safetensors = _safetensors()
    with open(filename, "rb") as stream:
        content = stream.read()
    return {
        name: _from_raw_bytes(info["data"], _dtype_of(info["dtype"]), tuple(info["shape"]), device)
        for name, info in safetensors.deserialize(content)
    }
