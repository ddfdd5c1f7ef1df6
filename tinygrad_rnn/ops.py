"""The built-in ops: a table of derivatives, each a `Function` like a user's own.

Conventions: `backward` never writes into `grad` (it may be shared), returns gradients in
the broadcast shape (the tape reduces them to each input's shape), and returns None for an
input that needs no gradient.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import numpy as np

from tinygrad_rnn.grads import IndexedGrad, ProductGrad
from tinygrad_rnn.tensor import ArrayLike, Context, Function, Index, Tensor

Axis = Union[int, tuple[int, ...], None]


# --- elementwise arithmetic (broadcasting) ---------------------------------------------
class Add(Function):
    name = "add"

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return a + b

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return grad, grad  # d(a+b)/da = d(a+b)/db = 1


class Sub(Function):
    name = "sub"

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return a - b

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[np.ndarray, Optional[np.ndarray]]:
        return grad, (-grad if ctx.needs_input_grad[1] else None)


class Mul(Function):
    name = "mul"

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Optional[np.ndarray], ...]:
        a, b = ctx.saved_tensors
        da, db = ctx.needs_input_grad
        return (grad * b if da else None), (grad * a if db else None)


class Div(Function):
    name = "div"

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ctx.save_for_backward(a, b)
        return a / b

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Optional[np.ndarray], ...]:
        a, b = ctx.saved_tensors
        da, db = ctx.needs_input_grad
        return (grad / b if da else None), (-grad * a / (b * b) if db else None)


class Neg(Function):
    name = "neg"

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        return -x

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        return -grad


class Pow(Function):
    """x ** p for a scalar exponent p."""

    name = "pow"

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, exponent: float) -> np.ndarray:
        ctx.save_for_backward(x)
        ctx.exponent = exponent
        return x**exponent

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        (x,) = ctx.saved_tensors
        p = ctx.exponent
        return grad * p * x ** (p - 1) if p != 0 else np.zeros_like(grad)  # no 0 * inf at x = 0


class MatMul(Function):
    """numpy's matmul: 2-D, batched with broadcast leading axes, and 1-D operands."""

    name = "matmul"

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if a.ndim == 0 or b.ndim == 0 or a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
            raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not align")
        ctx.save_for_backward(a, b)
        return np.dot(a, b) if a.ndim == 2 and b.ndim == 2 else a @ b  # np.dot: less overhead

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        a, b = ctx.saved_tensors
        # treat a 1-D a as a row (1, k) and a 1-D b as a column (k, 1), like numpy does
        if b.ndim == 1:
            b, grad = b[:, None], grad[..., None]
        if a.ndim == 1:
            a, grad = a[None, :], grad[..., None, :]
        mm = np.dot if grad.ndim == 2 else np.matmul
        da = db = None
        if ctx.needs_input_grad[0]:
            da = mm(grad, np.swapaxes(b, -1, -2))  # dL/da = dL/dy b^T
            if ctx.saved_tensors[0].ndim == 1:
                da = da[..., 0, :]
        if ctx.needs_input_grad[1]:
            if grad.ndim == 2 and ctx.saved_tensors[1].ndim == 2:
                db = ProductGrad(a.T, grad)  # dL/db = a^T dL/dy, multiplied out by the sweep
            else:
                db = mm(np.swapaxes(a, -1, -2), grad)
                if ctx.saved_tensors[1].ndim == 1:
                    db = db[..., 0]
        return da, db


