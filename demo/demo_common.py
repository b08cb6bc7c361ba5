"""What both demos share: the corpus, step-time quantiles, peak memory and the plot.

The bridge's demo (packages/orchard-torch-bridge/demo/train_gpt2.py) and the native one
(demo/train_native.py) train on the same corpus and draw the same figure; neither torch nor
orchard_core is imported here, so the native demo's driver stays free of both.
"""

from __future__ import annotations

import json
import math
import platform
import resource
import sys
import sysconfig
from pathlib import Path
from typing import Any

import numpy as np

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
DROPOUT = 0.1
RATIO_METHOD = (
    "median over steps of (stock step time / orchard step time) at the same step; steps interleaved"
)
QUANTILES = {"p10": 0.1, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p90": 0.9}


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
        raise SystemExit(f"demo: found none of the default corpus's modules under {stdlib}")
    return "\n".join(parts), f"Python {platform.python_version()} stdlib: {', '.join(names)}"


def load_corpus(path: str | None) -> tuple[str, str]:
    if path is None:
        return default_corpus()
    text = Path(path).read_text(encoding="utf-8")
    return text, str(Path(path).resolve())


def quantiles(values: list[float]) -> dict[str, float]:
    """QUANTILES of `values` (linear interpolation)."""
    cuts = np.quantile(np.asarray(values, dtype=np.float64), list(QUANTILES.values()))
    return dict(zip(QUANTILES, cuts.tolist(), strict=True))


def peak_rss_mib() -> float:
    """The process's peak resident set size so far (MiB), both models together."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux


def plot(runs: dict[str, dict[str, Any]], tokens_per_step: int, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import StrMethodFormatter

    both = len(runs) == 2
    # The two train curves nearly coincide: stock is a wide translucent band, Orchard a thin line
    # inside it, so that both stay visible; the difference panel shows what the eye cannot.
    styles = {
        "stock": {
            "color": "tab:blue",
            "median_ls": "-",
            "lw": 2.5,
            "alpha": 0.4,
            "marker": "o",
            "mfc": "tab:blue",
        },
        "orchard": {
            "color": "tab:orange",
            "median_ls": "--",
            "lw": 0.9,
            "alpha": 1.0,
            "marker": "s",
            "mfc": "none",
        },
    }
    heights = [3, 1.4, 2] if both else [3, 2]
    fig, axes = plt.subplots(
        len(heights), 1, figsize=(9, 9 if both else 7), dpi=120, sharex=True, height_ratios=heights
    )
    loss_ax, speed_ax = axes[0], axes[-1]
    for name, run in runs.items():
        style = styles[name]
        steps, losses = zip(*run["train_loss"], strict=True)
        loss_ax.plot(
            steps, losses, color=style["color"], lw=style["lw"], alpha=style["alpha"], label=f"{name} train"
        )
        steps, losses = zip(*run["val_loss"], strict=True)
        loss_ax.plot(
            steps,
            losses,
            color=style["color"],
            ls=":",
            lw=1.5,
            marker=style["marker"],
            mfc=style["mfc"],
            ms=6,
            label=f"{name} validation",
        )
        speeds = [tokens_per_step / seconds for seconds in run["step_seconds"]]
        speed_ax.plot(
            range(1, len(speeds) + 1), speeds, style["marker"], color=style["color"], mfc=style["mfc"], ms=3
        )
        low, high = run["tokens_per_s_iqr"]
        speed_ax.axhline(
            run["tokens_per_s"],
            color=style["color"],
            ls=style["median_ls"],
            lw=1.5,
            label=f"{name}: median {run['tokens_per_s']:,.0f} tokens/s (IQR {low:,.0f}-{high:,.0f})",
        )
    loss_ax.set_ylabel("cross-entropy loss\n(nats / character)")
    loss_ax.set_title(title, fontsize=10)
    loss_ax.legend(ncols=2, fontsize=8)
    if both:
        diff_ax = axes[1]
        stock, orchard = runs["stock"], runs["orchard"]
        steps = [step for step, _ in stock["train_loss"]]
        diff = [o - s for (_, s), (_, o) in zip(stock["train_loss"], orchard["train_loss"], strict=True)]
        diff_ax.plot(steps, diff, color="tab:gray", lw=0.8, alpha=0.7, label="train, per step")
        val_steps = [step for step, _ in stock["val_loss"]]
        val_diff = [o - s for (_, s), (_, o) in zip(stock["val_loss"], orchard["val_loss"], strict=True)]
        diff_ax.plot(val_steps, val_diff, "o:", color="black", ms=4, label="validation")
        diff_ax.axhline(0, color="black", lw=0.5)
        diff_ax.set_ylabel("loss difference\n(orchard - stock)")
        diff_ax.legend(fontsize=8)
    speed_ax.set_ylabel("tokens/s per step")
    speed_ax.set_xlabel("step")
    speed_ax.set_ylim(bottom=0)
    speed_ax.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    speed_ax.legend(fontsize=8, loc="lower right")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def learning_rate(peak: float, steps: int, step: int) -> float:
    """Linear warmup over the first 10% of the steps, then cosine decay to a tenth."""
    warmup = max(1, steps // 10)
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def paired_ratio(runs: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """Quantiles over steps of stock's step time / orchard's at the same step (both runs)."""
    if len(runs) != 2:
        return None
    stock, orchard = runs["stock"], runs["orchard"]
    paired = [s / o for s, o in zip(stock["step_seconds"], orchard["step_seconds"], strict=True)]
    return {"method": RATIO_METHOD, **quantiles(paired)}


def write_outputs(
    summary: dict[str, Any], runs: dict[str, dict[str, Any]], tokens_per_step: int, out: Path, title: str
) -> None:
    """summary.json and loss.png in `out`; the title gains the speed ratio when both runs ran."""
    summary_path, plot_path = out / "summary.json", out / "loss.png"
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    ratio = summary["orchard_over_stock_tokens_per_s"]
    if ratio:
        title += f"\norchard / stock tokens/s {ratio['p50']:.2f}x (median of per-step ratios)"
    plot(runs, tokens_per_step, plot_path, title)
    print(f"wrote {plot_path} and {summary_path} ({summary['total_wall_seconds']:.1f} s in all)")
