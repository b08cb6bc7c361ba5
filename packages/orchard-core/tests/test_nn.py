"""orchard_core.nn against torch.nn: registration, names, state_dict, errors, layers, init."""

from __future__ import annotations

import copy
import math
import pickle
import re

import numpy as np
import orchard_core as oc
import pytest
import torch
from _core_helpers import host_values, torch_values
from orchard_core import nn
from orchard_core.nn import functional as F


def _build(lib, vocab: int = 11, width: int = 6):
    """The same small model written against torch.nn or orchard_core.nn (names as torch's)."""

    class Block(lib.Module):
        def __init__(self) -> None:
            super().__init__()
            self.ln = lib.LayerNorm(width)
            self.fc = lib.Linear(width, 2 * width)
            self.proj = lib.Linear(2 * width, width, bias=False)
            self.act = lib.GELU(approximate="tanh")
            self.drop = lib.Dropout(0.25)
            self.register_buffer("steps", lib_zeros(lib, 3, int_dtype=True))
            self.register_buffer("scratch", lib_zeros(lib, 2), persistent=False)

    class Model(lib.Module):
        def __init__(self) -> None:
            super().__init__()
            self.wte = lib.Embedding(vocab, width)
            self.blocks = lib.ModuleList([Block() for _ in range(2)])
            self.heads = lib.ModuleDict({"lm": lib.Linear(width, vocab, bias=False)})
            self.tail = lib.Sequential(lib.LayerNorm(width), lib.GELU())
            self.heads["lm"].weight = self.wte.weight  # tied, as GPT-2's

    return Model()


def lib_zeros(lib, *shape, int_dtype=False):
    if lib is torch.nn:
        return torch.zeros(*shape, dtype=torch.int64 if int_dtype else torch.float32)
    return oc.zeros(*shape, dtype=oc.int64 if int_dtype else oc.float32)


def _to_oc(t: torch.Tensor) -> oc.Tensor:
    return oc.tensor(t.detach().numpy())


def _copy_weights(ours: nn.Module, theirs: torch.nn.Module) -> None:
    ours.load_state_dict(theirs.state_dict())  # torch tensors load through DLPack


def test_parameter_is_a_tensor_sharing_the_data():
    data = oc.zeros(2, 3)
    p = nn.Parameter(data)
    assert isinstance(p, oc.Tensor) and isinstance(p, nn.Parameter)
    assert p.requires_grad and p.is_leaf and not data.requires_grad
    data.fill_(2.5)
    np.testing.assert_array_equal(host_values(p), np.full((2, 3), 2.5, np.float32))
    assert not nn.Parameter(data, requires_grad=False).requires_grad
    assert nn.Parameter().shape == (0,)
    assert repr(p).startswith("Parameter containing:\ntensor(") and "requires_grad=True" in repr(p)
    with pytest.raises(TypeError, match="list"):
        nn.Parameter([1.0])


def test_parameter_gradients_flow_like_any_leaf():
    p = nn.Parameter(oc.tensor([1.0, -2.0, 3.0]))
    (p * p).sum().backward()
    np.testing.assert_array_equal(host_values(p.grad), [2.0, -4.0, 6.0])


def test_data_assignment_rebinds_the_object_keeping_requires_grad():
    p = nn.Parameter(oc.zeros(3))
    p.data = oc.ones(2, 2, dtype=oc.float64)
    assert type(p) is nn.Parameter and p.requires_grad and p.shape == (2, 2) and p.dtype == oc.float64
    p.grad = oc.ones(2, 2, dtype=oc.float64)
    with pytest.raises(ValueError, match=r"grad \(shape \[2, 2\].*assigned data \(shape \[5\]"):
        p.data = oc.zeros(5)
    y = p * 2
    with pytest.raises(RuntimeError, match="leaf"):
        y.data = oc.zeros(2, 2)


