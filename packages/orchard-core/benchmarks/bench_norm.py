"""layer_norm and cross_entropy of orchard-core next to torch, measured in one run.

GPT-2's shapes: layer_norm over 768 features of batch * tokens rows, cross_entropy over a
vocabulary (1024 classes, and GPT-2's 50257 on fewer rows). Each case times the same
operation in both libraries (median over repeats of a timed loop; the two alternate, so
drifting load on a shared machine hits both), forward alone and forward plus backward
(autograd.grad of every input, so nothing accumulates between calls), and reports
milliseconds per call and the ratio torch/orchard (above 1: orchard is faster).

    python bench_norm.py --out docs/benchmarks/norm.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch  # first, as users import it: orchard-core's threads are measured as they run

# isort: split
import numpy as np
import orchard_core as oc
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from _harness import Case, measure, print_row, print_settings, write_table


def layer_norm_cases(rows: int, features: int) -> list[Case]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, features), dtype=np.float32)
    w, b = rng.standard_normal((2, features), dtype=np.float32)
    g = rng.standard_normal((rows, features), dtype=np.float32)
    xo, wo, bo, go = (oc.tensor(v).requires_grad_(True) for v in (x, w, b, g))
    xt, wt, bt, gt = (torch.from_numpy(v.copy()).requires_grad_(True) for v in (x, w, b, g))

    def orchard_step():
        y = oc.layer_norm(xo, features, wo, bo)
        return oc.autograd.grad(y, [xo, wo, bo], go.detach())

    def torch_step():
        y = F.layer_norm(xt, (features,), wt, bt)
        return torch.autograd.grad(y, [xt, wt, bt], gt.detach())

    name = f"layer_norm {rows}x{features}"
    return [
        Case(
            f"{name} forward",
            lambda: oc.layer_norm(xo.detach(), features, wo.detach(), bo.detach()),
            lambda: F.layer_norm(xt.detach(), (features,), wt.detach(), bt.detach()),
        ),
        Case(f"{name} forward+backward", orchard_step, torch_step),
    ]


def cross_entropy_cases(rows: int, classes: int) -> list[Case]:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((rows, classes), dtype=np.float32)
    target = rng.integers(0, classes, size=rows)
    xo, to = oc.tensor(x).requires_grad_(True), oc.tensor(target)
    xt, tt = torch.from_numpy(x.copy()).requires_grad_(True), torch.from_numpy(target)
    name = f"cross_entropy {rows}x{classes}"
    return [
        Case(
            f"{name} forward",
            lambda: oc.cross_entropy(xo.detach(), to),
            lambda: F.cross_entropy(xt.detach(), tt),
        ),
        Case(
            f"{name} forward+backward",
            lambda: oc.autograd.grad(oc.cross_entropy(xo, to), [xo]),
            lambda: torch.autograd.grad(F.cross_entropy(xt, tt), [xt]),
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=4096, help="batch * tokens (default 4096)")
    parser.add_argument(
        "--vocab-rows", type=int, default=512, help="rows of the 50257-class case (default 512)"
    )
    parser.add_argument("--repeats", type=int, default=15, help="samples per library and case (default 15)")
    parser.add_argument("--out", type=Path, help="write a markdown table here")
    args = parser.parse_args()
    load = print_settings()

    rows = []
    for case in [
        *layer_norm_cases(args.rows, 768),
        *cross_entropy_cases(args.rows, 1024),
        *cross_entropy_cases(args.vocab_rows, 50257),
    ]:
        row = measure(case, repeats=args.repeats, loops=3, warmup=True)
        rows.append(row)
        print_row(row, unit="ms", width=45)

    if args.out:
        title = "orchard-core layer_norm and cross_entropy vs torch"
        write_table(args.out, title, rows, unit="ms", numpy_columns=False, load_at_start=load)


if __name__ == "__main__":
    main()
