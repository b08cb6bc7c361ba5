"""The autograd engine's semantics against torch's: leaves and .grad, accumulation,
retain_graph, grad mode, autograd.grad, in-place safety, custom Functions and gradcheck.
Operator formulas are covered by the parity harness (test_parity.py)."""

from __future__ import annotations

import threading

import numpy as np
import orchard_core as oc
import pytest
import torch


def both(values: np.ndarray, requires_grad: bool = True, dtype: str = "float64"):
    ours = oc.tensor(values, dtype=getattr(oc, dtype), requires_grad=requires_grad)
    theirs = torch.tensor(values, dtype=getattr(torch, dtype), requires_grad=requires_grad)
    return ours, theirs


def assert_grad(ours: oc.Tensor | None, theirs: torch.Tensor | None) -> None:
    assert ours is not None and theirs is not None
    assert ours.shape == tuple(theirs.shape)
    assert ours.dtype.name == str(theirs.dtype).removeprefix("torch.")
    np.testing.assert_allclose(np.asarray(ours), theirs.numpy(), rtol=1e-12, atol=1e-12)


def test_leaves_and_results(rng):
    x = oc.tensor(rng.standard_normal(3))
    assert not x.requires_grad and x.is_leaf and x.grad is None and x.grad_fn is None
    assert x.requires_grad_() is not None and x.requires_grad
    y = x * 2.0
    assert y.requires_grad and not y.is_leaf and y.grad_fn.name() == "MulBackward"
    assert y.grad_fn.next_functions[0][0].name() == "AccumulateGrad"
    assert y.grad_fn.next_functions[1] == (None, 0)  # the number
    assert "grad_fn=<MulBackward>" in repr(y) and "requires_grad=True" in repr(x)
    with pytest.raises(RuntimeError, match="leaf"):
        y.requires_grad = False
    with pytest.raises(RuntimeError, match="int64"):
        oc.tensor([1, 2]).requires_grad_()


def test_backward_matches_torch_and_accumulates_once_per_use(rng):
    values = rng.standard_normal((3, 4))
    seed = rng.standard_normal((3, 4))
    (x, tx) = both(values)
    for _ in range(2):  # a second backward on a fresh graph adds to .grad
        y = x * x + x.exp() * x - x
        y.backward(oc.tensor(seed))
        ty = tx * tx + tx.exp() * tx - tx
        ty.backward(torch.tensor(seed))
    assert_grad(x.grad, tx.grad)


def test_gradients_sum_back_over_broadcast_dims_and_cast_back(rng):
    a, ta = both(rng.standard_normal((3, 1)), dtype="float32")
    b, tb = both(rng.standard_normal((4,)))
    seed = rng.standard_normal((3, 4))
    (a * b + a).backward(oc.tensor(seed))
    (ta * tb + ta).backward(torch.tensor(seed))
    assert a.grad.dtype == oc.float32 and a.grad.shape == (3, 1)
    np.testing.assert_allclose(np.asarray(a.grad), ta.grad.numpy(), rtol=1e-6)
    assert_grad(b.grad, tb.grad)


def test_backward_twice_needs_retain_graph(rng):
    x, tx = both(rng.standard_normal(5))
    seed = oc.tensor(rng.standard_normal(5))
    y = x.exp() * x
    y.backward(seed, retain_graph=True)
    y.backward(seed)
    with pytest.raises(RuntimeError, match=r"second time.*retain_graph=True"):
        y.backward(seed)
    ty = tx.exp() * tx
    ty.backward(torch.tensor(np.asarray(seed)), retain_graph=True)
    ty.backward(torch.tensor(np.asarray(seed)))
    assert_grad(x.grad, tx.grad)


def test_implicit_gradient_only_for_one_element_outputs(rng):
    x = oc.tensor(rng.standard_normal(4), requires_grad=True)
    with pytest.raises(RuntimeError, match=r"one-element output.*\[4\]"):
        (x * 2.0).backward()
    with pytest.raises(RuntimeError, match=r"shape \[3\].*shape \[4\]"):
        (x * 2.0).backward(oc.ones(3))
    one = x[1] * 3.0
    one.backward()
    np.testing.assert_array_equal(np.asarray(x.grad), [0.0, 3.0, 0.0, 0.0])


def test_backward_of_a_tensor_outside_the_graph_is_an_error():
    with pytest.raises(RuntimeError, match="does not require grad"):
        oc.tensor([1.0]).backward()
    x = oc.tensor([1.0], requires_grad=True)
    with oc.no_grad():
        y = x * 2.0
    assert not y.requires_grad
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.backward()


