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
    a_o, a_t = oc.tensor(base), torch.from_numpy(base.copy())
    flat_o, flat_t = a_o.reshape(-1), a_t.reshape(-1)
    return [
        Case(f"sum of {n * n} float32", lambda: oc.sum(flat_o), lambda: torch.sum(flat_t)),
        Case(f"sum {n}x{n} dim=0", lambda: oc.sum(a_o, 0), lambda: torch.sum(a_t, 0)),
        Case(f"sum {n}x{n} dim=1", lambda: oc.sum(a_o, 1), lambda: torch.sum(a_t, 1)),
        Case(f"mean of {n * n} float32", lambda: oc.mean(flat_o), lambda: torch.mean(flat_t)),
        Case(f"mean {n}x{n} dim=0", lambda: oc.mean(a_o, 0), lambda: torch.mean(a_t, 0)),
        Case(f"mean {n}x{n} dim=1", lambda: oc.mean(a_o, 1), lambda: torch.mean(a_t, 1)),
        Case(f"softmax {n}x{n} dim=-1", lambda: oc.softmax(a_o, -1), lambda: torch.softmax(a_t, -1)),
        Case(
            f"log_softmax {n}x{n} dim=-1", lambda: oc.log_softmax(a_o, -1), lambda: torch.log_softmax(a_t, -1)
        ),
        Case(f"max {n}x{n} dim=1", lambda: oc.max(a_o, 1), lambda: torch.max(a_t, 1)),
        Case(f"var {n}x{n} dim=1", lambda: oc.var(a_o, 1), lambda: torch.var(a_t, 1)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=4096, help="side of the square matrices (default 4096)")
    parser.add_argument("--repeats", type=int, default=15, help="samples per library and case (default 15)")
    parser.add_argument("--out", type=Path, help="write a markdown table here")
    args = parser.parse_args()
    load = print_settings()

    rows = []
    for case in cases(args.size):
        row = measure(case, repeats=args.repeats, loops=3, warmup=True)
        rows.append(row)
        print_row(row, unit="ms", width=40)

    if args.out:
        title = "orchard-core reductions vs torch"
        write_table(args.out, title, rows, unit="ms", numpy_columns=False, load_at_start=load)


if __name__ == "__main__":
    main()
