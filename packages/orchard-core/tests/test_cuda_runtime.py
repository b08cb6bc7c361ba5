"""The CUDA runtime: transfers, on-device copies and fills, DLPack with torch (zero-copy, streams),
every operator on CUDA kernels, errors of missing devices, and the memory pool.

Most tests need orchard-core built with CUDA (``-Csetup-args=-Dcuda=enabled``) and a CUDA GPU;
the DLPack tests also need a CUDA build of torch. The no-device tests need only the CUDA build.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap

import numpy as np
import orchard_core as oc
import pytest
import torch
from _core_helpers import DTYPES, OC, TORCH, assert_matches_torch, random_array, random_pair, random_shape
from orchard_core import _core

BUILT_WITH_CUDA = _core._built_with_cuda
GPUS = _core._cuda_device_count()  # 0 without a CUDA build, a driver or a GPU

needs_cuda_build = pytest.mark.skipif(
    not BUILT_WITH_CUDA, reason="orchard-core was built without CUDA (-Csetup-args=-Dcuda=enabled)"
)
needs_gpu = pytest.mark.skipif(
    GPUS == 0,
    reason="needs orchard-core built with CUDA and a CUDA GPU"
    + ("" if BUILT_WITH_CUDA else " (this orchard-core was built without CUDA)"),
)
needs_torch_cuda = pytest.mark.skipif(
    GPUS == 0 or not torch.cuda.is_available(),
    reason="needs orchard-core built with CUDA, a CUDA GPU and a CUDA build of torch",
)


def _random_tensor(rng, shape, dtype: str = "float32") -> oc.Tensor:
    ours, _ = random_pair(rng, shape, dtype)
    return ours


def _used_bytes() -> int:
    gc.collect()
    oc.synchronize("cuda:0")
    return oc.memory_stats("cuda:0")["in_use"]


# Without a GPU (runs wherever orchard-core is built with CUDA) ----------------------------------


@needs_cuda_build
def test_no_visible_gpu_is_a_clean_error_naming_the_device():
    """cudaGetDeviceCount failing (no driver, no GPU) means 0 devices, not a crash."""
    script = textwrap.dedent(
        """
        import orchard_core as oc
        assert oc._core._cuda_device_count() == 0
        assert [str(d) for d in oc.devices()] == ["cpu"]
        for make in (lambda: oc.empty(2, 3, device="cuda"), lambda: oc.arange(3).to("cuda:1")):
            try:
                make()
            except RuntimeError as error:
                print(error)
            else:
                raise SystemExit("no error")
        """
    )
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    first, second = done.stdout.strip().splitlines()
    assert "device 'cuda:0' is not available" in first
    assert "device 'cuda:1' is not available" in second


@needs_cuda_build
@pytest.mark.skipif(GPUS > 0, reason="this host has a CUDA GPU")
def test_without_a_gpu_cuda_tensors_raise_naming_the_device():
    assert all(d.type != "cuda" for d in oc.devices())
    with pytest.raises(RuntimeError, match="device 'cuda:0' is not available"):
        oc.empty(2, 3, device="cuda")
    with pytest.raises(RuntimeError, match="device 'cuda:2' is not available"):
        oc.zeros(4, device="cuda:2")
    with pytest.raises(RuntimeError, match="device 'cuda:0' is not available"):
        oc.arange(3).to("cuda")
    with pytest.raises(RuntimeError, match="cuda:0"):
        oc.memory_stats("cuda:0")


@needs_torch_cuda
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_one_cuda_runtime_is_shared_with_torch():
    """orchard_core loads the libcudart that torch's wheel loads, so the process holds one copy."""
    script = textwrap.dedent(
        """
        import os, orchard_core, torch
        torch.zeros(1, device="cuda")
        maps = open("/proc/self/maps").read().splitlines()
        paths = {os.path.realpath(line.split()[-1]) for line in maps if "libcudart" in line}
        print(sorted(paths))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("libcudart") == 1, done.stdout


# Devices ------------------------------------------------------------------------------------


@needs_gpu
def test_devices_list_every_gpu():
    names = [str(d) for d in oc.devices()]
    assert names[0] == "cpu"
    assert [n for n in names if n.startswith("cuda")] == [f"cuda:{i}" for i in range(GPUS)]
    description = oc.device_description("cuda")
    assert "compute capability" in description and "cuda:0" in description
    if torch.cuda.is_available():
        assert torch.cuda.get_device_name(0) in description
    oc.synchronize("cuda")
    oc.synchronize("cpu")


@needs_gpu
def test_first_use_from_many_threads_at_once():
    """The runtime is made lazily; threads racing to make it all get the same, working one."""
    script = textwrap.dedent(
        """
        import threading
        import orchard_core as oc
        barrier, results = threading.Barrier(16), []
        def work(i):
            barrier.wait()
            t = oc.full((1000,), i, dtype=oc.int64, device="cuda")
            results.append(t.to("cpu").tolist() == [i] * 1000)
        threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        print(sum(results))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "16"


@needs_gpu
def test_nonexistent_device_index_is_named():
    name = f"cuda:{GPUS}"
    for make in (
        lambda: oc.empty(2, device=name),
        lambda: oc.zeros(2, device=name),
        lambda: oc.arange(3).to(name),
        lambda: oc.device_description(name),
        lambda: oc.memory_stats(name),
    ):
        with pytest.raises(RuntimeError, match=f"'{name}' is not available.*{GPUS} CUDA device"):
            make()


# Transfers ---------------------------------------------------------------------------------------


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trip_preserves_values(rng, dtype):
    ours, reference = random_pair(rng, random_shape(rng), dtype)
    on_gpu = ours.to("cuda")
    assert on_gpu.device == "cuda:0" and on_gpu.device.type == "cuda" and on_gpu.device.index == 0
    assert on_gpu.dtype == OC[dtype] and on_gpu.shape == ours.shape and on_gpu.is_contiguous()
    assert not on_gpu.is_alias_of(ours)
    assert on_gpu.to("cuda:0").data_ptr() == on_gpu.data_ptr()
    back = on_gpu.to("cpu")
    assert back.device == "cpu"
    assert_matches_torch(back, reference, strides=True)
    assert_matches_torch(on_gpu.cpu(), reference)
    assert_matches_torch(on_gpu, reference)  # through printing's path: to("cpu"), to(float32)
    assert on_gpu.tolist() == ours.tolist()
    assert "device='cuda:0'" in repr(on_gpu)


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_non_contiguous_sources_move_as_their_values(rng, dtype):
    ours, reference = random_pair(rng, (5, 7, 9), dtype)
    view, expected = ours.mT[..., ::2], reference.mT[..., ::2]
    moved = view.to("cuda")
    assert moved.is_contiguous()
    assert_matches_torch(moved.to("cpu"), expected)
    # Views of a CUDA tensor: strided, transposed, broadcast, a single element.
    on_gpu = ours.to("cuda")
    for gpu_view, want in (
        (on_gpu.mT[..., ::2], expected),
        (on_gpu[1:, ::3, 2:], reference[1:, ::3, 2:]),
        (on_gpu[:, :1].expand(5, 4, 9), reference[:, :1].expand(5, 4, 9)),
        (on_gpu[3, 2, 1], reference[3, 2, 1]),
    ):
        assert gpu_view.device == "cuda:0" and gpu_view.is_alias_of(on_gpu)
        assert_matches_torch(gpu_view.to("cpu"), want)
        clone = gpu_view.clone()
        assert clone.device == "cuda:0" and clone.is_contiguous() and not clone.is_alias_of(on_gpu)
        assert_matches_torch(clone, want)
        assert_matches_torch(gpu_view.contiguous(), want)


@needs_gpu
@pytest.mark.parametrize("shape", [(0,), (3, 0, 2), (0, 5)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_zero_size_tensors(shape, dtype):
    host = oc.empty(*shape, dtype=OC[dtype])
    on_gpu = host.to("cuda")
    assert on_gpu.device == "cuda:0" and on_gpu.shape == shape and on_gpu.numel() == 0
    assert on_gpu.to("cpu").shape == shape
    for made in (
        oc.empty(*shape, dtype=OC[dtype], device="cuda"),
        oc.zeros(*shape, dtype=OC[dtype], device="cuda"),
        on_gpu.clone(),
        on_gpu.to(oc.float32),
    ):
        assert made.device == "cuda:0" and made.shape == shape
    on_gpu.fill_(1)
    on_gpu.copy_(host)


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_device_to_device_clone_copy_and_cast(rng, dtype):
    ours, reference = random_pair(rng, random_shape(rng, 2), dtype)
    on_gpu = ours.to("cuda")
    clone = on_gpu.clone()
    assert (
        clone.device == "cuda:0" and not clone.is_alias_of(on_gpu) and clone.data_ptr() != on_gpu.data_ptr()
    )
    assert_matches_torch(clone, reference)
    # copy_ from the CPU and from another CUDA tensor, into a whole tensor and a strided view.
    other, other_reference = random_pair(rng, ours.shape, dtype)
    clone.copy_(other)
    assert_matches_torch(clone, other_reference)
    clone.copy_(on_gpu)
    assert_matches_torch(clone, reference)
    clone[:, ::2].copy_(other.to("cuda")[:, ::2])
    expected = reference.clone()
    expected[:, ::2] = other_reference[:, ::2]
    assert_matches_torch(clone, expected)
    # Casts to every dtype follow torch's.
    for target in DTYPES:
        assert_matches_torch(on_gpu.to(OC[target]), reference.to(TORCH[target]))


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_fills(rng, dtype):
    shape = random_shape(rng, 2)
    value = float(random_array(rng, (), dtype)) if dtype != "bool" else True
    assert_matches_torch(
        oc.zeros(*shape, dtype=OC[dtype], device="cuda"), torch.zeros(shape, dtype=TORCH[dtype])
    )
    assert_matches_torch(
        oc.ones(*shape, dtype=OC[dtype], device="cuda"), torch.ones(shape, dtype=TORCH[dtype])
    )
    full = oc.full(shape, value, dtype=OC[dtype], device="cuda")
    assert_matches_torch(full, torch.full(shape, value, dtype=TORCH[dtype]))
    ours, reference = random_pair(rng, shape, dtype, device="cuda")
    ours[:, 1::2].fill_(value)
    reference[:, 1::2] = value
    assert_matches_torch(ours, reference)
    ours[::2].fill_(0)
    reference[::2] = 0
    assert_matches_torch(ours, reference)
    if dtype in ("float32", "float64", "float16", "bfloat16"):  # -0.0 is not all-zero bytes
        ours.fill_(-0.0)
        assert_matches_torch(ours, torch.full(shape, -0.0, dtype=TORCH[dtype]))


@needs_gpu
def test_creation_on_the_device(rng):
    values = random_array(rng, (4, 6), "float32")
    made = oc.tensor(values, device="cuda")
    assert made.device == "cuda:0"
    np.testing.assert_array_equal(made.to("cpu").numpy(), values)
    assert oc.arange(10, device="cuda").tolist() == list(range(10))
    with pytest.raises(TypeError, match="cuda:0"):
        made.numpy()
    np.testing.assert_array_equal(np.asarray(made), values)  # __array__ copies through the host


# Operators on CUDA kernels ------------------------------------------------------------------------


@needs_gpu
def test_every_operator_runs_on_cuda_kernels():
    """No op on a CUDA tensor goes through the CPU: each has a kernel of the CUDA backend, in every
    floating dtype (the integer ops in the integer dtypes too)."""
    for name in set(oc._core._ops()) - {"index bounds"}:  # which takes the index's dtype
        for dtype in ("float32", "float64", "bfloat16", "float16"):
            assert oc.supports("cuda:0", name, dtype), (name, dtype)
    for name in ("add", "mul", "neg", "abs", "fill", "copy", "where", "sum", "max", "cumsum", "sort", "cat",
                 "index_select", "gather", "scatter_add", "tril", "randint", "addcmul"):  # fmt: skip
        for dtype in ("int32", "int64"):
            assert oc.supports("cuda:0", name, dtype), (name, dtype)
    assert oc.supports("cuda:0", "index bounds", "int64")
    assert not oc.supports("cuda:0", "div", "int64")  # the operator promotes integers first


@needs_gpu
def test_training_step_on_cuda_matches_the_cpu(rng):
    """A linear layer, layer_norm, gelu and cross_entropy, forward and backward, on cuda:0 without
    the fallback, against the same step on the CPU: against the float64 step, each gradient's
    largest error on CUDA is within 4x the CPU's (the kernels sum in different orders), floored
    at the float32 error bound of a sum of a row's 24 terms (24 roundings of the largest value)."""
    values = [random_array(rng, shape, "float32") for shape in ((16, 24), (10, 24), (10,))]
    target = oc.tensor(rng.integers(0, 10, size=16))
    grads = {}
    for device, dtype in (("cpu", oc.float32), ("cuda", oc.float32), ("cpu", oc.float64)):
        leaves = [oc.tensor(v, device=device).to(dtype).requires_grad_() for v in values]
        hidden = oc.linear(oc.layer_norm(leaves[0], 24), leaves[1], leaves[2]).gelu()
        oc.cross_entropy(hidden, target.to(device)).backward()
        grads[device, dtype] = [leaf.grad.to("cpu").to(oc.float64).numpy() for leaf in leaves]
    for ours, cpu, exact in zip(
        grads["cuda", oc.float32], grads["cpu", oc.float32], grads["cpu", oc.float64], strict=True
    ):
        floor = 24 * 2.0**-24 * np.abs(exact).max()
        assert np.abs(ours - exact).max() <= 4 * max(np.abs(cpu - exact).max(), floor)


# DLPack with torch ------------------------------------------------------------------------------


@needs_torch_cuda
@pytest.mark.parametrize("dtype", DTYPES)
def test_dlpack_export_to_torch_is_zero_copy(rng, dtype):
    ours, reference = random_pair(rng, (7, 9), dtype, device="cuda")
    assert ours.__dlpack_device__() == (2, 0)
    for view, want in (
        (ours, reference),
        (ours.T, reference.T),
        (ours[1::2, ::3], reference[1::2, ::3]),
        (ours[:, 4], reference[:, 4]),
    ):
        imported = torch.from_dlpack(view)
        assert imported.device == torch.device("cuda", 0)
        assert imported.data_ptr() == view.data_ptr()
        assert tuple(imported.shape) == view.shape
        if view.numel() > 1:
            assert imported.stride() == view.stride()
        assert torch.equal(imported.cpu(), want)
    # Writes through torch are visible in orchard, and torch keeps orchard's memory alive.
    imported = torch.from_dlpack(ours[1::2, ::3])
    fresh = torch.from_numpy(random_array(rng, tuple(imported.shape), dtype)).to(TORCH[dtype])
    imported.copy_(fresh.cuda())
    reference[1::2, ::3] = fresh
    assert_matches_torch(ours, reference)
    whole = torch.from_dlpack(ours)
    del ours
    gc.collect()
    assert torch.equal(whole.cpu(), reference)


@needs_torch_cuda
@pytest.mark.parametrize("dtype", DTYPES)
def test_dlpack_import_from_torch_is_zero_copy(rng, dtype):
    reference = torch.from_numpy(random_array(rng, (7, 9), dtype)).to(TORCH[dtype])
    on_gpu = reference.cuda()
    for view, want in (
        (on_gpu, reference),
        (on_gpu.T, reference.T),
        (on_gpu[1::2, ::3], reference[1::2, ::3]),
        (on_gpu[2], reference[2]),
    ):
        ours = oc.from_dlpack(view)
        assert ours.device == "cuda:0"
        assert ours.data_ptr() == view.data_ptr()
        assert ours.stride() == view.stride()
        assert_matches_torch(ours, want)
    # Writes through orchard are visible in torch, and orchard keeps torch's memory alive.
    ours = oc.from_dlpack(on_gpu[1::2, ::3])
    ours.fill_(True if dtype == "bool" else -3)
    assert (on_gpu[1::2, ::3] == (True if dtype == "bool" else -3)).all()
    expected = on_gpu.cpu()
    del on_gpu, view
    gc.collect()
    torch.cuda.empty_cache()
    assert_matches_torch(ours, expected[1::2, ::3])


@needs_torch_cuda
def test_dlpack_zero_size_and_round_trip(rng):
    empty = oc.empty(0, 3, device="cuda")
    assert torch.from_dlpack(empty).shape == (0, 3)
    assert oc.from_dlpack(torch.empty(3, 0, device="cuda")).shape == (3, 0)
    ours = _random_tensor(rng, (5, 4)).to("cuda")
    back = oc.from_dlpack(torch.from_dlpack(ours))
    assert back.data_ptr() == ours.data_ptr() and back.device == "cuda:0"


@needs_torch_cuda
def test_dlpack_stream_argument(rng):
    ours = _random_tensor(rng, (64, 64)).to("cuda")
    expected = ours.to("cpu").numpy()
    for stream in (None, 1, 2, -1):
        imported = torch.from_dlpack(ours.__dlpack__(stream=stream))
        assert imported.data_ptr() == ours.data_ptr()
    torch.cuda.synchronize()
    with pytest.raises(ValueError, match="stream=0 is ambiguous"):
        ours.__dlpack__(stream=0)
    with pytest.raises(TypeError, match="stream must be an int or None"):
        ours.__dlpack__(stream="1")
    with pytest.raises(ValueError, match="stream must be None for a CPU tensor"):
        ours.to("cpu").__dlpack__(stream=1)
    # A consumer on a side stream (non-blocking: not ordered after the legacy default stream)
    # sees orchard's queued work: a large device-to-device copy, still running when exported.
    big = _random_tensor(rng, (4096, 1024)).to("cuda")
    want = torch.from_numpy(big.to("cpu").numpy())
    side = torch.cuda.Stream()
    for _ in range(3):
        copy = big.clone()  # cudaMemcpyAsync on the legacy default stream
        with torch.cuda.stream(side):
            seen = torch.from_dlpack(copy)  # passes side.cuda_stream: side waits for the copy
            snapshot = seen.clone()
        side.synchronize()
        assert torch.equal(snapshot.cpu(), want)
        explicit = torch.from_dlpack(copy.__dlpack__(stream=side.cuda_stream))
        with torch.cuda.stream(side):
            again = explicit.clone()
        side.synchronize()
        assert torch.equal(again.cpu(), want)
    np.testing.assert_array_equal(ours.to("cpu").numpy(), expected)


# Memory -------------------------------------------------------------------------------------------


@needs_gpu
def test_memory_is_released_to_the_pool_and_reused():
    baseline = _used_bytes()
    nbytes = 4 << 20
    t = oc.empty(nbytes // 4, device="cuda")
    assert _used_bytes() >= baseline + nbytes
    reserved = oc.memory_stats("cuda:0")["reserved"]
    assert reserved >= nbytes
    del t
    assert _used_bytes() == baseline
    # Freed memory stays in the pool (release threshold UINT64_MAX): the next allocations reuse it.
    assert oc.memory_stats("cuda:0")["reserved"] == reserved
    for _ in range(10):
        t = oc.empty(nbytes // 4, device="cuda")
        del t
    assert _used_bytes() == baseline
    assert oc.memory_stats("cuda:0")["reserved"] == reserved
    # Zero bytes take nothing from the pool.
    empty = oc.empty(0, device="cuda")
    assert empty.numel() == 0 and _used_bytes() == baseline


@needs_gpu
def test_profiling_sees_cuda_storages(profile_log, rng):
    before = oc.profile.live_count()
    t = _random_tensor(rng, (32, 32)).to("cuda")
    assert oc.profile.live_count() == before + 1
    del t
    gc.collect()
    assert oc.profile.live_count() == before
    log = profile_log.read_text()
    assert "device=cuda:0" in log and "bytes=4096" in log


@needs_gpu
def test_out_of_memory_names_the_size_and_device():
    nbytes = 1 << 50  # 1 PiB
    with pytest.raises(oc.OutOfMemoryError, match=f"cannot allocate {nbytes} bytes.*on cuda:0"):
        oc.empty(nbytes // 4, device="cuda")
    # The failure left no error behind: the device still works.
    assert oc.arange(5, device="cuda").tolist() == [0, 1, 2, 3, 4]


# Several GPUs -------------------------------------------------------------------------------------


@pytest.mark.skipif(GPUS < 2, reason="needs two CUDA GPUs")
@pytest.mark.parametrize("dtype", DTYPES)
def test_between_two_gpus(rng, dtype):
    ours, reference = random_pair(rng, random_shape(rng), dtype, device="cuda:0")
    moved = ours.to("cuda:1")
    assert moved.device == "cuda:1" and moved.device.index == 1
    assert_matches_torch(moved, reference)
    assert_matches_torch(moved.clone(), reference)
    assert_matches_torch(moved.to("cuda:0"), reference)
    oc.synchronize("cuda:1")
    assert oc.memory_stats("cuda:1")["in_use"] >= moved.nbytes
