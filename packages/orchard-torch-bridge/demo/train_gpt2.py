"""Train a small character-level GPT-2 twice, stock attention and Orchard's, and compare them.

``nox -s demo`` runs this script. Both runs start from the same weights and see the same
batches in the same order (everything is seeded), with dropout on, so their loss curves are
directly comparable; the only difference is the attention: transformers' ``"sdpa"``
(``torch.nn.functional.scaled_dot_product_attention``) against ``"orchard"``
(``orchard_torch_bridge.flash_attention`` on orchard-flash's fused kernels, registered with
transformers by ``orchard_torch_bridge.gpt2.register()``).

Speed: the two models train in one process, their steps interleaved (stock then Orchard on even
steps, Orchard then stock on odd ones), so that load from elsewhere falls on both alike. Each
model keeps its own optimizer and dropout random state, so its loss curve is exactly that of a
run on its own. Tokens/s comes from the median step time; the Orchard/stock ratio is the median
over steps of stock's step time divided by Orchard's at the same step.

The default corpus needs no download: the source of a fixed list of standard-library modules
of the running Python. ``--corpus PATH`` trains on any UTF-8 text file instead. Outputs, in
``--out``: ``loss.png`` (loss curves, their difference and per-step tokens/s) and
``summary.json`` (configuration, library versions, kernel tiers and thread counts, per-run
final losses, step-time quantiles, tokens/s and the curves).

    python train_gpt2.py --steps 50 --size tiny --attention orchard --out /tmp/demo
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orchard_core
import orchard_flash
import orchard_torch_bridge
import torch
import torch.nn.functional as F

# The corpus, quantiles and plot are shared with the native demo (demo/ at the repository's root).
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "demo"))
from demo_common import (
    DROPOUT,
    SIZES,
    learning_rate,
    load_corpus,
    paired_ratio,
    peak_rss_mib,
    quantiles,
    write_outputs,
)

ATTENTIONS = {"stock": "sdpa", "orchard": "orchard"}
EVAL_BATCHES = 4


class Data:
    """A character-level corpus split 90/10 into train and validation token tensors."""

    def __init__(self, text: str, seq_len: int) -> None:
        self.chars = sorted(set(text))
        index = {c: i for i, c in enumerate(self.chars)}
        tokens = torch.tensor([index[c] for c in text], dtype=torch.long)
        split = int(len(tokens) * 0.9)
        self.train, self.val = tokens[:split], tokens[split:]
        for name, part in (("training", self.train), ("validation", self.val)):
            if len(part) < seq_len + 2:
                raise SystemExit(
                    f"train_gpt2: the corpus's {name} split has {len(part)} characters, fewer than "
                    f"--seq-len + 2 = {seq_len + 2}; use a longer corpus or a shorter --seq-len"
                )

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    @staticmethod
    def starts(tokens: torch.Tensor, count: int, batch: int, seq_len: int, seed: int) -> torch.Tensor:
        """(count, batch) window starts, drawn from a generator seeded with `seed`."""
        generator = torch.Generator().manual_seed(seed)
        return torch.randint(0, len(tokens) - seq_len - 1, (count, batch), generator=generator)

    @staticmethod
    def windows(tokens: torch.Tensor, starts: torch.Tensor, seq_len: int) -> torch.Tensor:
        """The (..., seq_len + 1) windows of `tokens` at `starts`: inputs and, shifted by one, targets."""
        return tokens[starts[..., None] + torch.arange(seq_len + 1)]


@contextlib.contextmanager
def attention_implementations(attentions: list[str]) -> Iterator[None]:
    """Registers "orchard" with transformers, and makes sure "sdpa" is transformers' own.

    ``orchard_torch_bridge.enable()`` (or ``USE_FLASH_ATTN=2``) routes GPT-2's "sdpa" attention to
    orchard too, which would make the stock run an orchard run: the switch is turned off for the
    demo and back on afterwards.
    """
    from orchard_torch_bridge import gpt2

    was_enabled = gpt2.is_enabled()
    if was_enabled:
        print("note: the bridge's GPT-2 switch is on; off during the demo, so that stock is stock sdpa")
        gpt2.disable()
    if "orchard" in attentions:
        gpt2.register()  # attn_implementation="orchard"
    try:
        yield
    finally:
        if was_enabled:
            gpt2.enable()


@dataclass
class Run:
    """One attention's model and optimizer, its own dropout random state, and what its steps gave."""

    attention: str
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    cpu_rng: torch.Tensor  # torch's default CPU generator's state between this run's steps
    device_rng: torch.Tensor | None  # the device's default generator's, on CUDA and MPS
    step_seconds: list[float] = field(default_factory=list)
    train_curve: list[list[float]] = field(default_factory=list)
    val_curve: list[list[float]] = field(default_factory=list)


