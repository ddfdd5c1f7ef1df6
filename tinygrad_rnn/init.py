"""Initialising parameters in place, with PyTorch's formulas (`torch.nn.init`).

    from tinygrad_rnn import init
    init.xavier_uniform_(layer.weight, gain=init.calculate_gain("tanh"), rng=0)

Each function overwrites the tensor's values (its array keeps its memory and dtype; the
change is dated like any assignment to `t.data`, so a graph that saved the old values
refuses to backward) and returns the tensor. `rng` is an `np.random.Generator` or an int
seed; None means a fresh, unseeded `np.random.default_rng()`. numpy's global random state
is never used. Fans follow PyTorch: a weight (out, in, *kernel) has
fan_in = in * prod(kernel) and fan_out = out * prod(kernel); a 2-D (out, in) weight, as
`Linear.weight`, has fan_in = in and fan_out = out.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

from tinygrad_rnn.creation import RNG, generator
from tinygrad_rnn.tensor import Tensor

__all__ = [
    "calculate_gain",
    "constant_",
    "kaiming_normal_",
    "kaiming_uniform_",
    "normal_",
    "ones_",
    "orthogonal_",
    "uniform_",
    "xavier_normal_",
    "xavier_uniform_",
    "zeros_",
]

# nonlinearities whose gain is 1 (PyTorch's list)
_LINEAR = frozenset(
    ["linear", "sigmoid", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d"]
    + ["conv_transpose3d"]
)


def calculate_gain(nonlinearity: str, param: Optional[float] = None) -> float:
    """The gain recommended for `nonlinearity`: 1 for linear and sigmoid, 5/3 for tanh,
    sqrt(2) for relu, sqrt(2 / (1 + slope^2)) for leaky_relu (slope = param, default
    0.01), 3/4 for selu."""
    if nonlinearity in _LINEAR:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is not None and (isinstance(param, bool) or not isinstance(param, (int, float))):
            raise ValueError(f"calculate_gain: negative_slope {param!r} is not a number")
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def _calculate_fan_in_and_fan_out(t: Tensor) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight (out, in, *kernel): in and out times the kernel's size."""
    if t.ndim < 2:
        raise ValueError(f"init: fan in and fan out need 2 or more dimensions, not shape {t.shape}")
    receptive = math.prod(t.shape[2:])
    return t.shape[1] * receptive, t.shape[0] * receptive


def _fan(t: Tensor, mode: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"init: mode must be 'fan_in' or 'fan_out', not {mode!r}")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(t)
    return fan_in if mode == "fan_in" else fan_out


def _fill(t: Tensor, values: Any) -> Tensor:
    """Write `values` into t's array (cast to its dtype) and date the change."""
    array = t.data
    array[...] = values
    t.data = array  # an assignment to `.data` is what tells saved graphs that it changed
    return t


def uniform_(t: Tensor, a: float = 0.0, b: float = 1.0, rng: RNG = None) -> Tensor:
    """Samples of U(a, b)."""
    return _fill(t, generator(rng).uniform(a, b, t.shape))


def normal_(t: Tensor, mean: float = 0.0, std: float = 1.0, rng: RNG = None) -> Tensor:
    """Samples of N(mean, std^2)."""
    return _fill(t, generator(rng).normal(mean, std, t.shape))


def constant_(t: Tensor, val: float) -> Tensor:
    return _fill(t, val)


def zeros_(t: Tensor) -> Tensor:
    return _fill(t, 0)


def ones_(t: Tensor) -> Tensor:
    return _fill(t, 1)


def xavier_uniform_(t: Tensor, gain: float = 1.0, rng: RNG = None) -> Tensor:
    """U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio, 2010)."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(t)
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(t, -a, a, rng)


def xavier_normal_(t: Tensor, gain: float = 1.0, rng: RNG = None) -> Tensor:
    """N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(t)
    return normal_(t, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), rng)


def kaiming_uniform_(
    t: Tensor, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", rng: RNG = None
) -> Tensor:
    """U(-bound, bound) with bound = gain * sqrt(3 / fan) (He et al., 2015); gain is
    `calculate_gain(nonlinearity, a)`, fan is fan_in or fan_out as `mode` says."""
    bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / _fan(t, mode))
    return uniform_(t, -bound, bound, rng)


def kaiming_normal_(
    t: Tensor, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", rng: RNG = None
) -> Tensor:
    """N(0, std^2) with std = gain / sqrt(fan); gain and fan as in `kaiming_uniform_`."""
    return normal_(t, 0.0, calculate_gain(nonlinearity, a) / math.sqrt(_fan(t, mode)), rng)


def orthogonal_(t: Tensor, gain: float = 1.0, rng: RNG = None) -> Tensor:
    """A (semi-)orthogonal matrix times gain (Saxe et al., 2013): t viewed as (rows, cols)
    with cols = size / rows gets orthonormal rows or columns, whichever are fewer.

    The QR factors of a normal sample, Q's columns signed by R's diagonal so that Q is
    uniformly distributed (as PyTorch).
    """
    if t.ndim < 2:
        raise ValueError(f"orthogonal_: needs 2 or more dimensions, not shape {t.shape}")
    if t.size == 0:
        return t
    rows = t.shape[0]
    cols = t.size // rows
    sample = generator(rng).standard_normal((rows, cols))
    if rows < cols:
        sample = sample.T
    q, r = np.linalg.qr(sample)
    q = q * np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return _fill(t, (gain * q).reshape(t.shape))
