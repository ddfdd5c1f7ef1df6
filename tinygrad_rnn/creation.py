"""Tensors made from sizes: zeros, ones, full, arange, eye, randn, rand, zeros_like, ones_like.

As in PyTorch: a shape is given as `zeros(2, 3)` or `zeros((2, 3))`, and `requires_grad`
is False unless asked. The dtype is float64 unless given, except `arange` of ints, which
is int64 as in PyTorch; `*_like` keep the tensor's dtype. `randn` and `rand`
take `rng`: an `np.random.Generator` or an int seed; None means a fresh, unseeded
`np.random.default_rng()`. numpy's global random state is never used.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import numpy as np

from tinygrad_rnn.tensor import Tensor, _sizes

DType = Any
RNG = Union[np.random.Generator, int, None]
Sizes = Union[int, Sequence[int]]


def generator(rng: RNG) -> np.random.Generator:
    """`rng` itself if it is a Generator, else `np.random.default_rng(rng)` (an int seeds it)."""
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _tensor(array: np.ndarray, dtype: DType, requires_grad: bool) -> Tensor:
    return Tensor(np.asarray(array, dtype=dtype), requires_grad=requires_grad)


def zeros(*shape: Sizes, dtype: DType = np.float64, requires_grad: bool = False) -> Tensor:
    return _tensor(np.zeros(_sizes(shape)), dtype, requires_grad)


def ones(*shape: Sizes, dtype: DType = np.float64, requires_grad: bool = False) -> Tensor:
    return _tensor(np.ones(_sizes(shape)), dtype, requires_grad)


def full(shape: Sizes, fill_value: float, dtype: DType = np.float64, requires_grad: bool = False) -> Tensor:
    return _tensor(np.full(_sizes((shape,)), fill_value), dtype, requires_grad)


def zeros_like(t: Any, dtype: DType = None, requires_grad: bool = False) -> Tensor:
    """Zeros of t's shape, in t's dtype unless given (t: a Tensor or an array)."""
    data = np.asarray(t.data if isinstance(t, Tensor) else t)
    return _tensor(np.zeros(data.shape), dtype or data.dtype, requires_grad)


def ones_like(t: Any, dtype: DType = None, requires_grad: bool = False) -> Tensor:
    """Ones of t's shape, in t's dtype unless given (t: a Tensor or an array)."""
    data = np.asarray(t.data if isinstance(t, Tensor) else t)
    return _tensor(np.ones(data.shape), dtype or data.dtype, requires_grad)


def arange(
    start: float,
    end: Optional[float] = None,
    step: float = 1,
    dtype: DType = None,
    requires_grad: bool = False,
) -> Tensor:
    """start, start + step, ... up to end (excluded); `arange(n)` is 0 .. n-1. Unless `dtype`
    is given, int64 when start, end and step are all ints (as PyTorch), else float64."""
    if step == 0:
        raise ValueError("arange: step must not be 0")
    if dtype is None:
        ints = all(isinstance(v, (int, np.integer)) for v in (start, end, step) if v is not None)
        dtype = np.int64 if ints else np.float64
    values = np.arange(start, step=step) if end is None else np.arange(start, end, step)
    return _tensor(values, dtype, requires_grad)


def eye(n: int, m: Optional[int] = None, dtype: DType = np.float64, requires_grad: bool = False) -> Tensor:
    """The (n, m) identity (m = n unless given)."""
    return _tensor(np.eye(n, m), dtype, requires_grad)


def randn(*shape: Sizes, rng: RNG = None, dtype: DType = np.float64, requires_grad: bool = False) -> Tensor:
    """Standard normal samples; drawn in float64 (the same numbers for either dtype)."""
    return _tensor(generator(rng).standard_normal(_sizes(shape)), dtype, requires_grad)


def rand(*shape: Sizes, rng: RNG = None, dtype: DType = np.float64, requires_grad: bool = False) -> Tensor:
    """Uniform samples in [0, 1); drawn in float64 (the same numbers for either dtype)."""
    return _tensor(generator(rng).random(_sizes(shape)), dtype, requires_grad)
