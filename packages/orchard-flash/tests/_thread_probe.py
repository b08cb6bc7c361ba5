"""Runs forward and backward (with dropout) on every instruction set for test_dropout's
thread-count check: imported in the test process, and run as a script under other
OMP_NUM_THREADS values (``python _thread_probe.py INPUTS.npz RESULTS.npz``)."""

from __future__ import annotations

import sys

import numpy as np
import orchard_core as oc
import orchard_flash as of
from orchard_flash import _flash


def compute(data) -> dict[str, np.ndarray]:
    """{"isa-dtype-name": float32 array} for out, lse, dq, dk, dv (bf16 widens exactly)."""
    results = {}
    saved = _flash._cpu_isa()
    options = dict(causal=True, dropout_p=0.2, seed=int(data["seed"]))
    try:
        for isa in _flash._cpu_isas():
            _flash._set_cpu_isa(isa)
            for dtype in (oc.float32, oc.bfloat16):
                q, k, v, dout = (oc.tensor(data[n], dtype=dtype) for n in ("q", "k", "v", "dout"))
                out, lse = of.forward(q, k, v, **options)
                grads = of.backward(
                    dout, q, k, v, out, lse, dlse=oc.tensor(data["dlse"], dtype=oc.float32), **options
                )
                for name, x in zip(("out", "lse", "dq", "dk", "dv"), (out, lse, *grads), strict=True):
                    results[f"{isa}-{dtype.name}-{name}"] = np.asarray(x.to(oc.float32))
    finally:
        _flash._set_cpu_isa(saved)
    return results


if __name__ == "__main__":
    np.savez(sys.argv[2], **compute(np.load(sys.argv[1])))
