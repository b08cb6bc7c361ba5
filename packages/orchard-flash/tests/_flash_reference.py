"""References for the orchard-flash tests: naive attention in torch (any dtype, float64 for the
ground truth) with the score matrix formed and an explicit mask, its gradients through torch's
autograd, and an independent numpy Philox4x32-10 for the dropout mask.

Named _flash_reference (not _reference) because pytest runs every package's tests in one
session and these helper modules share sys.path.
"""

from __future__ import annotations

import math

import numpy as np
import orchard_core as oc
import torch

# ---- conversions -----------------------------------------------------------------------------


def as_numpy(t) -> np.ndarray:
    """An orchard or torch tensor (any dtype, bfloat16 included, on any device) as a float64
    numpy array in host memory."""
    if isinstance(t, oc.Tensor):
        # torch takes a Metal DLPack tensor as "mps", unusable without MPS: orchard copies it first.
        t = torch.from_dlpack(t.cpu() if t.device.type == "metal" else t)
    if isinstance(t, torch.Tensor):
        return t.detach().to(device="cpu", dtype=torch.float64).numpy()
    return np.asarray(t, dtype=np.float64)


def random_qkv(rng: np.random.Generator, batch, heads, heads_kv, len_q, len_k, dim):
    """Fresh standard normal q (batch, heads, len_q, dim), k and v (batch, heads_kv, len_k, dim)."""
    q = rng.standard_normal((batch, heads, len_q, dim))
    k = rng.standard_normal((batch, heads_kv, len_k, dim))
    v = rng.standard_normal((batch, heads_kv, len_k, dim))
    return q, k, v


# ---- masks -----------------------------------------------------------------------------------


def visible_keys(len_q: int, len_k: int, causal: bool, alignment: str = "bottom_right") -> np.ndarray:
    """(len_q, len_k) bools: row i sees key j iff j <= i + offset (everything when not causal)."""
    if not causal:
        return np.ones((len_q, len_k), dtype=bool)
    offset = len_k - len_q if alignment == "bottom_right" else 0
    return np.arange(len_k)[None, :] <= np.arange(len_q)[:, None] + offset


_MUL0, _MUL1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
_WEYL0, _WEYL1 = 0x9E3779B9, 0xBB67AE85
_LOW32 = np.uint64(0xFFFFFFFF)


def philox4x32_10(counter, key) -> np.ndarray:
    """Philox4x32-10 (Salmon et al., SC'11) on broadcastable arrays of 32-bit counter words.

    counter: 4 arrays (or ints), key: 2 ints. Returns uint32 of shape (4, *broadcast shape).
    The products of two 32-bit words are formed in uint64, so nothing overflows.
    """
    c0, c1, c2, c3 = np.broadcast_arrays(*(np.asarray(c, dtype=np.uint64) for c in counter))
    k0, k1 = int(key[0]) & 0xFFFFFFFF, int(key[1]) & 0xFFFFFFFF
    for _ in range(10):
        p0 = _MUL0 * c0
        p1 = _MUL1 * c2
        c0, c1, c2, c3 = (
            (p1 >> np.uint64(32)) ^ c1 ^ np.uint64(k0),
            p1 & _LOW32,
            (p0 >> np.uint64(32)) ^ c3 ^ np.uint64(k1),
            p0 & _LOW32,
        )
        k0 = (k0 + _WEYL0) & 0xFFFFFFFF
        k1 = (k1 + _WEYL1) & 0xFFFFFFFF
    return np.stack([c0, c1, c2, c3]).astype(np.uint32)


def applied_dropout_p(dropout_p: float) -> float:
    """The rate the kernels apply: dropout_p rounded to the nearest multiple of 2^-16 (ties up),
    at most 1 - 2^-16 (src/attention.cpp describe_dropout)."""
    return min(math.floor(dropout_p * 65536.0 + 0.5), 65535) / 65536.0


