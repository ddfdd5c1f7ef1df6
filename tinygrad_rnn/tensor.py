"""`Tensor`, a numpy array that remembers how it was made, and `Function`, the op plug-in API.

An op is a `Function` subclass with two static methods over plain numpy arrays:

    class Cube(Function):
        @staticmethod
        def forward(ctx, x):              # arrays in, an array out
            ctx.save_for_backward(x)
            return x ** 3

        @staticmethod
        def backward(ctx, grad):          # d(loss)/d(output) in, one gradient per input out
            (x,) = ctx.saved_tensors
            return 3 * x ** 2 * grad

`Cube.apply(t)` runs the forward on the tensors' arrays and, when an input requires grad,
records the op on the tape so that backward can call `backward` later. Built-in ops
(`tinygrad_rnn.ops`) are written exactly this way. A forward may return a tuple of arrays
(an op with several outputs); its backward then gets one gradient per output. A backward
may also return a cheaper gradient form instead of an array: optional, see `grads`.
"""

from __future__ import annotations

from typing import Any, ClassVar, Optional, Sequence, Union

import numpy as np
from typing_extensions import Self, TypeAlias

from tinygrad_rnn import tape as _tape

ArrayLike: TypeAlias = Union["Tensor", np.ndarray, float, int, Sequence[Any]]
Index: TypeAlias = Any


Context: TypeAlias = _tape.Node
"""What `forward` and `backward` get as `ctx`: the op's node on the tape (see `tape.Node`)."""


class Function:
    """Base of every op. Subclass it, write `forward` and `backward`, call `apply`.

    `forward(ctx, *arrays, **options)` returns the output array; `backward(ctx, grad)`
    returns the gradient of each array input (the same shape, or one that broadcasts to it;
    None where an input needs none), given `grad`, the gradient of the output. `ctx` carries
    what forward saved (`ctx.save_for_backward(...)`, `ctx.saved_tensors`, any attribute).
    `name` is how the op appears in `print(tape)`; it defaults to the class name.
    """

    name: ClassVar[Optional[str]] = None

    @staticmethod
    def forward(ctx: Context, *args: Any, **kwargs: Any) -> Union[np.ndarray, tuple[np.ndarray, ...]]:
        raise NotImplementedError

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> Any:
        raise NotImplementedError

    @classmethod
    def op_name(cls) -> str:
        return cls.name or cls.__name__

    @classmethod
    def apply(cls, *inputs: ArrayLike, **options: Any) -> Any:
        """Run `forward` on the inputs' arrays; record a node if any input requires grad.

        Positional inputs are the differentiable ones (arrays and numbers become constant
        tensors); keyword options go to `forward` as they are. Returns a Tensor, or a tuple
        of Tensors when `forward` returns a tuple of arrays; `backward(ctx, *grads)` then
        gets one gradient per output (zeros for an output that got none).
        """
        arrays, edges = [], []
        for x in inputs:
            t = x if isinstance(x, Tensor) else Tensor(x)
            arrays.append(t._data)
            edges.append(t._node if t._node is not None else (t if t.requires_grad else None))
        record = _tape._grad_mode.enabled and edges.count(None) < len(edges)
        node = _tape.Node(cls, tuple(edges) if record else (None,) * len(edges))  # the forward's ctx
        try:
            out = cls.forward(node, *arrays, **options)
        except (ValueError, IndexError) as e:  # name the op, keep the traceback into forward
            if str(e).startswith(cls.op_name() + ":"):
                raise
            raise type(e)(f"{cls.op_name()}: {e}").with_traceback(e.__traceback__) from None
        if out.__class__ is tuple:  # several outputs (`unbind`): a tensor each, one node
            results = tuple([_wrap(o, record) for o in out])
            if record:
                node.record(arrays, results)
            return results
        if out.__class__ is not np.ndarray:
            out = np.asarray(out)
        result = Tensor.__new__(Tensor)  # as `_wrap` does; inline, as this runs for every op
        result._data, result.requires_grad, result.grad, result._node = out, record, None, None
        if record:
            node.record(arrays, result)
        return result


