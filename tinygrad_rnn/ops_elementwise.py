"""More elementwise ops: math, activations, choices between two inputs, comparisons.

The same table of derivatives as `ops` (same conventions: gradients in the broadcast shape,
never written into `grad`). Where a derivative has a kink, the value taken there is
PyTorch's, noted next to the op.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional

import numpy as np

from tinygrad_rnn.tensor import ArrayLike, Context, Function, Tensor


# --- math ------------------------------------------------------------------------------
class Sqrt(Function):
    name = "sqrt"

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        y = np.sqrt(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        (y,) = ctx.saved_tensors
        return grad / (2 * y)  # d sqrt(x) = 1 / (2 sqrt(x))


class Abs(Function):
    name = "abs"

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        ctx.save_for_backward(x)
        return np.abs(x)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        (x,) = ctx.saved_tensors
        return grad * np.sign(x)  # 0 at x = 0, as PyTorch


class Sign(Function):
    """-1, 0 or 1; its gradient is zero (PyTorch's choice, also at 0)."""

    name = "sign"

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        return np.sign(x)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        return np.zeros_like(grad)


class Sin(Function):
    name = "sin"

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        ctx.save_for_backward(x)
        return np.sin(x)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        (x,) = ctx.saved_tensors
        return grad * np.cos(x)


class Cos(Function):
    name = "cos"

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        ctx.save_for_backward(x)
        return np.cos(x)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        (x,) = ctx.saved_tensors
        return -grad * np.sin(x)


class PowTensor(Function):
    """a ** b with b a tensor (`x ** t`, `2 ** t`); broadcasting."""

    name = "pow"

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        y = a**b
        ctx.save_for_backward(a, b, y)
        return y

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Optional[np.ndarray], ...]:
        a, b, y = ctx.saved_tensors
        da = db = None
        with np.errstate(divide="ignore", invalid="ignore"):
            if ctx.needs_input_grad[0]:
                # b a^(b-1), and 0 where b = 0 (no 0 * inf at a = 0)
                da = grad * np.where(b == 0, 0, b * a ** (b - 1))
            if ctx.needs_input_grad[1]:
                # a^b log(a), and 0 at a = 0 for b >= 0, as PyTorch
                db = grad * np.where((a == 0) & (b >= 0), 0, y * np.log(a))
        return da, db


class Clamp(Function):
    """x limited to [min, max] (either may be None). The gradient passes where
    min <= x <= max, edges included (PyTorch's rule)."""

    name = "clamp"

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, min: Any = None, max: Any = None) -> np.ndarray:
        if min is None and max is None:
            raise ValueError("clamp: at least one of min and max must be given")
        inside = np.ones(x.shape, bool)
        if min is not None:
            inside &= x >= min
        if max is not None:
            inside &= x <= max
        ctx.save_for_backward(inside)
        return np.clip(x, min, max)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        (inside,) = ctx.saved_tensors
        return grad * inside


# --- activations -----------------------------------------------------------------------
def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0, -z))  # 1/(1+e^-z) without overflow for z << 0


class Softplus(Function):
    """log(1 + e^(beta x)) / beta, and x itself where beta x > threshold (PyTorch's)."""

    name = "softplus"

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, beta: float = 1.0, threshold: float = 20.0) -> np.ndarray:
        z = x * beta
        linear = z > threshold
        ctx.save_for_backward(z, linear)
        return np.where(linear, x, np.logaddexp(0, z) / beta)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        z, linear = ctx.saved_tensors
        return np.where(linear, grad, grad * _sigmoid(z))  # d/dx = sigmoid(beta x)


class LeakyRelu(Function):
    name = "leaky_relu"

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, negative_slope: float = 0.01) -> np.ndarray:
        ctx.save_for_backward(x)
        ctx.slope = negative_slope
        return np.where(x > 0, x, x * negative_slope)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        (x,) = ctx.saved_tensors
        return np.where(x > 0, grad, grad * ctx.slope)  # the slope at 0, as PyTorch


_erf = np.vectorize(math.erf, otypes=[np.float64])  # numpy has no erf; math's is exact
_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)


