"""Shared timing and reporting for the orchard-core benchmark scripts.

Every script builds a list of :class:`Case` records (one operation written for orchard-core,
torch and optionally numpy), times them with :func:`measure` (the libraries take turns
within every repeat, so load from other processes on a shared machine falls on all of
them alike; the median over repeats is kept), prints one line per case with
:func:`print_row` and writes a markdown table with :func:`write_table`.

Ratios are always "other library time / orchard time": above 1 means orchard-core is faster.

The scripts are run as files, so they import this module through their own directory.
"""

from __future__ import annotations

import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orchard_core as oc
import torch

Fn = Callable[[], object]
UNITS = {"µs": 1e6, "ms": 1e3}
RATIO_NOTE = "Ratios are other library time / orchard-core time: above 1 means orchard-core is faster."


@dataclass(frozen=True)
class Case:
    """One operation written for each library; ``numpy`` is None where numpy has no equivalent."""

    name: str
    orchard: Fn
    torch: Fn
    numpy: Fn | None = None


@dataclass(frozen=True)
class Row:
    """Median seconds per call of one case in each library (``numpy`` None if not timed), and the
    spread of torch/orchard: the quartiles of its per-repeat values (each repeat times both)."""

    name: str
    orchard: float
    torch: float
    numpy: float | None = None
    ratio_quartiles: tuple[float, float] | None = None

    def ratio_cell(self) -> str:
        """torch/orchard at the medians, with the quartiles of the per-repeat ratio."""
        ratio = f"{self.torch / self.orchard:.2f}"
        if self.ratio_quartiles is None:
            return ratio
        low, high = self.ratio_quartiles
        return f"{ratio} [{low:.2f}, {high:.2f}]"


def loops_for(fn: Fn, budget_s: float, fraction: int) -> int:
    """Calls per timed loop so that one loop takes just over ``budget_s / fraction``."""
    loops = 1
    while True:
        start = time.perf_counter()
        for _ in range(loops):
            fn()
        if time.perf_counter() - start > budget_s / fraction:
            return loops
        loops *= 2


def measure(
    case: Case,
    budget_s: float | None = None,
    *,
    repeats: int = 7,
    fraction: int = 20,
    loops: int | None = None,
    warmup: bool = False,
    settle_s: float = 0.0,
) -> Row:
    """Time one case: median seconds per call of each library, taking turns in every repeat.

    Each library's loop is sized so that it takes about ``budget_s / fraction``, unless a
    fixed ``loops`` is given. ``warmup`` calls every function once first (thread pools,
    first-touch allocations). ``settle_s`` pauses before each library's turn, so thread
    pools that spin after their last call (OpenBLAS's do) do not steal the next one's cores.
    """
    fns = [case.orchard, case.torch] + ([case.numpy] if case.numpy is not None else [])
    if warmup:
        for fn in fns:
            fn()
    if loops is not None:
        counts = [loops] * len(fns)
    elif budget_s is not None:
        counts = [loops_for(fn, budget_s, fraction) for fn in fns]
    else:
        raise ValueError("measure needs budget_s or loops")
    samples: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, count, out in zip(fns, counts, samples, strict=True):
            time.sleep(settle_s)
            start = time.perf_counter()
            for _ in range(count):
                fn()
            out.append((time.perf_counter() - start) / count)
    o, t, *rest = (statistics.median(s) for s in samples)
    paired = [theirs / ours for ours, theirs in zip(samples[0], samples[1], strict=True)]
    quartiles = statistics.quantiles(paired, n=4) if len(paired) > 1 else None
    spread = (quartiles[0], quartiles[2]) if quartiles else None
    return Row(case.name, o, t, rest[0] if rest else None, spread)


def load_average() -> float:
    """One-minute load average of the machine."""
    return os.getloadavg()[0]


def cpu_name() -> str:
    """The CPU's model name (Linux), or the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def usable_cores() -> int:
    """The cores this process may run on (taskset and cgroups narrow os.cpu_count())."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def print_settings() -> float:
    """Print the CPU, thread counts and the load average; return the load average (for the table)."""
    load = load_average()
    print(
        f"{cpu_name()}: torch threads {torch.get_num_threads()}, orchard threads {oc.get_num_threads()} "
        f"(kernels '{oc.cpu_isa()}'), load average {load:.1f}"
    )
    return load


def print_row(row: Row, unit: str = "ms", digits: int = 2, width: int = 45) -> None:
    """One console line: orchard and torch times and the ratios to orchard."""
    scale = UNITS[unit]
    line = (
        f"{row.name:{width}s} orchard {row.orchard * scale:10.{digits}f} {unit}"
        f"  torch {row.torch * scale:10.{digits}f} {unit}  torch/orchard {row.ratio_cell()}"
    )
    if row.numpy is not None:
        line += f"  numpy/orchard {row.numpy / row.orchard:5.2f}"
    print(line)


def command_line() -> str:
    """The command that produced this run, with the script's path from the repository root."""
    script = f"python packages/orchard-core/benchmarks/{Path(sys.argv[0]).name}"
    return " ".join([script, shlex.join(sys.argv[1:])]).rstrip()


def write_table(
    path: Path,
    title: str,
    rows: Sequence[Row],
    notes: Sequence[str] = (),
    *,
    unit: str = "ms",
    digits: int = 2,
    numpy_columns: bool = True,
    load_at_start: float | None = None,
) -> None:
    """Write a markdown table of ``rows`` with a header describing how it was made.

    The header holds the exact command, the machine, library versions, thread counts, the
    load average (at the start, if given, and at the end) and the ratio convention; then
    ``notes``, the lines of one paragraph of script-specific remarks.
    """
    scale = UNITS[unit]
    cores, threads = usable_cores(), torch.get_num_threads()
    torch_threads = f"{threads} thread" + ("s" if threads != 1 else "")
    load_end = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    load = f"{load_at_start:.1f} at the start, " if load_at_start is not None else ""
    lines = [
        f"# {title}",
        "",
        f"Command: `{command_line()}` (or `nox -s bench`)  ",
        f"Machine: {cpu_name()}, {platform.machine()} {platform.system()}, {cores} cores; torch "
        f"{torch.__version__} ({torch_threads}), numpy {np.__version__}, orchard-core {oc.__version__} "
        f"({oc.get_num_threads()} threads, kernels '{oc.cpu_isa()}').  ",
        f"Load average: {load}{load_end} (1/5/15 min) at the end; a shared machine, so absolute times "
        "are noise and the ratios within one run are the evidence.  ",
        f"{RATIO_NOTE} All libraries timed in the same run, taking turns; median over repeats; "
        "in brackets, the quartiles of torch/orchard over the repeats (its spread).",
    ]
    if notes:
        lines += ["", *notes]
    header = f"| operation | orchard {unit} | torch {unit} |"
    if numpy_columns:
        header += f" numpy {unit} | torch/orchard | numpy/orchard |"
    else:
        header += " torch/orchard |"
    lines += ["", header, "|---" * header.count(" |") + "|"]
    for row in rows:
        cells = [row.name, f"{row.orchard * scale:.{digits}f}", f"{row.torch * scale:.{digits}f}"]
        ratio = row.ratio_cell()
        if numpy_columns:
            if row.numpy is None:
                cells += ["—", ratio, "—"]
            else:
                cells += [f"{row.numpy * scale:.{digits}f}", ratio, f"{row.numpy / row.orchard:.2f}"]
        else:
            cells.append(ratio)
        lines.append("| " + " | ".join(cells) + " |")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {path}")
