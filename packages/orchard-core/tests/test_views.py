"""Views share storage: view/reshape, transpose/permute/T/mT, expand, squeeze/unsqueeze and
basic indexing, compared with torch (shapes, strides, offsets, aliasing) and numpy (values)."""

from __future__ import annotations

import math

import numpy as np
import orchard_core as oc
import pytest
import torch
from _core_helpers import HYPOTHESIS
from hypothesis import given
from hypothesis import strategies as st

SIZES = [1, 2, 3, 5, 7]


@st.composite
def strided_layouts(draw, max_ndim=4):
    """(shape, permutation, steps): arange(prod(shape)).reshape(shape).permute(perm)[::steps...]."""
    ndim = draw(st.integers(1, max_ndim))
    shape = tuple(draw(st.lists(st.sampled_from(SIZES), min_size=ndim, max_size=ndim)))
    perm = tuple(draw(st.permutations(range(ndim))))
    steps = tuple(draw(st.lists(st.sampled_from([1, 1, 2, 3]), min_size=ndim, max_size=ndim)))
    offset = draw(st.integers(0, 1))  # start one element in, when the dim allows it
    return shape, perm, steps, offset


def make_pair(layout, device):
    """The same (possibly non-contiguous) int64 view in orchard (on `device`) and torch."""
    shape, perm, steps, offset = layout
    n = math.prod(shape)
    ours = oc.arange(n, device=device).reshape(shape).permute(*perm)
    reference = torch.arange(n).reshape(shape).permute(*perm)
    key = tuple(
        slice(offset if size > 1 else 0, None, step)
        for size, step in zip(reference.shape, steps, strict=True)
    )
    return ours[key], reference[key]


def check_view(ours, reference, base=None):
    """Geometry and values equal to torch's; when `base` is given, a view of base's storage."""
    assert ours.shape == tuple(reference.shape)
    # The stride of a size-1 dim never affects addressing, and torch and orchard choose it
    # differently in places (expand's new leading dims): compare the others.
    assert _strides(ours.shape, ours.stride()) == _strides(ours.shape, reference.stride())
    if reference.numel() > 0:  # an empty view reads nothing: torch and orchard place it differently
        assert ours.storage_offset() == reference.storage_offset()
    assert ours.tolist() == reference.tolist()
    assert ours.is_contiguous() == reference.is_contiguous()
    if base is not None:
        assert ours.is_alias_of(base)
        assert ours.data_ptr() == base.data_ptr() + (ours.storage_offset() - base.storage_offset()) * 8


def _array(t: oc.Tensor) -> np.ndarray:
    """Values through tolist() (no zero-copy path), shaped: numpy reference comparisons."""
    return np.asarray(t.tolist(), dtype=np.int64).reshape(t.shape)


def _strides(shape, strides):
    return tuple(stride if size != 1 else None for size, stride in zip(shape, strides, strict=True))


