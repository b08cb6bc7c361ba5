"""The backend interface: registered devices, ``supports``, the "not supported" error and the
explicit CPU fallback, run on every device against the CPU (as ggml's test-backend-ops does).

The host-memory "metal" stand-in has kernels for fill and copy only, so CI has a device
without kernels on every host: its other ops must raise NotImplementedError naming op, dtype
and device, or, with ``ORCHARD_CPU_FALLBACK=1``, give the CPU's bits through host copies.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import orchard_core as oc
import pytest
from _core_helpers import WITHOUT_NATIVE_METAL, random_array

Op = Callable[[Callable[[np.ndarray], oc.Tensor]], oc.Tensor | tuple[oc.Tensor, ...]]


@pytest.fixture
def stand_in(monkeypatch) -> str:
    monkeypatch.setenv("ORCHARD_METAL_FALLBACK", "cpu")
    return "metal"


def _devices_without_every_kernel() -> list[str]:
    """The host-memory Metal stand-in (set up by the test): CUDA and Metal run every op on kernels
    of their own, which test_device_kernels_against_the_cpus holds against the CPU's."""
    return ["metal"]


def test_every_op_has_one_name():
    names = oc._core._ops()
    assert len(names) == len(set(names))
    assert {"add", "gelu(approximate='tanh')", "matmul", "index_select", "dropout", "fill"} <= set(names)


def test_cpu_supports_every_op():
    for name in oc._core._ops():
        assert oc.supports("cpu", name, "float32"), name


@WITHOUT_NATIVE_METAL
def test_stand_in_has_only_copy_kernels(stand_in):
    assert oc.supports(stand_in, "fill", oc.float32) and oc.supports(stand_in, "copy", "bfloat16")
    assert not any(
        oc.supports(stand_in, name, "float32") for name in oc._core._ops() if name not in ("fill", "copy")
    )


def test_supports_names_a_bad_op_or_device():
    with pytest.raises(ValueError, match="no operator is named 'addd'"):
        oc.supports("cpu", "addd", "float32")
    with pytest.raises(RuntimeError, match="'cuda:7' is not available"):
        oc.supports("cuda:7", "add", "float32")


def test_buffer_is_what_a_kernel_binds(device):
    t = oc.arange(24, dtype=oc.float32, device=device).view(4, 6)
    handle, offset = t._buffer()
    assert (handle, offset) == (t.data_ptr(), 0)  # memory addressed by its pointer: CPU, CUDA
    view = t[1:, 2:]
    assert view._buffer() == (handle, (6 + 2) * 4)  # the view's offset, in bytes, same buffer


@WITHOUT_NATIVE_METAL
def test_memory_stats_is_none_without_a_caching_allocator(stand_in):
    # The CPU keeps large blocks (test_host_cache.py); a host-backed stand-in reports none.
    assert oc.memory_stats(stand_in) is None


@WITHOUT_NATIVE_METAL
def test_an_op_without_kernels_raises_naming_op_dtype_and_device(stand_in):
    a = oc.ones(3, 5, device=stand_in)  # fill runs on the device
    expected = (
        r"operator {} has no kernels on device metal for {} yet; move the tensor to the CPU with "
        r"\.to\('cpu'\), or set ORCHARD_CPU_FALLBACK=1"
    )
    with pytest.raises(NotImplementedError, match=expected.format("add", "float32")):
        a + a
    with pytest.raises(NotImplementedError, match=expected.format(r"gelu\(approximate='tanh'\)", "bfloat16")):
        a.to(oc.bfloat16).gelu("tanh")
    with pytest.raises(NotImplementedError, match=expected.format("log_softmax", "float32")):
        oc.log_softmax(a, -1)
    assert issubclass(NotImplementedError, RuntimeError)  # what the error was before it had a class
    assert a.to("cpu").tolist() == [[1.0] * 5] * 3  # copies still work


@WITHOUT_NATIVE_METAL
def test_bad_fallback_value_is_named(stand_in, monkeypatch):
    monkeypatch.setenv("ORCHARD_CPU_FALLBACK", "yes")
    a = oc.ones(2, device=stand_in)
    with pytest.raises(ValueError, match="ORCHARD_CPU_FALLBACK='yes' is not understood"):
        a + a


