"""Bad inputs (issue 14's catalogue): each raises, naming the offending arguments and values,
before anything is written. Output buffers that share memory with each other or with an input
the kernels read (on the CPU, on CUDA and on Metal: the check is the passes' shared code), and
arguments of the wrong type or out of range (checked before the native module, whose own error
would only print its signature)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import orchard_core as oc
import orchard_flash as of
import pytest
import torch
from _flash_devices import DeviceTensor, as_device_tensor, device_tensor, filled, same_values
from _flash_reference import as_numpy, random_qkv

# batch, heads, heads_kv, len_q, len_k, dim: no multiple of a block size; q and k of one shape,
# so that dq and dk can be handed the same buffer.
SHAPE = (2, 3, 3, 45, 45, 24)


# Torch tensors on cpu and cuda, orchard's on metal (device_tensor).
@dataclass(frozen=True)
class Problem:
    q: DeviceTensor
    k: DeviceTensor
    v: DeviceTensor
    dout: DeviceTensor
    out: DeviceTensor
    lse: DeviceTensor
    dlse: DeviceTensor


def problem(rng: np.random.Generator, device: str) -> Problem:
    q, k, v = (device_tensor(x.astype("float32"), device) for x in random_qkv(rng, *SHAPE))
    dout = device_tensor(rng.standard_normal(q.shape).astype("float32"), device)
    dlse = device_tensor(rng.standard_normal(q.shape[:3]).astype("float32"), device)
    out, lse = (as_device_tensor(t) for t in of.forward(q, k, v, causal=True))
    return Problem(q, k, v, dout, out, lse, dlse)


def share(first: DeviceTensor, shape: tuple[int, ...], at: int) -> tuple[DeviceTensor, DeviceTensor]:
    """``first``'s values moved into a new allocation, and a contiguous ``shape`` buffer that
    starts ``at`` elements into the same allocation (filled with 7)."""
    n, size = first.numel(), math.prod(shape)
    pool = filled(first, 7.0, (max(n, at + size),))
    pool[:n] = first.reshape(-1)
    return pool[:n].view(first.shape), pool[at : at + size].view(shape)


def sentinel(like: DeviceTensor) -> DeviceTensor:
    return filled(like, 7.0)


def two_buffers(
    shape_a: tuple[int, ...], shape_b: tuple[int, ...], at: int, like: DeviceTensor
) -> tuple[DeviceTensor, DeviceTensor]:
    """Contiguous buffers of shape_a and shape_b in one allocation, the second ``at`` elements in."""
    return share(filled(like, 7.0, shape_a), shape_b, at)


# An overlap case: the pass, its inputs (some moved to share memory) and buffers, the message.
Case = tuple[str, Problem, dict[str, DeviceTensor], str]


def out_and_lse(p: Problem) -> Case:
    out, lse = two_buffers(p.q.shape, p.q.shape[:3], p.q.numel() - 5, p.q)
    return "forward", p, {"out": out, "lse": lse}, "the output buffers out and lse overlap in memory"


def lse_inside_out(p: Problem) -> Case:
    out = sentinel(p.q)
    lse = out.view(-1)[100 : 100 + p.lse.numel()].view(p.lse.shape)
    return "forward", p, {"out": out, "lse": lse}, "the output buffers out and lse overlap in memory"


def out_over_v(p: Problem) -> Case:
    v, out = share(p.v, tuple(p.q.shape), p.v.numel() - 1)
    return "forward", replace(p, v=v), {"out": out}, "the output buffer out overlaps the input v in memory"


def lse_inside_k(p: Problem) -> Case:
    k, lse = share(p.k, tuple(p.lse.shape), 7)
    return "forward", replace(p, k=k), {"lse": lse}, "the output buffer lse overlaps the input k in memory"


def dq_is_dk(p: Problem) -> Case:
    buffer = sentinel(p.q)
    return "backward", p, {"dq": buffer, "dk": buffer}, "the output buffers dq and dk overlap in memory"


def dq_is_dv(p: Problem) -> Case:
    buffer = sentinel(p.q)
    return "backward", p, {"dq": buffer, "dv": buffer}, "the output buffers dq and dv overlap in memory"


def dk_and_dv(p: Problem) -> Case:
    dk, dv = two_buffers(p.k.shape, tuple(p.v.shape), p.k.numel() - 1, p.k)
    return "backward", p, {"dk": dk, "dv": dv}, "the output buffers dk and dv overlap in memory"


def dv_is_out(p: Problem) -> Case:
    return "backward", p, {"dv": p.out}, "the output buffer dv overlaps the input out in memory"


def dq_over_dout(p: Problem) -> Case:
    dout, dq = share(p.dout, tuple(p.q.shape), 5)
    message = "the output buffer dq overlaps the input dout in memory"
    return "backward", replace(p, dout=dout), {"dq": dq}, message


def dk_over_lse(p: Problem) -> Case:
    lse, dk = share(p.lse, tuple(p.k.shape), p.lse.numel() // 2)
    return (
        "backward",
        replace(p, lse=lse),
        {"dk": dk},
        "the output buffer dk overlaps the input lse in memory",
    )


def dq_over_dlse(p: Problem) -> Case:
    dlse, dq = share(p.dlse, tuple(p.q.shape), p.dlse.numel() - 1)
    message = "the output buffer dq overlaps the input dlse in memory"
    return "backward", replace(p, dlse=dlse), {"dq": dq}, message


OVERLAPS: list[Callable[[Problem], Case]] = [
    out_and_lse,
    lse_inside_out,
    out_over_v,
    lse_inside_k,
    dq_is_dk,
    dq_is_dv,
    dk_and_dv,
    dv_is_out,
    dq_over_dout,
    dk_over_lse,
    dq_over_dlse,
]


def run(which: str, p: Problem, buffers: dict[str, DeviceTensor]) -> tuple[oc.Tensor, ...]:
    if which == "forward":
        return of.forward(p.q, p.k, p.v, causal=True, **buffers)
    return of.backward(p.dout, p.q, p.k, p.v, p.out, p.lse, causal=True, dlse=p.dlse, **buffers)


@pytest.mark.parametrize("case", OVERLAPS, ids=lambda c: c.__name__)
def test_overlapping_output_buffers_raise(rng, any_device, case):
    which, p, buffers, message = case(problem(rng, any_device))
    given = {**vars(p), **{f"buffer {name}": t for name, t in buffers.items()}}
    before = {name: t.clone() for name, t in given.items()}
    with pytest.raises(ValueError, match=re.escape(message)):
        run(which, p, buffers)
    # Checked before any write: inputs and buffers as they were.
    for name, t in given.items():
        assert same_values(t, before[name]), name


def test_buffers_between_an_inputs_elements_are_accepted(rng, any_device):
    # The check is exact for strided views: q's batch entries lie two heads' worth apart, and
    # out fits between them; dk and dv touch end to end. Both run, with the fresh results.
    p = problem(rng, any_device)
    batch, heads, length, dim = p.q.shape
    pool = filled(p.q, 7.0, (batch, 3, heads, length, dim))
    pool[:, 0] = p.q
    q, out = pool[:, 0], pool[0, 1:3]
    want_out = of.forward(q, p.k, p.v, causal=True)[0]
    of.forward(q, p.k, p.v, causal=True, out=out)
    assert same_values(out, want_out) and same_values(pool[:, 0], p.q)
    want = run("backward", p, {})
    dk, dv = two_buffers(p.k.shape, tuple(p.v.shape), p.k.numel(), p.k)
    run("backward", p, {"dk": dk, "dv": dv})
    assert same_values(dk, want[1]) and same_values(dv, want[2])


def strided_view_shape(rng: np.random.Generator, dense: bool) -> tuple[list[int], list[int]]:
    """A (batch, heads, length, 8) shape and strides: of a permuted, step-sliced dense tensor,
    or any strides (self-overlapping and interleaved too)."""
    shape = [*(int(n) for n in rng.integers(1, 4, size=3)), 8]
    if not dense:
        return shape, [int(s) for s in rng.integers(0, 40, size=4)]
    steps = [int(s) for s in rng.integers(1, 3, size=4)]
    order = rng.permutation(4)  # the parent's dims, outermost first
    parent = [n * step + int(rng.integers(0, 2)) for n, step in zip(shape, steps, strict=True)]
    strides, stride = [0] * 4, 1
    for d in reversed(order):
        strides[d] = stride * steps[d]
        stride *= parent[d]
    return shape, strides


@pytest.mark.parametrize("dense", [True, False], ids=["dense-views", "any-strides"])
def test_overlap_check_against_every_element(rng, dense):
    # out anywhere in the memory of a strided q: an overlap must always be found, and for views
    # of a dense tensor (the layouts callers make) an out between q's elements must be accepted.
    for _ in range(150):
        shape, strides = strided_view_shape(rng, dense)
        offset, size = int(rng.integers(0, 50)), math.prod(shape)
        elements = offset + sum(np.ix_(*(np.arange(n) * s for n, s in zip(shape, strides, strict=True))))
        pool = torch.zeros(int(elements.max()) + size + 60)
        q = pool.as_strided(shape, strides, offset)
        at = int(rng.integers(0, pool.numel() - size))
        k = torch.from_numpy(rng.standard_normal((shape[0], 1, 5, 8)).astype("float32"))
        overlap = bool(((elements >= at) & (elements < at + size)).any())
        try:
            of.forward(q, k, k, out=pool[at : at + size].view(shape))
            raised = False
        except ValueError as error:
            assert "the output buffer out overlaps the input q in memory" in str(error)
            raised = True
        assert raised or not overlap, (shape, strides, offset, at)
        assert raised == overlap or not dense, (shape, strides, offset, at)


# ---- arguments of the wrong type or out of range --------------------------------------------

BIG = 2**64  # past uint64: the binding's own error would be its signature

BAD_OPTIONS = [  # keyword, value, error, message
    ("scale", "a", TypeError, "scale must be a real number, got 'a' of type str"),
    ("scale", True, TypeError, "scale must be a real number, got True of type bool"),
    ("scale", -0.5, ValueError, "scale must be finite and positive, got -0.5"),
    ("dropout_p", "0.1", TypeError, "dropout_p must be a real number, got '0.1' of type str"),
    ("dropout_p", None, TypeError, "dropout_p must be a real number, got None of type NoneType"),
    ("dropout_p", 1.5, ValueError, "dropout_p must be in [0, 1), got 1.5"),
    ("seed", BIG, ValueError, f"seed must be an int in [0, 2**64), got {BIG}"),
    ("seed", -1, ValueError, "seed must be an int in [0, 2**64), got -1"),
    ("seed", 1.5, TypeError, "seed must be an int in [0, 2**64), got 1.5 of type float"),
    ("seed", True, TypeError, "seed must be an int in [0, 2**64), got True of type bool"),
    ("causal", "yes", TypeError, "causal must be a bool, got 'yes' of type str"),
    ("causal", 1, TypeError, "causal must be a bool, got 1 of type int"),
    ("causal_alignment", 3, TypeError, "causal_alignment must be a str, got 3 of type int"),
    (
        "causal_alignment",
        "middle",
        ValueError,
        "causal_alignment must be 'bottom_right' or 'top_left', got 'middle'",
    ),
    ("stream", BIG, TypeError, f"stream must be a cudaStream_t int or have .cuda_stream, got {BIG}"),
    ("stream", -1, TypeError, "stream must be a cudaStream_t int or have .cuda_stream, got -1"),
]


def call(entry: str, q, **options):
    if entry == "forward":
        return of.forward(q, q, q, **options)
    if entry == "backward":
        out, lse = of.forward(q, q, q)
        return of.backward(q, q, q, q, out, lse, **options)
    return of.flash_attention(q, q, q, **options)


BAD_CALLS = [  # flash_attention takes no stream
    (entry, *case)
    for entry in ("forward", "backward", "flash_attention")
    for case in BAD_OPTIONS
    if entry != "flash_attention" or case[0] != "stream"
]


@pytest.mark.parametrize(
    ("entry", "keyword", "value", "error", "message"),
    BAD_CALLS,
    ids=[f"{entry}-{keyword}={value!r}" for entry, keyword, value, *_ in BAD_CALLS],
)
def test_bad_options_raise_naming_the_value(rng, entry, keyword, value, error, message):
    q = oc.tensor(rng.standard_normal((1, 2, 13, 16)), dtype=oc.float32)
    with pytest.raises(error, match=re.escape(message)):
        call(entry, q, **{keyword: value})


@pytest.mark.parametrize("value", ["yes", None, 2])
def test_bad_deterministic_raises(rng, value):
    p = problem(rng, "cpu")
    with pytest.raises(TypeError, match=re.escape(f"deterministic must be a bool, got {value!r}")):
        of.backward(p.dout, p.q, p.k, p.v, p.out, p.lse, deterministic=value)


GOOD_MASK_ARGUMENTS = {"batch": 1, "heads": 2, "len_q": 3, "len_k": 5, "dropout_p": 0.1, "seed": 0}
BAD_MASK_ARGUMENTS = [  # keyword, value, error, message
    ("batch", BIG, ValueError, f"batch must be an int in [0, 2**63), got {BIG}"),
    ("heads", 2**63, ValueError, f"heads must be an int in [0, 2**63), got {2**63}"),
    ("len_q", -1, ValueError, "len_q must be an int in [0, 2**63), got -1"),
    ("len_k", 1.5, TypeError, "len_k must be an int in [0, 2**63), got 1.5 of type float"),
    ("batch", "3", TypeError, "batch must be an int in [0, 2**63), got '3' of type str"),
    ("seed", BIG, ValueError, f"seed must be an int in [0, 2**64), got {BIG}"),
    ("dropout_p", "a", TypeError, "dropout_p must be a real number, got 'a' of type str"),
    ("device", 0, TypeError, "device must be a str, got 0 of type int"),
]


@pytest.mark.parametrize(
    ("keyword", "value", "error", "message"),
    BAD_MASK_ARGUMENTS,
    ids=[f"{keyword}={value!r}" for keyword, value, *_ in BAD_MASK_ARGUMENTS],
)
def test_bad_mask_arguments_raise_naming_the_value(keyword, value, error, message):
    with pytest.raises(error, match=re.escape(message)):
        of.dropout_mask(**{**GOOD_MASK_ARGUMENTS, keyword: value})


def test_numpy_scalars_are_accepted(rng):
    # The checks take numpy's numbers as the binding did: the same results as Python's.
    q = oc.tensor(rng.standard_normal((1, 2, 13, 16)), dtype=oc.float32)
    seed = int(rng.integers(0, 2**63))
    want = as_numpy(of.forward(q, q, q, causal=True, scale=0.25, dropout_p=0.5, seed=seed)[0])
    got = as_numpy(
        of.forward(
            q, q, q, causal=np.True_, scale=np.float32(0.25), dropout_p=np.float64(0.5), seed=np.uint64(seed)
        )[0]
    )
    assert got.tobytes() == want.tobytes()
    mask = of.dropout_mask(np.int64(1), np.int32(2), np.uint8(3), 5, dropout_p=0.5, seed=np.int64(seed))
    assert mask.shape == (1, 2, 3, 5)
