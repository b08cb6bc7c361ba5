"""Zero-copy interop: from_numpy, Tensor.numpy(), __array__, and DLPack with numpy and torch."""

from __future__ import annotations

import ctypes
import gc
import weakref

import numpy as np
import orchard_core as oc
import pytest
import torch
from _core_helpers import DTYPES, NUMPY_DTYPES, OC, TORCH, assert_matches_torch, random_array, random_shape


def _address(array: np.ndarray) -> int:
    return array.__array_interface__["data"][0]


def _other_values(rng, array: np.ndarray) -> np.ndarray:
    """Random values of the array's dtype that differ from the array's own, element by element."""
    if array.dtype == np.bool_:
        return ~array
    fresh = random_array(rng, array.shape, array.dtype.name)
    return np.where(fresh == array, fresh + 1, fresh).astype(array.dtype)


# from_numpy ------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", NUMPY_DTYPES)
def test_from_numpy_is_zero_copy_both_ways(rng, dtype):
    array = random_array(rng, random_shape(rng, 2), dtype)
    t = oc.from_numpy(array)
    assert t.dtype == OC[dtype]
    assert t.shape == array.shape
    assert t.data_ptr() == _address(array)
    assert t.tolist() == array.tolist()
    # numpy -> tensor
    array[...] = _other_values(rng, array)
    assert t.tolist() == array.tolist()
    # tensor -> numpy, through a view of the tensor
    row = array.shape[0] // 2
    new_row = _other_values(rng, array[row])
    others = np.delete(array, row, axis=0)
    t[row] = oc.tensor(new_row)
    assert array[row].tolist() == new_row.tolist()
    assert np.delete(array, row, axis=0).tolist() == others.tolist()
    t.fill_(True if dtype == "bool" else 7)
    assert (array == (True if dtype == "bool" else 7)).all()


