"""orchard_core.optim and clip_grad_norm_ against torch: trajectories, state, schedules, errors."""

from __future__ import annotations

import math

import numpy as np
import orchard_core as oc
import pytest
import torch
from _core_helpers import host_values, torch_values
from orchard_core import nn, optim
from orchard_core.nn import utils as clip_utils
from orchard_core.optim import lr_scheduler

SHAPES = [(5, 3), (7,), (1, 9)]


def _problem(rng):
    """Starting values and the linear coefficients of loss = sum(a * p) + sum(p * p) / 2."""
    starts = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    coefs = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    return starts, coefs


def _run(lib, make_opt, starts, coefs, steps: int, device: str = "cpu", groups=None):
    """Parameter values after each of `steps` optimizer steps, with autograd gradients."""
    if lib is torch:
        params = [torch.tensor(s, requires_grad=True) for s in starts]
        consts = [torch.tensor(c) for c in coefs]
    else:
        params = [nn.Parameter(oc.tensor(s).to(device)) for s in starts]
        consts = [oc.tensor(c).to(device) for c in coefs]
    opt = make_opt(params if groups is None else groups(params))
    trajectory = []
    for _ in range(steps):
        opt.zero_grad()
        loss = sum(((p * a).sum() + (p * p).sum() * 0.5 for p, a in zip(params, consts, strict=True)), 0.0)
        loss.backward()
        opt.step()
        values = [torch_values(p) if lib is torch else host_values(p) for p in params]
        trajectory.append(values)
    return trajectory, opt, params


def _assert_same_trajectory(ours, theirs, rtol, atol):
    for step, (mine, ref) in enumerate(zip(ours, theirs, strict=True)):
        for i, (a, b) in enumerate(zip(mine, ref, strict=True)):
            np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=f"step {step}, parameter {i}")


SGD_CONFIGS = [
    {"lr": 0.1},
    {"lr": 0.05, "momentum": 0.9},
    {"lr": 0.05, "momentum": 0.9, "dampening": 0.3, "weight_decay": 0.01},
    {"lr": 0.05, "momentum": 0.8, "nesterov": True, "weight_decay": 0.1},
    {"lr": 0.05, "momentum": 0.5, "maximize": True},
]


@pytest.mark.parametrize("config", SGD_CONFIGS, ids=str)
def test_sgd_trajectory_matches_torch(rng, config):
    starts, coefs = _problem(rng)
    theirs, _, _ = _run(torch, lambda p: torch.optim.SGD(p, **config), starts, coefs, 5)
    ours, _, _ = _run(oc, lambda p: optim.SGD(p, **config), starts, coefs, 5)
    # torch fuses add_(g, alpha=-lr) into one rounding, orchard rounds g * -lr first: a few ulps.
    _assert_same_trajectory(ours, theirs, rtol=1e-6, atol=1e-6)


ADAM_CONFIGS = [
    ("AdamW", {"lr": 0.01}),
    ("AdamW", {"lr": 0.02, "betas": (0.8, 0.95), "eps": 1e-6, "weight_decay": 0.1}),
    ("AdamW", {"lr": 0.01, "amsgrad": True}),
    ("AdamW", {"lr": 0.01, "maximize": True, "weight_decay": 0.0}),
    ("Adam", {"lr": 0.01, "weight_decay": 0.05}),
]


@pytest.mark.parametrize(("name", "config"), ADAM_CONFIGS, ids=str)
def test_adam_trajectory_matches_torch(rng, device, name, config):
    starts, coefs = _problem(rng)
    theirs, torch_opt, _ = _run(torch, lambda p: getattr(torch.optim, name)(p, **config), starts, coefs, 6)
    ours, our_opt, params = _run(oc, lambda p: getattr(optim, name)(p, **config), starts, coefs, 6, device)
    _assert_same_trajectory(ours, theirs, rtol=2e-6, atol=1e-7)
    state = our_opt.state[params[0]]
    assert state["step"].item() == 6.0 and str(state["step"].device) == "cpu"
    assert str(state["exp_avg"].device) == device
    ref_state = torch_opt.state[torch_opt.param_groups[0]["params"][0]]
    np.testing.assert_allclose(
        host_values(state["exp_avg_sq"]), torch_values(ref_state["exp_avg_sq"]), rtol=2e-6, atol=1e-9
    )


def test_param_groups_take_their_own_options(rng):
    starts, coefs = _problem(rng)

    def groups(params):
        return [{"params": params[:2]}, {"params": params[2:], "lr": 0.3, "weight_decay": 0.5}]

    theirs, _, _ = _run(torch, lambda g: torch.optim.AdamW(g, lr=0.01), starts, coefs, 3, groups=groups)
    ours, opt, _ = _run(oc, lambda g: optim.AdamW(g, lr=0.01), starts, coefs, 3, groups=groups)
    _assert_same_trajectory(ours, theirs, rtol=2e-6, atol=1e-7)
    assert [g["lr"] for g in opt.param_groups] == [0.01, 0.3]
    assert opt.param_groups[1]["betas"] == (0.9, 0.999)


