"""linear (fused bias) of orchard-core next to torch's F.linear, forward and backward, one run.

GPT-2 small's projections at B*T = 4096 rows in float32 and bfloat16: 768 -> 3072 (the MLP's
up projection) and 768 -> 768 (attention's output). Each case times both libraries in turn in
every repeat (median over repeats of a timed loop) and reports milliseconds per call and
torch/orchard (above 1: orchard is faster). "backward" times one backward pass through a
recorded linear (d_input, d_weight and d_bias), the graph retained between calls.

    python bench_linear.py --out docs/benchmarks/linear.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch  # first, as users import it: orchard-core's threads are measured as they run

# isort: split
import numpy as np
import orchard_core as oc

sys.path.insert(0, str(Path(__file__).parent))
from _harness import Case, measure, print_row, print_settings, write_table


def linear_cases(
    rng: np.random.Generator, rows: int, in_features: int, out_features: int, dtype: str = "float32"
) -> list[Case]:
    x = rng.standard_normal((rows, in_features)).astype(np.float32)
    w = (rng.standard_normal((out_features, in_features)) / np.sqrt(in_features)).astype(np.float32)
    b = rng.standard_normal(out_features).astype(np.float32)
    g = rng.standard_normal((rows, out_features)).astype(np.float32)
    ox, ow, ob = (oc.tensor(v).to(getattr(oc, dtype)).requires_grad_() for v in (x, w, b))
    tx, tw, tb = (torch.tensor(v).to(getattr(torch, dtype)).requires_grad_() for v in (x, w, b))
    og, tg = oc.tensor(g).to(getattr(oc, dtype)), torch.from_numpy(g).to(getattr(torch, dtype))
    o_out, t_out = oc.linear(ox, ow, ob), torch.nn.functional.linear(tx, tw, tb)

    def orchard_forward():
        with oc.no_grad():
            return oc.linear(ox, ow, ob)

    def torch_forward():
        with torch.no_grad():
            return torch.nn.functional.linear(tx, tw, tb)

    # .grad accumulates; zeroing it each call would time an extra pass, so it is left to grow.
    name = f"{dtype} {rows}x{in_features} -> {out_features}"
    return [
        Case(f"{name} forward", orchard_forward, torch_forward),
        Case(
            f"{name} backward",
            lambda: o_out.backward(og, retain_graph=True),
            lambda: t_out.backward(tg, retain_graph=True),
        ),
    ]


# Where orchard-core's own bfloat16 products run, on the tiers that have them.
BF16_UNITS = {"avx512_bf16": "vdpbf16ps", "amx_bf16": "AMX tiles"}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--budget", type=float, default=1.0, help="seconds per measurement (default 1)")
    parser.add_argument("--repeats", type=int, default=11, help="timed loops per library (default 11)")
    parser.add_argument("--out", type=Path, help="write a markdown table here")
    args = parser.parse_args()

    load = print_settings()
    rng = np.random.default_rng(0)
    rows = []
    cases = [
        *linear_cases(rng, 4096, 768, 3072),
        *linear_cases(rng, 4096, 768, 768),
        *linear_cases(rng, 4096, 768, 3072, "bfloat16"),
        *linear_cases(rng, 4096, 768, 768, "bfloat16"),
    ]
    for case in cases:
        row = measure(case, args.budget, repeats=args.repeats, fraction=10, warmup=True)
        rows.append(row)
        print_row(row, unit="ms", digits=2, width=45)

    if args.out:
        notes = [
            "orchard-core writes the bias into the output and has BLAS (scipy-openblas32, single-threaded",
            f"per band, bands over its {oc.get_num_threads()} threads) add the product to it (beta = 1);",
            "torch calls addmm. Backward: d_input = g @ W, d_weight = g^T @ x (transposed BLAS reads, no",
            f"copies), d_bias = g summed over rows. Median of {args.repeats} timed loops per library,",
            "taking turns. 768 -> 768 backward: d_weight is a 768x768 product over K = 4096, cut into",
            "4 bands of 192 rows (matmul's bands: an even count, fixed by the sizes), 2 per thread on 2.",
            f"bfloat16 on kernels '{oc.cpu_isa()}': "
            + (
                f"orchard-core's own product on {BF16_UNITS[oc.cpu_isa()]} (bf16 pairs summed in float32, "
                "both operands packed, the bias added before the one rounding)."
                if oc.cpu_isa() in BF16_UNITS
                else "both operands widened to float32 for BLAS, the result rounded once."
            ),
        ]
        write_table(
            args.out,
            "orchard-core linear vs torch F.linear",
            rows,
            notes,
            unit="ms",
            digits=2,
            load_at_start=load,
        )


if __name__ == "__main__":
    main()
