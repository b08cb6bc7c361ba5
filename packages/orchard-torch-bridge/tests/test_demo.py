"""The training demo (demo/train_gpt2.py, `nox -s demo`) runs end to end with tiny settings."""

import importlib.util
import json
import math
from pathlib import Path

import pytest

pytest.importorskip("transformers")
pytest.importorskip("matplotlib")
pytest.importorskip("tqdm")

SCRIPT = Path(__file__).resolve().parents[1] / "demo" / "train_gpt2.py"
TINY = ["--steps", "3", "--seq-len", "32", "--batch-size", "2", "--size", "tiny", "--eval-every", "2"]


@pytest.fixture(scope="module")
def demo():
    spec = importlib.util.spec_from_file_location("train_gpt2_demo", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_outputs(out, summary, attentions):
    assert (out / "loss.png").stat().st_size > 0
    assert json.loads((out / "summary.json").read_text()) == summary
    assert sorted(summary["runs"]) == sorted(attentions)
    for run in summary["runs"].values():
        for key in ("final_train_loss", "final_val_loss", "tokens_per_s", "wall_seconds"):
            assert math.isfinite(run[key]), (run["attention"], key, run[key])
        assert [step for step, _ in run["train_loss"]] == [1, 2, 3]
        assert [step for step, _ in run["val_loss"]] == [0, 2, 3]


def test_both_attentions_on_default_corpus(demo, tmp_path):
    summary = demo.main([*TINY, "--out", str(tmp_path)])
    check_outputs(tmp_path, summary, ["stock", "orchard"])
    stock, orchard = summary["runs"]["stock"], summary["runs"]["orchard"]
    # The same initial weights and validation batches: before training (eval mode, no dropout)
    # both attentions give the same validation loss.
    assert orchard["val_loss"][0][1] == pytest.approx(stock["val_loss"][0][1], abs=1e-4)
    assert summary["orchard_over_stock_tokens_per_s"] > 0


def test_own_corpus(demo, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(
        "".join(f"line {i}: the quick brown fox jumps over {i % 7} lazy dogs.\n" for i in range(60))
    )
    out = tmp_path / "out"
    summary = demo.main([*TINY, "--attention", "orchard", "--corpus", str(corpus), "--out", str(out)])
    check_outputs(out, summary, ["orchard"])
    assert summary["config"]["corpus"] == str(corpus.resolve())
    assert summary["config"]["vocab_size"] == len(set(corpus.read_text()))


def test_corpus_too_short(demo, tmp_path):
    corpus = tmp_path / "short.txt"
    corpus.write_text("too short")
    with pytest.raises(SystemExit, match="fewer than"):
        demo.main([*TINY, "--corpus", str(corpus), "--out", str(tmp_path / "out")])


def test_orchard_off_cpu_is_refused(demo, capsys):
    with pytest.raises(SystemExit):
        demo.parse_args(["--device", "meta", "--attention", "orchard"])
    assert "orchard attention runs on the cpu only" in capsys.readouterr().err


def test_switch_is_off_during_the_demo_and_restored(demo, tmp_path):
    """With the bridge's GPT-2 switch on, "sdpa" would be orchard too: the demo turns it off."""
    import orchard_torch_bridge

    seen = []
    train = demo.train

    def spy(args, data, attention):
        seen.append(orchard_torch_bridge.is_enabled())
        return train(args, data, attention)

    orchard_torch_bridge.enable()
    try:
        demo.train = spy
        demo.main([*TINY, "--attention", "stock", "--out", str(tmp_path)])
        assert seen == [False]
        assert orchard_torch_bridge.is_enabled()
    finally:
        demo.train = train
        orchard_torch_bridge.disable()
