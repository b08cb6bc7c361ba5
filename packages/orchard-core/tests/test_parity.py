"""Every operator against torch, forward and backward, through the parity harness (_parity.py).

Each case runs on random shapes (broadcast pairs, size-0 and size-1 dims, non-contiguous
layouts) drawn by hypothesis, in float32 and float64, on every device; gradcheck compares
the analytical gradients with float64 finite differences on small shapes.
"""

from __future__ import annotations

import _parity_elementwise
import _parity_linalg
import _parity_reduce
import _parity_shape
import _parity_sort
import pytest
from _core_helpers import HYPOTHESIS
from _parity import OpCase, check_gradcheck, check_parity
from hypothesis import given, settings
from hypothesis import strategies as st

CASES: list[OpCase] = [
    *_parity_elementwise.CASES,
    *_parity_reduce.CASES,
    *_parity_shape.CASES,
    *_parity_linalg.CASES,
    *_parity_sort.CASES,
]


def _params(predicate=lambda case, dtype: True):
    return [
        pytest.param(case, dtype, id=f"{case.name}-{dtype}")
        for case in CASES
        for dtype in case.dtypes
        if predicate(case, dtype)
    ]


@pytest.mark.parametrize(("case", "dtype"), _params())
@settings(HYPOTHESIS, max_examples=15)
@given(data=st.data())
def test_forward_and_backward_match_torch(case: OpCase, dtype: str, device: str, data) -> None:
    check_parity(case, data.draw(case.args, label="args"), dtype, device)


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in CASES if c.grad and c.gradcheck])
@settings(HYPOTHESIS, max_examples=4)
@given(data=st.data())
def test_gradients_match_finite_differences(case: OpCase, data) -> None:
    check_gradcheck(case, data.draw(case.args, label="args"), "cpu")
