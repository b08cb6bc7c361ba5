"""Storage-layer costs of orchard-core next to torch and numpy, measured in one run.

Each case times the same operation in the three libraries (median over repeats of a
timed loop) and reports microseconds per call and the ratios torch/orchard and
numpy/orchard (above 1: orchard is faster). Absolute times on shared machines are
noise; the ratios within one run are the evidence.

    python bench_storage.py --out docs/benchmarks/storage.md
"""

from __future__ import annotations

import argparse
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


def per_call_us(fn: Callable[[], object], budget_s: float) -> float:
    """Median time per call, in microseconds, over repeats of an auto-sized loop."""
    loops = 1
    while True:
        start = time.perf_counter()
        for _ in range(loops):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed > budget_s / 20:
            break
        loops *= 2
    samples = []
    for _ in range(7):
        start = time.perf_counter()
        for _ in range(loops):
            fn()
        samples.append((time.perf_counter() - start) / loops * 1e6)
    return statistics.median(samples)


def cases(n: int) -> list[Case]:
    rng = np.random.default_rng(0)
    base = rng.standard_normal((n, n), dtype=np.float32)
    a_np, a_t, a_o = base, torch.from_numpy(base.copy()), oc.tensor(base)
    small_np, small_t = np.ones(1024, np.float32), torch.ones(1024)
    return [
        (
            "zeros(1024) float32",
            lambda: oc.zeros(1024),
            lambda: torch.zeros(1024),
            lambda: np.zeros(1024, np.float32),
        ),
        ("transpose view", lambda: a_o.T, lambda: a_t.T, lambda: a_np.T),
        ("slice view [1:, ::2]", lambda: a_o[1:, ::2], lambda: a_t[1:, ::2], lambda: a_np[1:, ::2]),
        ("reshape view (-1,)", lambda: a_o.reshape(-1), lambda: a_t.reshape(-1), lambda: a_np.reshape(-1)),
        (
            f"contiguous() of a transposed {n}x{n} float32",
            lambda: a_o.T.contiguous(),
            lambda: a_t.T.contiguous(),
            lambda: np.ascontiguousarray(a_np.T),
        ),
        (
            f"cast {n}x{n} float32 -> float64",
            lambda: a_o.to(oc.float64),
            lambda: a_t.to(torch.float64),
            lambda: a_np.astype(np.float64),
        ),
        (
            f"cast {n}x{n} float32 -> bfloat16",
            lambda: a_o.to(oc.bfloat16),
            lambda: a_t.to(torch.bfloat16),
            None,
        ),
        (
            "from_numpy(1024 floats)",
            lambda: oc.from_numpy(small_np),
            lambda: torch.from_numpy(small_np),
            None,
        ),
        (
            "clone(1024 floats)",
            lambda: oc.zeros(1024).clone(),
            lambda: small_t.clone(),
            lambda: small_np.copy(),
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=1000, help="side of the square matrices (default 1000)")
    parser.add_argument("--budget", type=float, default=0.5, help="seconds per measurement (default 0.5)")
    parser.add_argument("--out", type=Path, help="write a markdown table here")
    args = parser.parse_args()
    torch.set_num_threads(1)  # orchard-core's storage kernels are single-threaded so far

    rows = []
    for name, ours, theirs, numpys in cases(args.size):
        o, t = per_call_us(ours, args.budget), per_call_us(theirs, args.budget)
        n = per_call_us(numpys, args.budget) if numpys else None
        rows.append((name, o, t, n))
        print(
            f"{name:45s} orchard {o:9.2f} us  torch/orchard {t / o:5.2f}"
            + (f"  numpy/orchard {n / o:5.2f}" if n else "")
        )

    if args.out:
        command = "python packages/orchard-core/benchmarks/bench_storage.py " + " ".join(sys.argv[1:])
        lines = [
            "# orchard-core storage layer vs torch and numpy",
            "",
            f"Command: `{command}` (or `nox -s bench`)  ",
            f"Machine: {platform.machine()} {platform.system()}; torch {torch.__version__} (1 thread), "
            f"numpy {np.__version__}, orchard-core {oc.__version__}.  ",
            "Ratios above 1 mean orchard-core is faster; both timed in the same run.",
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
