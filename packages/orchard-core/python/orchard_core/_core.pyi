# ruff: noqa: A001, A002 - operator and argument names (abs, pow, input, min, max) are torch's
"""Type stub for the ``orchard_core._core`` pybind11 extension (bindings/*.cpp).

``Tensor.__repr__``/``__str__``/``tolist``/``__array__`` and ``dtype.__repr__``/``__str__``
are (re)installed from Python by ``_tensor_methods.install``; they are declared here too.
"""

# The reduction functions take `input`, named as in torch.
# ruff: noqa: A002

import builtins
from collections.abc import Callable, Iterator, Sequence
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
bool: dtype  # the dtype, named as in torch and numpy

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

def synchronize(device: _DeviceLike) -> None:
    """Wait until all work queued on a device has finished."""

def supports(device: _DeviceLike, op: str, dtype: _DTypeLike) -> builtins.bool:
    """Whether `device` has its own kernel for operator `op` on `dtype` operands.

    Where it has none the operator raises NotImplementedError, or runs on the CPU through host
    copies with ORCHARD_CPU_FALLBACK=1.
    """

def memory_stats(device: _DeviceLike) -> dict[str, int] | None:
    """Bytes of a caching allocator (CUDA's pool, the CPU's host block cache), in use and held, now and
    at peak; else None."""

# Private: what the CUDA tests ask of this build (present in every build).
_built_with_cuda: builtins.bool
_metal_kernels: builtins.str

def get_num_threads() -> int:
    """The threads orchard's CPU kernels use."""

def set_num_threads(count: int) -> None:
    """Sets the threads orchard's CPU kernels use (its OpenMP loops and its BLAS calls alike)."""

