"""Allocation profiling: ORCHARD_TENSOR_PROFILE(_LOG) read at run time, one alloc and one
matching free line per storage, counters, live tensors, and thread safety under stress."""

from __future__ import annotations

import gc
import os
import tempfile
import threading
from collections import Counter

import numpy as np
import orchard_core as oc
import pytest
from _core_helpers import DTYPES, OC

profile = oc.profile


def _events(path) -> list[dict[str, str]]:
    """The log at `path`, parsed independently of profile.read_log()."""
    if not os.path.exists(path):
        return []
    events = []
    with open(path, encoding="utf-8") as log:
        for line in log.read().splitlines():
            event, *fields = line.split(" ")
            assert event in ("alloc", "free"), line
            row = dict(field.split("=", 1) for field in fields)
            assert set(row) == {"id", "bytes", "device", "dtype"}, line
            events.append({"event": event, **row})
    return events


def _check_symmetric(events) -> None:
    """Every storage has exactly one alloc and one free line, with the same fields."""
    allocs = {e["id"]: e for e in events if e["event"] == "alloc"}
    frees = {e["id"]: e for e in events if e["event"] == "free"}
    per_id = Counter((e["event"], e["id"]) for e in events)
    assert max(per_id.values(), default=1) == 1, "an id was logged twice"
    assert allocs.keys() == frees.keys()
    for storage_id, alloc in allocs.items():
        free = frees[storage_id]
        for field in ("bytes", "device", "dtype"):
            assert alloc[field] == free[field], (storage_id, field)
    # A free never precedes its alloc.
    seen = set()
    for e in events:
        if e["event"] == "alloc":
            seen.add(e["id"])
        else:
            assert e["id"] in seen


def test_enabled_is_read_at_each_query(monkeypatch):
    assert not profile.enabled()
    for value in ("1", "yes", "true", "on", "anything"):
        monkeypatch.setenv("ORCHARD_TENSOR_PROFILE", value)
        assert profile.enabled(), value
    for value in ("0", "", "false", "off", "no"):
        monkeypatch.setenv("ORCHARD_TENSOR_PROFILE", value)
        assert not profile.enabled(), value
    monkeypatch.delenv("ORCHARD_TENSOR_PROFILE")
    assert not profile.enabled()


def test_log_path(monkeypatch, tmp_path):
    default = os.path.join(tempfile.gettempdir(), f"orchard_tensor_profile_{os.getpid()}.log")
    assert profile.log_path() == default
    monkeypatch.setenv("ORCHARD_TENSOR_PROFILE_LOG", str(tmp_path / "a.log"))
    assert profile.log_path() == str(tmp_path / "a.log")
    monkeypatch.setenv("ORCHARD_TENSOR_PROFILE_LOG", "")
    assert profile.log_path() == default


@pytest.mark.parametrize("dtype", DTYPES)
def test_one_alloc_and_one_free_per_storage(profile_log, device, rng, dtype):
    if not oc.supports(device, "fill", dtype):
        pytest.skip(f"{device} has no {dtype} kernels: staging through the CPU allocates host copies")
    shape = (int(rng.integers(1, 9)), 7)
    t = oc.zeros(*shape, dtype=OC[dtype], device=device)
    events = _events(profile_log)
    assert [e["event"] for e in events] == ["alloc"]
    alloc = events[0]
    assert alloc == {
        "event": "alloc",
        "id": str(t._storage_id()),
        "bytes": str(t.nbytes),
        "device": device,
        "dtype": dtype,
    }
    # Views share the storage and log nothing, however many and however they are made.
    views = [
        t.T,
        t[1:],
        t[:, ::2],
        t.view(-1),
        t.reshape(7, -1),
        t.detach(),
        t.unsqueeze(0),
        t[0],
        t.contiguous(),
    ]
    views.append(t[:1].expand(4, 7))
    assert all(v.is_alias_of(t) for v in views)
    assert len(_events(profile_log)) == 1
    del t
    assert len(_events(profile_log)) == 1  # the views keep the storage alive
    views.pop()
    del views[:5]
    assert len(_events(profile_log)) == 1
    del views  # freed by reference counting, at once
    events = _events(profile_log)
    assert [e["event"] for e in events] == ["alloc", "free"]
    assert {**events[1], "event": "alloc"} == alloc
    assert profile.counts() == {"alloc": 1, "free": 1}
    assert profile.read_log() == events


def test_copies_log_their_own_storage(profile_log, device):
    t = oc.arange(12, dtype=oc.float64).reshape(3, 4)
    copies = [t.clone(), t.to(oc.float16), t.T.contiguous(), t.to(device, oc.int32)]
    events = _events(profile_log)
    ids = [e["id"] for e in events if e["event"] == "alloc"]
    for i in range(len(copies)):
        assert not copies[i].is_alias_of(t)
        assert str(copies[i]._storage_id()) in ids
    last = [e for e in events if e["event"] == "alloc"][-1]
    assert (last["device"], last["dtype"], last["bytes"]) == (device, "int32", "48")
    del t, copies
    _check_symmetric(_events(profile_log))


