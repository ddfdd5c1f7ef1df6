"""Ops along axes: max/min, logsumexp, var, std, cumsum, flip, expand, repeat; argmax/argmin;
and the shapes behind unsqueeze, squeeze and flatten (which are reshapes).

The same table of derivatives as `ops`. A reduction's backward puts the reduced axes back
(`_unreduce`) so that its gradient broadcasts over the input.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional, Sequence

import numpy as np

from tinygrad_rnn.ops import Axis, _axes
from tinygrad_rnn.ops_elementwise import as_tensor
from tinygrad_rnn.tensor import ArrayLike, Context, Function, Tensor


def _reduced(ctx: Context, x: np.ndarray, axis: Axis, keepdims: bool) -> None:
    ctx.axis, ctx.keepdims = _axes(axis, x.ndim), keepdims


def _unreduce(ctx: Context, grad: np.ndarray) -> np.ndarray:
    """A reduction's upstream gradient with the reduced axes back as size 1."""
    if ctx.axis is not None and not ctx.keepdims:
        grad = np.expand_dims(grad, ctx.axis)
    return grad


def _finish(ctx: Context, out: np.ndarray) -> np.ndarray:
    """A reduction's result computed with keepdims=True, squeezed unless keepdims."""
    return out if ctx.keepdims else np.squeeze(out, ctx.axis)


# --- reductions ------------------------------------------------------------------------
def _extreme(ctx: Context, x: np.ndarray, axis: Axis, keepdims: bool, reduce: Any, arg: Any) -> np.ndarray:
    """max or min (reduce np.max/np.min, arg np.argmax/np.argmin) and the gradient's weights."""
    _reduced(ctx, x, axis, keepdims)
    if x.size == 0:
        raise ValueError(f"an empty tensor of shape {x.shape} has no {ctx.name}")
    if isinstance(axis, (int, np.integer)):  # the first extreme element of each slice
        index = np.expand_dims(arg(x, axis=axis), axis)
        out = np.take_along_axis(x, index, axis)
        weight = np.zeros(x.shape, x.dtype)
        np.put_along_axis(weight, index, 1, axis)
    else:  # every tied extreme element, in equal shares
        out = reduce(x, axis=ctx.axis, keepdims=True)
        ties = x == out
        weight = (ties / ties.sum(axis=ctx.axis, keepdims=True)).astype(x.dtype, copy=False)
    ctx.save_for_backward(weight)
    return _finish(ctx, out)


class Max(Function):
    """The largest element along `axis` (all axes if None). Ties follow PyTorch: with an int
    axis (`torch.max(x, dim)`) the first largest element of each slice gets the whole
    gradient; with None or a tuple of axes (`torch.max(x)`, `torch.amax`) the tied elements
    share it evenly."""

    name = "max"

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, axis: Axis = None, keepdims: bool = False) -> np.ndarray:
        return _extreme(ctx, x, axis, keepdims, np.max, np.argmax)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        (weight,) = ctx.saved_tensors
        return _unreduce(ctx, grad) * weight


class Min(Max):
    """The smallest element along `axis`; ties as `Max`."""

    name = "min"

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, axis: Axis = None, keepdims: bool = False) -> np.ndarray:
        return _extreme(ctx, x, axis, keepdims, np.min, np.argmin)


class LogSumExp(Function):
    """log(sum(exp(x))) along `axis`, shifted by the max: finite for huge x."""

    name = "logsumexp"

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, axis: Axis = None, keepdims: bool = False) -> np.ndarray:
        _reduced(ctx, x, axis, keepdims)
        m = np.max(x, axis=ctx.axis, keepdims=True, initial=-np.inf)
        m = np.where(np.isfinite(m), m, 0)  # a slice of -inf (or empty): no inf - inf
        with np.errstate(divide="ignore", invalid="ignore"):  # a slice of -inf: -inf, nan gradient
            out = m + np.log(np.exp(x - m).sum(axis=ctx.axis, keepdims=True))
            ctx.save_for_backward(np.exp(x - out))  # softmax over the axes
        return _finish(ctx, out.astype(x.dtype, copy=False))

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        (softmax,) = ctx.saved_tensors
        return _unreduce(ctx, grad) * softmax