def _cases(rng: np.random.Generator, magnitude: float | None = None) -> dict[str, Op]:
    """One call per kernel entry point, at shapes that are no multiple of any block size; the
    floats scaled to at most `magnitude`, if given."""

    def floats(shape):
        values = random_array(rng, shape, "float32")
        return values if magnitude is None else values * np.float32(magnitude / np.abs(values).max())

    x, y, w = floats((7, 13)), floats((1, 13)), floats((13, 5))
    index = np.array([4, 0, 6, 6], dtype=np.int64)
    gather_index = rng.integers(0, 7, size=(3, 13)).astype(np.int64)
    target = np.array([4, 0, 12, 6, -100, 1, 3], dtype=np.int64)

    def layer_norm_grads(on):
        a, weight, bias = (on(v).requires_grad_(True) for v in (x, y[0], y[0] * 0.5))
        return tuple(oc.autograd.grad(oc.layer_norm(a, 13, weight, bias), [a, weight, bias], on(x)))

    def cross_entropy_grad(on):
        a = on(x).requires_grad_(True)
        loss = oc.cross_entropy(a, on(target), reduction="none", label_smoothing=0.1)
        return oc.autograd.grad(loss, [a], on(x[:, 0].copy()))[0]

    return {
        "add (broadcast)": lambda on: on(x) + on(y),
        "pow": lambda on: on(np.abs(x)) ** on(y),
        "lt": lambda on: on(x) < on(y),
        "exp": lambda on: on(x).exp(),
        "gelu bfloat16": lambda on: on(x).to(oc.bfloat16).gelu(),
        "relu of a strided view": lambda on: oc.relu(on(x).T[::2]),
        "where": lambda on: oc.where(on(x) > 0, on(x), on(y)),
        "matmul": lambda on: on(x) @ on(w),
        "linear": lambda on: oc.linear(on(x), on(w).T, on(y)[0, :5]),
        "sum": lambda on: on(x).sum(0),
        "max with indices": lambda on: oc.max(on(x), 1),
        "argmin": lambda on: on(x).argmin(),
        "std": lambda on: on(x).std(1),
        "logsumexp": lambda on: oc.logsumexp(on(x), 1),
        "softmax": lambda on: oc.softmax(on(x), -1),
        "cumsum": lambda on: oc.cumsum(on(x), 1),
        "multinomial": lambda on: (oc.manual_seed(11), oc.multinomial(on(np.abs(x)), 9, True))[1],
        "sort": lambda on: oc.sort(on(x).T, 1, descending=True),
        "log_softmax": lambda on: oc.log_softmax(on(x), 0),
        "layer_norm": lambda on: oc.layer_norm(on(x), 13, on(y[0]), on(y[0] * 0.5)),
        "layer_norm backward": layer_norm_grads,
        "cross_entropy": lambda on: oc.cross_entropy(
            on(x), on(target), reduction="none", label_smoothing=0.1
        ),
        "cross_entropy backward": cross_entropy_grad,
        "index_select": lambda on: oc.index_select(on(x), 0, on(index)),
        "gather": lambda on: oc.gather(on(x), 0, on(gather_index)),
        "scatter_add": lambda on: oc.zeros(7, 13, device=on(x).device).scatter_add_(
            0, on(gather_index), on(x)[:3]
        ),
        "cat": lambda on: oc.cat([on(x), on(y)]),
        "tril": lambda on: oc.tril(on(x), -1),
        "in-place mul": lambda on: on(x).clone().mul_(on(y)),
        "to int32": lambda on: on(x * 100).to(oc.int32),
        "lerp": lambda on: oc.lerp(on(x), on(y), on(x).T.T.sigmoid()),
        "lerp_ by a number": lambda on: on(x).clone().lerp_(on(y), 0.7),
        "addcmul_ of a strided view": lambda on: on(x).T[::2].addcmul_(on(y).T[::2], on(x).T[::2], value=0.5),
        "addcdiv": lambda on: oc.addcdiv(on(x), on(y), on(np.abs(x) + 1), value=-2),
        "isinf": lambda on: oc.isinf(on(x) / on(x * (np.abs(x) > 1))),
        "isnan of a strided view": lambda on: (on(x) / on(x)).T[::2].isnan(),
        "fill a strided view": lambda on: on(x).T[1::3].fill_(2.5),
    }


