"""The fused forward pass against naive float64 attention, and its input checks."""

from __future__ import annotations

import os

import numpy as np
import orchard_core as oc
import orchard_flash as of
import pytest
import torch


@pytest.fixture
def rng(request) -> np.random.Generator:
    seed = int(os.environ.get("ORCHARD_TEST_SEED", "0"), 0) or int.from_bytes(os.urandom(8), "little")
    print(f"random seed: ORCHARD_TEST_SEED={seed}")
    return np.random.default_rng(seed)


def reference(q, k, v, *, causal: bool, offset: int, scale: float):
    """Softmax attention in float64 with the score matrix formed; rows that see no key are 0."""
    group = q.shape[1] // k.shape[1]
    k, v = np.repeat(k, group, axis=1), np.repeat(v, group, axis=1)
    scores = np.einsum("bhid,bhjd->bhij", q, k) * scale
    if causal:
        rows = np.arange(q.shape[2])[:, None]
        cols = np.arange(k.shape[2])[None, :]
        scores = np.where(cols <= rows + offset, scores, -np.inf)
    top = scores.max(-1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    weights = np.exp(scores - top)
    total = weights.sum(-1, keepdims=True)
    seen = total > 0
    out = np.where(seen, (weights / np.where(seen, total, 1.0)) @ v, 0.0)
    lse = np.where(seen[..., 0], np.log(np.where(seen, total, 1.0))[..., 0] + top[..., 0], -np.inf)
    return out, lse


SHAPES = [  # batch, heads, heads_kv, len_q, len_k, dim
    (1, 1, 1, 1, 1, 8),
    (2, 4, 2, 113, 203, 40),
    (1, 2, 1, 128, 128, 64),
    (2, 4, 4, 203, 113, 128),
    (1, 3, 1, 67, 67, 256),
]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("alignment", ["bottom_right", "top_left"])
def test_float32_forward_matches_float64_attention(rng, shape, causal, alignment):
    batch, heads, heads_kv, len_q, len_k, dim = shape
    q = rng.standard_normal((batch, heads, len_q, dim))
    k = rng.standard_normal((batch, heads_kv, len_k, dim))
    v = rng.standard_normal((batch, heads_kv, len_k, dim))
    scale = float(rng.uniform(0.05, 0.5))
    out, lse = of.forward(
        *(oc.tensor(x, dtype=oc.float32) for x in (q, k, v)),
        causal=causal,
        scale=scale,
        causal_alignment=alignment,
    )
    offset = len_k - len_q if alignment == "bottom_right" else 0
    want_out, want_lse = reference(q, k, v, causal=causal, offset=offset, scale=scale)
    assert out.shape == (batch, heads, len_q, dim) and out.dtype == oc.float32
    assert np.abs(np.asarray(out) - want_out).max() < 1e-4
    got_lse = np.asarray(lse)
    finite = np.isfinite(want_lse)
    assert np.abs(got_lse[finite] - want_lse[finite]).max(initial=0.0) < 1e-4
    assert np.all(got_lse[~finite] == -np.inf)


def test_strided_inputs_and_dlpack_producers(rng):
    # (batch, length, heads, dim) transposed to (batch, heads, length, dim): no copy needed.
    q = rng.standard_normal((2, 77, 4, 32)).astype(np.float32)
    k = rng.standard_normal((2, 90, 2, 32)).astype(np.float32)
    v = rng.standard_normal((2, 90, 2, 32)).astype(np.float32)
    views = [torch.from_numpy(x).transpose(1, 2) for x in (q, k, v)]
    out, _ = of.forward(*views, causal=True)
    want, _ = reference(
        *(x.transpose(0, 2, 1, 3).astype(np.float64) for x in (q, k, v)),
        causal=True,
        offset=13,
        scale=32**-0.5,
    )
    assert np.abs(np.asarray(out) - want).max() < 1e-4


def test_float64_is_exact_to_rounding(rng):
    q, k, v = (rng.standard_normal((1, 2, 70, 24)) for _ in range(3))
    out, lse = of.forward(*(oc.tensor(x) for x in (q, k, v)), causal=True)
    want_out, want_lse = reference(q, k, v, causal=True, offset=0, scale=24**-0.5)
    assert out.dtype == oc.float64
    np.testing.assert_allclose(np.asarray(out), want_out, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(np.asarray(lse), want_lse, rtol=1e-12)


def test_large_logits_do_not_overflow(rng):
    q, k, v = (oc.tensor(rng.standard_normal((1, 1, 50, 16)) * 300, dtype=oc.float32) for _ in range(3))
    out, lse = of.forward(q, k, v)
    assert np.isfinite(np.asarray(out)).all() and np.isfinite(np.asarray(lse)).all()


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        (lambda q, k, v: (q[..., :12], k[..., :12], v[..., :12]), ValueError, "head dim 12"),
        (lambda q, k, v: (q, k.to(oc.float64), v), TypeError, "one dtype"),
        (lambda q, k, v: (q.to(oc.int64), k.to(oc.int64), v.to(oc.int64)), TypeError, "int64"),
        (lambda q, k, v: (q[0], k, v), ValueError, "4-d"),
        (lambda q, k, v: (q, k[:, :, :5], v), ValueError, "length"),
        (lambda q, k, v: (q[:, :3], k, v), ValueError, "not divisible"),
    ],
)
def test_bad_inputs_raise_naming_the_value(rng, change, error, message):
    q, k, v = (oc.tensor(rng.standard_normal((2, 4, 9, 16)), dtype=oc.float32) for _ in range(3))
    k, v = k[:, :2], v[:, :2]
    with pytest.raises(error, match=message):
        of.forward(*change(q, k, v))


def test_bad_options_raise(rng):
    q = oc.tensor(rng.standard_normal((1, 1, 4, 8)), dtype=oc.float32)
    with pytest.raises(ValueError, match="causal_alignment"):
        of.forward(q, q, q, causal=True, causal_alignment="middle")
    with pytest.raises(ValueError, match="scale"):
        of.forward(q, q, q, scale=-1.0)
    with pytest.raises(TypeError, match="DLPack"):
        of.forward([1.0], q, q)
