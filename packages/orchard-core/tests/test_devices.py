"""Devices: what devices() lists, to(device)/to(dtype) round trips, and unavailable devices."""

from __future__ import annotations

import numpy as np
import orchard_core as oc
import pytest
import torch
from _core_helpers import (
    DTYPES,
    OC,
    TORCH,
    WITHOUT_NATIVE_METAL,
    assert_matches_torch,
    random_array,
    random_pair,
    random_shape,
)


def _names():
    """The devices listed, less CUDA GPUs (the host's business; test_cuda_runtime.py checks them)."""
    return [str(d) for d in oc.devices() if d.type != "cuda"]


@WITHOUT_NATIVE_METAL
def test_devices_lists_metal_only_with_the_fallback(monkeypatch):
    assert _names() == ["cpu"]
    monkeypatch.setenv("ORCHARD_METAL_FALLBACK", "cpu")
    assert _names() == ["cpu", "metal"]
    monkeypatch.setenv("ORCHARD_METAL_FALLBACK", "0")
    assert _names() == ["cpu"]
    monkeypatch.delenv("ORCHARD_METAL_FALLBACK")
    assert _names() == ["cpu"]  # read at every call


def test_device_fixture_devices_are_available(device):
    assert device in [str(d) for d in oc.devices()]
    assert oc.device(device) in oc.devices()


def test_device_objects():
    cpu = oc.device("cpu")
    assert cpu == "cpu" and cpu.type == "cpu" and cpu.index == 0
    assert repr(cpu) == "device('cpu')"
    assert oc.device("cuda:3").index == 3 and str(oc.device("cuda:3")) == "cuda:3"
    assert oc.device("metal") == oc.device("metal")
    assert len({oc.device("cpu"), oc.device("cpu"), oc.device("metal")}) == 2
    assert oc.device("cpu") != "metal"
    assert oc.device_description("cpu") == "host CPU"


@WITHOUT_NATIVE_METAL
def test_metal_without_fallback_raises_runtime_error():
    with pytest.raises(RuntimeError, match="ORCHARD_METAL_FALLBACK=cpu"):
        oc.zeros(3, device="metal")
    with pytest.raises(RuntimeError, match="ORCHARD_METAL_FALLBACK"):
        oc.arange(3).to("metal")
    with pytest.raises(RuntimeError, match="ORCHARD_METAL_FALLBACK"):
        oc.tensor([1.0], device="metal")
    with pytest.raises(RuntimeError, match="'metal:1' does not exist"):
        oc.zeros(3, device="metal:1")


@WITHOUT_NATIVE_METAL
def test_bad_metal_fallback_value_is_named(monkeypatch):
    monkeypatch.setenv("ORCHARD_METAL_FALLBACK", "gpu")
    with pytest.raises(ValueError, match="ORCHARD_METAL_FALLBACK='gpu'"):
        oc.zeros(3, device="metal")


@pytest.mark.parametrize("name", ["tpu", "cuda:x", "cuda:", "cuda:-1", "gpu", "CPU", "", "metal:1:2", "cpu "])
def test_unknown_devices_raise_value_error_naming_them(name):
    for make in (
        lambda: oc.zeros(2, device=name),
        lambda: oc.empty(2, device=name),
        lambda: oc.arange(2).to(name),
        lambda: oc.arange(2).to(device=name),
        lambda: oc.device(name),
    ):
        with pytest.raises(ValueError, match=f"'{name}'"):
            make()


def test_non_string_device_raises_type_error():
    with pytest.raises(TypeError, match=r"expected a device.*got 3"):
        oc.zeros(2, device=3)


@pytest.mark.skipif(oc._core._built_with_cuda, reason="built with CUDA: test_cuda_runtime.py covers it")
@pytest.mark.parametrize("name", ["cuda", "cuda:0", "cuda:1"])
def test_cuda_is_not_built(name):
    with pytest.raises(RuntimeError, match=f"'{name if ':' in name else name + ':0'}' is not available"):
        oc.zeros(2, device=name)
    with pytest.raises(RuntimeError, match="without CUDA"):
        oc.arange(3).to(name)
    assert all(d.type != "cuda" for d in oc.devices())


@pytest.mark.parametrize("dtype", DTYPES)
def test_to_device_round_trip_preserves_values(rng, monkeypatch, dtype):
    monkeypatch.setenv("ORCHARD_METAL_FALLBACK", "cpu")
    ours, reference = random_pair(rng, random_shape(rng), dtype)
    on_metal = ours.to("metal")
    assert on_metal.device == "metal" and on_metal.device.type == "metal"
    assert not on_metal.is_alias_of(ours)
    assert_matches_torch(on_metal, reference)
    back = on_metal.to("cpu")
    assert back.device == "cpu"
    assert_matches_torch(back, reference, strides=True)
    assert_matches_torch(on_metal.cpu(), reference)
    # A non-contiguous view moves as its values, arriving contiguous.
    view = ours.mT[..., ::2] if ours.ndim >= 2 else ours[::2]
    expected = reference.mT[..., ::2] if ours.ndim >= 2 else reference[::2]
    moved = view.to("metal")
    assert moved.is_contiguous()
    assert_matches_torch(moved, expected)
    assert_matches_torch(moved.to(device="cpu"), expected)


def test_to_same_device_and_dtype_returns_self(device):
    t = oc.arange(5, device=device)
    for same in (t.to(device), t.to(oc.int64), t.to(device, oc.int64), t.to(device=device, dtype="int64")):
        assert same.is_alias_of(t)
        assert same.data_ptr() == t.data_ptr()


@pytest.mark.parametrize("dtype", DTYPES)
def test_to_device_and_dtype_together(rng, monkeypatch, dtype):
    monkeypatch.setenv("ORCHARD_METAL_FALLBACK", "cpu")
    # Metal has no float64: a native Metal backend (or the emulated one) casts it on the CPU.
    monkeypatch.setenv("ORCHARD_CPU_FALLBACK", "1")
    values = random_array(rng, random_shape(rng), "float64").clip(-30000, 30000)
    ours = oc.tensor(values)
    expected = torch.from_numpy(values).to(TORCH[dtype])
    for converted in (
        ours.to("metal", OC[dtype]),
        ours.to(OC[dtype], "metal"),
        ours.to(device="metal", dtype=OC[dtype]),
        ours.to(dtype=dtype, device=oc.device("metal")),
        ours.to(TORCH[dtype]).to("metal"),
    ):
        assert converted.device == "metal"
        assert_matches_torch(converted, expected)
    assert_matches_torch(ours.to("metal").to(OC[dtype]).to("cpu"), expected)


def test_to_rejects_bad_arguments():
    t = oc.arange(3)
    with pytest.raises(TypeError, match="at most a device and a dtype, got 3"):
        t.to("cpu", oc.float32, oc.float32)
    with pytest.raises(TypeError, match="'colour'"):
        t.to(colour="red")
    with pytest.raises(ValueError, match="unknown device 'uint8'"):
        t.to("uint8")  # a string that names no dtype of ours is taken for a device
    with pytest.raises(TypeError, match="'uint8'"):
        t.to(np.uint8)
    with pytest.raises(TypeError, match="complex64"):
        t.to(torch.complex64)
