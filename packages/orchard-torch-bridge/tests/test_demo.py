"""The training demo (demo/train_gpt2.py, `nox -s demo`) runs end to end with tiny settings."""

import importlib.util
import json
import math
import sys
from pathlib import Path

import orchard_core
import orchard_flash
import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("matplotlib")
pytest.importorskip("tqdm")

SCRIPT = Path(__file__).resolve().parents[1] / "demo" / "train_gpt2.py"
TINY = ["--steps", "3", "--seq-len", "32", "--batch-size", "2", "--size", "tiny", "--eval-every", "2"]
CPU_ISAS = {"generic", "avx2", "avx512", "avx512_bf16", "amx_bf16"}


@pytest.fixture(scope="module")
def demo():
    spec = importlib.util.spec_from_file_location("train_gpt2_demo", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


@pytest.fixture(scope="module")
def both_run(demo, tmp_path_factory):
    """The output directory and summary of one run of both attentions, interleaved."""
    out = tmp_path_factory.mktemp("both")
    return out, demo.main([*TINY, "--out", str(out)])


def check_outputs(out, summary, attentions):
    assert (out / "loss.png").stat().st_size > 0
    assert json.loads((out / "summary.json").read_text()) == summary
    assert sorted(summary["runs"]) == sorted(attentions)
    for run in summary["runs"].values():
        for key in ("final_train_loss", "final_val_loss", "tokens_per_s", "train_seconds"):
            assert math.isfinite(run[key]), (run["attention"], key, run[key])
        assert [step for step, _ in run["train_loss"]] == [1, 2, 3]
        assert [step for step, _ in run["val_loss"]] == [0, 2, 3]
        assert len(run["step_seconds"]) == 3
        quantiles = run["step_seconds_quantiles"]
        assert list(quantiles) == ["p10", "p25", "p50", "p75", "p90"]
        assert list(quantiles.values()) == sorted(quantiles.values())
        assert quantiles["p50"] == pytest.approx(sorted(run["step_seconds"])[1])
        tokens_per_step = summary["config"]["batch_size"] * summary["config"]["seq_len"]
        assert run["tokens_per_s"] == pytest.approx(tokens_per_step / quantiles["p50"])
        low, high = run["tokens_per_s_iqr"]
        assert low <= run["tokens_per_s"] <= high


def test_summary_names_versions_tiers_and_threads(both_run):
    _, summary = both_run
    assert summary["versions"]["orchard_core"] == orchard_core.__version__
    assert summary["versions"]["orchard_flash"] == orchard_flash.__version__
    machine = summary["machine"]
    assert machine["orchard_core_cpu_isa"] in CPU_ISAS
    assert machine["orchard_flash_cpu_isa"] == orchard_flash._flash._cpu_isa()
    assert machine["torch_threads"] == torch.get_num_threads()
    assert machine["orchard_core_threads"] == orchard_core.get_num_threads()


def test_both_attentions_on_default_corpus(both_run):
    out, summary = both_run
    check_outputs(out, summary, ["stock", "orchard"])
    stock, orchard = summary["runs"]["stock"], summary["runs"]["orchard"]
    # The same initial weights and validation batches: before training (eval mode, no dropout)
    # both attentions give the same validation loss.
    assert orchard["val_loss"][0][1] == pytest.approx(stock["val_loss"][0][1], abs=1e-4)
    ratio = summary["orchard_over_stock_tokens_per_s"]
    paired = sorted(s / o for s, o in zip(stock["step_seconds"], orchard["step_seconds"], strict=True))
    assert ratio["p50"] == pytest.approx(paired[1])
    assert ratio["p25"] <= ratio["p50"] <= ratio["p75"]


@pytest.mark.parametrize("attention", ["stock", "orchard"])
def test_interleaving_leaves_each_loss_curve_as_alone(demo, both_run, tmp_path, attention):
    """Each model's own data order and dropout random state: its losses are those of a run alone."""
    _, both = both_run
    alone = demo.main([*TINY, "--attention", attention, "--out", str(tmp_path)])
    check_outputs(tmp_path, alone, [attention])
    assert alone["orchard_over_stock_tokens_per_s"] is None
    for curve in ("train_loss", "val_loss"):
        assert alone["runs"][attention][curve] == both["runs"][attention][curve]


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


def test_orchard_without_kernels_for_the_device_is_refused(demo, capsys):
    with pytest.raises(SystemExit):
        demo.parse_args(["--device", "meta", "--attention", "orchard"])
    assert "orchard-flash has no meta kernels" in capsys.readouterr().err
    demo.parse_args(["--device", "meta", "--attention", "stock"])


def test_orchard_on_cuda_without_cuda_kernels_says_how_to_build(demo):
    if orchard_flash._flash._built_with_cuda():
        pytest.skip("this orchard-flash has CUDA kernels")
    problem = demo.orchard_device_problem(torch.device("cuda:0"))
    assert "cuda:0" in problem and "-Dcuda=enabled" in problem


def test_orchard_on_mps_needs_orchard_flashs_metal_kernels(demo, monkeypatch):
    # torch's mps tensors run on orchard's "metal" device.
    monkeypatch.setattr(orchard_flash, "available_devices", lambda: ["cpu", "metal"])
    assert demo.orchard_device_problem(torch.device("mps")) is None
    monkeypatch.setattr(orchard_flash, "available_devices", lambda: ["cpu"])
    problem = demo.orchard_device_problem(torch.device("mps"))
    assert "needs orchard-flash's Metal kernels" in problem and "(it has kernels for: cpu)" in problem
    assert "--attention stock" in problem


def test_mps_where_torch_has_none_is_refused_in_a_line(demo, capsys):
    if torch.backends.mps.is_available():
        pytest.skip("this machine has an Apple GPU")
    with pytest.raises(SystemExit):
        demo.parse_args(["--device", "mps", "--attention", "stock"])
    error = capsys.readouterr().err
    assert "--device mps is not usable here: torch sees no MPS device" in error
    assert "aten::empty" not in error  # not torch.empty's table of every backend


def test_switch_is_off_during_the_demo_and_restored(demo, tmp_path):
    """With the bridge's GPT-2 switch on, "sdpa" would be orchard too: the demo turns it off."""
    import orchard_torch_bridge

    seen = []
    train = demo.train

    def spy(args, data, attentions):
        seen.append(orchard_torch_bridge.is_enabled())
        return train(args, data, attentions)

    orchard_torch_bridge.enable()
    try:
        demo.train = spy
        demo.main([*TINY, "--attention", "stock", "--out", str(tmp_path)])
        assert seen == [False]
        assert orchard_torch_bridge.is_enabled()
    finally:
        demo.train = train
        orchard_torch_bridge.disable()
