"""gradcheck: the tape's gradients against central finite differences, in float64."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from tinygrad_rnn.tape import Tape, no_grad
from tinygrad_rnn.tensor import Tensor


class GradcheckError(RuntimeError):
    """A gradient disagrees with finite differences, or backward misbehaves."""


def gradcheck(
    fn: Callable[..., Tensor],
    inputs: Sequence[Any],
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
) -> bool:
    """Check the gradients of `fn(*inputs)` for every input tensor that requires grad.

    Works on float64 copies of the input tensors (other inputs pass through unchanged). A
    non-scalar output is projected on a fixed random direction r, so one backward gives
    d(sum(out * r))/d(input); each element is then compared with the central difference
    (f(x + eps) - f(x - eps)) / (2 eps) and must satisfy |a - n| <= atol + rtol * |n|.
    Also checks that backward is reentrant (twice, same answer) and linear in the upstream
    gradient (zero in, zero out). Returns True or raises GradcheckError.
    """
    xs = [_float64_copy(x) for x in inputs]
    wrt = [i for i, x in enumerate(xs) if isinstance(x, Tensor) and x.requires_grad]
    if not wrt:
        raise ValueError("gradcheck: no input tensor requires grad")
    with Tape() as tape:
        out = fn(*xs)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, not {type(out).__name__}")
    r = np.random.default_rng(0).standard_normal(out.shape) if out.ndim else np.ones(())
    analytic = _analytic(tape, out, [xs[i] for i in wrt], wrt, r)

    def f() -> float:
        with no_grad():
            return float(np.sum(fn(*xs).data * r))

    for i, a in zip(wrt, analytic):
        num = numerical_gradient(f, xs[i].data, eps)
        bad = np.argwhere(~agrees(a, num, atol, rtol))
        if len(bad):
            idx = tuple(int(j) for j in bad[0])
            raise GradcheckError(
                f"gradcheck: input {i}, element {idx}: backward gives {float(a[idx])!r}, "
                f"finite differences give {float(num[idx])!r}"
            )
    return True


def _float64_copy(x: Any) -> Any:
    """A float tensor as a float64 copy (same requires_grad); anything else as it is."""
    if isinstance(x, Tensor) and x.dtype.kind == "f":
        return Tensor(np.array(x.data, dtype=np.float64), requires_grad=x.requires_grad)
    return x


def _analytic(
    tape: Tape, out: Tensor, sources: list[Tensor], wrt: list[int], r: np.ndarray
) -> list[np.ndarray]:
    """d(sum(out * r))/d(source) from the tape, checked to be reentrant and linear (zero in, zero out)."""
    if not out.requires_grad:
        return [np.zeros(s.shape) for s in sources]
    analytic = tape.gradient(out, sources, grad=r, retain_graph=True)
    again = tape.gradient(out, sources, grad=r, retain_graph=True)
    zero = tape.gradient(out, sources, grad=np.zeros(out.shape))
    for i, a, b, z in zip(wrt, analytic, again, zero):
        if not np.array_equal(a, b, equal_nan=True):
            raise GradcheckError(
                f"gradcheck: input {i}: backward is not reentrant (a second backward differs)"
            )
        if np.any(z != 0):
            raise GradcheckError(f"gradcheck: input {i}: a zero upstream gradient gave a non-zero gradient")
    return analytic


def agrees(analytic: np.ndarray, numeric: np.ndarray, atol: float = 1e-5, rtol: float = 1e-3) -> np.ndarray:
    """Elementwise |analytic - numeric| <= atol + rtol * |numeric|: gradcheck's criterion."""
    return np.abs(analytic - numeric) <= atol + rtol * np.abs(numeric)


def numerical_gradient(f: Callable[[], float], array: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """df/d(array) by central differences, (f(x + eps) - f(x - eps)) / (2 eps) per element.

    `f` reads `array`, which is perturbed in place one element at a time and restored.
    """
    grad = np.zeros(array.shape)
    for idx in np.ndindex(array.shape):
        orig = array[idx]
        array[idx] = orig + eps
        plus = f()
        array[idx] = orig - eps
        minus = f()
        array[idx] = orig
        grad[idx] = (plus - minus) / (2 * eps)
    return grad