def test_optimizer_state_dict_resumes_the_same_trajectory(rng):
    starts, coefs = _problem(rng)
    straight, _, _ = _run(oc, lambda p: optim.AdamW(p, lr=0.02), starts, coefs, 6)
    _, opt, params = _run(oc, lambda p: optim.AdamW(p, lr=0.02), starts, coefs, 3)
    saved = opt.state_dict()
    assert sorted(saved["state"]) == [0, 1, 2] and saved["param_groups"][0]["params"] == [0, 1, 2]
    assert set(saved["state"][0]) == {"step", "exp_avg", "exp_avg_sq"}
    resumed = [nn.Parameter(p.detach().clone()) for p in params]
    opt2 = optim.AdamW(resumed, lr=0.5)
    opt2.load_state_dict(saved)
    assert opt2.param_groups[0]["lr"] == 0.02 and opt2.param_groups[0]["params"][0] is resumed[0]
    consts = [oc.tensor(c) for c in coefs]
    for step in range(3):
        opt2.zero_grad()
        sum(
            ((p * a).sum() + (p * p).sum() * 0.5 for p, a in zip(resumed, consts, strict=True)), 0.0
        ).backward()
        opt2.step()
        for i, p in enumerate(resumed):
            np.testing.assert_array_equal(host_values(p), straight[3 + step][i])
    with pytest.raises(ValueError, match="2 parameter groups"):
        opt2.load_state_dict({**saved, "param_groups": saved["param_groups"] * 2})


def test_optimizer_rejects_bad_arguments():
    p = nn.Parameter(oc.zeros(2))
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(TypeError, match="got a Tensor"):
        optim.SGD(p, lr=0.1)
    with pytest.raises(ValueError, match="Invalid learning rate: -1"):
        optim.AdamW([p], lr=-1)
    with pytest.raises(ValueError, match=r"Invalid beta parameter at index 1: 1\.0"):
        optim.AdamW([p], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="non-leaf"):
        optim.SGD([p * 2], lr=0.1)
    with pytest.raises(ValueError, match="more than one parameter group"):
        optim.SGD([{"params": [p]}, {"params": [p]}], lr=0.1)
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(TypeError, match="ordered collections"):
        optim.SGD([{"params": {p}}], lr=0.1)


def test_optimizer_zero_grad():
    p = nn.Parameter(oc.ones(3))
    opt = optim.SGD([p], lr=0.1)
    p.grad = oc.ones(3)
    opt.zero_grad(set_to_none=False)
    assert (host_values(p.grad) == 0).all()
    opt.zero_grad()
    assert p.grad is None
    opt.step()  # parameters without gradients are left alone
    assert (host_values(p) == 1).all()


def _lr_sequences(lib, make, steps=25):
    params = [torch.zeros(1, requires_grad=True)] if lib is torch else [nn.Parameter(oc.zeros(1))]
    other = [torch.zeros(1, requires_grad=True)] if lib is torch else [nn.Parameter(oc.zeros(1))]
    opt_cls = torch.optim.SGD if lib is torch else optim.SGD
    opt = opt_cls([{"params": params}, {"params": other, "lr": 0.3}], lr=0.1)
    sched = make(lib, opt)
    seen = [sched.get_last_lr()]
    for _ in range(steps):
        opt.step()
        sched.step()
        seen.append(sched.get_last_lr())
        assert [g["lr"] for g in opt.param_groups] == seen[-1]
    return seen, sched


def _sched(lib):
    return torch.optim.lr_scheduler if lib is torch else lr_scheduler


