"""Shared fixtures for the orchard-flash tests (``seed`` and ``rng``: the repository's conftest.py).

* ``isa``: the test runs once per CPU instruction set this machine supports (generic, avx2,
  avx512), each with its own kernels; the one in use before is restored afterwards.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from orchard_flash import _flash

# pytest runs with --import-mode=importlib (pytest.ini), which does not put this folder on
# sys.path; the test modules import their references from _flash_reference.py here.
sys.path.insert(0, str(Path(__file__).resolve().parent))

ISAS = _flash._cpu_isas()


@pytest.fixture(params=ISAS)
def isa(request) -> str:
    """Runs the test with each instruction set's kernels, restoring the previous choice."""
    saved = _flash._cpu_isa()
    _flash._set_cpu_isa(request.param)
    try:
        yield request.param
    finally:
        _flash._set_cpu_isa(saved)
