"""The ops of issue 13 (ops_elementwise, ops_axes): every gradient against central finite
differences in float64 with hypothesis-drawn shapes (broadcasting included) and against
torch.autograd to 1e-10 where installed; float32 forwards against float64; the tie rules
of max/min/maximum/minimum and the kinks of abs, leaky_relu and clamp against PyTorch's;
comparisons, argmax and the constructors."""

from __future__ import annotations

from typing import Any, Callable

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import assume, example, given
from test_ops import away_from_zero, check, pairs, seeds, shapes, values  # the same oracle

import tinygrad_rnn as tg
from tinygrad_rnn import Tape, Tensor

try:
    import torch
except ImportError:  # the oracle is optional
    torch = None

BS = hnp.BroadcastableShapes
nonempty = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)


def away_from(*points: float) -> Callable[..., Any]:
    """Values in [-2, 2] at least 0.1 from each point (a kink or a switch of formula)."""

    def draw(rng: np.random.Generator, shape: tuple[int, ...]) -> Any:
        x = values(rng, shape)
        for p in points:
            x = np.where(np.abs(x - p) < 0.1, p + 0.2 * np.where(x >= p, 1, -1), x)
        return x

    return draw


def positive(rng: np.random.Generator, shape: tuple[int, ...]) -> Any:
    return rng.uniform(0.5, 3.0, shape)


def same_in_float32(fn: Callable[..., Tensor], *arrays: Any) -> None:
    """fn on float32 tensors: float32 values close to float64's, float32 gradients."""
    x64 = [Tensor(a, requires_grad=True) for a in arrays]
    x32 = [Tensor(np.asarray(a, np.float32), requires_grad=True) for a in arrays]
    out64, out32 = fn(*x64), fn(*x32)
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32.data, out64.data, rtol=2e-5, atol=2e-6)
    out32.backward(np.ones(out32.shape, np.float32))
    for x in x32:
        assert x.grad is not None and x.grad.dtype == np.float32 and x.grad.shape == x.shape


def tf() -> Any:
    return torch.nn.functional


# --- elementwise, one input ---------------------------------------------------------------
UNARY: dict[str, tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]]] = {
    "sqrt": (lambda t: t.sqrt(), lambda t: t.sqrt(), positive),
    "abs": (lambda t: t.abs(), lambda t: t.abs(), away_from_zero),
    "abs_builtin": (lambda t: abs(t), lambda t: abs(t), away_from_zero),
    "sign": (lambda t: t.sign() * t, lambda t: t.sign() * t, away_from_zero),
    "sin": (lambda t: t.sin(), lambda t: t.sin(), values),
    "cos": (lambda t: t.cos(), lambda t: t.cos(), values),
    "softplus": (lambda t: t.softplus(), lambda t: tf().softplus(t), values),
    "softplus_beta_threshold": (
        lambda t: tg.softplus(t, beta=2.0, threshold=2.0),  # linear above x = 1
        lambda t: tf().softplus(t, beta=2.0, threshold=2.0),
        away_from(1.0),
    ),
    "leaky_relu": (lambda t: t.leaky_relu(), lambda t: tf().leaky_relu(t), away_from_zero),
    "leaky_relu_0.2": (lambda t: tg.leaky_relu(t, 0.2), lambda t: tf().leaky_relu(t, 0.2), away_from_zero),
    "gelu": (lambda t: t.gelu(), lambda t: tf().gelu(t), values),
    "gelu_tanh": (lambda t: tg.gelu(t, "tanh"), lambda t: tf().gelu(t, approximate="tanh"), values),
    "clamp": (lambda t: t.clamp(-0.5, 1.0), lambda t: t.clamp(-0.5, 1.0), away_from(-0.5, 1.0)),
    "clamp_min": (lambda t: tg.clamp(t, min=0.3), lambda t: t.clamp(min=0.3), away_from(0.3)),
    "clip_max": (lambda t: t.clip(max=0.3), lambda t: t.clip(max=0.3), away_from(0.3)),
    "pow_rpow": (lambda t: 2.0**t, lambda t: 2.0**t, values),
    "pow_tensor_self": (lambda t: t**t, lambda t: t**t, positive),
}


