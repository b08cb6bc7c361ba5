"""Loads the native module ``_core`` in the environment its libraries expect."""

from __future__ import annotations

import os
import sys

if sys.platform != "darwin":
    # liborchard_core links OpenBLAS from the scipy-openblas32 wheel. The installed library
    # finds it through its rpath; importing the wheel first loads it for build-tree imports too.
    import scipy_openblas32  # noqa: F401


def _load_cuda_library(soname: str, *, required: bool) -> None:
    """Loads a CUDA library a CUDA build of liborchard_core uses (``soname``), globally.

    torch's CUDA wheels load their own copies of libcudart and libcublasLt by their paths;
    loading those same files first keeps one of each in the process (a library found by soname
    elsewhere would be a second). Without torch's ``nvidia`` wheels: the dynamic linker's search
    (LD_LIBRARY_PATH, ldconfig), then the CUDA toolkit (``$CUDA_HOME``, ``$CUDA_PATH``,
    ``/usr/local/cuda``). cuBLASLt is not `required`: without it, the first CUDA matmul says
    what to install.
    """
    import ctypes
    import glob
    import importlib.util

    nvidia = importlib.util.find_spec("nvidia")
    roots = list(nvidia.submodule_search_locations or []) if nvidia else []
    wheels = [path for root in roots for path in sorted(glob.glob(os.path.join(root, "*", "lib", soname)))]
    toolkits = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"]
    candidates = [*wheels, soname]
    candidates += [os.path.join(root, lib, soname) for root in toolkits if root for lib in ("lib64", "lib")]
    for candidate in candidates:
        try:
            ctypes.CDLL(candidate, mode=ctypes.RTLD_GLOBAL)
            return
        except OSError:
            continue
    if required:
        raise ImportError(
            f"orchard-core was built with CUDA and needs {soname}, which was not found: install torch's "
            "CUDA build (its nvidia-cuda-runtime wheel has it), or put the CUDA toolkit's lib64 folder on "
            "LD_LIBRARY_PATH or in ldconfig"
        )


try:
    from ._build_config import CUBLASLT_SONAME, CUDART_SONAME
except ImportError:  # a source tree without a build: _core's import says what is missing
    CUDART_SONAME = CUBLASLT_SONAME = ""
if CUDART_SONAME:
    _load_cuda_library(CUDART_SONAME, required=True)
    _load_cuda_library(CUBLASLT_SONAME, required=False)
from . import _core  # noqa: E402


def _configure_cpu() -> None:
    """Applies the variables that choose the CPU kernels' thread count and instruction set.

    Read once, here, under the GIL: the native code never reads the environment while kernels
    run. OMP_NUM_THREADS (its first entry) sets orchard's thread count, as it does torch's;
    otherwise orchard uses every CPU this process may run on, whichever of torch and orchard
    was imported first. ORCHARD_CPU_ISA=generic|avx2|avx512 forces a narrower instruction set.
    """
    threads = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if threads:
        try:
            _core.set_num_threads(int(threads))
        except ValueError as error:
            raise ImportError(
                f"orchard_core: OMP_NUM_THREADS={threads!r} is not a thread count: {error}"
            ) from None
    isa = os.environ.get("ORCHARD_CPU_ISA", "").strip()
    if isa:
        try:
            _core._set_cpu_isa(isa)
        except ValueError as error:
            raise ImportError(f"orchard_core: ORCHARD_CPU_ISA={isa!r}: {error}") from None


_configure_cpu()
