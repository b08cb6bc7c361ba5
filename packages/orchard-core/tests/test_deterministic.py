"""use_deterministic_algorithms: torch's switch, and what it changes (scaled_dot_product_attention's
backward on Hopper GPUs, through orchard-flash's ``deterministic`` flag)."""

from __future__ import annotations

import orchard_core as oc
import pytest
from orchard_core.nn import functional as F


@pytest.fixture
def restore_flag():
    before = oc.are_deterministic_algorithms_enabled()
    yield
    oc.use_deterministic_algorithms(before)


def test_off_by_default_as_in_torch():
    assert oc.are_deterministic_algorithms_enabled() is False


def test_the_switch_refuses_a_non_bool(restore_flag):
    with pytest.raises(TypeError, match="mode must be a bool, got int"):
        oc.use_deterministic_algorithms(1)
    oc.use_deterministic_algorithms(True)
    assert oc.are_deterministic_algorithms_enabled() is True


@pytest.mark.parametrize("mode", [False, True])
def test_attention_hands_the_switch_to_orchard_flash(monkeypatch, restore_flag, mode):
    calls = []

    def flash_attention(q, k, v, **options):
        calls.append(options)
        return q

    monkeypatch.setattr(F, "_flash_attention", lambda: flash_attention)
    oc.use_deterministic_algorithms(mode)
    q = oc.zeros(1, 2, 3, 4)
    F.scaled_dot_product_attention(q, q, q, is_causal=True)
    assert calls[0]["deterministic"] is mode