def _blas_num_threads() -> int: ...
def _cpu_isas() -> list[str]: ...
def _cpu_isa() -> str: ...
def _set_cpu_isa(name: str) -> None: ...
def _cuda_device_count() -> int: ...
def _ops() -> list[str]: ...

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

    def __init__(self, data: Tensor) -> None:
        """Another Python handle to data's view and autograd state (for subclasses such as Parameter)."""
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
    def _buffer(self) -> tuple[int, int]: ...
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
    def matmul(self, other: Tensor) -> Tensor: ...
    def __matmul__(self, other: Tensor) -> Tensor: ...
    def split(
        self, split_size: SupportsIndex | Sequence[SupportsIndex], dim: SupportsIndex = 0
    ) -> tuple[Tensor, ...]: ...
    def chunk(self, chunks: SupportsIndex, dim: SupportsIndex = 0) -> tuple[Tensor, ...]: ...
    def index_select(self, dim: SupportsIndex, index: Tensor) -> Tensor: ...
    def gather(self, dim: SupportsIndex, index: Tensor) -> Tensor: ...
    def scatter_add(self, dim: SupportsIndex, index: Tensor, src: Tensor) -> Tensor: ...
    def scatter_add_(self, dim: SupportsIndex, index: Tensor, src: Tensor) -> Tensor: ...
    @overload
    def flip(self, dims: Sequence[SupportsIndex], /) -> Tensor: ...
    @overload
    def flip(self, *dims: SupportsIndex) -> Tensor: ...
    def tril(self, diagonal: SupportsIndex = 0) -> Tensor: ...
    def triu(self, diagonal: SupportsIndex = 0) -> Tensor: ...
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
    # Elementwise operators (bindings/ops_elementwise.cpp). Numbers promote like torch's
    # wrapped scalars; operators return NotImplemented for anything but tensors and numbers.
    def add(self, other: Tensor | _Scalar) -> Tensor: ...
    def sub(self, other: Tensor | _Scalar) -> Tensor: ...
    def mul(self, other: Tensor | _Scalar) -> Tensor: ...
    def div(self, other: Tensor | _Scalar) -> Tensor: ...
    def eq(self, other: Tensor | _Scalar) -> Tensor: ...
    def ne(self, other: Tensor | _Scalar) -> Tensor: ...
    def lt(self, other: Tensor | _Scalar) -> Tensor: ...
    def le(self, other: Tensor | _Scalar) -> Tensor: ...
    def gt(self, other: Tensor | _Scalar) -> Tensor: ...
    def ge(self, other: Tensor | _Scalar) -> Tensor: ...
    def add_(self, other: Tensor | _Scalar) -> Tensor: ...
    def sub_(self, other: Tensor | _Scalar) -> Tensor: ...
    def mul_(self, other: Tensor | _Scalar) -> Tensor: ...
    def div_(self, other: Tensor | _Scalar) -> Tensor: ...
    def pow(self, exponent: Tensor | _Scalar) -> Tensor: ...
    def maximum(self, other: Tensor | _Scalar) -> Tensor: ...
    def minimum(self, other: Tensor | _Scalar) -> Tensor: ...
    def lerp(self, end: Tensor, weight: Tensor | _Scalar) -> Tensor: ...
    def lerp_(self, end: Tensor, weight: Tensor | _Scalar) -> Tensor: ...
    def addcmul(self, tensor1: Tensor, tensor2: Tensor, *, value: _Scalar = 1) -> Tensor: ...
    def addcmul_(self, tensor1: Tensor, tensor2: Tensor, *, value: _Scalar = 1) -> Tensor: ...
    def addcdiv(self, tensor1: Tensor, tensor2: Tensor, *, value: _Scalar = 1) -> Tensor: ...
    def addcdiv_(self, tensor1: Tensor, tensor2: Tensor, *, value: _Scalar = 1) -> Tensor: ...
    def isnan(self) -> Tensor: ...
    def isinf(self) -> Tensor: ...
    def isfinite(self) -> Tensor: ...
    def neg(self) -> Tensor: ...
    def abs(self) -> Tensor: ...
    def exp(self) -> Tensor: ...
    def log(self) -> Tensor: ...
    def sqrt(self) -> Tensor: ...
    def rsqrt(self) -> Tensor: ...
    def tanh(self) -> Tensor: ...
    def sigmoid(self) -> Tensor: ...
    def relu(self) -> Tensor: ...
    def gelu(self, approximate: str = "none") -> Tensor: ...
    def where(self, condition: Tensor, other: Tensor | _Scalar) -> Tensor: ...
    def masked_fill(self, mask: Tensor, value: Tensor | _Scalar) -> Tensor: ...
    def clamp(self, min: Tensor | _Scalar | None = None, max: Tensor | _Scalar | None = None) -> Tensor: ...
    def __add__(self, other: Tensor | _Scalar) -> Tensor: ...
    def __radd__(self, other: _Scalar) -> Tensor: ...
    def __sub__(self, other: Tensor | _Scalar) -> Tensor: ...
    def __rsub__(self, other: _Scalar) -> Tensor: ...
    def __mul__(self, other: Tensor | _Scalar) -> Tensor: ...
    def __rmul__(self, other: _Scalar) -> Tensor: ...
    def __truediv__(self, other: Tensor | _Scalar) -> Tensor: ...
    def __rtruediv__(self, other: _Scalar) -> Tensor: ...
    def __pow__(self, other: Tensor | _Scalar) -> Tensor: ...
    def __rpow__(self, other: _Scalar) -> Tensor: ...
    def __iadd__(self, other: Tensor | _Scalar) -> Tensor: ...
    def __isub__(self, other: Tensor | _Scalar) -> Tensor: ...
    def __imul__(self, other: Tensor | _Scalar) -> Tensor: ...
    def __itruediv__(self, other: Tensor | _Scalar) -> Tensor: ...
    def __neg__(self) -> Tensor: ...
    def __abs__(self) -> Tensor: ...
    def __eq__(self, other: object) -> Tensor: ...  # type: ignore[override]
    def __ne__(self, other: object) -> Tensor: ...  # type: ignore[override]
    def __lt__(self, other: Tensor | _Scalar) -> Tensor: ...
    def __le__(self, other: Tensor | _Scalar) -> Tensor: ...
    def __gt__(self, other: Tensor | _Scalar) -> Tensor: ...
    def __ge__(self, other: Tensor | _Scalar) -> Tensor: ...
    def __hash__(self) -> int: ...
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

    # Along one dim.
    def cumsum(self, dim: SupportsIndex, *, dtype: _DTypeLike = None) -> Tensor: ...
    def sort(
        self, dim: SupportsIndex = -1, descending: builtins.bool = False, *, stable: builtins.bool = False
    ) -> ValuesIndices: ...
    def argsort(
        self, dim: SupportsIndex = -1, descending: builtins.bool = False, stable: builtins.bool = False
    ) -> Tensor: ...
    def topk(
        self,
        k: SupportsIndex,
        dim: SupportsIndex = -1,
        largest: builtins.bool = True,
        sorted: builtins.bool = True,
    ) -> ValuesIndices: ...
    def multinomial(self, num_samples: SupportsIndex, replacement: builtins.bool = False) -> Tensor: ...

    # Autograd.
    @property
    def requires_grad(self) -> builtins.bool:
        """Whether gradients are recorded for operations on this tensor."""

    @requires_grad.setter
    def requires_grad(self, arg1: builtins.bool, /) -> None: ...
    def requires_grad_(self, requires_grad: builtins.bool = True) -> Tensor: ...
    @property
    def grad(self) -> Tensor | None:
        """The gradient accumulated by backward(), or None."""

    @grad.setter
    def grad(self, arg1: Tensor | None, /) -> None: ...
    @property
    def data(self) -> Tensor:
        """This tensor's values outside the autograd graph; assigning rebinds it to another tensor's."""

    @data.setter
    def data(self, arg1: Tensor, /) -> None: ...
    @property
    def grad_fn(self) -> Node | None:
        """The node that produced this tensor, or None."""

    @property
    def is_leaf(self) -> builtins.bool: ...
    @property
    def _version(self) -> int: ...

    # Installed from Python by orchard_core._tensor_methods, whose functions name `self` `t`.
    def backward(t, gradient: Tensor | None = None, retain_graph: builtins.bool | None = None) -> None: ...
    def __repr__(t) -> str: ...
    def __str__(t) -> str: ...
    def tolist(t) -> Any: ...
    def __iter__(t) -> Iterator[Tensor]: ...
    def __array__(
        t, dtype: npt.DTypeLike | None = None, copy: builtins.bool | None = None
    ) -> npt.NDArray[Any]: ...

    # Installed from Python by orchard_core._shape_ops, whose functions name `self` `input`.
    def flatten(input, start_dim: SupportsIndex = 0, end_dim: SupportsIndex = -1) -> Tensor: ...
    def unflatten(input, dim: SupportsIndex, sizes: Sequence[SupportsIndex]) -> Tensor: ...
    def unbind(input, dim: SupportsIndex = 0) -> tuple[Tensor, ...]: ...