def test_wrapped_memory_is_logged(profile_log):
    array = np.arange(10, dtype=np.int32)
    t = oc.from_numpy(array)
    assert _events(profile_log) == [
        {"event": "alloc", "id": str(t._storage_id()), "bytes": "40", "device": "cpu", "dtype": "int32"}
    ]
    del t
    assert [e["event"] for e in _events(profile_log)] == ["alloc", "free"]


def test_flipping_profiling_keeps_the_log_symmetric(monkeypatch, tmp_path):
    log = tmp_path / "flip.log"
    monkeypatch.setenv("ORCHARD_TENSOR_PROFILE_LOG", str(log))
    gc.collect()
    profile.reset()
    unlogged = oc.zeros(5)  # created with profiling off
    monkeypatch.setenv("ORCHARD_TENSOR_PROFILE", "1")
    logged = oc.zeros(7)
    del unlogged  # freed with profiling on: its creation was not logged, so neither is this
    assert [e["event"] for e in _events(log)] == ["alloc"]
    monkeypatch.setenv("ORCHARD_TENSOR_PROFILE", "0")
    quiet = oc.zeros(3)
    del logged  # freed with profiling off: its creation was logged, so this is too
    events = _events(log)
    assert [e["event"] for e in events] == ["alloc", "free"]
    assert events[0]["bytes"] == events[1]["bytes"] == "28"
    assert profile.counts() == {"alloc": 1, "free": 1}
    del quiet


def test_log_path_is_read_at_each_event(monkeypatch, tmp_path):
    first, second = tmp_path / "first.log", tmp_path / "second.log"
    monkeypatch.setenv("ORCHARD_TENSOR_PROFILE", "1")
    monkeypatch.setenv("ORCHARD_TENSOR_PROFILE_LOG", str(first))
    gc.collect()
    profile.reset()
    a = oc.zeros(2)
    monkeypatch.setenv("ORCHARD_TENSOR_PROFILE_LOG", str(second))
    assert profile.log_path() == str(second)
    b = oc.zeros(3, dtype=oc.int64)
    assert [(e["event"], e["bytes"]) for e in _events(first)] == [("alloc", "8")]
    assert [(e["event"], e["bytes"]) for e in _events(second)] == [("alloc", "24")]
    del a, b
    # Frees go wherever the log points when they happen.
    assert [e["event"] for e in _events(first)] == ["alloc"]
    assert [e["event"] for e in _events(second)] == ["alloc", "free", "free"]
    profile.reset()


def test_reset_and_clear_log(profile_log):
    t = oc.zeros(4)
    del t
    assert profile.counts() == {"alloc": 1, "free": 1}
    assert profile_log.exists()
    profile.reset()
    assert profile.counts() == {"alloc": 0, "free": 0}
    assert profile_log.exists()  # reset closes the log but keeps it
    profile.clear_log()
    assert not profile_log.exists()
    assert profile.read_log() == []
    u = oc.ones(2, 3)  # the next event reopens (recreates) the log at log_path()
    assert profile_log.exists()
    assert [e["event"] for e in _events(profile_log)] == ["alloc"]
    assert profile.counts() == {"alloc": 1, "free": 0}
    del u


def test_live_count_counts_storages_not_views(device):
    gc.collect()
    start = profile.live_count()
    tensors = [oc.zeros(3, 5, device=device), oc.ones(2, device=device), oc.arange(4, device=device)]
    assert profile.live_count() == start + 3
    views = [t[1:] for t in tensors] + [tensors[0].T, tensors[0].view(15)]
    assert profile.live_count() == start + 3
    del tensors
    assert profile.live_count() == start + 3
    del views
    assert profile.live_count() == start


def test_dump_live_tensors(profile_log, device):
    before = oc.zeros(3)  # created while profiling is on, before the checks
    t = oc.zeros(3, 5, dtype=oc.float16, device=device)
    view = t[1:, ::2]
    rows = [r for r in profile.dump_live_tensors() if r["storage_id"] == t._storage_id()]
    assert len(rows) == 2
    for row in rows:
        assert set(row) == {"id", "storage_id", "shape", "dtype", "device", "bytes"}
        assert (row["dtype"], row["device"], row["bytes"]) == ("float16", device, 30)
    assert sorted(r["shape"] for r in rows) == [(2, 3), (3, 5)]
    assert len({r["id"] for r in rows}) == 2
    del view
    rows = [r for r in profile.dump_live_tensors() if r["storage_id"] == t._storage_id()]
    assert [r["shape"] for r in rows] == [(3, 5)]
    storage_id = t._storage_id()
    del t
    assert not [r for r in profile.dump_live_tensors() if r["storage_id"] == storage_id]
    assert any(r["storage_id"] == before._storage_id() for r in profile.dump_live_tensors())


