"""Functional gradients, as HIPS autograd and JAX offer them, built on `Tape.gradient`.

    df = tg.grad(f)                  # f(x, ...) -> a one-element Tensor
    df(np.ones(3))                   # df/dx as a numpy array of x's shape
    tg.grad(f, argnums=(0, 1))(x, y) # a tuple (df/dx, df/dy)
    value, dx = tg.value_and_grad(f)(x)

The arguments picked by `argnums` may be float arrays, numbers or tensors; each becomes a
fresh leaf Tensor that requires grad (a tensor's data is shared, its graph is not
followed), the others reach `f` unchanged. First-order only: a gradient is a numpy array,
not a graph, so `grad(grad(f))` is not supported.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Union

import numpy as np

from tinygrad_rnn.tape import Tape, is_grad_enabled
from tinygrad_rnn.tensor import Tensor

ArgNums = Union[int, tuple[int, ...]]


def _positions(argnums: ArgNums, nargs: int, who: str) -> tuple[int, ...]:
    """argnums as positions in [0, nargs), negatives counted from the end."""
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    if not nums:
        raise ValueError(f"{who}: argnums is empty")
    for i in nums:
        if not -nargs <= i < nargs:
            raise ValueError(f"{who}: argnums {argnums} names argument {i}, but f got {nargs} arguments")
    positions = tuple(i % nargs for i in nums)
    if len(set(positions)) != len(positions):
        raise ValueError(f"{who}: argnums {argnums} names an argument twice")
    return positions


def _leaf(x: Any, i: int, who: str) -> Tensor:
    """Argument i as a new leaf tensor that requires grad."""
    data = np.asarray(x.data if isinstance(x, Tensor) else x)
    if data.dtype.kind != "f":
        raise TypeError(f"{who}: argument {i} must be a float array, number or tensor, not {data.dtype}")
    return Tensor(data, requires_grad=True)


def value_and_grad(
    f: Callable[..., Tensor], argnums: ArgNums = 0, who: str = "value_and_grad"
) -> Callable[..., tuple[np.ndarray, Any]]:
    """A function returning (f's value as an array, the gradient(s) of f w.r.t. argnums).

    The gradient is one array for an int `argnums` and a tuple of arrays for a tuple, each
    of its argument's shape. f must return a one-element Tensor. `who` starts error messages.
    """

    @functools.wraps(f)
    def value_and_grad_f(*args: Any, **kwargs: Any) -> tuple[np.ndarray, Any]:
        positions = _positions(argnums, len(args), who)
        if not is_grad_enabled():
            raise RuntimeError(f"{who}: called inside no_grad(), where nothing is recorded")
        args_ = list(args)
        for i in positions:
            args_[i] = _leaf(args[i], i, who)
        sources = [args_[i] for i in positions]
        with Tape() as tape:
            out = f(*args_, **kwargs)
        if not isinstance(out, Tensor) or out.size != 1:
            what = f"a Tensor of shape {out.shape}" if isinstance(out, Tensor) else type(out).__name__
            raise TypeError(f"{who}: f must return a one-element Tensor (a scalar loss), not {what}")
        if out.requires_grad:
            grads = tape.gradient(out, sources)
        else:  # f does not depend on the arguments
            grads = [np.zeros(s.shape, s.dtype) for s in sources]
        return out.data, grads[0] if isinstance(argnums, int) else tuple(grads)

    return value_and_grad_f


def grad(f: Callable[..., Tensor], argnums: ArgNums = 0) -> Callable[..., Any]:
    """A function returning the gradient(s) of f w.r.t. the arguments in `argnums`.

    One array (of that argument's shape) for an int `argnums`, a tuple for a tuple. f must
    return a one-element Tensor; see `value_and_grad`.
    """
    both = value_and_grad(f, argnums, who="grad")

    @functools.wraps(f)
    def grad_f(*args: Any, **kwargs: Any) -> Any:
        return both(*args, **kwargs)[1]

    return grad_f
