"""optim.Adam's fused step (``_core.adam_step_``) against the unfused in-place ops it replaces:
the same bits, in every floating dtype, and the errors of bad operands."""

from __future__ import annotations

import numpy as np
import orchard_core as oc
import pytest
from _core_helpers import FLOAT_DTYPES, host_values
from orchard_core import nn, optim
from orchard_core.optim import adam
from orchard_core.profiler import profile

# Odd sizes: no multiple of a vector width, a pack or a block; 1000003 splits over threads.
SHAPES = [(37, 41), (1,), (1000003,)]

# (lr, betas, eps, weight_decay, decoupled, maximize)
CONFIGS = [
    (1e-3, (0.9, 0.999), 1e-8, 0.0, False, False),
    (3e-2, (0.8, 0.95), 1e-6, 0.1, True, False),
    (1e-2, (0.9, 0.999), 1e-8, 0.05, False, False),
    (2e-2, (0.85, 0.99), 1e-5, 0.2, True, True),
    (1e-2, (0.9, 0.98), 1e-7, 0.01, False, True),
    (5e-3, (0.7, 0.9), 1e-3, 0.0, True, True),
]
STEPS = 3


def _tensors(rng, shape, dtype, device):
    """param, grad, exp_avg and exp_avg_sq of `dtype`, with values of mixed signs and magnitudes."""
    scale = np.exp(rng.uniform(-6, 3, size=shape))
    values = [rng.standard_normal(shape) * scale for _ in range(3)]
    values.append(np.abs(rng.standard_normal(shape)) * scale**2)  # exp_avg_sq is never negative
    return [oc.tensor(v.astype(np.float32)).to(dtype).to(device) for v in values]


def _numbers(config, step):
    """adam.py's host arithmetic: the keyword arguments of adam_step_ at `step`."""
    lr, (beta1, beta2), eps, weight_decay, decoupled, maximize = config
    return {
        "lr": lr,
        "beta1": beta1,
        "beta2": beta2,
        "eps": eps,
        "weight_decay": weight_decay,
        "decoupled_weight_decay": decoupled,
        "maximize": maximize,
        "step_size": lr / (1 - beta1**step),
        "bias_correction2_sqrt": (1 - beta2**step) ** 0.5,
    }


def _unfused_step(param, grad, exp_avg, exp_avg_sq, n):
    """The in-place ops optim.Adam issued for one parameter before the fused kernel."""
    if n["maximize"]:
        grad = -grad
    if n["weight_decay"] != 0:
        if n["decoupled_weight_decay"]:
            param.mul_(1 - n["lr"] * n["weight_decay"])
        else:
            grad = grad + param * n["weight_decay"]
    exp_avg.lerp_(grad, 1 - n["beta1"])
    exp_avg_sq.mul_(n["beta2"]).addcmul_(grad, grad, value=1 - n["beta2"])
    denom = exp_avg_sq.sqrt()
    denom.div_(n["bias_correction2_sqrt"]).add_(n["eps"])
    param.addcdiv_(exp_avg, denom, value=-n["step_size"])


def _bits(t):
    """The tensor's bits (bfloat16 widened to float32 exactly), so that -0.0 and 0.0 differ; NaN
    as one pattern: which sign and payload a NaN gets is the instruction's the compiler picks (x86's
    invalid-operation NaN is negative), in the unfused ops as in the fused one."""
    values = host_values(t)
    return np.where(np.isnan(values), values.dtype.type(np.nan), values).view(f"u{values.itemsize}")


def _assert_same_bits(fused, unfused, what):
    for name, a, b in zip(("param", "exp_avg", "exp_avg_sq"), fused, unfused, strict=True):
        np.testing.assert_array_equal(_bits(a), _bits(b), err_msg=f"{name}, {what}")


def _assert_steps_agree(param, grad, exp_avg, exp_avg_sq, config, what: str) -> None:
    """STEPS fused steps against STEPS unfused ones from copies of the same tensors, bit for bit."""
    fused = [param.clone(), exp_avg.clone(), exp_avg_sq.clone()]
    unfused = [param.clone(), exp_avg.clone(), exp_avg_sq.clone()]
    for step in range(1, STEPS + 1):
        numbers = _numbers(config, step)
        oc._core.adam_step_(fused[0], grad, fused[1], fused[2], **numbers)
        _unfused_step(unfused[0], grad, unfused[1], unfused[2], numbers)
        _assert_same_bits(fused, unfused, f"step {step}{what}")


