"""Train the demo's GPT-2 on orchard-core alone, beside the same model in stock torch.

``nox -s demo -- --engine orchard`` runs this script. The model is written once, with torch's API
(demo/gpt2_model.py), and trained by two processes: one imports orchard_core and orchard_flash and
never torch, the other imports torch only (engine_worker.py). Both start from the same weights
(the orchard process initialises them and saves a safetensors file, which torch loads) and see the
same batches in the same order, with dropout on, so their loss curves are comparable (dropout masks
differ: each library draws its own).

Speed: the driver runs the two engines' steps alternately (stock then orchard on even steps,
orchard then stock on odd ones) and never at once, so that load from elsewhere falls on both
alike; each step is timed inside its process. Tokens/s comes from the median step time; the
orchard/stock ratio is the median over steps of stock's step time divided by orchard's.

Outputs, in ``--out``: ``loss.png`` (loss curves, their difference, per-step tokens/s) and
``summary.json``. ``--engine orchard --no-stock`` trains orchard alone (no torch needed).
``--profile`` runs one more step of each engine under its library's profiler and writes the ops'
table to ``profile_<run>.txt``. ``--device cuda`` trains both on the GPU; ``--dtype bfloat16``
under each library's autocast.

    python demo/train_native.py --steps 50 --size tiny --out /tmp/native-demo
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from demo_common import (  # noqa: E402
    DROPOUT,
    SIZES,
    learning_rate,
    load_corpus,
    paired_ratio,
    peak_rss_mib,
    quantiles,
    write_outputs,
)

# The run names the shared plot knows: "stock" is torch, "orchard" is orchard-core.
ENGINES = {"orchard": "orchard", "stock": "torch"}


class Worker:
    """One engine's process, spoken to in JSON lines."""

    def __init__(self, run: str) -> None:
        self.run, self.engine = run, ENGINES[run]
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "engine_worker.py"), self.engine],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.step_seconds: list[float] = []
        self.train_curve: list[list[float]] = []
        self.val_curve: list[list[float]] = []
        self.torch_loaded = False

    def ask(self, command: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin and self.process.stdout
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit(
                f"train_native: the {self.engine} process ended (exit code {self.process.wait()})"
            )
        reply = json.loads(line)
        if "error" in reply:
            sys.stderr.write(reply.get("traceback", ""))
            raise SystemExit(f"train_native: {self.engine} failed: {reply['error']}")
        return reply

    def evaluate(self, step: int) -> None:
        reply = self.ask({"cmd": "eval"})
        self.val_curve.append([step, reply["loss"]])
        self.torch_loaded = reply["torch_loaded"]

    def close(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin
            self.process.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
            self.process.stdin.close()
            self.process.wait()


def train(args: argparse.Namespace, workers: list[Worker], weights: Path) -> dict[str, dict[str, Any]]:
    from tqdm import tqdm

    about: dict[str, dict[str, Any]] = {}
    options = {
        "seq_len": args.seq_len,
        "n_layer": args.n_layer,
        "n_head": args.n_head,
        "n_embd": args.n_embd,
        "dropout": args.dropout,
        "device": args.device,
        "dtype": args.dtype,
        "lr": args.lr,
        "seed": args.seed,
        "batch_size": args.batch_size,
        "steps": args.steps,
        "corpus": args.corpus,
        "threads": args.threads,
        "weights": str(weights),
    }
    for worker in workers:  # orchard first: it writes the initial weights
        about[worker.run] = worker.ask(
            {"cmd": "setup", "options": {**options, "write_weights": worker is workers[0]}}
        )
        worker.evaluate(0)
    tokens_per_step = args.batch_size * args.seq_len
    bar = tqdm(range(args.steps), desc="training", unit="step", dynamic_ncols=True)
    for step in bar:
        lr = learning_rate(args.lr, args.steps, step)
        for worker in workers if step % 2 == 0 else workers[::-1]:
            reply = worker.ask({"cmd": "step", "step": step, "lr": lr})
            if not math.isfinite(reply["loss"]):
                bar.close()
                raise SystemExit(
                    f"train_native: {worker.engine}'s loss became {reply['loss']} at step {step + 1}"
                )
            worker.train_curve.append([step + 1, reply["loss"]])
            worker.step_seconds.append(reply["seconds"])
        if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
            for worker in workers:
                worker.evaluate(step + 1)
        postfix = {}
        for w in workers:
            median = sorted(w.step_seconds)[len(w.step_seconds) // 2]
            postfix[w.run] = f"loss {w.train_curve[-1][1]:.3f}, {tokens_per_step / median:,.0f} tok/s"
        bar.set_postfix(postfix, refresh=False)
    bar.close()
    if args.profile:  # one more step of each, under its library's profiler
        for worker in workers:
            reply = worker.ask({"cmd": "profile", "step": args.steps - 1, "lr": lr})
            path = Path(args.out) / f"profile_{worker.run}.txt"
            header = f"one step, {reply['seconds'] * 1e3:.1f} ms"
            path.write_text(f"{header}\n\n{reply['table']}\n", encoding="utf-8")
            print(f"wrote {path}")
    return about


def run_summary(worker: Worker, about: dict[str, Any], tokens_per_step: int) -> dict[str, Any]:
    step_quantiles = quantiles(worker.step_seconds)
    tail = [loss for _, loss in worker.train_curve[-max(1, min(10, len(worker.train_curve) // 10)) :]]
    return {
        "engine": worker.engine,
        "final_train_loss": worker.train_curve[-1][1],
        "final_train_loss_smoothed": sum(tail) / len(tail),
        "final_val_loss": worker.val_curve[-1][1],
        "step_seconds_quantiles": step_quantiles,
        "tokens_per_s": tokens_per_step / step_quantiles["p50"],
        "tokens_per_s_iqr": [
            tokens_per_step / step_quantiles["p75"],
            tokens_per_step / step_quantiles["p25"],
        ],
        "train_seconds": sum(worker.step_seconds),
        "torch_loaded": worker.torch_loaded,
        **about,
        "train_loss": worker.train_curve,
        "val_loss": worker.val_curve,
        "step_seconds": worker.step_seconds,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Train a character-level GPT-2 on orchard-core alone, beside stock torch; plot both."
    )
    parser.add_argument(
        "--engine", choices=["orchard"], default="orchard", help="the native engine (orchard)"
    )
    parser.add_argument("--no-stock", action="store_true", help="train orchard alone (no torch process)")
    parser.add_argument("--steps", type=int, default=250, help="optimizer steps per run (default 250)")
    parser.add_argument("--seq-len", type=int, default=256, help="characters per sequence (default 256)")
    parser.add_argument("--batch-size", type=int, default=8, help="sequences per step (default 8)")
    presets = ", ".join(f"{k} = {n} layers, {h} heads, {e} wide" for k, (n, h, e) in SIZES.items())
    parser.add_argument("--size", choices=sorted(SIZES), default="small", help=f"model preset: {presets}")
    parser.add_argument("--n-layer", type=int, help="layers (overrides --size)")
    parser.add_argument("--n-head", type=int, help="attention heads (overrides --size)")
    parser.add_argument("--n-embd", type=int, help="embedding width (overrides --size)")
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate of AdamW (default 3e-3)")
    parser.add_argument("--seed", type=int, default=0, help="seeds weights, data order and dropout")
    parser.add_argument("--corpus", help="a UTF-8 text file to train on (default: Python stdlib source)")
    parser.add_argument("--eval-every", type=int, default=50, help="steps between validation losses")
    parser.add_argument("--device", default="cpu", help="where both engines train: cpu (default) or cuda[:N]")
    parser.add_argument(
        "--dtype",
        choices=["float32", "bfloat16"],
        default="float32",
        help="float32 (default), or bfloat16 products under each library's autocast (float32 weights)",
    )
    parser.add_argument(
        "--dropout", type=float, default=DROPOUT, help=f"dropout probability (default {DROPOUT})"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="after training, one more step of each engine under its profiler: profile_<run>.txt in --out",
    )
    parser.add_argument("--threads", type=int, help="threads of both engines (default: each library's own)")
    parser.add_argument("--out", default="demo-output-native", help="directory for loss.png and summary.json")
    args = parser.parse_args(argv)
    n_layer, n_head, n_embd = SIZES[args.size]
    args.n_layer = n_layer if args.n_layer is None else args.n_layer
    args.n_head = n_head if args.n_head is None else args.n_head
    args.n_embd = n_embd if args.n_embd is None else args.n_embd
    for name in ("steps", "seq_len", "batch_size", "n_layer", "n_head", "n_embd", "eval_every"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if not 0.0 <= args.dropout < 1.0:
        parser.error(f"--dropout must be in [0, 1), got {args.dropout}")
    if args.device != "cpu" and not args.device.startswith("cuda"):
        parser.error(f"--device must be cpu or cuda[:N], got {args.device!r}")
    if args.n_embd % args.n_head != 0:
        parser.error(f"--n-embd {args.n_embd} is not divisible by --n-head {args.n_head}")
    head_dim = args.n_embd // args.n_head
    if head_dim % 8 != 0 or head_dim > 256:
        parser.error(
            "orchard attention needs a head dim (n_embd / n_head) that is a multiple of 8 up to 256, "
            f"got {head_dim}"
        )
    load_corpus(args.corpus)  # a missing or unreadable corpus fails here, not in the workers
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = ["orchard"] if args.no_stock else ["orchard", "stock"]
    workers = [Worker(run) for run in runs]
    start = time.perf_counter()
    load_start = os.getloadavg()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            about = train(args, workers, Path(tmp) / "initial.safetensors")
    finally:
        for worker in workers:
            worker.close()
    total = time.perf_counter() - start
    tokens_per_step = args.batch_size * args.seq_len
    summaries = {w.run: run_summary(w, about[w.run], tokens_per_step) for w in workers}
    print()
    for name, run in summaries.items():
        ms = {key: seconds * 1e3 for key, seconds in run["step_seconds_quantiles"].items()}
        print(
            f"{name:>7} ({run['engine']} {run['version']}, {run['threads']} threads): train loss "
            f"{run['final_train_loss']:.4f}, validation loss {run['final_val_loss']:.4f}; step median "
            f"{ms['p50']:.1f} ms (IQR {ms['p25']:.1f}-{ms['p75']:.1f}): {run['tokens_per_s']:,.0f} tokens/s"
        )
    ratio = paired_ratio(summaries)
    if ratio:
        print(f"orchard / stock tokens/s: {ratio['p50']:.2f}x (IQR {ratio['p25']:.2f}-{ratio['p75']:.2f})")
    summary = {
        "config": {**vars(args), "vocab_size": summaries["orchard"]["vocab_size"]},
        "machine": {
            "platform": f"{platform.machine()} {platform.system()}",
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "load_average": list(load_start),
            "load_average_end": list(os.getloadavg()),
        },
        "total_wall_seconds": total,
        "driver_peak_rss_mib": peak_rss_mib(),
        "orchard_over_stock_tokens_per_s": ratio,
        "runs": summaries,
    }
    title = (
        f"char-level GPT-2 ({args.n_layer}L/{args.n_head}H/{args.n_embd}, seq {args.seq_len}, batch "
        f"{args.batch_size}, dropout {args.dropout}, {args.device}, {args.dtype}): orchard-core alone vs "
        "stock torch"
    )
    write_outputs(summary, summaries, tokens_per_step, out, title)
    return summary


if __name__ == "__main__":
    main()
