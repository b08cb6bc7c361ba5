"""dtype conversions against torch: float32 -> bfloat16/float16 rounding (ties, subnormals,
inf, nan, overflow), exhaustive 16-bit widening, and every dtype pair through to(dtype)."""

from __future__ import annotations

import numpy as np
import orchard_core as oc
import pytest
import torch
from _core_helpers import DTYPES, OC, TORCH, assert_matches_torch, random_array, random_shape

HALF_TYPES = ["bfloat16", "float16"]


def _tricky_float32(rng: np.random.Generator) -> np.ndarray:
    """Random float32 values concentrated where 16-bit rounding goes wrong."""
    n = 4001  # not a multiple of any vector width
    parts = [
        # Arbitrary bit patterns: every exponent, NaN payloads, float32 subnormals.
        rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32).view(np.float32),
        # Ordinary magnitudes.
        (rng.standard_normal(n) * 10.0 ** rng.uniform(-8, 8, n)).astype(np.float32),
        # float16 subnormals (below 2**-14) and underflow to zero (below 2**-25).
        (rng.choice([-1, 1], n) * 2.0 ** rng.uniform(-27, -13, n)).astype(np.float32),
        # float32 subnormals (bfloat16 keeps float32's exponent range).
        (rng.choice([-1, 1], n) * 2.0 ** rng.uniform(-149, -125, n)).astype(np.float32),
        # Around float16's largest finite value 65504 and the overflow threshold 65520.
        (rng.choice([-1, 1], n) * rng.uniform(65000, 66000, n)).astype(np.float32),
        # Around bfloat16's largest finite value.
        (rng.choice([-1, 1], n) * rng.uniform(3.38e38, 3.4028235e38, n)).astype(np.float32),
    ]
    # Exact ties: a random 16-bit value plus half an ulp of it, for both formats.
    halves = rng.integers(0, 2**16, n, dtype=np.uint32)
    bf16_ties = ((halves << 16) | 0x8000).view(np.float32)
    f16 = rng.uniform(-60000, 60000, n).astype(np.float16)
    f16_ties = np.nextafter(f16.astype(np.float32), np.float32(np.inf))  # not a tie: just above
    f16_mid = (
        (f16.astype(np.float64) + np.nextafter(f16, np.float16(np.inf)).astype(np.float64)) / 2
    ).astype(np.float32)
    specials = np.array(
        [0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 65504, 65519.996, 65520, -65520, 65536, 1e5, 2.0**-24,
         2.0**-25, 2.0**-25 * 1.0000001, 3 * 2.0**-26, 2.0**-14, 1 + 2.0**-11, 1 + 3 * 2.0**-11, 1 + 2.0**-8,
         1 + 3 * 2.0**-8, 3.4028235e38, 1.1754942e-38, 1e-45],
        dtype=np.float32,
    )  # fmt: skip
    return np.concatenate([*parts, bf16_ties, f16_ties, f16_mid, specials])


@pytest.mark.parametrize("half", HALF_TYPES)
def test_float32_to_half_rounds_like_torch(rng, device, half):
    values = _tricky_float32(rng)
    ours = oc.tensor(values, device=device).to(OC[half])
    assert ours.device == device
    reference = torch.from_numpy(values).to(TORCH[half])
    widened = ours.to(oc.float32).to("cpu").numpy()
    expected = reference.float().numpy()
    np.testing.assert_array_equal(np.isnan(widened), np.isnan(expected))
    finite = ~np.isnan(expected)
    # Bit-exact (so signed zeros and infinities count) wherever the value is not NaN.
    np.testing.assert_array_equal(widened[finite].view(np.uint32), expected[finite].view(np.uint32))


def test_float32_to_float16_matches_numpy(rng):
    # numpy's float16 cast is a second, independent reference for round-to-nearest-even.
    values = _tricky_float32(rng)
    ours = oc.tensor(values).to(oc.float16).numpy()
    with np.errstate(over="ignore"):
        expected = values.astype(np.float16)
    finite = ~np.isnan(expected)
    np.testing.assert_array_equal(ours[finite].view(np.uint16), expected[finite].view(np.uint16))
    assert np.isnan(ours[~finite]).all()


def test_float16_overflow_boundary():
    values = np.array([65504, 65519.99, 65520, 70000, 1e30, -65520, -1e30], dtype=np.float32)
    got = oc.tensor(values).to(oc.float16).to(oc.float32).tolist()
    assert got == [65504, 65504, np.inf, np.inf, np.inf, -np.inf, -np.inf]


