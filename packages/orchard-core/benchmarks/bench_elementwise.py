"""Elementwise operators of orchard-core next to torch (and numpy), measured in one run.

Each case times the same operation in each library (median over repeats of a timed
loop, the libraries taking turns in every repeat so that load from other processes falls
on all of them alike) and reports microseconds per call and the ratios torch/orchard and
numpy/orchard (above 1: orchard is faster). torch keeps its default thread count and orchard-core
its own (orchard_core.get_num_threads()); both are printed and written to the table.

    python bench_elementwise.py --out docs/benchmarks/elementwise.md
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


def cases(side: int, cached: int) -> list[Case]:
    rng = np.random.default_rng(0)

    def trio(*shape: int) -> tuple[np.ndarray, torch.Tensor, oc.Tensor]:
        base = rng.standard_normal(shape, dtype=np.float32)
        return base, torch.from_numpy(base.copy()), oc.tensor(base)

    s_np, s_t, s_o = trio(16)
    a_np, a_t, a_o = trio(side, side)
    b_np, b_t, b_o = trio(side, side)
    r_np, r_t, r_o = trio(side)
    # A tensor that stays in cache: the transcendentals' arithmetic, not memory, sets the time.
    c_np, c_t, c_o = trio(cached, cached)
    c = f"{cached}x{cached} float32"
    n = f"{side}x{side} float32"
    return [
        Case("add 16 floats (dispatch)", lambda: s_o + s_o, lambda: s_t + s_t, lambda: s_np + s_np),
        Case(f"add {n}", lambda: a_o + b_o, lambda: a_t + b_t, lambda: a_np + b_np),
        Case(f"mul {n}", lambda: a_o * b_o, lambda: a_t * b_t, lambda: a_np * b_np),
        Case(f"div {n}", lambda: a_o / b_o, lambda: a_t / b_t, lambda: a_np / b_np),
        Case(f"add {n} + row ({side},)", lambda: a_o + r_o, lambda: a_t + r_t, lambda: a_np + r_np),
        Case(f"mul {n} * row ({side},)", lambda: a_o * r_o, lambda: a_t * r_t, lambda: a_np * r_np),
        Case(f"div {n} / row ({side},)", lambda: a_o / r_o, lambda: a_t / r_t, lambda: a_np / r_np),
        Case(f"add {n} + 1.5", lambda: a_o + 1.5, lambda: a_t + 1.5, lambda: a_np + np.float32(1.5)),
        Case(f"add transposed {n}", lambda: a_o.T + b_o, lambda: a_t.T + b_t, lambda: a_np.T + b_np),
        Case(f"exp {n}", lambda: oc.exp(a_o), lambda: torch.exp(a_t), lambda: np.exp(a_np)),
        Case(f"gelu {n}", lambda: oc.gelu(a_o), lambda: torch.nn.functional.gelu(a_t), None),
        Case(f"in-place add_ {n}", lambda: a_o.add_(b_o), lambda: a_t.add_(b_t), None),
        Case(f"exp {c}", lambda: oc.exp(c_o), lambda: torch.exp(c_t), lambda: np.exp(c_np)),
        Case(f"tanh {c}", lambda: c_o.tanh(), lambda: c_t.tanh(), lambda: np.tanh(c_np)),
        Case(f"sigmoid {c}", lambda: c_o.sigmoid(), lambda: c_t.sigmoid(), None),
        Case(f"gelu {c}", lambda: oc.gelu(c_o), lambda: torch.nn.functional.gelu(c_t), None),
        Case(
            f"gelu tanh {c}",
            lambda: oc.gelu(c_o, approximate="tanh"),
            lambda: torch.nn.functional.gelu(c_t, approximate="tanh"),
            None,
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--side", type=int, default=4096, help="side of the square matrices (default 4096)")
    parser.add_argument("--cached", type=int, default=384, help="side of the in-cache matrices (default 384)")
    parser.add_argument("--budget", type=float, default=0.5, help="seconds per measurement (default 0.5)")
    parser.add_argument("--out", type=Path, help="write a markdown table here")
    args = parser.parse_args()
    load = print_settings()  # torch keeps its default threads; orchard uses oc.get_num_threads()

    rows = []
    for case in cases(args.side, args.cached):
        row = measure(case, args.budget, repeats=9, fraction=20)
        rows.append(row)
        print_row(row, unit="µs")

    if args.out:
        notes = [
            "numpy is single-threaded. A fresh 64 MB result is first-touch page faults more than arithmetic:",
            "orchard-core and torch both take 4 KiB pages (compare the in-place row), while numpy asks for",
            "transparent huge pages.",
        ]
        title = "orchard-core elementwise operators vs torch and numpy"
        write_table(args.out, title, rows, notes, unit="µs", load_at_start=load)


if __name__ == "__main__":
    main()
