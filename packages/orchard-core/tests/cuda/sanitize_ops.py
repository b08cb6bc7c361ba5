#!/usr/bin/env python3
"""Every op family's CUDA kernels once, on small shapes that fit no block, for compute-sanitizer
(run_sanitizer.sh runs this under memcheck and racecheck).

The cases are test_backends.py's (one call per kernel entry point, forward and backward of the
norms), in float32, bfloat16 and float16, each compared with the CPU's kernels on the same
values (test_device_kernels_against_the_cpus's tolerance); plus a matmul, a linear with a bias
and a batched product over a transposed view, whose values test_ops_matmul.py and
test_ops_linear.py bound (here: finite, of the CPU's shape). Exits 0 when every case passes, 1
on any mismatch or error (listed), 2 when orchard-core has no such device.

    python sanitize_ops.py [--device cuda:0] [--seed N]
"""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

import numpy as np
import orchard_core as oc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from test_backends import _cases

EPS = {"float32": 2.0**-23, "bfloat16": 2.0**-8, "float16": 2.0**-11}


def products(rng: np.random.Generator):
    """matmul, linear with a bias and a batched product with a transposed operand."""
    a, b = rng.standard_normal((37, 41)), rng.standard_normal((41, 35))
    batch = rng.standard_normal((3, 19, 23))
    bias = rng.standard_normal(35)
    return {
        "matmul 37x41x35": lambda on: on(a) @ on(b),
        "linear with a bias": lambda on: oc.linear(on(a), on(b).T, on(bias)),
        "batched, transposed": lambda on: oc.matmul(on(batch), on(batch).mT),
    }


def check(name: str, have: oc.Tensor, want: oc.Tensor, eps: float, values: bool) -> None:
    assert have.dtype == want.dtype and have.shape == want.shape, name
    wide = oc.float32 if want.dtype in (oc.bfloat16, oc.float16) else want.dtype
    ours, reference = have.to("cpu").to(wide).numpy(), want.to(wide).numpy()
    if not values:
        assert np.isfinite(ours).all(), name
    elif not np.issubdtype(reference.dtype, np.floating):
        np.testing.assert_array_equal(ours, reference, err_msg=name)
    else:
        finite = np.isfinite(reference)
        np.testing.assert_array_equal(ours[~finite], reference[~finite], err_msg=name)
        tol = 4 * eps * np.abs(reference[finite]) + 8 * 2.0**-23 * 16 * 13
        np.testing.assert_array_less(np.abs(ours[finite] - reference[finite]), tol, err_msg=name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda:0")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.device not in [str(d) for d in oc.devices()]:
        print(f"sanitize_ops.py: orchard-core has no device {args.device}", file=sys.stderr)
        return 2
    rng = np.random.default_rng(args.seed)
    failures, ran = [], 0
    for dtype, eps in EPS.items():
        wanted = getattr(oc, dtype)
        checked, unchecked = _cases(rng, magnitude=4.0), products(rng)
        for name, case in {**checked, **unchecked}.items():

            def on(where, wanted=wanted):
                def make(a):
                    values = np.asarray(a)
                    return oc.tensor(values).to(wanted if values.dtype.kind == "f" else None).to(where)

                return make

            try:
                reference = case(on("cpu"))
            except TypeError:
                continue  # the operator takes no such dtype
            try:
                result = case(on(args.device))
                results = result if isinstance(result, tuple) else (result,)
                references = reference if isinstance(reference, tuple) else (reference,)
                for have, want in zip(results, references, strict=True):
                    check(f"{name} ({dtype})", have, want, eps, values=name in checked)
                ran += 1
            except Exception:  # every failure listed, the run goes on
                failures.append(f"{name} ({dtype}):\n{traceback.format_exc()}")
    oc.synchronize(args.device)
    print(f"sanitize_ops.py: {ran} cases passed, {len(failures)} failed")
    for failure in failures:
        print(failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
