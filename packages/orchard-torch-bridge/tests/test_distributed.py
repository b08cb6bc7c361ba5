"""GPT-2 with ``attn_implementation="orchard"`` under torch.distributed: 2 processes, gloo, CPU.

Each test starts two ranks of distributed_worker.py (fresh interpreters, the caller's environment
with OMP_NUM_THREADS=1, meeting through a file store: no port to race for), bounded in time, and
compares what they saved with a single-process run here. Weights, tokens and seeds come from the
``seed`` fixture (``ORCHARD_TEST_SEED`` to fix it).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

pytest.importorskip("transformers")

import orchard_torch_bridge.gpt2
from orchard_torch_bridge import flash_attention
from orchard_torch_bridge.ring import ring_attention
from transformers import GPT2Config, GPT2LMHeadModel

WORKER = Path(__file__).with_name("distributed_worker.py")
WORLD = 2
# A run takes 4 to 10 s on 2 cores, about twice that with ASan preloaded; past this the ranks
# are killed and the test fails.
TIMEOUT_S = 180
BATCH, LENGTH, VOCAB = 4, 32, 97

_BASE: dict[str, Any] = dict(
    vocab_size=VOCAB,
    n_positions=LENGTH,
    n_embd=64,
    n_layer=2,
    n_head=4,
    bos_token_id=0,
    eos_token_id=0,
    attn_implementation="orchard",
)
CONFIGS: dict[str, dict[str, Any]] = {
    "plain": {**_BASE, "attn_pdrop": 0.0, "resid_pdrop": 0.0, "embd_pdrop": 0.0},
    "dropout": {**_BASE, "attn_pdrop": 0.1, "resid_pdrop": 0.1, "embd_pdrop": 0.1},
    # Only the orchard op drops: equal logits mean equal attention masks.
    "attention_dropout": {**_BASE, "attn_pdrop": 0.5, "resid_pdrop": 0.0, "embd_pdrop": 0.0},
}


def _inputs(seed: int) -> dict[str, Any]:
    orchard_torch_bridge.gpt2.register()
    torch.manual_seed(seed)
    state = GPT2LMHeadModel(GPT2Config(**CONFIGS["plain"])).state_dict()
    ids = torch.randint(0, VOCAB, (BATCH, LENGTH), generator=torch.Generator().manual_seed(seed + 1))
    # Per-rank seeds as users write them (base + rank), and one seed for all ranks.
    return {
        "configs": CONFIGS,
        "state": state,
        "ids": ids,
        "rank_seeds": [seed + 2 + rank for rank in range(WORLD)],
        "alike_seed": seed + 2 + WORLD,
    }


def _launch(case: str, inputs: dict[str, Any], directory: Path) -> list[dict[str, Any]]:
    """Runs ``case`` on WORLD ranks; returns what each saved. Fails on a crash or the timeout."""
    torch.save(inputs, directory / "inputs.pt")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    logs = [directory / f"rank{rank}.log" for rank in range(WORLD)]
    procs = []
    for rank, log in enumerate(logs):
        with log.open("w") as out:
            command = [sys.executable, str(WORKER), case, str(rank), str(WORLD), str(directory)]
            procs.append(subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT))
    deadline = time.monotonic() + TIMEOUT_S
    try:
        # A rank that fails ends the run at once: its peer would wait in a collective.
        while any(p.poll() is None for p in procs) and all(p.poll() in (None, 0) for p in procs):
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
    codes = [p.returncode for p in procs]
    if codes != [0] * WORLD:
        report = "\n".join(f"--- rank {rank} ---\n{log.read_text()}" for rank, log in enumerate(logs))
        timed_out = " (killed after the timeout)" if time.monotonic() > deadline else ""
        pytest.fail(f"{case}: ranks exited with {codes}{timed_out}\n{report}")
    return [torch.load(directory / f"rank{rank}.pt") for rank in range(WORLD)]


def _reference(config: dict[str, Any], inputs: dict[str, Any], seeds: list[int] | None) -> dict:
    """Gradients of one process: the whole batch at once, or (with ``seeds``) each rank's slice
    after that rank's seed, each slice's loss weighted 1/WORLD as DDP and FSDP2 average."""
    model = GPT2LMHeadModel(GPT2Config(**config))
    model.load_state_dict(inputs["state"])
    ids = inputs["ids"]
    if seeds is None:
        model(ids, labels=ids).loss.backward()
    else:
        for rank_ids, rank_seed in zip(ids.chunk(WORLD), seeds, strict=True):
            torch.manual_seed(rank_seed)
            (model(rank_ids, labels=rank_ids).loss / WORLD).backward()
    return {name: p.grad for name, p in model.named_parameters()}


def _prefixed(prefix: str) -> Callable[[str], str]:
    """assert_close's message with what was compared in front."""
    return lambda message: f"{prefix}: {message}"


