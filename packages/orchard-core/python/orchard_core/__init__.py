"""orchard-core: Orchard's native tensor library (Tensor v0).

Storage, strided views, devices and allocation profiling, implemented in C++
(``liborchard_core``) and bound to Python. Extensions such as orchard-flash
build against the headers and library this package ships; see
:func:`get_include` and :func:`get_lib`.
"""

from __future__ import annotations

from pathlib import Path

from . import _load  # noqa: F401 - first: loads the native module with its environment

# isort: split
from . import _core, autograd, profile
from ._autocast import autocast, matmul
from ._core import (
    OutOfMemoryError,
    Tensor,
    ValuesIndices,
    abs,  # noqa: A004 - the operator, named as in torch
    add,
    addcdiv,
    addcmul,
    arange,
    argmax,
    argmin,
    argsort,
    bfloat16,
    bool,  # noqa: A004 - the dtype, named as in torch and numpy
    cat,
    chunk,
    clamp,
    constant_pad_nd,
    cross_entropy,
    cumsum,
    device,
    device_description,
    devices,
    div,
    dropout,
    dtype,
    embedding,
    empty,
    eq,
    exp,
    flip,
    float16,
    float32,
    float64,
    from_dlpack,
    from_numpy,
    full,
    gather,
    ge,
    gelu,
    get_num_threads,
    gt,
    index_select,
    int32,
    int64,
    is_grad_enabled,
    isfinite,
    isinf,
    isnan,
    layer_norm,
    le,
    lerp,
    linear,
    log,
    log_softmax,
    logsumexp,
    lt,
    manual_seed,
    masked_fill,
    max,  # noqa: A004 - the reduction, named as in torch
    maximum,
    mean,
    memory_stats,
    min,  # noqa: A004
    minimum,
    mul,
    multinomial,
    ne,
    neg,
    one_hot,
    ones,
    pow,  # noqa: A004 - the operator, named as in torch
    promote_types,
    rand,
    randint,
    randn,
    relu,
    result_type,
    rsqrt,
    scatter_add,
    set_num_threads,
    sigmoid,
    softmax,
    sort,
    split,
    sqrt,
    stack,
    std,
    sub,
    sum,  # noqa: A004
    supports,
    synchronize,
    tanh,
    topk,
    tril,
    triu,
    var,
    where,
    zeros,
)
from ._creation import tensor
from ._deterministic import are_deterministic_algorithms_enabled, use_deterministic_algorithms
from ._shape_ops import (
    empty_like,
    flatten,
    full_like,
    ones_like,
    rand_like,
    randint_like,
    randn_like,
    unbind,
    unflatten,
    zeros_like,
)
from ._shape_ops import install as _install_shape_ops
from ._tensor_methods import install as _install_tensor_methods
from .autograd import enable_grad, no_grad, set_grad_enabled

# isort: split
from . import nn, optim, profiler
from .serialization import load, load_file, save, save_file

__version__: str = _core.__version__

_install_tensor_methods(Tensor)
_install_shape_ops(Tensor)

_PACKAGE_DIR = Path(__file__).resolve().parent


def cpu_isa() -> str:
    """The instruction set of the CPU kernels in use: "generic", "avx2", "avx512",
    "avx512_bf16" (AVX-512's loops, and bfloat16 matmul and attention on vdpbf16ps) or
    "amx_bf16" (the same, with bfloat16 products on AMX's tile registers).

    The widest this CPU runs (but "avx512" on Intel CPUs that have "avx512_bf16", where its
    instruction measured no faster), unless ORCHARD_CPU_ISA named another at import. Every set
    gives bitwise the same elementwise and reduction results (docs/architecture.md, "Numerics");
    matmul is outside that contract.
    """
    return _core._cpu_isa()


def get_include() -> str:
    """Directory holding the public C++ headers (``#include <orchard/orchard.h>``)."""
    return str(_PACKAGE_DIR / "include")


def get_lib() -> str:
    """Directory holding ``liborchard_core``, for extensions that link against it."""
    return str(_PACKAGE_DIR / "lib")


# torch's other names of the dtypes, so that torch code (dtype=torch.long) reads the same.
long = int64
int = int32  # noqa: A001
float = float32  # noqa: A001
double = float64
half = float16

__all__ = [
    "OutOfMemoryError",
    "Tensor",
    "ValuesIndices",
    "__version__",
    "abs",
    "add",
    "addcdiv",
    "addcmul",
    "arange",
    "are_deterministic_algorithms_enabled",
    "argmax",
    "argmin",
    "argsort",
    "autocast",
    "autograd",
    "bfloat16",
    "bool",
    "cat",
    "chunk",
    "clamp",
    "constant_pad_nd",
    "cpu_isa",
    "cross_entropy",
    "cumsum",
    "device",
    "device_description",
    "devices",
    "div",
    "double",
    "dropout",
    "dtype",
    "embedding",
    "empty",
    "empty_like",
    "enable_grad",
    "eq",
    "exp",
    "flatten",
    "flip",
    "float",
    "float16",
    "float32",
    "float64",
    "from_dlpack",
    "from_numpy",
    "full",
    "full_like",
    "gather",
    "ge",
    "gelu",
    "get_include",
    "get_lib",
    "get_num_threads",
    "gt",
    "half",
    "index_select",
    "int",
    "int32",
    "int64",
    "is_grad_enabled",
    "isfinite",
    "isinf",
    "isnan",
    "layer_norm",
    "le",
    "lerp",
    "linear",
    "load",
    "load_file",
    "log",
    "log_softmax",
    "logsumexp",
    "long",
    "lt",
    "manual_seed",
    "masked_fill",
    "matmul",
    "max",
    "maximum",
    "mean",
    "memory_stats",
    "min",
    "minimum",
    "mul",
    "multinomial",
    "ne",
    "neg",
    "nn",
    "no_grad",
    "one_hot",
    "ones",
    "ones_like",
    "optim",
    "pow",
    "profile",
    "profiler",
    "promote_types",
    "rand",
    "rand_like",
    "randint",
    "randint_like",
    "randn",
    "randn_like",
    "relu",
    "result_type",
    "rsqrt",
    "save",
    "save_file",
    "scatter_add",
    "set_grad_enabled",
    "set_num_threads",
    "sigmoid",
    "softmax",
    "sort",
    "split",
    "sqrt",
    "stack",
    "std",
    "sub",
    "sum",
    "supports",
    "synchronize",
    "tanh",
    "tensor",
    "topk",
    "tril",
    "triu",
    "unbind",
    "unflatten",
    "use_deterministic_algorithms",
    "var",
    "where",
    "zeros",
    "zeros_like",
]
