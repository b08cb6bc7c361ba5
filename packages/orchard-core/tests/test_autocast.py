"""orchard_core.autocast against torch.autocast: which ops cast to what, gradients in the
parameters' dtype, nesting, and bad arguments."""

from __future__ import annotations

import numpy as np
import orchard_core as oc
import pytest
import torch
from _core_helpers import random_array

F = oc.nn.functional


def test_products_run_in_bfloat16_and_norms_in_float32(rng, device):
    device_type = oc.device(device).type
    x = oc.tensor(random_array(rng, (5, 8), "float32"), device=device)
    w = oc.tensor(random_array(rng, (3, 8), "float32"), device=device)
    with oc.autocast(device_type):
        projected = F.linear(x, w)
        product = oc.matmul(x, w.T)
        normed = F.layer_norm(projected, 3)
        probabilities = F.softmax(projected, -1)
        loss = F.cross_entropy(projected, oc.tensor([0, 2, 1, 1, 0], device=device))
        residual = x[:, :3] + projected  # promotes: float32 + bfloat16
    assert projected.dtype == product.dtype == oc.bfloat16
    assert normed.dtype == probabilities.dtype == loss.dtype == residual.dtype == oc.float32
    # The casts autocast makes, by hand, give the same bits.
    by_hand = F.linear(x.to(oc.bfloat16), w.to(oc.bfloat16))
    np.testing.assert_array_equal(
        projected.to("cpu").to(oc.float32).numpy(), by_hand.to("cpu").to(oc.float32).numpy()
    )
    # torch's under its autocast: both round the operands to bfloat16, sum 8 products in float32
    # (in their own orders) and round to bfloat16 once.
    tx, tw = (torch.from_numpy(t.to("cpu").numpy()) for t in (x, w))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        want = torch.nn.functional.linear(tx, tw).double().numpy()
    rounded = [t.bfloat16().double().numpy() for t in (tx, tw)]
    magnitude = np.abs(rounded[0]) @ np.abs(rounded[1]).T
    bound = 2.0**-7 * np.abs(want) + 2 * 8 * 2.0**-24 * magnitude
    have = projected.to("cpu").to(oc.float64).numpy()
    assert np.all(np.abs(have - want) <= bound), np.max(np.abs(have - want) - bound)


def test_gradients_reach_float32_parameters(rng, device):
    """Under autocast, a step is the step written with the casts by hand: the same values and
    gradients, bit for bit, landing on the float32 parameters in float32."""
    layer = oc.nn.Linear(8, 4).to(device)
    by_hand = oc.nn.Linear(8, 4).to(device)
    by_hand.load_state_dict(layer.state_dict())
    x = oc.tensor(random_array(rng, (6, 8), "float32"), device=device)
    target = oc.tensor([0, 1, 2, 3, 0, 1], device=device)
    with oc.autocast(oc.device(device).type):
        F.cross_entropy(layer(x), target).backward()
    low = [t.to(oc.bfloat16) for t in (x, by_hand.weight, by_hand.bias)]
    F.cross_entropy(F.linear(*low).to(oc.float32), target).backward()
    for ours, theirs in ((layer.weight, by_hand.weight), (layer.bias, by_hand.bias)):
        assert ours.grad.dtype == oc.float32
        np.testing.assert_array_equal(ours.grad.to("cpu").numpy(), theirs.grad.to("cpu").numpy())


def test_contexts_nest_and_leave_other_devices_alone(rng):
    x = oc.tensor(random_array(rng, (2, 4), "float32"))
    with oc.autocast("cpu"):
        assert oc.matmul(x, x.T).dtype == oc.bfloat16
        with oc.autocast("cpu", enabled=False):
            assert oc.matmul(x, x.T).dtype == oc.float32
        with oc.autocast("cpu", dtype=oc.float16):
            assert F.layer_norm(x, 4).dtype == oc.float32
        assert oc.matmul(x, x.T).dtype == oc.bfloat16
    with oc.autocast("cuda"):  # a CPU tensor is not cast by a CUDA context
        assert oc.matmul(x, x.T).dtype == oc.float32
    assert oc.matmul(x, x.T).dtype == oc.float32


@pytest.mark.parametrize(
    ("args", "message"),
    [(("gpu",), "device_type must be 'cpu', 'cuda' or 'metal', got 'gpu'"),
     (("cpu", oc.float32), "dtype must be orchard_core.bfloat16 or float16, got orchard_core.float32")],
)  # fmt: skip
def test_bad_arguments_are_named(args, message):
    with pytest.raises(ValueError, match=message), oc.autocast(*args):
        pass
