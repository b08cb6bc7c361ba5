"""The fused forward pass against naive float64 attention on every instruction set, on CUDA and on
Metal, any strides, and its input checks."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import orchard_core as oc
import orchard_flash as of
import pytest
from _flash_devices import cast, device_tensor, kernel_dtypes, on, require_kernels_for
from _flash_devices import forward as run_forward
from _flash_reference import as_numpy, assert_lse_close, max_error, random_qkv, reference
from orchard_flash import _flash

# (batch, heads, heads_kv, len_q, len_k, dim): lengths mostly not multiples of the blocks (64
# query rows x 128 keys, rows padded to 16); MHA, GQA and MQA; batch > 1.
SHAPES = [
    (1, 1, 1, 1, 1, 8),
    (2, 4, 2, 113, 203, 40),  # GQA
    (1, 2, 1, 203, 113, 128),  # MQA, len_q > len_k: bottom-right rows that see nothing
    (2, 2, 2, 128, 128, 64),  # exact block multiples
    (1, 3, 1, 67, 67, 256),
    (1, 2, 1, 1, 300, 40),  # one query row (decoding) over three key blocks
    (1, 1, 1, 300, 1, 8),  # one key
    (1, 1, 1, 1000, 1000, 64),
    (1, 1, 1, 2048, 2048, 64),
]
# (causal, causal_alignment)
MASKS = [(False, "bottom_right"), (True, "bottom_right"), (True, "top_left")]


def shape_id(shape) -> str:
    return "x".join(map(str, shape))


def f32(x) -> oc.Tensor:
    return oc.tensor(x, dtype=oc.float32)


def rounded(x) -> np.ndarray:
    """x rounded to float32, back in float64: the values the kernel really sees."""
    return np.asarray(x, dtype=np.float32).astype(np.float64)


@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
@pytest.mark.parametrize(("causal", "alignment"), MASKS, ids=["full", "causal_br", "causal_tl"])
def test_float32_forward_matches_float64_attention(rng, device, shape, causal, alignment):
    q, k, v = random_qkv(rng, *shape)
    scale = float(rng.uniform(0.05, 0.5))
    kw = dict(causal=causal, scale=scale, causal_alignment=alignment)
    out, lse = run_forward(on(q, device), on(k, device), on(v, device), **kw)
    want_out, want_lse = reference(*map(rounded, (q, k, v)), causal=causal, alignment=alignment, scale=scale)
    assert out.shape == q.shape and out.dtype == oc.float32 and out.is_contiguous()
    assert lse.shape == q.shape[:3] and lse.dtype == oc.float32
    assert max_error(out, want_out) < 1e-4
    assert_lse_close(lse, want_lse, atol=1e-4)
    assert not np.isnan(as_numpy(out)).any()


def test_alignments_agree_when_lengths_match(rng, device):
    q, k, v = (on(x, device) for x in random_qkv(rng, 2, 4, 2, 150, 150, 32))
    bottom = run_forward(q, k, v, causal=True)
    top = run_forward(q, k, v, causal=True, causal_alignment="top_left")
    for a, b in zip(bottom, top, strict=True):
        assert as_numpy(a).tobytes() == as_numpy(b).tobytes()


def test_many_heads_few_rows(rng, device):
    # Decoding-like: a few query rows, many (batch, head) items, GQA groups of four.
    q, k, v = random_qkv(rng, 3, 32, 8, 3, 45, 16)
    out, lse = run_forward(on(q, device), on(k, device), on(v, device), causal=True)
    want_out, want_lse = reference(*map(rounded, (q, k, v)), causal=True)
    assert max_error(out, want_out) < 1e-4
    assert_lse_close(lse, want_lse, atol=1e-4)


def test_default_scale_is_inverse_sqrt_dim(rng, device):
    q, k, v = random_qkv(rng, 1, 2, 2, 33, 70, 48)
    out, lse = run_forward(on(q, device), on(k, device), on(v, device))
    want_out, want_lse = reference(*map(rounded, (q, k, v)), scale=48**-0.5)
    assert max_error(out, want_out) < 1e-4
    assert_lse_close(lse, want_lse, atol=1e-4)


def test_float64_is_exact_to_rounding(rng, device):
    require_kernels_for(device, oc.float64)
    q, k, v = random_qkv(rng, 2, 4, 2, 70, 150, 24)
    out, lse = run_forward(*(on(x, device, oc.float64) for x in (q, k, v)), causal=True)
    want_out, want_lse = reference(q, k, v, causal=True)
    assert out.dtype == oc.float64 and lse.dtype == oc.float64
    np.testing.assert_allclose(as_numpy(out), want_out, rtol=1e-12, atol=1e-13)
    finite = np.isfinite(want_lse)
    np.testing.assert_allclose(as_numpy(lse)[finite], want_lse[finite], rtol=1e-12)


# ---- any strides, any DLPack producer --------------------------------------------------------
# Views of torch tensors on cpu and cuda, of orchard tensors on metal (device_tensor).


def test_transposed_torch_inputs(rng, device):
    # (batch, length, heads, dim) transposed to (batch, heads, length, dim): no copy needed.
    q = rng.standard_normal((2, 77, 4, 32)).astype(np.float32)
    k = rng.standard_normal((2, 90, 2, 32)).astype(np.float32)
    v = rng.standard_normal((2, 90, 2, 32)).astype(np.float32)
    views = [device_tensor(x, device).transpose(1, 2) for x in (q, k, v)]
    assert not views[0].is_contiguous()
    out, lse = run_forward(*views, causal=True)
    want_out, want_lse = reference(
        *(x.transpose(0, 2, 1, 3).astype(np.float64) for x in (q, k, v)), causal=True
    )
    assert out.is_contiguous()
    assert max_error(out, want_out) < 1e-4
    assert_lse_close(lse, want_lse, atol=1e-4)


def test_sliced_inputs(rng, device):
    # Offsets, a stride of 2 along the length, the head dim a slice of a wider one, every
    # third or fourth head: every stride differs from the contiguous one.
    big = [
        device_tensor(rng.standard_normal((3, 6, 2 * n + 1, 96)).astype(np.float32), device)
        for n in (45, 60, 60)
    ]
    q = big[0][1:, ::3, 1::2, 8:88:2]  # (2, 2, 45, 40), a stride of 2 along the head dim too
    k, v = (x[1:, 1::4, 1::2, 8:48] for x in big[1:])  # (2, 2, 60, 40)
    assert q.shape == (2, 2, 45, 40) and k.shape == v.shape == (2, 2, 60, 40)
    out, lse = run_forward(q, k, v, causal=True, causal_alignment="top_left")
    want_out, want_lse = reference(*map(as_numpy, (q, k, v)), causal=True, alignment="top_left")
    assert max_error(out, want_out) < 1e-4
    assert_lse_close(lse, want_lse, atol=1e-4)


def test_broadcast_kv_with_zero_strides(rng, device):
    # k and v expanded over batch and heads (stride 0) give the same as MQA over one copy.
    q, k, v = random_qkv(rng, 2, 4, 1, 50, 140, 16)
    q32, k32, v32 = (device_tensor(x.astype(np.float32), device) for x in (q, k, v))
    k1, v1 = k32[:1], v32[:1]
    expanded = run_forward(q32, k1.expand(2, 4, 140, 16), v1.expand(2, 4, 140, 16))
    shared = run_forward(q32, k1.expand(2, 1, 140, 16), v1.expand(2, 1, 140, 16))
    want_out, want_lse = reference(as_numpy(q32), *(as_numpy(x.expand(2, 1, 140, 16)) for x in (k1, v1)))
    for out, lse in (expanded, shared):
        assert max_error(out, want_out) < 1e-4
        assert_lse_close(lse, want_lse, atol=1e-4)


def test_numpy_and_orchard_views(rng, isa):
    q, k, v = random_qkv(rng, 1, 2, 2, 40, 40, 16)
    q_np = np.ascontiguousarray(q.transpose(0, 2, 1, 3)).astype(np.float32).transpose(0, 2, 1, 3)
    k_oc = oc.tensor(k.transpose(0, 1, 3, 2), dtype=oc.float32).transpose(2, 3)  # a transposed orchard view
    assert not k_oc.is_contiguous()
    out, lse = of.forward(q_np, k_oc, v.astype(np.float32))
    want_out, want_lse = reference(*map(rounded, (q, k, v)))
    assert max_error(out, want_out) < 1e-4
    assert_lse_close(lse, want_lse, atol=1e-4)


# ---- numerics --------------------------------------------------------------------------------


def test_large_logits_do_not_overflow(rng, device):
    # Scores around 1e5 - 1e6: exp would overflow without the running max. The softmax is then
    # nearly one-hot; rows whose two largest scores are within fp32 rounding of each other
    # (about 1e-6 of their size) may legitimately pick the other key, so they are left out.
    q, k, v = random_qkv(rng, 1, 2, 1, 90, 300, 64)
    q = q * 1e4
    q32, k32, v32 = map(rounded, (q, k, v))
    out, lse = run_forward(on(q, device), on(k, device), on(v, device), causal=True)
    want_out, want_lse = reference(q32, k32, v32, causal=True)
    got_out, got_lse = as_numpy(out), as_numpy(lse)
    assert np.isfinite(got_out).all() and np.isfinite(got_lse).all()
    scores = np.einsum("bhid,bjd->bhij", q32, k32[:, 0]) / 8.0
    scores = np.where(np.arange(300) <= np.arange(90)[:, None] + 210, scores, -np.inf)
    top2 = np.sort(scores, axis=-1)[..., -2:]
    clear = (top2[..., 1] - top2[..., 0]) > 1e-3 * np.abs(top2[..., 1]) + 100
    assert clear.mean() > 0.5
    assert np.abs(got_out - want_out)[clear].max() < 1e-4
    np.testing.assert_allclose(got_lse, want_lse, rtol=2e-6)


def test_running_max_rescales_across_key_blocks(rng, device):
    # Scores that grow along the keys, from about -95 to 95: more than exp spans in float32
    # (e^-104 is below the smallest subnormal), so every key block raises the row max and the
    # sums of the earlier blocks must be rescaled (to zero, at the start), neither overflowing
    # nor kept. Small integers keep the dot products exact; what is left is the rounding of
    # the scaled scores (u |s| ~ 1e-5 relative to each probability) and the softmax's own.
    len_q, len_k, dim = 70, 517, 16
    q = rng.integers(-1, 2, (1, 2, len_q, dim)).astype(np.float64)
    q[..., 0] = 4
    k = rng.integers(-2, 3, (1, 1, len_k, dim)).astype(np.float64)
    k[..., 0] = np.arange(len_k) - len_k // 2
    v = rng.standard_normal((1, 1, len_k, dim))
    for scale in (0.05, 0.09):
        for alignment in ("bottom_right", "top_left"):
            kw = dict(causal=True, scale=scale)
            inputs = [on(x, device) for x in (q, k, v)]
            out, lse = run_forward(*inputs, causal_alignment=alignment, **kw)
            want_out, want_lse = reference(q, k, rounded(v), alignment=alignment, **kw)
            assert max_error(out, want_out) < 1e-4
            np.testing.assert_allclose(as_numpy(lse), want_lse, rtol=1e-6)


# ---- instruction sets ------------------------------------------------------------------------


def test_instruction_sets():
    isas = _flash._cpu_isas()
    assert isas[0] == "generic" and set(isas) <= {"generic", "avx2", "avx512", "avx512_bf16", "amx_bf16"}
    assert isas == oc._core._cpu_isas()  # one CPU check decides for both libraries
    # orchard-core's tier by default: the widest unless ORCHARD_CPU_ISA chose another (the isa
    # fixture restores it)
    assert _flash._cpu_isa() == oc.cpu_isa()
    with pytest.raises(ValueError, match="'avx1024' is not available"):
        _flash._set_cpu_isa("avx1024")
    assert _flash._cpu_isa() == oc.cpu_isa()


def test_orchard_cpu_isa_chooses_the_kernels_of_both_libraries():
    script = "import orchard_core as oc, orchard_flash; print(oc.cpu_isa(), orchard_flash._flash._cpu_isa())"
    env = {**os.environ, "ORCHARD_CPU_ISA": "generic"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["generic", "generic"]


def test_instruction_sets_agree(rng):
    q, k, v = random_qkv(rng, 2, 4, 2, 150, 260, 72)
    results = []
    saved = _flash._cpu_isa()
    try:
        for name in _flash._cpu_isas():
            _flash._set_cpu_isa(name)
            assert _flash._cpu_isa() == name
            results.append(as_numpy(of.forward(f32(q), f32(k), f32(v), causal=True)[0]))
    finally:
        _flash._set_cpu_isa(saved)
    for other in results[1:]:
        assert np.abs(other - results[0]).max() < 1e-5


# ---- input checks ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        (lambda q, k, v: (q[..., :12], k[..., :12], v[..., :12]), ValueError, "head dim 12"),
        (lambda q, k, v: (q[..., :0], k[..., :0], v[..., :0]), ValueError, "head dim 0"),
        (lambda q, k, v: (q, cast(k, "float64"), v), TypeError, "one dtype"),
        (lambda q, k, v: (q, k, cast(v, "bfloat16")), TypeError, "one dtype"),
        (lambda q, k, v: (cast(q, "int64"), cast(k, "int64"), cast(v, "int64")), TypeError, "int64"),
        (lambda q, k, v: (cast(q, "bool"), cast(k, "bool"), cast(v, "bool")), TypeError, "bool"),
        (lambda q, k, v: (q[0], k, v), ValueError, "q must be 4-d"),
        (lambda q, k, v: (q, k[0], v), ValueError, "k must be 4-d"),
        (lambda q, k, v: (q, k, v.unsqueeze(0)), ValueError, "v must be 4-d"),
        (lambda q, k, v: (q, k[:, :, :5], v), ValueError, "length"),
        (lambda q, k, v: (q, k, v[:, :1]), ValueError, "heads"),
        (lambda q, k, v: (q[:, :3], k, v), ValueError, "not divisible"),
        (lambda q, k, v: (q[:1], k, v), ValueError, "batch sizes differ"),
        (lambda q, k, v: (q, k, v[:1]), ValueError, "batch sizes differ"),
        (lambda q, k, v: (q[..., :8], k[..., :8], v), ValueError, "head dims differ"),
    ],
)
def test_bad_inputs_raise_naming_the_value(rng, any_device, change, error, message):
    # The same errors on every device (on CUDA from torch tensors: orchard-core has no CUDA
    # operators to slice and convert with).
    q, k, v = (on(rng.standard_normal((2, 4, 9, 16)), any_device) for _ in range(3))
    k, v = k[:, :2], v[:, :2]
    with pytest.raises(error, match=message):
        of.forward(*change(q, k, v))


def test_other_devices_raise(monkeypatch):
    # "metal" here is orchard-core's host-memory stand-in: tensors on a device without kernels.
    # A build with the Metal harness ranks the harness's "metal" above the stand-in, and
    # orchard-flash has kernels for it: there only the mixed-device errors are left to test.
    monkeypatch.setenv("ORCHARD_METAL_FALLBACK", "cpu")
    cpu = oc.ones(1, 1, 4, 8)
    metal = oc.ones(1, 1, 4, 8, device="metal")
    if "metal" not in of.available_devices():
        with pytest.raises(ValueError, match="device metal has no kernels"):
            of.forward(metal, metal, metal)
    with pytest.raises(ValueError, match="must be on one device, got cpu, metal and metal"):
        of.forward(cpu, metal, metal)
    out, lse = of.forward(cpu, cpu, cpu)
    with pytest.raises(TypeError, match="dout is float32 on metal"):
        of.backward(metal, cpu, cpu, cpu, out, lse)
    with pytest.raises(ValueError, match=r"lse must be float32 of shape .* on cpu, got .* on metal"):
        of.backward(cpu, cpu, cpu, cpu, out, lse.to("metal"))


FLOAT_DTYPES = ("bfloat16", "float16", "float32", "float64")


def test_supported_dtypes_are_what_the_kernels_take(rng, any_device):
    # The capability query (which the bridge asks instead of keeping a table) answers for the
    # kernels: each dtype it lists runs, every other raises naming the list.
    supported = of.supported_dtypes(any_device)
    assert supported == kernel_dtypes(any_device)
    q = on(rng.standard_normal((1, 2, 5, 8)), any_device)
    for name in FLOAT_DTYPES:
        x = cast(q, name)
        if name in supported:
            out, lse = run_forward(x, x, x)
            row_dtype = oc.float64 if name == "float64" else oc.float32
            assert out.dtype == getattr(oc, name) and lse.dtype == row_dtype
            continue
        message = f"dtype {name} is not supported on {any_device} (supported: {', '.join(supported)})"
        with pytest.raises(TypeError, match=re.escape(message)):
            of.forward(x, x, x)


def test_supported_dtypes_of_devices_without_kernels():
    # Metal has kernels only with orchard-core's Metal harness (then checked as any_device).
    metal_listed = "metal" in of.available_devices()
    assert of.supported_dtypes("metal") == (kernel_dtypes("metal") if metal_listed else ())
    assert of.supported_dtypes("cuda") == (FLOAT_DTYPES if _flash._built_with_cuda() else ())
    assert of.supported_dtypes("cuda:3") == of.supported_dtypes("cuda")  # per device type
    # The CUDA tier switches exist exactly where the CUDA kernels do.
    assert hasattr(_flash, "_cuda_tier") == _flash._built_with_cuda()
    with pytest.raises(TypeError, match="device must be a str, got 0 of type int"):
        of.supported_dtypes(0)
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        of.supported_dtypes("tpu")


def test_head_dim_limit(rng, any_device):
    for dim in (8, 256):
        q = on(rng.standard_normal((1, 1, 3, dim)), any_device)
        assert run_forward(q, q, q)[0].shape == (1, 1, 3, dim)
    q = on(rng.standard_normal((1, 1, 3, 264)), any_device)
    with pytest.raises(ValueError, match="head dim 264"):
        of.forward(q, q, q)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("which", [0, 1, 2])
@pytest.mark.parametrize("dtype", [oc.float32, oc.bfloat16])
def test_non_finite_inputs_raise(rng, isa, bad, which, dtype):
    # CPU only: the CPU kernels check while packing, for free; on CUDA and Metal the check would
    # need a device-to-host sync on every call, so they do not detect NaN or infinite inputs.
    # Every tier, as each packs (and checks) bfloat16 its own way.
    qkv = [rng.standard_normal((1, 2, 70, 16)) for _ in range(3)]
    qkv[which][0, 1, 69, 15] = bad  # the last element: every element is checked
    with pytest.raises(ValueError, match="contain NaN or infinite values"):
        of.forward(*(on(x, "cpu", dtype) for x in qkv))


def test_bad_options_raise(rng, any_device):
    q = on(rng.standard_normal((1, 1, 4, 8)), any_device)
    with pytest.raises(ValueError, match=r"causal_alignment.*'middle'"):
        of.forward(q, q, q, causal=True, causal_alignment="middle")
    for scale in (-1.0, 0.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="scale must be finite and positive"):
            of.forward(q, q, q, scale=scale)
    for p in (-0.1, 1.0, 1.5, float("nan")):
        with pytest.raises(ValueError, match="dropout_p must be in"):
            of.forward(q, q, q, dropout_p=p)
    with pytest.raises(TypeError, match="DLPack"):
        of.forward([1.0], q, q)
    with pytest.raises(TypeError, match="k must be"):
        of.forward(q, "k", q)