class AddMM(Function):
    """c + a @ b for 2-D a (n, k) and b (k, m), c broadcast to (n, m): one node, not two.

    PyTorch's addmm; `Linear` and the RNN step use it, so each records one op fewer.
    """

    name = "addmm"

    @staticmethod
    def forward(ctx: Context, c: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
            raise ValueError(f"addmm: shapes {a.shape} and {b.shape} do not align")
        ctx.save_for_backward(a, b)
        product = np.dot(a, b)
        out = c + product
        if out.shape != product.shape:
            raise ValueError(f"addmm: shape {c.shape} does not broadcast to {product.shape}")
        return out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        a, b = ctx.saved_tensors
        _, da, db = ctx.needs_input_grad
        # dL/db = a^T dL/dy, multiplied out by the sweep (with the other steps' ones, in an RNN)
        return grad, (np.dot(grad, b.T) if da else None), (ProductGrad(a.T, grad) if db else None)


# --- reductions and shape ----------------------------------------------------------------
def _axes(axis: Axis, ndim: int, op: str = "") -> Optional[tuple[int, ...]]:
    """`axis` as a tuple of axes in [0, ndim) (None stays None); `op` names the op in the
    error where no `Function.apply` adds it."""
    if axis is None:
        return None
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    for a in axes:
        if not -ndim <= a < ndim:
            where = f"{op}: " if op else ""
            raise ValueError(f"{where}axis {a} is out of range for a tensor of {ndim} dimensions")
    return tuple(int(a) % ndim for a in axes)


class Sum(Function):
    name = "sum"

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, axis: Axis = None, keepdims: bool = False) -> np.ndarray:
        ctx.shape, ctx.axis, ctx.keepdims = x.shape, _axes(axis, x.ndim), keepdims
        return x.sum(axis=ctx.axis, keepdims=keepdims)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        if ctx.axis is not None and not ctx.keepdims:
            grad = np.expand_dims(grad, ctx.axis)
        return np.broadcast_to(grad, ctx.shape)  # every summed element gets the same grad


class Mean(Sum):
    name = "mean"

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, axis: Axis = None, keepdims: bool = False) -> np.ndarray:
        total = Sum.forward(ctx, x, axis, keepdims)
        ctx.count = x.size // max(total.size, 1)
        return total / ctx.count

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        return Sum.backward(ctx, grad / ctx.count)


class Reshape(Function):
    name = "reshape"

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, shape: Sequence[int]) -> np.ndarray:
        ctx.shape = x.shape
        return x.reshape(shape)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        return grad.reshape(ctx.shape)


class Transpose(Function):
    name = "transpose"

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, axes: Optional[Sequence[int]] = None) -> np.ndarray:
        out = x.transpose(axes)
        perm = range(x.ndim)[::-1] if axes is None else [a % x.ndim for a in axes]
        ctx.inverse = tuple(sorted(range(x.ndim), key=perm.__getitem__))  # undoes the permutation
        return out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        return grad.transpose(ctx.inverse)


class GetItem(Function):
    """x[index]; ints, slices and integer arrays. A row picked twice gets both gradients."""

    name = "getitem"

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, index: Index) -> np.ndarray:
        if isinstance(index, Tensor):
            index = index.data
        elif isinstance(index, tuple):
            index = tuple(i.data if isinstance(i, Tensor) else i for i in index)
        ctx.shape, ctx.index = x.shape, index
        return x[index]

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> IndexedGrad:
        return IndexedGrad(ctx.index, grad)  # zero but at x[index]; the tape scatter-adds it


def _stack(arrays: Sequence[np.ndarray], axis: int) -> np.ndarray:
    """np.stack. Along axis 0, np.array stacks equal shapes in one call without np.stack's
    Python-level checks (the RNN stacks its T steps every chunk); unequal shapes fall back
    to np.stack, which raises its usual error."""
    if axis == 0:
        try:
            return np.array(arrays)
        except ValueError:
            pass
    return np.stack(arrays, axis=axis)


def _unstack(x: np.ndarray, axis: int) -> tuple[np.ndarray, ...]:
    """The slices of x along `axis` (views): the inverse of `_stack`."""
    return tuple(x if axis == 0 else np.moveaxis(x, axis, 0))


class Unbind(Function):
    """x -> the tuple of its slices along `axis` (views), one op with that many outputs.

    Taking a sequence apart step by step costs one node, not one per step; the backward
    stacks the steps' gradients back.
    """

    name = "unbind"

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, axis: int = 0) -> tuple[np.ndarray, ...]:
        (ctx.axis,) = _axes(axis, x.ndim) or (0,)
        return _unstack(x, ctx.axis)

    @staticmethod
    def backward(ctx: Context, *grads: np.ndarray) -> np.ndarray:
        return _stack(grads, ctx.axis)