def device_rng_state(device: torch.device) -> torch.Tensor | None:
    """The state of `device`'s own default generator (CUDA's, MPS's); None where it is the CPU's."""
    if device.type == "cuda":
        return torch.cuda.get_rng_state(device)
    if device.type == "mps":
        return torch.mps.get_rng_state()
    return None


def set_device_rng_state(device: torch.device, state: torch.Tensor) -> None:
    if device.type == "cuda":
        torch.cuda.set_rng_state(state, device)
    elif device.type == "mps":
        torch.mps.set_rng_state(state)


@contextlib.contextmanager
def own_random_state(run: Run, device: torch.device) -> Iterator[None]:
    """Runs the block on `run`'s own random streams, and keeps where the block left them.

    Stock dropout draws from torch's default generator of the device (the CUDA or MPS one there),
    and Orchard's attention draws its kernel's dropout seed from the default CPU generator.
    Loading the run's saved states into those generators before each of its steps, and saving
    them after, makes its dropout masks those of a run on its own, whatever the other run drew
    in between.
    """
    torch.set_rng_state(run.cpu_rng)
    if run.device_rng is not None:
        set_device_rng_state(device, run.device_rng)
    try:
        yield
    finally:
        run.cpu_rng = torch.get_rng_state()
        if run.device_rng is not None:
            run.device_rng = device_rng_state(device)


def build_run(args: argparse.Namespace, vocab_size: int, attention: str) -> Run:
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=vocab_size,
        n_positions=args.seq_len,
        n_layer=args.n_layer,
        n_head=args.n_head,
        n_embd=args.n_embd,
        attn_pdrop=DROPOUT,
        resid_pdrop=DROPOUT,
        embd_pdrop=DROPOUT,
        bos_token_id=0,
        eos_token_id=0,
    )
    config._attn_implementation = ATTENTIONS[attention]
    device = torch.device(args.device)
    torch.manual_seed(args.seed)  # the same initial weights for every attention
    model = GPT2LMHeadModel(config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.1, betas=(0.9, 0.95))
    torch.manual_seed(args.seed + 2)  # every run's dropout streams start at the same state
    return Run(attention, model, optimizer, torch.get_rng_state(), device_rng_state(device))


def loss_of(model: torch.nn.Module, batch: torch.Tensor) -> torch.Tensor:
    inputs, targets = batch[:, :-1], batch[:, 1:]
    logits = model(input_ids=inputs).logits
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


@torch.no_grad()
def evaluate(model: torch.nn.Module, batches: torch.Tensor) -> float:
    model.eval()  # no dropout, so no random draws
    losses = [loss_of(model, b).item() for b in batches]
    model.train()
    return sum(losses) / len(losses)