@pytest.mark.parametrize("config", CONFIGS, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_adam_step_has_the_bits_of_the_unfused_ops(rng, device, dtype, shape, config):
    if not oc.supports(device, "adam_step", dtype):
        pytest.skip(f"{device} has no adam_step kernel for {dtype}: optim.Adam runs the unfused ops there")
    param, grad, exp_avg, exp_avg_sq = _tensors(rng, shape, dtype, device)
    _assert_steps_agree(param, grad, exp_avg, exp_avg_sq, config, "")


@pytest.mark.parametrize("config", CONFIGS, ids=str)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_adam_step_keeps_the_bits_of_special_values(rng, device, dtype, config):
    """Zeros of both signs, infinities, NaN, values float16 overflows or flushes to subnormals."""
    if not oc.supports(device, "adam_step", dtype):
        pytest.skip(f"{device} has no adam_step kernel for {dtype}")
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 7e4, -7e4, 3e-8, -1e-6, 6e-5, 1e30, 1.0])
    n = len(special)
    values = [rng.permutation(special) for _ in range(3)] + [np.abs(rng.permutation(special))]
    param, grad, exp_avg, exp_avg_sq = [oc.tensor(v.astype(np.float32)).to(dtype).to(device) for v in values]
    _assert_steps_agree(param, grad, exp_avg, exp_avg_sq, config, f" of {n} special values")


def test_adam_step_reads_strided_and_broadcast_operands(rng, device):
    """Transposed state and an expanded gradient (stride 0) walk like contiguous ones."""
    param, grad, exp_avg, exp_avg_sq = _tensors(rng, (41, 37), "float32", device)
    grad = grad[:1].expand(41, 37)
    views = [param.T, exp_avg.T, exp_avg_sq.T]
    unfused = [t.clone() for t in views]
    n = _numbers(CONFIGS[3], 2)
    oc._core.adam_step_(views[0], grad.T, views[1], views[2], **n)
    _unfused_step(unfused[0], grad.T, unfused[1], unfused[2], n)
    _assert_same_bits(views, unfused, "transposed")


def _trajectory(rng_seed, dtype, device, make_opt, steps=4):
    """Parameters and state after each step of a small model, gradients from autograd."""
    rng = np.random.default_rng(rng_seed)
    shapes = [(37, 41), (41,), (1,)]
    params = [
        nn.Parameter(oc.tensor(rng.standard_normal(s).astype(np.float32)).to(dtype).to(device))
        for s in shapes
    ]
    targets = [oc.tensor(rng.standard_normal(s).astype(np.float32)).to(dtype).to(device) for s in shapes]
    opt = make_opt(params)
    seen = []
    for _ in range(steps):
        opt.zero_grad()
        sum((((p - t) * (p - t)).sum() for p, t in zip(params, targets, strict=True)), 0.0).backward()
        opt.step()
        for p in params:
            state = opt.state[p]
            seen += [host_values(p), host_values(state["exp_avg"]), host_values(state["exp_avg_sq"])]
    return seen


@pytest.mark.parametrize(
    ("name", "config"),
    [
        ("AdamW", {"lr": 0.01}),
        ("AdamW", {"lr": 0.02, "betas": (0.8, 0.95), "eps": 1e-6, "weight_decay": 0.1, "maximize": True}),
        ("Adam", {"lr": 0.01, "weight_decay": 0.05}),
        ("Adam", {"lr": 0.01, "maximize": True, "foreach": True}),
    ],
    ids=str,
)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_optimizer_step_is_the_same_fused_or_not(seed, device, monkeypatch, dtype, name, config):
    def make(params):
        return getattr(optim, name)(params, **config)

    fused = _trajectory(seed, dtype, device, make)
    monkeypatch.setattr(adam._core, "supports", lambda *args: False)  # the unfused ops
    unfused = _trajectory(seed, dtype, device, make)
    for i, (a, b) in enumerate(zip(fused, unfused, strict=True)):
        np.testing.assert_array_equal(a, b, err_msg=f"value {i}")