def _shares_storage(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


@st.composite
def reshape_targets(draw, numel):
    """A random shape with `numel` elements (prime factors grouped at random, 1s inserted,
    maybe one -1)."""
    factors, n, p = [], numel, 2
    while n > 1:
        while n % p == 0:
            factors.append(p)
            n //= p
        p += 1
    ndim = draw(st.integers(1, 4))
    dims = [1] * ndim
    for f in factors:
        dims[draw(st.integers(0, ndim - 1))] *= f
    if numel == 0:
        dims[draw(st.integers(0, ndim - 1))] = 0
    if draw(st.booleans()) and numel > 0:
        dims[draw(st.integers(0, ndim - 1))] = -1
    return tuple(dims)


@HYPOTHESIS
@given(layout=strided_layouts(), data=st.data())
def test_reshape_and_view_like_torch(device, layout, data):
    ours, reference = make_pair(layout, device)
    target = data.draw(reshape_targets(reference.numel()), label="target")
    reshaped, expected = ours.reshape(target), reference.reshape(target)
    assert reshaped.shape == tuple(expected.shape)
    assert reshaped.tolist() == expected.tolist()
    np.testing.assert_array_equal(_array(reshaped), np.reshape(reference.numpy(), target))
    # A view exactly when torch's reshape is a view; a copy (that does not alias) otherwise.
    is_view = _shares_storage(expected, reference)
    assert reshaped.is_alias_of(ours) == is_view
    if is_view:
        check_view(reshaped, expected, ours)
    else:
        assert reshaped.is_contiguous()
    try:
        viewed = reference.view(target)
    except RuntimeError:
        with pytest.raises(ValueError, match=r"view\[.*is not possible.*strides"):
            ours.view(target)
    else:
        check_view(ours.view(target), viewed, ours)


def test_reshape_copies_when_it_must(device):
    t = oc.arange(15, device=device).reshape(3, 5).T
    copy = t.reshape(15)
    assert not copy.is_alias_of(t)
    assert copy.tolist() == torch.arange(15).reshape(3, 5).T.reshape(15).tolist()
    view = t.reshape(5, 1, 3)
    assert view.is_alias_of(t)
    with pytest.raises(ValueError, match=r"view\[15\] is not possible for a tensor with shape \[5, 3\]"):
        t.view(15)


@HYPOTHESIS
@given(layout=strided_layouts(), data=st.data())
def test_transpose_permute_like_torch(device, layout, data):
    ours, reference = make_pair(layout, device)
    ndim = reference.ndim
    d0 = data.draw(st.integers(-ndim, ndim - 1), label="dim0")
    d1 = data.draw(st.integers(-ndim, ndim - 1), label="dim1")
    check_view(ours.transpose(d0, d1), reference.transpose(d0, d1), ours)
    perm = data.draw(st.permutations(range(ndim)), label="perm")
    perm = [p - ndim if data.draw(st.booleans()) else p for p in perm]  # negative dims too
    check_view(ours.permute(*perm), reference.permute(*perm), ours)
    check_view(ours.permute(perm), reference.permute(perm), ours)
    # .T reverses all dims (numpy's meaning; torch deprecates it off 2-d), .mT swaps the last two.
    check_view(ours.T, reference.permute(*reversed(range(ndim))), ours)
    np.testing.assert_array_equal(_array(ours.T), reference.numpy().T)
    if ndim >= 2:
        check_view(ours.mT, reference.mT, ours)


@HYPOTHESIS
@given(layout=strided_layouts(max_ndim=3), data=st.data())
def test_expand_like_torch(device, layout, data):
    ours, reference = make_pair(layout, device)
    target = [
        data.draw(st.sampled_from([1, 4, 6, -1]), label=f"dim{i}") if size == 1 else
        data.draw(st.sampled_from([size, -1]), label=f"dim{i}")
        for i, size in enumerate(reference.shape)
    ]  # fmt: skip
    target = data.draw(st.lists(st.sampled_from([1, 2, 3]), max_size=2), label="new dims") + target
    expanded, expected = ours.expand(*target), reference.expand(*target)
    check_view(expanded, expected, ours)
    for i, size in enumerate(reference.shape, start=len(target) - reference.ndim):
        if size == 1 and expected.shape[i] != 1:
            assert expanded.stride(i) == 0


@HYPOTHESIS
@given(layout=strided_layouts(), data=st.data())
def test_squeeze_unsqueeze_like_torch(device, layout, data):
    ours, reference = make_pair(layout, device)
    ndim = reference.ndim
    check_view(ours.squeeze(), reference.squeeze(), ours)
    dim = data.draw(st.integers(-ndim, ndim - 1), label="squeeze dim")
    check_view(ours.squeeze(dim), reference.squeeze(dim), ours)
    dim = data.draw(st.integers(-ndim - 1, ndim), label="unsqueeze dim")
    check_view(ours.unsqueeze(dim), reference.unsqueeze(dim), ours)


@st.composite
def basic_keys(draw, shape):
    """A random basic-indexing key: ints, positive-step slices (bounds may overshoot or be
    negative), None and at most one Ellipsis."""
    items = []
    for size in shape:
        kind = draw(st.sampled_from(["int", "slice", "slice", "full"]))
        if kind == "int":
            items.append(draw(st.integers(-size, size - 1)))
        elif kind == "slice":
            bound = st.none() | st.integers(-size - 3, size + 3)
            items.append(slice(draw(bound), draw(bound), draw(st.sampled_from([None, 1, 2, 3, 5]))))
        else:
            items.append(slice(None))
    for _ in range(draw(st.integers(0, 2))):
        items.insert(draw(st.integers(0, len(items))), None)
    if draw(st.booleans()):  # replace a run of consecutive dims by ...
        start = draw(st.integers(0, len(items)))
        stop = draw(st.integers(start, len(items)))
        items[start:stop] = [Ellipsis]
    elif items and draw(st.booleans()):
        items = items[: draw(st.integers(0, len(items)))]  # fewer items than dims
    if len(items) == 1 and draw(st.booleans()):
        return items[0]  # not wrapped in a tuple
    return tuple(items)


@HYPOTHESIS
@given(layout=strided_layouts(), data=st.data())
def test_indexing_like_torch(device, layout, data):
    ours, reference = make_pair(layout, device)
    key = data.draw(basic_keys(tuple(reference.shape)), label="key")
    result, expected = ours[key], reference[key]
    check_view(result, expected, ours)
    np.testing.assert_array_equal(_array(result), reference.numpy()[key])


def test_indexing_examples():
    t = oc.arange(60).reshape(3, 4, 5)
    reference = torch.arange(60).reshape(3, 4, 5)
    for key in [1, -1, (1, 2), (Ellipsis, 3), (None, 1, Ellipsis, None), (slice(1, None, 2), None, -2),
                (slice(-100, 100),), slice(10, 20), (0, 0, 0), Ellipsis, None, ()]:  # fmt: skip
        check_view(t[key], reference[key], t)
    assert t[1, 2, 3].item() == 33
    assert t[np.int64(2)][np.int32(1)].tolist() == reference[2, 1].tolist()
    huge = 2**62  # large but valid bounds and steps clamp like Python's
    check_view(t[:, huge:], reference[:, huge:], t)
    np.testing.assert_array_equal(_array(t[::huge]), reference.numpy()[::huge])
    for step in (2**63 - 1, 2**70):  # the step alone overflows size + step - 1
        np.testing.assert_array_equal(_array(t[1:, ::step]), reference.numpy()[1:, ::step])


@pytest.mark.parametrize(
    "key",
    [
        [2, 0, -1],
        (slice(None), [-1]),
        (Ellipsis, [4, 4, 0]),
        (1, [[0, 3], [2, -4]]),
        (None, slice(1, 3), [0, 2]),
    ],
    ids=str,
)
def test_one_integer_array_index_like_torch(device, key):
    """A list or int tensor at one position picks entries along that dim (negatives wrap): a
    copy, its shape in place of that dim, differentiable as index_select is."""
    values = np.arange(60.0).reshape(3, 4, 5)
    t = oc.tensor(values, device=device, requires_grad=True)
    reference = torch.tensor(values, requires_grad=True)
    got, want = t[key], reference[key]
    assert got.shape == tuple(want.shape) and got.tolist() == want.tolist()
    as_tensor = (
        tuple(oc.tensor(k, dtype=oc.int32).to(device) if isinstance(k, list) else k for k in key)
        if isinstance(key, tuple)
        else oc.tensor(key).to(device)
    )
    assert t[as_tensor].tolist() == want.tolist()
    seed = np.arange(float(want.numel())).reshape(tuple(want.shape))
    got.backward(oc.tensor(seed, device=device))
    want.backward(torch.tensor(seed))
    assert t.grad.tolist() == reference.grad.tolist()


def test_boolean_mask_assignment_like_torch(device):
    values = np.arange(12.0).reshape(3, 4) - 5
    t, reference = oc.tensor(values, device=device), torch.tensor(values)
    t[t < 0] = -1.5
    reference[reference < 0] = -1.5
    assert t.tolist() == reference.tolist()
    t[t > 2] = oc.tensor(7.0, device=device)
    reference[reference > 2] = torch.tensor(7.0)
    assert t.tolist() == reference.tolist()


def test_integer_array_index_limits():
    t = oc.zeros(3, 4)
    with pytest.raises(TypeError, match="only one integer-array index"):
        t[[0, 1], [1, 2]]
    with pytest.raises(TypeError, match="index_put is missing"):
        t[[0, 1]] = 1.0
    with pytest.raises(IndexError, match="index 3"):
        t[[0, 3]]


# contiguity, copies and detach ------------------------------------------------------------


@HYPOTHESIS
@given(layout=strided_layouts())
def test_contiguous_clone_detach(device, layout):
    ours, reference = make_pair(layout, device)
    assert ours.is_contiguous() == reference.is_contiguous()
    contiguous = ours.contiguous()
    assert contiguous.is_contiguous()
    assert contiguous.tolist() == reference.tolist()
    assert contiguous.is_alias_of(ours) == ours.is_contiguous()
    if ours.is_contiguous():
        assert contiguous.data_ptr() == ours.data_ptr()
    else:
        assert contiguous.stride() == reference.contiguous().stride()
    clone = ours.clone()
    assert not clone.is_alias_of(ours)
    assert clone.device == device
    assert clone.tolist() == reference.tolist()
    detached = ours.detach()
    check_view(detached, reference, ours)
    assert detached.data_ptr() == ours.data_ptr()


def test_detach_shares_and_clone_does_not(rng, device):
    values = rng.standard_normal((5, 7)).astype(np.float32)
    t = oc.tensor(values, device=device)
    detached = t.detach()[1:4, ::2]
    clone = t.clone()
    detached.fill_(-2.5)
    values[1:4, ::2] = -2.5
    assert t.tolist() == values.tolist()  # visible in the original
    assert clone.tolist() != t.tolist()
    clone.zero_()
    assert t.tolist() == values.tolist()  # and the clone is independent


# in-place writes ---------------------------------------------------------------------------


@HYPOTHESIS
@given(layout=strided_layouts(), data=st.data())
def test_fill_on_a_view_changes_only_the_view(device, layout, data):
    ours, reference = make_pair(layout, device)
    key = data.draw(basic_keys(tuple(reference.shape)), label="key")
    value = data.draw(st.integers(-(2**40), 2**40), label="value")
    expected = reference.numpy().copy()
    expected[key] = value
    assert ours[key].fill_(value).tolist() == np.asarray(expected[key]).tolist()
    assert ours.tolist() == expected.tolist()
    expected[key] = 0
    ours[key].zero_()
    assert ours.tolist() == expected.tolist()


@pytest.mark.parametrize("dtype", ["float32", "float64", "bfloat16", "float16", "int32", "int64", "bool"])
def test_fill_dtypes(rng, device, dtype):
    base = torch.from_numpy(rng.standard_normal((5, 6)) * 100).to(getattr(torch, dtype))
    ours = oc.tensor(base.double().numpy()).to(getattr(oc, dtype)).to(device)
    assert ours.tolist() == base.tolist()
    value = float(rng.standard_normal() * 50)
    ours[1:, 2::3].fill_(value)
    base[1:, 2::3].fill_(value)
    assert ours.tolist() == base.tolist()


@HYPOTHESIS
@given(layout=strided_layouts(), data=st.data())
def test_setitem_like_torch(device, layout, data):
    ours, reference = make_pair(layout, device)
    reference = reference.clone()  # torch refuses writes that alias within the base
    key = data.draw(basic_keys(tuple(reference.shape)), label="key")
    target_shape = tuple(reference[key].shape)
    kind = data.draw(st.sampled_from(["int", "float", "bool", "tensor", "broadcast", "list", "array"]))
    if kind == "int":
        value = reference_value = data.draw(st.integers(-1000, 1000))
    elif kind == "float":
        value = reference_value = data.draw(st.floats(-1000, 1000))
    elif kind == "bool":
        value = reference_value = data.draw(st.booleans())
    else:
        # The trailing dims of the target (all of them, or a broadcastable suffix).
        shape = target_shape if kind != "broadcast" else target_shape[data.draw(st.integers(0, 3)) :]
        array = np.asarray(data.draw(st.lists(st.integers(-99, 99), min_size=math.prod(shape),
                                              max_size=math.prod(shape)))).reshape(shape)  # fmt: skip
        if kind == "list" and array.size == 0:
            kind = "array"  # nested lists cannot spell an empty shape such as (1, 0, 1)
        value = {"list": array.tolist(), "array": array}.get(kind, oc.tensor(array, device=device))
        reference_value = torch.from_numpy(array)
    ours[key] = value
    reference[key] = reference_value
    assert ours.tolist() == reference.tolist()


def test_setitem_casts_and_broadcasts(device):
    t = oc.zeros(3, 4, dtype=oc.int32, device=device)
    t[1] = oc.tensor([1.9, -2.7, 3.2, 4.0], device=device)  # float -> int truncates
    t[:, 0] = 7
    t[2, 1:] = oc.tensor([5])
    assert t.tolist() == [[7, 0, 0, 0], [7, -2, 3, 4], [7, 5, 5, 5]]
    with pytest.raises(ValueError, match=r"\[2\] and \[4\] cannot be broadcast"):
        t[0] = oc.tensor([1, 2])
    with pytest.raises(TypeError, match="'text'"):
        t[0] = "text"


@pytest.mark.parametrize(
    ("target", "source"),
    [
        ((slice(1, None),), (slice(None, -1),)),
        ((slice(None, -1),), (slice(1, None),)),
        ((slice(None, -1, 2),), (slice(1, None, 2),)),
        ((Ellipsis,), "T"),
        ((slice(2, 5), slice(None)), (slice(0, 3), slice(None))),
    ],
)
def test_setitem_from_an_overlapping_view_matches_numpy(rng, device, target, source):
    # The source is read as it was before the assignment, as in numpy (torch refuses).
    values = rng.standard_normal((37, 37))
    t = oc.tensor(values, device=device)
    expected = values.copy()
    if source == "T":
        t[target] = t.T
        expected[target] = expected.T
    else:
        t[target] = t[source]
        expected[target] = expected[source]
    np.testing.assert_array_equal(np.asarray(t.tolist()), expected)


def test_copy_between_storages_over_the_same_memory(rng):
    # Two storages wrapping one numpy array: aliasing is a matter of addresses, not storages.
    values = rng.standard_normal(101)
    t, u = oc.from_numpy(values), oc.from_numpy(values)
    assert not t.is_alias_of(u)
    expected = values.copy()
    expected[1:] = expected[:-1].copy()
    t[1:] = u[:-1]
    np.testing.assert_array_equal(values, expected)


# item, tolist, repr ------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64", "bfloat16", "float16", "int32", "int64", "bool"])
def test_item_and_tolist_like_torch(rng, device, dtype):
    values = rng.standard_normal((3, 5)) * 100
    reference = torch.from_numpy(values).to(getattr(torch, dtype))
    ours = oc.tensor(values).to(getattr(oc, dtype)).to(device)
    assert ours.tolist() == reference.tolist()
    assert ours.T[1:, ::2].tolist() == reference.T[1:, ::2].tolist()
    for index in [(0, 0), (2, 4), (1, -2)]:
        got, want = ours[index].item(), reference[index].item()
        assert type(got) is type(want)
        assert got == want
    assert ours[1:2, 3:4].item() == reference[1:2, 3:4].item()  # one element, 2-d
    assert ours[2, 3].tolist() == reference[2, 3].tolist()  # 0-d: a Python scalar
    expected_type = {"bool": bool, "int32": int, "int64": int}.get(dtype, float)
    assert type(ours[0, 1].item()) is expected_type
    assert float(ours[0, 1]) == float(reference[0, 1])
    assert int(ours[0, 1]) == int(reference[0, 1])
    assert bool(ours[0, 1]) == bool(reference[0, 1])


def test_len_and_sizes():
    t = oc.zeros(3, 5, 7)
    assert len(t) == 3
    assert t.size() == (3, 5, 7)
    assert t.size(-1) == 7
    assert t.stride(0) == 35
    assert t.ndim == t.dim() == 3
    with pytest.raises(TypeError, match="0-d"):
        len(oc.tensor(1.0))


def test_repr(rng, device):
    # One decimal that is never 0, magnitudes within 1..99: numpy prints each as "-12.3".
    values = rng.choice([-1, 1], (2, 3)) * (rng.integers(1, 99, (2, 3)) + rng.integers(1, 10, (2, 3)) / 10)
    t = oc.tensor(values.tolist(), device=device)
    text = repr(t)
    assert text.startswith("tensor([[")
    for value in values.ravel():
        assert f"{value:.1f}" in text
    assert "dtype" not in text  # float32 is the default
    assert ("device='metal'" in text) == (device == "metal")
    assert "device='cpu'" not in text
    assert str(t) == text
    for name in ("float64", "float16", "bfloat16", "int32"):
        assert f"dtype=orchard_core.{name}" in repr(t.to(getattr(oc, name)))
    for default in (oc.tensor([1, 2]), oc.tensor([True, False])):
        assert "dtype" not in repr(default)
    assert repr(oc.tensor([3, -4])) == "tensor([ 3, -4])"
    assert repr(oc.tensor([True, False])) == "tensor([ True, False])"
    assert "size=(0, 4)" in repr(oc.zeros(0, 4))
    assert repr(oc.tensor(2.5)) == "tensor(2.5)"
    assert repr(oc.float16) == "orchard_core.float16"