@pytest.mark.parametrize("name", sorted(UNARY))
@given(shape=shapes, seed=seeds)
@example(shape=(), seed=0)
@example(shape=(1,), seed=1)
def test_unary_ops(name: str, shape: tuple[int, ...], seed: int) -> None:
    ours, theirs, draw = UNARY[name]
    x = draw(np.random.default_rng(seed), shape)
    check(ours, theirs, x)
    same_in_float32(ours, x)


# --- elementwise, two inputs, broadcasting -----------------------------------------------
BINARY: dict[str, tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any], Callable[..., Any]]] = {
    "maximum": (tg.maximum, lambda a, b: torch.maximum(a, b), values, values),
    "minimum": (lambda a, b: a.minimum(b), lambda a, b: torch.minimum(a, b), values, values),
    "pow": (lambda a, b: a**b, lambda a, b: a**b, positive, values),
    "tg.pow": (tg.pow, lambda a, b: torch.pow(a, b), positive, values),
}


@pytest.mark.parametrize("name", sorted(BINARY))
@given(shapes=pairs, seed=seeds)
@example(shapes=BS(input_shapes=((3, 1), (1, 4)), result_shape=(3, 4)), seed=0)  # both stretched
@example(shapes=BS(input_shapes=((), (2, 3)), result_shape=(2, 3)), seed=0)  # 0-d against 2-d
@example(shapes=BS(input_shapes=((1,), (1, 1)), result_shape=(1, 1)), seed=0)  # size 1
def test_binary_ops_broadcast(name: str, shapes: Any, seed: int) -> None:
    ours, theirs, draw_a, draw_b = BINARY[name]
    rng = np.random.default_rng(seed)
    a, b = draw_a(rng, shapes.input_shapes[0]), draw_b(rng, shapes.input_shapes[1])
    check(ours, theirs, a, b)
    same_in_float32(ours, a, b)


@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=3, max_dims=3, max_side=4), seed=seeds)
@example(shapes=BS(input_shapes=((3, 1), (1, 4), ()), result_shape=(3, 4)), seed=0)
@example(shapes=BS(input_shapes=((2, 3), (), (1,)), result_shape=(2, 3)), seed=0)  # cond the largest
def test_where_broadcasts_cond_and_both_branches(shapes: Any, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a_shape, b_shape, c_shape = shapes.input_shapes
    a, b, cond = values(rng, a_shape), values(rng, b_shape), rng.random(c_shape) < 0.5
    check(lambda x, y: tg.where(cond, x, y), lambda x, y: torch.where(torch.tensor(cond), x, y), a, b)
    check(lambda x, y: x.where(Tensor(cond), y), lambda x, y: x.where(torch.tensor(cond), y), a, b)
    same_in_float32(lambda x, y: tg.where(cond, x, y), a, b)


def test_binary_ops_take_python_numbers_on_either_side_and_keep_float32() -> None:
    x = Tensor(np.array([0.5, 2.0], np.float32), requires_grad=True)
    for out in (tg.maximum(x, 1.0), tg.minimum(1.0, x), tg.where(np.array([True, False]), x, 0.0), 2**x):
        assert out.dtype == np.float32
    np.testing.assert_allclose(tg.pow(2.0, Tensor(np.array([3.0]))).data, [8.0])


# --- the tie and kink rules (PyTorch's) -----------------------------------------------------
def test_maximum_and_minimum_split_a_tie_in_halves_as_torch() -> None:
    a, b = np.array([1.0, 2.0, 3.0]), np.array([1.0, 5.0, 3.0])
    for op in ("maximum", "minimum"):
        x, y = Tensor(a, requires_grad=True), Tensor(b, requires_grad=True)
        getattr(tg, op)(x, y).sum().backward()
        winner = [0.0, 0.0, 0.0]
        winner[1] = 1.0 if op == "minimum" else 0.0  # a wins position 1 only for minimum
        np.testing.assert_array_equal(x.grad, [0.5, winner[1], 0.5])
        np.testing.assert_array_equal(y.grad, [0.5, 1 - winner[1], 0.5])
        if torch is not None:
            tx, ty = (torch.tensor(v, requires_grad=True) for v in (a, b))
            getattr(torch, op)(tx, ty).sum().backward()
            np.testing.assert_array_equal(x.grad, tx.grad.numpy())
            np.testing.assert_array_equal(y.grad, ty.grad.numpy())


TIED = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, -1.0], [0.0, 0.0, 0.0]])


