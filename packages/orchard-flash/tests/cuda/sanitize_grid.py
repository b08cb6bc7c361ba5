#!/usr/bin/env python3
"""Forward + backward of orchard-flash's CUDA kernels on tiny shapes, for compute-sanitizer
(run_sanitizer.sh runs it under memcheck and racecheck).

Covers full and causal masks (both alignments), dropout, GQA and MQA, lengths that fit no
block, rows that see no key, bfloat16/float16/float32 and head dims 40, 64, 128, 256. Every
case runs forward and backward into NaN-filled buffers and again without buffers, and checks
that nothing is left NaN, that both give bitwise the same results, and that they match float64
attention on the CPU (float32: absolute 1e-4 for out and lse, 3e-5 relative for gradients;
16-bit: flash-attn's rule, at most 2x (out) and 3x (gradients) the error of naive attention
computed in the same dtype). It also compares the GPU dropout mask with the CPU one.

torch does as little as possible on the GPU here (its kernels are checked too unless the
sanitizer filters them out): inputs and buffers are made on the CPU and copied over, results
copied back, references computed on the CPU.

    python sanitize_grid.py [--grid tiny|small|full] [--device cuda:0] [--seed N]

Exits 0 when every case passes, 1 on any mismatch or error (listed at the end), 2 when
orchard-flash has no CUDA device.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import traceback
from pathlib import Path

import numpy as np
import orchard_flash as of
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the shared references

from _flash_reference import reference, reference_keep_mask, visible_keys

SHAPES = [  # batch, heads, heads_kv, len_q, len_k
    (1, 2, 2, 17, 17),
    (1, 4, 2, 33, 65),  # GQA, len_q < len_k
    (2, 2, 1, 65, 31),  # MQA, len_q > len_k: bottom-right rows that see no key
    (1, 2, 1, 1, 129),  # one query row over two key blocks
]
DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
DIMS = [40, 64, 128, 256]
MASKS = {
    "full": (False, "bottom_right"),
    "causal_br": (True, "bottom_right"),
    "causal_tl": (True, "top_left"),
}
DROPOUT = [0.0, 0.25]
SLACK = 1e-5  # the 16-bit bounds' absolute floor (see test_bfloat16.py)


def grid(name: str) -> list[tuple[str, int, str, float, tuple[int, ...]]]:
    """(dtype, dim, mask, dropout_p, shape) cases. tiny: each dtype and dim once (12, for
    racecheck); small: each dtype, dim and mask (36, for memcheck); full: everything (288).
    Masks, dropout and shapes rotate through the smaller grids."""
    if name == "full":
        return list(itertools.product(DTYPES, DIMS, MASKS, DROPOUT, SHAPES))
    pairs = itertools.product(DTYPES, DIMS) if name == "tiny" else itertools.product(DTYPES, DIMS, MASKS)
    cases = []
    for i, pair in enumerate(pairs):
        dtype, dim, *mask = pair
        mask = mask[0] if mask else list(MASKS)[i % len(MASKS)]
        cases.append((dtype, dim, mask, DROPOUT[i % len(DROPOUT)], SHAPES[i % len(SHAPES)]))
    return cases


def to_device(x: np.ndarray, dtype: torch.dtype, device: str) -> torch.Tensor:
    """Converted on the CPU, then copied (no torch kernel on the GPU)."""
    return torch.tensor(x, dtype=dtype).to(device)


def poisoned(shape, dtype: torch.dtype, device: str) -> torch.Tensor:
    return torch.full(tuple(shape), float("nan"), dtype=dtype).to(device)


def host(t) -> torch.Tensor:
    """A result (orchard or torch tensor on the GPU) copied to the CPU, in its own dtype."""
    return (t if isinstance(t, torch.Tensor) else torch.from_dlpack(t)).cpu()


def max_error(got: torch.Tensor, want: np.ndarray) -> float:
    got64, finite = got.double().numpy(), np.isfinite(want)
    return float(np.abs(got64[finite] - want[finite]).max(initial=0.0))


def run_case(case, device: str, rng: np.random.Generator) -> list[str]:
    """The problems found in one case (empty when it passes)."""
    dtype_name, dim, mask, p, (batch, heads, heads_kv, len_q, len_k) = case
    dtype = DTYPES[dtype_name]
    causal, alignment = MASKS[mask]
    row = torch.float32
    seed = int(rng.integers(0, 2**63))
    q = rng.standard_normal((batch, heads, len_q, dim))
    k, v = (rng.standard_normal((batch, heads_kv, len_k, dim)) for _ in range(2))
    dout = rng.standard_normal(q.shape)
    dlse = rng.standard_normal(q.shape[:3]).astype(np.float32).astype(np.float64)
    exact = [torch.tensor(x, dtype=dtype).double().numpy() for x in (q, k, v, dout)]  # what the kernels see
    tq, tk, tv, tdout = (to_device(x, dtype, device) for x in (q, k, v, dout))
    tdlse = to_device(dlse, row, device)
    options = dict(causal=causal, causal_alignment=alignment, dropout_p=p, seed=seed)

    buffers = [poisoned(q.shape, dtype, device), poisoned(q.shape[:3], row, device)]
    got = of.forward(tq, tk, tv, out=buffers[0], lse=buffers[1], **options)
    fresh = of.forward(tq, tk, tv, **options)
    grad_buffers = [poisoned(x.shape, dtype, device) for x in (q, k, v)]
    grads = of.backward(
        tdout,
        tq,
        tk,
        tv,
        *got,
        dlse=tdlse,
        dq=grad_buffers[0],
        dk=grad_buffers[1],
        dv=grad_buffers[2],
        **options,
    )
    fresh_grads = of.backward(tdout, tq, tk, tv, *got, dlse=tdlse, **options)
    # The Hopper tier's atomic dQ path (other tiers ignore the flag): checked like the others.
    atomic = of.backward(tdout, tq, tk, tv, *got, dlse=tdlse, deterministic=False, **options)
    mask_gpu = of.dropout_mask(batch, heads, len_q, len_k, dropout_p=max(p, 0.1), seed=seed, device=device)
    torch.cuda.synchronize(device)

    problems = []
    names = ("out", "lse", "dq", "dk", "dv")
    for name, result, buffer in zip(names, (*got, *grads), (*buffers, *grad_buffers), strict=True):
        if torch.from_dlpack(result).data_ptr() != buffer.data_ptr():
            problems.append(f"{name}: not returned in the {name}= buffer")
    results = [host(t) for t in (*buffers, *grad_buffers)]
    for name, result, alone in zip(names, results, (*fresh, *fresh_grads), strict=True):
        if result.isnan().any():
            problems.append(f"{name}: NaN left in the buffer (elements not written)")
        elif not torch.equal(result, host(alone)):
            problems.append(f"{name}: the buffered and the allocating calls differ")
    cpu_mask = of.dropout_mask(batch, heads, len_q, len_k, dropout_p=max(p, 0.1), seed=seed, device="cpu")
    if not np.array_equal(host(mask_gpu).numpy(), np.asarray(cpu_mask)):
        problems.append("dropout_mask: the GPU mask differs from the CPU mask")

    keep = reference_keep_mask(batch, heads, len_q, len_k, dropout_p=p, seed=seed) if p else None
    ref = dict(causal=causal, alignment=alignment, keep=keep, dropout_p=p)
    want = reference(*exact, dlse, **ref)
    lse, want_lse = results[1].double().numpy(), want[1]
    if not np.all(lse[~np.isfinite(want_lse)] == -np.inf):
        problems.append("lse: rows that see no key must have lse -inf")
    if max_error(results[1], want_lse) > 1e-4:
        problems.append(f"lse: error {max_error(results[1], want_lse):.3g} > 1e-4")
    if dtype == torch.float32:
        if max_error(results[0], want[0]) > 1e-4:
            problems.append(f"out: error {max_error(results[0], want[0]):.3g} > 1e-4")
        scale = max(float(np.abs(w).max(initial=0.0)) for w in want[2:])
        for name, g, w in zip(names[2:], results[2:], want[2:], strict=True):
            if max_error(g, w) > 3e-5 * scale:
                problems.append(f"{name}: error {max_error(g, w):.3g} > 3e-5 * {scale:.3g}")
    else:
        naive = reference(*exact, dlse, dtype=dtype, **ref)
        # With dropout and no row seeing more than one key (one top-left row), exact dq and dk
        # are 0 but the kernels' are not: rowsum(dO * O) uses out rounded to 16 bits, and
        # 1/(1 - p) makes that rounding inexact. Naive attention has no such term to compare.
        lone = p > 0 and visible_keys(len_q, len_k, causal, alignment).sum(-1).max(initial=0) <= 1
        checked = [*zip(names, (2, None, 3, 3, 3), results, range(5), strict=True)]
        atomic_grads = zip(names[2:], atomic, (2, 3, 4), strict=True)
        checked += [(f"atomic {name}", 3, host(g), i) for name, g, i in atomic_grads]
        for name, bound, result, i in checked:
            if bound is None or (lone and name.endswith(("dq", "dk"))):
                continue
            err, naive_err = max_error(result, want[i]), max_error(torch.from_numpy(naive[i]), want[i])
            if err > bound * naive_err + SLACK:
                problems.append(f"{name}: error {err:.3g} > {bound} x naive {naive_err:.3g}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grid", choices=["tiny", "small", "full"], default="small")
    parser.add_argument("--device", help="default: the first CUDA device orchard-flash lists")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tier", choices=["hopper", "sm80", "simt"], help="limit the kernels to a tier")
    args = parser.parse_args()
    if args.tier:
        from orchard_flash import _flash

        _flash._set_cuda_tier(args.tier)
    cuda = [d for d in of.available_devices() if d.startswith("cuda")]
    if not torch.cuda.is_available() or not (args.device or cuda):
        print("no CUDA device: orchard-flash lists", of.available_devices(), file=sys.stderr)
        return 2
    device = args.device or cuda[0]
    rng = np.random.default_rng(args.seed)
    failures = []
    cases = grid(args.grid)
    for case in cases:
        dtype, dim, mask, p, shape = case
        label = f"{dtype} D={dim} {mask} p={p} shape={'x'.join(map(str, shape))}"
        try:
            problems = run_case(case, device, rng)
        except Exception:
            problems = ["raised:\n" + traceback.format_exc()]
        print(("ok    " if not problems else "FAIL  ") + label, flush=True)
        failures += [f"{label}: {problem}" for problem in problems]
    print(f"{len(cases)} cases, {len(failures)} problems")
    for failure in failures:
        print("  " + failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
