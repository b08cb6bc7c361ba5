"""Train a small character-level GPT-2 twice, stock attention and Orchard's, and compare them.

``nox -s demo`` runs this script. Both runs start from the same weights and see the same
batches in the same order (everything is seeded), with dropout on, so their loss curves are
directly comparable; the only difference is the attention: transformers' ``"sdpa"``
(``torch.nn.functional.scaled_dot_product_attention``) against ``"orchard"``
(``orchard_torch_bridge.flash_attention`` on orchard-flash's fused kernels, registered with
transformers by ``orchard_torch_bridge.gpt2.enable()``).

The default corpus needs no download: the source of a fixed list of standard-library modules
of the running Python. ``--corpus PATH`` trains on any UTF-8 text file instead. Outputs, in
``--out``: ``loss.png`` (train and validation loss of each run) and ``summary.json`` (the
configuration, per-run final losses, tokens/s, wall time, peak RSS and the loss curves).

    python train_gpt2.py --steps 50 --size tiny --attention orchard --out /tmp/demo
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import platform
import resource
import sys
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

# A fixed list of standard-library modules, read in this order: the default corpus (~1 MB).
STDLIB_MODULES = [
    "argparse.py",
    "bisect.py",
    "calendar.py",
    "collections/__init__.py",
    "dataclasses.py",
    "difflib.py",
    "fractions.py",
    "functools.py",
    "heapq.py",
    "json/decoder.py",
    "json/encoder.py",
    "pathlib.py",
    "pprint.py",
    "random.py",
    "shlex.py",
    "statistics.py",
    "string.py",
    "textwrap.py",
    "tokenize.py",
    "typing.py",
]

# Model presets: (n_layer, n_head, n_embd). Head dims (n_embd / n_head) are multiples of 8, as
# orchard-flash requires.
SIZES = {"tiny": (2, 2, 64), "small": (4, 4, 128)}
ATTENTIONS = {"stock": "sdpa", "orchard": "orchard"}
DROPOUT = 0.1
EVAL_BATCHES = 4


def default_corpus() -> tuple[str, str]:
    """The concatenated source of STDLIB_MODULES (those this Python has), and a description."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    parts, names = [], []
    for name in STDLIB_MODULES:
        path = stdlib / name
        if path.is_file():  # pathlib became a package in 3.13; a missing module is skipped
            parts.append(path.read_text(encoding="utf-8"))
            names.append(name)
    if not parts:
        raise SystemExit(f"train_gpt2: found none of the default corpus's modules under {stdlib}")
    return "\n".join(parts), f"Python {platform.python_version()} stdlib: {', '.join(names)}"


def load_corpus(path: str | None) -> tuple[str, str]:
    if path is None:
        return default_corpus()
    text = Path(path).read_text(encoding="utf-8")
    return text, str(Path(path).resolve())


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


def build_model(args: argparse.Namespace, vocab_size: int, attention: str) -> torch.nn.Module:
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
    torch.manual_seed(args.seed)  # the same initial weights for every attention
    model = GPT2LMHeadModel(config)
    return model.to(args.device)


def loss_of(model: torch.nn.Module, batch: torch.Tensor) -> torch.Tensor:
    inputs, targets = batch[:, :-1], batch[:, 1:]
    logits = model(input_ids=inputs).logits
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


@torch.no_grad()
def evaluate(model: torch.nn.Module, batches: torch.Tensor) -> float:
    model.eval()
    losses = [loss_of(model, b).item() for b in batches]
    model.train()
    return sum(losses) / len(losses)


