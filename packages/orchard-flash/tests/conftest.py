"""Shared fixtures for the orchard-flash tests (``seed`` and ``rng``: the repository's conftest.py).

* ``isa``: the test runs once per CPU instruction set this machine supports (generic, avx2,
  avx512), each with its own kernels; the one in use before is restored afterwards.
* ``device``: the kernel tests' device, "cpu" once per instruction set (as ``isa``), then the
  first CUDA device ("cuda:0") once per kernel tier that GPU runs ("hopper" wgmma kernels on
  sm_90, "sm80" mma.sync kernels, "simt"), then "metal" (on Linux orchard-core's Metal harness:
  the Metal kernels run on the CPU); without a CUDA device or "metal" that case is skipped, with
  the reason.
* ``any_device``: "cpu" once (whatever instruction set), CUDA once and Metal, for tests the CPU
  kernels' instruction set does not change (input checks), so the CPU runs as many as before.
* ``accelerator``: CUDA, then Metal, for comparisons with the CPU (each skipped without its
  device).
* ``cuda`` and ``metal``: that device, for tests of it alone (skipped without it).

_flash_devices.py says what the CUDA and Metal cases rely on; ORCHARD_TEST_REQUIRE_CUDA=1 and
ORCHARD_TEST_REQUIRE_METAL=1 turn their skips into failures (for the GPU machine and CI's Metal
session).
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


@pytest.fixture(params=[*ISAS, *_cuda_params(), "metal"])
def device(request) -> Iterator[str]:
    """ "cpu" with each instruction set's kernels (restoring the previous choice), then CUDA,
    then Metal."""
    if request.param.startswith("cuda"):
        yield from _cuda_tier(request.param)
        return
    if request.param == "metal":
        yield _flash_devices.metal_device()
        return
    saved = _flash._cpu_isa()
    _flash._set_cpu_isa(request.param)
    try:
        yield "cpu"
    finally:
        _flash._set_cpu_isa(saved)


def _device_named(name: str) -> str:
    """ "cpu", the CUDA device or "metal", by device type (skipped, with the reason, without it)."""
    if name == "cuda":
        return _flash_devices.cuda_device()
    if name == "metal":
        return _flash_devices.metal_device()
    return name


@pytest.fixture(params=["cpu", "cuda", "metal"])
def any_device(request) -> str:
    """ "cpu" (the default instruction set), then CUDA, then Metal."""
    return _device_named(request.param)


@pytest.fixture(params=["cuda", "metal"])
def accelerator(request) -> str:
    """The CUDA device, then "metal" (the devices besides the CPU)."""
    return _device_named(request.param)


@pytest.fixture
def cuda() -> str:
    """The CUDA device ("cuda:0"), or a skip with the reason there is none."""
    return _flash_devices.cuda_device()


@pytest.fixture
def metal() -> str:
    """ "metal", or a skip with the reason orchard-flash has no Metal device."""
    return _flash_devices.metal_device()
