"""Allocation profiling.

Set ``ORCHARD_TENSOR_PROFILE=1`` to log one ``alloc`` line per storage created
and one matching ``free`` line when its last view is gone, to
:func:`log_path` (``ORCHARD_TENSOR_PROFILE_LOG`` chooses it). The variable is
read at every query, so it can be flipped while a program runs (an operator running without
the GIL sees its value from when the operator started); a storage logs
its ``free`` exactly when it logged its ``alloc``, so the log stays symmetric.
"""

from __future__ import annotations

from typing import Any

from . import _core

_native = _core.profile


def enabled() -> bool:
    """Whether ORCHARD_TENSOR_PROFILE is set to a true value right now."""
    return _native.enabled()


def log_path() -> str:
    """Where events go: ORCHARD_TENSOR_PROFILE_LOG, else a per-process file in the temp dir."""
    return _native.log_path()


def reset() -> None:
    """Zero the event counters and close the log, so the next event reopens it at log_path()."""
    _native.reset()


def clear_log() -> None:
    """Close and delete the log file."""
    _native.clear_log()


def counts() -> dict[str, int]:
    """Logged events since the last reset(): ``{"alloc": n, "free": m}``."""
    return _native.counts()


def live_count() -> int:
    """Storages alive now, whether or not profiling was on when they were created."""
    return _native.live_count()


def dump_live_tensors() -> list[dict[str, Any]]:
    """Tensors alive now among those created while profiling was on.

    Each row has ``id``, ``storage_id``, ``shape``, ``dtype``, ``device`` and
    ``bytes`` (the size of the storage the tensor views).
    """
    return _native.live_tensors()


def read_log() -> list[dict[str, str]]:
    """Parse the log: one dict per line with ``event``, ``id``, ``bytes``, ``device``, ``dtype``."""
    try:
        with open(log_path(), encoding="utf-8") as log:
            lines = log.read().splitlines()
    except FileNotFoundError:
        return []
    events = []
    for line in lines:
        event, *fields = line.split()
        events.append({"event": event, **dict(field.split("=", 1) for field in fields)})
    return events


__all__ = [
    "clear_log",
    "counts",
    "dump_live_tensors",
    "enabled",
    "live_count",
    "log_path",
    "read_log",
    "reset",
]