@WITHOUT_NATIVE_METAL
@pytest.mark.parametrize("device", _devices_without_every_kernel())
def test_fallback_gives_the_cpu_bits(rng, monkeypatch, capfd, device):
    if device == "metal":
        monkeypatch.setenv("ORCHARD_METAL_FALLBACK", "cpu")
    monkeypatch.setenv("ORCHARD_CPU_FALLBACK", "1")
    for name, case in _cases(rng).items():
        on_cpu = case(lambda a: oc.tensor(a))
        on_device = case(lambda a: oc.tensor(a).to(device))
        for ours, reference in zip(
            on_device if isinstance(on_device, tuple) else (on_device,),
            on_cpu if isinstance(on_cpu, tuple) else (on_cpu,),
            strict=True,
        ):
            assert ours.device == device, name
            assert ours.dtype == reference.dtype and ours.shape == reference.shape, name
            # bfloat16 has no numpy dtype; float32 holds each of its values exactly.
            wide = oc.float32 if reference.dtype == oc.bfloat16 else reference.dtype
            np.testing.assert_array_equal(
                ours.to("cpu").to(wide).numpy(), reference.to(wide).numpy(), err_msg=name
            )
    # Random draws depend only on the generator's state, wherever they run.
    oc.manual_seed(3)
    drawn = oc.randn(5, 9, device=device)
    oc.manual_seed(3)
    np.testing.assert_array_equal(drawn.to("cpu").numpy(), oc.randn(5, 9).numpy())
    # Each op, dtype and device is logged once, on stderr.
    log = capfd.readouterr().err
    assert f"orchard: matmul on {device} (float32) runs on the CPU through host copies" in log
    assert log.count(f"orchard: matmul on {device} (float32)") <= 1


@WITHOUT_NATIVE_METAL
def test_autograd_through_the_fallback(rng, stand_in, monkeypatch):
    monkeypatch.setenv("ORCHARD_CPU_FALLBACK", "1")
    x = random_array(rng, (6, 11), "float32")
    w_cpu = oc.tensor(x, requires_grad=True)
    w_dev = oc.tensor(x).to(stand_in).requires_grad_(True)
    for w in (w_cpu, w_dev):
        (oc.softmax(w * w, -1) @ w.T).sum().backward()
    np.testing.assert_array_equal(w_dev.grad.to("cpu").numpy(), w_cpu.grad.numpy())


# Cases whose kernels compute the same steps on every device (integer or exact arithmetic, one
# rounding of the same float value, comparisons, index order): the CPU's bits. The others
# (library exp and pow, sums and products in another order) may differ by roundings.
BITWISE = {
    "add (broadcast)", "lt", "gelu bfloat16", "relu of a strided view", "where", "max with indices",
    "argmin", "sort", "index_select", "gather", "scatter_add", "cat", "tril", "in-place mul", "to int32",
    "fill a strided view", "multinomial", "isinf", "isnan of a strided view",
}  # fmt: skip


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_device_kernels_against_the_cpus(rng, monkeypatch, device, dtype):
    """Each case a device runs on kernels of its own (no fallback) against the CPU's kernels on
    the same values, in each floating dtype Metal has: as ggml's test-backend-ops does."""
    if device == "cpu":
        pytest.skip("the CPU is the reference")
    monkeypatch.delenv("ORCHARD_CPU_FALLBACK", raising=False)
    wanted = getattr(oc, dtype)
    eps = {"float32": 2.0**-23, "bfloat16": 2.0**-8, "float16": 2.0**-11}[dtype]
    ran, cpu_ran = [], []
    for name, case in _cases(rng, magnitude=4.0).items():

        def on(where):
            return lambda a: oc.tensor(a).to(wanted if a.dtype.kind == "f" else None).to(where)

        try:
            on_cpu = case(on("cpu"))
        except TypeError:
            continue  # the operator takes no such dtype (matmul in float16)
        cpu_ran.append(name)
        try:
            on_device = case(on(device))
        except NotImplementedError:
            continue  # no kernel of this device's own: the fallback tests cover it
        ran.append(name)
        for ours, reference in zip(
            on_device if isinstance(on_device, tuple) else (on_device,),
            on_cpu if isinstance(on_cpu, tuple) else (on_cpu,),
            strict=True,
        ):
            assert ours.dtype == reference.dtype and ours.shape == reference.shape, name
            wide = oc.float32 if reference.dtype in (oc.bfloat16, oc.float16) else reference.dtype
            have, want = ours.to("cpu").to(wide).numpy(), reference.to(wide).numpy()
            if name in BITWISE:
                np.testing.assert_array_equal(have, want, err_msg=name)
            else:
                # A few roundings to the dtype apart, plus float32 roundings of terms up to 4 * 4
                # (13 of them at most); infinities and NaNs where the CPU has them.
                finite = np.isfinite(want)
                np.testing.assert_array_equal(have[~finite], want[~finite], err_msg=name)
                tol = 4 * eps * np.abs(want[finite]) + 8 * 2.0**-23 * 16 * 13
                np.testing.assert_array_less(np.abs(have[finite] - want[finite]), tol, err_msg=name)
    if device == "metal":
        assert len(ran) >= len(BITWISE), ran
    if device.startswith("cuda"):
        assert ran == cpu_ran  # every case the CPU takes ran on CUDA kernels