@pytest.mark.parametrize("half", HALF_TYPES)
def test_half_to_float32_exhaustive(half):
    # Every one of the 65536 bit patterns widens exactly as torch widens it.
    bits = torch.arange(-(2**15), 2**15, dtype=torch.int32).to(torch.int16)
    halves = bits.view(TORCH[half])
    ours = oc.from_dlpack(halves).to(oc.float32).numpy()
    expected = halves.float().numpy()
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(expected))
    finite = ~np.isnan(expected)
    np.testing.assert_array_equal(ours[finite].view(np.uint32), expected[finite].view(np.uint32))


@pytest.mark.parametrize("half", HALF_TYPES)
def test_float64_to_half_matches_torch(rng, half):
    # torch rounds float64 -> 16-bit through float32 (two roundings); so must we.
    values = rng.uniform(-100, 100, 3001)
    ours = oc.tensor(values).to(OC[half]).to(oc.float64).numpy()
    expected = torch.from_numpy(values).to(TORCH[half]).double().numpy()
    np.testing.assert_array_equal(ours, expected)


def _convertible_values(rng, shape, src: str, dst: str) -> np.ndarray:
    """Random `src` values that every `dst` can represent the cast of (no NaN -> int UB)."""
    values = random_array(rng, shape, src)
    if src in ("float32", "float64", "bfloat16", "float16") and dst in ("int32", "int64"):
        values = np.clip(values, -30000, 30000)  # float -> int truncates; stay in range
    return values


@pytest.mark.parametrize("dst", DTYPES)
@pytest.mark.parametrize("src", DTYPES)
def test_to_dtype_matches_torch(rng, device, src, dst):
    shape = random_shape(rng)
    values = _convertible_values(rng, shape, src, dst)
    reference = torch.from_numpy(values.copy()).to(TORCH[src])
    ours = oc.tensor(values, device=device)
    ours = ours.to(OC[src])
    converted = ours.to(OC[dst])
    assert converted.device == device
    assert_matches_torch(converted, reference.to(TORCH[dst]), strides=True)
    if src == dst:
        assert converted.is_alias_of(ours)  # to() returns self when nothing changes
    else:
        assert not converted.is_alias_of(ours)


@pytest.mark.parametrize("dst", DTYPES)
def test_to_dtype_of_non_contiguous_view(rng, device, dst):
    values = random_array(rng, (7, 9), "float64")
    values = np.clip(values, -30000, 30000)
    ours = oc.tensor(values, device=device)[1::2, ::3].T
    reference = torch.from_numpy(values)[1::2, ::3].T
    assert_matches_torch(ours.to(OC[dst]), reference.to(TORCH[dst]))


@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trip_through_wider_dtype_preserves_values(rng, device, dtype):
    ours = oc.tensor(random_array(rng, random_shape(rng), dtype), device=device).to(OC[dtype])
    for wider in ("float64", "float32"):  # random_array's integers (|v| < 1000) fit in float32
        if dtype == "float64" and wider == "float32":
            continue
        back = ours.to(OC[wider]).to(OC[dtype])
        assert back.tolist() == ours.tolist()
        assert back.dtype == ours.dtype


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("width", "start"), [(64, 0), (24, 0), (8, 1), (3, 0)], ids=str)
def test_contiguous_copy_of_a_transpose_with_contiguous_rows(rng, device, dtype, width, start):
    """An attention head split, (B, L, H, D) -> (B, H, L, D): rows of `width` elements stay
    contiguous, which CUDA moves in the widest unit (up to 16 bytes) the row bytes, strides and
    address allow; `start` shifts the view off that alignment. Also odd casts of the same view,
    and contiguous casts of lengths that are no multiple of a pack."""
    values = random_array(rng, (3, 11, 5, width + start), dtype)
    ours = oc.tensor(values, device=device).to(OC[dtype])[..., start:].permute(0, 2, 1, 3)
    reference = torch.from_numpy(values).to(TORCH[dtype])[..., start:].permute(0, 2, 1, 3)
    assert_matches_torch(ours.contiguous(), reference.contiguous())
    assert_matches_torch(ours.to(oc.float32), reference.to(torch.float32))
    head = values.reshape(-1)[: 8 * width + 5]
    flat = oc.tensor(head, device=device).to(OC[dtype])
    assert_matches_torch(flat.to(oc.float32), torch.from_numpy(head).to(TORCH[dtype]).to(torch.float32))
