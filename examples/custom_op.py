"""A user's own op, plugged in exactly like the built-ins, and checked with gradcheck.

Run: python examples/custom_op.py
"""

import numpy as np

from tinygrad_rnn import Context, Function, Tape, Tensor, gradcheck


class Softplus(Function):
    """softplus(x) = log(1 + e^x); its derivative is sigmoid(x)."""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        ctx.save_for_backward(x)
        return np.logaddexp(0.0, x)  # stable for large |x|

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        (x,) = ctx.saved_tensors
        return grad * np.exp(-np.logaddexp(0.0, -x))  # grad * sigmoid(x)


class WrongSoftplus(Softplus):
    """The same forward with a wrong derivative, to show gradcheck catching it."""

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        (x,) = ctx.saved_tensors
        return grad * np.tanh(x)


def main() -> None:
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((3, 4)), requires_grad=True)
    w = Tensor(rng.standard_normal((4, 2)), requires_grad=True)

    with Tape() as tape:
        loss = Softplus.apply(x @ w).sum()
    print(tape)  # the user's op appears under its class name, next to the built-ins
    loss.backward()
    print("loss", loss.item(), "  dL/dw:\n", w.grad)

    print("gradcheck Softplus:", gradcheck(lambda a, b: Softplus.apply(a @ b), [x, w]))
    try:
        gradcheck(lambda a: WrongSoftplus.apply(a), [x])
    except Exception as e:  # GradcheckError names the input, the element and both values
        print("gradcheck WrongSoftplus:", e)


if __name__ == "__main__":
    main()
