"""Every parity test (orchard vs torch), then docs/parity.md, the migration scoreboard.

    python packages/orchard-torch-bridge/parity/run_parity.py --out docs/parity.md   (or `nox -s parity`)

1. Runs the pytest parity suites: orchard-core's operator table (test_parity.py),
   orchard-flash's tests against its reference and torch, and the bridge's tests.
2. Records every aten op one GPT-2 training step calls (forward, backward, AdamW; stock
   SDPA attention and Orchard's), maps each to orchard-core's equivalent (measure.OP_TABLE)
   and measures the max abs error of orchard-core against torch, forward and backward.
3. Writes the table, with flash attention vs SDPA and GPT-2 stock vs Orchard, to --out.

Exits non-zero if a pytest run fails, a measurement raises, or an op the step uses is
not in measure.OP_TABLE.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
sys.path.insert(0, str(HERE))

# (name, pytest arguments): each suite runs in its own pytest process. The bridge's demo test
# (test_demo.py, `nox -s demo` end to end) compares nothing with torch and is left out.
SUITES = [
    ("orchard-core operators vs torch", ["packages/orchard-core/tests/test_parity.py"]),
    ("orchard-flash (whole suite: vs reference and SDPA)", ["packages/orchard-flash/tests"]),
    (
        "orchard-torch-bridge (converters, attention op, GPT-2 switch, this table)",
        ["packages/orchard-torch-bridge/tests", "--ignore=packages/orchard-torch-bridge/tests/test_demo.py"],
    ),
]


@dataclass
class SuiteResult:
    name: str
    command: str
    returncode: int
    summary: str
    seconds: float


# Written here, not measured: what the scoreboard means for the bridge.
REMOVAL_PLAN = [
    "## Removing the bridge",
    "",
    "What runs without it today: a GPT-2 written against `orchard_core.nn` / `optim` with torch's names "
    "trains on orchard-core and orchard-flash alone on the CPU (`nox -s demo -- --engine orchard`, "
    "demo/gpt2_model.py; its losses equal torch's from the same "
    "weights, demo/tests/test_train_native.py and packages/orchard-core/tests/test_gpt2_parity.py). "
    'The modules and optimizers are also tested on the `"metal"` device in the Linux harness.',
    "",
    "What still needs it:",
    "",
    "- **GPU training.** orchard-core has no CUDA operator kernels yet (the CUDA-operators issue): on an "
    "NVIDIA GPU, orchard-flash's kernels reach a model only as the bridge's custom op inside torch. On "
    "Apple GPUs the Metal kernels exist but have never run on Apple hardware; until they have, the "
    "bridge's `mps` path is the only route a Mac user can take with torch.",
    '- **Users of torch and transformers models** (`attn_implementation="orchard"`, `USE_FLASH_ATTN=2`): '
    "the bridge is their entry point, not a stopgap, as long as they train in torch.",
    "- **This scoreboard and the parity tests**, which record a transformers model's aten ops and compare "
    "orchard-core with torch through the bridge's DLPack conversion.",
    "",
    "The switch: once the CUDA-operators issue lands and the native demo's `--device cuda` trains, "
    "`orchard-torch-bridge` leaves the default install and CI (`PACKAGES` in noxfile.py), the demo's "
    "default engine becomes `orchard`, this scoreboard's measurement moves to orchard-core's tests "
    "(torch stays a test-only reference, as test_gpt2_parity.py uses it), and the torch custom op "
    "lives on as an optional extra for torch users rather than as the training path.",
]


def run_suite(name: str, paths: list[str], extra: list[str]) -> SuiteResult:
    existing = [p for p in paths if p.startswith("-") or (ROOT / p).exists()]
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *existing, *extra]
    print(f"== {name}: {shlex.join(command[1:])}", flush=True)
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    output = proc.stdout + proc.stderr
    lines = [
        line.strip("= ") for line in output.splitlines() if re.search(r"\d+ (passed|failed|error)", line)
    ]
    summary = lines[-1] if lines else f"no summary (exit {proc.returncode})"
    print(summary, flush=True)
    if proc.returncode != 0:
        print(output[-6000:], flush=True)
    return SuiteResult(name, "python " + shlex.join(command[1:]), proc.returncode, summary, seconds)


def fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    if value == 0:
        return "0"
    return f"{value:.1e}"


def machine() -> str:
    import orchard_core
    import torch
    import transformers

    try:
        import orchard_flash

        flash = f", orchard-flash {orchard_flash.__version__}"
    except ImportError:
        flash = ""
    return (
        f"{platform.machine()} {platform.system()}, {os.cpu_count()} cores; Python "
        f"{platform.python_version()}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"transformers {transformers.__version__}, orchard-core {orchard_core.__version__}{flash}"
    )


def build_table() -> tuple[list[str], bool]:
    """The markdown lines of the scoreboard and whether everything could be measured."""
    import gpt2_ops
    import measure

    ok = True
    stock = gpt2_ops.record_training_step("sdpa")
    orchard = gpt2_ops.record_training_step(gpt2_ops.orchard_attention())
    ops = sorted(set(stock.ops()) | set(orchard.ops()))
    ops = [op for op in ops if not op.startswith("profiler::")]

    runners = measure.measurements()
    results: dict[str, measure.Result | str] = {}
    for key, runner in runners.items():
        try:
            results[key] = runner()
        except Exception as exc:  # reported in the table, and the run fails
            results[key] = f"error: {type(exc).__name__}: {exc}".replace("|", "/")[:160]
            ok = False

    rows = []
    counts = {"native": 0, "composite": 0, "missing": 0, "unmapped": 0}
    for op in ops:
        phases = sorted(set(stock.phases(op)) | set(orchard.phases(op)), key=gpt2_ops.PHASES.index)
        calls = f"{stock.count(op)} / {orchard.count(op)}"
        entry = measure.OP_TABLE.get(op)
        if entry is None:
            counts["unmapped"] += 1
            ok = False
            rows.append(
                f"| `{op}` | {', '.join(phases)} | {calls} | unmapped (add to measure.OP_TABLE) | | |"
            )
            continue
        counts[entry.status] += 1
        fwd = bwd = ""
        result = results.get(entry.measurement) if entry.measurement else None
        if isinstance(result, str):
            fwd = result
        elif result is not None:
            label = "" if entry.status != "missing" else " (composite)"
            if entry.use == "backward":
                bwd = fmt(result.backward) + label
            else:
                fwd = fmt(result.forward) + label
                bwd = fmt(result.backward) + label if result.backward is not None else "n/a"
        status = {"native": "native", "composite": "composite", "missing": "**missing**"}[entry.status]
        rows.append(
            f"| `{op}` | {', '.join(phases)} | {calls} | {status}: {entry.equivalent} | {fwd} | {bwd} |"
        )

    shape = (
        f"batch {measure.B}, length {measure.T}, width {measure.C}, {measure.H} heads, vocabulary {measure.V}"
    )

    def extra_row(name: str, key_or_fn) -> str:
        nonlocal ok
        try:
            result = key_or_fn() if callable(key_or_fn) else results[key_or_fn]
        except Exception as exc:
            result = f"error: {type(exc).__name__}: {exc}"
        if isinstance(result, str):
            ok = False
            return f"| {name} | {result} | | |"
        note = result.note or f"float32, {shape}"
        return f"| {name} | {fmt(result.forward)} | {fmt(result.backward)} | {note} |"

    extras = [
        extra_row("orchard flash attention (bridge op) vs torch SDPA, fp32", "flash"),
        extra_row("GPT-2 with Orchard attention vs stock SDPA, dropout off", measure.gpt2_stock_vs_orchard),
        extra_row(
            "GPT-2's gelu_new: orchard-core gelu(approximate='tanh') vs transformers' NewGELU", "gelu_new"
        ),
        extra_row("layer_norm: orchard-core's kernel vs F.layer_norm", "layer_norm"),
        extra_row("cross-entropy: orchard-core's fused kernel vs F.cross_entropy", "cross_entropy"),
        extra_row("one AdamW update in place (lerp_, addcmul_, addcdiv_) vs torch's", "adamw"),
    ]

    total = len(ops)
    summary = (
        f"**{counts['native']} of {total} ops native** in orchard-core (or orchard-flash for attention), "
        f"{counts['composite']} composite (several orchard-core ops), {counts['missing']} missing"
        + (f", {counts['unmapped']} unmapped" if counts["unmapped"] else "")
        + "."
    )
    lines = [
        summary,
        "",
        "## Operations of one GPT-2 training step",
        "",
        "Recorded with a `TorchDispatchMode` around one forward + backward + `AdamW.step()` of a tiny "
        "`GPT2LMHeadModel` (2 layers, 4 heads, n_embd 64, dropout 0.1, batch 2, length 32; "
        "packages/orchard-torch-bridge/parity/gpt2_ops.py), once with stock attention (`sdpa`: on the CPU "
        "with dropout, torch's unfused math path) and once with Orchard's. Overloads are merged; "
        "calls per step are stock / Orchard.",
        "",
        "Errors: max abs difference, orchard-core vs torch, on random float32 inputs of GPT-2-like shapes "
        f"({shape}; packages/orchard-torch-bridge/parity/measure.py), inputs passed through "
        "`orchard_torch_bridge.from_torch`. *bwd* is the max error of the input gradients for the same "
        "random output gradient (orchard-core autograd vs torch autograd); a backward aten op reports "
        "the backward error of its forward op. n/a: not differentiable, or random (dropout compares the "
        "kept values only). Views and copies are exact (0).",
        "",
        "| aten op | used in | calls per step (stock / Orchard) | orchard-core equivalent | max error fwd | "
        "max error bwd |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        "## Attention and the whole model",
        "",
        "| comparison | max error fwd | max error bwd | shapes |",
        "|---|---|---|---|",
        *extras,
    ]
    return lines, ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "parity.md")
    parser.add_argument("--skip-tests", action="store_true", help="only the table (no pytest runs)")
    parser.add_argument("pytest_args", nargs="*", help="extra arguments for every pytest run")
    args = parser.parse_args()
    started = time.perf_counter()
    load_start = os.getloadavg()[0]
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

    suites = [] if args.skip_tests else [run_suite(name, paths, args.pytest_args) for name, paths in SUITES]
    print("== measuring the GPT-2 step's operations", flush=True)
    table, measured = build_table()
    seconds = time.perf_counter() - started

    command = "python packages/orchard-torch-bridge/parity/run_parity.py --out docs/parity.md"
    lines = [
        "# Parity: orchard vs torch, and the migration scoreboard",
        "",
        "For each torch operation a GPT-2 training step uses, whether orchard-core provides it and how "
        "far its results are from torch's. The bridge (orchard-torch-bridge) can go once every row is "
        "native.",
        "",
        f"Date: {date}  ",
        f"Command: `{command}` (or `nox -s parity`), {seconds:.0f} s in all  ",
        f"Machine: {machine()}  ",
        f"Load average: {load_start:.1f} at the start, "
        + " / ".join(f"{x:.1f}" for x in os.getloadavg())
        + " (1/5/15 min) at the end (a shared machine: run times vary with it).",
        "",
        *table,
        "",
        "## Parity test suites",
        "",
        "| suite | result | seconds | command |",
        "|---|---|---|---|",
        *(f"| {s.name} | {s.summary} | {s.seconds:.0f} | `{s.command}` |" for s in suites),
    ]
    if not suites:
        lines.append("| (not run: --skip-tests) | | | |")
    lines += ["", *REMOVAL_PLAN]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out} in {seconds:.0f} s")
    failed = [s.name for s in suites if s.returncode != 0]
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
    if not measured:
        print("FAILED: some measurements raised or ops are unmapped (see the table)", file=sys.stderr)
    return 1 if failed or not measured else 0


if __name__ == "__main__":
    sys.exit(main())