@overload
def empty(
    size: Sequence[SupportsIndex],
    /,
    *,
    dtype: _DTypeLike = None,
    device: _DeviceLike | None = None,
    requires_grad: builtins.bool = False,
) -> Tensor:
    """Uninitialised tensor of the given size."""

@overload
def empty(
    *size: SupportsIndex,
    dtype: _DTypeLike = None,
    device: _DeviceLike | None = None,
    requires_grad: builtins.bool = False,
) -> Tensor: ...
@overload
def zeros(
    size: Sequence[SupportsIndex],
    /,
    *,
    dtype: _DTypeLike = None,
    device: _DeviceLike | None = None,
    requires_grad: builtins.bool = False,
) -> Tensor: ...
@overload
def zeros(
    *size: SupportsIndex,
    dtype: _DTypeLike = None,
    device: _DeviceLike | None = None,
    requires_grad: builtins.bool = False,
) -> Tensor: ...
@overload
def ones(
    size: Sequence[SupportsIndex],
    /,
    *,
    dtype: _DTypeLike = None,
    device: _DeviceLike | None = None,
    requires_grad: builtins.bool = False,
) -> Tensor: ...
@overload
def ones(
    *size: SupportsIndex,
    dtype: _DTypeLike = None,
    device: _DeviceLike | None = None,
    requires_grad: builtins.bool = False,
) -> Tensor: ...
def full(
    size: Sequence[SupportsIndex],
    fill_value: _Scalar,
    *,
    dtype: _DTypeLike = None,
    device: _DeviceLike | None = None,
    requires_grad: builtins.bool = False,
) -> Tensor: ...
@overload
def arange(
    end: _Scalar,
    /,
    *,
    dtype: _DTypeLike = None,
    device: _DeviceLike | None = None,
    requires_grad: builtins.bool = False,
) -> Tensor:
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
    requires_grad: builtins.bool = False,
) -> Tensor: ...
def matmul(input: Tensor, other: Tensor) -> Tensor:
    """Matrix product with torch.matmul's rules for 1-D operands and broadcast batch dims."""