def test_grad_mode_context_managers_and_decorator():
    x = oc.tensor([1.0, 2.0], requires_grad=True)
    with oc.no_grad():
        assert not oc.is_grad_enabled()
        with oc.enable_grad():
            assert (x * 2.0).requires_grad
        assert not (x * 2.0).requires_grad
    assert oc.is_grad_enabled()

    @oc.no_grad()
    def step():
        return x * 2.0

    assert not step().requires_grad
    with oc.set_grad_enabled(False):
        assert not (x + 1.0).requires_grad
    assert (x + 1.0).requires_grad


def test_grad_mode_is_per_thread():
    seen = []
    with oc.no_grad():
        thread = threading.Thread(target=lambda: seen.append(oc.is_grad_enabled()))
        thread.start()
        thread.join()
    assert seen == [True]


def test_detach_shares_data_but_not_history(rng):
    x = oc.tensor(rng.standard_normal(3), requires_grad=True)
    d = (x * 2.0).detach()
    assert not d.requires_grad and d.is_leaf
    z = x * d
    z.backward(oc.ones(3))
    np.testing.assert_allclose(np.asarray(x.grad), np.asarray(d))


def test_autograd_grad_leaves_dot_grad_alone(rng):
    x, tx = both(rng.standard_normal(4))
    w, tw = both(rng.standard_normal(4))
    unused = oc.tensor([1.0], requires_grad=True)
    h = x * w
    out = h.exp()
    seed = rng.standard_normal(4)
    gx, gh = oc.autograd.grad(out, [x, h], oc.tensor(seed), retain_graph=True)
    th = tx * tw
    tgx, tgh = torch.autograd.grad(th.exp(), [tx, th], torch.tensor(seed))
    assert_grad(gx, tgx)
    assert_grad(gh, tgh)  # the gradient at a non-leaf input
    assert x.grad is None and w.grad is None
    with pytest.raises(RuntimeError, match="allow_unused"):
        oc.autograd.grad(out, [x, unused], oc.tensor(seed), retain_graph=True)
    gx2, none = oc.autograd.grad(out, [x, unused], oc.tensor(seed), allow_unused=True)
    assert none is None
    assert_grad(gx2, tgx)


def test_inplace_on_a_leaf_that_requires_grad_raises():
    x = oc.tensor([1.0, 2.0], requires_grad=True)
    for op in (lambda: x.div_(2.0), lambda: x.add_(1.0), lambda: x.fill_(0.0), lambda: x.zero_()):
        with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
            op()
    np.testing.assert_array_equal(np.asarray(x), [1.0, 2.0])  # refused before writing
    with oc.no_grad():
        x.mul_(3.0)  # an optimizer step
    assert x._version > 0 and x.requires_grad
    np.testing.assert_array_equal(np.asarray(x), [3.0, 6.0])


def test_repeated_and_chained_inplace_division_has_the_right_gradient(rng):
    values = rng.standard_normal(6)
    w_values = rng.uniform(0.5, 2.0, 6)
    x, tx = both(values)
    w, tw = both(w_values)
    for lib, a, b in ((oc, x, w), (torch, tx, tw)):
        y = a * 1.0
        y.div_(2.0)
        y.div_(2.0)
        y.div_(b).mul_(b).div_(b)
        y.sub_(a).add_(3.0)
        y *= b
        y.backward(lib.ones(6, dtype=lib.float64))
    assert_grad(x.grad, tx.grad)
    assert_grad(w.grad, tw.grad)


def test_modifying_a_saved_tensor_is_detected(rng):
    x = oc.tensor(rng.standard_normal(3), requires_grad=True)
    y = x.exp()  # saves its output
    v = y._version
    y.add_(1.0)
    assert y._version == v + 1
    with pytest.raises(RuntimeError, match=r"modified by an in-place operation.*version"):
        y.backward(oc.ones(3))
    z = x * 1.0
    p = z * z  # saves z
    z.mul_(2.0)
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        p.backward(oc.ones(3))


def test_inplace_on_a_view_in_the_graph_is_refused_and_stale_views_are_detected(rng):
    x = oc.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    y = x * 2.0
    row = y[0]
    with pytest.raises(RuntimeError, match="view"):
        row.mul_(2.0)
    y.add_(1.0)  # row's base changed after row was taken
    with pytest.raises(RuntimeError, match="stale"):
        row * 3.0
    (y[0] * 3.0).backward(oc.ones(4))  # a fresh view is fine
    expected = np.zeros((3, 4))
    expected[0] = 6.0
    np.testing.assert_array_equal(np.asarray(x.grad), expected)


def test_gradients_flow_through_views(rng):
    values = rng.standard_normal((2, 3, 4))
    seed = rng.standard_normal((4, 1, 2))
    x, tx = both(values)
    for lib, a in ((oc, x), (torch, tx)):
        v = a.permute(2, 0, 1)[:, 1:2, ::2].transpose(1, 2).reshape(4, 2, 1).squeeze(-1)
        out = v.unsqueeze(1).expand(4, 1, 2) * 3.0
        out.backward(lib.tensor(seed))
    assert_grad(x.grad, tx.grad)


