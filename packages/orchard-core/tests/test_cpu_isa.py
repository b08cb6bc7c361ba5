"""The CPU kernels' instruction-set variants give bitwise the same results.

orchard-core compiles its hot float loops once per instruction set (generic, AVX2, AVX-512)
without floating-point contraction, so every variant rounds the same operations in the same
order as the others, and elementwise functions as their strided (scalar) path. Each variant
this CPU runs is forced in turn; on a machine without AVX-512 the test covers the ones it has.
NaN is compared as NaN: its sign and payload are not part of the contract (x86 propagates
either operand's NaN, and compilers may swap the operands of a commutative operation).
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import orchard_core as oc
import pytest
from orchard_core import _core


@pytest.fixture
def restore_isa():
    saved = _core._cpu_isa()
    yield
    _core._set_cpu_isa(saved)


def _grad(fn, x: oc.Tensor) -> oc.Tensor:
    leaf = x.detach().requires_grad_()
    fn(leaf).sum().backward()
    return leaf.grad


def _adam_step(t: oc.Tensor) -> oc.Tensor:
    """optim.Adam's fused step (L2 decay, maximize) from state cut from t: the three updated."""
    param, exp_avg, exp_avg_sq = t.clone(), t.tanh(), t * t
    _core.adam_step_(
        param, t.sigmoid(), exp_avg, exp_avg_sq, lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.1,
        decoupled_weight_decay=False, maximize=True, step_size=0.1, bias_correction2_sqrt=0.05,
    )  # fmt: skip
    return oc.cat([param, exp_avg, exp_avg_sq])


# Every operation with a per-instruction-set float32 loop (isa_rows.cpp), applied to a tensor.
ELEMENTWISE = {
    "exp": oc.exp,
    "tanh": lambda t: t.tanh(),
    "sqrt": oc.sqrt,
    "rsqrt": oc.rsqrt,
    "sigmoid": lambda t: t.sigmoid(),
    "gelu": oc.gelu,
    "gelu_tanh": lambda t: oc.gelu(t, approximate="tanh"),
    "gelu_backward": lambda t: _grad(oc.gelu, t),
    "gelu_tanh_backward": lambda t: _grad(lambda u: oc.gelu(u, approximate="tanh"), t),
    "lerp": lambda t: oc.lerp(t, t.tanh(), t.sigmoid() * 2.0 - 0.5),
    "lerp_number": lambda t: t.lerp(t.tanh(), 0.75),
    "addcmul": lambda t: oc.addcmul(t, t.tanh(), t, value=0.3),
    "addcdiv": lambda t: t.addcdiv(t.tanh(), t.sigmoid(), value=-0.7),
    "adam_step": _adam_step,
}
# Reductions sum in an order fixed by the layout (rows or columns), the same in every variant.
REDUCTIONS = {
    "sum_rows": lambda t: t.sum(-1),
    "sum_columns": lambda t: t.sum(0),
    "mean_all": lambda t: t.mean(),
    "softmax": lambda t: t.softmax(-1),
    "log_softmax": lambda t: t.log_softmax(-1),
}
# layer_norm and cross_entropy (norm_rows.h), forward and backward, with parameters cut from the input.
_TARGETS = oc.tensor((np.arange(701) * 7) % 523)


def _layer_norm_grads(t: oc.Tensor) -> oc.Tensor:
    x, w, b = (u.detach().requires_grad_() for u in (t, t[1], t[2]))
    (oc.layer_norm(x, t.shape[-1:], w, b) * t.detach()).sum().backward()
    return oc.cat([x.grad, w.grad.unsqueeze(0), b.grad.unsqueeze(0)])


NORM = {
    "layer_norm": lambda t: oc.layer_norm(t, t.shape[-1:], t[1], t[2]),
    "layer_norm_backward": _layer_norm_grads,
    "cross_entropy": lambda t: oc.cross_entropy(t, _TARGETS, reduction="none", label_smoothing=0.1),
    "cross_entropy_backward": lambda t: _grad(
        lambda u: oc.cross_entropy(u, _TARGETS, reduction="none", label_smoothing=0.1) * t.detach()[:, 0], t
    ),
}
OPERATIONS = {**ELEMENTWISE, **REDUCTIONS, **NORM}


