"""Bad input raises a Python exception of the right class whose message names the offending
value, never a crash, and leaks no storage."""

from __future__ import annotations

import ctypes
import gc
import re

import numpy as np
import orchard_core as oc
import pytest
import torch


@pytest.fixture(autouse=True)
def _no_leaks():
    """Whatever fails in a test here must not leave a storage behind."""
    start = oc.profile.live_count()
    yield
    if oc.profile.live_count() > start:
        gc.collect()  # only when needed (it is slow): pytest.raises' tracebacks form cycles
    # <=: garbage from earlier tests may be freed meanwhile.
    assert oc.profile.live_count() <= start


# shapes and sizes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda shape: oc.empty(*shape),
        lambda shape: oc.zeros(shape),
        lambda shape: oc.ones(shape, dtype=oc.int32),
        lambda shape: oc.full(shape, 2.5),
    ],
)
def test_negative_shape(make, device):
    with pytest.raises(ValueError, match=r"negative dimension -3 in shape \[2, -3\]"):
        make((2, -3))


def test_shape_product_overflows_int64():
    with pytest.raises(
        ValueError, match=r"shape \[4294967296, 4294967296\] has more elements than fit in int64"
    ):
        oc.empty(2**32, 2**32)
    with pytest.raises(ValueError, match=r"shape \[3, 4611686018427387904\]"):
        oc.zeros(3, 2**62)
    # A zero anywhere makes the product 0, overflow or not.
    assert oc.empty(2**40, 2**40, 0).numel() == 0
    # The element count fits, the byte count does not.
    with pytest.raises(ValueError, match=r"shape \[2305843009213693952\] of float64 needs more bytes"):
        oc.empty(2**61, dtype=oc.float64)


def test_size_beyond_int64():
    with pytest.raises(ValueError, match="size 9223372036854775808 does not fit in int64"):
        oc.empty(2**63)


@pytest.mark.parametrize("size", [2.5, "3", True, None])
def test_non_integer_size(size):
    with pytest.raises(TypeError, match=f"sizes must be integers, got {size!r}"):
        oc.zeros(2, size)


def test_huge_allocation_is_an_out_of_memory_error(device):
    assert issubclass(oc.OutOfMemoryError, RuntimeError)
    with pytest.raises(oc.OutOfMemoryError, match="cannot allocate 4611686018427387904 bytes") as info:
        oc.empty(2**40, 2**20, device=device)
    assert type(info.value) is oc.OutOfMemoryError
    assert isinstance(info.value, RuntimeError)
    assert ("metal" in str(info.value)) == (device == "metal")
    with pytest.raises(RuntimeError, match="out of memory"):
        oc.zeros(2**40, 2**20, dtype=oc.bool, device=device)
    # The process goes on: small allocations still work.
    assert oc.full((3,), 7, device=device).tolist() == [7, 7, 7]


# views and reshapes ---------------------------------------------------------------------------


def test_view_incompatible_with_strides(device):
    t = oc.arange(12, device=device).reshape(3, 4).T
    with pytest.raises(
        ValueError, match=r"view\[12\] is not possible for a tensor with shape \[4, 3\] and strides"
    ):
        t.view(12)
    with pytest.raises(ValueError, match=r"view\[2, 6\]"):
        t.view(2, -1)
    with pytest.raises(ValueError, match=r"view\[16\] is not possible for a tensor with shape \[4, 4\]"):
        oc.arange(24, device=device).reshape(4, 6)[:, :4].view(16)


def test_reshape_bad_sizes(device):
    t = oc.arange(12, device=device)
    with pytest.raises(ValueError, match=r"shape \[-1, -1\] has more than one -1"):
        t.reshape(-1, -1)
    with pytest.raises(ValueError, match=r"shape \[5, -1\] is invalid for a tensor of 12 elements"):
        t.reshape(5, -1)
    with pytest.raises(ValueError, match=r"shape \[7\] is invalid for a tensor of 12 elements"):
        t.view(7)
    with pytest.raises(ValueError, match=r"negative dimension -2 in shape \[-2, 6\]"):
        t.reshape(-2, 6)
    with pytest.raises(ValueError, match=r"shape \[0, -1\] is invalid for a tensor of 0 elements"):
        oc.zeros(0).reshape(0, -1)


