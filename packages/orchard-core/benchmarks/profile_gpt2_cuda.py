#!/usr/bin/env python3
"""Where one native GPT-2 training step on CUDA spends its time: per phase (forward, backward,
gradient clipping, optimizer), the host's time to queue the phase's work beside the time until
the GPU has finished it; then the step under torch's profiler, which (through CUPTI) sees every
kernel this process launches, orchard-core's included, and under orchard-core's own profiler
(host time per op).

torch is imported for its profiler only; the model and optimizer are orchard-core's, as in
demo/train_native.py (whose Engine this drives).

    python profile_gpt2_cuda.py [--n-layer 12 --n-embd 768 --seq-len 1024 --batch-size 8
                                 --dtype bfloat16 --dropout 0.1] [--out DIR]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch  # noqa: F401 - first: its profiler's CUPTI must see the CUDA context from its start
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "demo"))
from engine_worker import Engine


def phases(engine: Engine, index: int) -> dict[str, tuple[float, float]]:
    """(host seconds to queue, seconds until the GPU is done) for each phase of one step."""
    lib, model, optimizer = engine.lib, engine.model, engine.optimizer
    batch = engine.train_batches[index % len(engine.train_batches)]
    device = engine.device
    lib.synchronize(device)
    times: dict[str, tuple[float, float]] = {}

    def timed(name, work):
        tick = time.perf_counter()
        result = work()
        queued = time.perf_counter()
        lib.synchronize(device)
        times[name] = (queued - tick, time.perf_counter() - tick)
        return result

    def forward():
        with engine.precision():
            return model(engine.tensor(batch[:, :-1]), engine.tensor(batch[:, 1:]))

    loss = timed("forward", forward)
    optimizer.zero_grad(set_to_none=True)
    timed("backward", loss.backward)
    timed("clip", lambda: lib.nn.utils.clip_grad_norm_(model.parameters(), 1.0))
    timed("optimizer", optimizer.step)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-layer", type=int, default=12)
    parser.add_argument("--n-head", type=int, default=12)
    parser.add_argument("--n-embd", type=int, default=768)
    parser.add_argument("--seq-len", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16"])
    parser.add_argument("--device", default="cuda")
    parser.add_argument(
        "--deterministic", action="store_true", help="orchard_core.use_deterministic_algorithms(True)"
    )
    parser.add_argument("--steps", type=int, default=6, help="timed steps after two warm-up steps")
    parser.add_argument("--out", default=".", help="folder for the profiler tables")
    args = parser.parse_args()

    engine = Engine("orchard")
    engine.lib.use_deterministic_algorithms(args.deterministic)
    with tempfile.TemporaryDirectory() as folder:
        engine.setup(
            {
                "seq_len": args.seq_len,
                "n_layer": args.n_layer,
                "n_head": args.n_head,
                "n_embd": args.n_embd,
                "dropout": args.dropout,
                "device": args.device,
                "dtype": args.dtype,
                "lr": 1e-4,
                "seed": 0,
                "batch_size": args.batch_size,
                "steps": args.steps + 3,
                "corpus": None,
                "threads": None,
                "weights": str(Path(folder) / "weights.safetensors"),
                "write_weights": True,
            }
        )
    for index in range(2):
        engine.step(index, 1e-4)
    rows = [phases(engine, 2 + i) for i in range(args.steps)]
    print(f"{'phase':<10} {'host queue ms':>14} {'until done ms':>14}")
    for name in rows[0]:
        queue = statistics.median(r[name][0] for r in rows) * 1e3
        done = statistics.median(r[name][1] for r in rows) * 1e3
        print(f"{name:<10} {queue:14.2f} {done:14.2f}")
    steps = [engine.step(2, 1e-4)["seconds"] for _ in range(3)]
    print(f"whole step: {statistics.median(steps) * 1e3:.1f} ms")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    activities = [ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if args.device != "cpu" else [])]
    with profile(activities=activities) as recorder:
        engine.step(2, 1e-4)
    events = recorder.key_averages()
    kernels = sum(e.self_device_time_total for e in events) / 1e3
    table = events.table(sort_by="self_cuda_time_total", row_limit=45, max_name_column_width=100)
    (out / "profile_kernels.txt").write_text(f"GPU kernel time in the step: {kernels:.1f} ms\n\n{table}\n")
    print(f"GPU kernel time in one step: {kernels:.1f} ms")
    print(table)

    recorder = engine.lib.profiler.profile()
    with recorder:
        engine.step(2, 1e-4)
    table = recorder.key_averages().table(sort_by="self_cpu_time_total", row_limit=30)
    (out / "profile_host.txt").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
