"""Shared fixtures for the orchard-flash tests (``seed`` and ``rng``: the repository's conftest.py).

* ``isa``: the test runs once per CPU instruction set this machine supports (generic, avx2,
  avx512), each with its own kernels; the one in use before is restored afterwards.
* ``device``: the kernel tests' device, "cpu" once per instruction set (as ``isa``) and then
  the first CUDA device ("cuda:0") once per kernel tier that GPU runs ("hopper" wgmma kernels
  on sm_90, "sm80" mma.sync kernels, "simt"); without one the CUDA case is skipped, with the
  reason.
* ``any_device``: "cpu" once (whatever instruction set) and CUDA once, for tests the CPU
  kernels' instruction set does not change (input checks), so the CPU runs as many as before.
* ``cuda``: the CUDA device, for CUDA-only tests (skipped without one).

_flash_devices.py says what the CUDA cases rely on; ORCHARD_TEST_REQUIRE_CUDA=1 turns their
skips into failures (for the GPU machine).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from orchard_flash import _flash

# pytest runs with --import-mode=importlib (pytest.ini), which does not put this folder on
# sys.path; the test modules import their references from _flash_reference.py here.
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _flash_devices

ISAS = _flash._cpu_isas()


def _cuda_params() -> list[str]:
    """One "cuda-TIER" case per CUDA kernel tier this GPU runs, or one skipped "cuda" case."""
    if _flash_devices.cuda_unavailable_reason() is not None:
        return ["cuda"]
    import torch

    major = torch.cuda.get_device_capability(0)[0]
    tiers = ["hopper"] if major == 9 else []
    return [f"cuda-{tier}" for tier in [*tiers, *(["sm80"] if major >= 8 else []), "simt"]]


def _cuda_tier(param: str) -> Iterator[str]:
    """The CUDA device with its kernels limited to the tier in `param` (restored afterwards)."""
    device = _flash_devices.cuda_device()
    if param == "cuda":
        yield device
        return
    saved = _flash._cuda_tier()
    _flash._set_cuda_tier(param.removeprefix("cuda-"))
    try:
        yield device
    finally:
        _flash._set_cuda_tier(saved)


@pytest.fixture(params=ISAS)
def isa(request) -> Iterator[str]:
    """Runs the test with each instruction set's kernels, restoring the previous choice."""
    saved = _flash._cpu_isa()
    _flash._set_cpu_isa(request.param)
    try:
        yield request.param
    finally:
        _flash._set_cpu_isa(saved)


@pytest.fixture(params=[*ISAS, *_cuda_params()])
def device(request) -> Iterator[str]:
    """ "cpu" with each instruction set's kernels (restoring the previous choice), then CUDA."""
    if request.param.startswith("cuda"):
        yield from _cuda_tier(request.param)
        return
    saved = _flash._cpu_isa()
    _flash._set_cpu_isa(request.param)
    try:
        yield "cpu"
    finally:
        _flash._set_cpu_isa(saved)


@pytest.fixture(params=["cpu", "cuda"])
def any_device(request) -> str:
    """ "cpu" (the default instruction set), then CUDA."""
    return "cpu" if request.param == "cpu" else _flash_devices.cuda_device()


@pytest.fixture
def cuda() -> str:
    """The CUDA device ("cuda:0"), or a skip with the reason there is none."""
    return _flash_devices.cuda_device()