def test_tensors_made_without_profiling_are_not_dumped(monkeypatch):
    t = oc.zeros(2)
    monkeypatch.setenv("ORCHARD_TENSOR_PROFILE", "1")
    assert all(r["storage_id"] != t._storage_id() for r in profile.dump_live_tensors())
    view = t[1:]  # a view made while profiling is on is listed
    assert any(r["storage_id"] == t._storage_id() for r in profile.dump_live_tensors())
    del view


def _run_in_threads(work, count: int) -> None:
    """Runs work(k) on `count` threads at once and re-raises the first error in this thread."""
    errors = []

    def guarded(k):
        try:
            work(k)
        except Exception as error:  # reported from the main thread below
            errors.append(error)

    threads = [threading.Thread(target=guarded, args=(k,)) for k in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def test_python_threads_stress(profile_log, device):
    """10,000 tensors and 30,000 views made and dropped from 4 Python threads."""
    start = profile.live_count()
    threads_n, iterations = 4, 2500

    def work(seed):
        for i in range(iterations):
            t = oc.empty((i + seed) % 7 + 1, 3, device=device)
            views = (t.T, t[1:], t.reshape(-1))
            del t
            assert all(v.numel() >= 0 for v in views)

    _run_in_threads(work, threads_n)
    assert profile.counts() == {"alloc": threads_n * iterations, "free": threads_n * iterations}
    assert profile.live_count() == start
    events = _events(profile_log)
    assert len(events) == 2 * threads_n * iterations
    _check_symmetric(events)
    assert {e["device"] for e in events} == {device}


def test_operators_from_threads_free_what_they_allocate(profile_log, device):
    """Kernels run from 4 Python threads at once (on Metal, each thread encodes on its own):
    results are right, and every storage made, on the device and on the host, is freed once."""
    start = profile.live_count()
    threads_n, iterations = 4, 200

    def work(seed):
        for i in range(iterations):
            a = oc.ones(i % 5 + 1, 3, device=device)
            b = (a * float(seed) + 1.0).neg().to(oc.bfloat16)
            assert b.to("cpu").to(oc.float32).tolist() == [[-(seed + 1.0)] * 3] * (i % 5 + 1)

    _run_in_threads(work, threads_n)
    counts = profile.counts()
    assert counts["alloc"] == counts["free"] >= threads_n * iterations * 4
    assert profile.live_count() == start
    events = _events(profile_log)
    _check_symmetric(events)
    assert {e["device"] for e in events} <= {device, "cpu"}


def test_wrapped_numpy_memory_across_threads(profile_log):
    """Storages over numpy arrays, made and dropped from several threads, release their arrays."""
    threads_n, iterations = 4, 500

    def work(seed):
        for i in range(iterations):
            array = np.full((i % 5 + 1, 3), seed, dtype=np.int32)
            t = oc.from_numpy(array)[:, 1:]
            back = t.numpy()  # an array viewing a tensor viewing an array
            del t
            assert (back == seed).all()

    _run_in_threads(work, threads_n)
    assert profile.counts() == {"alloc": threads_n * iterations, "free": threads_n * iterations}
    _check_symmetric(_events(profile_log))


def test_unwritable_log_does_not_break_tensors(monkeypatch, tmp_path):
    # Profiling must never break the program it observes: events that cannot be written are dropped.
    monkeypatch.setenv("ORCHARD_TENSOR_PROFILE_LOG", str(tmp_path / "missing" / "dir" / "profile.log"))
    monkeypatch.setenv("ORCHARD_TENSOR_PROFILE", "1")
    gc.collect()
    profile.reset()
    t = oc.arange(5)
    t[1:] = 7
    assert t.tolist() == [0, 7, 7, 7, 7]
    del t
    assert profile.counts() == {"alloc": 1, "free": 1}
    assert not (tmp_path / "missing").exists()
    profile.reset()


def test_native_threads_stress(profile_log):
    """_stress_threads: 4 native threads (GIL released) making and dropping 40,000 storages and
    160,000 views, all of them also viewing one shared storage."""
    start = profile.live_count()
    oc._core._stress_threads(threads=4, iterations=10000)
    expected = 4 * 10000 + 1  # one storage per iteration, plus the shared one
    assert profile.counts() == {"alloc": expected, "free": expected}
    assert profile.live_count() == start
    events = _events(profile_log)
    assert len(events) == 2 * expected
    _check_symmetric(events)
    logged = {int(e["id"]) for e in events}
    assert not [r for r in profile.dump_live_tensors() if r["storage_id"] in logged]


def test_native_threads_stress_without_profiling():
    start, counts = profile.live_count(), profile.counts()
    oc._core._stress_threads(threads=3, iterations=2000)
    assert profile.live_count() == start
    assert profile.counts() == counts  # profiling is off: nothing counted
    with pytest.raises(ValueError, match="threads >= 1"):
        oc._core._stress_threads(threads=0, iterations=1)