@pytest.mark.parametrize("op", ["max", "min"])
def test_max_min_ties_with_an_int_axis_give_the_first_element_everything(op: str) -> None:
    x = Tensor(TIED, requires_grad=True)
    out = getattr(x, op)(axis=1)
    out.backward(np.array([1.0, 2.0, 3.0]))
    first = np.zeros_like(TIED)
    first[np.arange(3), getattr(np, "arg" + op)(TIED, axis=1)] = [1.0, 2.0, 3.0]
    np.testing.assert_array_equal(x.grad, first)
    if torch is not None:
        t = torch.tensor(TIED, requires_grad=True)
        values_, _ = getattr(torch, op)(t, dim=1)
        values_.backward(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
        np.testing.assert_array_equal(x.grad, t.grad.numpy())


@pytest.mark.parametrize("op", ["max", "min"])
@pytest.mark.parametrize("axis", [None, (1,), (0, 1)])
def test_max_min_ties_over_all_or_a_tuple_of_axes_share_evenly(op: str, axis: Any) -> None:
    x = Tensor(TIED, requires_grad=True)
    out = getattr(tg, op)(x, axis=axis, keepdims=True)
    out.backward(np.ones(out.shape))
    extreme = getattr(TIED, op)(axis=axis, keepdims=True)
    ties = TIED == extreme
    np.testing.assert_allclose(x.grad, ties / ties.sum(axis=axis, keepdims=True))
    if torch is not None:
        t = torch.tensor(TIED, requires_grad=True)
        theirs = getattr(torch, op)(t) if axis is None else getattr(torch, "a" + op)(t, dim=axis)
        theirs.sum().backward()
        np.testing.assert_allclose(x.grad, t.grad.numpy(), rtol=1e-15)


def test_kinks_take_torchs_values() -> None:
    x = np.array([-1.0, 0.0, 0.5, 1.0, 2.0])
    cases = [
        (lambda t: t.abs(), lambda t: t.abs()),  # 0 at 0
        (lambda t: t.leaky_relu(0.1), lambda t: tf().leaky_relu(t, 0.1)),  # the slope at 0
        (lambda t: t.clamp(0.0, 1.0), lambda t: t.clamp(0.0, 1.0)),  # edges pass the gradient
        (lambda t: t.sign(), lambda t: t.sign()),  # zero everywhere
        (lambda t: t ** Tensor(np.zeros(5)), lambda t: t ** torch.zeros(5, dtype=torch.float64)),
    ]
    expected = [[-1, 0, 1, 1, 1], [0.1, 0.1, 1, 1, 1], [0, 1, 1, 1, 0], [0] * 5, [0] * 5]
    for (ours, theirs), want in zip(cases, expected):
        t = Tensor(x, requires_grad=True)
        ours(t).sum().backward()
        np.testing.assert_array_equal(t.grad, want)
        if torch is not None:
            tt = torch.tensor(x, requires_grad=True)
            theirs(tt).sum().backward()
            np.testing.assert_array_equal(t.grad, tt.grad.numpy())


def test_pow_exponent_gradient_is_zero_at_a_zero_base_as_torch() -> None:
    base, exponent = Tensor(np.array([0.0, 0.0, 2.0])), Tensor(np.array([2.0, 0.0, 3.0]), requires_grad=True)
    (base**exponent).sum().backward()
    np.testing.assert_allclose(exponent.grad, [0.0, 0.0, 8 * np.log(2.0)])


# --- along axes -----------------------------------------------------------------------------
def _axis(draw: Any, ndim: int, allow_tuple: bool = True) -> Any:
    ints = st.integers(-ndim, ndim - 1)
    if not allow_tuple:
        return draw(ints)
    tuples = st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True).map(tuple)
    return draw(st.one_of(st.none(), ints, tuples))