def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """torch.nn.functional.linear: input @ weight.T + bias, the bias fused into the product."""

def cat(tensors: Sequence[Tensor], dim: SupportsIndex = 0) -> Tensor:
    """Join tensors along an existing dim."""

def stack(tensors: Sequence[Tensor], dim: SupportsIndex = 0) -> Tensor:
    """Join equally shaped tensors along a new dim."""

def split(
    tensor: Tensor, split_size_or_sections: SupportsIndex | Sequence[SupportsIndex], dim: SupportsIndex = 0
) -> tuple[Tensor, ...]:
    """Views of consecutive pieces along dim."""

def chunk(input: Tensor, chunks: SupportsIndex, dim: SupportsIndex = 0) -> tuple[Tensor, ...]:
    """At most `chunks` views of equal size along dim."""

def index_select(input: Tensor, dim: SupportsIndex, index: Tensor) -> Tensor: ...
def gather(input: Tensor, dim: SupportsIndex, index: Tensor) -> Tensor: ...
def scatter_add(input: Tensor, dim: SupportsIndex, index: Tensor, src: Tensor) -> Tensor: ...
def embedding(input: Tensor, weight: Tensor) -> Tensor:
    """Rows of `weight` at the int32/int64 `input`, like torch.nn.functional.embedding."""

def one_hot(tensor: Tensor, num_classes: SupportsIndex = -1) -> Tensor: ...
def flip(input: Tensor, dims: Sequence[SupportsIndex]) -> Tensor:
    """Reverse the order of elements along dims."""

def constant_pad_nd(input: Tensor, pad: Sequence[SupportsIndex], value: _Scalar = 0) -> Tensor:
    """Pad with `value`: `pad` holds (before, after) pairs from the last dim back; negative amounts crop."""

def tril(input: Tensor, diagonal: SupportsIndex = 0) -> Tensor: ...
def triu(input: Tensor, diagonal: SupportsIndex = 0) -> Tensor: ...
def manual_seed(seed: SupportsIndex) -> None:
    """Restart the global Philox generator at `seed`."""

@overload
def rand(
    size: Sequence[SupportsIndex],
    /,
    *,
    dtype: _DTypeLike = None,
    device: _DeviceLike | None = None,
    requires_grad: builtins.bool = False,
) -> Tensor:
    """Uniform values in [0, 1)."""

@overload
def rand(
    *size: SupportsIndex,
    dtype: _DTypeLike = None,
    device: _DeviceLike | None = None,
    requires_grad: builtins.bool = False,
) -> Tensor: ...
@overload
def randn(
    size: Sequence[SupportsIndex],
    /,
    *,
    dtype: _DTypeLike = None,
    device: _DeviceLike | None = None,
    requires_grad: builtins.bool = False,
) -> Tensor:
    """Standard normal values."""

@overload
def randn(
    *size: SupportsIndex,
    dtype: _DTypeLike = None,
    device: _DeviceLike | None = None,
    requires_grad: builtins.bool = False,
) -> Tensor: ...
@overload
def randint(
    high: SupportsIndex,
    size: Sequence[SupportsIndex],
    /,
    *,
    dtype: _DTypeLike = None,
    device: _DeviceLike | None = None,
) -> Tensor:
    """Integers in [low, high) (low defaults to 0)."""

@overload
def randint(
    low: SupportsIndex,
    high: SupportsIndex,
    size: Sequence[SupportsIndex],
    /,
    *,
    dtype: _DTypeLike = None,
    device: _DeviceLike | None = None,
) -> Tensor: ...
def dropout(input: Tensor, p: float = 0.5, training: builtins.bool = True) -> Tensor: ...
def _philox4x32_10(counter: Sequence[int], key: Sequence[int]) -> list[int]:
    """The raw Philox4x32-10 block function, for known-answer tests."""