def test_names_order_and_state_dict_keys_match_torch():
    theirs, ours = _build(torch.nn), _build(nn)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert [p.shape for p in ours.parameters()] == [tuple(p.shape) for p in theirs.parameters()]
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert [n for n, _ in ours.named_children()] == [n for n, _ in theirs.named_children()]
    assert len(list(ours.modules())) == len(list(theirs.modules()))
    assert [n for n, _ in ours.named_parameters(remove_duplicate=False)] == [
        n for n, _ in theirs.named_parameters(remove_duplicate=False)
    ]
    assert [n for n, _ in ours.blocks[0].named_parameters(recurse=False)] == []
    assert ours.get_parameter("blocks.1.fc.bias") is ours.blocks[1].fc.bias


def test_state_dict_round_trips_with_torch():
    theirs, ours = _build(torch.nn), _build(nn)
    _copy_weights(ours, theirs)
    for (name, mine), (_, ref) in zip(ours.state_dict().items(), theirs.state_dict().items(), strict=True):
        np.testing.assert_array_equal(host_values(mine), torch_values(ref), err_msg=name)
    with torch.no_grad():
        for p in theirs.parameters():
            p.zero_()
    theirs.load_state_dict({k: torch.from_dlpack(v) for k, v in ours.state_dict().items()})
    for (name, mine), (_, ref) in zip(ours.state_dict().items(), theirs.state_dict().items(), strict=True):
        np.testing.assert_array_equal(host_values(mine), torch_values(ref), err_msg=name)
    assert not any(isinstance(v, nn.Parameter) or v.requires_grad for v in ours.state_dict().values())
    assert all(
        isinstance(v, nn.Parameter) for k, v in ours.state_dict(keep_vars=True).items() if "steps" not in k
    )


def _torch_style(message: str) -> str:
    """torch's error text with torch.Size([a, b]) written as the tuple (a, b), as orchard writes shapes."""
    return re.sub(
        r"torch\.Size\(\[([^\]]*)\]\)", lambda m: repr(tuple(int(x) for x in m[1].split(",") if x)), message
    )


@pytest.mark.parametrize(
    "edit",
    ["missing", "unexpected", "size", "all"],
)
def test_strict_loading_errors_match_torch(edit):
    theirs, ours = _build(torch.nn), _build(nn)
    theirs_sd, ours_sd = theirs.state_dict(), ours.state_dict()
    for sd, lib in ((theirs_sd, torch), (ours_sd, oc)):
        if edit in ("missing", "all"):
            del sd["blocks.1.fc.bias"], sd["blocks.0.steps"]
        if edit in ("unexpected", "all"):
            sd["blocks.0.extra"] = lib.zeros(2)
        if edit in ("size", "all"):
            sd["tail.0.weight"] = lib.zeros(4)
    with pytest.raises(RuntimeError) as expected:
        theirs.load_state_dict(theirs_sd)
    with pytest.raises(RuntimeError) as got:
        ours.load_state_dict(ours_sd)
    assert str(got.value) == _torch_style(str(expected.value))
    if edit in ("missing", "unexpected"):
        expected_keys = theirs.load_state_dict(theirs_sd, strict=False)
        assert tuple(ours.load_state_dict(ours_sd, strict=False)) == tuple(expected_keys)
    else:  # a size mismatch raises whatever strict says, as in torch
        with pytest.raises(RuntimeError, match=r"size mismatch for tail.0.weight: .* shape \(4,\) from"):
            ours.load_state_dict(ours_sd, strict=False)


def test_non_strict_loading_reports_keys_and_loads_the_rest():
    ours = _build(nn)
    sd = {k: v.clone() for k, v in ours.state_dict().items()}
    for v in sd.values():
        v.fill_(1)
    del sd["wte.weight"]
    sd["bogus"] = oc.zeros(1)
    result = ours.load_state_dict(sd, strict=False)
    assert result.missing_keys == ["wte.weight"] and result.unexpected_keys == ["bogus"]
    np.testing.assert_array_equal(host_values(ours.blocks[0].fc.weight), np.ones((12, 6), np.float32))
    assert repr(ours.load_state_dict(ours.state_dict())) == "<All keys matched successfully>"
    with pytest.raises(TypeError, match="dict-like"):
        ours.load_state_dict([("wte.weight", oc.zeros(11, 6))])