class Cube(oc.autograd.Function):
    @staticmethod
    def forward(ctx, x, scale):
        ctx.save_for_backward(x)
        ctx.scale = scale
        return x * x * x * scale

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * x * x * (3.0 * ctx.scale), None


class WrongCube(Cube):
    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * x * x * (2.9 * ctx.scale), None


class SplitHalves(oc.autograd.Function):
    """Two outputs; backward gets zeros for the one a loss does not use."""

    @staticmethod
    def forward(ctx, x):
        return x * 2.0, x * 3.0

    @staticmethod
    def backward(ctx, g_double, g_triple):
        return g_double * 2.0 + g_triple * 3.0


def test_function_records_a_differentiable_op(rng):
    x = oc.tensor(rng.standard_normal(5), dtype=oc.float64, requires_grad=True)
    y = Cube.apply(x, 0.5)
    assert y.grad_fn.name() == "CubeBackward"
    y.backward(oc.ones(5, dtype=oc.float64))
    np.testing.assert_allclose(np.asarray(x.grad), 1.5 * np.asarray(x.detach()) ** 2, rtol=1e-12)
    assert oc.autograd.gradcheck(lambda t: Cube.apply(t, 0.5), [x])
    double, _ = SplitHalves.apply(x)
    g = oc.autograd.grad(double, x, oc.ones(5, dtype=oc.float64))[0]
    np.testing.assert_array_equal(np.asarray(g), np.full(5, 2.0))
    with oc.no_grad():
        assert not Cube.apply(x, 1.0).requires_grad


def test_gradcheck_catches_a_wrong_backward(rng):
    x = oc.tensor(rng.uniform(0.5, 1.5, 4), dtype=oc.float64, requires_grad=True)
    with pytest.raises(oc.autograd.GradcheckError, match="finite differences"):
        oc.autograd.gradcheck(lambda t: WrongCube.apply(t, 1.0), [x])
    assert not oc.autograd.gradcheck(lambda t: WrongCube.apply(t, 1.0), [x], raise_exception=False)
    with pytest.warns(UserWarning, match="float32"):
        oc.autograd.gradcheck(lambda t: t * 2.0, [oc.tensor([1.0, 2.0], requires_grad=True)], eps=1e-2)
    with pytest.raises(ValueError, match="no input requires grad"):
        oc.autograd.gradcheck(lambda t: t * 2.0, [oc.tensor([1.0])])


def test_function_errors_name_the_problem(rng):
    class TooMany(oc.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2.0

        @staticmethod
        def backward(ctx, grad):
            return grad, grad

    class Modifies(oc.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * 2.0

        @staticmethod
        def backward(ctx, grad):
            return grad * ctx.saved_tensors[0]

    x = oc.tensor(rng.standard_normal(3), requires_grad=True)
    with pytest.raises(RuntimeError, match=r"TooManyBackward.backward must return 1 gradients"):
        TooMany.apply(x).backward(oc.ones(3))
    h = x * 1.0
    y = Modifies.apply(h)
    h.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        y.backward(oc.ones(3))


@pytest.mark.parametrize(
    "make",
    [
        lambda: oc.zeros(2, 3, requires_grad=True),
        lambda: oc.ones((2, 3), requires_grad=True),
        lambda: oc.full((2, 3), 1.5, requires_grad=True),
        lambda: oc.empty(2, 3, requires_grad=True),
        lambda: oc.arange(6.0, requires_grad=True).reshape(2, 3).detach().requires_grad_(),
        lambda: oc.rand(2, 3, requires_grad=True),
        lambda: oc.randn(2, 3, requires_grad=True),
        lambda: oc.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], requires_grad=True),
    ],
)
def test_creation_functions_make_leaves_that_require_grad(make):
    t = make()
    assert t.requires_grad and t.is_leaf and t.shape == (2, 3)
    with pytest.raises(RuntimeError, match="int64"):
        oc.zeros(2, dtype=oc.int64, requires_grad=True)


def test_graphs_and_saved_tensors_are_freed_with_their_outputs():
    x = oc.randn(100, requires_grad=True)
    before = oc.profile.live_count()
    for _ in range(3):
        y = (x * 2.0).exp().tanh() * x
        y.backward(oc.ones(100), retain_graph=True)  # keeps saved values until y goes
        del y
    assert oc.profile.live_count() == before + 1  # only x.grad remains
    z = Cube.apply(x * 1.0, 2.0)
    del z
    assert oc.profile.live_count() == before + 1
