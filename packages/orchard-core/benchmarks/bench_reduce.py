"""Reductions and softmax of orchard-core next to torch, measured in one run.

Each case times the same operation in both libraries (median over repeats of a timed
loop; the two alternate, so drifting load on a shared machine hits both) and reports
milliseconds per call and the ratio torch/orchard (above 1: orchard is faster). torch
runs with its default thread count and orchard-core with its OpenMP threads; both are
printed and written to the table.

    python bench_reduce.py --out docs/benchmarks/reduce.md
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

Case = tuple[str, Callable[[], object], Callable[[], object]]


def timed_ms(fn: Callable[[], object], loops: int) -> float:
    start = time.perf_counter()
    for _ in range(loops):
        fn()
    return (time.perf_counter() - start) / loops * 1e3


def compare(ours: Callable[[], object], theirs: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median ms per call of each, sampled alternately after a warm-up call."""
    ours(), theirs()
    samples_o, samples_t = [], []
    for _ in range(repeats):
        samples_o.append(timed_ms(ours, 3))
        samples_t.append(timed_ms(theirs, 3))
    return statistics.median(samples_o), statistics.median(samples_t)


def cases(n: int) -> list[Case]:
    rng = np.random.default_rng(0)
    base = rng.standard_normal((n, n), dtype=np.float32)
    a_o, a_t = oc.tensor(base), torch.from_numpy(base.copy())
    flat_o, flat_t = a_o.reshape(-1), a_t.reshape(-1)
    return [
        (f"sum of {n * n} float32", lambda: oc.sum(flat_o), lambda: torch.sum(flat_t)),
        (f"sum {n}x{n} dim=0", lambda: oc.sum(a_o, 0), lambda: torch.sum(a_t, 0)),
        (f"sum {n}x{n} dim=1", lambda: oc.sum(a_o, 1), lambda: torch.sum(a_t, 1)),
        (f"mean of {n * n} float32", lambda: oc.mean(flat_o), lambda: torch.mean(flat_t)),
        (f"mean {n}x{n} dim=0", lambda: oc.mean(a_o, 0), lambda: torch.mean(a_t, 0)),
        (f"mean {n}x{n} dim=1", lambda: oc.mean(a_o, 1), lambda: torch.mean(a_t, 1)),
        (f"softmax {n}x{n} dim=-1", lambda: oc.softmax(a_o, -1), lambda: torch.softmax(a_t, -1)),
        (f"log_softmax {n}x{n} dim=-1", lambda: oc.log_softmax(a_o, -1), lambda: torch.log_softmax(a_t, -1)),
        (f"max {n}x{n} dim=1", lambda: oc.max(a_o, 1), lambda: torch.max(a_t, 1)),
        (f"var {n}x{n} dim=1", lambda: oc.var(a_o, 1), lambda: torch.var(a_t, 1)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=4096, help="side of the square matrices (default 4096)")
    parser.add_argument("--repeats", type=int, default=15, help="samples per library and case (default 15)")
    parser.add_argument("--out", type=Path, help="write a markdown table here")
    args = parser.parse_args()
    omp_threads = os.environ.get("OMP_NUM_THREADS", f"default ({os.cpu_count()} cores)")
    print(f"torch threads {torch.get_num_threads()}, orchard OpenMP threads {omp_threads}")

    load = os.getloadavg()[0]
    rows = []
    for name, ours, theirs in cases(args.size):
        o, t = compare(ours, theirs, args.repeats)
        rows.append((name, o, t))
        print(f"{name:40s} orchard {o:8.2f} ms  torch {t:8.2f} ms  torch/orchard {t / o:5.2f}")

    if args.out:
        command = "python packages/orchard-core/benchmarks/bench_reduce.py " + " ".join(sys.argv[1:])
        lines = [
            "# orchard-core reductions vs torch",
            "",
            f"Command: `{command}` (or `nox -s bench`)  ",
            f"Machine: {platform.machine()} {platform.system()}, {os.cpu_count()} cores; "
            f"torch {torch.__version__} ({torch.get_num_threads()} threads, its default), "
            f"orchard-core {oc.__version__} (OpenMP threads: {omp_threads}).  ",
            "Median of alternating samples; ratios above 1 mean orchard-core is faster.  ",
            f"Load average when the run started: {load:.1f} (a shared machine: absolute times are noise, "
            "the ratios within the run are the evidence).",
            "",
            "| operation | orchard ms | torch ms | torch/orchard |",
            "|---|---|---|---|",
        ]
        lines += [f"| {name} | {o:.2f} | {t:.2f} | {t / o:.2f} |" for name, o, t in rows]
        args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
