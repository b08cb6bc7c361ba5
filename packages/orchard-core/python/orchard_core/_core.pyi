"""Type stub for the ``orchard_core._core`` pybind11 extension (bindings/*.cpp).

``Tensor.__repr__``/``__str__``/``tolist``/``__array__`` and ``dtype.__repr__``/``__str__``
are (re)installed from Python by ``_tensor_methods.install``; they are declared here too.
"""

# The reduction functions take `input`, named as in torch.
# ruff: noqa: A002

import builtins
from collections.abc import Iterator, Sequence
from types import EllipsisType
from typing import Any, ClassVar, NamedTuple, Protocol, SupportsFloat, SupportsIndex, TypeAlias, overload

import numpy as np
import numpy.typing as npt
from typing_extensions import CapsuleType

__version__: str
_built_against_version: str

# `bool` below is the orchard dtype, so the builtin is spelled `builtins.bool` in this file.

# A dtype: an orchard dtype, a name ("float32"), anything numpy.dtype() accepts, or a torch dtype.
_DTypeLike: TypeAlias = dtype | str | npt.DTypeLike | Any
# A device: an orchard device or a string such as "cpu", "metal", "cuda:1".
_DeviceLike: TypeAlias = device | str
# A number for fill values and arange: bool, int or float, numpy scalars included.
_Scalar: TypeAlias = SupportsIndex | SupportsFloat
# One basic index: an int, a slice with a positive step, None or `...`.
_Index: TypeAlias = SupportsIndex | slice | EllipsisType | None

class _SupportsArray(Protocol):
    def __array__(self) -> np.ndarray[Any, Any]: ...

class _SupportsDLPack(Protocol):
    def __dlpack__(self) -> Any: ...

class _pybind11_type(type):
    """Stands for ``pybind11_builtins.pybind11_type``, the metaclass of every pybind11 class."""

class OutOfMemoryError(RuntimeError): ...

class dtype(metaclass=_pybind11_type):
    """Element type of a tensor."""

    float32: ClassVar[dtype]
    float64: ClassVar[dtype]
    bfloat16: ClassVar[dtype]
    float16: ClassVar[dtype]
    int32: ClassVar[dtype]
    int64: ClassVar[dtype]
    bool: ClassVar[dtype]
    __members__: ClassVar[dict[str, dtype]]

    def __init__(self, value: SupportsIndex) -> None: ...
    @property
    def name(self) -> str: ...
    @property
    def value(self) -> int: ...
    @property
    def itemsize(self) -> int: ...
    @property
    def is_floating_point(self) -> builtins.bool: ...
    def __eq__(self, other: object) -> builtins.bool: ...
    def __ne__(self, other: object) -> builtins.bool: ...
    def __hash__(self) -> int: ...
    def __index__(self) -> int: ...
    def __int__(self) -> int: ...
    def __getstate__(self) -> int: ...
    def __setstate__(self, state: SupportsIndex, /) -> None: ...
    # Installed from Python by orchard_core._tensor_methods ("orchard_core.float32"); its function
    # names `self` `d`.
    def __repr__(d) -> str: ...
    def __str__(d) -> str: ...

float32: dtype
float64: dtype
bfloat16: dtype
float16: dtype
int32: dtype
int64: dtype
bool: dtype  # noqa: A001 - the dtype, named as in torch and numpy

class device(metaclass=_pybind11_type):
    """A device: 'cpu', 'metal' or 'cuda:N'."""

    def __init__(self, spec: _DeviceLike) -> None: ...
    @property
    def type(self) -> str: ...
    @property
    def index(self) -> int: ...
    def __eq__(self, other: object) -> builtins.bool: ...
    def __hash__(self) -> int: ...

def devices() -> list[device]:
    """The devices this build and host can use now."""

def device_description(device: _DeviceLike) -> str:
    """What backs a device, e.g. 'host CPU'."""

# dims of a reduction: None (all), one int or a sequence of ints; negatives count from the end.
_Dims: TypeAlias = SupportsIndex | Sequence[SupportsIndex] | None