SCHEDULES = {
    "lambda": lambda lib, opt: _sched(lib).LambdaLR(opt, lambda e: 0.9**e),
    "lambda_per_group": lambda lib, opt: _sched(lib).LambdaLR(opt, [lambda e: 1 / (e + 1), lambda e: 0.5]),
    "linear": lambda lib, opt: _sched(lib).LinearLR(opt, start_factor=0.1, total_iters=7),
    "linear_down": lambda lib, opt: _sched(lib).LinearLR(
        opt, start_factor=1.0, end_factor=0.2, total_iters=4
    ),
    "cosine": lambda lib, opt: _sched(lib).CosineAnnealingLR(opt, T_max=10, eta_min=0.001),
    "warmup_cosine": lambda lib, opt: _sched(lib).SequentialLR(
        opt,
        [
            _sched(lib).LinearLR(opt, start_factor=0.01, total_iters=5),
            _sched(lib).CosineAnnealingLR(opt, T_max=15, eta_min=1e-4),
        ],
        milestones=[5],
    ),
    "three_phases": lambda lib, opt: _sched(lib).SequentialLR(
        opt,
        [
            _sched(lib).LinearLR(opt, start_factor=0.5, total_iters=3),
            _sched(lib).LambdaLR(opt, lambda e: 1.0),
            _sched(lib).CosineAnnealingLR(opt, T_max=8),
        ],
        milestones=[3, 9],
    ),
}


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_scheduler_lr_sequence_equals_torch(name):
    ours, _ = _lr_sequences(oc, SCHEDULES[name])
    theirs, _ = _lr_sequences(torch, SCHEDULES[name])
    assert ours == theirs


def test_scheduler_state_dict_round_trip():
    make = SCHEDULES["warmup_cosine"]
    _, sched = _lr_sequences(oc, make, steps=7)
    saved = sched.state_dict()
    assert "optimizer" not in saved and len(saved["_schedulers"]) == 2
    p = nn.Parameter(oc.zeros(1))
    opt = optim.SGD([{"params": [p]}, {"params": [nn.Parameter(oc.zeros(1))], "lr": 0.3}], lr=0.1)
    fresh = make(oc, opt)
    fresh.load_state_dict(saved)
    assert (
        fresh.last_epoch == sched.last_epoch
        and fresh._schedulers[1].last_epoch == sched._schedulers[1].last_epoch
    )
    lam = lr_scheduler.LambdaLR(opt, lambda e: 1.0)
    assert lam.state_dict()["lr_lambdas"] == [None, None]


def _clip_inputs(rng, lib):
    arrays = [rng.standard_normal(s).astype(np.float32) * 3 for s in SHAPES]
    if lib is torch:
        params = [torch.zeros(a.shape, requires_grad=True) for a in arrays]
        for p, a in zip(params, arrays, strict=True):
            p.grad = torch.tensor(a)
    else:
        params = [nn.Parameter(oc.zeros(*a.shape)) for a in arrays]
        for p, a in zip(params, arrays, strict=True):
            p.grad = oc.tensor(a)
    return params


@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf, -math.inf, 0.0, 3.0])
@pytest.mark.parametrize("max_norm", [0.5, 1e4])
@pytest.mark.parametrize("group_cap", [1 << 24, 16])
def test_clip_grad_norm_matches_torch(seed, monkeypatch, norm_type, max_norm, group_cap):
    """group_cap 16 splits SHAPES' gradients into a group of one and one of two."""
    monkeypatch.setattr(clip_utils, "_NORM_GROUP_ELEMENTS", group_cap)
    ours = _clip_inputs(np.random.default_rng(seed), oc)
    theirs = _clip_inputs(np.random.default_rng(seed), torch)
    total = nn.utils.clip_grad_norm_(ours, max_norm, norm_type=norm_type)
    expected = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type=norm_type)
    assert isinstance(total, oc.Tensor) and total.shape == () and total.dtype == oc.float32
    np.testing.assert_allclose(total.item(), expected.item(), rtol=1e-6)
    for p, q in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(host_values(p.grad), torch_values(q.grad), rtol=2e-6, atol=1e-7)


HOST_READS = ["item", "__float__", "__int__", "__bool__", "tolist", "numpy", "__array__"]


def test_clip_grad_norm_reads_nothing_back_to_the_host(rng, monkeypatch, device):
    params = _clip_inputs(rng, oc)
    for p in params:
        grad, p.grad = p.grad, None
        p.data = p.data.to(device)
        p.grad = grad.to(device)
    reads = []
    for name in HOST_READS:
        original = getattr(oc.Tensor, name)

        def counted(self, *args, _name=name, _original=original, **kwargs):
            reads.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(oc.Tensor, name, counted)
    total = nn.utils.clip_grad_norm_(params, 0.1)
    assert reads == []
    nn.utils.clip_grad_norm_(params, 0.1, error_if_nonfinite=True)
    assert reads == ["item"]  # the one sync the check needs
    monkeypatch.undo()
    assert str(total.device) == device and total.item() > 0.1


def test_clip_grad_norm_edge_cases():
    assert nn.utils.clip_grad_norm_([nn.Parameter(oc.zeros(2))], 1.0).item() == 0.0  # no grads
    p = nn.Parameter(oc.zeros(2))
    p.grad = oc.tensor([math.inf, 1.0])
    with pytest.raises(RuntimeError, match="non-finite"):
        nn.utils.clip_grad_norm_(p, 1.0, error_if_nonfinite=True)
