"""Forward plus backward through orchard-core's autograd next to torch's, in one run.

Tiny tensors measure what the engine itself costs (recording nodes, walking the graph,
accumulating .grad): the arithmetic on 16 elements is negligible. The larger cases show
that the formulas run at kernel speed once there is work to do.

    python bench_autograd.py --out docs/benchmarks/autograd.md
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


def _pair(values: np.ndarray, requires_grad: bool) -> tuple[oc.Tensor, torch.Tensor]:
    ours = oc.tensor(values, requires_grad=requires_grad)
    theirs = torch.from_numpy(values.copy()).requires_grad_(requires_grad)
    return ours, theirs


def three_ops(x, w, g):
    """mul, tanh, add forward; backward with a given output gradient; .grad cleared after."""
    y = (x * w).tanh() + x
    y.backward(g)
    x.grad = None


def three_ops_to_scalar(x, w):
    y = ((x * w).tanh() + x).sum()
    y.backward()
    x.grad = None


def mlp_layer(x, w, b):
    """A linear layer with gelu and a mean loss: matmul, add, gelu, mean and their backward."""
    loss = (
        (x @ w + b).gelu().mean() if isinstance(x, oc.Tensor) else torch.nn.functional.gelu(x @ w + b).mean()
    )
    loss.backward()
    w.grad = None
    b.grad = None


def cases(rows: int, width: int) -> list[Case]:
    rng = np.random.default_rng(0)
    x_o, x_t = _pair(rng.standard_normal(16, dtype=np.float32), True)
    w_o, w_t = _pair(rng.standard_normal(16, dtype=np.float32), False)
    g_o, g_t = _pair(rng.standard_normal(16, dtype=np.float32), False)
    a_o, a_t = _pair(rng.standard_normal((rows, width), dtype=np.float32), False)
    m_o, m_t = _pair((rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32), True)
    b_o, b_t = _pair(rng.standard_normal(width, dtype=np.float32), True)
    big = f"{rows}x{width} @ {width}x{width} float32"
    return [
        Case("3 ops fwd+bwd, 16 floats", lambda: three_ops(x_o, w_o, g_o), lambda: three_ops(x_t, w_t, g_t)),
        Case(
            "3 ops + sum fwd+bwd, 16 floats",
            lambda: three_ops_to_scalar(x_o, w_o),
            lambda: three_ops_to_scalar(x_t, w_t),
        ),
        Case(
            f"linear+gelu+mean fwd+bwd, {big}",
            lambda: mlp_layer(a_o, m_o, b_o),
            lambda: mlp_layer(a_t, m_t, b_t),
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=256, help="batch rows of the linear layer (default 256)")
    parser.add_argument("--width", type=int, default=512, help="width of the linear layer (default 512)")
    parser.add_argument("--budget", type=float, default=0.5, help="seconds per measurement (default 0.5)")
    parser.add_argument("--out", type=Path, help="write a markdown table here")
    args = parser.parse_args()
    load = print_settings()
    rows = []
    for case in cases(args.rows, args.width):
        row = measure(case, args.budget, repeats=9, fraction=20, warmup=True, settle_s=0.3)
        rows.append(row)
        print_row(row, unit="µs")
    if args.out:
        notes = [
            "The 16-element rows are the engine's overhead: Python call, node recording, graph walk and",
            "gradient accumulation; torch's eager autograd does the same work in its dispatcher.",
        ]
        title = "orchard-core autograd (forward + backward) vs torch"
        write_table(args.out, title, rows, notes, unit="µs", numpy_columns=False, load_at_start=load)


if __name__ == "__main__":
    main()