class Var(Function):
    """sum((x - mean)^2) / (N - correction) along `axis`; correction=1 (PyTorch's default)
    is the unbiased estimate, 0 the population variance. N <= correction gives inf or nan,
    as PyTorch."""

    name = "var"

    @staticmethod
    def forward(
        ctx: Context, x: np.ndarray, axis: Axis = None, correction: float = 1, keepdims: bool = False
    ) -> np.ndarray:
        _reduced(ctx, x, axis, keepdims)
        n = x.size if ctx.axis is None else math.prod(x.shape[a] for a in ctx.axis)
        ctx.denom = n - correction if n > correction else 0  # (this module's max is the op)
        d = x - x.mean(axis=ctx.axis, keepdims=True)
        ctx.save_for_backward(d)
        with np.errstate(divide="ignore", invalid="ignore"):
            return _finish(ctx, (d * d).sum(axis=ctx.axis, keepdims=True) / ctx.denom)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        (d,) = ctx.saved_tensors
        with np.errstate(divide="ignore", invalid="ignore"):
            return _unreduce(ctx, grad) * (2 * d / ctx.denom)  # d var / dx_i = 2 (x_i - mean) / denom


class Std(Var):
    """sqrt(var(x)) along `axis` (see `Var`). Where std is 0 (no spread) the gradient is 0,
    as PyTorch, not the nan of sqrt's derivative there."""

    name = "std"

    @staticmethod
    def forward(
        ctx: Context, x: np.ndarray, axis: Axis = None, correction: float = 1, keepdims: bool = False
    ) -> np.ndarray:
        ctx.std = np.sqrt(Var.forward(ctx, x, axis, correction, keepdims))
        return ctx.std

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        std = ctx.std
        with np.errstate(divide="ignore", invalid="ignore"):
            grad_var = np.where(std == 0, 0, grad / (2 * std))  # d std = d var / (2 std)
        return Var.backward(ctx, grad_var.astype(std.dtype, copy=False))


# --- scans and shape -------------------------------------------------------------------
class Cumsum(Function):
    name = "cumsum"

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, axis: int) -> np.ndarray:
        (ctx.axis,) = _axes(axis, x.ndim) or (0,)
        return np.cumsum(x, axis=ctx.axis)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        a = ctx.axis  # x_i feeds every y_j with j >= i: a cumsum from the end
        return np.flip(np.cumsum(np.flip(grad, a), axis=a), a)


class Flip(Function):
    """x reversed along `axis` (an int, a tuple, or None for all axes)."""

    name = "flip"

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, axis: Axis = None) -> np.ndarray:
        ctx.axis = _axes(axis, x.ndim)
        return np.flip(x, ctx.axis)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        return np.flip(grad, ctx.axis)


class Expand(Function):
    """x broadcast to `shape` (a view); -1 keeps an axis' size, new axes go in front."""

    name = "expand"

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, shape: Sequence[int]) -> np.ndarray:
        lead = len(shape) - x.ndim
        target = tuple(x.shape[i - lead] if n == -1 and i >= lead else n for i, n in enumerate(shape))
        if lead < 0 or any(n < 0 for n in target):
            raise ValueError(f"expand: a tensor of shape {x.shape} cannot be expanded to {tuple(shape)}")
        try:
            return np.broadcast_to(x, target)
        except ValueError:
            raise ValueError(f"expand: a tensor of shape {x.shape} cannot be expanded to {target}") from None

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        return grad  # in the broadcast shape: the tape sums it back to the input's shape


class Repeat(Function):
    """x tiled `repeats[i]` times along axis i (PyTorch's repeat, numpy's tile); more
    repeats than axes add leading axes."""

    name = "repeat"

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, repeats: Sequence[int]) -> np.ndarray:
        if len(repeats) < x.ndim or any(r < 0 for r in repeats):
            raise ValueError(f"repeat: repeats {tuple(repeats)} for a tensor of shape {x.shape}")
        ctx.shape, ctx.repeats = x.shape, tuple(repeats)
        ctx.padded = (1,) * (len(repeats) - x.ndim) + x.shape
        return np.tile(x, repeats)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        # grad as (r0, n0, r1, n1, ...): each copy of x is one index of the r axes; sum them
        split = [k for pair in zip(ctx.repeats, ctx.padded) for k in pair]
        total = grad.reshape(split).sum(axis=tuple(range(0, len(split), 2)))
        return total.reshape(ctx.shape)