@pytest.mark.parametrize(
    ("call", "bad"),
    [
        (lambda t: t.transpose(0, 3), "3"),
        (lambda t: t.transpose(-4, 0), "-4"),
        (lambda t: t.permute(0, 5), "5"),
        (lambda t: t.squeeze(2), "2"),
        (lambda t: t.unsqueeze(4), "4"),
        (lambda t: t.unsqueeze(-4), "-4"),
        (lambda t: t.size(2), "2"),
        (lambda t: t.stride(-3), "-3"),
    ],
)
def test_dimension_out_of_range(device, call, bad):
    t = oc.zeros(3, 5, device=device)
    with pytest.raises(IndexError, match=f"dimension {bad} is out of range for a tensor with 2 dimensions"):
        call(t)


def test_bad_permute_expand_and_mt():
    t = oc.zeros(3, 1)
    with pytest.raises(ValueError, match=r"permute dims \[0, 0\] repeat dimension 0"):
        t.permute(0, 0)
    with pytest.raises(ValueError, match=r"permute dims \[0\] must name each of the 2"):
        t.permute(0)
    with pytest.raises(ValueError, match=r"cannot expand shape \[3, 1\] to \[4, 2\]: dimension 0 has size 3"):
        t.expand(4, 2)
    with pytest.raises(ValueError, match=r"expand\[2\] has fewer dimensions"):
        t.expand(2)
    with pytest.raises(ValueError, match=r"new leading dimension 0 must be >= 0, got -1"):
        t.expand(-1, 3, 1)
    with pytest.raises(ValueError, match=r"mT needs at least 2 dimensions.*\[3\]"):
        _ = oc.zeros(3).mT


# indexing ---------------------------------------------------------------------------------


def test_index_out_of_range(device):
    t = oc.arange(15, device=device).reshape(3, 5)
    with pytest.raises(IndexError, match="index 3 is out of range for dimension 0 of size 3"):
        t[3]
    with pytest.raises(IndexError, match="index -6 is out of range for dimension 1 of size 5"):
        t[:, -6]
    with pytest.raises(IndexError, match="index 9223372036854775808 does not fit in int64"):
        t[2**63]
    with pytest.raises(IndexError, match="index 5 is out of range"):
        t[1, 5] = 2.0


def test_negative_or_zero_slice_step(device):
    t = oc.arange(10, device=device)
    with pytest.raises(ValueError, match="slice step must be positive, got -1"):
        t[::-1]
    with pytest.raises(ValueError, match="slice step must be positive, got -3"):
        t[8:2:-3]
    with pytest.raises(ValueError, match="zero"):
        t[::0]


def test_too_many_indices(device):
    t = oc.zeros(3, 5, device=device)
    with pytest.raises(IndexError, match="too many indices for a tensor of dimension 2: got 3"):
        t[0, 0, 0]
    with pytest.raises(IndexError, match="too many indices for a tensor of dimension 2: got 3"):
        t[None, 0, ..., 1, 2]
    with pytest.raises(IndexError, match="single ellipsis"):
        t[..., 0, ...]
    with pytest.raises(IndexError, match="too many indices for a tensor of dimension 0: got 1"):
        oc.tensor(1.0)[0]


@pytest.mark.parametrize("key", [1.5, "a", (0, 2.0)])
def test_unsupported_index(key):
    with pytest.raises(TypeError, match="unsupported index"):
        oc.zeros(3, 5)[key]


@pytest.mark.parametrize("key", [[0.5, 1], [True, False]])
def test_index_lists_must_hold_integers(key):
    with pytest.raises(IndexError, match="must hold integers"):
        oc.zeros(3, 5)[key]


def test_bad_slice_bounds():
    with pytest.raises(TypeError, match="slice indices must be integers"):
        oc.zeros(3)[1.5:]


# scalars, item ------------------------------------------------------------------------------


def test_item_needs_one_element(device):
    with pytest.raises(ValueError, match=r"exactly one element, got 6 elements \(shape \[2, 3\]\)"):
        oc.zeros(2, 3, device=device).item()
    with pytest.raises(ValueError, match=r"got 0 elements \(shape \[0\]\)"):
        oc.zeros(0, device=device).item()
    with pytest.raises(ValueError, match="got 3 elements"):
        float(oc.zeros(3, device=device))


def test_bad_fill_values(device):
    t = oc.zeros(3, device=device)
    with pytest.raises(TypeError, match="got 'x'"):
        t.fill_("x")
    with pytest.raises(TypeError, match="got None"):
        t.fill_(None)
    with pytest.raises(ValueError, match="integer 1180591620717411303424 does not fit in int64"):
        t.fill_(2**70)
    with pytest.raises(TypeError, match="got 'text'"):
        t[0] = "text"


@pytest.mark.parametrize("dtype", ["uint8", np.uint8, torch.complex64, "float8", 3])
def test_unsupported_dtype_argument(dtype):
    name = {np.uint8: "uint8", 3: "3"}.get(dtype, str(dtype).removeprefix("torch."))
    with pytest.raises(TypeError, match=f"unsupported dtype.*{name}"):
        oc.zeros(2, dtype=dtype)


