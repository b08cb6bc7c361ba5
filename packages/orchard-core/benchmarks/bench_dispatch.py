"""Host cost per call of small orchard-core operators: what dispatch adds, not kernels.

Prints one JSON object, microseconds per call (median of 15 timed loops of 2000 calls, one
thread, after warm-up). Comparing two builds means running it alternately with each build's
interpreter, several rounds, so that load on a shared machine falls on both:

    for r in 1 2 3 4 5 6 7; do old/bin/python bench_dispatch.py; new/bin/python bench_dispatch.py; done

docs/benchmarks/dispatch.md holds such a comparison.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable

import orchard_core as oc


def cases() -> dict[str, Callable[[], object]]:
    a, b, m = oc.randn(16), oc.randn(16), oc.randn(4, 4)
    w = oc.randn(4, 4, requires_grad=True)
    return {
        "add 16": lambda: a + b,
        "mul scalar": lambda: a * 2.0,
        "exp": lambda: a.exp(),
        "sum": lambda: a.sum(),
        "softmax": lambda: oc.softmax(m, -1),
        "matmul 4x4": lambda: m @ m,
        "clone": lambda: a.clone(),
        "zeros": lambda: oc.zeros(16),
        "autograd step": lambda: (w * w).sum().backward(),
    }


def main() -> None:
    oc.set_num_threads(1)
    result = {}
    for name, call in cases().items():
        for _ in range(200):
            call()
        loops = []
        for _ in range(15):
            start = time.perf_counter()
            for _ in range(2000):
                call()
            loops.append((time.perf_counter() - start) / 2000 * 1e6)
        result[name] = round(statistics.median(loops), 3)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
