"""matmul of orchard-core next to torch and numpy, measured in one run.

Each case times the same product in the three libraries (median over repeats of a timed
loop) and reports milliseconds per call and the ratios orchard/numpy and orchard/torch
(below 1: orchard is faster). orchard-core and numpy both call OpenBLAS; torch uses its
own BLAS. Absolute times on shared machines are noise; the ratios within one run are the
evidence. Threads: torch keeps its default count, OpenBLAS (orchard-core's and numpy's)
its own default, orchard-core's OpenMP loops (bfloat16 conversion) theirs.

    python bench_matmul.py --out docs/benchmarks/matmul.md
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import orchard_core as oc
import torch

Case = tuple[str, Callable[[], object], Callable[[], object], Callable[[], object] | None]


def loop_size(fn: Callable[[], object], budget_s: float) -> int:
    """Calls per timed loop so that one loop takes about budget_s / 10."""
    fn()  # warm-up: BLAS thread pools and first-touch allocations
    loops = 1
    while True:
        start = time.perf_counter()
        for _ in range(loops):
            fn()
        if time.perf_counter() - start > budget_s / 10:
            return loops
        loops *= 2


def per_call_ms(fns: list[Callable[[], object]], budget_s: float, repeats: int) -> list[float]:
    """Median time per call of each function, in milliseconds.

    The functions take turns within every repeat, so a change in the machine's load
    (it is shared) falls on all of them alike.
    """
    loops = [loop_size(fn, budget_s) for fn in fns]
    samples: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, count, times in zip(fns, loops, samples, strict=True):
            start = time.perf_counter()
            for _ in range(count):
                fn()
            times.append((time.perf_counter() - start) / count * 1e3)
    return [statistics.median(times) for times in samples]


def operands(rng: np.random.Generator, shape_a, shape_b, dtype: str):
    a = rng.standard_normal(shape_a).astype(np.float32 if dtype == "bfloat16" else dtype)
    b = rng.standard_normal(shape_b).astype(a.dtype)
    ta, tb = torch.from_numpy(a.copy()), torch.from_numpy(b.copy())
    oa, ob = oc.tensor(a), oc.tensor(b)
    if dtype == "bfloat16":
        ta, tb = ta.bfloat16(), tb.bfloat16()
        oa, ob = oa.to(oc.bfloat16), ob.to(oc.bfloat16)
    return (oa, ob), (ta, tb), (a, b)


def product_case(name: str, rng, shape_a, shape_b, dtype: str, transpose_a: bool = False) -> Case:
    (oa, ob), (ta, tb), (na, nb) = operands(rng, shape_a, shape_b, dtype)
    if transpose_a:
        oa, ta, na = oa.mT, ta.mT, np.swapaxes(na, -1, -2)
    numpy_fn = None if dtype == "bfloat16" else (lambda: na @ nb)
    return (name, lambda: oa @ ob, lambda: ta @ tb, numpy_fn)


def cases() -> list[Case]:
    rng = np.random.default_rng(0)
    return [
        product_case("float32 1024x1024 @ 1024x1024", rng, (1024, 1024), (1024, 1024), "float32"),
        product_case("float32 2048x2048 @ 2048x2048", rng, (2048, 2048), (2048, 2048), "float32"),
        product_case("float64 1024x1024 @ 1024x1024", rng, (1024, 1024), (1024, 1024), "float64"),
        product_case("float32 1024² with a transposed a", rng, (1024, 1024), (1024, 1024), "float32", True),
        product_case("bfloat16 1024x1024 @ 1024x1024", rng, (1024, 1024), (1024, 1024), "bfloat16"),
        product_case("float32 batch 64 x 128² @ 128²", rng, (64, 128, 128), (128, 128), "float32"),
        product_case("float32 1000 x 8x8 @ 8x8 (batched)", rng, (1000, 8, 8), (1000, 8, 8), "float32"),
        product_case("float32 4096 dot", rng, (4096,), (4096,), "float32"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--budget", type=float, default=1.0, help="seconds per measurement (default 1)")
    parser.add_argument("--repeats", type=int, default=11, help="timed loops per library (default 11)")
    parser.add_argument("--out", type=Path, help="write a markdown table here")
    args = parser.parse_args()

    rows = []
    for name, ours, theirs, numpys in cases():
        o, t, *rest = per_call_ms([ours, theirs] + ([numpys] if numpys else []), args.budget, args.repeats)
        n = rest[0] if rest else None
        rows.append((name, o, t, n))
        print(
            f"{name:40s} orchard {o:9.3f} ms  orchard/torch {o / t:5.2f}"
            + (f"  orchard/numpy {o / n:5.2f}" if n else "")
        )

    if args.out:
        command = "python packages/orchard-core/benchmarks/bench_matmul.py " + " ".join(sys.argv[1:])
        lines = [
            "# orchard-core matmul vs torch and numpy",
            "",
            f"Command: `{command}` (or `nox -s bench`)  ",
            f"Machine: {platform.machine()} {platform.system()}, {os.cpu_count()} CPUs; "
            f"torch {torch.__version__} ({torch.get_num_threads()} threads, its default), "
            f"numpy {np.__version__} (OpenBLAS, its default threads), orchard-core {oc.__version__} "
            "(scipy-openblas32 with its default threads; OpenMP loops with the default "
            f"{os.environ.get('OMP_NUM_THREADS', os.cpu_count())} threads).  ",
            f"Load average while it ran: {os.getloadavg()[0]:.1f} (a shared machine).  ",
            "Ratios below 1 mean orchard-core is faster; all timed in the same run, the libraries "
            f"taking turns, median of {args.repeats} timed loops. "
            "Target: float32 1024² and 2048² within 1.1x of numpy.",
            "",
            "| operation | orchard ms | torch ms | numpy ms | orchard/torch | orchard/numpy |",
            "|---|---|---|---|---|---|",
        ]
        for name, o, t, n in rows:
            numpy_ms, numpy_ratio = (f"{n:.3f}", f"{o / n:.2f}") if n else ("—", "—")
            lines.append(f"| {name} | {o:.3f} | {t:.3f} | {numpy_ms} | {o / t:.2f} | {numpy_ratio} |")
        args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
