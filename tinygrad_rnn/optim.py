"""Optimizers and gradient clipping: plain users of the engine, swappable in one line.

    opt = Adagrad(model.parameters(), lr=0.1)      # or SGD(...), Adam(...), RMSprop(...)
    loss.backward(); clip_grad_value_(model.parameters(), 5.0); opt.step(); opt.zero_grad()

`Optimizer` holds the parameters and their per-parameter state (made on a parameter's
first step), skips parameters whose `grad` is None, and saves and loads its state. A new
optimizer is a subclass whose constructor stores each hyper-parameter as an attribute of
the same name and that writes `update` (one rule for one parameter) and, if it keeps
state, `init_state`.

Updates are in place and keep the parameter's dtype. They are written `p.data -= step`:
assigning to `data` bumps the tensor's version, so a backward through a forward recorded
before the update raises instead of returning a wrong gradient.
"""

from __future__ import annotations

import inspect
import math
from typing import Any, Iterable

import numpy as np

from tinygrad_rnn.tensor import Tensor

State = dict[str, Any]


def _param_list(params: Iterable[Tensor], who: str) -> list[Tensor]:
    if isinstance(params, Tensor):
        raise TypeError(f"{who}: params must be an iterable of Tensors, not a single Tensor")
    out = list(params)
    for i, p in enumerate(out):
        if not isinstance(p, Tensor):
            raise TypeError(f"{who}: parameter {i} is a {type(p).__name__}, not a Tensor")
    return out


def _check(who: str, ok: bool, name: str, value: Any, want: str) -> None:
    if not ok:
        raise ValueError(f"{who}: invalid {name}={value!r}, must be {want}")


def _plain(value: Any) -> Any:
    """A value back from an .npz round trip (0-d or 1-d array) as a Python number or tuple."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    return tuple(value) if isinstance(value, list) else value


class Optimizer:
    """Base class: holds the parameters and their state; subclasses write `update`."""

    def __init__(self, params: Iterable[Tensor]) -> None:
        who = type(self).__name__
        self.params = _param_list(params, who)
        if not self.params:
            raise ValueError(f"{who}: got an empty list of parameters")
        for i, p in enumerate(self.params):
            if not p.requires_grad:
                raise ValueError(f"{who}: parameter {i} of shape {p.shape} does not require grad")
            if not p.is_leaf:
                raise ValueError(f"{who}: parameter {i} of shape {p.shape} is not a leaf tensor")
        if len({id(p) for p in self.params}) != len(self.params):
            raise ValueError(f"{who}: a parameter appears more than once")
        self.state: list[State] = [{} for _ in self.params]

    # --- what a subclass writes ------------------------------------------------------
    def init_state(self, p: Tensor) -> State:
        """The state of parameter `p` before its first step (arrays in p's dtype)."""
        return {}

    def update(self, p: Tensor, g: np.ndarray, state: State) -> None:
        """Update `p` in place (`p.data -= ...`) from its gradient `g`, and `state` in place."""
        raise NotImplementedError

    # --- what the base does ----------------------------------------------------------
    def step(self) -> None:
        """One update of every parameter that has a gradient."""
        for p, state in zip(self.params, self.state):
            if p.grad is None:
                continue
            if not state:
                state.update(self.init_state(p))
            self.update(p, p.grad, state)

    def zero_grad(self) -> None:
        """Set every parameter's `grad` to None (the next backward starts afresh)."""
        for p in self.params:
            p.grad = None

    def hyper(self) -> dict[str, Any]:
        """The hyper-parameters: the constructor's arguments after `params`."""
        names = list(inspect.signature(type(self).__init__).parameters)[2:]
        return {name: getattr(self, name) for name in names}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyper().items())
        return f"{type(self).__name__}({args})"

    def state_dict(self) -> dict[str, Any]:
        """A copy of the optimizer's state, as arrays, numbers and strings only (fits .npz).

        {"type": name, "hyper": {name: number or list}, "shapes": {"i": int array},
         "state": {"i": {name: array or number}}}, with "i" the parameter's index; a
        parameter that has not stepped yet has no "state" entry.
        """
        return {
            "type": type(self).__name__,
            "hyper": {k: list(v) if isinstance(v, tuple) else v for k, v in self.hyper().items()},
            "shapes": {str(i): np.array(p.shape, dtype=np.int64) for i, p in enumerate(self.params)},
            "state": {
                str(i): {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in s.items()}
                for i, s in enumerate(self.state)
                if s
            },
        }

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        """Restore hyper-parameters and state from `state_dict()` (or its .npz round trip).

        Everything is checked before anything changes: the optimizer type, the number and
        shapes of the parameters, the hyper-parameters and the keys of every state.
        """
        who = f"{type(self).__name__}.load_state_dict"
        kind = str(np.asarray(sd["type"]))
        if kind != type(self).__name__:
            raise ValueError(f"{who}: the state is of a {kind}, not a {type(self).__name__}")
        shapes = sd["shapes"]
        if len(shapes) != len(self.params):
            raise ValueError(
                f"{who}: the state has {len(shapes)} parameters, this optimizer {len(self.params)}"
            )
        for i, p in enumerate(self.params):
            shape = tuple(np.asarray(shapes[str(i)]).tolist())
            if shape != p.shape:
                raise ValueError(f"{who}: parameter {i} has shape {p.shape}, in the state {shape}")
        current = self.hyper()
        if set(sd["hyper"]) != set(current):
            raise ValueError(f"{who}: hyper-parameters {sorted(sd['hyper'])}, expected {sorted(current)}")
        hyper = {k: _plain(sd["hyper"][k]) for k in current}
        fresh = type(self)(self.params, **hyper)  # validates the hyper-parameters
        states: list[State] = []
        for i, p in enumerate(self.params):
            saved = sd.get("state", {}).get(str(i))
            if saved is None:
                states.append({})
                continue
            template = fresh.init_state(p)
            if set(saved) != set(template):
                raise ValueError(
                    f"{who}: parameter {i} has state {sorted(saved)}, expected {sorted(template)}"
                )
            state: State = {}
            for k, t in template.items():
                if isinstance(t, np.ndarray):
                    v = np.array(saved[k], dtype=p.dtype)
                    if v.shape != t.shape:
                        raise ValueError(
                            f"{who}: parameter {i} state {k!r} has shape {v.shape}, not {t.shape}"
                        )
                    state[k] = v
                else:
                    state[k] = _plain(saved[k])
            states.append(state)
        for k, v in hyper.items():
            setattr(self, k, v)
        self.state = states