def synchronize(device: torch.device) -> None:
    """Waits for the device's queued work, so that a step's time is all of its work (CUDA, MPS)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def train_step(run: Run, batch: torch.Tensor, lr: float, device: torch.device) -> float:
    """One optimizer step of `run` on `batch`; appends its time to run.step_seconds, returns the loss."""
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    with own_random_state(run, device):
        synchronize(device)
        tick = time.perf_counter()
        loss = loss_of(run.model, batch)
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), 1.0)
        run.optimizer.step()
        value = loss.item()
        synchronize(device)
        run.step_seconds.append(time.perf_counter() - tick)
    return value


def train(args: argparse.Namespace, data: Data, attentions: list[str]) -> list[Run]:
    """Trains one model per attention, their steps interleaved, on the same batches in the same order."""
    from tqdm import tqdm

    device = torch.device(args.device)
    runs = [build_run(args, data.vocab_size, attention) for attention in attentions]
    train_starts = Data.starts(data.train, args.steps, args.batch_size, args.seq_len, args.seed)
    val_starts = Data.starts(data.val, EVAL_BATCHES, args.batch_size, args.seq_len, args.seed + 1)
    val_batches = Data.windows(data.val, val_starts, args.seq_len).to(device)
    tokens_per_step = args.batch_size * args.seq_len
    for run in runs:
        run.val_curve.append([0, evaluate(run.model, val_batches)])
    bar = tqdm(range(args.steps), desc="training", unit="step", dynamic_ncols=True)
    for step in bar:
        batch = Data.windows(data.train, train_starts[step], args.seq_len).to(device)
        lr = learning_rate(args.lr, args.steps, step)
        # Who goes first alternates, so that neither model always runs just after the other.
        for run in runs if step % 2 == 0 else runs[::-1]:
            value = train_step(run, batch, lr, device)
            if not math.isfinite(value):
                bar.close()
                raise SystemExit(
                    f"train_gpt2: {run.attention} attention's loss became {value} at step {step + 1}"
                )
            run.train_curve.append([step + 1, value])
        if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
            for run in runs:
                run.val_curve.append([step + 1, evaluate(run.model, val_batches)])
        postfix = {
            run.attention: f"loss {run.train_curve[-1][1]:.3f}, "
            f"{tokens_per_step / statistics.median(run.step_seconds):,.0f} tok/s"
            for run in runs
        }
        bar.set_postfix(postfix, refresh=False)
    bar.close()
    return runs


def run_summary(run: Run, tokens_per_step: int) -> dict[str, Any]:
    step_quantiles = quantiles(run.step_seconds)
    tail = [loss for _, loss in run.train_curve[-max(1, min(10, len(run.train_curve) // 10)) :]]
    return {
        "attention": run.attention,
        "attn_implementation": ATTENTIONS[run.attention],
        "final_train_loss": run.train_curve[-1][1],
        "final_train_loss_smoothed": sum(tail) / len(tail),
        "final_val_loss": run.val_curve[-1][1],
        "step_seconds_quantiles": step_quantiles,
        "tokens_per_s": tokens_per_step / step_quantiles["p50"],
        # A slower step is fewer tokens/s: the interquartile range of the step times, inverted.
        "tokens_per_s_iqr": [
            tokens_per_step / step_quantiles["p75"],
            tokens_per_step / step_quantiles["p25"],
        ],
        "train_seconds": sum(run.step_seconds),
        "parameters": sum(p.numel() for p in run.model.parameters()),
        "train_loss": run.train_curve,
        "val_loss": run.val_curve,
        "step_seconds": run.step_seconds,
    }


def orchard_device_problem(device: torch.device) -> str | None:
    """Why Orchard's attention cannot run on `device` with this orchard-flash build, or None."""
    if device.type == "cpu":
        return None
    available = orchard_flash.available_devices()
    if device.type == "mps":  # orchard's "metal" device runs torch's mps tensors
        if "metal" in available:
            return None
        return (
            "orchard attention on mps needs orchard-flash's Metal kernels, and this orchard-flash has none "
            f"here (it has kernels for: {', '.join(available)}); use --attention stock"
        )
    name = str(device)
    if device.type == "cuda" and device.index is None:
        name = f"cuda:{torch.cuda.current_device()}"
    if name in available:
        return None
    if device.type != "cuda":
        return (
            f"orchard-flash has no {device.type} kernels; use --device cpu, cuda or mps, or --attention stock"
        )
    if not orchard_flash._flash._built_with_cuda():
        return (
            f"orchard attention on {name} needs orchard-flash's CUDA kernels, and this orchard-flash was "
            "built without them; build orchard-core and orchard-flash with -Csetup-args=-Dcuda=enabled "
            "(docs/cuda.md), or use --attention stock"
        )
    return f"orchard-flash's CUDA build sees no {name} (it has kernels for: {', '.join(available)})"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Train a character-level GPT-2 with stock attention and Orchard's; plot both losses."
    )
    parser.add_argument("--steps", type=int, default=250, help="optimizer steps per run (default 250)")
    parser.add_argument("--seq-len", type=int, default=256, help="characters per sequence (default 256)")
    parser.add_argument("--batch-size", type=int, default=8, help="sequences per step (default 8)")
    presets = ", ".join(f"{k} = {n} layers, {h} heads, {e} wide" for k, (n, h, e) in SIZES.items())
    parser.add_argument(
        "--size", choices=sorted(SIZES), default="small", help=f"model preset: {presets} (default small)"
    )
    parser.add_argument("--n-layer", type=int, help="layers (overrides --size)")
    parser.add_argument("--n-head", type=int, help="attention heads (overrides --size)")
    parser.add_argument("--n-embd", type=int, help="embedding width (overrides --size)")
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate of AdamW (default 3e-3)")
    parser.add_argument("--seed", type=int, default=0, help="seeds weights, data order and dropout")
    parser.add_argument(
        "--attention", choices=["stock", "orchard", "both"], default="both", help="which runs (default both)"
    )
    parser.add_argument(
        "--device",
        default="cpu",
        help="torch device of both runs: cpu (default), cuda[:N] or mps; Orchard's attention there needs "
        "orchard-flash's CUDA or Metal kernels",
    )
    parser.add_argument("--corpus", help="a UTF-8 text file to train on (default: Python stdlib source)")
    parser.add_argument("--eval-every", type=int, default=50, help="steps between validation losses")
    parser.add_argument(
        "--threads", type=int, help="threads of torch and orchard-core alike (default: each library's own)"
    )
    parser.add_argument("--out", default="demo-output", help="directory for loss.png and summary.json")
    args = parser.parse_args(argv)

    n_layer, n_head, n_embd = SIZES[args.size]
    args.n_layer = n_layer if args.n_layer is None else args.n_layer
    args.n_head = n_head if args.n_head is None else args.n_head
    args.n_embd = n_embd if args.n_embd is None else args.n_embd
    for name in ("steps", "seq_len", "batch_size", "n_layer", "n_head", "n_embd", "eval_every"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.n_embd % args.n_head != 0:
        parser.error(f"--n-embd {args.n_embd} is not divisible by --n-head {args.n_head}")
    head_dim = args.n_embd // args.n_head
    args.attentions = ["stock", "orchard"] if args.attention == "both" else [args.attention]
    if "orchard" in args.attentions and (head_dim % 8 != 0 or head_dim > 256):
        parser.error(f"orchard attention needs a head dim (n_embd / n_head) that is a multiple of 8 up to "
                     f"256, got {head_dim}")  # fmt: skip
    try:
        device = torch.device(args.device)
        if device.type == "mps" and not torch.backends.mps.is_available():
            # Said here: torch.empty's error on a torch without MPS is its whole dispatch table.
            parser.error(f"--device {args.device} is not usable here: torch sees no MPS device")
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError) as error:
        parser.error(f"--device {args.device} is not usable here: {error}")
    problem = orchard_device_problem(device) if "orchard" in args.attentions else None
    if problem:
        parser.error(problem)
    return args


