"""Shape, index and random operators of orchard-core next to torch, measured in one run.

Each case times the same operation in both libraries (median over repeats of a timed
loop, the two taking turns in every repeat) on about 16M elements and reports
milliseconds per call and the ratio torch/orchard (above 1: orchard is faster). torch
runs with its default thread count and orchard with its OpenMP default; both are
printed. Absolute times on shared machines are noise; the ratios within one run are the
evidence.

    python bench_shape.py --out docs/benchmarks/shape.md
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
    rows, cols = n // 1024, 1024
    rng = np.random.default_rng(0)
    base = rng.standard_normal((rows, cols), dtype=np.float32)
    half_o, half_t = oc.tensor(base[: rows // 2]), torch.from_numpy(base[: rows // 2].copy())
    a_o, a_t = oc.tensor(base), torch.from_numpy(base.copy())
    rows_index = rng.integers(0, rows, rows)
    ri_o, ri_t = oc.tensor(rows_index), torch.from_numpy(rows_index)
    cols_index = rng.integers(0, cols, (rows, cols))
    ci_o, ci_t = oc.tensor(cols_index), torch.from_numpy(cols_index)
    flat_index = rng.integers(0, n, n)
    fi_o, fi_t = oc.tensor(flat_index), torch.from_numpy(flat_index)
    flat_o, flat_t = a_o.reshape(-1), a_t.reshape(-1)
    shape = f"{rows}x{cols}"
    return [
        Case(
            f"cat 2 x {rows // 2}x{cols} dim 0",
            lambda: oc.cat([half_o, half_o]),
            lambda: torch.cat([half_t, half_t]),
        ),
        Case(
            f"cat 2 x {rows // 2}x{cols} dim 1",
            lambda: oc.cat([half_o, half_o], 1),
            lambda: torch.cat([half_t, half_t], 1),
        ),
        Case(
            f"index_select {shape} dim 0 ({rows} rows)",
            lambda: oc.index_select(a_o, 0, ri_o),
            lambda: torch.index_select(a_t, 0, ri_t),
        ),
        Case(
            f"index_select {n} elements of a flat {n}",
            lambda: oc.index_select(flat_o, 0, fi_o),
            lambda: torch.index_select(flat_t, 0, fi_t),
        ),
        Case(f"gather {shape} dim 1", lambda: oc.gather(a_o, 1, ci_o), lambda: torch.gather(a_t, 1, ci_t)),
        Case(f"rand {n} float32", lambda: oc.rand(n), lambda: torch.rand(n)),
        Case(f"randn {n} float32", lambda: oc.randn(n), lambda: torch.randn(n)),
        Case(
            f"randn {n} float64",
            lambda: oc.randn(n, dtype=oc.float64),
            lambda: torch.randn(n, dtype=torch.float64),
        ),
        Case(
            f"randint(0, 1000) {n} int64",
            lambda: oc.randint(0, 1000, (n,)),
            lambda: torch.randint(0, 1000, (n,)),
        ),
        Case(
            f"dropout p=0.5 {shape} float32",
            lambda: oc.dropout(a_o, 0.5),
            lambda: torch.nn.functional.dropout(a_t, 0.5),
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=1 << 24, help="elements per case (default 2^24)")
    parser.add_argument("--budget", type=float, default=1.0, help="seconds per measurement (default 1.0)")
    parser.add_argument("--out", type=Path, help="write a markdown table here")
    args = parser.parse_args()
    load = print_settings()  # torch keeps its default threads, orchard its OpenMP default

    rows = []
    for case in cases(args.size):
        row = measure(case, args.budget, repeats=7, fraction=20)
        rows.append(row)
        print_row(row, unit="ms")

    if args.out:
        title = "orchard-core shape, index and random operators vs torch"
        write_table(args.out, title, rows, unit="ms", numpy_columns=False, load_at_start=load)


if __name__ == "__main__":
    main()
