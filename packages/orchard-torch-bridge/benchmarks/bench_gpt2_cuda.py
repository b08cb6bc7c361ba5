"""GPT-2 training steps on a CUDA GPU: Orchard attention vs stock, tokens/s and peak memory.

    python packages/orchard-torch-bridge/benchmarks/bench_gpt2_cuda.py --out docs/benchmarks/gpt2_cuda.md

GPT2LMHeadModel at GPT-2 small's size (12 layers, 768 wide, 12 heads, vocabulary 50257), batch
4, bf16 autocast over fp32 weights, fused AdamW, train mode, dropout p on the embeddings,
attention and residuals (p = 0.1 and 0). Stock is transformers' ``attn_implementation="sdpa"``
(torch's SDPA, FlashAttention-2 on this GPU); Orchard is ``attn_implementation="orchard"``
(orchard-flash's CUDA kernels through the bridge). Both models start from the same weights and
see the same batches of token ids.

Speed: both models live in this process; after warm-up steps, timed steps alternate between
them (each step synchronized, wall clock), and the median step time gives tokens/s. Peak
memory: ``torch.cuda.max_memory_allocated`` over one step of one model, less what was
allocated before it (both models' weights and optimizer state, and the batch).
"""

from __future__ import annotations

import argparse
import datetime
import shlex
import statistics
import sys
import time
from pathlib import Path

import torch  # first, as users import it

SCRIPT = "python packages/orchard-torch-bridge/benchmarks/bench_gpt2_cuda.py"
ATTENTIONS = ("sdpa", "orchard")


def build(
    args: argparse.Namespace, attn: str, dropout: float
) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=args.vocab,
        n_positions=max(args.lengths),
        n_embd=args.embd,
        n_layer=args.layers,
        n_head=args.heads,
        resid_pdrop=dropout,
        embd_pdrop=dropout,
        attn_pdrop=dropout,
    )
    torch.manual_seed(0)  # the same initial weights for both attentions
    model = GPT2LMHeadModel._from_config(config, attn_implementation=attn).cuda().train()
    return model, torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)


def step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, ids: torch.Tensor) -> tuple[float, float]:
    """Seconds of one training step (synchronized), and its loss."""
    torch.cuda.synchronize()
    start = time.perf_counter()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = model(ids, labels=ids).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    return time.perf_counter() - start, float(loss.detach())


def peak_mib(model: torch.nn.Module, optimizer: torch.optim.Optimizer, ids: torch.Tensor) -> float:
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    step(model, optimizer, ids)
    return (torch.cuda.max_memory_allocated() - before) / 2**20


def measure(args: argparse.Namespace, length: int, dropout: float) -> dict[str, float]:
    models = {attn: build(args, attn, dropout) for attn in ATTENTIONS}
    gen = torch.Generator().manual_seed(length)
    batches = [torch.randint(0, args.vocab, (args.batch, length), generator=gen).cuda() for _ in range(4)]
    for i in range(args.warmup):
        for attn in ATTENTIONS:
            step(*models[attn], batches[i % len(batches)])
    times: dict[str, list[float]] = {attn: [] for attn in ATTENTIONS}
    losses: dict[str, list[float]] = {attn: [] for attn in ATTENTIONS}
    for i in range(args.steps):
        order = ATTENTIONS if i % 2 == 0 else ATTENTIONS[::-1]  # alternate who goes first
        for attn in order:
            seconds, loss = step(*models[attn], batches[i % len(batches)])
            times[attn].append(seconds)
            losses[attn].append(loss)
    memory = {attn: peak_mib(*models[attn], batches[0]) for attn in ATTENTIONS}
    tokens = args.batch * length
    median = {attn: statistics.median(t) for attn, t in times.items()}
    row = {"length": length, "dropout": dropout, "tokens": tokens}
    for attn in ATTENTIONS:
        row[f"{attn}_tps"] = tokens / median[attn]
        row[f"{attn}_spread"] = (tokens / max(times[attn]), tokens / min(times[attn]))
        row[f"{attn}_mib"] = memory[attn]
        row[f"{attn}_loss"] = statistics.fmean(losses[attn])
    row["ratio"] = median["sdpa"] / median["orchard"]
    del models
    torch.cuda.empty_cache()
    return row


def markdown(args: argparse.Namespace, rows: list[dict]) -> str:
    import orchard_flash
    import transformers

    command = " ".join([SCRIPT, shlex.join(sys.argv[1:])]).rstrip()
    lines = [
        "# GPT-2 training steps on a CUDA GPU: Orchard attention vs stock",
        "",
        f"Command: `{command}`  ",
        f"GPU: {torch.cuda.get_device_name()}; torch {torch.__version__} (CUDA {torch.version.cuda}), "
        f"transformers {transformers.__version__}, orchard-flash {orchard_flash.__version__}; "
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}.  ",
        f"Model: GPT2LMHeadModel, {args.layers} layers, n_embd {args.embd}, {args.heads} heads, vocabulary "
        f"{args.vocab}, batch {args.batch}, bf16 autocast over fp32 weights, fused AdamW, train mode. Stock: "
        '`attn_implementation="sdpa"`; Orchard: `attn_implementation="orchard"`. Same initial weights and '
        "batches.  ",
        f"Speed: {args.warmup} warm-up steps per model, then {args.steps} timed steps each, alternating; "
        "tokens/s from the median step, [slowest, fastest] step in brackets. Ratio = stock step time / "
        "Orchard step time (above 1: Orchard is faster). Peak memory: what one step allocates above what "
        "was allocated before it. Loss: mean over the timed steps (the dropout masks differ between the "
        "libraries, so the losses agree only on average).",
        "",
        "| L | dropout | stock tokens/s | Orchard tokens/s | Orchard/stock | stock peak MiB "
        "| Orchard peak MiB | stock loss | Orchard loss |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:

        def tps(attn: str, r: dict = r) -> str:
            low, high = r[f"{attn}_spread"]
            return f"{r[f'{attn}_tps']:,.0f} [{low:,.0f}, {high:,.0f}]"

        lines.append(
            f"| {r['length']} | {r['dropout']:g} | {tps('sdpa')} | {tps('orchard')} | **{r['ratio']:.2f}** "
            f"| {r['sdpa_mib']:,.0f} | {r['orchard_mib']:,.0f} | {r['sdpa_loss']:.4f} "
            f"| {r['orchard_loss']:.4f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, help="write a Markdown report here")
    parser.add_argument("--lengths", type=int, nargs="+", default=[1024, 4096, 16384])
    parser.add_argument("--dropout", type=float, nargs="+", default=[0.1, 0.0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--embd", type=int, default=768)
    parser.add_argument("--vocab", type=int, default=50257)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print(f"no CUDA GPU visible to torch {torch.__version__}: nothing measured")
        return 0
    from orchard_torch_bridge import gpt2

    gpt2.register()  # "orchard"; the "sdpa" switch stays off, so "sdpa" is stock
    gpt2.disable()
    rows = []
    for length in args.lengths:
        for dropout in args.dropout:
            row = measure(args, length, dropout)
            rows.append(row)
            print(
                f"L={length:5d} p={dropout:g}: stock {row['sdpa_tps']:9,.0f} tok/s, orchard "
                f"{row['orchard_tps']:9,.0f} tok/s, orchard/stock {row['ratio']:.2f}; peak MiB "
                f"{row['sdpa_mib']:,.0f} / {row['orchard_mib']:,.0f}; loss {row['sdpa_loss']:.4f} / "
                f"{row['orchard_loss']:.4f}",
                flush=True,
            )
    if args.out:
        args.out.write_text(markdown(args, rows), encoding="utf-8")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
