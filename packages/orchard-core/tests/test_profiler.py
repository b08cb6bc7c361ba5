"""orchard_core.profiler: per-op events with torch.profiler's names, checked against what the
code under it did (ops called, bytes allocated, nesting), not against timings."""

from __future__ import annotations

import json
import threading
from collections import Counter

import numpy as np
import orchard_core as oc
import pytest
from orchard_core import nn, optim
from orchard_core.profiler import profile, record_function


def _names(prof: profile) -> Counter[str]:
    return Counter(e.name for e in prof.events())


def _children(events, parent):
    """The events opened directly inside `parent` on its thread."""
    end = parent.start_us + parent.cpu_time_total
    return [
        e
        for e in events
        if e.thread == parent.thread
        and e.depth == parent.depth + 1
        and parent.start_us <= e.start_us
        and e.start_us + e.cpu_time_total <= end + 1e-3  # microseconds from integer nanoseconds
    ]


def test_each_op_call_is_one_event_named_as_in_torch(device, rng):
    a = oc.tensor(rng.standard_normal((37, 5)).astype(np.float32)).to(device)
    b = oc.tensor(rng.standard_normal((37, 5)).astype(np.float32)).to(device)
    with profile() as prof:
        for _ in range(3):
            c = a + b
        oc.matmul(a, b.T)
        c.sum()
        oc.softmax(a, dim=-1)
        oc.exp(a)
        c.add_(1.0)
    names = _names(prof)
    assert names["add"] == 3
    assert names["matmul"] == 1
    assert names["sum"] == 1
    assert names["softmax"] == 1
    assert names["exp"] == 1
    assert names["add_"] == 1


def test_nothing_is_recorded_outside_the_block(rng):
    a = oc.tensor(rng.standard_normal(11).astype(np.float32))
    a + a  # before: not recorded
    with profile() as prof:
        a * a
    a - a  # after: not recorded
    assert _names(prof) == Counter({"mul": 1})
    assert not oc.profiler.recording()


def test_self_bytes_are_what_the_op_allocated(device, rng):
    shape = (29, 13)
    a = oc.tensor(rng.standard_normal(shape).astype(np.float32)).to(device)
    with profile() as prof:
        a * a
        a.to(oc.float64) if device == "cpu" else a.to(oc.bfloat16)
    mul = next(e for e in prof.events() if e.name == "mul")
    assert mul.self_cpu_memory_usage == 29 * 13 * 4
    assert mul.self_allocations == 1
    cast = next(e for e in prof.events() if e.name == "to")
    assert cast.self_cpu_memory_usage == 29 * 13 * (8 if device == "cpu" else 2)


def test_self_time_is_total_less_direct_children(rng):
    oc.manual_seed(int(rng.integers(1 << 31)))
    model = nn.Sequential(nn.Linear(19, 23), nn.GELU(), nn.LayerNorm(23), nn.Linear(23, 7))
    x = oc.randn(5, 19)
    with profile() as prof:
        with record_function("forward and backward"):
            (model(x) * 2.0).sum().backward()
    events = prof.events()
    for e in events:
        children = _children(events, e)
        assert 0 <= e.self_cpu_time_total <= e.cpu_time_total
        direct = sum(c.cpu_time_total for c in children)
        assert e.self_cpu_time_total == pytest.approx(e.cpu_time_total - direct, abs=2e-3)
    outer = next(e for e in events if e.name == "forward and backward")
    assert outer.depth == 0
    assert all(e.depth > 0 for e in events if e is not outer)


def test_backward_records_each_node_with_its_ops_inside(rng):
    oc.manual_seed(int(rng.integers(1 << 31)))
    layer = nn.Linear(17, 9)
    x = oc.randn(6, 17, requires_grad=True)
    loss = layer(x).sum()
    with profile() as prof:
        loss.backward()
    events = prof.events()
    names = _names(prof)
    assert names["backward"] == 1
    assert names["LinearBackward"] == 1
    assert names["SumBackward"] == 1
    # dx = dy @ W, dW = dy^T @ x, db = sum(dy): the node's ops are its children.
    node = next(e for e in events if e.name == "LinearBackward")
    inside = Counter(c.name for c in _children(events, node))
    assert inside["matmul"] >= 2
    assert names["AccumulateGrad"] == 3  # weight, bias, x