def learning_rate(args: argparse.Namespace, step: int) -> float:
    """Linear warmup over the first 10% of the steps, then cosine decay to a tenth."""
    warmup = max(1, args.steps // 10)
    if step < warmup:
        return args.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, args.steps - warmup)
    return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def peak_rss_mib() -> float:
    """The process's peak resident set size so far (MiB); it never decreases between runs."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux


def train(args: argparse.Namespace, data: Data, attention: str) -> dict[str, Any]:
    from tqdm import tqdm

    model = build_model(args, data.vocab_size, attention)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.1, betas=(0.9, 0.95))
    # The same batches, in the same order, for every attention; validation batches are fixed.
    train_starts = Data.starts(data.train, args.steps, args.batch_size, args.seq_len, args.seed)
    val_starts = Data.starts(data.val, EVAL_BATCHES, args.batch_size, args.seq_len, args.seed + 1)
    val_batches = Data.windows(data.val, val_starts, args.seq_len).to(args.device)
    tokens_per_step = args.batch_size * args.seq_len
    torch.manual_seed(args.seed + 2)  # the dropout masks' stream starts at the same state
    train_curve: list[list[float]] = []
    val_curve: list[list[float]] = [[0, evaluate(model, val_batches)]]
    train_seconds = 0.0
    start = time.perf_counter()
    model.train()
    bar = tqdm(range(args.steps), desc=f"{attention:>7}", unit="step", dynamic_ncols=True)
    for step in bar:
        tick = time.perf_counter()
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(args, step)
        loss = loss_of(model, Data.windows(data.train, train_starts[step], args.seq_len).to(args.device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        value = loss.item()  # synchronizes, so the step's time is all in
        train_seconds += time.perf_counter() - tick
        if not math.isfinite(value):
            bar.close()
            raise SystemExit(f"train_gpt2: {attention} attention's loss became {value} at step {step + 1}")
        train_curve.append([step + 1, value])
        postfix = {"loss": f"{value:.3f}", "tok/s": f"{tokens_per_step * (step + 1) / train_seconds:,.0f}"}
        if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
            val_curve.append([step + 1, evaluate(model, val_batches)])
            postfix["val"] = f"{val_curve[-1][1]:.3f}"
        bar.set_postfix(postfix, refresh=False)
    bar.close()
    wall = time.perf_counter() - start
    tail = [loss for _, loss in train_curve[-max(1, min(10, args.steps // 10)) :]]
    return {
        "attention": attention,
        "attn_implementation": ATTENTIONS[attention],
        "final_train_loss": train_curve[-1][1],
        "final_train_loss_smoothed": sum(tail) / len(tail),
        "final_val_loss": val_curve[-1][1],
        "tokens_per_s": tokens_per_step * args.steps / train_seconds,
        "train_seconds": train_seconds,
        "wall_seconds": wall,
        "peak_rss_mib": peak_rss_mib(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_loss": train_curve,
        "val_loss": val_curve,
    }


def plot(runs: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"stock": "tab:blue", "orchard": "tab:orange"}
    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    for run in runs:
        color = colors[run["attention"]]
        steps, losses = zip(*run["train_loss"], strict=True)
        ax.plot(steps, losses, color=color, alpha=0.8, lw=1, label=f"{run['attention']} train")
        steps, losses = zip(*run["val_loss"], strict=True)
        ax.plot(steps, losses, "o--", color=color, ms=4, lw=1.5, label=f"{run['attention']} validation")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy loss (nats / character)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


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
        "--device", default="cpu", help="torch device (default cpu; orchard runs on cpu only)"
    )
    parser.add_argument("--corpus", help="a UTF-8 text file to train on (default: Python stdlib source)")
    parser.add_argument("--eval-every", type=int, default=50, help="steps between validation losses")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
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
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError) as error:
        parser.error(f"--device {args.device} is not usable here: {error}")
    if "orchard" in args.attentions and device.type != "cpu":
        parser.error(
            f"orchard attention runs on the cpu only (orchard-flash has no {device.type} kernels yet); "
            f"use --device cpu, or --attention stock on {device.type}"
        )
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    text, source = load_corpus(args.corpus)
    data = Data(text, args.seq_len)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    print(
        f"corpus: {source}\n"
        f"        {len(text):,} characters, vocabulary {data.vocab_size}, "
        f"{len(data.train):,} train / {len(data.val):,} validation\n"
        f"model:  GPT-2, {args.n_layer} layers, {args.n_head} heads, {args.n_embd} wide, dropout {DROPOUT}; "
        f"{args.steps} steps of {args.batch_size} x {args.seq_len} characters on {args.device} "
        f"({torch.get_num_threads()} threads)"
    )
    start = time.perf_counter()
    with attention_implementations(args.attentions):
        runs = [train(args, data, attention) for attention in args.attentions]
    total = time.perf_counter() - start

    print()
    for run in runs:
        print(
            f"{run['attention']:>7} ({run['attn_implementation']}): train loss {run['final_train_loss']:.4f} "
            f"(last-steps mean {run['final_train_loss_smoothed']:.4f}), validation loss "
            f"{run['final_val_loss']:.4f}, {run['tokens_per_s']:,.0f} tokens/s, {run['wall_seconds']:.1f} s"
        )
    by_name = {run["attention"]: run for run in runs}
    ratio = None
    if len(by_name) == 2:
        ratio = by_name["orchard"]["tokens_per_s"] / by_name["stock"]["tokens_per_s"]
        gap = by_name["orchard"]["final_val_loss"] - by_name["stock"]["final_val_loss"]
        print(f"orchard / stock tokens/s: {ratio:.2f}x; validation loss difference {gap:+.4f}")

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
            "threads": torch.get_num_threads(),
            "eval_every": args.eval_every,
            "corpus": source,
            "corpus_characters": len(text),
            "vocab_size": data.vocab_size,
        },
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": __import__("transformers").__version__,
        },
        "total_wall_seconds": total,
        "orchard_over_stock_tokens_per_s": ratio,
        "runs": {run["attention"]: run for run in runs},
    }
    summary_path, plot_path = out / "summary.json", out / "loss.png"
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    title = (
        f"char-level GPT-2 ({args.n_layer}L/{args.n_head}H/{args.n_embd}, seq {args.seq_len}, "
        f"batch {args.batch_size}, dropout {DROPOUT}): stock vs orchard attention"
    )
    plot(runs, plot_path, title)
    print(f"wrote {plot_path} and {summary_path} ({total:.1f} s in all)")
    return summary


if __name__ == "__main__":
    main()
