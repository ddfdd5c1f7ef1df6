"""The update rules, each with its formula: SGD, Adagrad (the seed's), Adam, AdamW, RMSprop.

g is the gradient, p the parameter, t = state["step"] (1 on the first update); every option
is read from the parameter's group. Weight decay is PyTorch's L2 form, g = g + wd * p,
except in AdamW, which decays the parameter itself: p *= 1 - lr * wd.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tinygrad_rnn import kernels
from tinygrad_rnn.optim.optimizer import Group, Optimizer, Params, State, check
from tinygrad_rnn.tensor import Tensor


def _l2(g: np.ndarray, p: Tensor, group: Group) -> np.ndarray:
    wd = group["weight_decay"]
    return g + wd * p.data if wd else g


class SGD(Optimizer):
    """Stochastic gradient descent with PyTorch's semantics.

    g = grad + weight_decay p;  with momentum: b = g on the first step, then
    b = momentum b + (1 - dampening) g;  g = g + momentum b if nesterov else b;  p -= lr g.
    """

    def __init__(
        self,
        params: Params,
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        options = dict(
            lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay, nesterov=nesterov
        )
        super().__init__(params, options)

    def check(self, group: Group, who: str) -> None:
        check(who, group["dampening"] <= 1, "dampening", group["dampening"], "in [0, 1]")
        ok = not group["nesterov"] or (group["momentum"] > 0 and group["dampening"] == 0)
        check(who, ok, "nesterov", group["nesterov"], "False unless momentum > 0 and dampening = 0")

    def init_state(self, p: Tensor, group: Group) -> State:
        return {"momentum_buffer": np.zeros_like(p.data)} if group["momentum"] else {}

    def update(self, p: Tensor, g: np.ndarray, state: State, group: Group) -> None:
        g = _l2(g, p, group)
        momentum = group["momentum"]
        if momentum:
            buf = state["momentum_buffer"]
            if state["step"] == 1:
                buf[...] = g
            else:
                buf *= momentum
                buf += g if not group["dampening"] else (1 - group["dampening"]) * g
            g = g + momentum * buf if group["nesterov"] else buf
        p.data -= group["lr"] * g


class Adagrad(Optimizer):
    """The seed's Adagrad: m += g g;  p -= clr g / sqrt(m + eps),  clr = lr / (1 + (t - 1) lr_decay).

    Unlike PyTorch's Adagrad, which divides by sqrt(m) + eps, eps is inside the square
    root here, exactly as in the seed notebook, so training reproduces it (bit for bit with
    numpy's kernels, the default; within an ulp with kernels.use("numba"), whose compiled pass
    fuses multiply-adds). g includes weight_decay p; lr_decay is PyTorch's.
    """

    def __init__(
        self,
        params: Params,
        lr: float = 0.1,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        eps: float = 1e-8,
    ) -> None:
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay, eps=eps))

    def init_state(self, p: Tensor, group: Group) -> State:
        return {"sum": np.zeros_like(p.data)}

    def update(self, p: Tensor, g: np.ndarray, state: State, group: Group) -> None:
        g = _l2(g, p, group)
        lr, decay = group["lr"], group["lr_decay"]
        clr = lr / (1 + (state["step"] - 1) * decay) if decay else lr  # lr / 1 is lr exactly
        # m += g g;  p -= clr g / sqrt(m + eps), in place (compiled with kernels.use("numba"));
        # assigning the same array back notes the change, as `p.data -= ...` does
        p.data = kernels.adagrad_update(p.data, g, state["sum"], clr, group["eps"])


class Adam(Optimizer):
    """Adam with PyTorch's semantics.

    g = grad + weight_decay p;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
    with amsgrad v_max = max(v_max, v) replaces v below;
    p -= lr / (1 - b1^t) m / (sqrt(v) / sqrt(1 - b2^t) + eps).
    """

    decoupled = False  # AdamW: p *= 1 - lr wd instead of the L2 term

    def __init__(
        self,
        params: Params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
    ) -> None:
        options: dict[str, Any] = dict(
            lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad
        )
        super().__init__(params, options)

    def check(self, group: Group, who: str) -> None:
        for i, beta in enumerate(group["betas"]):
            check(who, 0 <= beta < 1, f"betas[{i}]", beta, "in [0, 1)")

    def init_state(self, p: Tensor, group: Group) -> State:
        names = ["exp_avg", "exp_avg_sq"] + (["max_exp_avg_sq"] if group["amsgrad"] else [])
        return {name: np.zeros_like(p.data) for name in names}

    def update(self, p: Tensor, g: np.ndarray, state: State, group: Group) -> None:
        (beta1, beta2), lr, t = group["betas"], group["lr"], state["step"]
        if self.decoupled and group["weight_decay"]:
            p.data *= 1 - lr * group["weight_decay"]
        elif not self.decoupled:
            g = _l2(g, p, group)
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m += (1 - beta1) * (g - m)  # PyTorch's lerp
        v *= beta2
        v += (1 - beta2) * g * g
        if group["amsgrad"]:
            v = np.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
        denom = np.sqrt(v) / math.sqrt(1 - beta2**t)
        denom += group["eps"]
        p.data -= lr / (1 - beta1**t) * m / denom


class AdamW(Adam):
    """Adam with decoupled weight decay (PyTorch's AdamW): p *= 1 - lr wd, then Adam's step."""

    decoupled = True

    def __init__(
        self,
        params: Params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
    ) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)


class RMSprop(Optimizer):
    """RMSprop with PyTorch's semantics.

    g = grad + weight_decay p;  v = alpha v + (1 - alpha) g^2;  centered: a = alpha a +
    (1 - alpha) g and v - a^2 replaces v below;  d = sqrt(v) + eps;  with momentum:
    b = momentum b + g / d, p -= lr b;  else p -= lr g / d.
    """

    def __init__(
        self,
        params: Params,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
    ) -> None:
        options = dict(
            lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum, centered=centered
        )
        super().__init__(params, options)

    def check(self, group: Group, who: str) -> None:
        check(who, 0 <= group["alpha"] < 1, "alpha", group["alpha"], "in [0, 1)")

    def init_state(self, p: Tensor, group: Group) -> State:
        names = ["square_avg"] + (["momentum_buffer"] if group["momentum"] else [])
        return {name: np.zeros_like(p.data) for name in names + (["grad_avg"] if group["centered"] else [])}

    def update(self, p: Tensor, g: np.ndarray, state: State, group: Group) -> None:
        g = _l2(g, p, group)
        alpha = group["alpha"]
        v = state["square_avg"]
        v *= alpha
        v += (1 - alpha) * g * g
        if group["centered"]:
            a = state["grad_avg"]
            a += (1 - alpha) * (g - a)  # PyTorch's lerp
            denom = np.sqrt(v - a * a)
        else:
            denom = np.sqrt(v)
        denom += group["eps"]
        if group["momentum"]:
            buf = state["momentum_buffer"]
            buf *= group["momentum"]
            buf += g / denom
            p.data -= group["lr"] * buf
        else:
            p.data -= group["lr"] * g / denom