def _wrap(out: Any, requires_grad: bool) -> Tensor:
    """An array as a Tensor, without a copy."""
    if out.__class__ is not np.ndarray:
        out = np.asarray(out)
    result = Tensor.__new__(Tensor)
    result._data, result.requires_grad, result.grad, result._node = out, requires_grad, None, None
    return result


def _float_array(data: Any, dtype: Any = None) -> np.ndarray:
    """float32 stays float32; other floats become float64; ints and bools are kept."""
    arr = np.asarray(data, dtype=dtype)
    if dtype is None and arr.dtype.kind == "f" and arr.dtype != np.float32:
        arr = arr.astype(np.float64, copy=False)
    elif arr.dtype.kind not in "fiub":
        raise TypeError(f"Tensor: unsupported dtype {arr.dtype}")
    return arr


class Tensor:
    """An n-d numpy array with an optional gradient and the node of the op that made it.

    `data` is shared with the array passed in when no conversion is needed.

    In-place changes and backward: `t.data -= step` (Python runs `t.data = t.data.__isub__(step)`,
    an assignment of the same, changed array) dates a change of that memory, and backward
    refuses an op that saved it earlier (through any view or tensor over the same memory).
    The rule: assigning `data` notes a change of the old array's memory when the new value
    is that array or shares memory with it; a fresh array (`t.data = np.zeros(3)`,
    `t.data = t.data - step`) leaves the saved memory as it was, so backward runs, with the
    values the forward saw. A write through the array itself (`t.data[i] = v`) is not seen.

    `==` is elementwise, as in PyTorch (a bool tensor), while hashing is by identity: so
    `t in list_of_tensors` and `list.index(t)` compare elementwise and fail or mislead; find
    a tensor in a list by `id()` or keep tensors in a set or dict.
    """

    __slots__ = ("_data", "grad", "requires_grad", "_node")
    _data: np.ndarray
    grad: Optional[np.ndarray]
    requires_grad: bool
    _node: Union[_tape.Node, _tape.Output, None]
    __array_ufunc__ = None  # `ndarray + Tensor` calls Tensor.__radd__, not numpy's loop

    def __init__(self, data: ArrayLike, requires_grad: bool = False, dtype: Any = None) -> None:
        if isinstance(data, Tensor):
            data = data._data
        self._data = _float_array(data, dtype)
        if requires_grad and self._data.dtype.kind != "f":
            raise TypeError(f"Tensor: only float tensors can require grad, not {self._data.dtype}")
        self.requires_grad = requires_grad
        self.grad = None
        self._node = None

    # --- the array -------------------------------------------------------------------
    @property
    def data(self) -> np.ndarray:
        return self._data

    @data.setter
    def data(self, value: Any) -> None:
        value = np.asarray(value)
        if self.requires_grad and value.dtype.kind != "f":
            raise TypeError(f"data: a tensor that requires grad needs float data, not {value.dtype}")
        old = self._data
        if value is old or np.may_share_memory(value, old):  # `t.data -= step`: memory changed
            _tape.note_change(old)  # so nodes that saved it can no longer backward
        self._data = value

    @property
    def shape(self) -> tuple[int, ...]:
        return self._data.shape

    @property
    def dtype(self) -> np.dtype:
        return self._data.dtype

    @property
    def ndim(self) -> int:
        return self._data.ndim

    @property
    def size(self) -> int:
        return self._data.size

    @property
    def is_leaf(self) -> bool:
        """True unless the tensor was made by a recorded op."""
        return self._node is None

    def __len__(self) -> int:
        return len(self._data)

    def __bool__(self) -> bool:
        return bool(self.item())

    def __repr__(self) -> str:
        body = np.array2string(self._data, separator=", ", prefix="Tensor(")
        extra = ", requires_grad=True" if self.requires_grad else ""
        if self._data.dtype != np.float64:
            extra += f", dtype={self._data.dtype}"
        return f"Tensor({body}{extra})"

    def numpy(self) -> np.ndarray:
        """The data array itself (shared, not copied)."""
        return self._data

    def item(self) -> Any:
        """The value of a one-element tensor as a Python number."""
        if self._data.size != 1:
            raise ValueError(f"item: tensor of shape {self.shape} has {self.size} elements, not 1")
        return self._data.item()

    def detach(self) -> Tensor:
        """The same data, cut from the graph (shared, not copied)."""
        return _wrap(self._data, False)

    # --- backward --------------------------------------------------------------------
    def _seed_grad(self, grad: Optional[ArrayLike]) -> np.ndarray:
        if not self.requires_grad:
            raise RuntimeError("backward: this tensor does not require grad and has no graph")
        if grad is None:
            if self._data.size != 1:
                raise RuntimeError(
                    f"backward: grad must be given for a non-scalar output of shape {self.shape}"
                )
            return np.ones(self.shape, self.dtype)
        g = np.asarray(grad.data if isinstance(grad, Tensor) else grad, dtype=self.dtype)
        if g.shape != self.shape:
            raise ValueError(f"backward: grad of shape {g.shape} for a tensor of shape {self.shape}")
        return g

    def backward(self, grad: Optional[ArrayLike] = None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) . grad into `.grad` of every leaf that requires grad.

        `grad` defaults to 1 for a one-element tensor. The graph's saved arrays are released
        afterwards unless `retain_graph` is True.
        """
        _tape.backward(self, self._seed_grad(grad), retain_graph)

    # --- operators -------------------------------------------------------------------
    def _other(self, other: ArrayLike) -> Tensor:
        if isinstance(other, Tensor):
            return other
        if isinstance(other, (int, float)):  # keep float32 float32: NEP 50 weak scalars
            return _wrap(np.asarray(other, np.result_type(self._data.dtype, other)), False)
        return Tensor(other)

    def __add__(self, other: ArrayLike) -> Tensor:
        return ops.Add.apply(self, self._other(other))

    def __radd__(self, other: ArrayLike) -> Tensor:
        return ops.Add.apply(self._other(other), self)

    def __sub__(self, other: ArrayLike) -> Tensor:
        return ops.Sub.apply(self, self._other(other))

    def __rsub__(self, other: ArrayLike) -> Tensor:
        return ops.Sub.apply(self._other(other), self)

    def __mul__(self, other: ArrayLike) -> Tensor:
        return ops.Mul.apply(self, self._other(other))

    def __rmul__(self, other: ArrayLike) -> Tensor:
        return ops.Mul.apply(self._other(other), self)

    def __truediv__(self, other: ArrayLike) -> Tensor:
        return ops.Div.apply(self, self._other(other))

    def __rtruediv__(self, other: ArrayLike) -> Tensor:
        return ops.Div.apply(self._other(other), self)

    def __matmul__(self, other: ArrayLike) -> Tensor:
        return ops.MatMul.apply(self, self._other(other))

    def __rmatmul__(self, other: ArrayLike) -> Tensor:
        return ops.MatMul.apply(self._other(other), self)

    def __pow__(self, exponent: ArrayLike) -> Tensor:
        """x ** p; a tensor or array exponent is differentiated too (`PowTensor`)."""
        if isinstance(exponent, Tensor) or np.ndim(exponent) != 0:
            return ops_elementwise.PowTensor.apply(self, self._other(exponent))
        return ops.Pow.apply(self, exponent=exponent)

    def __neg__(self) -> Tensor:
        return ops.Neg.apply(self)

    def __getitem__(self, index: Index) -> Tensor:
        return ops.GetItem.apply(self, index=index)

    # --- methods ---------------------------------------------------------------------
    def sum(self, axis: Union[int, tuple[int, ...], None] = None, keepdims: bool = False) -> Tensor:
        return ops.Sum.apply(self, axis=axis, keepdims=keepdims)

    def mean(self, axis: Union[int, tuple[int, ...], None] = None, keepdims: bool = False) -> Tensor:
        return ops.Mean.apply(self, axis=axis, keepdims=keepdims)

    def reshape(self, *shape: Union[int, Sequence[int]]) -> Tensor:
        """`t.reshape(2, 3)` or `t.reshape((2, 3))`; -1 infers one size."""
        return ops.Reshape.apply(self, shape=shape[0] if len(shape) == 1 else shape)

    def transpose(self, *axes: Union[int, Sequence[int]]) -> Tensor:
        """Permute axes; no argument reverses them."""
        if len(axes) == 1 and not isinstance(axes[0], (int, np.integer)):
            axes = tuple(axes[0])  # t.transpose((1, 0)) as well as t.transpose(1, 0)
        return ops.Transpose.apply(self, axes=axes or None)

    @property
    def T(self) -> Tensor:
        return ops.Transpose.apply(self, axes=None)

    def unbind(self, axis: int = 0) -> tuple[Tensor, ...]:
        """The slices along `axis` as separate tensors (views), made by one op: x (T, ...) -> T x (...)."""
        return ops.unbind(self, axis)

    def chunk(self, chunks: int, axis: int = 0) -> tuple[Tensor, ...]:
        """`chunks` equal parts along `axis` (views), made by one op."""
        return ops.chunk(self, chunks, axis)

    def tanh(self) -> Tensor:
        return ops.Tanh.apply(self)

    def sigmoid(self) -> Tensor:
        return ops.Sigmoid.apply(self)

    def relu(self) -> Tensor:
        return ops.Relu.apply(self)

    def exp(self) -> Tensor:
        return ops.Exp.apply(self)

    def log(self) -> Tensor:
        return ops.Log.apply(self)

    def softmax(self, axis: int = -1) -> Tensor:
        return ops.Softmax.apply(self, axis=axis)

    def log_softmax(self, axis: int = -1) -> Tensor:
        return ops.LogSoftmax.apply(self, axis=axis)

    def zero_grad(self) -> Self:
        self.grad = None
        return self

    # --- more ops, PyTorch's names (ops_elementwise, ops_axes) ------------------------
    __hash__ = object.__hash__  # identity: tensors are dict keys in the tape; == is elementwise

    def _compare(self, other: Any, op: Any) -> Any:
        if other is None:
            return NotImplemented  # `t == None` is False, as in PyTorch
        return ops_elementwise.compare(op, self, other)

    def __eq__(self, other: Any) -> Tensor:  # type: ignore[override]
        """Elementwise ==, a bool tensor without grad (as PyTorch); hashing stays by identity."""
        return self._compare(other, np.equal)

    def __ne__(self, other: Any) -> Tensor:  # type: ignore[override]
        return self._compare(other, np.not_equal)

    def __lt__(self, other: ArrayLike) -> Tensor:
        return self._compare(other, np.less)

    def __le__(self, other: ArrayLike) -> Tensor:
        return self._compare(other, np.less_equal)

    def __gt__(self, other: ArrayLike) -> Tensor:
        return self._compare(other, np.greater)

    def __ge__(self, other: ArrayLike) -> Tensor:
        return self._compare(other, np.greater_equal)

    def __rpow__(self, base: ArrayLike) -> Tensor:
        return ops_elementwise.PowTensor.apply(self._other(base), self)

    def pow(self, exponent: ArrayLike) -> Tensor:
        return self**exponent

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def tolist(self) -> Any:
        """The data as (nested lists of) Python numbers; a 0-d tensor gives a number."""
        return self._data.tolist()

    def sqrt(self) -> Tensor:
        return ops_elementwise.Sqrt.apply(self)

    def abs(self) -> Tensor:
        return ops_elementwise.Abs.apply(self)

    __abs__ = abs

    def sign(self) -> Tensor:
        return ops_elementwise.Sign.apply(self)

    def sin(self) -> Tensor:
        return ops_elementwise.Sin.apply(self)

    def cos(self) -> Tensor:
        return ops_elementwise.Cos.apply(self)

    def clamp(self, min: Optional[float] = None, max: Optional[float] = None) -> Tensor:
        """x limited to [min, max]; the gradient passes where min <= x <= max."""
        return ops_elementwise.Clamp.apply(self, min=min, max=max)

    clip = clamp

    def softplus(self, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
        return ops_elementwise.Softplus.apply(self, beta=beta, threshold=threshold)

    def leaky_relu(self, negative_slope: float = 0.01) -> Tensor:
        return ops_elementwise.LeakyRelu.apply(self, negative_slope=negative_slope)

    def gelu(self, approximate: str = "none") -> Tensor:
        return ops_elementwise.Gelu.apply(self, approximate=approximate)

    def maximum(self, other: ArrayLike) -> Tensor:
        return ops_elementwise.maximum(self, other)

    def minimum(self, other: ArrayLike) -> Tensor:
        return ops_elementwise.minimum(self, other)

    def where(self, cond: ArrayLike, other: ArrayLike) -> Tensor:
        """self where cond is True, else other (PyTorch's `x.where(cond, y)`)."""
        return ops_elementwise.where(cond, self, other)

    def max(self, axis: Union[int, tuple[int, ...], None] = None, keepdims: bool = False) -> Tensor:
        """The largest values along `axis` (see `ops_axes.Max` for how ties share the gradient)."""
        return ops_axes.Max.apply(self, axis=axis, keepdims=keepdims)

    def min(self, axis: Union[int, tuple[int, ...], None] = None, keepdims: bool = False) -> Tensor:
        return ops_axes.Min.apply(self, axis=axis, keepdims=keepdims)

    def argmax(self, axis: Optional[int] = None, keepdims: bool = False) -> Tensor:
        """Indices (int64, no grad) of the largest values; of the flattened tensor if axis is None."""
        return ops_axes.arg_extreme(np.argmax, self, axis, keepdims)

    def argmin(self, axis: Optional[int] = None, keepdims: bool = False) -> Tensor:
        return ops_axes.arg_extreme(np.argmin, self, axis, keepdims)

    def logsumexp(self, axis: Union[int, tuple[int, ...], None] = None, keepdims: bool = False) -> Tensor:
        return ops_axes.LogSumExp.apply(self, axis=axis, keepdims=keepdims)

    def var(
        self, axis: Union[int, tuple[int, ...], None] = None, correction: float = 1, keepdims: bool = False
    ) -> Tensor:
        """sum((x - mean)^2) / (N - correction); correction=1 is PyTorch's default."""
        return ops_axes.Var.apply(self, axis=axis, correction=correction, keepdims=keepdims)

    def std(
        self, axis: Union[int, tuple[int, ...], None] = None, correction: float = 1, keepdims: bool = False
    ) -> Tensor:
        """sqrt(var); its gradient is 0 where the spread is 0, as PyTorch."""
        return ops_axes.Std.apply(self, axis=axis, correction=correction, keepdims=keepdims)

    def cumsum(self, axis: int) -> Tensor:
        return ops_axes.Cumsum.apply(self, axis=axis)

    def flip(self, axis: Union[int, tuple[int, ...], None] = None) -> Tensor:
        """Reversed along `axis` (all axes if None)."""
        return ops_axes.Flip.apply(self, axis=axis)

    def unsqueeze(self, axis: int) -> Tensor:
        return self.reshape(ops_axes.unsqueeze_shape(self.shape, axis))

    def squeeze(self, axis: Union[int, tuple[int, ...], None] = None) -> Tensor:
        """Without axes of size 1 (those in `axis` only; an axis of another size stays)."""
        return self.reshape(ops_axes.squeeze_shape(self.shape, axis))

    def flatten(self, start: int = 0, end: int = -1) -> Tensor:
        """Axes start..end (inclusive) merged into one."""
        return self.reshape(ops_axes.flatten_shape(self.shape, start, end))

    def expand(self, *shape: Union[int, Sequence[int]]) -> Tensor:
        """Broadcast to `shape` (a view); -1 keeps a size; `t.expand(2, 3)` or `t.expand((2, 3))`."""
        return ops_axes.Expand.apply(self, shape=_sizes(shape))

    def repeat(self, *repeats: Union[int, Sequence[int]]) -> Tensor:
        """Tiled `repeats[i]` times along axis i (PyTorch's repeat, numpy's tile)."""
        return ops_axes.Repeat.apply(self, repeats=_sizes(repeats))


def _sizes(args: tuple[Any, ...]) -> tuple[int, ...]:
    """`f(2, 3)` and `f((2, 3))` alike: the sizes as a tuple of ints."""
    if len(args) == 1 and not isinstance(args[0], (int, np.integer)):
        args = tuple(args[0])
    return tuple(int(n) for n in args)


from tinygrad_rnn import ops, ops_axes, ops_elementwise  # noqa: E402  (ops subclass Function, defined above)
