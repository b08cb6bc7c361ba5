"""torch's *_like creation functions, flatten, unflatten and unbind against torch: shapes, dtypes,
devices, keywords, views (shared memory where torch gives a view), gradients and errors."""

from __future__ import annotations

import numpy as np
import orchard_core as oc
import pytest
import torch
from _core_helpers import assert_matches_torch, random_pair

LIKE_DTYPES = ["float32", "float64", "bfloat16", "float16", "int32", "int64", "bool"]


@pytest.mark.parametrize("dtype", LIKE_DTYPES)
def test_like_functions_take_input_shape_dtype_and_device(rng, device, dtype):
    x, tx = random_pair(rng, (3, 5, 2), dtype, device)
    assert_matches_torch(oc.zeros_like(x), torch.zeros_like(tx))
    assert_matches_torch(oc.ones_like(x), torch.ones_like(tx))
    assert_matches_torch(oc.full_like(x, 7), torch.full_like(tx, 7))
    for fn in (oc.zeros_like, oc.ones_like, oc.empty_like):
        made = fn(x)
        assert made.shape == x.shape and made.dtype == x.dtype and made.device == x.device
    if dtype != "bool":
        drawn = oc.randint_like(x, 3, 9)
        assert drawn.dtype == x.dtype and drawn.device == x.device and drawn.shape == x.shape
        values = drawn.to("cpu").to(oc.float64).numpy()
        assert ((values >= 3) & (values < 9)).all() and np.array_equal(values, np.floor(values))
        assert (oc.randint_like(x, 4).to("cpu").to(oc.float64).numpy() < 4).all()
    if dtype in ("float32", "float64", "bfloat16", "float16"):
        for fn in (oc.rand_like, oc.randn_like):
            drawn = fn(x)
            assert drawn.dtype == x.dtype and drawn.device == x.device and drawn.shape == x.shape
        assert (oc.rand_like(x).to("cpu").to(oc.float64).numpy() < 1).all()


def test_like_keywords_override_dtype_device_and_set_requires_grad(rng, device):
    x, tx = random_pair(rng, (4, 3), "int64", device)
    for name, extra in [("zeros_like", ()), ("ones_like", ()), ("full_like", (2.5,)), ("empty_like", ())]:
        made = getattr(oc, name)(x, *extra, dtype=oc.float64, requires_grad=True)
        want = getattr(torch, name)(tx, *extra, dtype=torch.float64, requires_grad=True)
        assert made.dtype == oc.float64 and made.requires_grad and made.is_leaf
        assert made.shape == tuple(want.shape) and made.device == x.device
        if name != "empty_like":
            assert_matches_torch(made.detach(), want.detach())
    assert oc.zeros_like(x, device="cpu").device == oc.device("cpu")
    assert oc.randn_like(x, dtype=oc.float32).dtype == oc.float32
    assert oc.rand_like(x, dtype=oc.bfloat16, requires_grad=True).requires_grad


def test_full_like_keeps_input_dtype_as_torch(device):
    x = oc.ones(2, 2, dtype=oc.int32, device=device)
    assert_matches_torch(oc.full_like(x, 3.7), torch.full_like(torch.ones(2, 2, dtype=torch.int32), 3.7))


FLATTEN_CASES = [
    ((2, 3, 4), 0, -1),
    ((2, 3, 4), 1, 2),
    ((2, 3, 4), -2, -1),
    ((2, 3, 4), 1, 1),
    ((5,), 0, 0),
    ((), 0, -1),
]


@pytest.mark.parametrize(("shape", "start", "end"), FLATTEN_CASES, ids=str)
def test_flatten_matches_torch_and_views_when_torch_does(rng, device, shape, start, end):
    x, tx = random_pair(rng, shape, "float32", device)
    assert_matches_torch(oc.flatten(x, start, end), torch.flatten(tx, start, end), strides=True)
    assert_matches_torch(x.flatten(start_dim=start, end_dim=end), tx.flatten(start_dim=start, end_dim=end))
    flat = x.flatten(start, end)
    assert flat.data_ptr() == x.data_ptr()  # contiguous input: a view
    if len(shape) == 3:
        # Merging dims a transpose separated needs a copy, in torch too.
        t, tt = x.transpose(0, 2), tx.transpose(0, 2)
        assert_matches_torch(t.flatten(), tt.flatten())
        assert_matches_torch(t.flatten(1), tt.flatten(1))
        assert (t.flatten(1).data_ptr() == t.data_ptr()) == (tt.flatten(1).data_ptr() == tt.data_ptr())


@pytest.mark.parametrize(
    ("shape", "dim", "sizes"), [((6, 4), 0, (2, 3)), ((6, 4), -1, (2, -1)), ((6,), 0, (1, 6, 1))]
)
def test_unflatten_matches_torch_as_a_view(rng, device, shape, dim, sizes):
    x, tx = random_pair(rng, shape, "float64", device)
    got, want = oc.unflatten(x, dim, sizes), torch.unflatten(tx, dim, sizes)
    assert_matches_torch(got, want, strides=True)
    assert got.data_ptr() == x.data_ptr()
    # A transposed input: the same dim, now strided, splits as a view too.
    flipped = len(shape) - 1 - dim % len(shape)
    reverse = tuple(reversed(range(len(shape))))
    t, tt = x.permute(*reverse), tx.permute(*reverse)
    got = t.unflatten(flipped, sizes)
    assert_matches_torch(got, tt.unflatten(flipped, sizes), strides=True)
    assert got.data_ptr() == t.data_ptr()


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_unbind_gives_torchs_views(rng, device, dim):
    x, tx = random_pair(rng, (3, 4, 2), "bfloat16", device)
    got, want = oc.unbind(x, dim), torch.unbind(tx, dim)
    assert isinstance(got, tuple) and len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert_matches_torch(g, w, strides=True)
    got[0].fill_(1.5)  # a view: writes reach x
    want[0].fill_(1.5)
    assert_matches_torch(x, tx)
    assert len(x.unbind(dim)) == tx.shape[dim]


def test_flatten_unflatten_unbind_are_differentiable(rng):
    values = rng.standard_normal((3, 4, 2))
    x = oc.tensor(values).requires_grad_()
    tx = torch.from_numpy(values.copy()).requires_grad_()
    weights = rng.standard_normal(24)

    def loss(t, lib):
        pieces = lib.unbind(t.flatten(1).unflatten(1, (2, 4)), 1)
        return ((pieces[0] * 2.0 + pieces[1] ** 2).flatten() * lib.tensor(weights[:12])).sum()

    loss(x, oc).backward()
    loss(tx, torch).backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-12)


def test_bad_arguments_raise_naming_the_value(device):
    x = oc.ones(2, 3, device=device)
    with pytest.raises(IndexError, match="5"):
        oc.flatten(x, 5)
    with pytest.raises(ValueError, match="start_dim 1 comes after end_dim 0"):
        oc.flatten(x, 1, 0)
    with pytest.raises(ValueError, match=r"\[2, 2\].*\(3\)"):
        oc.unflatten(x, 1, (2, 2))
    with pytest.raises(ValueError, match=r"\[-1, -1\]"):
        oc.unflatten(x, 1, (-1, -1))
    with pytest.raises(IndexError, match="-3"):
        oc.unbind(x, -3)
    with pytest.raises(IndexError, match="0-d"):
        oc.unbind(oc.ones((), device=device))
