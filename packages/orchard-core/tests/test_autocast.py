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
    # torch's under its autocast: both round the operands to bfloat16, sum in float32 and round
    # once (the sums' order may differ, so a rounding apart at most).
    tx, tw = (torch.from_numpy(t.to("cpu").numpy()) for t in (x, w))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        want = torch.nn.functional.linear(tx, tw)
    have = projected.to("cpu").to(oc.float32).numpy()
    np.testing.assert_allclose(have, want.float().numpy(), rtol=2.0**-7, atol=1e-6)


def test_gradients_reach_float32_parameters(rng, device):
    layer = oc.nn.Linear(8, 4).to(device)
    x = oc.tensor(random_array(rng, (6, 8), "float32"), device=device)
    with oc.autocast(oc.device(device).type):
        loss = F.cross_entropy(layer(x), oc.tensor([0, 1, 2, 3, 0, 1], device=device))
    loss.backward()
    assert layer.weight.dtype == layer.weight.grad.dtype == oc.float32
    assert layer.bias.grad.dtype == oc.float32
    # Against the same step without autocast: bfloat16 operands, so about 2^-8 apart.
    reference = oc.nn.Linear(8, 4).to(device)
    reference.load_state_dict(layer.state_dict())
    F.cross_entropy(reference(x), oc.tensor([0, 1, 2, 3, 0, 1], device=device)).backward()
    np.testing.assert_allclose(
        layer.weight.grad.to("cpu").numpy(), reference.weight.grad.to("cpu").numpy(), rtol=0.05, atol=0.02
    )


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
