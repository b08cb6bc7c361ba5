"""orchard-core's CUDA kernels next to torch's, on one GPU, measured in one run.

Two kinds of case:

* host cost: a small add (1 and 1024 elements) issued 200 times, then one synchronize; time per
  call. At these sizes the GPU waits for the host, so this is what an op costs the Python
  process: argument checks, dispatch, allocation and the launch.
* kernels: one op on training-sized operands (GPT-2 small's widths) followed by a synchronize;
  the GPU's time dominates.

Both libraries take turns within every repeat (benchmarks/_harness.py); median over repeats,
ratio torch/orchard (above 1: orchard is faster).

    python packages/orchard-core/benchmarks/bench_cuda.py --out docs/benchmarks/cuda_ops-h100.md
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

DEVICE = "cuda:0"
ISSUES_PER_CALL = 200
TORCH_DTYPE = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def pair(rng: np.random.Generator, shape: tuple[int, ...], dtype: str = "float32"):
    """The same random values on the GPU as an orchard and a torch tensor."""
    values = rng.standard_normal(shape).astype(np.float32)
    ours = oc.tensor(values).to(getattr(oc, dtype)).to(DEVICE)
    theirs = torch.from_numpy(values).to(TORCH_DTYPE[dtype]).to(DEVICE)
    return ours, theirs


def synced(run, library: str):
    """`run` then a wait for the GPU."""
    wait = (lambda: oc.synchronize(DEVICE)) if library == "orchard" else torch.cuda.synchronize

    def call() -> None:
        run()
        wait()

    return call


def host_case(rng, numel: int) -> Case:
    (a, ta), (b, tb) = pair(rng, (numel,)), pair(rng, (numel,))

    def issue(x, y):
        def run() -> None:
            for _ in range(ISSUES_PER_CALL):
                x + y

        return run

    return Case(
        f"add, {numel} element{'s' if numel != 1 else ''} (host cost, per call)",
        synced(issue(a, b), "orchard"),
        synced(issue(ta, tb), "torch"),
    )


def kernel_case(name: str, ours, theirs) -> Case:
    return Case(name, synced(ours, "orchard"), synced(theirs, "torch"))


def cases() -> list[tuple[Case, int]]:
    """Each case with the number of calls one timed call stands for."""
    rng = np.random.default_rng(0)
    rows, width, vocab = 8192, 768, 50257  # GPT-2 small: batch 8 x 1024 tokens
    x, tx = pair(rng, (rows, width), "bfloat16")
    y, ty = pair(rng, (rows, width), "bfloat16")
    weight, tweight = pair(rng, (width,))
    bias, tbias = pair(rng, (width,))
    xf, txf = pair(rng, (rows, width))
    w_mlp, tw_mlp = pair(rng, (4 * width, width), "bfloat16")
    b_mlp, tb_mlp = pair(rng, (4 * width,), "bfloat16")
    logits, tlogits = pair(rng, (2048, vocab))
    target = rng.integers(0, vocab, size=2048)
    otarget, ttarget = oc.tensor(target).to(DEVICE), torch.from_numpy(target).to(DEVICE)
    scores, tscores = pair(rng, (96, 1024, 1024), "bfloat16")
    big, tbig = pair(rng, (1 << 24,))
    return [
        (host_case(rng, 1), ISSUES_PER_CALL),
        (host_case(rng, 1024), ISSUES_PER_CALL),
        (kernel_case("add bf16 8192x768", lambda: x + y, lambda: tx + ty), 1),
        (kernel_case("gelu(tanh) bf16 8192x768", lambda: x.gelu("tanh"),
                     lambda: torch.nn.functional.gelu(tx, approximate="tanh")), 1),
        (kernel_case("sum float32 2^24", lambda: big.sum(), lambda: tbig.sum()), 1),
        (kernel_case("softmax bf16 96x1024x1024", lambda: oc.softmax(scores, -1),
                     lambda: torch.softmax(tscores, -1)), 1),
        (kernel_case("layer_norm float32 8192x768", lambda: oc.layer_norm(xf, width, weight, bias),
                     lambda: torch.nn.functional.layer_norm(txf, (width,), tweight, tbias)), 1),
        (kernel_case("cross_entropy float32 2048x50257", lambda: oc.cross_entropy(logits, otarget),
                     lambda: torch.nn.functional.cross_entropy(tlogits, ttarget)), 1),
        (kernel_case("linear bf16 8192x768 -> 3072 (+bias)", lambda: oc.linear(x, w_mlp, b_mlp),
                     lambda: torch.nn.functional.linear(tx, tw_mlp, tb_mlp)), 1),
        (kernel_case("randn float32 2^24", lambda: oc.randn(1 << 24, device=DEVICE),
                     lambda: torch.randn(1 << 24, device=DEVICE)), 1),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="markdown table to write")
    parser.add_argument("--budget", type=float, default=1.0, help="seconds per case (default 1)")
    args = parser.parse_args()
    if not torch.cuda.is_available() or DEVICE not in [str(d) for d in oc.devices()]:
        sys.exit("bench_cuda.py needs a GPU that both torch and orchard-core (built with CUDA) see")
    load = print_settings()
    gpu = oc.device_description(DEVICE)
    print(gpu)
    rows = []
    for case, calls in cases():
        row = measure(case, args.budget, warmup=True)
        row = type(row)(row.name, row.orchard / calls, row.torch / calls, None, row.ratio_quartiles)
        print_row(row, unit="µs", digits=1, width=48)
        rows.append(row)
    if args.out:
        notes = [
            f"GPU: {gpu}. Host cost rows: {ISSUES_PER_CALL} adds issued back to back, then one "
            "synchronize, divided by the count. Kernel rows: one op and a synchronize per call."
        ]
        write_table(
            args.out, "orchard-core CUDA ops vs torch", rows, notes, unit="µs", digits=1,
            numpy_columns=False, load_at_start=load,
        )  # fmt: skip


if __name__ == "__main__":
    main()