def _dims(axis: Any, ndim: int) -> Any:
    """Our axis as PyTorch's dim: a tuple of them for None (all axes)."""
    return tuple(range(ndim)) if axis is None else axis


def _distinct(rng: np.random.Generator, shape: tuple[int, ...]) -> Any:
    """Values at least 0.05 apart: no ties, so max/min are smooth."""
    x = rng.permutation(int(np.prod(shape, dtype=int))) * 0.05 - 1.0
    return x.reshape(shape)


def _torch_extreme(op: str, axis: Any, keepdims: bool) -> Callable[..., Any]:
    def theirs(t: Any) -> Any:
        if axis is None:
            out = getattr(torch, op)(t)
            return out.reshape((1,) * t.ndim) if keepdims else out
        if isinstance(axis, int):
            return getattr(torch, op)(t, dim=axis, keepdim=keepdims).values
        return getattr(torch, "a" + op)(t, dim=axis, keepdim=keepdims)

    return theirs


@pytest.mark.parametrize("op", ["max", "min"])
@given(shape=nonempty, seed=seeds, data=st.data(), keepdims=st.booleans())
def test_max_min(op: str, shape: tuple[int, ...], seed: int, data: Any, keepdims: bool) -> None:
    axis = _axis(data.draw, len(shape))
    x = _distinct(np.random.default_rng(seed), shape)
    ours = lambda t: getattr(t, op)(axis=axis, keepdims=keepdims)  # noqa: E731
    check(ours, _torch_extreme(op, axis, keepdims), x)
    same_in_float32(ours, x)


@given(shape=nonempty, seed=seeds, data=st.data(), keepdims=st.booleans())
def test_logsumexp(shape: tuple[int, ...], seed: int, data: Any, keepdims: bool) -> None:
    axis = _axis(data.draw, len(shape))
    x = values(np.random.default_rng(seed), shape, -3, 3)
    ours = lambda t: t.logsumexp(axis=axis, keepdims=keepdims)  # noqa: E731
    check(ours, lambda t: torch.logsumexp(t, dim=_dims(axis, t.ndim), keepdim=keepdims), x)
    same_in_float32(ours, x)


def test_logsumexp_is_finite_for_huge_and_minus_infinite_values() -> None:
    x = Tensor(np.array([[1e3, 1e3 - 1], [-np.inf, -np.inf]]), requires_grad=True)
    out = x.logsumexp(axis=1)
    np.testing.assert_allclose(out.data, [1e3 + np.log1p(np.exp(-1)), -np.inf])
    out[0].backward()
    np.testing.assert_allclose(x.grad[0], [1 / (1 + np.exp(-1)), 1 / (1 + np.exp(1))])


@pytest.mark.parametrize("name", ["var", "std"])
@given(
    shape=nonempty, seed=seeds, data=st.data(), keepdims=st.booleans(), correction=st.sampled_from([0, 1, 2])
)
def test_var_std(
    name: str, shape: tuple[int, ...], seed: int, data: Any, keepdims: bool, correction: int
) -> None:
    axis = _axis(data.draw, len(shape))
    n = int(np.prod([shape[a] for a in np.atleast_1d(_dims(axis, len(shape)))]))
    assume(n > correction and (name == "var" or n > 1))  # the std of one value has no gradient
    x = values(np.random.default_rng(seed), shape)
    ours = lambda t: getattr(t, name)(axis=axis, correction=correction, keepdims=keepdims)  # noqa: E731

    def theirs(t: Any) -> Any:
        return getattr(torch, name)(t, dim=_dims(axis, t.ndim), correction=correction, keepdim=keepdims)

    check(ours, theirs, x)
    same_in_float32(ours, x)
    np.testing.assert_allclose(
        ours(Tensor(x)).data, getattr(np, name)(x, axis=axis, ddof=correction, keepdims=keepdims)
    )


