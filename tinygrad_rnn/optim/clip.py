"""Gradient clipping, in place, as PyTorch's `torch.nn.utils.clip_grad_*_`.

Both take a single Tensor or an iterable of Tensors and skip those whose grad is None.
"""

from __future__ import annotations

import math
from typing import Iterable, Union

import numpy as np

from tinygrad_rnn.optim.optimizer import check, param_list
from tinygrad_rnn.tensor import Tensor

Tensors = Union[Tensor, Iterable[Tensor]]


def _grads(params: Tensors, who: str) -> list[np.ndarray]:
    ps = [params] if isinstance(params, Tensor) else param_list(params, who)
    return [p.grad for p in ps if p.grad is not None]


def clip_grad_value_(params: Tensors, clip: float) -> None:
    """Clip every gradient element to [-clip, clip] in place (the seed clips to 5)."""
    check("clip_grad_value_", clip >= 0, "clip", clip, ">= 0")
    for g in _grads(params, "clip_grad_value_"):
        g.clip(-clip, clip, out=g)  # the method: one Python wrapper less than np.clip


def _norm(a: np.ndarray, p: float) -> float:
    """The p-norm of `a` flattened (p = inf: the largest magnitude)."""
    if a.size == 0:
        return 0.0
    if p == 2:
        return math.sqrt(float(np.vdot(a, a)))
    a = np.abs(a)
    if p == math.inf:
        return float(a.max())
    return float(np.sum(a**p) ** (1 / p))


def clip_grad_norm_(params: Tensors, max_norm: float, norm_type: float = 2.0) -> float:
    """Scale all gradients together so their joint `norm_type`-norm is at most `max_norm`.

    Returns the norm before clipping: the norm of the vector of the per-parameter norms
    (PyTorch's). The scale is max_norm / (norm + 1e-6), applied only when below 1.
    """
    check("clip_grad_norm_", max_norm >= 0, "max_norm", max_norm, ">= 0")
    p = float(norm_type)
    check("clip_grad_norm_", p > 0, "norm_type", norm_type, "> 0 (or math.inf)")
    grads = _grads(params, "clip_grad_norm_")
    total = _norm(np.array([_norm(g, p) for g in grads]), p)
    scale = max_norm / (total + 1e-6)
    if scale < 1:
        for g in grads:
            g *= scale
    return total