class Gelu(Function):
    """x Phi(x), Phi the normal CDF; approximate="tanh" is PyTorch's tanh approximation
    0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""

    name = "gelu"

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, approximate: str = "none") -> np.ndarray:
        if approximate == "none":
            cdf = (0.5 * (1 + _erf(x / math.sqrt(2)))).astype(x.dtype, copy=False)
        elif approximate == "tanh":
            cdf = 0.5 * (1 + np.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x**3)))
        else:
            raise ValueError(f"gelu: approximate must be 'none' or 'tanh', not {approximate!r}")
        ctx.save_for_backward(x, cdf)
        ctx.approximate = approximate
        return x * cdf

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        x, cdf = ctx.saved_tensors
        if ctx.approximate == "none":  # Phi(x) + x phi(x)
            return grad * (cdf + x * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi))
        t = 2 * cdf - 1  # the tanh
        inner = _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x)
        return grad * (cdf + 0.5 * x * (1 - t * t) * inner)


# --- choices between inputs ------------------------------------------------------------
def _share_of_a(a: np.ndarray, b: np.ndarray, a_wins: np.ndarray) -> np.ndarray:
    """1 where a wins, 1/2 where a == b (a tie splits the gradient evenly, as PyTorch), else 0."""
    return a_wins + 0.5 * (a == b)


class Maximum(Function):
    name = "maximum"

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ctx.save_for_backward(_share_of_a(a, b, a > b))
        return np.maximum(a, b)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        (share,) = ctx.saved_tensors
        return grad * share, grad * (1 - share)


class Minimum(Maximum):
    name = "minimum"

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ctx.save_for_backward(_share_of_a(a, b, a < b))
        return np.minimum(a, b)


class Where(Function):
    """cond ? a : b elementwise; cond (bool) broadcasts with a and b and gets no gradient."""

    name = "where"

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray, *, cond: Any) -> np.ndarray:
        cond = np.asarray(cond.data if isinstance(cond, Tensor) else cond)
        if cond.dtype != bool:
            raise TypeError(f"where: the condition must be a bool tensor or array, not {cond.dtype}")
        ctx.cond = cond
        return np.where(cond, a, b)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Optional[np.ndarray], ...]:
        da, db = ctx.needs_input_grad
        return (np.where(ctx.cond, grad, 0) if da else None), (np.where(ctx.cond, 0, grad) if db else None)


def _pair(a: ArrayLike, b: ArrayLike) -> tuple[Tensor, Tensor]:
    """Two operands as tensors; a Python number takes the other tensor's float dtype."""
    if isinstance(a, Tensor):
        return a, a._other(b)
    if isinstance(b, Tensor):
        return b._other(a), b
    return Tensor(a), Tensor(b)


def maximum(a: ArrayLike, b: ArrayLike) -> Tensor:
    """Elementwise max of a and b (broadcasting); a tie gives each half the gradient."""
    return Maximum.apply(*_pair(a, b))


def minimum(a: ArrayLike, b: ArrayLike) -> Tensor:
    """Elementwise min of a and b (broadcasting); a tie gives each half the gradient."""
    return Minimum.apply(*_pair(a, b))


def where(cond: ArrayLike, a: ArrayLike, b: ArrayLike) -> Tensor:
    """a where cond is True, else b; cond, a and b broadcast together. cond: bool."""
    return Where.apply(*_pair(a, b), cond=cond)


# --- comparisons: bool tensors, never recorded -----------------------------------------
def compare(op: Callable[..., Any], a: ArrayLike, b: ArrayLike) -> Tensor:
    """`op` (np.less, np.equal, ...) over the two operands' data: a bool tensor without grad."""
    a_data = a.data if isinstance(a, Tensor) else a
    b_data = b.data if isinstance(b, Tensor) else b
    try:
        return Tensor(np.asarray(op(a_data, b_data)))
    except ValueError:
        name = COMPARISON_NAMES.get(op, op.__name__)
        shapes = f"{np.shape(a_data)} and {np.shape(b_data)}"
        raise ValueError(f"{name}: shapes {shapes} do not broadcast") from None


COMPARISON_NAMES: dict[Any, str] = {
    np.equal: "eq",
    np.not_equal: "ne",
    np.less: "lt",
    np.less_equal: "le",
    np.greater: "gt",
    np.greater_equal: "ge",
}  # PyTorch's names


# --- functional forms (tg.sqrt(x), ...): the Tensor methods, for tensors, arrays, numbers --
def as_tensor(x: ArrayLike) -> Tensor:
    """x itself if it is a Tensor, else a constant Tensor over it."""
    return x if isinstance(x, Tensor) else Tensor(x)


def sqrt(x: ArrayLike) -> Tensor:
    return as_tensor(x).sqrt()


def abs(x: ArrayLike) -> Tensor:
    return as_tensor(x).abs()


def sign(x: ArrayLike) -> Tensor:
    return as_tensor(x).sign()


def sin(x: ArrayLike) -> Tensor:
    return as_tensor(x).sin()


def cos(x: ArrayLike) -> Tensor:
    return as_tensor(x).cos()


def clamp(x: ArrayLike, min: Optional[float] = None, max: Optional[float] = None) -> Tensor:
    """x limited to [min, max]; the gradient passes where min <= x <= max."""
    return as_tensor(x).clamp(min, max)


clip = clamp


def softplus(x: ArrayLike, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    return as_tensor(x).softplus(beta, threshold)


def leaky_relu(x: ArrayLike, negative_slope: float = 0.01) -> Tensor:
    return as_tensor(x).leaky_relu(negative_slope)


def gelu(x: ArrayLike, approximate: str = "none") -> Tensor:
    return as_tensor(x).gelu(approximate)


def pow(base: ArrayLike, exponent: ArrayLike) -> Tensor:
    """base ** exponent; either may be a tensor."""
    if isinstance(base, Tensor):
        return base**exponent
    return as_tensor(exponent).__rpow__(base)