def test_repr_matches_torch():
    for make in (
        lambda lib: lib.Linear(3, 4, bias=False),
        lambda lib: lib.LayerNorm((5, 2), eps=1e-6),
        lambda lib: lib.Embedding(7, 3),
        lambda lib: lib.Dropout(0.1),
        lambda lib: lib.GELU(approximate="tanh"),
        lambda lib: lib.Sequential(
            lib.Linear(2, 3), lib.Sequential(lib.GELU(), lib.Dropout()), lib.LayerNorm(3)
        ),
        lambda lib: lib.ModuleDict({"a": lib.Linear(1, 2)}),
    ):
        assert repr(make(nn)) == repr(make(torch.nn))


def test_setattr_registers_and_checks_types():
    m = nn.Linear(2, 3)
    with pytest.raises(TypeError, match="cannot assign 'Tensor' as parameter 'weight'"):
        m.weight = oc.zeros(3, 2)
    m.bias = None
    assert [n for n, _ in m.named_parameters()] == ["weight"]
    m.extra = nn.Parameter(oc.zeros(1))
    m.child = nn.GELU()
    assert [n for n, _ in m.named_parameters()] == ["weight", "extra"]
    assert list(dict(m.named_children())) == ["child"]
    del m.child
    assert list(m.children()) == []
    with pytest.raises(AttributeError, match="'Linear' object has no attribute 'nothing'"):
        _ = m.nothing
    with pytest.raises(KeyError, match=r'contain "\."'):
        m.register_buffer("a.b", oc.zeros(1))

    class Early(nn.Module):
        def __init__(self) -> None:
            self.w = nn.Parameter(oc.zeros(1))

    with pytest.raises(AttributeError, match=r"before Module.__init__\(\) call"):
        Early()
    with pytest.raises(NotImplementedError, match='missing the required "forward"'):
        nn.Module()(1)


def test_train_eval_requires_grad_and_apply():
    m = _build(nn)
    assert m.training and all(x.training for x in m.modules())
    assert m.eval() is m and not any(x.training for x in m.modules())
    m.train()
    assert all(x.training for x in m.modules())
    with pytest.raises(ValueError, match="boolean"):
        m.train("no")
    m.requires_grad_(False)
    assert not any(p.requires_grad for p in m.parameters())
    seen = []
    m.apply(lambda mod: seen.append(type(mod).__name__))
    assert seen[-1] == "Model" and seen.count("Linear") == 5


def test_zero_grad():
    m = nn.Linear(3, 2)
    for p in m.parameters():
        p.grad = oc.ones(*p.shape)
    m.zero_grad(set_to_none=False)
    assert all(host_values(p.grad).max() == 0 for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())


def test_to_moves_in_place_keeping_parameter_objects(device):
    m = _build(nn)
    params = list(m.parameters())
    opt_view = [id(p) for p in params]
    for p in params:
        p.grad = oc.ones(*p.shape)
    before = [host_values(p) for p in params]
    assert m.to(device) is m
    assert [id(p) for p in m.parameters()] == opt_view
    for p, values in zip(params, before, strict=True):
        assert str(p.device) == device and str(p.grad.device) == device and p.requires_grad
        np.testing.assert_array_equal(host_values(p), values)
    assert str(m.blocks[0].steps.device) == device and m.blocks[0].steps.dtype == oc.int64
    assert m.heads["lm"].weight is m.wte.weight  # ties survive
    m.to("cpu").double()
    assert all(p.dtype == oc.float64 and p.grad.dtype == oc.float64 for p in params)
    assert m.blocks[0].steps.dtype == oc.int64  # only floating-point tensors change dtype
    with pytest.raises(TypeError, match="floating point"):
        m.to(oc.int32)


def test_deepcopy_and_pickle_copy_parameters_keeping_ties():
    m = _build(nn)
    tied = nn.Sequential(nn.Embedding(11, 5), nn.Linear(5, 11, bias=False))
    tied[1].weight = tied[0].weight
    for model, clone in ((m, copy.deepcopy(m)), (tied, pickle.loads(pickle.dumps(tied)))):
        assert list(clone.state_dict()) == list(model.state_dict())
        for a, b in zip(clone.parameters(), model.parameters(), strict=True):
            assert a is not b and isinstance(a, nn.Parameter)
            np.testing.assert_array_equal(host_values(a), host_values(b))
    assert clone[1].weight is clone[0].weight


