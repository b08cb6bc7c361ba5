"""The Linux harness that runs the Metal kernels (builds with -Dmetal=emulated; docs/metal.md):
correct kernels against numpy, and deliberately broken ones it must catch
(tests/metal_harness/*.metal). Also: the .metal files the harness compiles are the ones the
metallib rule compiles."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import orchard_core as oc
import pytest

# The generator's tests need no harness build; every other test does.
needs_harness = pytest.mark.skipif(
    not hasattr(oc._core, "_metal_harness_run"), reason="built without -Dmetal=emulated"
)
ASAN = os.environ.get("ORCHARD_METAL_HARNESS_ASAN") == "1"
PACKAGE = Path(__file__).resolve().parents[1]
GENERATOR = PACKAGE / "include" / "orchard" / "metal" / "harness" / "msl_to_cpp.py"
ORDERS = [("default", 0), ("random", 1), ("random", 2), ("random", 3)]


def run(kernel, buffers, groups, threads, threadgroup_bytes=None, order=("default", 0)):
    oc._core._metal_harness_run(kernel, buffers, threadgroup_bytes or {}, groups, threads, order[0], order[1])


@needs_harness
@pytest.mark.parametrize("order", ORDERS, ids=lambda o: f"{o[0]}{o[1]}")
@pytest.mark.parametrize(("rows", "columns", "threads"), [(3, 1000, 256), (2, 37, 96), (1, 5, 40)])
def test_row_softmax(rng, order, rows, columns, threads):
    x = rng.standard_normal((rows, columns)).astype(np.float32)
    out = np.zeros_like(x)
    simds = (threads + 31) // 32
    run("row_softmax", {0: x, 1: out, 2: np.array([columns], np.uint32)}, (rows, 1, 1), (threads, 1, 1),
        {0: 4 * simds}, order)  # fmt: skip
    e = np.exp(x.astype(np.float64) - x.max(1, keepdims=True))
    np.testing.assert_allclose(out, e / e.sum(1, keepdims=True), rtol=2e-6, atol=1e-7)


@needs_harness
def test_positions_in_a_3d_dispatch():
    groups, threads = (3, 2, 2), (5, 3, 4)  # 60 threads: a partial second SIMD-group
    grid = tuple(g * t for g, t in zip(groups, threads, strict=True))
    out = np.zeros((grid[2], grid[1], grid[0], 13), np.uint32)
    run("positions", {0: out}, groups, threads)
    z, y, x = np.meshgrid(*(np.arange(n) for n in reversed(grid)), indexing="ij")
    local = (x % threads[0], y % threads[1], z % threads[2])
    group = (x // threads[0], y // threads[1], z // threads[2])
    index = local[0] + threads[0] * (local[1] + threads[1] * local[2])
    group_code = group[0] + 100 * group[1] + 10000 * group[2]
    sizes = [np.full_like(x, n) for n in (60, 12, np.prod(grid))]
    expected = [x, y, z, *local, group_code, *sizes, index, index % 32, index // 32]
    for k, want in enumerate(expected):
        np.testing.assert_array_equal(out[..., k], want, err_msg=f"value {k}")


@needs_harness
@pytest.mark.parametrize("threads", [64, 45])  # 45: the second SIMD-group has 13 lanes
def test_simd_functions(rng, threads):
    x = rng.integers(-100, 100, size=threads).astype(np.int32)
    out = np.zeros((threads, 5), np.int32)
    run("simd_functions", {0: x, 1: out}, (1, 1, 1), (threads, 1, 1))
    for start in range(0, threads, 32):
        v = x[start : start + 32]
        n, lanes = len(v), np.arange(len(v))
        got = out[start : start + 32]
        np.testing.assert_array_equal(
            got[:, 0], np.where((lanes ^ 1) < n, v[np.minimum(lanes ^ 1, n - 1)], v)
        )
        np.testing.assert_array_equal(got[:, 1], np.where(lanes + 3 < n, v[np.minimum(lanes + 3, n - 1)], v))
        np.testing.assert_array_equal(got[:, 2], np.concatenate([[0], np.cumsum(v)[:-1]]))
        np.testing.assert_array_equal(got[:, 3], np.full(n, v[2]))
        np.testing.assert_array_equal(got[:, 4], np.full(n, v.sum()))


@needs_harness
def test_vectors_and_conversions(rng):
    n = 37
    x = rng.standard_normal((n, 4)).astype(np.float32)
    out = np.zeros_like(x)
    bits = np.zeros(n, np.uint32)
    halves = np.zeros(n, np.float16)
    bfloats = np.zeros(n, np.uint16)
    run("vectors", {0: x, 1: out, 2: bits, 3: halves, 4: bfloats}, (1, 1, 1), (n, 1, 1))
    mixed = np.stack([x[:, 1], x[:, 2], x[:, 3], np.ones(n, np.float32)], 1)
    fused = (x[:, :1].astype(np.float64) * 2 + 0.5).astype(np.float32)
    np.testing.assert_array_equal(out, np.where(x[:, :1] > 0, np.broadcast_to(fused, (n, 4)), mixed))
    np.testing.assert_array_equal(bits, x[:, 3].view(np.uint32))
    np.testing.assert_array_equal(halves, x[:, 0].astype(np.float16))
    # bfloat16: round to nearest even from float32's bits.
    b = x[:, 1].view(np.uint32).astype(np.uint64)
    np.testing.assert_array_equal(bfloats, ((b + 0x7FFF + ((b >> 16) & 1)) >> 16).astype(np.uint16))


@needs_harness
def test_threadgroup_array_in_a_kernel(rng):
    x = rng.standard_normal(3 * 64).astype(np.float32)
    out = np.zeros_like(x)
    run("reverse_tile", {0: x, 1: out}, (3, 1, 1), (64, 1, 1))
    np.testing.assert_array_equal(out, x.reshape(3, 64)[:, ::-1].ravel())


def bfloat16_round(x: np.ndarray) -> np.ndarray:
    """float32 values rounded to bfloat16 (to nearest even), as float32."""
    b = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    return (((b + 0x7FFF + ((b >> 16) & 1)) >> 16) << 16).astype(np.uint32).view(np.float32)


@needs_harness
@pytest.mark.parametrize("order", ORDERS[:2], ids=lambda o: f"{o[0]}{o[1]}")
@pytest.mark.parametrize(("dtype", "transposed"), [("float", False), ("float", True), ("half", False)])
def test_simdgroup_matrix_tiles(rng, order, dtype, transposed):
    m, k, n = 16, 24, 32
    np_type = np.float32 if dtype == "float" else np.float16
    a = rng.standard_normal((m, k)).astype(np_type)
    b = rng.standard_normal((k, n)).astype(np_type)
    c = np.zeros((m, n), np.float32)
    given_b = np.ascontiguousarray(b.T) if transposed else b
    buffers = {
        0: a,
        1: given_b,
        2: c,
        3: np.array([m, k, n, 0], np.uint32),
        4: np.array([transposed], np.uint32),
    }
    run(f"matmul_tiles_{dtype}", buffers, (n // 8, m // 8, 1), (32, 1, 1), order=order)
    np.testing.assert_allclose(c, a.astype(np.float64) @ b.astype(np.float64), rtol=1e-5, atol=1e-5)


@needs_harness
@pytest.mark.parametrize("order", ORDERS[:2], ids=lambda o: f"{o[0]}{o[1]}")
def test_simdgroup_matrix_from_threadgroup_memory(rng, order):
    m, k, n = 8, 32, 16
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    c, c_again = np.zeros((m, n), np.float32), np.zeros((m, n), np.float32)
    run("matmul_staged", {0: a, 1: b, 2: c, 3: c_again, 4: np.array([m, k, n, 0], np.uint32)},
        (n // 8, m // 8, 1), (64, 1, 1), order=order)  # fmt: skip
    want = a.astype(np.float64) @ b.astype(np.float64)
    np.testing.assert_allclose(c, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(c_again, c)


@needs_harness
def test_half_and_bfloat_arithmetic(rng):
    count = 40
    x = (rng.standard_normal((count, 4)) * 100).astype(np.float16)
    out = np.zeros((count * 2, 4), np.float16)
    b = bfloat16_round(rng.standard_normal(count).astype(np.float32))
    b_bits = (b.view(np.uint32) >> 16).astype(np.uint16)
    b_out = np.zeros(count, np.uint16)
    bits = np.zeros(count, np.uint16)
    run("sixteen_bit", {0: x, 1: out, 2: b_bits, 3: b_out, 4: bits}, (1, 1, 1), (count, 1, 1))
    spread = np.stack([np.ones(count), x[:, 0], x[:, 1], np.full(count, 0.5)], 1).astype(np.float32)
    want = (x[:, ::-1].astype(np.float32) * 2 + spread).astype(np.float16)
    np.testing.assert_array_equal(out[0::2], want)
    np.testing.assert_array_equal(out[1::2], np.abs(x))
    want_b = bfloat16_round(bfloat16_round(b * np.float32(3)) + np.float32(1))
    np.testing.assert_array_equal(b_out, (want_b.view(np.uint32) >> 16).astype(np.uint16))
    np.testing.assert_array_equal(bits, x[:, 0].view(np.uint16))


@needs_harness
def test_atomics_in_device_and_threadgroup_memory(rng):
    groups, threads = 3, 64
    x = rng.standard_normal(groups * threads).astype(np.float32)
    total = np.zeros(1, np.float32)
    counts = np.zeros(2, np.uint32)
    run("atomics", {0: x, 1: total, 2: counts}, (groups, 1, 1), (threads, 1, 1), order=("random", 5))
    np.testing.assert_allclose(total[0], x.astype(np.float64).sum(), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(counts, [groups * threads, groups * threads - 1])


@needs_harness
@pytest.mark.parametrize("threads", [64, 45])
def test_more_simd_functions(rng, threads):
    x = rng.integers(-100, 100, size=threads).astype(np.int32)
    out = np.zeros((threads, 8), np.int32)
    run("more_simd", {0: x, 1: out}, (1, 1, 1), (threads, 1, 1), order=("random", 7))
    for start in range(0, threads, 32):
        v = x[start : start + 32]
        n, lanes = len(v), np.arange(len(v))
        got = out[start : start + 32]
        ballot = np.uint32(sum(1 << int(i) for i in lanes if v[i] > 0))
        expected = [
            np.cumsum(v),
            np.where(lanes >= 2, v[np.maximum(lanes - 2, 0)], v),
            np.full(n, v.min()),
            np.full(n, 3),
            np.full(n, ballot).view(np.int32),
            np.full(n, v[0]),
            np.full(n, n),
            v[(lanes + 5) % 3],
        ]
        for k, want in enumerate(expected):
            np.testing.assert_array_equal(got[:, k], want, err_msg=f"value {k}")


@needs_harness
def test_many_barriers_at_one_call_site():
    out = np.zeros(96, np.uint32)
    run("barrier_rounds", {0: out, 1: np.array([50], np.uint32)}, (2, 1, 1), (96, 1, 1), order=("random", 9))
    np.testing.assert_array_equal(out, 50)


# ---- the generator -----------------------------------------------------------------------


def translate(tmp_path: Path, source: str) -> subprocess.CompletedProcess[str]:
    metal = tmp_path / "k.metal"
    metal.write_text(source)
    command = [sys.executable, str(GENERATOR), str(metal), str(tmp_path / "k.metal.cpp")]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def test_the_generator_keeps_every_line_in_place(tmp_path):
    source = (PACKAGE / "tests" / "metal_harness" / "features.metal").read_text()
    assert translate(tmp_path, source).returncode == 0
    generated = (tmp_path / "k.metal.cpp").read_text().split("\n")
    assert generated[1] == f'#line 1 "{(tmp_path / "k.metal").resolve()}"'
    for number, line in enumerate(source.split("\n")):
        # Each line of a kernel body stays where it was, rewritten or not.
        if "simdgroup_multiply_accumulate" in line or line.startswith("kernel void"):
            assert generated[2 + number].split("(")[0] == line.split("(")[0], number


@pytest.mark.parametrize(
    ("source", "line", "message"),
    [
        ("kernel void f(device float* x [[buffer(0)]],\n  uint i) {}", 1,
         "parameter 'uint i' has no attribute"),
        ("#include <metal_stdlib>\nkernel void f() {\n  threadgroup float a[4]; threadgroup float b[4];\n}",
         3, "declared alone on its line"),
        ("kernel void f() {\n  simdgroup_float8x8 m;\n  auto e = m.thread_elements();\n}", 3,
         "thread_elements"),
        ("template [[host_name(\"g\")]] [[kernel]] decltype(h<float>) h<float>;", 1,
         "no kernel of this file"),
    ],
)  # fmt: skip
def test_the_generator_names_the_line_of_what_it_cannot_take(tmp_path, source, line, message):
    result = translate(tmp_path, source)
    assert result.returncode == 1
    assert f"k.metal:{line}: " in result.stderr and message in result.stderr, result.stderr


# ---- broken kernels ----------------------------------------------------------------------


@needs_harness
def test_missing_barrier_gives_wrong_results(rng):
    x = rng.standard_normal(256).astype(np.float32)
    out = np.zeros_like(x)
    run("missing_barrier", {0: x, 1: out}, (1, 1, 1), (256, 1, 1))
    assert not np.array_equal(out, np.roll(x, -1))


@needs_harness
def test_write_after_read_race_shows_in_random_lane_order(rng):
    x = rng.standard_normal(256).astype(np.float32)
    right = np.roll(x, -1) + 2 * np.roll(x, -1)
    out = np.zeros_like(x)
    run("reuse_without_barrier", {0: x, 1: out}, (1, 1, 1), (256, 1, 1))
    # The default order runs each thread from barrier to barrier in turn, which this race needs
    # out of order to show; every random order does.
    for seed in (1, 2, 3):
        run("reuse_without_barrier", {0: x, 1: out}, (1, 1, 1), (256, 1, 1), order=("random", seed))
        assert not np.allclose(out, right), seed


@needs_harness
def test_simd_groups_drift_apart_in_random_lane_order(rng):
    # Multiples of 2**-10 below 4 in size: every partial sum of 128 of them is exact in float32,
    # so the answer does not depend on the order simd_sum adds in, and any difference is the race.
    x = (rng.integers(-4096, 4097, 256) / 1024).astype(np.float32)
    steps = x.reshape(4, 2, 32).astype(np.float64)
    # SIMD-group 0 sums the other's half of every step's tile, and the other way round.
    right = np.repeat(steps.sum(axis=(0, 2))[::-1], 32)
    out = np.zeros(64, np.float32)
    run("tile_loop_without_trailing_barrier", {0: x, 1: out}, (1, 1, 1), (64, 1, 1))
    # The default order runs the SIMD-groups in lockstep, from one SIMD-group function to the
    # next, which hides the race; a random order lets one run ahead.
    np.testing.assert_array_equal(out, right)
    for seed in (1, 2, 3):
        order = ("random", seed)
        run("tile_loop_without_trailing_barrier", {0: x, 1: out}, (1, 1, 1), (64, 1, 1), order=order)
        assert (out != right).any(), seed


@needs_harness
def test_threadgroup_memory_past_an_apple_gpus_is_named():
    out = np.zeros(32, np.float32)
    too_large = r"threadgroup_memory_too_large.*uses 32800 bytes of threadgroup memory"
    with pytest.raises(ValueError, match=too_large):
        run("threadgroup_memory_too_large", {0: out}, (1, 1, 1), (32, 1, 1))
    x, columns = np.zeros(4, np.float32), np.array([4], np.uint32)
    too_large = "the dispatch gives 40000 bytes of threadgroup memory; Apple GPUs have 32768"
    with pytest.raises(ValueError, match=too_large):
        run("row_softmax", {0: x, 1: x, 2: columns}, (1, 1, 1), (32, 1, 1), {0: 40000})


@needs_harness
def test_a_barrier_not_every_thread_reaches_is_a_deadlock():
    out = np.zeros(32, np.float32)
    with pytest.raises(RuntimeError, match="deadlocked") as error:
        run("divergent_barrier", {0: out}, (1, 1, 1), (32, 1, 1))
    assert re.search(r"threads 0\.\.15 \(16\) threadgroup_barrier at broken\.metal:\d+", str(error.value))
    assert "threads 16..31 (16) returned" in str(error.value)


@needs_harness
def test_a_simd_function_in_divergent_code_is_named():
    out = np.zeros(32, np.float32)
    with pytest.raises(
        RuntimeError, match=r"divergent control flow.*SIMD-group function at broken\.metal:\d+"
    ):
        run("divergent_simd_sum", {0: out}, (1, 1, 1), (32, 1, 1))


@needs_harness
def test_dispatch_errors_name_the_problem():
    with pytest.raises(ValueError, match="no kernel named 'nope'"):
        run("nope", {}, (1, 1, 1), (1, 1, 1))
    with pytest.raises(ValueError, match=r"reads \[\[buffer\(1\)\]\], which the dispatch left empty"):
        run("missing_barrier", {0: np.zeros(4, np.float32)}, (1, 1, 1), (4, 1, 1))
    with pytest.raises(ValueError, match="2048 threads per threadgroup"):
        run("device_overflow", {0: np.zeros(4, np.float32)}, (1, 1, 1), (2048, 1, 1))


OVERFLOWS = {
    "threadgroup_overflow": "np.zeros(32, np.float32)",
    "device_overflow": "np.zeros(32, np.float32)",
}


@needs_harness
@pytest.mark.skipif(not ASAN, reason="AddressSanitizer mode only (nox -s metal)")
@pytest.mark.parametrize("kernel", OVERFLOWS)
def test_out_of_bounds_is_reported_at_its_metal_line(kernel):
    # ASan aborts the process: run the kernel in a child and read its report.
    code = (
        "import numpy as np, orchard_core as oc; "
        f"oc._core._metal_harness_run('{kernel}', {{0: {OVERFLOWS[kernel]}}}, {{}}, (1, 1, 1), (32, 1, 1))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "AddressSanitizer" in result.stderr and re.search(r"broken\.metal:\d+", result.stderr), (
        result.stderr[-3000:]
    )


@needs_harness
def test_the_harness_compiles_the_metallib_list():
    """The kernel files the harness compiled are those of meson's metal_kernel_files (the list
    the metallib rule compiles), and that list is every .metal file in kernels/."""
    meson = (PACKAGE / "meson.build").read_text()
    listed = re.search(r"metal_kernel_files = files\(([^)]*)\)", meson).group(1)
    listed = {Path(p).name for p in re.findall(r"'([^']+\.metal)'", listed)}
    on_disk = {p.name for p in (PACKAGE / "src" / "backend" / "metal" / "kernels").glob("*.metal")}
    assert listed == on_disk
    sources = {Path(oc._core._metal_harness_kernel_source(k)) for k in oc._core._metal_harness_kernels()}
    # Packages built against this orchard-core (orchard-flash) register their kernels with the
    # same executor once imported: only this package's folders count.
    compiled = {
        p.name
        for p in sources
        if p.parts[-4:-1] == ("backend", "metal", "kernels") or p.parts[-3:-1] == ("tests", "metal_harness")
    }
    assert compiled == listed | {"checks.metal", "broken.metal", "features.metal"}