def from_numpy(array: npt.NDArray[Any]) -> Tensor:
    """Zero-copy tensor sharing a numpy array's memory; keeps the array alive."""

def from_dlpack(obj: Tensor | CapsuleType | _SupportsDLPack) -> Tensor:
    """Zero-copy tensor from any object that speaks DLPack (numpy, torch, ...)."""

# Elementwise operators (bindings/ops_elementwise.cpp), with torch's names and promotion.
def add(input: Tensor | _Scalar, other: Tensor | _Scalar) -> Tensor: ...
def sub(input: Tensor | _Scalar, other: Tensor | _Scalar) -> Tensor: ...
def mul(input: Tensor | _Scalar, other: Tensor | _Scalar) -> Tensor: ...
def div(input: Tensor | _Scalar, other: Tensor | _Scalar) -> Tensor: ...
def eq(input: Tensor, other: Tensor | _Scalar) -> Tensor: ...
def ne(input: Tensor, other: Tensor | _Scalar) -> Tensor: ...
def lt(input: Tensor, other: Tensor | _Scalar) -> Tensor: ...
def le(input: Tensor, other: Tensor | _Scalar) -> Tensor: ...
def gt(input: Tensor, other: Tensor | _Scalar) -> Tensor: ...
def ge(input: Tensor, other: Tensor | _Scalar) -> Tensor: ...
def pow(input: Tensor | _Scalar, exponent: Tensor | _Scalar) -> Tensor: ...
def maximum(input: Tensor | _Scalar, other: Tensor | _Scalar) -> Tensor: ...
def minimum(input: Tensor | _Scalar, other: Tensor | _Scalar) -> Tensor: ...
def neg(input: Tensor) -> Tensor: ...
def abs(input: Tensor) -> Tensor: ...
def exp(input: Tensor) -> Tensor: ...
def log(input: Tensor) -> Tensor: ...
def sqrt(input: Tensor) -> Tensor: ...
def rsqrt(input: Tensor) -> Tensor: ...
def tanh(input: Tensor) -> Tensor: ...
def sigmoid(input: Tensor) -> Tensor: ...
def relu(input: Tensor) -> Tensor: ...
def gelu(input: Tensor, approximate: str = "none") -> Tensor: ...
def where(condition: Tensor, input: Tensor | _Scalar, other: Tensor | _Scalar) -> Tensor: ...
def masked_fill(input: Tensor, mask: Tensor, value: Tensor | _Scalar) -> Tensor: ...
def clamp(
    input: Tensor, min: Tensor | _Scalar | None = None, max: Tensor | _Scalar | None = None
) -> Tensor: ...

# Fused pointwise operators (bindings/ops_pointwise.cpp).
def lerp(input: Tensor, end: Tensor, weight: Tensor | _Scalar) -> Tensor: ...
def addcmul(input: Tensor, tensor1: Tensor, tensor2: Tensor, *, value: _Scalar = 1) -> Tensor: ...
def addcdiv(input: Tensor, tensor1: Tensor, tensor2: Tensor, *, value: _Scalar = 1) -> Tensor: ...
def isnan(input: Tensor) -> Tensor: ...
def isinf(input: Tensor) -> Tensor: ...
def isfinite(input: Tensor) -> Tensor: ...
def adam_step_(
    param: Tensor,
    grad: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    decoupled_weight_decay: builtins.bool,
    maximize: builtins.bool,
    step_size: float,
    bias_correction2_sqrt: float,
) -> None:
    """One Adam (AdamW with decoupled_weight_decay) step of param, exp_avg and exp_avg_sq in place, in
    one kernel: the bits of optim.Adam's unfused in-place ops; step_size is lr / bias_correction1."""

def promote_types(type1: _DTypeLike, type2: _DTypeLike) -> dtype:
    """The smallest dtype both promote to, like torch.promote_types."""

def result_type(tensor: Tensor | _Scalar, other: Tensor | _Scalar) -> dtype:
    """The dtype an operation on both would produce, like torch.result_type."""

def sum(
    input: Tensor, dim: _Dims = None, keepdim: builtins.bool = False, *, dtype: _DTypeLike = None
) -> Tensor:
    """Sum over dims (all when None); integers sum to int64."""