def test_linear_forward_backward_matches_torch(rng):
    theirs = torch.nn.Linear(7, 5)
    ours = nn.Linear(7, 5)
    _copy_weights(ours, theirs)
    x = rng.standard_normal((3, 2, 7)).astype(np.float32)
    x_ours, x_theirs = oc.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out_ours, out_theirs = ours(x_ours), theirs(x_theirs)
    np.testing.assert_allclose(host_values(out_ours), torch_values(out_theirs), rtol=1e-5, atol=1e-6)
    g = rng.standard_normal(out_theirs.shape).astype(np.float32)
    out_ours.backward(oc.tensor(g))
    out_theirs.backward(torch.tensor(g))
    for mine, ref in ((x_ours.grad, x_theirs.grad), (ours.weight.grad, theirs.weight.grad)):
        np.testing.assert_allclose(host_values(mine), torch_values(ref), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        host_values(ours.bias.grad), torch_values(theirs.bias.grad), rtol=1e-5, atol=1e-5
    )


def test_linear_names_both_sizes_on_a_mismatch():
    with pytest.raises(RuntimeError, match=r"in_features=4.*last dim must be 4, got input of shape \(2, 3\)"):
        nn.Linear(4, 2)(oc.zeros(2, 3))


def test_embedding_gelu_dropout_match_torch(rng):
    emb_t, emb_o = torch.nn.Embedding(9, 5), nn.Embedding(9, 5)
    _copy_weights(emb_o, emb_t)
    idx = rng.integers(0, 9, size=(3, 4))
    out_t = torch.nn.GELU("tanh")(emb_t(torch.tensor(idx)))
    out_o = nn.GELU("tanh")(emb_o(oc.tensor(idx)))
    np.testing.assert_allclose(host_values(out_o), torch_values(out_t), rtol=1e-6, atol=1e-7)
    out_t.sum().backward()
    out_o.sum().backward()
    np.testing.assert_allclose(
        host_values(emb_o.weight.grad), torch_values(emb_t.weight.grad), rtol=1e-5, atol=1e-6
    )
    drop = nn.Dropout(0.5).eval()
    x = oc.tensor(rng.standard_normal((4, 5)).astype(np.float32))
    np.testing.assert_array_equal(host_values(drop(x)), host_values(x))
    kept = host_values(drop.train()(oc.ones(4000))) != 0
    assert 0.45 < kept.mean() < 0.55
    with pytest.raises(ValueError, match=r"between 0 and 1, but got 1\.5"):
        nn.Dropout(1.5)
    with pytest.raises(NotImplementedError, match="padding_idx"):
        nn.Embedding(3, 2, padding_idx=0)


def test_layer_norm_matches_torch(rng):
    theirs, ours = torch.nn.LayerNorm((3, 5)), nn.LayerNorm((3, 5))
    with torch.no_grad():
        theirs.weight.normal_()
        theirs.bias.normal_()
    _copy_weights(ours, theirs)
    x = rng.standard_normal((2, 3, 5)).astype(np.float32)
    np.testing.assert_allclose(
        host_values(ours(oc.tensor(x))), torch_values(theirs(torch.tensor(x))), rtol=1e-5, atol=1e-5
    )


def test_functional_pad_matches_torch(rng):
    labels = rng.integers(0, 9, (2, 4))
    for pad, value in (((0, 1), -100), ((2, -1, 1, 0), None)):
        got = F.pad(oc.tensor(labels), pad, value=value)
        want = torch.nn.functional.pad(torch.from_numpy(labels), pad, value=value)
        assert got.dtype == oc.int64 and got.tolist() == want.tolist()
    with pytest.raises(NotImplementedError, match="'reflect'"):
        F.pad(oc.tensor(labels), (1, 1), mode="reflect")