def _inputs(rng: np.random.Generator) -> np.ndarray:
    """Values over the functions' whole range, tails and specials included, in an odd shape.

    701 x 523 is a multiple of no block size and large enough to be split over threads.
    """
    shape = (701, 523)
    count = shape[0] * shape[1]
    wide = rng.uniform(-110.0, 95.0, count // 2)
    ordinary = rng.standard_normal(count - wide.size - 5) * 4.0
    specials = [np.inf, -np.inf, np.nan, 0.0, -0.0]
    values = np.concatenate([wide, ordinary, specials]).astype(np.float32)
    return rng.permutation(values).reshape(shape)


def _bits(t: oc.Tensor) -> np.ndarray:
    values = np.asarray(t)
    return np.where(np.isnan(values), np.float32(np.nan), values).view(np.uint32)


@pytest.mark.parametrize("name", list(OPERATIONS))
def test_every_instruction_set_gives_the_same_bits(name, rng, restore_isa):
    operation = OPERATIONS[name]
    values = _inputs(rng)
    contiguous = oc.tensor(values)
    # The same values as a transposed view: rows with stride != 1 take the scalar path.
    strided = oc.tensor(np.ascontiguousarray(values.T)).T
    results = {}
    for isa in _core._cpu_isas():
        _core._set_cpu_isa(isa)
        assert oc.cpu_isa() == isa
        results[isa] = (_bits(operation(contiguous)), _bits(operation(strided)))
        if name in ELEMENTWISE:
            np.testing.assert_array_equal(results[isa][1], results[isa][0], err_msg=f"{isa}, strided")
    reference = results.pop("generic")
    for isa, layouts in results.items():
        for layout, bits, want in zip(("contiguous", "strided"), layouts, reference, strict=True):
            np.testing.assert_array_equal(bits, want, err_msg=f"{isa} against generic, {layout}")


def _cpuinfo(field: str) -> str:
    with open("/proc/cpuinfo") as cpuinfo:
        return next((line.split(":")[1].strip() for line in cpuinfo if line.startswith(field)), "")


def _cpu_vendor() -> str:
    return _cpuinfo("vendor_id")


def test_the_widest_instruction_set_is_the_default():
    """The widest tier, but avx512 where avx512_bf16 is widest on an Intel CPU (its bf16
    instruction measured no faster than widening to float there)."""
    script = "import orchard_core as oc; print(oc.cpu_isa(), ' '.join(oc._core._cpu_isas()))"
    env = {k: v for k, v in os.environ.items() if k != "ORCHARD_CPU_ISA"}
    chosen, *isas = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    intel = sys.platform == "linux" and _cpu_vendor() == "GenuineIntel"
    assert chosen == (isas[-2] if isas[-1] == "avx512_bf16" and intel else isas[-1])


def _linux_lends_tiles() -> bool:
    """Asks Linux for the AMX tile state, as cpu_isa.cpp does, in a fresh process with the
    fault handler's signal stack (as under pytest): arch_prctl(ARCH_REQ_XCOMP_PERM,
    XFEATURE_XTILEDATA), syscall 158 on x86-64."""
    script = "import ctypes; print(ctypes.CDLL(None).syscall(158, 0x1023, 18))"
    out = subprocess.run(
        [sys.executable, "-X", "faulthandler", "-c", script], capture_output=True, text=True, check=True
    )
    return out.stdout.strip() == "0"


def test_the_amx_tier_is_there_where_the_cpu_has_amx():
    """amx_bf16 is offered exactly where the CPU has AMX-TILE, AMX-BF16 and AVX512-BF16 and
    Linux lends the process the tile state; the matmul and attention tests then run it."""
    if sys.platform != "linux" or os.uname().machine != "x86_64":
        pytest.skip("AMX is asked for from Linux on x86-64")
    flags = set(_cpuinfo("flags").split())
    has_amx = {"amx_tile", "amx_bf16", "avx512_bf16"} <= flags and _linux_lends_tiles()
    assert ("amx_bf16" in _core._cpu_isas()) == has_amx
    if not has_amx:
        pytest.skip(
            "this CPU (or its kernel) has no AMX-BF16: the amx_bf16 tier is neither offered nor run here"
        )


def test_orchard_cpu_isa_forces_a_narrower_set():
    env = {**os.environ, "ORCHARD_CPU_ISA": "generic"}
    script = "import orchard_core as oc; print(oc.cpu_isa())"
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "generic"


def test_an_unknown_instruction_set_is_refused_by_name(restore_isa):
    with pytest.raises(ValueError, match=r"'avx9000'.*generic"):
        _core._set_cpu_isa("avx9000")
    env = {**os.environ, "ORCHARD_CPU_ISA": "avx9000"}
    out = subprocess.run(
        [sys.executable, "-c", "import orchard_core"], env=env, capture_output=True, text=True
    )
    assert out.returncode != 0
    assert "ORCHARD_CPU_ISA='avx9000'" in out.stderr