def unsqueeze_shape(shape: tuple[int, ...], axis: int) -> tuple[int, ...]:
    """`shape` with a new axis of size 1 at `axis` (counted in the result, like PyTorch)."""
    n = len(shape) + 1
    if not -n <= axis < n:
        raise ValueError(f"unsqueeze: axis {axis} is out of range for a tensor of {len(shape)} dimensions")
    a = axis % n
    return shape[:a] + (1,) + shape[a:]


def squeeze_shape(shape: tuple[int, ...], axis: Axis = None) -> tuple[int, ...]:
    """`shape` without its axes of size 1 (only those in `axis` if given; others are kept,
    like PyTorch, where numpy would raise)."""
    axes = range(len(shape)) if axis is None else _axes(axis, len(shape), "squeeze") or ()
    return tuple(n for i, n in enumerate(shape) if n != 1 or i not in axes)


def flatten_shape(shape: tuple[int, ...], start: int = 0, end: int = -1) -> tuple[int, ...]:
    """`shape` with axes start..end (inclusive) merged into one; a 0-d shape becomes (1,)."""
    if not shape:
        return (1,)
    s, e = _axes((start, end), len(shape), "flatten") or (0, 0)
    if s > e:
        raise ValueError(f"flatten: start axis {start} comes after end axis {end} for shape {shape}")
    return shape[:s] + (math.prod(shape[s : e + 1]),) + shape[e + 1 :]


def arg_extreme(find: Callable[..., Any], x: ArrayLike, axis: Any, keepdims: bool) -> Tensor:
    """np.argmax or np.argmin over x's data: an int64 tensor without grad (first on ties)."""
    data = x.data if isinstance(x, Tensor) else np.asarray(x)
    if data.size == 0:
        raise ValueError(f"{find.__name__}: an empty tensor of shape {data.shape} has no extreme")
    _axes(axis, data.ndim, find.__name__)  # numpy's AxisError would not name the op
    return Tensor(np.asarray(find(data, axis=axis, keepdims=keepdims), dtype=np.int64))


# --- functional forms (tg.max(x), ...): the Tensor methods --------------------------------
def max(x: ArrayLike, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """The largest values along `axis` (see `Max` for ties)."""
    return as_tensor(x).max(axis, keepdims)


def min(x: ArrayLike, axis: Axis = None, keepdims: bool = False) -> Tensor:
    return as_tensor(x).min(axis, keepdims)


def argmax(x: ArrayLike, axis: Optional[int] = None, keepdims: bool = False) -> Tensor:
    return arg_extreme(np.argmax, x, axis, keepdims)


def argmin(x: ArrayLike, axis: Optional[int] = None, keepdims: bool = False) -> Tensor:
    return arg_extreme(np.argmin, x, axis, keepdims)


def logsumexp(x: ArrayLike, axis: Axis = None, keepdims: bool = False) -> Tensor:
    return as_tensor(x).logsumexp(axis, keepdims)


def var(x: ArrayLike, axis: Axis = None, correction: float = 1, keepdims: bool = False) -> Tensor:
    return as_tensor(x).var(axis, correction, keepdims)


def std(x: ArrayLike, axis: Axis = None, correction: float = 1, keepdims: bool = False) -> Tensor:
    return as_tensor(x).std(axis, correction, keepdims)


def cumsum(x: ArrayLike, axis: int) -> Tensor:
    return as_tensor(x).cumsum(axis)


def flip(x: ArrayLike, axis: Axis = None) -> Tensor:
    return as_tensor(x).flip(axis)


def unsqueeze(x: ArrayLike, axis: int) -> Tensor:
    return as_tensor(x).unsqueeze(axis)


def squeeze(x: ArrayLike, axis: Axis = None) -> Tensor:
    return as_tensor(x).squeeze(axis)


def flatten(x: ArrayLike, start: int = 0, end: int = -1) -> Tensor:
    return as_tensor(x).flatten(start, end)
