"""Binary operators with a Python number on either side: torch's results and type promotion for
wrapped numbers (a number never widens a float tensor; a float makes an integer tensor float32).
torch takes a number first in add/sub/mul/div/pow and second in the comparisons; orchard's
maximum and minimum take one on either side too (torch's want tensors), computed as torch.maximum
with the number as a 0-d tensor of the promoted dtype.
"""

from __future__ import annotations

import numpy as np
import orchard_core as oc
import pytest
import torch
from _core_helpers import OC, TORCH, assert_matches_torch, random_array

NUMBERS = [2, -3, 0.5, -1.25, True]
DTYPES = ["float32", "float64", "bfloat16", "float16", "int32", "int64"]


def _pair(rng, dtype: str, device: str):
    values = random_array(rng, (4, 7), dtype)
    theirs = torch.from_numpy(values.copy()).to(TORCH[dtype])
    ours = oc.tensor(theirs.float().numpy() if dtype in ("bfloat16", "float16") else values, device=device)
    return ours.to(OC[dtype]), theirs


EPS = {torch.float32: 2.0**-23, torch.float64: 2.0**-52, torch.bfloat16: 2.0**-8, torch.float16: 2.0**-11}


def _assert_same(ours: oc.Tensor, theirs: torch.Tensor, ulps: float = 0.0) -> None:
    """torch's dtype and shape; its values exactly, or within `ulps` (library pow differs)."""
    if theirs.dtype in (torch.bfloat16, torch.float16):
        # One rounding of the same float32 value; torch may compute a 16-bit op otherwise.
        ulps = max(ulps, 1.0)
    if ulps == 0 or not theirs.dtype.is_floating_point:
        assert_matches_torch(ours, theirs)
        return
    assert ours.dtype.name == str(theirs.dtype).removeprefix("torch.") and ours.shape == tuple(theirs.shape)
    np.testing.assert_allclose(
        ours.to(oc.float64).to("cpu").numpy(),
        theirs.double().numpy(),
        rtol=ulps * EPS[theirs.dtype],
        equal_nan=True,
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["add", "sub", "mul", "div", "pow"])
def test_arithmetic_takes_a_number_on_either_side(rng, device, name, dtype):
    x, tx = _pair(rng, dtype, device)
    for number in NUMBERS:
        if name == "pow" and dtype.startswith("int") and isinstance(number, int) and number < 0:
            continue  # integers to negative powers raise, in both
        if name == "sub" and isinstance(number, bool):
            continue
        ulps = 4.0 if name == "pow" else 0.0  # library pow may differ from torch's by an ulp or so
        _assert_same(getattr(oc, name)(x, number), getattr(torch, name)(tx, number), ulps)
        if name == "pow" and not dtype.startswith("int"):
            base = number if number > 0 else 2  # negative ** fractional is nan in both
            _assert_same(oc.pow(base, x.abs()), torch.pow(base, tx.abs()), ulps)
        elif name != "pow":
            _assert_same(getattr(oc, name)(number, x), getattr(torch, name)(number, tx))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["eq", "ne", "lt", "le", "gt", "ge"])
def test_comparisons_take_a_number_as_other(rng, device, name, dtype):
    x, tx = _pair(rng, dtype, device)
    for number in [*NUMBERS, 0]:
        assert_matches_torch(getattr(oc, name)(x, number), getattr(torch, name)(tx, number))
        assert_matches_torch(getattr(x, name)(number), getattr(tx, name)(number))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["maximum", "minimum"])
def test_maximum_minimum_take_a_number_on_either_side(rng, device, name, dtype):
    x, tx = _pair(rng, dtype, device)
    for number in [*NUMBERS, 0, 0.0]:
        promoted = torch.result_type(tx, number)
        want = getattr(torch, name)(tx.to(promoted), torch.tensor(number, dtype=promoted))
        _assert_same(getattr(oc, name)(x, number), want)
        _assert_same(getattr(oc, name)(number, x), want)
        _assert_same(getattr(x, name)(number), want)


def test_maximum_with_a_number_keeps_nan_and_has_torchs_gradient(device):
    values = np.array([-1.5, 0.0, 2.0, np.nan, 1.0, 3.0], dtype=np.float64)
    x = oc.tensor(values, device=device).requires_grad_()
    tx = torch.from_numpy(values.copy()).requires_grad_()
    out, tout = oc.maximum(x, 0.0), torch.maximum(tx, torch.tensor(0.0, dtype=torch.float64))
    assert_matches_torch(out, tout)
    out.sum().backward()
    tout.sum().backward()
    assert_matches_torch(x.grad, tx.grad)  # ties at 0 split the gradient, as torch's do
    y = oc.tensor(values, device=device).requires_grad_()
    ty = torch.from_numpy(values.copy()).requires_grad_()
    oc.minimum(1.0, y).sum().backward()
    torch.minimum(torch.tensor(1.0, dtype=torch.float64), ty).sum().backward()
    assert_matches_torch(y.grad, ty.grad)


def test_numbers_alone_or_other_objects_raise(device):
    x = oc.ones(3, device=device)
    with pytest.raises(TypeError, match="only numbers"):
        oc.maximum(1, 2.0)
    with pytest.raises(TypeError, match="only numbers"):
        oc.add(1, 2)
    with pytest.raises(TypeError, match="'a'"):
        oc.minimum(x, "a")
    with pytest.raises(TypeError):
        oc.lt(1, x)  # torch's comparisons take the tensor first
