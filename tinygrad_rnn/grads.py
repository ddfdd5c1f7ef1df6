"""Gradient forms, and how the contributions to one gradient combine into an array.

The plain path: a backward returns one dense array per input, of the input's shape (or a
shape that broadcasts to it; `fit` reduces it with `unbroadcast`, the one place that does)
and dtype. An array used by several ops gets one contribution from each; the sweep
collects them per key (a node's output, or a leaf tensor) with `add`, and `combine` turns
what was collected into one array when that gradient is needed.

Optional, for speed: a backward may hand a gradient over in a cheaper form instead.

- `IndexedGrad(index, values)`: zero except `values` at `index`, what `x[index]` gets.
  All of a key's IndexedGrads are scatter-added into one buffer, so taking a sequence
  apart step by step costs the size of a step per step, not of the whole sequence.
- `ProductGrad(left, right)`: the 2-D matrix product `left @ right` kept as its factors,
  what a matmul's weight gets (`a.T @ grad`). A weight used at every step of a recurrence
  gets T of them, multiplied out at once: concat(lefts, axis=1) @ concat(rights, axis=0),
  one (k, T*n) @ (T*n, m) matmul instead of T small ones and T additions.

How contributions are kept, cheaply (the sweep runs thousands of times in training): a
key's first contribution is stored as it is, so the common case (one dense array) costs a
dict store and no call. A second dense array is added to the first at once, into a new
array (so no list, and nothing to combine later, for an RNN's hidden state, which gets
one gradient from the output layer and one from the next step). Only the other forms start
a `Contributions` list, combined once. No gradient array is ever added into in place: a
backward may return a view of its upstream gradient, or one array for two inputs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Union

import numpy as np

if TYPE_CHECKING:
    from tinygrad_rnn.tape import Node


class IndexedGrad:
    """A gradient that is zero except at `index`, where it is `values`: what `x[index]` gets."""

    __slots__ = ("index", "values")

    def __init__(self, index: Any, values: np.ndarray) -> None:
        self.index, self.values = index, values


class ProductGrad:
    """A gradient that is the matrix product `left` (k, n) @ `right` (n, m), kept as its factors."""

    __slots__ = ("left", "right")

    def __init__(self, left: np.ndarray, right: np.ndarray) -> None:
        self.left, self.right = left, right


Grad = Union[np.ndarray, IndexedGrad, ProductGrad]


class Contributions(list):
    """Two or more contributions to one key's gradient, in the order they arrived."""

    __slots__ = ()


def add(collected: Any, grad: Grad) -> Any:
    """A key's contributions after one more, `grad`: what the sweep keeps until `combine`.

    Two dense arrays become their sum at once, in a new array; anything else joins a
    `Contributions` list.
    """
    if collected.__class__ is np.ndarray and grad.__class__ is np.ndarray:
        out = np.add(collected, grad)
        return out if out.__class__ is np.ndarray else np.asarray(out)  # a 0-d sum is a scalar
    if collected.__class__ is Contributions:
        collected.append(grad)
        return collected
    return Contributions((collected, grad))


