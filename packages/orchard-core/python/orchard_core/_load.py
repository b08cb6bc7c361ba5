"""Loads the native module ``_core`` in the environment its libraries expect."""

from __future__ import annotations

import os
import sys

if sys.platform != "darwin":
    # liborchard_core links OpenBLAS from the scipy-openblas32 wheel. The installed library
    # finds it through its rpath; importing the wheel first loads it for build-tree imports too.
    import scipy_openblas32  # noqa: F401

# OpenMP threads that spin after a parallel region steal the cores OpenBLAS's own pool needs
# for the next matmul (4-5x slower fwd+bwd of a linear layer on 2 cores). Unless the user chose
# a policy, orchard's OpenMP runtime, initialised as _core loads, waits passively; the
# variable is removed at once so that child processes do not inherit it.
_POLICY_CHOSEN = "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ
if not _POLICY_CHOSEN:
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"


def _load_cudart(soname: str) -> None:
    """Loads the CUDA runtime a CUDA build of liborchard_core links (``soname``), globally.

    torch's CUDA wheels load their own copy of libcudart by its path; loading that same file
    first keeps one CUDA runtime in the process (a library found by soname elsewhere would be a
    second). Without torch's ``nvidia`` wheels: the dynamic linker's search (LD_LIBRARY_PATH,
    ldconfig), then the CUDA toolkit (``$CUDA_HOME``, ``$CUDA_PATH``, ``/usr/local/cuda``).
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
    raise ImportError(
        f"orchard-core was built with CUDA and needs {soname}, which was not found: install torch's "
        "CUDA build (its nvidia-cuda-runtime wheel has it), or put the CUDA toolkit's lib64 folder on "
        "LD_LIBRARY_PATH or in ldconfig"
    )


try:
    from ._build_config import CUDART_SONAME
except ImportError:  # a source tree without a build: _core's import says what is missing
    CUDART_SONAME = ""
if CUDART_SONAME:
    _load_cudart(CUDART_SONAME)
try:
    from . import _core  # noqa: F401
finally:
    if not _POLICY_CHOSEN:
        del os.environ["OMP_WAIT_POLICY"]