def test_functional_softmax_family_matches_torch(rng):
    x = rng.standard_normal((3, 7)).astype(np.float32)
    for ours, theirs in (
        (F.softmax, torch.nn.functional.softmax),
        (F.log_softmax, torch.nn.functional.log_softmax),
    ):
        np.testing.assert_allclose(
            host_values(ours(oc.tensor(x), dim=-1)),
            torch_values(theirs(torch.tensor(x), dim=-1)),
            rtol=1e-6,
            atol=1e-6,
        )
    with pytest.raises(TypeError, match="dim"):
        F.softmax(oc.tensor(x))


@pytest.mark.parametrize("is_causal", [False, True])
@pytest.mark.parametrize("heads_kv", [3, 1])
def test_scaled_dot_product_attention_matches_torch(rng, is_causal, heads_kv):
    pytest.importorskip("orchard_flash")
    shape_q, shape_kv = (2, 3, 5, 8), (2, heads_kv, 5, 8)
    q, k, v = (rng.standard_normal(s).astype(np.float32) for s in (shape_q, shape_kv, shape_kv))
    gqa = heads_kv != 3
    ours = F.scaled_dot_product_attention(
        oc.tensor(q), oc.tensor(k), oc.tensor(v), is_causal=is_causal, scale=0.3, enable_gqa=gqa
    )
    theirs = torch.nn.functional.scaled_dot_product_attention(
        torch.tensor(q), torch.tensor(k), torch.tensor(v), is_causal=is_causal, scale=0.3, enable_gqa=gqa
    )
    np.testing.assert_allclose(host_values(ours), torch_values(theirs), rtol=1e-5, atol=1e-6)


def test_scaled_dot_product_attention_refuses_what_it_cannot_do():
    q = oc.zeros(1, 2, 3, 4)
    with pytest.raises(NotImplementedError, match="attn_mask is not supported"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=oc.zeros(3, 3))
    with pytest.raises(RuntimeError, match=r"query has 2 heads but key has 1.*enable_gqa"):
        F.scaled_dot_product_attention(q, oc.zeros(1, 1, 3, 4), oc.zeros(1, 1, 3, 4))
    with pytest.raises(ValueError, match=r"got shape \(3, 4\)"):
        F.scaled_dot_product_attention(oc.zeros(3, 4), q, q)


def test_scaled_dot_product_attention_without_orchard_flash_names_it(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "orchard_flash", None)
    q = oc.zeros(1, 1, 2, 4)
    with pytest.raises(ImportError, match="install orchard-flash"):
        F.scaled_dot_product_attention(q, q, q)


def test_initialisation_follows_torch(seed):
    oc.manual_seed(seed)
    lin = nn.Linear(400, 300)
    bound = 1 / math.sqrt(400)
    w, b = host_values(lin.weight), host_values(lin.bias)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.02 * bound  # uniform's std
    assert np.abs(b).max() <= bound and np.abs(b).max() > 0.9 * bound
    e = host_values(nn.Embedding(300, 200).weight)
    # 60000 draws: standard errors 0.004 (mean) and 0.003 (std); the bounds are 5 of them.
    assert abs(e.mean()) < 0.02 and abs(e.std() - 1) < 0.015
    ln = nn.LayerNorm(7)
    assert (host_values(ln.weight) == 1).all() and (host_values(ln.bias) == 0).all()
    w = nn.init.normal_(oc.empty(200, 300), std=0.02)
    assert abs(host_values(w).std() - 0.02) < 0.0005
    assert (host_values(nn.init.zeros_(oc.ones(3))) == 0).all()
    assert (host_values(nn.init.ones_(oc.zeros(3))) == 1).all()
    u = host_values(nn.init.uniform_(oc.empty(10000), -2.0, 3.0))
    assert u.min() >= -2.0 and u.max() < 3.0 and abs(u.mean() - 0.5) < 0.075  # 5 standard errors
    with pytest.raises(TypeError, match="floating-point"):
        nn.init.normal_(oc.zeros(3, dtype=oc.int64))


def test_layers_take_device_and_dtype(device):
    lin = nn.Linear(3, 2, device=device, dtype=oc.float16 if device != "cpu" else oc.float64)
    assert all(str(p.device) == device for p in lin.parameters())
    assert lin.weight.dtype == (oc.float16 if device != "cpu" else oc.float64)
