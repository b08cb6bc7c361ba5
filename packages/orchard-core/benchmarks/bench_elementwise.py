"""Elementwise operators of orchard-core next to torch (and numpy), measured in one run.

Each case times the same operation in each library (median over repeats of a timed
loop, the libraries taking turns in every repeat so that load from other processes falls
on all of them alike) and reports microseconds per call and the ratios torch/orchard and
numpy/orchard (above 1: orchard is faster). torch keeps its default thread count and orchard-core
uses OpenMP; both thread counts are printed and written to the table.

    python bench_elementwise.py --out docs/benchmarks/elementwise.md
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


def loops_for(fn: Callable[[], object], budget_s: float) -> int:
    """Calls per timed loop so that one loop takes about budget_s / 20."""
    loops = 1
    while True:
        start = time.perf_counter()
        for _ in range(loops):
            fn()
        if time.perf_counter() - start > budget_s / 20:
            return loops
        loops *= 2


def interleaved_us(fns: list[Callable[[], object]], budget_s: float, repeats: int = 9) -> list[float]:
    """Median microseconds per call of each function, timed in turns within every repeat."""
    loops = [loops_for(fn, budget_s) for fn in fns]
    samples: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, count, out in zip(fns, loops, samples, strict=True):
            start = time.perf_counter()
            for _ in range(count):
                fn()
            out.append((time.perf_counter() - start) / count * 1e6)
    return [statistics.median(s) for s in samples]


def cases(side: int) -> list[Case]:
    rng = np.random.default_rng(0)

    def trio(*shape: int) -> tuple[np.ndarray, torch.Tensor, oc.Tensor]:
        base = rng.standard_normal(shape, dtype=np.float32)
        return base, torch.from_numpy(base.copy()), oc.tensor(base)

    s_np, s_t, s_o = trio(16)
    a_np, a_t, a_o = trio(side, side)
    b_np, b_t, b_o = trio(side, side)
    r_np, r_t, r_o = trio(side)
    n = f"{side}x{side} float32"
    return [
        ("add 16 floats (dispatch)", lambda: s_o + s_o, lambda: s_t + s_t, lambda: s_np + s_np),
        (f"add {n}", lambda: a_o + b_o, lambda: a_t + b_t, lambda: a_np + b_np),
        (f"mul {n}", lambda: a_o * b_o, lambda: a_t * b_t, lambda: a_np * b_np),
        (f"div {n}", lambda: a_o / b_o, lambda: a_t / b_t, lambda: a_np / b_np),
        (f"add {n} + row ({side},)", lambda: a_o + r_o, lambda: a_t + r_t, lambda: a_np + r_np),
        (f"mul {n} * row ({side},)", lambda: a_o * r_o, lambda: a_t * r_t, lambda: a_np * r_np),
        (f"div {n} / row ({side},)", lambda: a_o / r_o, lambda: a_t / r_t, lambda: a_np / r_np),
        (f"add {n} + 1.5", lambda: a_o + 1.5, lambda: a_t + 1.5, lambda: a_np + np.float32(1.5)),
        (f"add transposed {n}", lambda: a_o.T + b_o, lambda: a_t.T + b_t, lambda: a_np.T + b_np),
        (f"exp {n}", lambda: oc.exp(a_o), lambda: torch.exp(a_t), lambda: np.exp(a_np)),
        (f"gelu {n}", lambda: oc.gelu(a_o), lambda: torch.nn.functional.gelu(a_t), None),
        (f"in-place add_ {n}", lambda: a_o.add_(b_o), lambda: a_t.add_(b_t), None),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--side", type=int, default=4096, help="side of the square matrices (default 4096)")
    parser.add_argument("--budget", type=float, default=0.5, help="seconds per measurement (default 0.5)")
    parser.add_argument("--out", type=Path, help="write a markdown table here")
    args = parser.parse_args()
    threads = torch.get_num_threads()  # torch's default; orchard's OpenMP uses OMP_NUM_THREADS or all cores
    omp = os.environ.get("OMP_NUM_THREADS", f"default ({os.cpu_count()} cores)")
    load = os.getloadavg()[0]
    print(f"torch threads {threads}, orchard OpenMP threads {omp}, load average {load:.1f}")

    rows = []
    for name, ours, theirs, numpys in cases(args.side):
        o, t, *rest = interleaved_us([ours, theirs, *([numpys] if numpys else [])], args.budget)
        n = rest[0] if rest else None
        rows.append((name, o, t, n))
        print(
            f"{name:45s} orchard {o:10.2f} us  torch/orchard {t / o:5.2f}"
            + (f"  numpy/orchard {n / o:5.2f}" if n else "")
        )

    if args.out:
        command = "python packages/orchard-core/benchmarks/bench_elementwise.py " + " ".join(sys.argv[1:])
        lines = [
            "# orchard-core elementwise operators vs torch and numpy",
            "",
            f"Command: `{command}` (or `nox -s bench`)  ",
            f"Machine: {platform.machine()} {platform.system()}, {os.cpu_count()} cores; "
            f"torch {torch.__version__} ({threads} threads, its default), orchard-core {oc.__version__} "
            f"(OpenMP threads: {omp}), numpy {np.__version__} (single-threaded).  ",
            "Ratios above 1 mean orchard-core is faster; all timed in the same run.  ",
            f"Load average when the run began: {load:.1f} on {os.cpu_count()} cores (other jobs share them).",
            "",
            "A fresh 64 MB result is first-touch page faults more than arithmetic: orchard-core and torch",
            "both take 4 KiB pages (compare the in-place row), while numpy asks for transparent huge pages.",
            "",
            "| operation | orchard µs | torch µs | numpy µs | torch/orchard | numpy/orchard |",
            "|---|---|---|---|---|---|",
        ]
        for name, o, t, n in rows:
            numpy_us, numpy_ratio = (f"{n:.2f}", f"{n / o:.2f}") if n else ("—", "—")
            lines.append(f"| {name} | {o:.2f} | {t:.2f} | {numpy_us} | {t / o:.2f} | {numpy_ratio} |")
        args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
