"""The parity scoreboard's pieces (packages/orchard-torch-bridge/parity): the op recorder and the
error measurements behind docs/parity.md."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("transformers")
pytest.importorskip("hypothesis")  # measure.py reuses orchard-core's parity case tables

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "parity"))

import gpt2_ops
import measure

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def steps() -> dict[str, gpt2_ops.StepOps]:
    return {
        "stock": gpt2_ops.record_training_step("sdpa", batch=1, length=16),
        "orchard": gpt2_ops.record_training_step(gpt2_ops.orchard_attention(), batch=1, length=16),
    }


def test_recorder_finds_the_core_ops_of_a_training_step(steps) -> None:
    stock, orchard = steps["stock"], steps["orchard"]
    for op in ("aten::embedding", "aten::native_layer_norm", "aten::native_layer_norm_backward"):
        assert stock.count(op) > 0, op
    assert stock.count("aten::addmm") + stock.count("aten::mm") > 0
    assert stock.count("aten::_safe_softmax") + stock.count("aten::_softmax") > 0  # attention's math path
    assert stock.phases("aten::embedding_dense_backward") == ["backward"]
    assert "optimizer" in stock.phases("aten::addcdiv_")  # AdamW
    assert orchard.count("orchard::flash_attention") == 2  # one per layer
    assert orchard.phases("orchard::flash_attention_backward") == ["backward"]
    assert orchard.count("aten::_safe_softmax") == 0  # no attention softmax outside the kernel


def test_every_op_of_the_step_is_mapped(steps) -> None:
    used = set(steps["stock"].ops()) | set(steps["orchard"].ops())
    unmapped = sorted(op for op in used if op not in measure.OP_TABLE and not op.startswith("profiler::"))
    assert not unmapped, f"add to measure.OP_TABLE: {unmapped}"


def test_native_ops_match_torch() -> None:
    results = measure.measurements()
    checked = set()
    for op, row in measure.OP_TABLE.items():
        if row.status != "native" or row.measurement is None or row.measurement in checked:
            continue
        checked.add(row.measurement)
        result = results[row.measurement]()
        for what, error in (("forward", result.forward), ("backward", result.backward)):
            assert error is None or error < TOLERANCE, f"{op} ({row.measurement}) {what}: max error {error}"
    assert {"matmul_2d", "softmax", "embedding", "flash"} <= checked