class SGD(Optimizer):
    """Stochastic gradient descent with PyTorch's semantics (no dampening).

    g = grad + weight_decay * p;  with momentum: b = momentum * b + g (b = g on the first
    step), g = g + momentum * b if nesterov else b;  p -= lr * g.
    """

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ) -> None:
        _check("SGD", lr >= 0, "lr", lr, ">= 0")
        _check("SGD", momentum >= 0, "momentum", momentum, ">= 0")
        _check("SGD", weight_decay >= 0, "weight_decay", weight_decay, ">= 0")
        _check("SGD", not nesterov or momentum > 0, "nesterov", nesterov, "False when momentum is 0")
        self.lr, self.momentum, self.nesterov, self.weight_decay = lr, momentum, bool(nesterov), weight_decay
        super().__init__(params)

    def init_state(self, p: Tensor) -> State:
        return {"momentum_buffer": np.zeros_like(p.data)} if self.momentum else {}

    def update(self, p: Tensor, g: np.ndarray, state: State) -> None:
        if self.weight_decay:
            g = g + self.weight_decay * p.data
        if self.momentum:
            buf = state["momentum_buffer"]
            buf *= self.momentum  # 0 on the first step, so buf becomes g exactly
            buf += g
            g = g + self.momentum * buf if self.nesterov else buf
        p.data -= self.lr * g


class Adagrad(Optimizer):
    """The seed's Adagrad: m += g * g;  p -= lr * g / sqrt(m + eps).

    Unlike PyTorch's Adagrad, which divides by sqrt(m) + eps, eps is inside the square
    root here, exactly as in the seed notebook, so training reproduces it.
    """

    def __init__(self, params: Iterable[Tensor], lr: float = 0.1, eps: float = 1e-8) -> None:
        _check("Adagrad", lr >= 0, "lr", lr, ">= 0")
        _check("Adagrad", eps >= 0, "eps", eps, ">= 0")
        self.lr, self.eps = lr, eps
        super().__init__(params)

    def init_state(self, p: Tensor) -> State:
        return {"sum": np.zeros_like(p.data)}

    def update(self, p: Tensor, g: np.ndarray, state: State) -> None:
        m = state["sum"]
        m += g * g
        p.data -= self.lr * g / np.sqrt(m + self.eps)


