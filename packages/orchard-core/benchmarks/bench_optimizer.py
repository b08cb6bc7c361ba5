"""The fused optimizer ops (lerp_, addcmul_, addcdiv_) and one AdamW update built from them, in
orchard-core next to torch, measured in one run (the libraries take turns in every repeat; the
median over repeats is kept). The AdamW step is torch.optim.AdamW's single-tensor update,
written with the same calls in both libraries.

    python bench_optimizer.py --numel 10000000 --out docs/benchmarks/optimizer.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch  # first, as users import it: orchard-core's threads are measured as they run

# isort: split
import numpy as np
import orchard_core as oc

sys.path.insert(0, str(Path(__file__).parent))
from _harness import Case, measure, print_row, print_settings, write_table

LR, BETA1, BETA2, EPS, WEIGHT_DECAY = 1e-3, 0.9, 0.999, 1e-8, 0.1


def adamw_step(lib, param, grad, exp_avg, exp_avg_sq, step: int) -> None:
    """torch.optim.AdamW's single-tensor update (foreach=False), in lib's (oc or torch) calls."""
    del lib  # the same Tensor methods in both
    param.mul_(1 - LR * WEIGHT_DECAY)
    exp_avg.lerp_(grad, 1 - BETA1)
    exp_avg_sq.mul_(BETA2).addcmul_(grad, grad, value=1 - BETA2)
    bias_correction1 = 1 - BETA1**step
    bias_correction2_sqrt = (1 - BETA2**step) ** 0.5
    denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(EPS)
    param.addcdiv_(exp_avg, denom, value=-LR / bias_correction1)


def cases(numel: int) -> list[Case]:
    rng = np.random.default_rng(0)

    def pair() -> tuple[oc.Tensor, torch.Tensor]:
        base = rng.standard_normal(numel, dtype=np.float32)
        # torch.tensor copies into torch's allocator (4 KiB pages, as orchard's); a numpy copy would
        # bring numpy's transparent huge pages to torch's side alone.
        return oc.tensor(base), torch.tensor(base)

    (p_o, p_t), (g_o, g_t), (m_o, m_t) = pair(), pair(), pair()
    v_o, v_t = oc.tensor(np.abs(m_t.numpy())), m_t.abs()  # the second moment is non-negative
    n = f"{numel / 1e6:g}M float32"
    return [
        Case(f"lerp_ by a number, {n}", lambda: m_o.lerp_(g_o, 0.1), lambda: m_t.lerp_(g_t, 0.1)),
        Case(
            f"addcmul_, {n}",
            lambda: v_o.addcmul_(g_o, g_o, value=1e-3),
            lambda: v_t.addcmul_(g_t, g_t, value=1e-3),
        ),
        Case(
            f"addcdiv_, {n}",
            lambda: p_o.addcdiv_(m_o, v_o, value=-1e-9),
            lambda: p_t.addcdiv_(m_t, v_t, value=-1e-9),
        ),
        Case(f"mul_ by a number, {n}", lambda: p_o.mul_(0.9999), lambda: p_t.mul_(0.9999)),
        Case(
            f"AdamW step, {n}",
            lambda: adamw_step(oc, p_o, g_o, m_o, v_o, 10),
            lambda: adamw_step(torch, p_t, g_t, m_t, v_t, 10),
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--numel", type=int, default=10_000_000, help="elements per tensor (default 10M)")
    parser.add_argument("--budget", type=float, default=0.5, help="seconds per measurement (default 0.5)")
    parser.add_argument("--repeats", type=int, default=9, help="interleaved repeats (default 9)")
    parser.add_argument("--out", type=Path, help="write a markdown table here")
    args = parser.parse_args()
    load = print_settings()
    rows = []
    for case in cases(args.numel):
        row = measure(case, args.budget, repeats=args.repeats, fraction=20)
        rows.append(row)
        print_row(row, unit="ms")
    if args.out:
        title = "orchard-core's fused optimizer ops vs torch"
        write_table(args.out, title, rows, [], unit="ms", load_at_start=load)


if __name__ == "__main__":
    main()
