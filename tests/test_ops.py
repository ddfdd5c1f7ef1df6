"""Every op's gradient against central finite differences (float64), shapes drawn by
hypothesis, broadcasting included; and against torch.autograd to 1e-10 where installed."""

from __future__ import annotations

from typing import Any, Callable

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import example, given

import tinygrad_rnn as tg
from tinygrad_rnn import Tape, Tensor, gradcheck

try:
    import torch
except ImportError:  # the oracle is optional
    torch = None

FD = {"atol": 1e-7, "rtol": 1e-6}  # central differences, eps 1e-6, float64
seeds = st.integers(0, 2**32 - 1)
shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)
pairs = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, min_side=1, max_side=4)


def values(rng: np.random.Generator, shape: tuple[int, ...], low: float = -2.0, high: float = 2.0) -> Any:
    return rng.uniform(low, high, shape)


def away_from_zero(rng: np.random.Generator, shape: tuple[int, ...]) -> Any:
    """Values with |x| in [0.5, 2]: no kink of relu and no pole of division nearby."""
    return rng.uniform(0.5, 2.0, shape) * rng.choice([-1.0, 1.0], shape)


def check(fn: Callable[..., Tensor], torch_fn: Callable[..., Any] | None, *arrays: Any) -> None:
    """fn's gradients match finite differences, and torch's where it is installed."""
    xs = [Tensor(a, requires_grad=True) for a in arrays]
    assert gradcheck(fn, xs, **FD)
    if torch is None or torch_fn is None:
        return
    with Tape() as tape:
        out = fn(*xs)
    r = np.random.default_rng(1).standard_normal(out.shape)
    ours = tape.gradient(out, xs, grad=r)
    ts = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    t_out = torch_fn(*ts)
    np.testing.assert_allclose(out.data, t_out.detach().numpy(), rtol=1e-10, atol=1e-12)
    t_out.backward(torch.tensor(r))
    for g, t in zip(ours, ts):
        assert g.shape == t.shape
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-10, atol=1e-12)


BINARY: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {
    "add": (lambda a, b: a + b, values),
    "sub": (lambda a, b: a - b, values),
    "mul": (lambda a, b: a * b, values),
    "div": (lambda a, b: a / b, away_from_zero),
}


def _bshapes(a: tuple[int, ...], b: tuple[int, ...]) -> Any:
    return hnp.BroadcastableShapes(input_shapes=(a, b), result_shape=np.broadcast_shapes(a, b))


@pytest.mark.parametrize("name", sorted(BINARY))
@given(shapes=pairs, seed=seeds)
@example(shapes=_bshapes((1, 3, 1), (2, 1, 4)), seed=0)  # two stretched axes in each input
@example(shapes=_bshapes((2, 1, 1), (3, 4)), seed=1)  # an added axis and two stretched ones
@example(shapes=_bshapes((), (2, 3)), seed=2)  # 0-d against a matrix
@example(shapes=_bshapes((1, 1), (1,)), seed=3)  # size-1 only
def test_binary_ops_broadcast(name: str, shapes: Any, seed: int) -> None:
    op, draw = BINARY[name]
    rng = np.random.default_rng(seed)
    a, b = (draw(rng, s) for s in shapes.input_shapes)
    check(op, op, a, b)


@pytest.mark.parametrize("name", sorted(BINARY))
@given(shape=shapes, seed=seeds, scalar=st.floats(0.5, 3.0))
def test_binary_ops_with_python_scalars_and_arrays_on_either_side(
    name: str, shape: tuple[int, ...], seed: int, scalar: float
) -> None:
    op, draw = BINARY[name]
    rng = np.random.default_rng(seed)
    x, const = draw(rng, shape), draw(rng, shape)
    check(lambda t: op(t, scalar), lambda t: op(t, scalar), x)
    check(lambda t: op(scalar, t), lambda t: op(scalar, t), x)
    # an ndarray on the left must defer to the Tensor, not loop over it elementwise
    check(lambda t: op(const, t), lambda t: op(torch.tensor(const), t), x)


@given(shape=shapes, seed=seeds)
def test_neg(shape: tuple[int, ...], seed: int) -> None:
    check(lambda t: -t, lambda t: -t, values(np.random.default_rng(seed), shape))


def test_pow_zero_exponent_has_zero_gradient_at_zero() -> None:
    x = Tensor(np.array([0.0, 2.0]), requires_grad=True)
    (x**0).sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0])


@given(shape=shapes, seed=seeds, exponent=st.sampled_from([2, 3, -1, 0.5, 1.5, -2.5]))
def test_pow_scalar_exponent(shape: tuple[int, ...], seed: int, exponent: float) -> None:
    x = np.random.default_rng(seed).uniform(0.5, 2.0, shape)  # positive base for real powers
    check(lambda t: t**exponent, lambda t: t**exponent, x)


