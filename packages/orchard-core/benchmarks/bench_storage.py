"""Storage-layer costs of orchard-core next to torch and numpy, measured in one run.

Each case times the same operation in the three libraries (median over repeats of a
timed loop, the libraries taking turns in every repeat) and reports microseconds per
call and the ratios torch/orchard and numpy/orchard (above 1: orchard is faster).
Absolute times on shared machines are noise; the ratios within one run are the evidence.

    python bench_storage.py --out docs/benchmarks/storage.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import orchard_core as oc
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _harness import Case, measure, print_row, print_settings, write_table


def cases(n: int) -> list[Case]:
    rng = np.random.default_rng(0)
    base = rng.standard_normal((n, n), dtype=np.float32)
    a_np, a_t, a_o = base, torch.from_numpy(base.copy()), oc.tensor(base)
    small_np, small_t, small_o = np.ones(1024, np.float32), torch.ones(1024), oc.ones(1024)
    return [
        Case(
            "zeros(1024) float32",
            lambda: oc.zeros(1024),
            lambda: torch.zeros(1024),
            lambda: np.zeros(1024, np.float32),
        ),
        Case("transpose view", lambda: a_o.T, lambda: a_t.T, lambda: a_np.T),
        Case("slice view [1:, ::2]", lambda: a_o[1:, ::2], lambda: a_t[1:, ::2], lambda: a_np[1:, ::2]),
        Case(
            "reshape view (-1,)", lambda: a_o.reshape(-1), lambda: a_t.reshape(-1), lambda: a_np.reshape(-1)
        ),
        Case(
            f"contiguous() of a transposed {n}x{n} float32",
            lambda: a_o.T.contiguous(),
            lambda: a_t.T.contiguous(),
            lambda: np.ascontiguousarray(a_np.T),
        ),
        Case(
            f"cast {n}x{n} float32 -> float64",
            lambda: a_o.to(oc.float64),
            lambda: a_t.to(torch.float64),
            lambda: a_np.astype(np.float64),
        ),
        Case(
            f"cast {n}x{n} float32 -> bfloat16",
            lambda: a_o.to(oc.bfloat16),
            lambda: a_t.to(torch.bfloat16),
            None,
        ),
        Case(
            "from_numpy(1024 floats)",
            lambda: oc.from_numpy(small_np),
            lambda: torch.from_numpy(small_np),
            None,
        ),
        Case(
            "clone(1024 floats)",
            lambda: small_o.clone(),
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
    load = print_settings()

    rows = []
    for case in cases(args.size):
        row = measure(case, args.budget, repeats=7, fraction=20)
        rows.append(row)
        print_row(row, unit="µs")

    if args.out:
        title = "orchard-core storage layer vs torch and numpy"
        notes = ["torch is set to 1 thread: orchard-core's storage kernels are single-threaded so far."]
        write_table(args.out, title, rows, notes, unit="µs", load_at_start=load)


if __name__ == "__main__":
    main()