class ValuesIndices(NamedTuple):
    """(values, indices) of max(dim=...) and min(dim=...)."""

    values: Tensor
    indices: Tensor

# Names for use inside `Tensor`, whose `dtype` and `device` properties hide the classes.
_dtype: TypeAlias = dtype
_device: TypeAlias = device

class Tensor(metaclass=_pybind11_type):
    """A strided view of device memory."""

    @property
    def shape(self) -> tuple[int, ...]: ...
    @property
    def dtype(self) -> _dtype: ...
    @property
    def device(self) -> _device: ...
    @property
    def ndim(self) -> int: ...
    @property
    def itemsize(self) -> int: ...
    @property
    def nbytes(self) -> int: ...
    @property
    def T(self) -> Tensor: ...
    @property
    def mT(self) -> Tensor: ...
    def dim(self) -> int: ...
    def numel(self) -> int: ...
    def element_size(self) -> int: ...
    @overload
    def size(self, dim: None = None) -> tuple[int, ...]: ...
    @overload
    def size(self, dim: SupportsIndex) -> int: ...
    @overload
    def stride(self, dim: None = None) -> tuple[int, ...]: ...
    @overload
    def stride(self, dim: SupportsIndex) -> int: ...
    def storage_offset(self) -> int: ...
    def data_ptr(self) -> int: ...
    def is_contiguous(self) -> builtins.bool: ...
    def is_alias_of(self, other: Tensor) -> builtins.bool: ...
    def _storage_id(self) -> int: ...
    def _storage_nbytes(self) -> int: ...
    # Sizes and dims are given as separate ints or as one sequence: t.view(2, 3) or t.view((2, 3)).
    @overload
    def view(self, shape: Sequence[SupportsIndex], /) -> Tensor: ...
    @overload
    def view(self, *shape: SupportsIndex) -> Tensor: ...
    @overload
    def reshape(self, shape: Sequence[SupportsIndex], /) -> Tensor: ...
    @overload
    def reshape(self, *shape: SupportsIndex) -> Tensor: ...
    def transpose(self, dim0: SupportsIndex, dim1: SupportsIndex) -> Tensor: ...
    @overload
    def permute(self, dims: Sequence[SupportsIndex], /) -> Tensor: ...
    @overload
    def permute(self, *dims: SupportsIndex) -> Tensor: ...
    @overload
    def expand(self, shape: Sequence[SupportsIndex], /) -> Tensor: ...
    @overload
    def expand(self, *shape: SupportsIndex) -> Tensor: ...
    def squeeze(self, dim: SupportsIndex | None = None) -> Tensor: ...
    def unsqueeze(self, dim: SupportsIndex) -> Tensor: ...
    def contiguous(self) -> Tensor: ...
    def clone(self) -> Tensor: ...
    def detach(self) -> Tensor: ...
    # to() takes at most a device and a dtype, positionally in either order or by keyword;
    # a string names a dtype when it is a dtype name ("float32"), else a device.
    @overload
    def to(self, device: _DeviceLike | None = None, dtype: _DTypeLike = ...) -> Tensor:
        """Copy to a device and/or dtype; returns self when nothing changes."""

    @overload
    def to(self, dtype: _DTypeLike, device: _DeviceLike | None = None, /) -> Tensor: ...
    def cpu(self) -> Tensor: ...
    def fill_(self, value: _Scalar) -> Tensor: ...
    def zero_(self) -> Tensor: ...
    def copy_(self, src: Tensor) -> Tensor: ...
    def item(self) -> int | float | builtins.bool: ...
    def __float__(self) -> float: ...
    def __int__(self) -> int: ...
    def __bool__(self) -> builtins.bool: ...
    def __len__(self) -> int: ...
    def __getitem__(self, key: _Index | tuple[_Index, ...]) -> Tensor: ...
    def __setitem__(
        self,
        key: _Index | tuple[_Index, ...],
        value: Tensor | _Scalar | Sequence[Any] | _SupportsArray,
    ) -> None: ...
    def numpy(self) -> npt.NDArray[Any]:
        """Zero-copy numpy view of a CPU tensor; keeps the tensor alive."""

    def __dlpack__(
        self,
        *,
        stream: Any = None,
        max_version: tuple[int, int] | None = None,
        dl_device: tuple[int, int] | None = None,
        copy: builtins.bool | None = None,
    ) -> CapsuleType: ...
    def __dlpack_device__(self) -> tuple[int, int]: ...
    # Reductions and softmax (bindings/ops_reduce.cpp), also module functions taking `input`.
    def sum(self, dim: _Dims = None, keepdim: builtins.bool = False, *, dtype: _DTypeLike = None) -> Tensor:
        """Sum over dims (all when None); integers sum to int64."""

    def mean(self, dim: _Dims = None, keepdim: builtins.bool = False, *, dtype: _DTypeLike = None) -> Tensor:
        """Mean over dims (all when None); floating inputs only."""

    @overload
    def max(self, dim: None = None, keepdim: builtins.bool = False) -> Tensor:
        """The largest element, or (values, indices) along dim."""

    @overload
    def max(self, dim: SupportsIndex, keepdim: builtins.bool = False) -> ValuesIndices: ...
    @overload
    def min(self, dim: None = None, keepdim: builtins.bool = False) -> Tensor:
        """The smallest element, or (values, indices) along dim."""

    @overload
    def min(self, dim: SupportsIndex, keepdim: builtins.bool = False) -> ValuesIndices: ...
    def argmax(self, dim: SupportsIndex | None = None, keepdim: builtins.bool = False) -> Tensor:
        """Index of the largest element (of the flattened input when dim is None)."""

    def argmin(self, dim: SupportsIndex | None = None, keepdim: builtins.bool = False) -> Tensor:
        """Index of the smallest element (of the flattened input when dim is None)."""

    def var(self, dim: _Dims = None, *, correction: float = 1.0, keepdim: builtins.bool = False) -> Tensor:
        """Variance over dims, dividing by count - correction."""

    def std(self, dim: _Dims = None, *, correction: float = 1.0, keepdim: builtins.bool = False) -> Tensor:
        """Standard deviation over dims, dividing by count - correction."""

    def logsumexp(self, dim: _Dims, keepdim: builtins.bool = False) -> Tensor:
        """log(sum(exp(x))) over dims, without overflow."""

    def softmax(self, dim: SupportsIndex, dtype: _DTypeLike = None) -> Tensor:
        """exp(x) / sum(exp(x)) along dim."""

    def log_softmax(self, dim: SupportsIndex, dtype: _DTypeLike = None) -> Tensor:
        """x - logsumexp(x) along dim."""

    # Installed from Python by orchard_core._tensor_methods, whose functions name `self` `t`.
    def __repr__(t) -> str: ...
    def __str__(t) -> str: ...
    def tolist(t) -> Any: ...
    def __iter__(t) -> Iterator[Tensor]: ...
    def __array__(
        t, dtype: npt.DTypeLike | None = None, copy: builtins.bool | None = None
    ) -> npt.NDArray[Any]: ...

