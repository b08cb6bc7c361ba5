"""Fixtures every package's tests share (pytest.ini's folder is the rootdir, so this file is
loaded for packages/*/tests however pytest is started).

* ``seed`` / ``rng``: a seed drawn freshly each run (from os.urandom) unless
  ``ORCHARD_TEST_SEED`` is set, and a numpy Generator from it. The seed is printed and recorded
  in the test's ``user_properties``, and a failing test's report says how to reproduce it.
* Variables orchard reads at run time are removed before every test, so a developer's shell
  cannot change results; tests set what they need through monkeypatch.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

SEED_ENV = "ORCHARD_TEST_SEED"
_ORCHARD_ENV = (
    "ORCHARD_CPU_FALLBACK",
    "ORCHARD_METAL_FALLBACK",
    "ORCHARD_TENSOR_PROFILE",
    "ORCHARD_TENSOR_PROFILE_LOG",
)


@pytest.fixture(autouse=True)
def _hermetic_env(monkeypatch):
    for name in _ORCHARD_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def seed(request) -> int:
    text = os.environ.get(SEED_ENV)
    # 63 bits: tests may pass seed + 1 to torch.manual_seed, which takes at most 2**64 - 1.
    value = int(text, 0) if text else int.from_bytes(os.urandom(8), "little") >> 1
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
                report.sections.append(("random seed", f"reproduce with {SEED_ENV}={value}"))
