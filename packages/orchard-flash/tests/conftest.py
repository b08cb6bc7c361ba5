"""Shared fixtures for the orchard-flash tests.

* ``rng``: a numpy Generator seeded freshly each run (from os.urandom) unless
  ``ORCHARD_TEST_SEED`` is set; the seed is printed, and a failing test's report says how to
  reproduce it.
* ``isa``: the test runs once per CPU instruction set this machine supports (generic, avx2,
  avx512), each with its own kernels; the one in use before is restored afterwards.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from orchard_flash import _flash

# pytest runs with --import-mode=importlib (pytest.ini), which does not put this folder on
# sys.path; the test modules import their references from _flash_reference.py here.
sys.path.insert(0, str(Path(__file__).resolve().parent))

SEED_ENV = "ORCHARD_TEST_SEED"
ISAS = _flash._cpu_isas()

# Variables orchard-core reads at run time: each test starts without them.
_ORCHARD_ENV = ("ORCHARD_METAL_FALLBACK", "ORCHARD_TENSOR_PROFILE", "ORCHARD_TENSOR_PROFILE_LOG")


@pytest.fixture(autouse=True)
def _hermetic_env(monkeypatch):
    for name in _ORCHARD_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def seed(request) -> int:
    text = os.environ.get(SEED_ENV)
    value = int(text, 0) if text else int.from_bytes(os.urandom(8), "little")
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
                report.sections.append(("orchard-flash random seed", f"reproduce with {SEED_ENV}={value}"))


@pytest.fixture(params=ISAS)
def isa(request) -> str:
    """Runs the test with each instruction set's kernels, restoring the previous choice."""
    saved = _flash._cpu_isa()
    _flash._set_cpu_isa(request.param)
    try:
        yield request.param
    finally:
        _flash._set_cpu_isa(saved)
