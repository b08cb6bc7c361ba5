"""The same orchard workload with torch imported before orchard and after it, interleaved.

torch ships its own libgomp under the system soname, so whichever library loads first decides
which OpenMP runtime the process has and how it was initialised. orchard's threading policy
(one thread count for its OpenMP loops and its BLAS, BLAS single-threaded inside orchard's
threads, no environment variables written at import) is meant to make the import order
irrelevant. Each round starts one process per order, alternating which goes first; each
process times, taking turns within every repeat:

* a training step of a small MLP on orchard-core alone (matmul, gelu, log_softmax, mean and
  their backward; batch 1024, 128 -> 512 -> 161, float32);
* orchard-flash's fp32 causal attention forward (B 1, H 8, L 2048, D 64) and torch's
  scaled_dot_product_attention on the same data (before this policy, on a 2-core Intel Xeon,
  that ratio read 0.82 with torch imported first and 1.10 with orchard first).

    python packages/orchard-flash/benchmarks/bench_import_order.py --out docs/benchmarks/import_order.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDERS = ("torch first", "orchard first")

# One process's measurement: argv[1] names the order; prints one JSON line.
WORKER = """
import json, statistics, sys, time
if sys.argv[1] == "torch first":
    import torch
    import orchard_core as oc
    import orchard_flash as of
else:
    import orchard_core as oc
    import orchard_flash as of
    import torch
import torch.nn.functional as F

repeats = int(sys.argv[2])
oc.manual_seed(0)
x = oc.randn(1024, 128)
target = oc.randint(0, 161, (1024,))
w1 = (oc.randn(128, 512) * 0.05).requires_grad_()
w2 = (oc.randn(512, 161) * 0.05).requires_grad_()

def mlp_step():
    logits = oc.gelu(x @ w1) @ w2
    loss = -(logits.log_softmax(-1) * oc.one_hot(target, 161)).sum(-1).mean()
    loss.backward()
    w1.grad = w2.grad = None

generator = torch.Generator().manual_seed(0)
q, k, v = (torch.randn(1, 8, 2048, 64, generator=generator) for _ in range(3))
oq, ok, ov = (oc.from_dlpack(t) for t in (q, k, v))

def orchard_attention():
    of.forward(oq, ok, ov, causal=True)

def torch_attention():
    with torch.no_grad():
        F.scaled_dot_product_attention(q, k, v, is_causal=True)

def timed(fn, loops):
    start = time.perf_counter()
    for _ in range(loops):
        fn()
    return (time.perf_counter() - start) / loops

for fn in (mlp_step, orchard_attention, torch_attention):
    fn()
samples = {"mlp_step": [], "orchard_attention": [], "torch_attention": []}
for _ in range(repeats):
    samples["mlp_step"].append(timed(mlp_step, 10))
    samples["orchard_attention"].append(timed(orchard_attention, 2))
    samples["torch_attention"].append(timed(torch_attention, 2))
result = {name: statistics.median(values) for name, values in samples.items()}
result.update(orchard_threads=oc.get_num_threads(), torch_threads=torch.get_num_threads(),
              orchard_isa=oc.cpu_isa(), flash_isa=of._flash._cpu_isa(),
              blas_threads=oc._core._blas_num_threads())
print(json.dumps(result))
"""


def run_worker(order: str, repeats: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    out = subprocess.run(
        [sys.executable, "-c", WORKER, order, str(repeats)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def cpu_name() -> str:
    # The harness imports torch and orchard_core; only the workers should, each in its order.
    sys.path.insert(0, str(HERE.parents[1] / "orchard-core" / "benchmarks"))
    from _harness import cpu_name as name

    return name()


def spread(values: list[float]) -> str:
    return f"{min(values) * 1e3:.2f}-{max(values) * 1e3:.2f}"


def table(results: dict[str, list[dict]], args: argparse.Namespace, load: float, seconds: float) -> str:
    script = "python packages/orchard-flash/benchmarks/bench_import_order.py"
    command = " ".join([script, shlex.join(sys.argv[1:])]).rstrip()
    first = results[ORDERS[0]][0]
    load_end = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    lines = [
        "# One threading policy whatever the import order",
        "",
        f"Command: `{command}` (or `nox -s bench`)  ",
        f"Machine: {cpu_name()}, {platform.machine()} {platform.system()}, {os.cpu_count()} cores; "
        f"orchard threads {first['orchard_threads']} (BLAS {first['blas_threads']}), kernels "
        f"'{first['orchard_isa']}' (core) / '{first['flash_isa']}' (flash); torch threads "
        f"{first['torch_threads']}.  ",
        f"{args.rounds} rounds, each one process per import order (which goes first alternates), "
        f"{args.repeats} timed repeats per process, median kept; the table gives the median over rounds and "
        f"their range. Load average {load:.1f} at the start, {load_end} at the end; {seconds:.0f} s in all.",
        "",
        "| measure | torch first | orchard first | torch first / orchard first |",
        "|---|---|---|---|",
    ]
    for name, label in (
        ("mlp_step", "MLP training step, ms"),
        ("orchard_attention", "orchard attention, ms"),
    ):
        per_order = [[r[name] for r in results[order]] for order in ORDERS]
        medians = [statistics.median(v) for v in per_order]
        cells = [f"{m * 1e3:.2f} ({spread(v)})" for m, v in zip(medians, per_order, strict=True)]
        lines.append(f"| {label} | {cells[0]} | {cells[1]} | {medians[0] / medians[1]:.3f} |")
    ratios = [[r["torch_attention"] / r["orchard_attention"] for r in results[order]] for order in ORDERS]
    medians = [statistics.median(v) for v in ratios]
    cells = [f"{m:.2f} ({min(v):.2f}-{max(v):.2f})" for m, v in zip(medians, ratios, strict=True)]
    lines.append(f"| attention torch/orchard | {cells[0]} | {cells[1]} | {medians[0] / medians[1]:.3f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=10, help="processes per import order (default 10)")
    parser.add_argument("--repeats", type=int, default=7, help="timed repeats per process (default 7)")
    parser.add_argument("--out", type=Path, help="write a markdown table here")
    args = parser.parse_args()

    load, start = os.getloadavg()[0], time.perf_counter()
    results: dict[str, list[dict]] = {order: [] for order in ORDERS}
    for round_index in range(args.rounds):
        for order in ORDERS if round_index % 2 == 0 else reversed(ORDERS):
            result = run_worker(order, args.repeats)
            results[order].append(result)
            print(
                f"round {round_index + 1}/{args.rounds} {order:13s}: "
                f"MLP step {result['mlp_step'] * 1e3:6.2f} ms, "
                f"attention orchard {result['orchard_attention'] * 1e3:6.1f} ms, "
                f"torch {result['torch_attention'] * 1e3:6.1f} ms",
                flush=True,
            )
    text = table(results, args, load, time.perf_counter() - start)
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
