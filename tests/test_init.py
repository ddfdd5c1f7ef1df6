"""tinygrad_rnn.init: bounds and sample statistics against PyTorch's formulas, written out
here in numpy; the same seed gives the same values; torch.nn.init's fans, gains and
bounds where torch is installed."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from tinygrad_rnn import Tape, Tensor, init

BIG = (400, 250)  # 100000 samples: a sample std is within ~0.5% of the true one


def test_calculate_gain_follows_the_table() -> None:
    assert (
        init.calculate_gain("linear") == init.calculate_gain("sigmoid") == init.calculate_gain("conv2d") == 1
    )
    assert init.calculate_gain("tanh") == pytest.approx(5 / 3)
    assert init.calculate_gain("relu") == pytest.approx(math.sqrt(2))
    assert init.calculate_gain("leaky_relu") == pytest.approx(math.sqrt(2 / (1 + 0.01**2)))
    assert init.calculate_gain("leaky_relu", 0.2) == pytest.approx(math.sqrt(2 / 1.04))
    assert init.calculate_gain("leaky_relu", 0) == pytest.approx(math.sqrt(2))
    assert init.calculate_gain("selu") == 0.75
    with pytest.raises(ValueError, match="calculate_gain: unsupported nonlinearity 'swish'"):
        init.calculate_gain("swish")
    with pytest.raises(ValueError, match="negative_slope True is not a number"):
        init.calculate_gain("leaky_relu", True)


def test_fans_of_a_matrix_and_of_a_kernel() -> None:
    assert init._calculate_fan_in_and_fan_out(Tensor(np.zeros((5, 3)))) == (3, 5)
    assert init._calculate_fan_in_and_fan_out(Tensor(np.zeros((8, 4, 3, 2)))) == (4 * 6, 8 * 6)
    with pytest.raises(ValueError, match=r"2 or more dimensions, not shape \(3,\)"):
        init.xavier_uniform_(Tensor(np.zeros(3)))
    with pytest.raises(ValueError, match="mode must be 'fan_in' or 'fan_out', not 'fan_avg'"):
        init.kaiming_uniform_(Tensor(np.zeros((2, 2))), mode="fan_avg")


def _uniform_bound_ok(t: Tensor, bound: float) -> None:
    """All samples in [-bound, bound], reaching close to both ends, std = bound / sqrt(3)."""
    x = t.data
    assert np.abs(x).max() <= bound
    assert x.max() > 0.99 * bound and x.min() < -0.99 * bound
    assert x.std() == pytest.approx(bound / math.sqrt(3), rel=0.01)


@pytest.mark.parametrize("gain", [1.0, 5 / 3])
def test_xavier(gain: float) -> None:
    fan_out, fan_in = BIG
    t = init.xavier_uniform_(Tensor(np.empty(BIG)), gain=gain, rng=0)
    _uniform_bound_ok(t, gain * math.sqrt(6 / (fan_in + fan_out)))
    t = init.xavier_normal_(Tensor(np.empty(BIG)), gain=gain, rng=0)
    assert t.data.mean() == pytest.approx(0, abs=0.01 * t.data.std())
    assert t.data.std() == pytest.approx(gain * math.sqrt(2 / (fan_in + fan_out)), rel=0.01)


@pytest.mark.parametrize(
    "a, mode, nonlinearity",
    [(0, "fan_in", "leaky_relu"), (0.2, "fan_out", "leaky_relu"), (0, "fan_in", "relu")],
)
def test_kaiming(a: float, mode: str, nonlinearity: str) -> None:
    fan = BIG[1] if mode == "fan_in" else BIG[0]
    gain = math.sqrt(2 / (1 + a * a))  # leaky_relu with slope a; relu: a = 0
    t = init.kaiming_uniform_(Tensor(np.empty(BIG)), a=a, mode=mode, nonlinearity=nonlinearity, rng=1)
    _uniform_bound_ok(t, gain * math.sqrt(3 / fan))
    t = init.kaiming_normal_(Tensor(np.empty(BIG)), a=a, mode=mode, nonlinearity=nonlinearity, rng=1)
    assert t.data.std() == pytest.approx(gain / math.sqrt(fan), rel=0.01)


def test_uniform_normal_and_constants() -> None:
    _uniform_bound_ok(init.uniform_(Tensor(np.empty(BIG)), -0.5, 0.5, rng=2), 0.5)
    shifted = init.uniform_(Tensor(np.empty(BIG)), 2.0, 3.0, rng=2).data
    assert shifted.min() >= 2.0 and shifted.max() <= 3.0
    x = init.normal_(Tensor(np.empty(BIG)), mean=3.0, std=0.5, rng=2).data
    assert x.mean() == pytest.approx(3.0, abs=0.01) and x.std() == pytest.approx(0.5, rel=0.01)
    t = Tensor(np.empty((2, 3)))
    np.testing.assert_array_equal(init.zeros_(t).data, 0.0)
    np.testing.assert_array_equal(init.ones_(t).data, 1.0)
    np.testing.assert_array_equal(init.constant_(t, 0.25).data, 0.25)


@pytest.mark.parametrize("shape", [(6, 4), (4, 6), (5, 2, 3), (3, 3)])
@pytest.mark.parametrize("gain", [1.0, 2.0])
def test_orthogonal_has_orthonormal_rows_or_columns_times_gain(shape: tuple[int, ...], gain: float) -> None:
    q = init.orthogonal_(Tensor(np.empty(shape)), gain=gain, rng=3).data.reshape(shape[0], -1)
    small = q.T @ q if q.shape[0] >= q.shape[1] else q @ q.T  # the smaller Gram matrix
    np.testing.assert_allclose(small, gain**2 * np.eye(len(small)), atol=1e-12)
    with pytest.raises(ValueError, match=r"orthogonal_: needs 2 or more dimensions"):
        init.orthogonal_(Tensor(np.empty(3)))


@pytest.mark.parametrize(
    "fill",
    [
        lambda t, rng: init.uniform_(t, rng=rng),
        lambda t, rng: init.normal_(t, rng=rng),
        lambda t, rng: init.xavier_uniform_(t, rng=rng),
        lambda t, rng: init.xavier_normal_(t, rng=rng),
        lambda t, rng: init.kaiming_uniform_(t, rng=rng),
        lambda t, rng: init.kaiming_normal_(t, rng=rng),
        lambda t, rng: init.orthogonal_(t, rng=rng),
    ],
)
def test_same_seed_same_values_in_place_and_in_the_tensors_dtype(fill: Any) -> None:
    t = Tensor(np.zeros((4, 3), np.float32), requires_grad=True)
    memory = t.data
    assert fill(t, 7) is t
    assert t.data is memory and t.dtype == np.float32 and t.requires_grad
    np.testing.assert_array_equal(fill(Tensor(np.zeros((4, 3), np.float32)), 7).data, t.data)
    np.testing.assert_array_equal(
        fill(Tensor(np.zeros((4, 3), np.float32)), np.random.default_rng(7)).data, t.data
    )
    rng = np.random.default_rng(7)
    first, second = fill(Tensor(np.zeros((4, 3))), rng).data, fill(Tensor(np.zeros((4, 3))), rng).data
    assert not np.array_equal(first, second)  # a Generator advances
    state = np.random.get_state()[1].copy()
    fill(Tensor(np.zeros((4, 3))), None)  # a fresh generator, not numpy's global one
    np.testing.assert_array_equal(np.random.get_state()[1], state)


def test_initialising_a_tensor_a_graph_saved_makes_its_backward_refuse() -> None:
    w = Tensor(np.ones((2, 2)), requires_grad=True)
    x = Tensor(np.ones((3, 2)), requires_grad=True)
    with Tape():
        loss = (x @ w).sum()
    init.xavier_uniform_(w, rng=0)
    with pytest.raises(RuntimeError, match="modified in place"):
        loss.backward()


def test_bounds_and_fans_match_torch_nn_init(torch: Any) -> None:
    for shape in [(5, 3), (8, 4, 3, 2)]:
        ours = init._calculate_fan_in_and_fan_out(Tensor(np.zeros(shape)))
        assert ours == torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
    for name, param in [
        ("tanh", None),
        ("relu", None),
        ("leaky_relu", None),
        ("leaky_relu", 0.3),
        ("selu", None),
    ]:
        assert init.calculate_gain(name, param) == pytest.approx(
            torch.nn.init.calculate_gain(name, param), rel=1e-15
        )
    fan_out, fan_in = BIG
    cases = [
        (
            init.xavier_uniform_,
            torch.nn.init.xavier_uniform_,
            math.sqrt(6 / (fan_in + fan_out)) * 1.5,
            {"gain": 1.5},
        ),
        (
            init.kaiming_uniform_,
            torch.nn.init.kaiming_uniform_,
            math.sqrt(2 / 1.09) * math.sqrt(3 / fan_in),
            {"a": 0.3},
        ),
    ]
    for ours_fn, theirs_fn, bound, options in cases:
        theirs = theirs_fn(torch.empty(BIG, dtype=torch.float64), **options).numpy()
        t = ours_fn(Tensor(np.empty(BIG)), rng=4, **options)
        for x in (theirs, t.data):  # the same range, both reaching its ends
            assert np.abs(x).max() <= bound and np.abs(x).max() > 0.99 * bound
        assert t.data.std() == pytest.approx(theirs.std(), rel=0.02)