def test_adam_is_one_fused_op_per_parameter(rng):
    params = [nn.Parameter(oc.tensor(rng.standard_normal(s).astype(np.float32))) for s in ((5, 3), (3,))]
    opt = optim.Adam(params, lr=0.1, weight_decay=0.1)
    sum((p * p).sum() for p in params).backward()
    with profile() as prof:
        opt.step()
    names = [e.name for e in prof.events()]
    assert names.count("adam_step_") == 2
    assert not {"lerp_", "addcmul_", "addcdiv_", "sqrt", "div_"} & set(names)


def test_amsgrad_keeps_the_unfused_ops(rng):
    param = nn.Parameter(oc.tensor(rng.standard_normal((4, 3)).astype(np.float32)))
    opt = optim.AdamW([param], lr=0.1, amsgrad=True)
    (param * param).sum().backward()
    with profile() as prof:
        opt.step()
    names = [e.name for e in prof.events()]
    assert "adam_step_" not in names and names.count("lerp_") == 1


def _operands(shape=(4, 3), dtype="float32"):
    return [oc.zeros(*shape, dtype=dtype) for _ in range(4)]


def test_adam_step_refuses_bad_operands():
    n = _numbers(CONFIGS[1], 1)
    param, grad, exp_avg, exp_avg_sq = _operands()
    with pytest.raises(ValueError, match=r"shape \[4, 3\] for exp_avg_sq but got shape \[3, 4\]"):
        oc._core.adam_step_(param, grad, exp_avg, oc.zeros(3, 4), **n)
    with pytest.raises(ValueError, match=r"shape \[4, 3\] for grad but got shape \[3\]"):
        oc._core.adam_step_(param, oc.zeros(3), exp_avg, exp_avg_sq, **n)
    with pytest.raises(TypeError, match="dtype float32 for exp_avg but got dtype bfloat16"):
        oc._core.adam_step_(param, grad, oc.zeros(4, 3, dtype=oc.bfloat16), exp_avg_sq, **n)
    with pytest.raises(TypeError, match="floating-point param, got dtype int64"):
        oc._core.adam_step_(*_operands(dtype="int64"), **n)
    with pytest.raises(ValueError, match="exp_avg and exp_avg_sq share memory"):
        oc._core.adam_step_(param, grad, exp_avg, exp_avg, **n)
    with pytest.raises(ValueError, match="param and grad share memory"):
        oc._core.adam_step_(param, param, exp_avg, exp_avg_sq, **n)
    with pytest.raises(ValueError, match="several elements at one memory location"):
        oc._core.adam_step_(oc.zeros(1, 3).expand(4, 3), grad, exp_avg, exp_avg_sq, **n)
    with pytest.raises(ValueError, match="cannot be converted to float16"):  # as mul_(1e6) would
        oc._core.adam_step_(*_operands(dtype="float16"), **{**n, "eps": 1e6})
    leaf = nn.Parameter(oc.zeros(4, 3))
    with pytest.raises(RuntimeError, match="under no_grad"):
        oc._core.adam_step_(leaf, grad, exp_avg, exp_avg_sq, **n)


def test_adam_step_refuses_tensors_on_two_devices(monkeypatch):
    monkeypatch.setenv("ORCHARD_METAL_FALLBACK", "cpu")  # a second device backed by host memory
    param, grad, exp_avg, exp_avg_sq = _operands()
    with pytest.raises(ValueError, match="param on cpu and exp_avg on metal"):
        oc._core.adam_step_(param, grad, exp_avg.to("metal"), exp_avg_sq, **_numbers(CONFIGS[0], 1))


def test_metal_has_no_adam_step_kernel(monkeypatch):
    """The stand-in and the real Metal backend alike: optim.Adam takes the unfused ops there."""
    monkeypatch.setenv("ORCHARD_METAL_FALLBACK", "cpu")
    assert not oc.supports("metal", "adam_step", "float32")
    assert oc.supports("cpu", "adam_step", "bfloat16")
