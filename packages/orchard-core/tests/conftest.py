"""Shared fixtures for the orchard-core tests.

* ``rng``: a numpy Generator seeded freshly each run (from os.urandom) unless
  ``ORCHARD_TEST_SEED`` is set; the seed is printed and recorded in the test's
  ``user_properties``, and a failing test's report says how to reproduce it.
* ``device``: every device-dependent test runs once per device. "metal" runs with
  ``ORCHARD_METAL_FALLBACK=cpu`` (a host-memory stand-in on hosts without Metal),
  so a real Metal backend runs exactly the same tests.
"""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path

import numpy as np
import pytest

# pytest runs with --import-mode=importlib (pytest.ini), which does not put this folder on
# sys.path; the test modules import their shared helpers from _core_helpers.py here.
sys.path.insert(0, str(Path(__file__).resolve().parent))

SEED_ENV = "ORCHARD_TEST_SEED"
DEVICES = ["cpu", "metal"]

# Variables orchard-core reads at run time; each test starts without them and sets
# what it needs through monkeypatch, so a developer's shell cannot change results.
_ORCHARD_ENV = ("ORCHARD_METAL_FALLBACK", "ORCHARD_TENSOR_PROFILE", "ORCHARD_TENSOR_PROFILE_LOG")


@pytest.fixture(autouse=True)
def _hermetic_env(monkeypatch):
    for name in _ORCHARD_ENV:
        monkeypatch.delenv(name, raising=False)


def _pick_seed() -> int:
    text = os.environ.get(SEED_ENV)
    if text:
        return int(text, 0)
    return int.from_bytes(os.urandom(8), "little")


@pytest.fixture
def seed(request) -> int:
    value = _pick_seed()
    request.node.user_properties.append(("seed", value))
    print(f"random seed: {SEED_ENV}={value}")
    return value


@pytest.fixture
def rng(seed) -> np.random.Generator:
    return np.random.default_rng(seed)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for name, value in item.user_properties:
            if name == "seed":
                report.sections.append(("orchard-core random seed", f"reproduce with {SEED_ENV}={value}"))


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
