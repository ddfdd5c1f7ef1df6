import numpy as np

from tinygrad_rnn import Tensor


def test_matmul_tanh_sum_gradient_matches_formula() -> None:
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((3, 4)), requires_grad=True)
    w = Tensor(rng.standard_normal((4, 2)), requires_grad=True)
    (x @ w).tanh().sum().backward()
    y = np.tanh(x.data @ w.data)
    np.testing.assert_allclose(w.grad, x.data.T @ (1 - y * y), rtol=1e-12)
    np.testing.assert_allclose(x.grad, (1 - y * y) @ w.data.T, rtol=1e-12)