def mean(
    input: Tensor, dim: _Dims = None, keepdim: builtins.bool = False, *, dtype: _DTypeLike = None
) -> Tensor:
    """Mean over dims (all when None); floating inputs only."""

@overload
def max(input: Tensor, dim: None = None, keepdim: builtins.bool = False) -> Tensor:
    """The largest element, or (values, indices) along dim."""

@overload
def max(input: Tensor, dim: SupportsIndex, keepdim: builtins.bool = False) -> ValuesIndices: ...
@overload
def min(input: Tensor, dim: None = None, keepdim: builtins.bool = False) -> Tensor:
    """The smallest element, or (values, indices) along dim."""

@overload
def min(input: Tensor, dim: SupportsIndex, keepdim: builtins.bool = False) -> ValuesIndices: ...
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

# Normalization and losses (bindings/ops_norm.cpp).
def layer_norm(
    input: Tensor,
    normalized_shape: SupportsIndex | Sequence[SupportsIndex],
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-05,
) -> Tensor:
    """Normalizes over the trailing normalized_shape dims, then scales by weight and adds bias."""

def cross_entropy(
    input: Tensor,
    target: Tensor,
    ignore_index: SupportsIndex = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Cross-entropy of logits (N, C) against class indices (N): log_softmax and nll in one pass per row."""

def cumsum(input: Tensor, dim: SupportsIndex, *, dtype: _DTypeLike = None) -> Tensor:
    """Running sums along dim; integers and bool sum to int64, dtype casts the input first."""

def sort(
    input: Tensor,
    dim: SupportsIndex = -1,
    descending: builtins.bool = False,
    *,
    stable: builtins.bool = False,
) -> ValuesIndices:
    """(values, indices) sorted along dim, stably; NaN sorts as the largest value."""

def argsort(
    input: Tensor, dim: SupportsIndex = -1, descending: builtins.bool = False, stable: builtins.bool = False
) -> Tensor:
    """The indices that sort input along dim."""

def topk(
    input: Tensor,
    k: SupportsIndex,
    dim: SupportsIndex = -1,
    largest: builtins.bool = True,
    sorted: builtins.bool = True,
) -> ValuesIndices:
    """(values, indices) of the k largest (smallest) along dim, in sorted order."""

def multinomial(input: Tensor, num_samples: SupportsIndex, replacement: builtins.bool = False) -> Tensor:
    """num_samples category indices per row of non-negative weights, from the global generator."""

class Node(metaclass=_pybind11_type):
    """A recorded operation in the autograd graph."""

    def name(self) -> str: ...
    @property
    def next_functions(self) -> tuple[tuple[Node | None, int], ...]: ...

class _SavedTensor(metaclass=_pybind11_type):
    """A tensor kept for backward, checked on unpack."""

    def __init__(self, tensor: Tensor) -> None: ...
    def unpack(self) -> Tensor: ...

def is_grad_enabled() -> builtins.bool:
    """Whether operations are recorded for autograd now."""

def _set_grad_enabled(enabled: builtins.bool) -> None: ...
def _backward(
    tensors: Sequence[Tensor], grad_tensors: Sequence[Tensor | None], retain_graph: builtins.bool
) -> None: ...
def _grad(
    outputs: Sequence[Tensor],
    grad_outputs: Sequence[Tensor | None],
    inputs: Sequence[Tensor],
    retain_graph: builtins.bool,
    allow_unused: builtins.bool,
) -> tuple[Tensor | None, ...]: ...
def _record_function(
    name: str, inputs: Sequence[Tensor | None], outputs: Sequence[Tensor], backward: Callable[..., Any]
) -> None: ...
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

class _TraceScope:
    def __init__(self, name: str) -> None: ...
    def close(self) -> None: ...

class _TraceModule(Protocol):
    """The ``orchard_core._core.trace`` submodule (per-op timing, for orchard_core.profiler)."""

    Scope: type[_TraceScope]
    def recording(self) -> builtins.bool: ...
    def start(self) -> None: ...
    def stop(self) -> list[tuple[str, int, int, int, int, int, int, int]]: ...

# Submodules made with def_submodule: not importable on their own, only reachable as attributes.
profile: _ProfileModule
trace: _TraceModule
