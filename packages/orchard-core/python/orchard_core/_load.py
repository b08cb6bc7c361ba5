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
try:
    from . import _core  # noqa: F401
finally:
    if not _POLICY_CHOSEN:
        del os.environ["OMP_WAIT_POLICY"]
