"""Parity cases: matmul over every pair of ranks 1-4, with broadcast (size-1 and missing)
batch dims and size-0 matrix dims."""

from __future__ import annotations

from _parity import OpCase, array
from hypothesis import strategies as st

SIDES = st.integers(0, 6)


@st.composite
def matmul_args(draw, rank_a: int, rank_b: int):
    batch = draw(st.lists(st.integers(0, 3), min_size=2, max_size=2))
    m, k, n = draw(SIDES), draw(SIDES), draw(SIDES)

    def batch_of(rank: int) -> tuple[int, ...]:
        # The trailing batch dims of the broadcast result, each possibly 1.
        kept = batch[len(batch) - (rank - 2) :] if rank > 2 else []
        return tuple(1 if draw(st.booleans()) else side for side in kept)

    a = (k,) if rank_a == 1 else (*batch_of(rank_a), m, k)
    b = (k,) if rank_b == 1 else (*batch_of(rank_b), k, n)
    return [draw(array(a)), draw(array(b))]


RANKS = [(a, b) for a in range(1, 5) for b in range(1, 5)]

CASES = [OpCase(f"matmul_{a}d_{b}d", lambda lib, x, y: lib.matmul(x, y), matmul_args(a, b)) for a, b in RANKS]
CASES += [
    OpCase("matmul_operator", lambda lib, x, y: x @ y, matmul_args(3, 2)),
    OpCase("matmul_method", lambda lib, x, y: x.matmul(y), matmul_args(1, 3)),
]