def test_optimizer_step_and_record_function_are_events(rng):
    oc.manual_seed(int(rng.integers(1 << 31)))
    layer = nn.Linear(5, 3)
    opt = optim.AdamW(layer.parameters(), lr=0.1)
    layer(oc.randn(4, 5)).sum().backward()

    @record_function("decorated")
    def work() -> None:
        opt.step()

    with profile() as prof:
        work()
    events = prof.events()
    step = next(e for e in events if e.name == "Optimizer.step#AdamW.step")
    outer = next(e for e in events if e.name == "decorated")
    assert step.depth == outer.depth + 1
    # AdamW's fused updates ran inside the step, one per parameter.
    inside = [e for e in events if e.depth > step.depth and e.start_us >= step.start_us]
    assert Counter(e.name for e in inside)["adam_step_"] == 2


def test_an_op_that_raises_leaves_no_open_scope(rng):
    a = oc.tensor(rng.standard_normal((3, 4)).astype(np.float32))
    with profile() as prof:
        with pytest.raises(ValueError, match="shape"):
            oc.matmul(a, a)
        a + a
    add = next(e for e in prof.events() if e.name == "add")
    assert add.depth == 0


def test_profilers_do_not_nest_and_results_wait_for_the_end():
    with profile() as outer:
        with pytest.raises(RuntimeError, match="already recording"):
            with profile():
                pass
        with pytest.raises(RuntimeError, match="with-block has ended"):
            outer.events()
    assert outer.events() == []
    with pytest.raises(TypeError, match="name must be a str, got int"):
        with record_function(3):  # type: ignore[arg-type]
            pass


def test_threads_are_told_apart(rng):
    a = oc.tensor(rng.standard_normal(101).astype(np.float32))

    def work() -> None:
        for _ in range(5):
            oc.exp(a)

    with profile() as prof:
        worker = threading.Thread(target=work)
        worker.start()
        worker.join()
        oc.log(oc.abs(a))
    threads = {e.name: e.thread for e in prof.events()}
    assert _names(prof)["exp"] == 5
    assert threads["exp"] != threads["log"]


def test_key_averages_table_and_chrome_trace(tmp_path, rng):
    a = oc.tensor(rng.standard_normal((64, 33)).astype(np.float32))
    with profile() as prof:
        for _ in range(4):
            oc.tanh(a @ a.T)
    averages = {row.key: row for row in prof.key_averages()}
    assert averages["matmul"].count == 4
    assert averages["tanh"].count == 4
    assert averages["matmul"].self_cpu_memory_usage == 4 * 64 * 64 * 4
    assert averages["tanh"].cpu_time == pytest.approx(averages["tanh"].cpu_time_total / 4)
    table = prof.key_averages().table(sort_by="count", row_limit=1)
    assert "Self CPU %" in table and "# of Calls" in table
    assert "matmul" in table or "tanh" in table
    assert "Wall time profiled" in table
    with pytest.raises(ValueError, match=r"sort_by must be one of .*; got 'speed'"):
        prof.key_averages().table(sort_by="speed")
    with pytest.raises(ValueError, match="row_limit must be at least 1, got 0"):
        prof.key_averages().table(row_limit=0)

    path = tmp_path / "trace.json"
    prof.export_chrome_trace(path)
    trace = json.loads(path.read_text())["traceEvents"]
    assert len(trace) == len(prof.events())
    assert {t["name"] for t in trace} == {"matmul", "tanh"}
    assert all(t["ph"] == "X" and t["dur"] >= 0 for t in trace)
