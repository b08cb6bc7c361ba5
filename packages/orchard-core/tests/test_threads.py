"""One threading policy: orchard's thread count, whatever the import order of torch and orchard.

orchard's OpenMP loops and its BLAS share one count (`set_num_threads`); OpenBLAS runs
single-threaded inside orchard's threads, so no second pool busy-waits between calls. These
tests check the configuration, not timing (benchmarks/bench_import_order.py measures speed).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import orchard_core as oc
import pytest


@pytest.fixture
def restore_threads():
    saved = oc.get_num_threads()
    yield
    oc.set_num_threads(saved)


def test_set_num_threads_round_trips(restore_threads):
    for count in (1, 3, 2):
        oc.set_num_threads(count)
        assert oc.get_num_threads() == count


@pytest.mark.parametrize("count", [0, -2, 2**20])
def test_a_bad_thread_count_is_refused_by_value(count, restore_threads):
    before = oc.get_num_threads()
    with pytest.raises(ValueError, match=f"got {count}"):
        oc.set_num_threads(count)
    assert oc.get_num_threads() == before


@pytest.mark.skipif(sys.platform == "darwin", reason="Accelerate manages its own threads")
def test_blas_never_starts_its_own_pool():
    assert oc._core._blas_num_threads() == 1


# (batch, m, k, n): single products split along rows or columns, vectors, batches.
PRODUCT_SHAPES = [
    (1, 1031, 257, 193),
    (1, 37, 129, 2051),
    (1, 1024, 128, 161),
    (5, 301, 67, 45),
    (1, 999, 777, 1),
]


@pytest.mark.parametrize("dtype", ["float32", "float64", "bfloat16"])
def test_results_do_not_depend_on_the_thread_count(dtype, rng, restore_threads):
    results: dict[int, list[np.ndarray]] = {}
    wide = rng.uniform(-20, 20, (613, 1301)).astype(np.float32)
    operands = [
        (oc.tensor(rng.standard_normal((b, m, k)).astype(np.float32)).to(getattr(oc, dtype)),
         oc.tensor(rng.standard_normal((b, k, n)).astype(np.float32)).to(getattr(oc, dtype)))
        for b, m, k, n in PRODUCT_SHAPES
    ]  # fmt: skip
    x = oc.tensor(wide).to(getattr(oc, dtype))
    for count in (1, 2, 3):
        oc.set_num_threads(count)
        outputs = [a @ b for a, b in operands]
        outputs += [x.exp(), x.sum(0), x.sum(), x.softmax(-1), x.T.contiguous(), oc.gelu(x[:, ::3])]
        results[count] = [np.asarray(out.to(oc.float64)) for out in outputs]
    for count in (2, 3):
        for index, (got, want) in enumerate(zip(results[count], results[1], strict=True)):
            np.testing.assert_array_equal(got, want, err_msg=f"output {index} with {count} threads")


_PROBE = """
import json, os, sys
first = sys.argv[1]
if first == "torch":
    import torch
    import orchard_core as oc
else:
    import orchard_core as oc
    import torch
torch_threads = torch.get_num_threads()
(oc.ones(300, 300) @ oc.ones(300, 300)).sum()  # BLAS and OpenMP have both run
torch.ones(300, 300).exp().sum()
state = {"orchard": oc.get_num_threads(), "blas": oc._core._blas_num_threads(), "torch": torch_threads}
oc.set_num_threads(1)
state["torch_after_orchard_set"] = torch.get_num_threads()
torch.set_num_threads(3)
state["orchard_after_torch_set"] = oc.get_num_threads()
maps = open("/proc/self/maps").read().splitlines() if os.path.exists("/proc/self/maps") else []
state["openmp_runtimes"] = len({line.split()[-1] for line in maps if "libgomp" in line or "libomp" in line})
print(json.dumps(state))
"""


def _probe(first: str, **env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "ORCHARD_CPU_ISA")}
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, first],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@pytest.mark.parametrize("first", ["torch", "orchard"])
def test_the_policy_holds_in_either_import_order(first):
    pytest.importorskip("torch")
    state = _probe(first)
    assert state["orchard"] == _cpus()
    if sys.platform != "darwin":
        assert state["blas"] == 1
    # Each library keeps its own count: setting one leaves the other alone.
    assert state["torch_after_orchard_set"] == state["torch"]
    assert state["orchard_after_torch_set"] == 1
    if sys.platform.startswith("linux"):
        assert state["openmp_runtimes"] == 1  # torch's libgomp and orchard's are one library


@pytest.mark.parametrize("first", ["torch", "orchard"])
def test_omp_num_threads_sets_orchards_count_in_either_order(first):
    pytest.importorskip("torch")
    assert _probe(first, OMP_NUM_THREADS="1")["orchard"] == 1
    assert _probe(first, OMP_NUM_THREADS="3,2")["orchard"] == 3


def test_a_bad_omp_num_threads_fails_the_import_by_value():
    env = {**os.environ, "OMP_NUM_THREADS": "zero"}
    out = subprocess.run(
        [sys.executable, "-c", "import orchard_core"], env=env, capture_output=True, text=True
    )
    assert out.returncode != 0
    assert "OMP_NUM_THREADS='zero'" in out.stderr