def combine(collected: Any, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """One key's gradient, an array of `shape` and `dtype`, from what was collected for it.

    `collected` is what `add` kept: one gradient or a `Contributions` list, each already of
    that shape and dtype (see `fit`). A single dense array comes back as it is (the plain
    path); anything else gives a new array: products multiplied out in one matmul, dense
    arrays added, IndexedGrads scattered in.
    """
    if collected.__class__ is np.ndarray:
        return collected
    parts = collected if collected.__class__ is Contributions else (collected,)
    products = [g for g in parts if g.__class__ is ProductGrad]
    out = _multiply_out(products) if products else np.zeros(shape, dtype)
    for g in parts:
        if g.__class__ is np.ndarray:
            out += g
        elif g.__class__ is IndexedGrad:
            _scatter_add(out, g)
    return out if out.dtype == dtype else out.astype(dtype)


def _multiply_out(products: list[ProductGrad]) -> np.ndarray:
    """The sum of the products as a new array: left_1 @ right_1 + ... in one matmul."""
    if len(products) == 1:
        return np.dot(products[0].left, products[0].right)
    lefts = np.concatenate([p.left for p in products], axis=1)
    return np.dot(lefts, np.concatenate([p.right for p in products], axis=0))


def is_basic_index(index: Any) -> bool:
    """True for ints, slices, None and Ellipsis: each element is picked at most once."""
    for part in index if isinstance(index, tuple) else (index,):
        if not (isinstance(part, (int, np.integer, slice)) or part is None or part is Ellipsis):
            return False
    return True


def _scatter_add(out: np.ndarray, g: IndexedGrad) -> None:
    """out[g.index] += g.values, every occurrence of a repeated index included."""
    index = g.index
    if is_basic_index(index):
        out[index] += g.values
    elif index.__class__ is np.ndarray and index.dtype.kind in "iu" and index.size and out.ndim:
        # whole rows picked by an integer array (an embedding's lookup): np.add.at is slow on them
        num = out.shape[0]
        ids = np.mod(index.ravel(), num, dtype=np.intp)  # negative ids count from the end
        out += scatter_add_rows(ids, g.values.reshape(index.size, -1), num).reshape(out.shape)
    else:
        np.add.at(out, index, g.values)


ONEHOT_MAX = 1 << 22  # elements of the one-hot matrix of `scatter_add_rows` (32 MiB in float64)


def scatter_add_rows(ids: np.ndarray, rows: np.ndarray, num: int) -> np.ndarray:
    """out (num, H) with out[i] = the sum of rows[j] (N, H) over every j with ids[j] == i.

    ids (N,) in [0, num). The embedding's backward (a row used twice gets both gradients).
    For a small `num` (a character set) it is one matmul, onehot(ids).T @ rows: BLAS beats
    any scatter there (2.4x at num 65, 2048 rows of 256; 1.5x at num 128, even at 256).
    Otherwise (or when the one-hot matrix would be large) sorting the ids once and summing
    each run with reduceat beats np.add.at (up to 5x) from a few dozen rows on.
    """
    if num <= 128 and ids.size * num <= ONEHOT_MAX:
        onehot = np.zeros((ids.size, num), rows.dtype)
        onehot.ravel()[flat_positions(ids, num)] = 1
        with np.errstate(invalid="ignore"):
            out = onehot.T.dot(rows)
        if np.isfinite(out).all():  # else an inf or nan in one row spread to all (0 * inf is nan)
            return out
    order = ids.argsort(kind="stable")
    sorted_ids = ids[order]
    run_start = np.empty(sorted_ids.shape, bool)  # True where an id's run begins
    run_start[:1] = True
    np.not_equal(sorted_ids[1:], sorted_ids[:-1], out=run_start[1:])
    starts = run_start.nonzero()[0]
    out = np.zeros((num, rows.shape[1]), rows.dtype)
    out[sorted_ids[starts]] = np.add.reduceat(rows[order], starts, axis=0)
    return out


def flat_positions(ids: np.ndarray, num: int) -> np.ndarray:
    """Positions of ids (any shape, N of them) in a flat (N, num) array: cheaper than a 2-D fancy index."""
    return np.arange(ids.size) * num + ids.ravel()


def unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum `grad` over the axes that broadcasting added or stretched, back to `shape`.

    This is the only place where broadcasting's gradients are reduced: ops return gradients
    in the broadcast shape and `fit` calls this for every input that needs it.
    """
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad


def fit(grad: Any, shape: tuple[int, ...], dtype: np.dtype, node: Node, i: int) -> Grad:
    """Check what `node`'s backward returned for its input i, of `shape` and `dtype`.

    A dense gradient comes back reduced to that shape (see `unbroadcast`) and cast to that
    dtype; an IndexedGrad as it is; a ProductGrad after checking that its product fits.
    """
    if grad.__class__ is IndexedGrad:
        return grad
    if grad.__class__ is ProductGrad:
        left, right = grad.left.shape, grad.right.shape
        if (left[0], right[-1]) != shape or left[-1] != right[0]:
            _bad_product(node, i, left, right, shape)
        return grad
    grad = np.asarray(grad)
    if grad.shape != shape:
        if grad.ndim >= len(shape):
            grad = np.asarray(unbroadcast(grad, shape))  # asarray: a 0-d sum is a scalar
        if grad.shape != shape:
            raise RuntimeError(
                f"{node.name}: backward returned a gradient of shape {grad.shape} "
                f"for input {i} of shape {shape}"
            )
    return grad if grad.dtype == dtype else grad.astype(dtype)


def _bad_product(
    node: Node, i: int, left: tuple[int, ...], right: tuple[int, ...], shape: tuple[int, ...]
) -> None:
    """Raise: `node`'s backward returned for input i a ProductGrad that does not fit `shape`."""
    if left[-1] != right[0]:  # checked here, where the op is known, not in `combine`'s matmul
        raise RuntimeError(
            f"{node.name}: backward returned a ProductGrad that does not multiply: "
            f"{left} @ {right} for input {i} of shape {shape}"
        )
    raise RuntimeError(
        f"{node.name}: backward returned products of shape {(left[0], right[-1])} "
        f"for input {i} of shape {shape}"
    )
