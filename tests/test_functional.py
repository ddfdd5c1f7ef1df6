"""tg.grad and tg.value_and_grad against analytic gradients (and HIPS autograd's form)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import tinygrad_rnn as tg
from tinygrad_rnn import Tensor


def quadratic(x: Tensor, a: Any) -> Tensor:
    return (x * x * a).sum()  # d/dx = 2 a x


def test_grad_of_an_array_argument_is_an_array_of_its_shape() -> None:
    x, a = np.arange(6.0).reshape(2, 3), np.full((2, 3), 0.5)
    dx = tg.grad(quadratic)(x, a)
    assert isinstance(dx, np.ndarray) and dx.shape == x.shape
    np.testing.assert_allclose(dx, 2 * a * x)


def test_grad_over_several_arguments_tensors_and_numbers() -> None:
    def f(w: Tensor, b: Tensor, x: np.ndarray) -> Tensor:
        return ((x @ w + b).tanh() ** 2).sum()

    rng = np.random.default_rng(0)
    w, b, x = rng.standard_normal((3, 2)), 0.3, rng.standard_normal((4, 3))
    dw, db = tg.grad(f, argnums=(0, 1))(Tensor(w), b, x)
    t = np.tanh(x @ w + b)
    d_pre = 2 * t * (1 - t * t)  # d(tanh(z)^2)/dz
    np.testing.assert_allclose(dw, x.T @ d_pre, rtol=1e-12)
    assert isinstance(db, np.ndarray) and db.shape == ()
    np.testing.assert_allclose(db, d_pre.sum(), rtol=1e-12)
    (dx,) = tg.grad(f, argnums=(-1,))(w, b, x)
    np.testing.assert_allclose(dx, d_pre @ w.T, rtol=1e-12)


def test_value_and_grad_and_keyword_arguments_pass_through() -> None:
    def f(x: Tensor, scale: float = 1.0) -> Tensor:
        return (x.sin() * scale).sum()

    x = np.array([0.1, 0.7, -2.0])
    value, dx = tg.value_and_grad(f)(x, scale=3.0)
    assert isinstance(value, np.ndarray)
    np.testing.assert_allclose(value, 3 * np.sin(x).sum())
    np.testing.assert_allclose(dx, 3 * np.cos(x))


def test_a_tensor_argument_is_used_as_a_fresh_leaf() -> None:
    w = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = w * 3.0  # made by an op: its graph is not followed, and w.grad is not touched
    dy = tg.grad(lambda v: (v * v).sum())(y)
    np.testing.assert_allclose(dy, [6.0, 12.0])
    assert w.grad is None and y.grad is None


def test_a_function_that_ignores_its_argument_has_zero_gradient() -> None:
    np.testing.assert_array_equal(tg.grad(lambda x: Tensor(2.0))(np.ones(3)), np.zeros(3))


def test_float32_arguments_give_float32_gradients() -> None:
    dx = tg.grad(lambda x: (x * x).sum())(np.ones(2, np.float32))
    assert dx.dtype == np.float32
    np.testing.assert_array_equal(dx, [2.0, 2.0])


def test_bad_calls_are_clear_errors() -> None:
    with pytest.raises(TypeError, match=r"grad: f must return a one-element Tensor .*shape \(3,\)"):
        tg.grad(lambda x: x * 2)(np.ones(3))
    with pytest.raises(TypeError, match="value_and_grad: f must return a one-element Tensor .*float"):
        tg.value_and_grad(lambda x: 1.0)(np.ones(3))
    with pytest.raises(TypeError, match="grad: argument 0 must be a float array"):
        tg.grad(lambda x: x.sum())(np.arange(3))
    with pytest.raises(ValueError, match="grad: argnums 2 names argument 2, but f got 1 arguments"):
        tg.grad(lambda x: x.sum(), argnums=2)(np.ones(3))
    with pytest.raises(ValueError, match="names an argument twice"):
        tg.grad(lambda x: x.sum(), argnums=(0, -1))(np.ones(3))
    with tg.no_grad(), pytest.raises(RuntimeError, match="grad: called inside no_grad"):
        tg.grad(lambda x: x.sum())(np.ones(3))


def test_agrees_with_hips_autograd_where_installed() -> None:
    autograd = pytest.importorskip("autograd")
    anp = pytest.importorskip("autograd.numpy")
    x = np.random.default_rng(1).standard_normal((3, 4))
    ours = tg.grad(lambda t: (t.logsumexp(axis=1) - t.max(axis=1)).sum())(x)

    def theirs(a: Any) -> Any:
        m = anp.max(a, axis=1, keepdims=True)
        return anp.sum(anp.log(anp.sum(anp.exp(a - m), axis=1)))  # the max goes through its gradient

    np.testing.assert_allclose(ours, autograd.grad(theirs)(x), rtol=1e-12, atol=1e-14)
