"""orchard-core: Orchard's native tensor library (Tensor v0).

Storage, strided views, devices and allocation profiling, implemented in C++
(``liborchard_core``) and bound to Python. Extensions such as orchard-flash
build against the headers and library this package ships; see
:func:`get_include` and :func:`get_lib`.
"""

from __future__ import annotations

from pathlib import Path

from . import _core, profile
from ._core import (
    OutOfMemoryError,
    Tensor,
    ValuesIndices,
    arange,
    argmax,
    argmin,
    bfloat16,
    bool,  # noqa: A004 - the dtype, named as in torch and numpy
    device,
    device_description,
    devices,
    dtype,
    empty,
    float16,
    float32,
    float64,
    from_dlpack,
    from_numpy,
    full,
    int32,
    int64,
    log_softmax,
    logsumexp,
    max,  # noqa: A004 - the reduction, named as in torch
    mean,
    min,  # noqa: A004
    ones,
    softmax,
    std,
    sum,  # noqa: A004
    var,
    zeros,
)
from ._creation import tensor
from ._tensor_methods import install as _install_tensor_methods

__version__: str = _core.__version__

_install_tensor_methods(Tensor)

_PACKAGE_DIR = Path(__file__).resolve().parent


def get_include() -> str:
    """Directory holding the public C++ headers (``#include <orchard/orchard.h>``)."""
    return str(_PACKAGE_DIR / "include")


def get_lib() -> str:
    """Directory holding ``liborchard_core``, for extensions that link against it."""
    return str(_PACKAGE_DIR / "lib")


__all__ = [
    "OutOfMemoryError",
    "Tensor",
    "ValuesIndices",
    "__version__",
    "arange",
    "argmax",
    "argmin",
    "bfloat16",
    "bool",
    "device",
    "device_description",
    "devices",
    "dtype",
    "empty",
    "float16",
    "float32",
    "float64",
    "from_dlpack",
    "from_numpy",
    "full",
    "get_include",
    "get_lib",
    "int32",
    "int64",
    "log_softmax",
    "logsumexp",
    "max",
    "mean",
    "min",
    "ones",
    "profile",
    "softmax",
    "std",
    "sum",
    "tensor",
    "var",
    "zeros",
]
