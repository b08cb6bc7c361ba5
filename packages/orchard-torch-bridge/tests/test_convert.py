"""to_torch / from_torch share memory in both directions."""

import os

import orchard_core
import orchard_flash
import orchard_torch_bridge as bridge
import pytest
import torch


@pytest.fixture
def generator():
    seed = int.from_bytes(os.urandom(4), "little")
    print(f"seed={seed}")
    return torch.Generator().manual_seed(seed)


DTYPES = [torch.float32, torch.float64, torch.bfloat16, torch.float16, torch.int32, torch.int64, torch.bool]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_round_trip_shares_memory(dtype, generator):
    source = (torch.randn(7, 13, generator=generator) * 50).to(dtype)
    view = source.t()[2:, ::3]  # non-contiguous, offset
    o = bridge.from_torch(view)
    assert o.shape == tuple(view.shape)
    assert o.stride() == view.stride()
    assert o.data_ptr() == view.data_ptr()
    back = bridge.to_torch(o)
    assert back.data_ptr() == view.data_ptr()
    assert back.dtype == dtype
    assert torch.equal(back, view)


def test_writes_are_visible_both_ways(generator):
    t = torch.randn(5, 6, generator=generator)
    o = bridge.from_torch(t)
    o[1, 2] = 123.5
    assert t[1, 2].item() == 123.5
    t[4, 5] = -7.25
    assert o[4, 5].item() == -7.25
    back = bridge.to_torch(o)
    back[0, 0] = 42.0
    assert t[0, 0].item() == 42.0


def test_requires_grad_tensor_converts_without_copy(generator):
    t = torch.randn(3, 4, generator=generator, requires_grad=True)
    assert bridge.from_torch(t).data_ptr() == t.data_ptr()


def test_wrong_types_are_rejected():
    with pytest.raises(TypeError, match="list"):
        bridge.from_torch([1.0, 2.0])
    with pytest.raises(TypeError, match="Tensor"):
        bridge.to_torch(torch.zeros(2))


def test_versions_of_the_three_packages_agree():
    assert bridge.__version__ == orchard_flash.__version__ == orchard_core.__version__


def test_dependency_pins_match_the_installed_versions():
    from importlib.metadata import requires

    assert f"orchard-core=={orchard_core.__version__}" in requires("orchard-flash")
    pins = requires("orchard-torch-bridge")
    assert f"orchard-core=={orchard_core.__version__}" in pins
    assert f"orchard-flash=={orchard_flash.__version__}" in pins