def test_from_numpy_non_contiguous_view(rng):
    base = random_array(rng, (7, 9), "float64")
    view = base[1::2, 2::3]
    t = oc.from_numpy(view)
    assert t.shape == view.shape
    assert t.stride() == tuple(s // 8 for s in view.strides)
    assert t.data_ptr() == _address(view)
    assert t.tolist() == view.tolist()
    before = base.copy()
    t.zero_()
    expected = before.copy()
    expected[1::2, 2::3] = 0
    np.testing.assert_array_equal(base, expected)  # only the view's elements changed


def test_from_numpy_keeps_the_array_alive(rng):
    array = random_array(rng, (5, 3), "float32")
    expected = array.tolist()
    ref = weakref.ref(array)
    t = oc.from_numpy(array)
    del array
    gc.collect()
    assert ref() is not None
    assert t.tolist() == expected
    view = t[1:, ::2]
    del t
    gc.collect()
    assert ref() is not None  # the view alone keeps the storage, hence the array
    assert view.tolist() == [row[::2] for row in expected[1:]]
    del view
    gc.collect()
    assert ref() is None  # and lets it go with the last view: no leak


def test_from_numpy_empty_and_0d(rng):
    empty = np.zeros((0, 5), dtype=np.float32)
    assert oc.from_numpy(empty).shape == (0, 5)
    scalar = np.array(random_array(rng, (), "int64"))
    t = oc.from_numpy(scalar)
    assert t.shape == ()
    assert t.item() == scalar.item()


# Tensor.numpy() and __array__ ------------------------------------------------------------


@pytest.mark.parametrize("dtype", NUMPY_DTYPES)
def test_numpy_is_zero_copy_both_ways(rng, dtype):
    t = oc.tensor(random_array(rng, random_shape(rng, 2), dtype))
    view = t.numpy()
    assert view.dtype == np.dtype(dtype)
    assert _address(view) == t.data_ptr()
    assert view.tolist() == t.tolist()
    fresh = _other_values(rng, view)
    view[...] = fresh
    assert t.tolist() == fresh.tolist()
    t.fill_(False if dtype == "bool" else 5)
    assert (view == (False if dtype == "bool" else 5)).all()


def test_numpy_of_view_keeps_tensor_alive(rng):
    values = random_array(rng, (5, 7), "float32")
    gc.collect()  # no garbage left to be freed between the live_count() readings below
    t = oc.tensor(values)
    view = t.T[1:, ::3].numpy()  # a non-contiguous view of a view
    assert view.strides == tuple(4 * s for s in t.T[1:, ::3].stride())
    baseline = oc.profile.live_count()
    del t
    gc.collect()
    assert oc.profile.live_count() == baseline  # the storage is still alive, owned by the array
    np.testing.assert_array_equal(view, values.T[1:, ::3])
    view[...] = -1.5
    np.testing.assert_array_equal(view, np.full(view.shape, -1.5, dtype=np.float32))
    del view
    gc.collect()
    assert oc.profile.live_count() == baseline - 1


def test_numpy_rejects_bfloat16_and_non_cpu(monkeypatch):
    with pytest.raises(TypeError, match="bfloat16"):
        oc.ones(3, dtype=oc.bfloat16).numpy()
    monkeypatch.setenv("ORCHARD_METAL_FALLBACK", "cpu")
    with pytest.raises(TypeError, match="metal"):
        oc.ones(3, device="metal").numpy()


@pytest.mark.parametrize("dtype", DTYPES)
def test_array_protocol(rng, device, dtype):
    values = random_array(rng, random_shape(rng, 2), dtype)
    t = oc.tensor(values, device=device).to(OC[dtype])
    array = np.asarray(t)
    expected = torch.from_numpy(values.copy()).to(TORCH[dtype])
    if dtype == "bfloat16":
        expected = expected.float()
    np.testing.assert_array_equal(array, expected.numpy(), strict=True)
    zero_copy = device == "cpu" and dtype != "bfloat16"
    assert (_address(array) == t.data_ptr()) == zero_copy
    if zero_copy:
        assert np.shares_memory(np.asarray(t), t.numpy())
        assert not np.shares_memory(np.array(t, copy=True), t.numpy())
    else:
        with pytest.raises(ValueError, match="without a copy"):
            np.array(t, copy=False)
    converted = np.asarray(t, dtype=np.float64)
    assert converted.dtype == np.float64
    np.testing.assert_array_equal(converted, expected.double().numpy())


# DLPack with numpy -----------------------------------------------------------------------


@pytest.mark.parametrize("dtype", NUMPY_DTYPES)
def test_dlpack_to_numpy(rng, device, dtype):
    t = oc.tensor(random_array(rng, (7, 9), dtype), device=device)
    if device != "cpu":
        # numpy only imports CPU memory: the host-backed stand-in still says "metal".
        dlpack_type = {"metal": 8, "cuda": 2}[oc.device(device).type]
        assert t.__dlpack_device__() == (dlpack_type, oc.device(device).index)
        with pytest.raises((BufferError, RuntimeError, ValueError)):
            np.from_dlpack(t)
        return
    assert t.__dlpack_device__() == (1, 0)
    view = t[2:, 1::2].T
    array = np.from_dlpack(view)
    assert _address(array) == view.data_ptr()
    assert array.strides == tuple(s * t.itemsize for s in view.stride())
    assert array.tolist() == view.tolist()
    array[...] = _other_values(rng, array)
    assert view.tolist() == array.tolist()
    # The array keeps the storage alive.
    del t, view
    gc.collect()
    assert array.tolist() == array.copy().tolist()


@pytest.mark.parametrize("dtype", NUMPY_DTYPES)
def test_dlpack_from_numpy(rng, dtype):
    base = random_array(rng, (9, 7), dtype)
    view = base[::2, 1:6:3]
    t = oc.from_dlpack(view)
    assert t.dtype == OC[dtype]
    assert t.data_ptr() == _address(view)
    assert t.stride() == tuple(s // base.itemsize for s in view.strides)
    assert t.tolist() == view.tolist()
    view[...] = _other_values(rng, view)
    assert t.tolist() == view.tolist()


def test_dlpack_copy_request_copies():
    t = oc.arange(10)
    copied = np.from_dlpack(t, copy=True)
    assert _address(copied) != t.data_ptr()
    assert copied.tolist() == t.tolist()
    shared = np.from_dlpack(t, copy=False)
    assert _address(shared) == t.data_ptr()


# DLPack with torch -----------------------------------------------------------------------


def _views(t):
    """Contiguous and non-contiguous views of a 2-d tensor (orchard or torch, same syntax)."""
    return {
        "whole": t,
        "transposed": t.T,
        "strided": t[1::2, ::3],
        "row": t[3],
        "column": t[:, 4],
        "broadcast": t[:1].expand(5, t.shape[1]),
        "scalar": t[2, 3],
    }


@pytest.mark.parametrize("dtype", DTYPES)
def test_dlpack_to_torch(rng, dtype):
    values = random_array(rng, (7, 9), dtype)
    ours = oc.tensor(values).to(OC[dtype])
    reference = torch.from_numpy(values.copy()).to(TORCH[dtype])
    ours_views, reference_views = _views(ours), _views(reference)
    for name, view in ours_views.items():
        imported = torch.from_dlpack(view)
        assert imported.data_ptr() == view.data_ptr(), name
        assert tuple(imported.shape) == view.shape, name
        if view.numel() > 1:
            assert imported.stride() == view.stride(), name
        assert torch.equal(imported, reference_views[name]), name
    # Writes through torch are visible in orchard.
    imported = torch.from_dlpack(ours_views["strided"])
    imported.copy_(torch.from_numpy(random_array(rng, tuple(imported.shape), dtype)).to(TORCH[dtype]))
    assert_matches_torch(ours_views["strided"], imported)
    reference[1::2, ::3] = imported
    assert_matches_torch(ours, reference)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dlpack_from_torch(rng, dtype):
    reference = torch.from_numpy(random_array(rng, (7, 9), dtype)).to(TORCH[dtype])
    for name, view in _views(reference).items():
        ours = oc.from_dlpack(view)
        assert ours.data_ptr() == view.data_ptr(), name
        assert ours.stride() == view.stride(), name
        assert_matches_torch(ours, view)
    # Writes through orchard are visible in torch, and orchard keeps torch's memory alive.
    ours = oc.from_dlpack(reference[1::2, ::3])
    ours.fill_(True if dtype == "bool" else -3)
    assert (reference[1::2, ::3] == (True if dtype == "bool" else -3)).all()
    expected = reference[1::2].clone()
    del reference
    gc.collect()
    assert_matches_torch(ours, expected[:, ::3])


def test_dlpack_round_trip_through_torch_and_numpy(rng):
    values = random_array(rng, (5, 11), "float32")
    t = oc.tensor(values)
    back = oc.from_dlpack(torch.from_dlpack(np.from_dlpack(t)))
    assert back.data_ptr() == t.data_ptr()
    assert back.tolist() == values.tolist()


def test_from_dlpack_of_an_orchard_tensor_shares_it(device):
    t = oc.arange(6, device=device)
    same = oc.from_dlpack(t)
    assert same.is_alias_of(t)
    assert same.device == device
    capsule_import = oc.from_dlpack(t.__dlpack__(max_version=(1, 0)))
    assert capsule_import.data_ptr() == t.data_ptr()
    assert capsule_import.device == device


class _DLTensor(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("device", ctypes.c_int32 * 2),
        ("ndim", ctypes.c_int32),
        ("dtype", ctypes.c_uint32),
        ("shape", ctypes.c_void_p),
        ("strides", ctypes.c_void_p),
        ("byte_offset", ctypes.c_uint64),
    ]


class _DLManagedTensorVersioned(ctypes.Structure):
    _fields_ = [
        ("version", ctypes.c_uint32 * 2),
        ("manager_ctx", ctypes.c_void_p),
        ("deleter", ctypes.c_void_p),
        ("flags", ctypes.c_uint64),
        ("dl_tensor", _DLTensor),
    ]


def _data_and_byte_offset(capsule) -> tuple[int, int]:
    """A versioned capsule's DLTensor.data and byte_offset, read without consuming it."""
    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.restype, get_pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    managed = _DLManagedTensorVersioned.from_address(get_pointer(capsule, b"dltensor_versioned"))
    return managed.dl_tensor.data, managed.dl_tensor.byte_offset


def test_dlpack_metal_names_the_buffer_and_the_offset(rng, monkeypatch):
    # DLPack's Metal convention, torch's MPS tensors' and MLX's: data is the buffer (an
    # id<MTLBuffer> on macOS), the same for every view of a storage, and byte_offset is where
    # the view starts in it. Imports bind the buffer at that offset, without a copy.
    monkeypatch.setenv("ORCHARD_METAL_FALLBACK", "cpu")
    base = oc.tensor(random_array(rng, (6, 8), "float32"), device="metal")
    view = base[2:, 3::2]
    base_data, base_offset = _data_and_byte_offset(base.__dlpack__(max_version=(1, 0)))
    capsule = view.__dlpack__(max_version=(1, 0))
    view_data, view_offset = _data_and_byte_offset(capsule)
    assert (view_data, base_offset) == (base_data, 0)
    assert view_offset == view.data_ptr() - base.data_ptr() == (2 * 8 + 3) * base.itemsize
    imported = oc.from_dlpack(capsule)
    assert imported.device == "metal"
    assert imported.data_ptr() == view.data_ptr()
    assert imported.stride() == view.stride()
    assert imported.tolist() == view.tolist()
    imported.fill_(-2.0)  # the same memory
    assert view.tolist() == [[-2.0] * 3] * 4


def test_dlpack_capsules(rng):
    t = oc.tensor(random_array(rng, (3, 5), "int64"))
    legacy = t.__dlpack__()
    versioned = t.__dlpack__(max_version=(1, 0))
    imported = torch.from_dlpack(legacy)
    assert imported.tolist() == t.tolist()
    ours = oc.from_dlpack(versioned)
    assert ours.tolist() == t.tolist()
    for used in (legacy, versioned):
        with pytest.raises(ValueError, match="consumed only once"):
            oc.from_dlpack(used)


def test_unconsumed_capsule_releases_the_storage():
    gc.collect()
    baseline = oc.profile.live_count()
    t = oc.zeros(3, 5)
    capsules = [t.__dlpack__(), t.__dlpack__(max_version=(1, 0))]
    del t
    gc.collect()
    assert oc.profile.live_count() == baseline + 1  # the capsules hold the storage
    del capsules
    gc.collect()
    assert oc.profile.live_count() == baseline


def test_dlpack_export_arguments():
    t = oc.arange(4)
    with pytest.raises(BufferError, match=r"\(2, 0\)"):
        t.__dlpack__(dl_device=(2, 0))
    with pytest.raises(ValueError, match=r"stream must be None.*got 1"):
        t.__dlpack__(stream=1)
    copy = oc.from_dlpack(t.__dlpack__(copy=True))
    assert copy.data_ptr() != t.data_ptr()
    assert copy.tolist() == [0, 1, 2, 3]
