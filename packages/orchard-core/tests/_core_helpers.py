"""Helpers shared by the orchard-core tests: dtype tables, random data, reference checks."""

from __future__ import annotations

import os

import numpy as np
import orchard_core as oc
import pytest
import torch
from hypothesis import HealthCheck, settings

DTYPES = ["float32", "float64", "bfloat16", "float16", "int32", "int64", "bool"]
NUMPY_DTYPES = [name for name in DTYPES if name != "bfloat16"]  # numpy has no bfloat16
FLOAT_DTYPES = ["float32", "float64", "bfloat16", "float16"]
TORCH = {name: getattr(torch, name) for name in DTYPES}
OC = {name: getattr(oc, name) for name in DTYPES}


def _native_metal() -> bool:
    """Whether this build and host have a real Metal device, with no fallback asked for."""
    saved = os.environ.pop("ORCHARD_METAL_FALLBACK", None)
    try:
        oc.device_description("metal")
        return True
    except RuntimeError:
        return False
    finally:
        if saved is not None:
            os.environ["ORCHARD_METAL_FALLBACK"] = saved


# Tests of what happens where Metal is missing (as on Linux) cannot run where it is not.
WITHOUT_NATIVE_METAL = pytest.mark.skipif(_native_metal(), reason="this host has a real Metal device")

# Sizes that are not multiples of any vector width or block size.
ODD_SIZES = [1, 3, 5, 7, 9, 11, 13]

# Random examples differ every run (derandomize off); failures print a reproduction blob.
HYPOTHESIS = settings(
    max_examples=40,
    deadline=None,
    derandomize=False,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def random_shape(rng: np.random.Generator, ndim: int | None = None) -> tuple[int, ...]:
    if ndim is None:
        ndim = int(rng.integers(1, 4))
    return tuple(int(s) for s in rng.choice(ODD_SIZES, size=ndim))


def random_array(rng: np.random.Generator, shape, dtype: str) -> np.ndarray:
    """Random values for `dtype` (bfloat16 values come as float32, to be rounded by the callee).

    Floats mix signs and magnitudes over 1e-3..1e3 and include exact zeros, so neither
    zeros nor ones alone can make a comparison pass.
    """
    if dtype in FLOAT_DTYPES:
        values = rng.standard_normal(shape) * 10.0 ** rng.uniform(-3, 3, shape)
        values = np.where(rng.random(shape) < 0.05, 0.0, values)
        return np.asarray(values, dtype="float32" if dtype == "bfloat16" else dtype)
    if dtype == "bool":
        return np.asarray(rng.random(shape) < 0.5)
    return np.asarray(rng.integers(-1000, 1000, size=shape), dtype=dtype)


def random_pair(rng: np.random.Generator, shape, dtype: str, device: str = "cpu"):
    """The same random values as an orchard tensor (on `device`) and a CPU torch tensor."""
    values = random_array(rng, shape, dtype)
    reference = torch.from_numpy(values.copy()).to(TORCH[dtype])
    if dtype == "bfloat16":
        ours = oc.tensor(values).to(oc.bfloat16)
    else:
        ours = oc.tensor(values)
    return ours.to(device), reference


def host_values(t: oc.Tensor) -> np.ndarray:
    """A numpy copy of an orchard tensor's values (bfloat16 widened to float32)."""
    if t.dtype == oc.bfloat16:
        t = t.to(oc.float32)
    return np.array(t.to("cpu").numpy(), copy=True)


def torch_values(t: torch.Tensor) -> np.ndarray:
    if t.dtype == torch.bfloat16:
        t = t.float()
    return t.detach().cpu().numpy().copy()


def assert_matches_torch(ours: oc.Tensor, reference: torch.Tensor, *, strides: bool = False) -> None:
    """Same dtype, shape and values (NaNs equal, signs of zeros equal); strides too if asked."""
    assert ours.dtype.name == str(reference.dtype).removeprefix("torch."), (ours.dtype, reference.dtype)
    assert ours.shape == tuple(reference.shape)
    if strides:
        assert ours.stride() == reference.stride()
    got, want = host_values(ours), torch_values(reference)
    np.testing.assert_array_equal(got, want, strict=True)
    if got.dtype.kind == "f":
        np.testing.assert_array_equal(np.signbit(got), np.signbit(want))