def machine(device: torch.device) -> dict[str, Any]:
    """Where the runs ran: cores, load, thread counts and the CPU kernel tiers in use."""
    about: dict[str, Any] = {
        "platform": f"{platform.machine()} {platform.system()}",
        "cpu_count": os.cpu_count(),
        "load_average": list(os.getloadavg()),
        "torch_threads": torch.get_num_threads(),
        "orchard_core_threads": orchard_core.get_num_threads(),
        "orchard_core_cpu_isa": orchard_core.cpu_isa(),
        "orchard_flash_cpu_isa": orchard_flash._flash._cpu_isa(),
    }
    if device.type == "cuda":
        about["cuda_device"] = torch.cuda.get_device_name(device)
    return about


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
        orchard_core.set_num_threads(args.threads)
    text, source = load_corpus(args.corpus)
    data = Data(text, args.seq_len)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device(args.device)
    before = machine(device)

    print(
        f"corpus: {source}\n"
        f"        {len(text):,} characters, vocabulary {data.vocab_size}, "
        f"{len(data.train):,} train / {len(data.val):,} validation\n"
        f"model:  GPT-2, {args.n_layer} layers, {args.n_head} heads, {args.n_embd} wide, dropout {DROPOUT}; "
        f"{args.steps} steps of {args.batch_size} x {args.seq_len} characters on {args.device}\n"
        f"cpu:    {before['cpu_count']} cores, load average {before['load_average'][0]:.1f}; threads: torch "
        f"{before['torch_threads']}, orchard-core {before['orchard_core_threads']}; kernels: orchard-core "
        f"{before['orchard_core_cpu_isa']}, orchard-flash {before['orchard_flash_cpu_isa']}"
    )
    if "orchard" in args.attentions and before["torch_threads"] != before["orchard_core_threads"]:
        print("note: torch and orchard-core use different thread counts; the speed comparison is uneven")
    start = time.perf_counter()
    with attention_implementations(args.attentions):
        trained = train(args, data, args.attentions)
    total = time.perf_counter() - start

    tokens_per_step = args.batch_size * args.seq_len
    runs = {run.attention: run_summary(run, tokens_per_step) for run in trained}
    print()
    for name, run in runs.items():
        ms = {key: seconds * 1e3 for key, seconds in run["step_seconds_quantiles"].items()}
        print(
            f"{name:>7} ({run['attn_implementation']}): train loss {run['final_train_loss']:.4f} (last-steps "
            f"mean {run['final_train_loss_smoothed']:.4f}), validation loss {run['final_val_loss']:.4f}\n"
            f"         step time median {ms['p50']:.1f} ms (IQR {ms['p25']:.1f}-{ms['p75']:.1f}, p10-p90 "
            f"{ms['p10']:.1f}-{ms['p90']:.1f}): {run['tokens_per_s']:,.0f} tokens/s"
        )
    ratio = paired_ratio(runs)
    if ratio:
        stock, orchard = runs["stock"], runs["orchard"]
        gap = orchard["final_val_loss"] - stock["final_val_loss"]
        print(
            f"orchard / stock tokens/s: {ratio['p50']:.2f}x (median of per-step paired ratios; IQR "
            f"{ratio['p25']:.2f}-{ratio['p75']:.2f}); validation loss difference {gap:+.4f}"
        )

    import transformers

    summary = {
        "config": {
            "steps": args.steps,
            "seq_len": args.seq_len,
            "batch_size": args.batch_size,
            "n_layer": args.n_layer,
            "n_head": args.n_head,
            "n_embd": args.n_embd,
            "dropout": DROPOUT,
            "lr": args.lr,
            "seed": args.seed,
            "device": args.device,
            "eval_every": args.eval_every,
            "corpus": source,
            "corpus_characters": len(text),
            "vocab_size": data.vocab_size,
        },
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "orchard_core": orchard_core.__version__,
            "orchard_flash": orchard_flash.__version__,
            "orchard_torch_bridge": orchard_torch_bridge.__version__,
        },
        "machine": {**before, "load_average_end": list(os.getloadavg())},
        "total_wall_seconds": total,
        "peak_rss_mib": peak_rss_mib(),
        "orchard_over_stock_tokens_per_s": ratio,
        "runs": runs,
    }
    title = (
        f"char-level GPT-2 ({args.n_layer}L/{args.n_head}H/{args.n_embd}, seq {args.seq_len}, batch "
        f"{args.batch_size}, dropout {DROPOUT}) on {args.device}: stock vs orchard attention"
    )
    write_outputs(summary, runs, tokens_per_step, out, title)
    return summary


if __name__ == "__main__":
    main()