class Adam(Optimizer):
    """Adam with PyTorch's semantics (L2 weight decay added to the gradient, no amsgrad).

    g = grad + weight_decay * p;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
    p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps), with t the step count.
    """

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        _check("Adam", lr >= 0, "lr", lr, ">= 0")
        _check("Adam", len(betas) == 2, "betas", betas, "a pair (beta1, beta2)")
        _check("Adam", 0 <= betas[0] < 1, "betas[0]", betas[0], "in [0, 1)")
        _check("Adam", 0 <= betas[1] < 1, "betas[1]", betas[1], "in [0, 1)")
        _check("Adam", eps >= 0, "eps", eps, ">= 0")
        _check("Adam", weight_decay >= 0, "weight_decay", weight_decay, ">= 0")
        self.lr, self.betas, self.eps, self.weight_decay = lr, tuple(betas), eps, weight_decay
        super().__init__(params)

    def init_state(self, p: Tensor) -> State:
        return {"step": 0, "exp_avg": np.zeros_like(p.data), "exp_avg_sq": np.zeros_like(p.data)}

    def update(self, p: Tensor, g: np.ndarray, state: State) -> None:
        beta1, beta2 = self.betas
        if self.weight_decay:
            g = g + self.weight_decay * p.data
        state["step"] += 1
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m += (1 - beta1) * (g - m)  # PyTorch's lerp
        v *= beta2
        v += (1 - beta2) * g * g
        t = state["step"]
        denom = np.sqrt(v) / math.sqrt(1 - beta2**t)
        denom += self.eps
        p.data -= self.lr / (1 - beta1**t) * m / denom


class RMSprop(Optimizer):
    """RMSprop with PyTorch's semantics (not centered, no momentum).

    v = alpha v + (1 - alpha) g^2;  p -= lr * g / (sqrt(v) + eps).
    """

    def __init__(
        self, params: Iterable[Tensor], lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8
    ) -> None:
        _check("RMSprop", lr >= 0, "lr", lr, ">= 0")
        _check("RMSprop", 0 <= alpha < 1, "alpha", alpha, "in [0, 1)")
        _check("RMSprop", eps >= 0, "eps", eps, ">= 0")
        self.lr, self.alpha, self.eps = lr, alpha, eps
        super().__init__(params)

    def init_state(self, p: Tensor) -> State:
        return {"square_avg": np.zeros_like(p.data)}

    def update(self, p: Tensor, g: np.ndarray, state: State) -> None:
        v = state["square_avg"]
        v *= self.alpha
        v += (1 - self.alpha) * g * g
        denom = np.sqrt(v)
        denom += self.eps
        p.data -= self.lr * g / denom


def clip_grad_value_(params: Iterable[Tensor], clip: float) -> None:
    """Clip every gradient element to [-clip, clip] in place (the seed clips to 5)."""
    _check("clip_grad_value_", clip >= 0, "clip", clip, ">= 0")
    for p in _param_list(params, "clip_grad_value_"):
        if p.grad is not None:
            p.grad.clip(-clip, clip, out=p.grad)  # the method: one Python wrapper less than np.clip


def clip_grad_norm_(params: Iterable[Tensor], max_norm: float) -> float:
    """Scale all gradients together so their joint L2 norm is at most `max_norm`.

    Returns the norm before clipping. As in PyTorch, the scale is max_norm / (norm + 1e-6),
    applied only when it is below 1.
    """
    _check("clip_grad_norm_", max_norm >= 0, "max_norm", max_norm, ">= 0")
    grads = [p.grad for p in _param_list(params, "clip_grad_norm_") if p.grad is not None]
    total = math.sqrt(sum(float(np.vdot(g, g)) for g in grads))
    scale = max_norm / (total + 1e-6)
    if scale < 1:
        for g in grads:
            g *= scale
    return total