class Chunk(Function):
    """x -> `chunks` equal parts along `axis` (views), one op with that many outputs.

    An LSTM step takes its four gates apart this way: one node, not four.
    """

    name = "chunk"

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, chunks: int = 2, axis: int = 0) -> tuple[np.ndarray, ...]:
        (ctx.axis,) = _axes(axis, x.ndim) or (0,)
        size = x.shape[ctx.axis]
        if chunks < 1 or size % chunks:
            raise ValueError(f"chunk: an axis of size {size} does not split into {chunks} equal parts")
        step = size // chunks
        index = [slice(None)] * x.ndim
        parts = []
        for k in range(chunks):
            index[ctx.axis] = slice(k * step, (k + 1) * step)
            parts.append(x[tuple(index)])
        return tuple(parts)

    @staticmethod
    def backward(ctx: Context, *grads: np.ndarray) -> np.ndarray:
        return np.concatenate(grads, axis=ctx.axis)


class Stack(Function):
    name = "stack"

    @staticmethod
    def forward(ctx: Context, *xs: np.ndarray, axis: int = 0) -> np.ndarray:
        ctx.axis = axis
        return _stack(xs, axis)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[np.ndarray, ...]:
        return _unstack(grad, ctx.axis)


class Concat(Function):
    name = "concat"

    @staticmethod
    def forward(ctx: Context, *xs: np.ndarray, axis: int = 0) -> np.ndarray:
        out = np.concatenate(xs, axis=axis)
        ctx.axis = axis
        ctx.splits = np.cumsum([x.shape[axis] for x in xs])[:-1]
        return out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[np.ndarray, ...]:
        return tuple(np.split(grad, ctx.splits, axis=ctx.axis))


# --- elementwise nonlinearities --------------------------------------------------------
class Tanh(Function):
    name = "tanh"

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        y = np.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        (y,) = ctx.saved_tensors
        return grad * (1 - y * y)  # the seed's dhraw = (1 - h*h) * dh


class Sigmoid(Function):
    name = "sigmoid"

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        y = np.exp(-np.logaddexp(0, -x))  # 1/(1+e^-x) without overflow for x << 0
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        (y,) = ctx.saved_tensors
        return grad * y * (1 - y)


class Relu(Function):
    name = "relu"

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        ctx.save_for_backward(x)
        return np.maximum(x, 0)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        (x,) = ctx.saved_tensors
        return grad * (x > 0)


class Exp(Function):
    name = "exp"

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        y = np.exp(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        (y,) = ctx.saved_tensors
        return grad * y


class Log(Function):
    name = "log"

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        ctx.save_for_backward(x)
        return np.log(x)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        (x,) = ctx.saved_tensors
        return grad / x


# --- softmax family: always through log-sum-exp -----------------------------------------
def _log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    z = x - x.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


class Softmax(Function):
    name = "softmax"

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, axis: int = -1) -> np.ndarray:
        y = np.exp(_log_softmax(x, axis))
        ctx.save_for_backward(y)
        ctx.axis = axis
        return y

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        (y,) = ctx.saved_tensors
        return y * (grad - (grad * y).sum(axis=ctx.axis, keepdims=True))


class LogSoftmax(Function):
    name = "log_softmax"

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, axis: int = -1) -> np.ndarray:
        y = _log_softmax(x, axis)
        ctx.save_for_backward(y)
        ctx.axis = axis
        return y

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        (y,) = ctx.saved_tensors
        return grad - np.exp(y) * grad.sum(axis=ctx.axis, keepdims=True)


def class_ids(ids: Any, classes: int, name: str = "ids") -> np.ndarray:
    """`ids` as an integer array with every id in [0, classes); errors start with `name`.

    Negative ids are refused: numpy would silently count them from the end.
    """
    ids = np.asarray(ids.data if isinstance(ids, Tensor) else ids)
    if ids.dtype.kind not in "iu":
        raise ValueError(f"{name} must be integers, not {ids.dtype}")
    if ids.size and (ids.min() < 0 or ids.max() >= classes):
        raise ValueError(f"{name} must be in [0, {classes}), got {ids.min()}..{ids.max()}")
    return ids