@st.composite
def matmul_shapes(draw: Any) -> tuple[tuple[int, ...], tuple[int, ...]]:
    n, k, m = draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    batch = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=2, max_side=3))
    ba, bb = batch.input_shapes
    a = draw(st.sampled_from([(k,), ba + (n, k)]))
    b = draw(st.sampled_from([(k,), bb + (k, m)]))
    return a, b


@given(shapes=matmul_shapes(), seed=seeds)
def test_matmul_2d_batched_broadcast_and_1d(shapes: Any, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a, b = (values(rng, s) for s in shapes)
    check(lambda x, y: x @ y, lambda x, y: x @ y, a, b)


@given(n=st.integers(1, 4), k=st.integers(1, 4), m=st.integers(1, 4), seed=seeds, data=st.data())
def test_addmm_with_broadcast_bias(n: int, k: int, m: int, seed: int, data: Any) -> None:
    rng = np.random.default_rng(seed)
    c_shape = data.draw(st.sampled_from([(n, m), (m,), (1, m), (n, 1), ()]))
    c, a, b = values(rng, c_shape), values(rng, (n, k)), values(rng, (k, m))
    check(tg.addmm, lambda x, y, z: x + y @ z, c, a, b)


def _axis_args(draw: Any, ndim: int) -> Any:
    if ndim == 0:
        return None
    return draw(
        st.one_of(
            st.none(),
            st.integers(-ndim, ndim - 1),
            st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True).map(tuple),
        )
    )


@pytest.mark.parametrize("name", ["sum", "mean"])
@given(shape=shapes, seed=seeds, data=st.data(), keepdims=st.booleans())
def test_reductions(name: str, shape: tuple[int, ...], seed: int, data: Any, keepdims: bool) -> None:
    axis = _axis_args(data.draw, len(shape))
    x = values(np.random.default_rng(seed), shape)

    def ours(t: Tensor) -> Tensor:
        return getattr(t, name)(axis=axis, keepdims=keepdims)

    def theirs(t: Any) -> Any:
        dim = tuple(range(t.ndim)) if axis is None else axis
        return getattr(torch, name)(t, dim=dim, keepdim=keepdims) if t.ndim else t * 1.0

    check(ours, theirs, x)


@given(shape=shapes, seed=seeds, data=st.data())
def test_reshape_and_transpose(shape: tuple[int, ...], seed: int, data: Any) -> None:
    x = values(np.random.default_rng(seed), shape)
    perm = tuple(data.draw(st.permutations(range(len(shape)))))
    check(lambda t: t.reshape(-1), lambda t: t.reshape(-1), x)
    check(lambda t: t.reshape(*shape[::-1]), lambda t: t.reshape(tuple(shape[::-1])), x)
    check(lambda t: t.transpose(*perm), lambda t: t.permute(perm), x)
    negative = tuple(a - len(shape) for a in perm)  # the same permutation, counted from the end
    check(lambda t: t.transpose(*negative), lambda t: t.permute(perm), x)
    check(lambda t: t.T, lambda t: t.permute(tuple(range(t.ndim - 1, -1, -1))), x)


@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=4), seed=seeds, data=st.data())
def test_getitem_ints_slices_and_integer_arrays_with_repeats(shape: Any, seed: int, data: Any) -> None:
    rng = np.random.default_rng(seed)
    x = values(rng, shape)
    i = data.draw(st.integers(-shape[0], shape[0] - 1))
    sl = slice(data.draw(st.integers(0, shape[0])), None, data.draw(st.integers(1, 2)))
    ids = rng.integers(0, shape[0], size=data.draw(st.integers(1, 6)))  # repeats likely
    check(lambda t: t[i], lambda t: t[i], x)
    check(lambda t: t[sl], lambda t: t[sl], x)
    check(lambda t: t[ids], lambda t: t[torch.tensor(ids)], x)
    if len(shape) > 1:
        cols = rng.integers(0, shape[1], size=ids.shape)
        check(lambda t: t[ids, cols], lambda t: t[torch.tensor(ids), torch.tensor(cols)], x)
        check(lambda t: t[:, 0], lambda t: t[:, 0], x)


@given(shape=shapes, seed=seeds, n=st.integers(1, 3), data=st.data())
def test_stack_and_concat(shape: tuple[int, ...], seed: int, n: int, data: Any) -> None:
    rng = np.random.default_rng(seed)
    axis = data.draw(st.integers(-len(shape) - 1, len(shape)))
    xs = [values(rng, shape) for _ in range(n)]
    check(lambda *ts: tg.stack(ts, axis=axis), lambda *ts: torch.stack(ts, dim=axis), *xs)
    if shape:
        cat_axis = data.draw(st.integers(-len(shape), len(shape) - 1))
        sized = [
            values(rng, shape[: cat_axis % len(shape)] + (j + 1,) + shape[cat_axis % len(shape) + 1 :])
            for j in range(n)
        ]
        check(lambda *ts: tg.concat(ts, axis=cat_axis), lambda *ts: torch.cat(ts, dim=cat_axis), *sized)