@overload
def empty(
    size: Sequence[SupportsIndex], /, *, dtype: _DTypeLike = None, device: _DeviceLike | None = None
) -> Tensor:
    """Uninitialised tensor of the given size."""

@overload
def empty(*size: SupportsIndex, dtype: _DTypeLike = None, device: _DeviceLike | None = None) -> Tensor: ...
@overload
def zeros(
    size: Sequence[SupportsIndex], /, *, dtype: _DTypeLike = None, device: _DeviceLike | None = None
) -> Tensor: ...
@overload
def zeros(*size: SupportsIndex, dtype: _DTypeLike = None, device: _DeviceLike | None = None) -> Tensor: ...
@overload
def ones(
    size: Sequence[SupportsIndex], /, *, dtype: _DTypeLike = None, device: _DeviceLike | None = None
) -> Tensor: ...
@overload
def ones(*size: SupportsIndex, dtype: _DTypeLike = None, device: _DeviceLike | None = None) -> Tensor: ...
def full(
    size: Sequence[SupportsIndex],
    fill_value: _Scalar,
    *,
    dtype: _DTypeLike = None,
    device: _DeviceLike | None = None,
) -> Tensor: ...
@overload
def arange(end: _Scalar, /, *, dtype: _DTypeLike = None, device: _DeviceLike | None = None) -> Tensor:
    """Evenly spaced values in [start, end), like torch.arange."""

