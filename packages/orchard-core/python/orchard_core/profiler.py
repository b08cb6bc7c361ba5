"""Per-op timing, with torch.profiler's names.

    with orchard_core.profiler.profile() as prof:
        loss = model(x, y)
        loss.backward()
        optimizer.step()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
    prof.export_chrome_trace("trace.json")  # a timeline for https://ui.perfetto.dev

Every operator (``add``, ``linear``, ``layer_norm``...), every autograd node that runs in
``backward()`` (``LinearBackward``...), orchard-flash's two passes, ``Optimizer.step`` and every
``record_function`` block is one event: the host's wall-clock time from call to return, its
*self* time (less the events opened inside it) and the storage it allocated itself. On the CPU
an op returns when its kernel is done, so its time is the kernel's. On an asynchronous device
(Metal on Apple hardware) it is the time to encode the work; device time is not measured.

Not to be confused with :mod:`orchard_core.profile`, which logs allocations to a file.
When no profiler records, each op pays one atomic load.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from . import _core

_trace = _core.trace


@dataclass(frozen=True)
class Event:
    """One closed scope. Times in microseconds since the profiler started, like torch's."""

    name: str
    thread: int
    depth: int
    start_us: float
    cpu_time_total: float
    self_cpu_time_total: float
    self_cpu_memory_usage: int
    self_allocations: int


@dataclass
class EventAverage:
    """The events of one name, summed (``key_averages()``): torch's FunctionEventAvg fields."""

    key: str
    count: int = 0
    cpu_time_total: float = 0.0
    self_cpu_time_total: float = 0.0
    self_cpu_memory_usage: int = 0

    @property
    def cpu_time(self) -> float:
        """Mean time per call, children included (microseconds)."""
        return self.cpu_time_total / self.count if self.count else 0.0

    @property
    def self_cpu_time(self) -> float:
        """Mean self time per call (microseconds)."""
        return self.self_cpu_time_total / self.count if self.count else 0.0


_SORT_KEYS = ("self_cpu_time_total", "cpu_time_total", "count", "cpu_time", "self_cpu_memory_usage")


def _time(us: float) -> str:
    if us >= 1e6:
        return f"{us / 1e6:.3f}s"
    if us >= 1e3:
        return f"{us / 1e3:.3f}ms"
    return f"{us:.3f}us"


def _bytes(n: int) -> str:
    for unit, size in (("Gb", 1 << 30), ("Mb", 1 << 20), ("Kb", 1 << 10)):
        if abs(n) >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n} b"


class EventList(list[EventAverage]):
    """Averages, one per name, with a printable table."""

    def __init__(self, rows: list[EventAverage], wall_us: float, top_level_us: float) -> None:
        super().__init__(rows)
        self.wall_us = wall_us
        self.top_level_us = top_level_us

    def table(self, sort_by: str = "self_cpu_time_total", row_limit: int = 100) -> str:
        """torch's layout: the heaviest rows first, then what the ops did not cover."""
        if sort_by not in _SORT_KEYS:
            raise ValueError(f"table: sort_by must be one of {', '.join(_SORT_KEYS)}; got {sort_by!r}")
        if row_limit < 1:
            raise ValueError(f"table: row_limit must be at least 1, got {row_limit}")
        rows = sorted(self, key=lambda r: getattr(r, sort_by), reverse=True)[:row_limit]
        self_total = sum(r.self_cpu_time_total for r in self)
        header = ("Name", "Self CPU %", "Self CPU", "CPU total", "CPU time avg", "Self Mem", "# of Calls")
        body = [
            (
                r.key,
                f"{100 * r.self_cpu_time_total / (self_total or 1.0):.2f}%",
                _time(r.self_cpu_time_total),
                _time(r.cpu_time_total),
                _time(r.cpu_time),
                _bytes(r.self_cpu_memory_usage),
                str(r.count),
            )
            for r in rows
        ]
        width = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
        rule = "  ".join("-" * w for w in width)

        def line(cells: tuple[str, ...]) -> str:
            padded = [c.rjust(w) for c, w in zip(cells, width, strict=True)]
            padded[0] = cells[0].ljust(width[0])
            return "  ".join(padded)

        outside = max(self.wall_us - self.top_level_us, 0.0)
        share = 100 * outside / self.wall_us if self.wall_us else 0.0
        return "\n".join(
            [
                rule,
                line(header),
                rule,
                *map(line, body),
                rule,
                f"Self CPU time total: {_time(self_total)}",
                f"Wall time profiled: {_time(self.wall_us)}, of which outside any op: {_time(outside)} "
                f"({share:.1f}%: Python between ops, and work orchard does not see)",
            ]
        )

    def __str__(self) -> str:
        return self.table()


class profile:
    """Records per-op events while the with-block runs (lower case: torch.profiler.profile's
    name); profilers do not nest."""

    def __init__(self) -> None:
        self._events: list[Event] | None = None
        self._wall_us = 0.0
        self._started = 0.0

    def __enter__(self) -> profile:
        _trace.start()
        self._started = time.perf_counter()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._wall_us = (time.perf_counter() - self._started) * 1e6
        self._events = [
            Event(name, thread, depth, start / 1e3, duration / 1e3, own / 1e3, own_bytes, allocs)
            for name, thread, depth, start, duration, own, own_bytes, allocs in _trace.stop()
        ]

    def events(self) -> list[Event]:
        """Every event, in the order they closed."""
        if self._events is None:
            raise RuntimeError("profile: the results exist once the with-block has ended")
        return self._events

    def key_averages(self) -> EventList:
        """One row per event name, summed over its calls."""
        rows: dict[str, EventAverage] = {}
        for e in self.events():
            row = rows.setdefault(e.name, EventAverage(e.name))
            row.count += 1
            row.self_cpu_time_total += e.self_cpu_time_total
            row.self_cpu_memory_usage += e.self_cpu_memory_usage
            row.cpu_time_total += e.cpu_time_total
        top_level = sum(e.cpu_time_total for e in self.events() if e.depth == 0)
        return EventList(list(rows.values()), self._wall_us, top_level)

    def export_chrome_trace(self, path: str | os.PathLike[str]) -> None:
        """The events as a Chrome trace (JSON): open it in https://ui.perfetto.dev."""
        trace = [
            {
                "name": e.name,
                "ph": "X",
                "ts": e.start_us,
                "dur": e.cpu_time_total,
                "pid": os.getpid(),
                "tid": e.thread,
                "cat": "cpu_op",
                "args": {"self_us": e.self_cpu_time_total, "allocated_bytes": e.self_cpu_memory_usage},
            }
            for e in self.events()
        ]
        with open(path, "w", encoding="utf-8") as out:
            json.dump({"traceEvents": trace, "displayTimeUnit": "ms"}, out)


@contextmanager
def record_function(name: str) -> Iterator[None]:
    """A named event around the with-block (torch.profiler.record_function)."""
    if not isinstance(name, str):
        raise TypeError(f"record_function: name must be a str, got {type(name).__name__}")
    scope = _trace.Scope(name)
    try:
        yield
    finally:
        scope.close()


def recording() -> bool:
    """Whether a profiler is recording now."""
    return _trace.recording()


__all__ = ["Event", "EventAverage", "EventList", "profile", "record_function", "recording"]