@given(shape=nonempty, seed=seeds, data=st.data(), keepdims=st.booleans())
def test_std_gradient_is_zero_where_there_is_no_spread(
    shape: tuple[int, ...], seed: int, data: Any, keepdims: bool
) -> None:
    axis = _axis(data.draw, len(shape))
    x = values(np.random.default_rng(seed), shape)
    x[..., 0] = 1.5  # the slices along the last axis start constant: std 0 there when reduced
    assume(np.any(np.std(x, axis=axis) == 0))
    ours = lambda t: t.std(axis=axis, correction=0, keepdims=keepdims)  # noqa: E731
    check(ours, lambda t: torch.std(t, dim=_dims(axis, t.ndim), correction=0, keepdim=keepdims), x)
    t = Tensor(np.ones((3, 2)), requires_grad=True)
    with np.errstate(all="raise"):  # no divide warning either
        tg.std(t, axis=0).sum().backward()
    np.testing.assert_array_equal(t.grad, np.zeros((3, 2)))  # torch's value (not nan)


def test_var_with_too_few_elements_is_nan_or_inf_as_torch() -> None:
    assert np.isnan(tg.var(np.array([1.0])).item())
    assert np.isinf(tg.var(np.array([1.0, 2.0]), correction=3).item())


@given(shape=nonempty, seed=seeds, data=st.data())
def test_cumsum_and_flip(shape: tuple[int, ...], seed: int, data: Any) -> None:
    x = values(np.random.default_rng(seed), shape)
    axis = _axis(data.draw, len(shape), allow_tuple=False)
    check(lambda t: t.cumsum(axis), lambda t: torch.cumsum(t, dim=axis), x)
    flip_axis = _axis(data.draw, len(shape))
    check(
        lambda t: tg.flip(t, flip_axis),
        lambda t: torch.flip(t, dims=np.atleast_1d(_dims(flip_axis, t.ndim)).tolist()),
        x,
    )
    same_in_float32(lambda t: t.cumsum(axis).flip(flip_axis), x)


@given(shape=shapes, seed=seeds, data=st.data())
def test_unsqueeze_squeeze_flatten(shape: tuple[int, ...], seed: int, data: Any) -> None:
    x = values(np.random.default_rng(seed), shape)
    ndim = len(shape)
    new = data.draw(st.integers(-ndim - 1, ndim))
    check(lambda t: t.unsqueeze(new), lambda t: t.unsqueeze(new), x)
    check(lambda t: t.squeeze(), lambda t: t.squeeze(), x)
    if ndim:
        axis = data.draw(st.integers(-ndim, ndim - 1))
        check(lambda t: tg.squeeze(t, axis), lambda t: t.squeeze(axis), x)  # kept if not size 1
        start, end = sorted(data.draw(st.lists(st.integers(0, ndim - 1), min_size=2, max_size=2)))
        check(lambda t: t.flatten(start, end), lambda t: t.flatten(start, end), x)
    check(lambda t: tg.flatten(t), lambda t: t.flatten(), x)


@given(shape=shapes, seed=seeds, data=st.data())
def test_expand_and_repeat(shape: tuple[int, ...], seed: int, data: Any) -> None:
    x = values(np.random.default_rng(seed), shape)
    lead = tuple(data.draw(st.lists(st.integers(1, 3), min_size=0 if shape else 1, max_size=2)))
    keep_or_stretch = [st.integers(1, 3) if n == 1 else st.sampled_from([n, -1]) for n in shape]
    sizes = lead + tuple(data.draw(s) for s in keep_or_stretch)
    check(lambda t: t.expand(*sizes), lambda t: t.expand(*sizes), x)
    check(lambda t: t.expand(sizes), lambda t: t.expand(sizes), x)
    repeats = lead + tuple(data.draw(st.integers(1, 3)) for _ in shape)
    check(lambda t: t.repeat(*repeats), lambda t: t.repeat(*repeats), x)
    check(lambda t: t.repeat(repeats), lambda t: t.repeat(repeats), x)
    same_in_float32(lambda t: t.expand(sizes).sum() + t.repeat(repeats).sum(), x)


