"""Shared fixtures for the orchard-core tests (``seed`` and ``rng``: the repository's conftest.py).

* ``device``: every device-dependent test runs once per device. "metal" runs with
  ``ORCHARD_METAL_FALLBACK=cpu`` (a host-memory stand-in on hosts without Metal),
  so a real Metal backend runs exactly the same tests.
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path

import pytest

# pytest runs with --import-mode=importlib (pytest.ini), which does not put this folder on
# sys.path; the test modules import their shared helpers from _core_helpers.py here.
sys.path.insert(0, str(Path(__file__).resolve().parent))

DEVICES = ["cpu", "metal"]


@pytest.fixture(params=DEVICES)
def device(request, monkeypatch) -> str:
    if request.param == "metal":
        monkeypatch.setenv("ORCHARD_METAL_FALLBACK", "cpu")
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