def _assert_gradients_close(actual: dict, expected: dict) -> None:
    """Equal up to float32 summation order, which is all that differs between the runs: each rank
    sums its slice's tokens into the weights' gradients and the ranks' sums are then averaged,
    where one process sums all tokens at once. A reordered float32 sum moves a result by a few
    roundings of the largest terms: 16 float32 epsilons of the tensor's largest entry leave room
    for that (measured: at most 3) and fail on a wrong slice, a sum not averaged or another
    rank's mask, each off by orders of magnitude more."""
    assert actual.keys() == expected.keys()
    for name, grad in expected.items():
        atol = 16 * torch.finfo(torch.float32).eps * grad.abs().max().item()
        torch.testing.assert_close(actual[name], grad, rtol=0, atol=atol, msg=_prefixed(name))


@pytest.mark.parametrize("kind", ["ddp", "fsdp2"])
def test_training_step_equals_single_process(kind, seed, tmp_path):
    inputs = _inputs(seed)
    ranks = _launch(kind, inputs, tmp_path)
    expected = _reference(CONFIGS["plain"], inputs, None)
    for rank in ranks:
        _assert_gradients_close(rank["plain"], expected)
    # With dropout, each rank's masks come from its own generator: the same gradients as the
    # ranks' slices run here one after the other, each after its rank's seed.
    expected = _reference(CONFIGS["dropout"], inputs, inputs["rank_seeds"])
    for rank in ranks:
        _assert_gradients_close(rank["dropout"], expected)
    # The same tokens on every rank, dropout in attention only: the masks are equal exactly when
    # the ranks' generators were seeded alike.
    first, second = (rank["masks"] for rank in ranks)
    assert not torch.equal(first["alike"], first["eval"]), "attention dropout dropped nothing"
    assert torch.equal(first["alike"], second["alike"]), "ranks seeded alike drew different masks"
    assert not torch.equal(first["per_rank"], second["per_rank"]), "ranks seeded apart drew one mask"


def test_compile_under_ddp(seed, tmp_path):
    inputs = _inputs(seed)
    ranks = _launch("compile", inputs, tmp_path)
    for rank in ranks:
        # Both layers' attention went into the compiled graphs (not run eagerly after a break),
        # once: the second step reused them.
        assert rank["traced_ops"] == ["orchard.flash_attention.default"] * CONFIGS["plain"]["n_layer"]
        for compiled, eager in zip(rank["compiled"], rank["eager"], strict=True):
            _assert_gradients_close(compiled, eager)


def test_ring_attention_equals_single_process(seed, tmp_path):
    g = torch.Generator().manual_seed(seed)
    # Grouped-query (4 query heads, 2 key/value heads), 32 positions per rank; float64, so the
    # only differences are float64 roundings of the merge.
    shapes = [(2, 4, 64, 16), (2, 2, 64, 16), (2, 2, 64, 16)]
    qkv = [torch.randn(shape, generator=g, dtype=torch.float64) for shape in shapes]
    dout = torch.randn(shapes[0], generator=g, dtype=torch.float64)
    ranks = _launch("ring", {"qkv": qkv, "dout": dout}, tmp_path)
    for mask in ("full", "causal"):
        q, k, v = (t.clone().requires_grad_() for t in qkv)
        out = flash_attention(q, k, v, is_causal=mask == "causal")
        out.backward(dout)
        expected = {"out": out.detach(), "dq": q.grad, "dk": k.grad, "dv": v.grad}
        for name, full in expected.items():
            actual = torch.cat([rank[mask][name] for rank in ranks], dim=2)
            torch.testing.assert_close(actual, full, msg=_prefixed(f"{name}, {mask} attention"))


@pytest.mark.parametrize(
    ("q_shape", "k_shape", "device", "match"),
    [
        ((1, 2, 8, 16), (1, 2, 4, 16), "cpu", "4 keys for 8 queries"),
        ((1, 2, 8, 16), (1, 2, 8, 16), "meta", "only CPU tensors are supported, got meta"),
        ((1, 2, 8, 12), (1, 2, 8, 12), "cpu", "head dim 12"),
    ],
)
def test_ring_attention_bad_input_raises_before_communicating(q_shape, k_shape, device, match):
    q = torch.zeros(q_shape, device=device)
    k = torch.zeros(k_shape, device=device)
    with pytest.raises(ValueError, match=match):  # no process group here: nothing was sent
        ring_attention(q, k, k, is_causal=True)
