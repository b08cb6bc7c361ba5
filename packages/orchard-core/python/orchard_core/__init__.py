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
    arange,
    bfloat16,
    bool,  # noqa: A004 - the dtype, named as in torch and numpy
    cat,
    chunk,
    device,
    device_description,
    devices,
    dropout,
    dtype,
    embedding,
    empty,
    float16,
    float32,
    float64,
    from_dlpack,
    from_numpy,
    full,
    gather,
    index_select,
    int32,
    int64,
    manual_seed,
    one_hot,
    ones,
    rand,
    randint,
    randn,
    scatter_add,
    split,
    stack,
    tril,
    triu,
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
    "__version__",
    "arange",
    "bfloat16",
    "bool",
    "cat",
    "chunk",
    "device",
    "device_description",
    "devices",
    "dropout",
    "dtype",
    "embedding",
    "empty",
    "float16",
    "float32",
    "float64",
    "from_dlpack",
    "from_numpy",
    "full",
    "gather",
    "get_include",
    "get_lib",
    "index_select",
    "int32",
    "int64",
    "manual_seed",
    "one_hot",
    "ones",
    "profile",
    "rand",
    "randint",
    "randn",
    "scatter_add",
    "split",
    "stack",
    "tensor",
    "tril",
    "triu",
    "zeros",
]
