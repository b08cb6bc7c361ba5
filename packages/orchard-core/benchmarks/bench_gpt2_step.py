"""A GPT-2 training step on orchard-core alone next to the same step in torch eager, in one run.

The model is the demo's (demo/gpt2_model.py: one file, written with torch's API, built on each
library), from the same weights, trained on the same batches: forward, cross-entropy, backward,
gradient clipping and an AdamW step, then a host read of the loss, as a training loop does. The
libraries take turns step by step (the harness's ``measure``); tokens/s is batch x length over the
median step time. Dropout 0.1 is the case users train with; dropout off is the deterministic one.
Also the parts of the step alone (forward+backward, clip + AdamW), to show where time goes.

    python bench_gpt2_step.py --out docs/benchmarks/gpt2_step.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch  # first, as users import it: orchard-core's threads are measured as they run

# isort: split
import numpy as np
import orchard_core as oc
import orchard_flash  # noqa: F401 - the attention behind orchard's scaled_dot_product_attention

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "demo"))
from _harness import Case, Row, measure, print_row, print_settings, write_table
from gpt2_model import GPT2Config, gpt2_class

# (name, layers, heads, width, length, batch): a tiny model (per-op costs), the demo's preset and a
# wider model.
SHAPES = [
    ("tiny: 2 layers, 64 wide, seq 64, batch 16", 2, 4, 64, 64, 16),
    ("demo small: 4 layers, 128 wide, seq 256, batch 8", 4, 4, 128, 256, 8),
    ("6 layers, 384 wide, seq 256, batch 4", 6, 6, 384, 256, 4),
]
VOCAB = 96


class Trainer:
    """One library's model, optimizer and batches; ``step()`` is one training step."""

    def __init__(self, lib, config: GPT2Config, weights: dict[str, np.ndarray], batches: np.ndarray) -> None:
        self.lib = lib
        self.model = gpt2_class(lib)(config)
        self.model.load_state_dict({name: lib.from_numpy(value.copy()) for name, value in weights.items()})
        self.optimizer = lib.optim.AdamW(
            self.model.parameters(), lr=1e-3, weight_decay=0.1, betas=(0.9, 0.95)
        )
        self.batches = [(lib.from_numpy(b[:, :-1].copy()), lib.from_numpy(b[:, 1:].copy())) for b in batches]
        self.index = 0

    def loss(self):
        inputs, targets = self.batches[self.index % len(self.batches)]
        self.index += 1
        return self.model(inputs, targets)

    def forward_backward(self) -> None:
        loss = self.loss()
        self.model.zero_grad(set_to_none=True)
        loss.backward()

    def update(self) -> None:
        self.lib.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()

    def step(self) -> float:
        loss = self.loss()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.update()
        return loss.item()


def trainers(layers: int, heads: int, width: int, length: int, batch: int, dropout: float):
    config = GPT2Config(VOCAB, length, layers, heads, width, dropout)
    torch.manual_seed(0)
    weights = {k: v.detach().numpy().copy() for k, v in gpt2_class(torch)(config).state_dict().items()}
    batches = np.random.default_rng(0).integers(0, VOCAB, (4, batch, length + 1))
    return Trainer(oc, config, weights, batches), Trainer(torch, config, weights, batches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the markdown table here")
    parser.add_argument("--repeats", type=int, default=9, help="interleaved steps timed per case (default 9)")
    parser.add_argument("--threads", type=int, help="threads of both libraries (default: each one's own)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
        oc.set_num_threads(args.threads)
    load = print_settings()
    rows: list[Row] = []
    notes = []
    for name, layers, heads, width, length, batch in SHAPES:
        for dropout in (0.1, 0.0):
            ours, theirs = trainers(layers, heads, width, length, batch, dropout)
            tokens = batch * length
            cases = [Case(f"{name}, dropout {dropout}: training step", ours.step, theirs.step)]
            if dropout:
                cases += [
                    Case(
                        f"{name}, dropout {dropout}: forward + backward",
                        ours.forward_backward,
                        theirs.forward_backward,
                    ),
                    Case(f"{name}: clip_grad_norm_ + AdamW.step", ours.update, theirs.update),
                ]
            for case in cases:
                row = measure(case, loops=1, repeats=args.repeats, warmup=True)
                rows.append(row)
                print_row(row)
                if case.name.endswith("training step"):
                    notes.append(
                        f"- {case.name}: orchard {tokens / row.orchard:,.0f} tokens/s, torch "
                        f"{tokens / row.torch:,.0f} tokens/s."
                    )
    if args.out:
        write_table(
            args.out,
            "GPT-2 training step: orchard-core alone vs torch eager (CPU)",
            rows,
            [
                "The demo's model (demo/gpt2_model.py), built on each library from the same weights, "
                f"vocabulary "
                f"{VOCAB}, float32, AdamW with clipping; each timed call is one step (or part of one); the "
                "libraries take turns. Tokens/s at the median step time:",
                "",
                *notes,
            ],
            numpy_columns=False,
            load_at_start=load,
        )


if __name__ == "__main__":
    main()
