"""Shared fixtures for the orchard-core tests (``seed`` and ``rng``: the repository's conftest.py).

* ``device``: every device-dependent test runs once per device this build and host have
  (``orchard_core.devices()``: "cpu", "cuda:N" with a CUDA build and GPU, "metal" with a Metal
  backend). Operators a device has no kernel for (``orchard_core.supports``) run there with
  ``ORCHARD_CPU_FALLBACK=1``, staged through the CPU: the device's memory, copies and
  fallback path are what those cases test until it has the kernels. The host-memory "metal"
  stand-in (``ORCHARD_METAL_FALLBACK=cpu``) is no device of this list: transfer tests ask for
  it themselves.
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path

import orchard_core as oc
import pytest

# pytest runs with --import-mode=importlib (pytest.ini), which does not put this folder on
# sys.path; the test modules import their shared helpers from _core_helpers.py here.
sys.path.insert(0, str(Path(__file__).resolve().parent))

DEVICES = [str(d) for d in oc.devices()]


@pytest.fixture(params=DEVICES)
def device(request, monkeypatch) -> str:
    if request.param != "cpu":
        monkeypatch.setenv("ORCHARD_CPU_FALLBACK", "1")
    return request.param


@pytest.fixture
def profile_log(monkeypatch, tmp_path):
    """Profiling on, logging to a fresh file under tmp_path, counters zeroed."""
    import orchard_core as oc

    gc.collect()  # storages from earlier tests must not free into this test's log
    path = tmp_path / "orchard_profile.log"
    monkeypatch.setenv("ORCHARD_TENSOR_PROFILE_LOG", str(path))
    monkeypatch.setenv("ORCHARD_TENSOR_PROFILE", "1")
    oc.profile.reset()
    yield path
    monkeypatch.delenv("ORCHARD_TENSOR_PROFILE")
    oc.profile.reset()
