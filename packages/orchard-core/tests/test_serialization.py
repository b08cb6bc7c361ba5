"""Pickling, save/load and safetensors files, checked against torch's readers and writers."""

from __future__ import annotations

import io
import pickle
import sys

import numpy as np
import orchard_core as oc
import pytest
import torch
from _core_helpers import DTYPES, assert_matches_torch, host_values, random_pair
from orchard_core import nn


def _same(a: oc.Tensor, b: oc.Tensor) -> None:
    assert a.dtype == b.dtype and a.shape == b.shape and a.device == b.device
    np.testing.assert_array_equal(host_values(a), host_values(b), strict=True)


@pytest.mark.parametrize("dtype", DTYPES)
def test_pickle_round_trips_dtype_shape_values_and_device(rng, device, dtype):
    if device == "metal" and dtype == "float64":
        pytest.skip("Metal has no float64")
    t, _ = random_pair(rng, (3, 5), dtype, device)
    back = pickle.loads(pickle.dumps(t))
    _same(back, t)
    assert not back.requires_grad and not back.is_alias_of(t)


def test_pickle_keeps_requires_grad_and_the_parameter_type():
    t = oc.tensor([1.5, -2.0], requires_grad=True)
    assert pickle.loads(pickle.dumps(t)).requires_grad
    p = nn.Parameter(oc.ones(2, 2), requires_grad=False)
    back = pickle.loads(pickle.dumps(p))
    assert type(back) is nn.Parameter and not back.requires_grad


def test_a_view_pickles_only_its_values(rng):
    base = oc.tensor(rng.standard_normal((200, 300)).astype(np.float32))
    view = base[10:13, ::7].T  # non-contiguous, offset
    data = pickle.dumps(view)
    assert len(data) < 1000  # not the 240 kB base
    back = pickle.loads(data)
    _same(back, view)
    assert back.is_contiguous()
    _same(pickle.loads(pickle.dumps(oc.zeros(0, 3))), oc.zeros(0, 3))
    _same(pickle.loads(pickle.dumps(oc.tensor(7, dtype=oc.int32))), oc.tensor(7, dtype=oc.int32))


def test_pickling_a_graph_output_raises():
    y = oc.tensor([1.0], requires_grad=True) * 2
    with pytest.raises(RuntimeError, match="detach"):
        pickle.dumps(y)


def test_save_and_load_a_state_dict(tmp_path):
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4))
    path = tmp_path / "model.pt"
    oc.save(model.state_dict(), path)
    loaded = oc.load(path)
    assert list(loaded) == list(model.state_dict())
    other = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4))
    other.load_state_dict(loaded)
    for a, b in zip(other.parameters(), model.parameters(), strict=True):
        _same(a.detach(), b.detach())
    buffer = io.BytesIO()
    oc.save({"step": 3, "w": oc.ones(2)}, buffer)
    buffer.seek(0)
    back = oc.load(buffer)
    assert back["step"] == 3
    _same(back["w"], oc.ones(2))


@pytest.fixture
def safetensors_torch():
    pytest.importorskip("safetensors")
    import safetensors.torch

    return safetensors.torch


def _all_dtypes(rng, device="cpu"):
    ours, theirs = {}, {}
    for dtype in DTYPES:
        if device == "metal" and dtype == "float64":
            continue
        ours[dtype], theirs[dtype] = random_pair(rng, (3, 4), dtype, device)
    ours["scalar"], theirs["scalar"] = oc.tensor(2.5, device=device), torch.tensor(2.5)
    ours["empty"], theirs["empty"] = oc.zeros(0, 2, device=device), torch.zeros(0, 2)
    return ours, theirs


def test_safetensors_files_read_in_torch_and_back(rng, tmp_path, safetensors_torch):
    ours, theirs = _all_dtypes(rng)
    ours["view"] = ours["float32"].clone()[:, 1::2]  # a strided view of memory nothing else saves
    theirs["view"] = theirs["float32"][:, 1::2].contiguous()
    path = tmp_path / "ours.safetensors"
    oc.save_file(ours, path, metadata={"format": "pt", "note": "orchard"})
    from_ours = safetensors_torch.load_file(str(path))
    assert set(from_ours) == set(ours)
    for name in theirs:
        assert_matches_torch(ours[name], from_ours[name])
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        assert f.metadata() == {"format": "pt", "note": "orchard"}

    torch_path = tmp_path / "theirs.safetensors"
    safetensors_torch.save_file(theirs, str(torch_path))
    loaded = oc.load_file(torch_path)
    assert set(loaded) == set(theirs)
    for name, reference in theirs.items():
        assert_matches_torch(loaded[name], reference)


def test_load_file_onto_a_device(rng, tmp_path, device, safetensors_torch):
    ours, _ = _all_dtypes(rng, device)
    path = tmp_path / "t.safetensors"
    oc.save_file(ours, path)
    loaded = oc.load_file(path, device=device)
    for name, t in ours.items():
        _same(loaded[name], t)


def test_module_state_dict_through_safetensors(tmp_path, safetensors_torch):
    model = nn.Sequential(nn.Embedding(5, 3), nn.Linear(3, 2))
    path = tmp_path / "m.safetensors"
    oc.save_file(model.state_dict(), path)
    twin = torch.nn.Sequential(torch.nn.Embedding(5, 3), torch.nn.Linear(3, 2))
    twin.load_state_dict(safetensors_torch.load_file(str(path)))
    fresh = nn.Sequential(nn.Embedding(5, 3), nn.Linear(3, 2))
    fresh.load_state_dict(oc.load_file(path))
    for a, b, c in zip(fresh.parameters(), model.parameters(), twin.parameters(), strict=True):
        _same(a.detach(), b.detach())
        assert_matches_torch(b.detach(), c.detach())


def test_save_file_refuses_shared_memory_and_bad_entries(tmp_path, safetensors_torch):
    w = oc.zeros(4, 4)
    with pytest.raises(RuntimeError, match="'a' and 'b' share memory"):
        oc.save_file({"a": w, "b": w[1]}, tmp_path / "x.safetensors")
    with pytest.raises(TypeError, match="value for 'a' must be a Tensor, got list"):
        oc.save_file({"a": [1.0]}, tmp_path / "x.safetensors")


def test_missing_safetensors_names_the_package(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "safetensors", None)
    with pytest.raises(ImportError, match="pip install safetensors"):
        oc.save_file({"a": oc.zeros(1)}, tmp_path / "x.safetensors")
    with pytest.raises(ImportError, match="safetensors package"):
        oc.load_file(tmp_path / "x.safetensors")