def test_expand_two_stretched_axes_and_a_new_one() -> None:
    x = values(np.random.default_rng(0), (3, 1, 1))
    check(lambda t: t.expand(2, 3, 4, 5), lambda t: t.expand(2, 3, 4, 5), x)
    check(
        lambda t: t.expand(2, -1, 4, 1).repeat(1, 2, 1, 3),
        lambda t: t.expand(2, -1, 4, 1).repeat(1, 2, 1, 3),
        x,
    )


# --- no gradient: comparisons, argmax/argmin, conversions ---------------------------------
COMPARISONS = {
    "<": (lambda a, b: a < b, np.less),
    "<=": (lambda a, b: a <= b, np.less_equal),
    ">": (lambda a, b: a > b, np.greater),
    ">=": (lambda a, b: a >= b, np.greater_equal),
    "==": (lambda a, b: a == b, np.equal),
    "!=": (lambda a, b: a != b, np.not_equal),
}


@pytest.mark.parametrize("name", sorted(COMPARISONS))
@given(shapes=pairs, seed=seeds)
def test_comparisons_are_bool_tensors_without_grad(name: str, shapes: Any, seed: int) -> None:
    op, ref = COMPARISONS[name]
    rng = np.random.default_rng(seed)
    a, b = (rng.integers(-1, 2, s).astype(float) for s in shapes.input_shapes)  # ties likely
    x, y = Tensor(a, requires_grad=True), Tensor(b, requires_grad=True)
    for out in (op(x, y), op(x, b), op(a, y), op(x, 0.0), op(0.0, y)):
        assert isinstance(out, Tensor) and out.dtype == bool and not out.requires_grad
    np.testing.assert_array_equal(op(x, y).data, ref(a, b))
    np.testing.assert_array_equal(op(a, y).data, ref(a, b))  # an ndarray on the left defers
    np.testing.assert_array_equal(op(0.0, y).data, ref(0.0, b))


@pytest.mark.parametrize(
    "name, torch_name", [("<", "lt"), ("<=", "le"), (">", "gt"), (">=", "ge"), ("==", "eq"), ("!=", "ne")]
)
def test_a_comparison_that_does_not_broadcast_names_the_op_and_shapes(name: str, torch_name: str) -> None:
    op, _ = COMPARISONS[name]
    a = Tensor(np.ones((2, 3)))
    for b in (Tensor(np.ones(4)), np.ones(4)):
        with pytest.raises(ValueError, match=rf"^{torch_name}: shapes \(2, 3\) and \(4,\) do not broadcast$"):
            op(a, b)


def test_tensors_stay_hashable_by_identity_with_elementwise_eq() -> None:
    a, b = Tensor(np.ones(3)), Tensor(np.ones(3))
    table = {a: 1, b: 2}
    assert table[a] == 1 and table[b] == 2 and a in table and Tensor(np.ones(3)) not in table
    assert len({a, b, a}) == 2 and hash(a) != hash(b)
    assert (a == None) is False and (a != None) is True  # noqa: E711  (as in PyTorch)
    np.testing.assert_array_equal((a == b).data, [True, True, True])


