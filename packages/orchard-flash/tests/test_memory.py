"""Memory stays linear in the sequence length: the peak of what orchard allocates during the
forward and backward passes at 16k tokens, measured through orchard_core.profile's alloc/free
log (the kernels take their scratch from orchard-core, so the log sees all of it)."""

from __future__ import annotations

import gc

import orchard_core as oc
import orchard_flash as of
import pytest


@pytest.fixture
def profile_log(monkeypatch, tmp_path):
    """Profiling on, logging to a fresh file, counters zeroed; off again afterwards."""
    gc.collect()  # storages from earlier tests must not free into this log
    path = tmp_path / "orchard_profile.log"
    monkeypatch.setenv("ORCHARD_TENSOR_PROFILE_LOG", str(path))
    oc.profile.reset()
    yield monkeypatch
    monkeypatch.delenv("ORCHARD_TENSOR_PROFILE", raising=False)
    oc.profile.reset()


def peak_bytes(events) -> int:
    """The most bytes alive at once among the storages allocated while profiling."""
    live = peak = 0
    for event in events:
        live += int(event["bytes"]) if event["event"] == "alloc" else -int(event["bytes"])
        peak = max(peak, live)
    return peak


def measure(monkeypatch, rng, length: int, dim: int = 64) -> dict[str, int]:
    q, k, v, dout = (oc.tensor(rng.standard_normal((1, 1, length, dim)), dtype=oc.float32) for _ in range(4))
    oc.profile.clear_log()  # a fresh log: read_log() returns this measurement's events only
    oc.profile.reset()
    monkeypatch.setenv("ORCHARD_TENSOR_PROFILE", "1")
    out, lse = of.forward(q, k, v, causal=True)
    forward_events = oc.profile.read_log()
    grads = of.backward(dout, q, k, v, out, lse, causal=True)
    all_events = oc.profile.read_log()
    del out, lse, grads
    monkeypatch.delenv("ORCHARD_TENSOR_PROFILE")
    assert forward_events and len(all_events) > len(forward_events)
    return {
        "input": 3 * q.nbytes,
        "forward": peak_bytes(forward_events),
        "forward+backward": peak_bytes(all_events),
    }


def test_peak_memory_is_linear_in_length(profile_log, rng):
    # L = 16384, one head of dim 64, causal: a score matrix alone would be L*L*4 = 1 GiB.
    length = 16384
    big = measure(profile_log, rng, length)
    small = measure(profile_log, rng, length // 4)
    scores = length * length * 4
    mib = 2.0**20
    print(f"one {length} x {length} score matrix: {scores / mib:.0f} MiB")
    for n, m in ((length, big), (length // 4, small)):
        print(
            f"L={n}: inputs {m['input'] / mib:.1f} MiB, peak forward {m['forward'] / mib:.1f} MiB, "
            f"forward+backward {m['forward+backward'] / mib:.1f} MiB"
        )
    # What the passes must hold: out and lse, packed K and V (forward); dq, dk, dv, packed K, V
    # and the dK, dV accumulators, and with few (batch, kv head) pairs up to 8 shares of dQ, one
    # per chunk of keys (backward): a few times the inputs, plus per-thread blocks.
    assert big["forward"] >= big["input"] // 3  # the log saw at least the output
    assert big["forward"] < 4 * big["input"]
    assert big["forward+backward"] < 8 * big["input"]
    assert big["forward+backward"] < scores / 10
    # Four times the length, about four times the memory (sixteen if it were quadratic).
    for key in ("forward", "forward+backward"):
        assert big[key] < 4.5 * small[key], key
