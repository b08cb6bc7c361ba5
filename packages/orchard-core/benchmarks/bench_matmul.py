"""matmul of orchard-core next to torch and numpy, measured in one run.

Each case times the same product in the three libraries (median over repeats of a timed
loop, the libraries taking turns in every repeat) and reports milliseconds per call and
the ratios torch/orchard and numpy/orchard (above 1: orchard is faster; this script used
to report orchard/other, and was turned round to match the other benchmarks).
orchard-core and numpy both call OpenBLAS (orchard-core's bfloat16 runs its own kernel on
CPUs with AVX512-BF16); torch uses its own BLAS. Absolute times on
shared machines are noise; the ratios within one run are the evidence. Threads: torch
keeps its default count, numpy's OpenBLAS its own default; orchard-core runs its OpenBLAS
single-threaded on bands of the product spread over its own threads (orchard/parallel.h).

    python bench_matmul.py --out docs/benchmarks/matmul.md
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import orchard_core as oc
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _harness import Case, measure, print_row, print_settings, write_table


def operands(rng: np.random.Generator, shape_a, shape_b, dtype: str):
    a = rng.standard_normal(shape_a).astype(np.float32 if dtype == "bfloat16" else dtype)
    b = rng.standard_normal(shape_b).astype(a.dtype)
    ta, tb = torch.from_numpy(a.copy()), torch.from_numpy(b.copy())
    oa, ob = oc.tensor(a), oc.tensor(b)
    if dtype == "bfloat16":
        ta, tb = ta.bfloat16(), tb.bfloat16()
        oa, ob = oa.to(oc.bfloat16), ob.to(oc.bfloat16)
    return (oa, ob), (ta, tb), (a, b)


def product_case(name: str, rng, shape_a, shape_b, dtype: str, transpose_a: bool = False) -> Case:
    (oa, ob), (ta, tb), (na, nb) = operands(rng, shape_a, shape_b, dtype)
    if transpose_a:
        oa, ta, na = oa.mT, ta.mT, np.swapaxes(na, -1, -2)
    numpy_fn = None if dtype == "bfloat16" else (lambda: na @ nb)
    return Case(name, lambda: oa @ ob, lambda: ta @ tb, numpy_fn)


def cases() -> list[Case]:
    rng = np.random.default_rng(0)
    return [
        product_case("float32 1024x1024 @ 1024x1024", rng, (1024, 1024), (1024, 1024), "float32"),
        product_case("float32 2048x2048 @ 2048x2048", rng, (2048, 2048), (2048, 2048), "float32"),
        product_case("float64 1024x1024 @ 1024x1024", rng, (1024, 1024), (1024, 1024), "float64"),
        product_case("float32 1024² with a transposed a", rng, (1024, 1024), (1024, 1024), "float32", True),
        product_case("bfloat16 1024x1024 @ 1024x1024", rng, (1024, 1024), (1024, 1024), "bfloat16"),
        product_case("bfloat16 2048x2048 @ 2048x2048", rng, (2048, 2048), (2048, 2048), "bfloat16"),
        product_case("bfloat16 1024² with a transposed a", rng, (1024, 1024), (1024, 1024), "bfloat16", True),
        product_case("bfloat16 4096x768 @ 768x3072 (MLP)", rng, (4096, 768), (768, 3072), "bfloat16"),
        product_case("bfloat16 64x1024 @ 1024x1024 (few rows)", rng, (64, 1024), (1024, 1024), "bfloat16"),
        product_case("bfloat16 batch 48 x 256x64 @ 64x256", rng, (48, 256, 64), (48, 64, 256), "bfloat16"),
        product_case("float32 batch 64 x 128² @ 128²", rng, (64, 128, 128), (128, 128), "float32"),
        product_case("float32 1000 x 8x8 @ 8x8 (batched)", rng, (1000, 8, 8), (1000, 8, 8), "float32"),
        product_case("float32 4096 dot", rng, (4096,), (4096,), "float32"),
    ]


# What orchard-core's own bfloat16 products are on the tiers that have them (no BLAS).
BF16_PRODUCTS = {
    "avx512_bf16": "orchard-core's own product on vdpbf16ps (AVX512-BF16: bf16 pairs summed in float32, "
    "both operands packed, 14x32 blocks of outputs in vector registers), no BLAS",
    "amx_bf16": "orchard-core's own product on AMX tiles (TDPBF16PS: bf16 pairs summed in float32, "
    "both operands packed, 32x32 blocks of outputs in four tile registers), no BLAS",
}

WIDENED = "both operands widened to float32 for BLAS, the result rounded once"


def blas_note() -> str:
    """orchard-core's BLAS as its library names itself (its version and the kernels it runs), and
    the OPENBLAS_CORETYPE that chose those kernels when the environment sets one."""
    if sys.platform == "darwin":
        return "orchard-core's BLAS: Accelerate."
    import scipy_openblas32

    note = f"orchard-core's OpenBLAS: `{scipy_openblas32.get_openblas_config()}`"
    chosen = os.environ.get("OPENBLAS_CORETYPE")
    if chosen:
        return f"{note}, its kernels chosen by OPENBLAS_CORETYPE={chosen} in the environment."
    return note + "."


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--budget", type=float, default=1.0, help="seconds per measurement (default 1)")
    parser.add_argument("--repeats", type=int, default=11, help="timed loops per library (default 11)")
    parser.add_argument("--out", type=Path, help="write a markdown table here")
    args = parser.parse_args()

    load = print_settings()

    rows = []
    for case in cases():
        # warm-up first: BLAS thread pools and first-touch allocations
        row = measure(case, args.budget, repeats=args.repeats, fraction=10, warmup=True, settle_s=0.2)
        rows.append(row)
        print_row(row, unit="ms", digits=3, width=40)

    if args.out:
        notes = [
            "numpy and orchard-core both call OpenBLAS (orchard-core through scipy-openblas32, single-",
            f"threaded, on bands of each product spread over its {oc.get_num_threads()} threads); torch",
            f"uses its own BLAS. Median of {args.repeats} timed loops per library, with a 0.2 s pause "
            "before each library's turn: numpy's OpenBLAS pool spins after a call and would otherwise "
            "slow whichever library runs next. Target: float32 1024² and 2048² within 1.1x of numpy "
            "(numpy/orchard at least 0.91).",
            blas_note(),
            f"bfloat16 on kernels '{oc.cpu_isa()}': "
            + BF16_PRODUCTS.get(oc.cpu_isa(), WIDENED)
            + ("; target 1.0x torch." if oc.cpu_isa() in BF16_PRODUCTS else "."),
        ]
        title = "orchard-core matmul vs torch and numpy"
        write_table(args.out, title, rows, notes, unit="ms", digits=3, load_at_start=load)


if __name__ == "__main__":
    main()