@pytest.mark.parametrize("op", ["argmax", "argmin"])
@given(shape=nonempty, seed=seeds, data=st.data(), keepdims=st.booleans())
def test_argmax_argmin(op: str, shape: tuple[int, ...], seed: int, data: Any, keepdims: bool) -> None:
    axis = data.draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1)))
    x = np.random.default_rng(seed).integers(-2, 3, shape).astype(float)  # ties: the first wins
    out = getattr(Tensor(x, requires_grad=True), op)(axis, keepdims)
    assert out.dtype == np.int64 and not out.requires_grad
    np.testing.assert_array_equal(out.data, getattr(np, op)(x, axis=axis, keepdims=keepdims))
    np.testing.assert_array_equal(getattr(tg, op)(x, axis).data, getattr(np, op)(x, axis=axis))
    if torch is not None:
        theirs = getattr(torch, op)(torch.tensor(x), dim=axis, keepdim=keepdims)
        np.testing.assert_array_equal(out.data, theirs.numpy())


def test_float_int_and_tolist() -> None:
    t = Tensor(np.array([[1.5, -2.0]]), requires_grad=True)
    assert float(t[0, 0]) == 1.5 and isinstance(float(t[0, 0]), float) and int(t[0, 1]) == -2
    assert t.tolist() == [[1.5, -2.0]] and Tensor(3.0).tolist() == 3.0
    with pytest.raises(ValueError, match=r"item: tensor of shape \(1, 2\) has 2 elements"):
        float(t)


def test_bad_options_are_clear_errors() -> None:
    x = Tensor(np.ones((2, 3)))
    cases: list[tuple[Callable[[], Any], type, str]] = [
        (lambda: x.clamp(), ValueError, "clamp: at least one of min and max"),
        (lambda: x.gelu("fast"), ValueError, "gelu: approximate must be 'none' or 'tanh'"),
        (lambda: tg.where(np.ones(3), x, x), TypeError, "where: the condition must be a bool"),
        (lambda: x.expand(3, 3), ValueError, r"expand: a tensor of shape \(2, 3\) cannot be expanded"),
        (lambda: x.expand(3), ValueError, r"expand: a tensor of shape \(2, 3\) cannot be expanded"),
        (lambda: x.repeat(2), ValueError, r"repeat: repeats \(2,\) for a tensor of shape \(2, 3\)"),
        (lambda: x.flatten(1, 0), ValueError, "flatten: start axis 1 comes after end axis 0"),
        (lambda: x.unsqueeze(3), ValueError, "unsqueeze: axis 3 is out of range"),
        (lambda: x.max(axis=2), ValueError, "max: axis 2 is out of range"),
        (lambda: Tensor(np.ones(0)).max(), ValueError, r"max: an empty tensor of shape \(0,\)"),
        (lambda: x.cumsum(5), ValueError, "cumsum: axis 5 is out of range"),
        (lambda: x.squeeze(axis=7), ValueError, "squeeze: axis 7 is out of range"),
        (lambda: tg.squeeze(x, (0, -3)), ValueError, "squeeze: axis -3 is out of range"),
        (lambda: x.flatten(3), ValueError, "flatten: axis 3 is out of range"),
        (lambda: tg.flatten(x, 0, 2), ValueError, "flatten: axis 2 is out of range"),
        (lambda: tg.argmax(x, axis=4), ValueError, "argmax: axis 4 is out of range"),
        (lambda: x.argmin(axis=-3), ValueError, "argmin: axis -3 is out of range"),
    ]
    for call, error, message in cases:
        with pytest.raises(error, match=message):
            call()


def test_new_ops_print_under_their_names() -> None:
    x = Tensor(np.ones((2, 3)), requires_grad=True)
    with Tape() as tape:
        (x.max(1) + x.logsumexp() + x.var() + x.cumsum(0).flip().sum() + x.gelu().sum()).clamp(0.0)
    names = [node.name for node in tape]
    for name in ("max", "logsumexp", "var", "cumsum", "flip", "gelu", "clamp"):
        assert name in names