@overload
def arange(
    start: _Scalar,
    end: _Scalar,
    step: _Scalar = 1,
    /,
    *,
    dtype: _DTypeLike = None,
    device: _DeviceLike | None = None,
) -> Tensor: ...
def from_numpy(array: npt.NDArray[Any]) -> Tensor:
    """Zero-copy tensor sharing a numpy array's memory; keeps the array alive."""

def from_dlpack(obj: Tensor | CapsuleType | _SupportsDLPack) -> Tensor:
    """Zero-copy tensor from any object that speaks DLPack (numpy, torch, ...)."""

def sum(  # noqa: A001 - named as in torch
    input: Tensor, dim: _Dims = None, keepdim: builtins.bool = False, *, dtype: _DTypeLike = None
) -> Tensor:
    """Sum over dims (all when None); integers sum to int64."""

def mean(
    input: Tensor, dim: _Dims = None, keepdim: builtins.bool = False, *, dtype: _DTypeLike = None
) -> Tensor:
    """Mean over dims (all when None); floating inputs only."""

@overload
def max(input: Tensor, dim: None = None, keepdim: builtins.bool = False) -> Tensor:  # noqa: A001
    """The largest element, or (values, indices) along dim."""

@overload
def max(input: Tensor, dim: SupportsIndex, keepdim: builtins.bool = False) -> ValuesIndices: ...  # noqa: A001
@overload
def min(input: Tensor, dim: None = None, keepdim: builtins.bool = False) -> Tensor:  # noqa: A001
    """The smallest element, or (values, indices) along dim."""

@overload
def min(input: Tensor, dim: SupportsIndex, keepdim: builtins.bool = False) -> ValuesIndices: ...  # noqa: A001
def argmax(input: Tensor, dim: SupportsIndex | None = None, keepdim: builtins.bool = False) -> Tensor:
    """Index of the largest element (of the flattened input when dim is None)."""

def argmin(input: Tensor, dim: SupportsIndex | None = None, keepdim: builtins.bool = False) -> Tensor:
    """Index of the smallest element (of the flattened input when dim is None)."""

def var(
    input: Tensor, dim: _Dims = None, *, correction: float = 1.0, keepdim: builtins.bool = False
) -> Tensor:
    """Variance over dims, dividing by count - correction."""

def std(
    input: Tensor, dim: _Dims = None, *, correction: float = 1.0, keepdim: builtins.bool = False
) -> Tensor:
    """Standard deviation over dims, dividing by count - correction."""

def logsumexp(input: Tensor, dim: _Dims, keepdim: builtins.bool = False) -> Tensor:
    """log(sum(exp(x))) over dims, without overflow."""

def softmax(input: Tensor, dim: SupportsIndex, dtype: _DTypeLike = None) -> Tensor:
    """exp(x) / sum(exp(x)) along dim."""

def log_softmax(input: Tensor, dim: SupportsIndex, dtype: _DTypeLike = None) -> Tensor:
    """x - logsumexp(x) along dim."""

def _stress_threads(threads: SupportsIndex, iterations: SupportsIndex) -> None: ...

class _ProfileModule(Protocol):
    """The ``orchard_core._core.profile`` submodule (allocation profiling)."""

    def enabled(self) -> builtins.bool: ...
    def log_path(self) -> str: ...
    def reset(self) -> None: ...
    def clear_log(self) -> None: ...
    def live_count(self) -> int: ...
    def counts(self) -> dict[str, int]: ...
    def live_tensors(self) -> list[dict[str, Any]]: ...

# A submodule made with def_submodule: not importable on its own, only reachable as an attribute.
profile: _ProfileModule
