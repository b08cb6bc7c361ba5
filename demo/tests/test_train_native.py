"""The native demo (demo/train_native.py, `nox -s demo -- --engine orchard`) and the model it trains.

The model file is written once with torch's API: built on torch and on orchard_core from the same
weights, with dropout off in float32, the two must give the same losses step after step."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import orchard_core as oc
import pytest
import torch

pytest.importorskip("matplotlib")
pytest.importorskip("tqdm")
pytest.importorskip("safetensors")

DEMO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(DEMO))
import train_native  # noqa: E402
from gpt2_model import GPT2Config, gpt2_class  # noqa: E402

TINY = ["--steps", "3", "--seq-len", "32", "--batch-size", "2", "--size", "tiny", "--eval-every", "2"]


@pytest.fixture(scope="module")
def both_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("native")
    return out, train_native.main([*TINY, "--out", str(out)])


def test_orchard_trains_without_torch_beside_stock(both_run):
    out, summary = both_run
    assert (out / "loss.png").stat().st_size > 0
    assert json.loads((out / "summary.json").read_text()) == summary
    orchard, stock = summary["runs"]["orchard"], summary["runs"]["stock"]
    assert not orchard["torch_loaded"]
    assert orchard["engine"] == "orchard" and stock["engine"] == "torch"
    assert orchard["parameters"] == stock["parameters"]
    for run in (orchard, stock):
        assert [step for step, _ in run["train_loss"]] == [1, 2, 3]
        assert [step for step, _ in run["val_loss"]] == [0, 2, 3]
        assert all(math.isfinite(loss) for _, loss in run["train_loss"] + run["val_loss"])
    # The same initial weights and validation batches, in eval mode (no dropout): the same loss.
    assert orchard["val_loss"][0][1] == pytest.approx(stock["val_loss"][0][1], rel=1e-5)
    paired = sorted(s / o for s, o in zip(stock["step_seconds"], orchard["step_seconds"], strict=True))
    assert summary["orchard_over_stock_tokens_per_s"]["p50"] == pytest.approx(paired[1])


def test_bad_arguments_are_refused():
    with pytest.raises(SystemExit):
        train_native.parse_args(["--n-embd", "60", "--n-head", "4"])  # head dim 15
    with pytest.raises(SystemExit):
        train_native.parse_args(["--device", "gpu"])
    with pytest.raises(SystemExit):
        train_native.parse_args(["--dropout", "1"])


def test_bfloat16_autocast_and_profiles(tmp_path):
    """--dtype bfloat16 trains under orchard_core.autocast; --profile writes each engine's table."""
    options = ["--no-stock", "--dtype", "bfloat16", "--profile", "--out", str(tmp_path)]
    summary = train_native.main([*TINY, *options])
    orchard = summary["runs"]["orchard"]
    assert all(math.isfinite(loss) for _, loss in orchard["train_loss"])
    assert summary["config"]["dtype"] == "bfloat16"
    table = (tmp_path / "profile_orchard.txt").read_text()
    assert table.startswith("one step, ") and "linear" in table and "Optimizer.step" in table


def copy_weights(source: torch.nn.Module, target) -> None:
    target.load_state_dict(
        {name: oc.from_numpy(t.detach().numpy().copy()) for name, t in source.state_dict().items()}
    )


def test_losses_match_torch_for_ten_steps(rng):
    """fp32, dropout off, the same initial weights and batches: losses within 1e-5 relative."""
    config = GPT2Config(vocab_size=67, seq_len=24, n_layer=2, n_head=2, n_embd=32, dropout=0.0)
    torch.manual_seed(int(rng.integers(2**31)))
    theirs = gpt2_class(torch)(config)
    ours = gpt2_class(oc)(config)
    copy_weights(theirs, ours)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    opt_theirs = torch.optim.AdamW(theirs.parameters(), lr=3e-3, weight_decay=0.1, betas=(0.9, 0.95))
    opt_ours = oc.optim.AdamW(ours.parameters(), lr=3e-3, weight_decay=0.1, betas=(0.9, 0.95))
    for step in range(10):
        batch = rng.integers(0, config.vocab_size, (3, config.seq_len + 1))
        losses = []
        for lib, model, opt in ((torch, theirs, opt_theirs), (oc, ours, opt_ours)):
            inputs, targets = lib.from_numpy(batch[:, :-1].copy()), lib.from_numpy(batch[:, 1:].copy())
            loss = model(inputs, targets)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            lib.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            losses.append(loss.item())
        np.testing.assert_allclose(losses[1], losses[0], rtol=1e-5, err_msg=f"step {step}")