# --- constructors -----------------------------------------------------------------------------
def test_constructors_shapes_dtypes_and_requires_grad() -> None:
    assert tg.zeros(2, 3).shape == tg.zeros((2, 3)).shape == (2, 3)
    assert tg.zeros(2).dtype == np.float64 and not tg.ones(2).requires_grad
    assert tg.ones(2, dtype=np.float32, requires_grad=True).dtype == np.float32
    assert tg.ones(2, 3, requires_grad=True).requires_grad
    np.testing.assert_array_equal(tg.full((2, 2), 7.0).data, np.full((2, 2), 7.0))
    np.testing.assert_array_equal(tg.full(3, 1.5, dtype=np.float32).data, np.full(3, 1.5, np.float32))
    like = Tensor(np.ones((2, 1), np.float32))
    assert tg.zeros_like(like).dtype == np.float32 and tg.ones_like(like).shape == (2, 1)
    assert (
        tg.zeros_like(np.ones(3, int)).dtype == int
        and tg.ones_like(like, dtype=np.float64).dtype == np.float64
    )
    np.testing.assert_array_equal(tg.arange(4).data, [0, 1, 2, 3])
    np.testing.assert_array_equal(tg.arange(1, 2, 0.25).data, [1.0, 1.25, 1.5, 1.75])
    np.testing.assert_array_equal(tg.arange(5, 0, -2).data, [5, 3, 1])
    assert tg.arange(3).dtype == np.int64 and tg.arange(np.int32(1), 3).dtype == np.int64  # torch's
    assert tg.arange(3.0).dtype == np.float64 and tg.arange(0, 3, 0.5).dtype == np.float64
    assert tg.arange(3, dtype=np.float32).dtype == np.float32
    np.testing.assert_array_equal(tg.eye(2, 3).data, np.eye(2, 3))
    assert tg.randn(4, 5, rng=0).shape == (4, 5) and tg.rand((2,), dtype=np.float32).dtype == np.float32
    with pytest.raises(ValueError, match="arange: step must not be 0"):
        tg.arange(0, 1, 0)


@pytest.mark.parametrize("args", [(5,), (1, 4), (5, 0, -2), (3.0,), (0, 1, 0.25), (0.5, 3)])
def test_arange_is_int_for_ints_as_torch(torch: Any, args: tuple[float, ...]) -> None:
    theirs = torch.arange(*args)
    ours = tg.arange(*args)
    assert (ours.dtype == np.int64) == (theirs.dtype == torch.int64)
    np.testing.assert_array_equal(ours.data, theirs.numpy())


def test_random_constructors_use_their_rng_only() -> None:
    state = np.random.get_state()[1].copy()
    np.testing.assert_array_equal(tg.randn(3, rng=5).data, np.random.default_rng(5).standard_normal(3))
    np.testing.assert_array_equal(tg.rand(3, rng=5).data, np.random.default_rng(5).random(3))
    rng = np.random.default_rng(1)
    first, second = tg.randn(3, rng=rng), tg.randn(3, rng=rng)  # a Generator advances
    assert not np.array_equal(first.data, second.data)
    np.testing.assert_allclose(tg.randn(3, rng=2, dtype=np.float32).data, tg.randn(3, rng=2).data, rtol=1e-7)
    assert not np.array_equal(tg.rand(4).data, tg.rand(4).data)  # None: a fresh unseeded generator
    np.testing.assert_array_equal(np.random.get_state()[1], state)  # numpy's global state untouched
    if torch is not None:
        assert tuple(torch.zeros(2, 3).shape) == tg.zeros(2, 3).shape
        np.testing.assert_array_equal(torch.eye(2, 3).numpy(), tg.eye(2, 3).data)
        np.testing.assert_array_equal(torch.arange(1, 2, 0.25).numpy(), tg.arange(1, 2, 0.25).data)


def test_builtin_names_are_functions_of_the_package_but_star_import_keeps_the_builtins() -> None:
    np.testing.assert_array_equal(tg.max(np.array([1.0, 3.0])).data, 3.0)
    np.testing.assert_array_equal(tg.abs(-2.0).data, 2.0)
    namespace: dict[str, Any] = {}
    exec("from tinygrad_rnn import *", namespace)
    assert "max" not in namespace and "sqrt" in namespace and "grad" in namespace