def reference_keep_mask(batch, heads, len_q, len_k, *, dropout_p: float, seed: int) -> np.ndarray:
    """The documented dropout mask: key (seed low, seed high), counter (col // 8, row, head,
    batch); element (b, h, row, col) is kept when 16-bit piece col % 8 (the low half of word
    (col % 8) // 2 for even col, the high half for odd) >= the applied p * 2^16."""
    b, h, row, col = np.meshgrid(
        np.arange(batch), np.arange(heads), np.arange(len_q), np.arange(len_k), indexing="ij"
    )
    words = philox4x32_10((col // 8, row, h, b), (seed & 0xFFFFFFFF, seed >> 32))
    word = np.take_along_axis(words, (col % 8 // 2)[None], axis=0)[0]
    piece = np.where(col % 2 == 0, word & 0xFFFF, word >> 16)
    return piece >= int(applied_dropout_p(dropout_p) * 65536.0)


# ---- naive attention -------------------------------------------------------------------------


def naive_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    causal: bool = False,
    alignment: str = "bottom_right",
    scale: float | None = None,
    keep: np.ndarray | None = None,
    dropout_p: float = 0.0,
):
    """softmax(q k^T * scale) v in the inputs' dtype and on their device, the score matrix formed.

    Rows that see no key give output 0 and lse -inf (and no NaN anywhere, gradients included).
    ``keep`` (batch, heads, len_q, len_k) bools: the probabilities are multiplied by
    keep / (1 - p) after the softmax, p the rate the kernels apply (``applied_dropout_p``).
    Returns (out, lse, lse_or_0): lse_or_0 is lse with 0 on the empty rows, for a loss that must
    stay finite.
    """
    len_q, len_k = q.shape[2], k.shape[2]
    group = q.shape[1] // k.shape[1]
    k = k.repeat_interleave(group, dim=1)
    v = v.repeat_interleave(group, dim=1)
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    visible = torch.from_numpy(visible_keys(len_q, len_k, causal, alignment)).to(q.device)
    seen = visible.any(-1)[:, None]
    scores = (q @ k.transpose(-1, -2)) * scale
    scores = scores.masked_fill(~visible, float("-inf"))
    scores = torch.where(seen, scores, scores.new_zeros(()))  # empty rows: finite
    probs = torch.softmax(scores, dim=-1) * seen.to(scores.dtype)
    lse = torch.logsumexp(scores, dim=-1)
    if keep is not None:
        keep = torch.from_numpy(np.asarray(keep)).to(device=probs.device, dtype=probs.dtype)
        probs = probs * (keep / (1.0 - applied_dropout_p(dropout_p)))
    out = probs @ v
    lse_or_0 = torch.where(seen[:, 0], lse, lse.new_zeros(()))
    return out, torch.where(seen[:, 0], lse, float("-inf")), lse_or_0


def reference(q, k, v, dout=None, dlse=None, *, dtype=torch.float64, device="cpu", **options):
    """Naive attention on numpy inputs computed in ``dtype`` (float64: the ground truth) by torch
    on ``device`` (a GPU for naive low-precision attention as torch runs it there).

    Returns numpy float64 (out, lse) or, with dout, (out, lse, dq, dk, dv): the gradients of
    sum(out * dout) + sum(lse * dlse) (lse's term only on rows that see a key).
    """

    def make(x, requires_grad=False):
        return torch.tensor(np.asarray(x), dtype=dtype).to(device).requires_grad_(requires_grad)

    tensors = [make(x, requires_grad=dout is not None) for x in (q, k, v)]
    out, lse, lse_or_0 = naive_attention(*tensors, **options)
    results = [out, lse]
    if dout is not None:
        loss = (out * make(dout)).sum()
        if dlse is not None:
            loss = loss + (lse_or_0 * make(dlse)).sum()
        results += torch.autograd.grad(loss, tensors)
    return tuple(r.detach().to(device="cpu", dtype=torch.float64).numpy() for r in results)


def max_error(got, want) -> float:
    """max |got - want| over finite entries of want (0.0 when there are none)."""
    got, want = as_numpy(got), np.asarray(want, dtype=np.float64)
    finite = np.isfinite(want)
    return float(np.abs(got[finite] - want[finite]).max(initial=0.0))


def assert_lse_close(got, want, atol: float) -> None:
    """lse agrees where finite and is exactly -inf where the reference is (rows with no key)."""
    got, want = as_numpy(got), np.asarray(want)
    finite = np.isfinite(want)
    assert np.all(got[~finite] == -np.inf), "rows that see no key must have lse -inf"
    assert max_error(got, want) <= atol, max_error(got, want)