# numpy --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["uint8", "int8", "uint64", "complex64", "object", "datetime64[s]"])
def test_from_numpy_unsupported_dtype(dtype):
    with pytest.raises(TypeError, match=rf"numpy dtype {re.escape(dtype)} is not supported"):
        oc.from_numpy(np.zeros(3, dtype=dtype))


def test_from_numpy_read_only():
    array = np.arange(6, dtype=np.float32)
    array.flags.writeable = False
    with pytest.raises(ValueError, match=r"float32 array of shape \(6,\) is read-only"):
        oc.from_numpy(array)
    assert oc.tensor(array).tolist() == array.tolist()  # tensor() copies, so it may


def test_from_numpy_misaligned():
    misaligned = np.frombuffer(bytearray(17), dtype=np.float32, offset=1, count=4)
    assert misaligned.flags.writeable and not misaligned.flags.aligned
    with pytest.raises(
        ValueError, match=r"float32 array of shape \(4,\) is not aligned to its 4-byte elements"
    ):
        oc.from_numpy(misaligned)


def test_from_numpy_stride_not_a_multiple_of_the_itemsize():
    record = np.zeros(4, dtype=[("a", np.int8), ("b", np.int32)])  # packed: b's stride is 5 bytes
    field = record["b"]
    assert field.strides == (5,)
    with pytest.raises(ValueError):
        oc.from_numpy(field)


def test_from_numpy_negative_stride():
    with pytest.raises(ValueError, match=r"negative stride \(-4 bytes"):
        oc.from_numpy(np.arange(5, dtype=np.float32)[::-1])
    with pytest.raises(ValueError, match=r"negative stride \(-24 bytes"):
        oc.from_numpy(np.zeros((4, 3), dtype=np.float64)[::-1, :])


def test_from_numpy_byte_swapped():
    swapped = np.arange(4, dtype=">f4" if np.little_endian else "<f4")
    with pytest.raises(ValueError, match="non-native byte order"):
        oc.from_numpy(swapped)


@pytest.mark.parametrize("value", [[1.0, 2.0], 3, torch.zeros(2), "array"])
def test_from_numpy_needs_an_ndarray(value):
    with pytest.raises(TypeError, match=f"expects a numpy.ndarray, got {type(value).__name__}"):
        oc.from_numpy(value)


# DLPack -------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [[1, 2], 3.5, "text", None])
def test_from_dlpack_of_a_non_dlpack_object(value):
    with pytest.raises(TypeError, match=f"expects an object with __dlpack__.*got {type(value).__name__}"):
        oc.from_dlpack(value)


def test_capsule_consumed_twice():
    t = oc.arange(5)
    for capsule in (t.__dlpack__(), t.__dlpack__(max_version=(1, 0)), torch.arange(3).__dlpack__()):
        first = oc.from_dlpack(capsule)
        assert first.numel() in (3, 5)
        with pytest.raises(ValueError, match="consumed only once"):
            oc.from_dlpack(capsule)
        with pytest.raises(ValueError, match="consumed only once"):
            oc.from_dlpack(capsule)


def test_capsule_of_another_kind():
    new_capsule = ctypes.pythonapi.PyCapsule_New
    new_capsule.restype = ctypes.py_object
    new_capsule.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
    holder = ctypes.c_int(0)
    capsule = new_capsule(ctypes.addressof(holder), b"not_a_dltensor", None)
    with pytest.raises(ValueError, match="expected an unused DLPack capsule"):
        oc.from_dlpack(capsule)


def test_from_dlpack_unsupported_producers():
    read_only = np.arange(4.0)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        oc.from_dlpack(read_only)
    with pytest.raises(TypeError, match=r"unsupported DLPack dtype \(code=1, bits=8"):
        oc.from_dlpack(np.zeros(3, dtype=np.uint8))
    with pytest.raises(TypeError, match=r"unsupported DLPack dtype \(code=5, bits=64"):
        oc.from_dlpack(np.zeros(3, dtype=np.complex64))
    with pytest.raises(ValueError, match="negative stride -1 in dimension 0"):
        oc.from_dlpack(np.arange(4.0)[::-1])


def test_numpy_and_from_numpy_failures_leave_arrays_usable():
    array = np.arange(6, dtype=np.float32)[::-1]
    with pytest.raises(ValueError):
        oc.from_numpy(array)
    array[0] = 9  # still a normal, writable array
    assert array[0] == 9