def _check_targets(logits: np.ndarray, targets: Any) -> np.ndarray:
    """Integer class ids of shape logits.shape[:-1], each in [0, C)."""
    name = "softmax_cross_entropy"
    if logits.ndim == 0:
        raise ValueError(f"{name}: logits must have a class axis, got shape {logits.shape}")
    targets = class_ids(targets, logits.shape[-1], f"{name}: targets")
    if targets.shape != logits.shape[:-1]:
        raise ValueError(
            f"{name}: targets of shape {targets.shape} do not match logits of shape "
            f"{logits.shape} (expected {logits.shape[:-1]})"
        )
    return targets


class SoftmaxCrossEntropy(Function):
    """-log softmax(logits)[target] over the last axis, fused and stable.

    Its gradient is softmax(logits) - onehot(target): the seed's `dy = p; dy[t] -= 1`.
    """

    name = "softmax_cross_entropy"

    @staticmethod
    def forward(ctx: Context, logits: np.ndarray, targets: Any, reduction: str = "sum") -> np.ndarray:
        if reduction not in ("sum", "mean", "none"):
            raise ValueError(
                f"softmax_cross_entropy: reduction must be 'sum', 'mean' or 'none', not {reduction!r}"
            )
        targets = _check_targets(logits, targets)
        z = logits - logits.max(axis=-1, keepdims=True)  # log-sum-exp: log p = z - log(sum(exp(z)))
        e = np.exp(z)
        total = e.sum(axis=-1, keepdims=True)
        n, classes = targets.size, logits.shape[-1]
        z_target = z.reshape(n, classes)[np.arange(n), targets.reshape(n)].reshape(targets.shape)
        losses = np.log(total[..., 0]) - z_target
        ctx.save_for_backward(e / total, targets)
        ctx.reduction = reduction
        if reduction == "none":
            return losses
        return losses.sum() if reduction == "sum" else losses.mean()

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        p, targets = ctx.saved_tensors
        d = p.copy()
        flat = d.reshape(-1, d.shape[-1])
        flat[np.arange(flat.shape[0]), targets.ravel()] -= 1
        if ctx.reduction == "none":
            return d * grad[..., None]
        if ctx.reduction == "mean" and targets.size:
            grad = grad / targets.size
        return d * grad


# --- functional forms ----------------------------------------------------------------------
def stack(tensors: Sequence[ArrayLike], axis: int = 0) -> Tensor:
    """Join same-shaped tensors along a new axis."""
    if len(tensors) == 0:
        raise ValueError("stack: needs at least one tensor")
    return Stack.apply(*tensors, axis=axis)


def unbind(x: ArrayLike, axis: int = 0) -> tuple[Tensor, ...]:
    """The slices of x along `axis` as a tuple of tensors (views), made by one op."""
    if np.ndim(x.data if isinstance(x, Tensor) else x) == 0:
        raise ValueError("unbind: a 0-d tensor has no axis to take apart")
    return tuple(Unbind.apply(x, axis=axis))


def chunk(x: ArrayLike, chunks: int, axis: int = 0) -> tuple[Tensor, ...]:
    """x split into `chunks` equal parts along `axis` (views), made by one op."""
    if np.ndim(x.data if isinstance(x, Tensor) else x) == 0:
        raise ValueError("chunk: a 0-d tensor has no axis to split")
    return tuple(Chunk.apply(x, chunks=chunks, axis=axis))


def concat(tensors: Sequence[ArrayLike], axis: int = 0) -> Tensor:
    """Join tensors along an existing axis."""
    if len(tensors) == 0:
        raise ValueError("concat: needs at least one tensor")
    return Concat.apply(*tensors, axis=axis)


def addmm(c: ArrayLike, a: ArrayLike, b: ArrayLike) -> Tensor:
    """c + a @ b as one op; a (n, k), b (k, m), c broadcast to (n, m)."""
    return AddMM.apply(c, a, b)


def softmax_cross_entropy(logits: Tensor, targets: ArrayLike, reduction: str = "sum") -> Tensor:
    """Cross-entropy of logits (..., C) against integer targets (...), via log-sum-exp.

    reduction: "sum" (the seed's loss), "mean" over all targets, or "none" (shape (...)).
    """
    if isinstance(targets, Tensor):
        targets = targets.data
    return SoftmaxCrossEntropy.apply(logits, targets=targets, reduction=reduction)