@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=4), seed=seeds, data=st.data())
def test_unbind_with_some_outputs_unused(shape: tuple[int, ...], seed: int, data: Any) -> None:
    """One op, several outputs: each used output weighted differently, the others get zeros."""
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    n = shape[axis]
    used = data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=n, unique=True))

    def combine(parts: Any, join: Callable[..., Any]) -> Any:
        return join([parts[k] * (k + 1.0) for k in used])

    check(
        lambda x: combine(tg.unbind(x, axis), tg.stack),
        lambda x: combine(torch.unbind(x, dim=axis), torch.stack),
        values(np.random.default_rng(seed), shape),
    )


@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=3), seed=seeds, data=st.data())
def test_chunk_with_some_parts_unused(shape: tuple[int, ...], seed: int, data: Any) -> None:
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    chunks = data.draw(st.integers(1, 3))
    sized = shape[: axis % len(shape)] + (shape[axis] * chunks,) + shape[axis % len(shape) + 1 :]
    used = data.draw(st.lists(st.integers(0, chunks - 1), min_size=1, max_size=chunks, unique=True))

    def combine(parts: Any, join: Callable[..., Any]) -> Any:
        return join([parts[k] * (k + 1.0) for k in used])

    check(
        lambda x: combine(tg.chunk(x, chunks, axis), tg.stack),
        lambda x: combine(torch.chunk(x, chunks, dim=axis), torch.stack),
        values(np.random.default_rng(seed), sized),
    )


def test_chunk_refuses_unequal_parts() -> None:
    with pytest.raises(ValueError, match="chunk: an axis of size 5 does not split into 2 equal parts"):
        Tensor(np.ones((2, 5))).chunk(2, axis=1)


UNARY: dict[str, tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]]] = {
    "tanh": (lambda t: t.tanh(), lambda t: t.tanh(), values),
    "sigmoid": (lambda t: t.sigmoid(), lambda t: t.sigmoid(), values),
    "relu": (lambda t: t.relu(), lambda t: t.relu(), away_from_zero),
    "exp": (lambda t: t.exp(), lambda t: t.exp(), values),
    "log": (lambda t: t.log(), lambda t: t.log(), lambda rng, s: rng.uniform(0.5, 3.0, s)),
}


@pytest.mark.parametrize("name", sorted(UNARY))
@given(shape=shapes, seed=seeds)
@example(shape=(), seed=0)
@example(shape=(1, 1), seed=1)
def test_unary_ops(name: str, shape: tuple[int, ...], seed: int) -> None:
    ours, theirs, draw = UNARY[name]
    check(ours, theirs, draw(np.random.default_rng(seed), shape))


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=4), seed=seeds, data=st.data())
def test_softmax_family(name: str, shape: tuple[int, ...], seed: int, data: Any) -> None:
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = values(np.random.default_rng(seed), shape, -3, 3)
    check(lambda t: getattr(t, name)(axis=axis), lambda t: getattr(torch, name)(t, dim=axis), x)


@pytest.mark.parametrize("reduction", ["sum", "mean", "none"])
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=4), seed=seeds)
def test_softmax_cross_entropy(reduction: str, shape: tuple[int, ...], seed: int) -> None:
    rng = np.random.default_rng(seed)
    logits = values(rng, shape, -3, 3)
    targets = rng.integers(0, shape[-1], size=shape[:-1])

    def theirs(t: Any) -> Any:
        flat = torch.nn.functional.cross_entropy(
            t.reshape(-1, shape[-1]), torch.tensor(targets.reshape(-1)), reduction=reduction
        )
        return flat.reshape(shape[:-1]) if reduction == "none" else flat

    check(lambda t: tg.softmax_cross_entropy(t, targets, reduction), theirs, logits)


@pytest.mark.parametrize("name", ["softmax", "log_softmax", "softmax_cross_entropy"])
def test_softmax_family_stays_finite_for_huge_logits(name: str) -> None:
    x = Tensor(np.array([[1e3, -1e3, 0.0], [-1e3, -1e3, -1e3]]), requires_grad=True)
    if name == "softmax_cross_entropy":
        out = tg.softmax_cross_entropy(x, np.array([1, 0]))
        assert out.item() == pytest.approx(2000.0 + np.log(3.0))
    else:
        out = getattr(x, name)()
    out.backward(np.ones(out.shape))
    assert np.all(np.isfinite(out.data)) and np.all(np.isfinite(x.grad))
    if name == "softmax_cross_entropy":
        np.testing.assert_allclose(x.grad, [[1.0, -1.0, 0.0], [1 / 3 - 1, 1 / 3, 1 / 3]], atol=1e-12)
