"""orchard-flash's fused CPU attention next to torch's scaled_dot_product_attention, in one run.

torch's SDPA on the CPU is its own fused flash kernel. Shapes: batch 1, 8
heads, head dim 64, lengths 512 to 4096, causal and not, float32 and bfloat16; ``--dropout P``
times both libraries with dropout on the probabilities (torch's SDPA draws its own mask). FLOPs count
4·B·H·Lq·Lk·D for the forward pass (half for causal) and 3.5 times that for forward plus
backward (FlashAttention's benchmark convention). The FMA ceiling is measured by
fma_peak.c, compiled here with gcc -O3 -fopenmp.

    python packages/orchard-flash/benchmarks/bench_flash.py --out docs/benchmarks/flash.md
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import orchard_core as oc
import orchard_flash as of
import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
# The timing loop shared with orchard-core's benchmarks (libraries take turns, median kept).
sys.path.insert(0, str(HERE.parents[1] / "orchard-core" / "benchmarks"))
from _harness import Case, Row, cpu_name, measure, print_settings, usable_cores  # noqa: E402

TARGETS = {"float32": 1.3, "bfloat16": 2.0}


@dataclass(frozen=True)
class Result:
    dtype: str
    length: int
    causal: bool
    passes: str
    row: Row
    flops: float


# What a tier changes in the table, said under its header.
TIER_NOTES = {
    "avx512_bf16": [
        "",
        "On kernels 'avx512_bf16' bfloat16 multiplies on vdpbf16ps, forward and backward (two "
        "bfloat16 products per float32 lane, so its share of the float32 FMA ceiling can pass "
        "100% where it issues at the FMA's rate, as on AMD's Zen 4).",
    ],
    "amx_bf16": [
        "",
        "On kernels 'amx_bf16' bfloat16's products run on AMX tiles, forward and backward (16 x 16 "
        "float32 outputs per instruction, so its share of the float32 FMA ceiling is not bounded "
        "by 100%); the float32 work around them (softmax, dS, dropout) is AVX-512's.",
    ],
}


def fma_peak() -> tuple[float, str] | None:
    """GFLOP/s of fp32 FMAs on all cores and the vector width used, or None without gcc."""
    with tempfile.TemporaryDirectory() as tmp:
        exe = Path(tmp) / "fma_peak"
        try:
            subprocess.run(
                ["gcc", "-O3", "-fopenmp", str(HERE / "fma_peak.c"), "-o", str(exe)],
                check=True,
                capture_output=True,
            )
            best = max(
                subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.split()
                for _ in range(3)
            )
        except (OSError, subprocess.CalledProcessError) as error:
            print(f"FMA ceiling not measured: {error}")
            return None
    return float(best[0]), best[1]


def cases(
    length: int, causal: bool, dtype: torch.dtype, heads: int, dim: int, dropout: float
) -> list[tuple[str, Case]]:
    generator = torch.Generator().manual_seed(length)
    q, k, v, dout = (torch.randn(1, heads, length, dim, generator=generator).to(dtype) for _ in range(4))
    oq, ok, ov, odout = (oc.from_dlpack(t) for t in (q, k, v, dout))
    gq, gk, gv = (oc.from_dlpack(t.clone()).requires_grad_(True) for t in (q, k, v))
    tq, tk, tv = (t.clone().requires_grad_(True) for t in (q, k, v))

    def torch_forward() -> None:
        with torch.no_grad():
            F.scaled_dot_product_attention(q, k, v, is_causal=causal, dropout_p=dropout)

    def orchard_forward() -> None:
        of.forward(oq, ok, ov, causal=causal, dropout_p=dropout, seed=length)

    def orchard_both() -> None:
        of.flash_attention(gq, gk, gv, causal=causal, dropout_p=dropout).backward(odout)
        gq.grad = gk.grad = gv.grad = None

    def torch_both() -> None:
        F.scaled_dot_product_attention(tq, tk, tv, is_causal=causal, dropout_p=dropout).backward(dout)
        tq.grad = tk.grad = tv.grad = None

    return [
        ("forward", Case("forward", orchard_forward, torch_forward)),
        ("forward+backward", Case("forward+backward", orchard_both, torch_both)),
    ]


def table(
    results: list[Result], peak: tuple[float, str] | None, args: argparse.Namespace, load: float
) -> str:
    script = "python packages/orchard-flash/benchmarks/bench_flash.py"
    command = " ".join([script, shlex.join(sys.argv[1:])]).rstrip()
    ceiling = f"{peak[0]:.0f} GFLOP/s fp32 ({peak[1]} FMAs on all cores)" if peak else "not measured"
    load_end = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    lines = [
        "# orchard-flash CPU attention vs torch scaled_dot_product_attention",
        "",
        f"Command: `{command}`{'' if args.dropout else ' (or `nox -s bench`)'}  ",
        f"Machine: {cpu_name()}, {platform.machine()} {platform.system()}, {usable_cores()} cores, "
        f"orchard-flash kernels '{of._flash._cpu_isa()}'; FMA ceiling {ceiling}; torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), orchard-flash {of.__version__}.  ",
        f"Shapes: batch 1, {args.heads} heads, head dim {args.dim}; dropout {args.dropout:g}. "
        f"Load average {load:.1f} at the start, "
        f"{load_end} (1/5/15 min) at the end.  ",
        "Both libraries timed in the same run, taking turns; median over repeats. Ratio = torch time / "
        "orchard time (above 1: orchard is faster). Forward+backward goes through each library's autograd. "
        "What bounds each pass, and where targets are missed: docs/flash.md.",
        *TIER_NOTES.get(of._flash._cpu_isa(), []),
        "",
        "| dtype | L | causal | pass | orchard ms | torch ms | orchard GFLOP/s | torch GFLOP/s "
        "| orchard % of FMA ceiling | torch/orchard | target |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        mine, theirs = r.flops / r.row.orchard / 1e9, r.flops / r.row.torch / 1e9
        share = f"{100 * mine / peak[0]:.0f}%" if peak else "—"
        target = TARGETS[r.dtype] if r.length >= 1024 or r.dtype != "float32" else 1.0
        cells = [r.dtype, str(r.length), "yes" if r.causal else "no", r.passes]
        cells += [f"{r.row.orchard * 1e3:.1f}", f"{r.row.torch * 1e3:.1f}", f"{mine:.0f}", f"{theirs:.0f}"]
        cells += [share, f"{r.row.torch / r.row.orchard:.2f}", f"≥{target}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lengths", type=int, nargs="+", default=[512, 1024, 2048, 4096])
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"], choices=sorted(TARGETS))
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--dropout", type=float, default=0.0, help="dropout_p of both libraries")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per case (median kept)")
    parser.add_argument("--out", type=Path, help="write a markdown table here")
    args = parser.parse_args()
    load = print_settings()
    peak = fma_peak()
    if peak:
        print(f"FMA ceiling: {peak[0]:.0f} GFLOP/s ({peak[1]})")
    results = []
    for dtype in args.dtypes:
        for length in args.lengths:
            for causal in (False, True):
                flops = 4.0 * args.heads * length * length * args.dim / (2 if causal else 1)
                shape = (length, causal, getattr(torch, dtype), args.heads, args.dim, args.dropout)
                for passes, case in cases(*shape):
                    row = measure(case, 1.0, repeats=args.repeats, fraction=4, warmup=True)
                    scale = 3.5 if passes == "forward+backward" else 1.0
                    result = Result(dtype, length, causal, passes, row, flops * scale)
                    results.append(result)
                    mine, theirs = result.flops / row.orchard / 1e9, result.flops / row.torch / 1e9
                    print(
                        f"{dtype:8s} L={length:5d} causal={causal!s:5s} {passes:16s}"
                        f" orchard {mine:6.0f} GFLOP/s"
                        f"  torch {theirs:6.0f} GFLOP/s  torch/orchard {row.torch / row.orchard:5.2f}",
                        flush=True,
                    )
    if args.out:
        args.out.write_text(table(results, peak, args, load), encoding="utf-8")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
