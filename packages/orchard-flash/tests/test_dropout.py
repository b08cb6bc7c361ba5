"""Dropout on the attention probabilities: the documented Philox4x32-10 mask (checked against
an independent numpy Philox), forward and backward against float64 attention with the same
mask, and reproducibility: by seed, across thread counts, and through manual_seed; on every
instruction set, on CUDA and on Metal (whose masks are the CPU's, bitwise)."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import orchard_core as oc
import orchard_flash as of
import pytest
from _flash_devices import backward as run_backward
from _flash_devices import dropout_mask, exact_numpy, on
from _flash_devices import forward as run_forward
from _flash_reference import (
    as_numpy,
    assert_lse_close,
    max_error,
    philox4x32_10,
    random_qkv,
    reference,
    reference_keep_mask,
)
from _thread_probe import compute

# Every gradient tolerance as in test_backward (see GRAD_RTOL there): float32 rounding.
GRAD_RTOL = 3e-5


def rounded(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float32).astype(np.float64)


def random_seed(rng) -> int:
    return int(rng.integers(0, 2**64, dtype=np.uint64))


# ---- the mask --------------------------------------------------------------------------------


def test_numpy_philox_known_answers():
    # Random123's known-answer vectors for Philox4x32-10, so the reference below is Philox.
    cases = [
        ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
        ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
        (
            (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
            (0xA4093822, 0x299F31D0),
            (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
        ),
    ]
    for counter, key, want in cases:
        assert [int(w) for w in philox4x32_10(counter, key)] == list(want)


@pytest.mark.parametrize(
    "shape", [(2, 3, 7, 13), (1, 2, 5, 300), (3, 1, 1, 1)], ids=lambda s: "x".join(map(str, s))
)
def test_mask_is_philox(rng, device, shape):
    for seed in (random_seed(rng), 0, 2**32, 2**64 - 1):
        p = float(rng.uniform(0.05, 0.95))
        mask = dropout_mask(device, *shape, dropout_p=p, seed=seed)
        assert mask.shape == shape and mask.dtype == oc.bool
        np.testing.assert_array_equal(exact_numpy(mask), reference_keep_mask(*shape, dropout_p=p, seed=seed))


@pytest.mark.parametrize(
    "shape",
    [(2, 3, 7, 13), (1, 2, 5, 300), (3, 1, 1, 1), (1, 1, 129, 1001), (4, 16, 33, 65)],
    ids=lambda s: "x".join(map(str, s)),
)
def test_dropout_mask_matches_the_cpu_mask(rng, accelerator, shape):
    for seed in (random_seed(rng), 0, 2**32, 2**64 - 1):
        p = float(rng.uniform(0.05, 0.95))
        mask = of.dropout_mask(*shape, dropout_p=p, seed=seed, device=accelerator)
        cpu = of.dropout_mask(*shape, dropout_p=p, seed=seed, device="cpu")
        assert mask.shape == shape and mask.dtype == oc.bool and str(mask.device) == accelerator
        np.testing.assert_array_equal(exact_numpy(mask), np.asarray(cpu))


def test_mask_threshold_is_the_applied_p_times_2_to_the_16(rng, any_device):
    # Element (0, 0, 0, 0) is the low piece of word 0. Pieces equal to the threshold are kept,
    # pieces just below dropped; p is rounded to the nearest multiple of 2^-16, ties up.
    def first_piece(seed: int) -> int:
        return int(philox4x32_10((0, 0, 0, 0), (seed & 0xFFFFFFFF, seed >> 32))[0]) & 0xFFFF

    seed = random_seed(rng)
    while first_piece(seed) in (0, 65535):  # a threshold on either side must exist
        seed = random_seed(rng)
    piece = first_piece(seed)
    for threshold, kept in (
        (piece, True),
        (piece + 1, False),
        (piece - 0.5, True),
        (piece + 0.4999, True),
        (piece + 0.5, False),
    ):
        mask = dropout_mask(any_device, 1, 1, 1, 1, dropout_p=threshold / 2**16, seed=seed)
        assert bool(exact_numpy(mask)[0, 0, 0, 0]) == kept, threshold


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_kept_fraction(rng, p):
    mask = np.asarray(of.dropout_mask(2, 3, 257, 515, dropout_p=p, seed=random_seed(rng)))
    # 800k draws: the fraction's standard deviation is under 6e-4; 0.01 is 17 of them.
    assert abs(mask.mean() - (1 - p)) < 0.01
    for piece in range(8):  # each 16-bit piece of the four Philox words, and each head and batch
        assert abs(mask[..., piece::8].mean() - (1 - p)) < 0.01
    assert np.all(np.abs(mask.mean(axis=(2, 3)) - (1 - p)) < 0.01)


def test_rates_below_2_to_the_minus_17_are_no_dropout(rng, any_device):
    # The rate rounds to 0: no dropout at all, bitwise the output without it.
    q, k, v = (on(x, any_device) for x in random_qkv(rng, 1, 2, 1, 20, 70, 16))
    seed = random_seed(rng)
    plain = as_numpy(of.forward(q, k, v)[0])
    assert as_numpy(of.forward(q, k, v, dropout_p=2.0**-18, seed=seed)[0]).tobytes() == plain.tobytes()
    assert exact_numpy(dropout_mask(any_device, 1, 2, 20, 70, dropout_p=2.0**-18, seed=seed)).all()


def test_kept_probabilities_are_scaled_by_the_applied_rate(rng, any_device):
    # At p = 1 - 1.3 / 2^16 the applied rate is 1 - 2^-16: a scale of 2^16 where 1 / (1 - p)
    # would be 30% smaller (still unbiased, and finite). About 16 of these 2^20 elements are kept.
    batch, heads, len_q, len_k, dim = 1, 4, 64, 4096, 8
    p = 1 - 1.3 / 2**16
    q, k, v = map(rounded, random_qkv(rng, batch, heads, heads, len_q, len_k, dim))
    dout = rounded(rng.standard_normal(q.shape))
    dlse = np.zeros(q.shape[:3])
    seed = random_seed(rng)
    keep = reference_keep_mask(batch, heads, len_q, len_k, dropout_p=p, seed=seed)
    assert 0 < keep.sum() < 100
    inputs = [on(x, any_device) for x in (q, k, v)]
    out, lse = run_forward(*inputs, dropout_p=p, seed=seed)
    dout_on, dlse_on = on(dout, any_device), on(dlse, any_device)
    grads = run_backward(dout_on, *inputs, out, lse, dlse=dlse_on, dropout_p=p, seed=seed)
    want_out, _, *want_grads = reference(q, k, v, dout, dlse, keep=keep, dropout_p=p)
    assert max_error(out, want_out) < 1e-4 * np.abs(want_out).max()
    scale = max(np.abs(w).max() for w in want_grads)
    for g, w in zip(grads, want_grads, strict=True):
        assert max_error(g, w) <= GRAD_RTOL * scale


def test_no_dropout_keeps_everything(rng, any_device):
    assert exact_numpy(dropout_mask(any_device, 2, 2, 9, 33, dropout_p=0.0, seed=random_seed(rng))).all()


def test_mask_arguments_are_checked(any_device):
    for p in (-0.1, 1.0, float("nan")):
        with pytest.raises(ValueError, match="dropout_p must be in"):
            dropout_mask(any_device, 1, 1, 2, 2, dropout_p=p, seed=0)
    with pytest.raises(ValueError, match=r"heads must be an int in \[0, 2\*\*63\), got -1"):
        dropout_mask(any_device, 1, -1, 2, 2, dropout_p=0.1, seed=0)
    assert dropout_mask(any_device, 0, 2, 3, 0, dropout_p=0.1, seed=0).shape == (0, 2, 3, 0)


# ---- forward and backward against the reference with the same mask --------------------------


CASES = [  # batch, heads, heads_kv, len_q, len_k, dim, causal, alignment
    (2, 4, 2, 113, 203, 40, False, "bottom_right"),
    (1, 2, 1, 203, 113, 64, True, "bottom_right"),  # rows that see nothing
    (2, 3, 3, 70, 150, 32, True, "top_left"),
]


@pytest.mark.parametrize(
    "case", CASES, ids=lambda c: "x".join(map(str, c[:6])) + "-" + ("causal" if c[6] else "full")
)
@pytest.mark.parametrize("p", [0.17, 0.5])
def test_dropout_matches_reference(rng, device, case, p):
    *shape, causal, alignment = case
    q, k, v = map(rounded, random_qkv(rng, *shape))
    dout = rounded(rng.standard_normal(q.shape))
    dlse = rounded(rng.standard_normal(q.shape[:3]))
    seed = random_seed(rng)
    batch, heads, _, len_q, len_k, _ = shape
    keep = reference_keep_mask(batch, heads, len_q, len_k, dropout_p=p, seed=seed)
    kw = dict(causal=causal, causal_alignment=alignment, dropout_p=p, seed=seed)
    inputs = [on(x, device) for x in (q, k, v)]
    out, lse = run_forward(*inputs, **kw)
    grads = run_backward(on(dout, device), *inputs, out, lse, dlse=on(dlse, device), **kw)
    want_out, want_lse, *want_grads = reference(
        q, k, v, dout, dlse, causal=causal, alignment=alignment, keep=keep, dropout_p=p
    )
    assert max_error(out, want_out) < 1e-4
    assert_lse_close(lse, want_lse, atol=1e-4)  # lse is that of the probabilities before dropout
    scale = max(np.abs(w).max() for w in want_grads)
    for g, w in zip(grads, want_grads, strict=True):
        assert max_error(g, w) <= GRAD_RTOL * scale


def test_dropout_changes_the_output(rng, any_device):
    q, k, v = (on(x, any_device) for x in random_qkv(rng, 1, 2, 2, 40, 60, 16))
    plain = as_numpy(of.forward(q, k, v)[0])
    dropped = as_numpy(of.forward(q, k, v, dropout_p=0.3, seed=random_seed(rng))[0])
    assert np.abs(plain - dropped).max() > 0.05
    # p = 0 ignores the seed.
    assert as_numpy(of.forward(q, k, v, seed=123)[0]).tobytes() == plain.tobytes()


# ---- reproducibility -------------------------------------------------------------------------


def _forward_backward(inputs, device="cpu", **options):
    q, k, v, dout = (on(x, device) for x in inputs)
    out, lse = run_forward(q, k, v, **options)
    return [as_numpy(x) for x in (out, lse, *run_backward(dout, q, k, v, out, lse, **options))]


def test_same_seed_is_bitwise_identical_and_other_seeds_differ(rng, device):
    q, k, v = random_qkv(rng, 2, 4, 2, 77, 140, 24)
    inputs = (q, k, v, rng.standard_normal(q.shape))
    seed = random_seed(rng)
    first = _forward_backward(inputs, device, causal=True, dropout_p=0.25, seed=seed)
    again = _forward_backward(inputs, device, causal=True, dropout_p=0.25, seed=seed)
    other = _forward_backward(inputs, device, causal=True, dropout_p=0.25, seed=seed ^ 1)
    for name, a, b, c in zip(("out", "lse", "dq", "dk", "dv"), first, again, other, strict=True):
        assert a.tobytes() == b.tobytes(), name
        if name != "lse":  # lse does not depend on dropout
            assert np.abs(a - c).max() > 1e-3, name
    np.testing.assert_array_equal(first[1], other[1])


def test_results_do_not_depend_on_the_thread_count(rng, tmp_path):
    q, k, v = random_qkv(rng, 2, 4, 2, 150, 260, 40)
    data = {
        "q": q,
        "k": k,
        "v": v,
        "dout": rng.standard_normal(q.shape),
        "dlse": rng.standard_normal(q.shape[:3]),
        "seed": np.uint64(random_seed(rng)),
    }
    np.savez(tmp_path / "inputs.npz", **data)
    here = compute(np.load(tmp_path / "inputs.npz"))
    probe = Path(__file__).resolve().parent / "_thread_probe.py"
    for threads in ("1", "3"):
        env = {**os.environ, "OMP_NUM_THREADS": threads}
        result = tmp_path / f"threads{threads}.npz"
        subprocess.run(
            [sys.executable, str(probe), str(tmp_path / "inputs.npz"), str(result)],
            env=env,
            check=True,
            timeout=120,
        )
        there = np.load(result)
        assert sorted(there.files) == sorted(here)
        for name, value in here.items():
            assert there[name].tobytes() == value.tobytes(), f"{name} differs with OMP_NUM_THREADS={threads}"


def test_seed_none_draws_from_manual_seed(rng, any_device):
    # The seed is drawn on the CPU, from orchard_core's generator, whatever the device.
    q, k, v = (on(x, any_device) for x in random_qkv(rng, 1, 2, 1, 30, 50, 16))
    s = int(rng.integers(0, 2**31))
    oc.manual_seed(s)
    first = as_numpy(of.flash_attention(q, k, v, dropout_p=0.3))
    second = as_numpy(of.flash_attention(q, k, v, dropout_p=0.3))  # the generator moved on
    oc.manual_seed(s)
    again = as_numpy(of.flash_attention(q, k, v, dropout_p=0.3))
    assert first.tobytes() == again.tobytes()
    assert np.abs(first - second).max() > 1e-3
    # Without dropout nothing is drawn: the generator is where manual_seed left it.
    oc.manual_seed(s)
    of.flash_attention(q, k, v)
    after = oc.randint(0, 2**62, (4,)).tolist()
    oc.manual_seed(s)
    assert oc.randint(0, 2**62, (4,)).tolist() == after


def test_explicit_seed_matches_forward(rng, any_device):
    q, k, v = (on(x, any_device) for x in random_qkv(rng, 1, 2, 1, 30, 50, 16))
    seed = random_seed(rng)
    got = of.flash_attention(q, k, v, dropout_p=0.3, seed=seed, causal=True)
    want, _ = of.forward(q, k, v, dropout_p=0.3, seed=seed, causal=True)
    assert as_numpy(got).tobytes() == as_numpy(want).tobytes()


def test_seed_out_of_range_raises(rng, any_device):
    q = on(rng.standard_normal((1, 1, 4, 8)), any_device)
    for seed, error in ((-1, ValueError), (2**64, ValueError), (1.5, TypeError), (True, TypeError)):
        with pytest.raises(error, match=rf"seed must be an int in \[0, 2\*\*64\), got {seed!r}"):
            of.forward(q, q, q, dropout_p=0.1, seed=seed)
        with pytest.raises(error, match="seed must be an int"):
            dropout_mask(any_device, 1, 1, 2, 2, dropout_p=0.1, seed=seed)


def test_concurrent_calls_from_python_threads(rng):
    # The kernels release the GIL: calls running at once in several Python threads, each with
    # its own scratch, give bitwise the results of the same calls made one after another.
    inputs = [random_qkv(rng, 2, 4, 2, 90, 170, 24) for _ in range(4)]
    dout = [rng.standard_normal(q.shape) for q, _, _ in inputs]
    seeds = [random_seed(rng) for _ in inputs]

    def call(i):
        return _forward_backward((*inputs[i], dout[i]), causal=True, dropout_p=0.2, seed=seeds[i])

    alone = [call(i) for i in range(len(inputs))]
    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(call, [i % len(inputs) for i in range(16)]))
    for i, result in enumerate(together):
        for a, b in zip(result, alone[i % len(inputs)], strict=True):
            assert a.tobytes() == b.tobytes()
