"""Flash attention without the GIL while another thread writes os.environ.

The kernels allocate their outputs and scratch as orchard-core tensors with the GIL released,
and each allocation consults ORCHARD_TENSOR_PROFILE: reading it with getenv while os.environ
was written crashed the process. ORCHARD_STRESS_SECONDS sets the duration (3 s by default; the
issue's check is `ORCHARD_STRESS_SECONDS=60 pytest -k environment`).
"""

from __future__ import annotations

import os
import threading

import numpy as np
import orchard_core as oc
import orchard_flash as of

STRESS_SECONDS = float(os.environ.get("ORCHARD_STRESS_SECONDS", "3"))


def test_attention_survives_environment_writes(rng):
    q, k, v, dout = (oc.tensor(rng.standard_normal((2, 3, 67, 40)).astype(np.float32)) for _ in range(4))
    options = dict(causal=True, dropout_p=0.1, seed=7)
    expected = [np.asarray(x) for x in of.forward(q, k, v, **options)]
    stop = threading.Event()
    errors: list[BaseException] = []
    mismatches: list[int] = []

    def attend():
        try:
            while not stop.is_set():
                out, lse = of.forward(q, k, v, **options)
                of.backward(dout, q, k, v, out, lse, **options)
                if not all(
                    np.array_equal(np.asarray(a), b) for a, b in zip((out, lse), expected, strict=True)
                ):
                    mismatches.append(1)
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    workers = [threading.Thread(target=attend) for _ in range(2)]
    for worker in workers:
        worker.start()
    deadline = threading.Event()
    timer = threading.Timer(STRESS_SECONDS, deadline.set)
    timer.start()
    writes = 0
    try:
        while not deadline.is_set():
            # New names grow (and reallocate) the environment array, which is what getenv trips on.
            os.environ[f"ORCHARD_FLASH_STRESS_{writes % 64}"] = "x" * (writes % 97)
            if writes % 64 == 63:
                for name in [n for n in os.environ if n.startswith("ORCHARD_FLASH_STRESS_")]:
                    del os.environ[name]
            writes += 1
    finally:
        stop.set()
        for worker in workers:
            worker.join()
        timer.cancel()
        for name in [n for n in os.environ if n.startswith("ORCHARD_FLASH_STRESS_")]:
            del os.environ[name]
    assert not errors, errors
    assert not mismatches
    assert writes > 1000
