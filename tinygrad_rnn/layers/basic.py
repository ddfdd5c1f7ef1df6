"""Small layers: `Linear`, `Embedding`, `Dropout`, `LayerNorm`, and `Tanh`, `ReLU`, `Sigmoid`.

Weights follow PyTorch's layout (`Linear.weight` is (out, in)). Initial weights are the
seed's (normal * 0.01, zero biases), drawn from the Generator (or int seed) passed as `rng`.
Each layer is built from the engine's ops, so its gradient is theirs.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np

from tinygrad_rnn.creation import RNG
from tinygrad_rnn.creation import generator as _generator
from tinygrad_rnn.layers.module import (
    DType,
    Module,
    Parameter,
    _as_tensor,
    _check_sizes,
    _small_normal,
)
from tinygrad_rnn.ops import addmm, class_ids
from tinygrad_rnn.tensor import ArrayLike, Tensor


def _linear(x: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
    """x (..., in) @ weight.T + bias -> (..., out), as one 2-D matmul over all leading axes."""
    lead = x.shape[:-1]
    x2 = x if x.ndim == 2 else x.reshape(-1, x.shape[-1])
    y = x2 @ weight.T if bias is None else addmm(bias, x2, weight.T)  # addmm: one node
    return y if len(lead) == 1 else y.reshape(*lead, weight.shape[0])


class Linear(Module):
    """y = x @ weight.T + bias; x (..., in_features) -> y (..., out_features)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        dtype: DType = np.float64,
        rng: RNG = None,
    ) -> None:
        super().__init__()
        _check_sizes("Linear", in_features=in_features, out_features=out_features)
        self.weight = Parameter(_small_normal(_generator(rng), (out_features, in_features), dtype))
        self.bias: Optional[Parameter] = Parameter(np.zeros(out_features, dtype)) if bias else None
        self.in_features, self.out_features = in_features, out_features

    def forward(self, x: ArrayLike) -> Tensor:
        return _linear(_as_tensor(x, self.weight.dtype), self.weight, self.bias)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
        )


class Embedding(Module):
    """Row lookup: ids int (...) -> weight[ids] (..., dim). Its backward is a scatter-add."""

    def __init__(
        self, num_embeddings: int, embedding_dim: int, *, dtype: DType = np.float64, rng: RNG = None
    ) -> None:
        super().__init__()
        _check_sizes("Embedding", num_embeddings=num_embeddings, embedding_dim=embedding_dim)
        self.weight = Parameter(_small_normal(_generator(rng), (num_embeddings, embedding_dim), dtype))

    def forward(self, ids: ArrayLike) -> Tensor:
        return self.weight[class_ids(ids, self.weight.shape[0])]

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, {self.weight.shape[1]}"


class Dropout(Module):
    """Inverted dropout: in training, each element is zeroed with probability p and the rest
    are scaled by 1 / (1 - p), so eval (the identity) sees the same expected values.

    p in [0, 1]; p = 1 zeroes everything in training, as PyTorch allows. The masks come from
    `rng`: a Generator (a trainer hands its own, `Dropout(p, rng=gen)` or `layer.rng = gen`,
    also through `model.modules()`), an int seed, or None (fresh entropy); never numpy's
    global state. `dtype` is accepted like every layer's and unused: Dropout has no weights,
    its output has the input's dtype.
    """

    def __init__(self, p: float = 0.5, *, dtype: DType = np.float64, rng: RNG = None) -> None:
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, (int, float, np.floating)) or not 0 <= p <= 1:
            raise ValueError(f"Dropout: p must be a probability in [0, 1], got {p!r}")
        self.p = float(p)
        self.rng = rng

    @property
    def rng(self) -> np.random.Generator:
        return self._rng

    @rng.setter
    def rng(self, rng: RNG) -> None:
        self._rng = _generator(rng)  # an int seeds one Generator here, not one per call

    def forward(self, x: ArrayLike) -> Tensor:
        x = _as_tensor(x, None)
        if not self.training or self.p == 0:
            return x
        if self.p == 1:
            return x * np.zeros(x.shape, x.dtype)
        keep = self._rng.random(x.shape) >= self.p
        return x * (keep / (1 - self.p)).astype(x.dtype)  # one mul: its gradient is the same mask

    def extra_repr(self) -> str:
        return f"p={self.p}"


class LayerNorm(Module):
    """y = (x - mean) / sqrt(var + eps) * weight + bias, mean and (biased) var over the last
    len(normalized_shape) axes; x (..., *normalized_shape). weight starts at ones, bias at
    zeros (PyTorch's); elementwise_affine=False has neither, bias=False no bias. `rng` is
    accepted like every layer's and unused: this initialisation draws nothing.
    """

    def __init__(
        self,
        normalized_shape: Union[int, Sequence[int]],
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        *,
        dtype: DType = np.float64,
        rng: RNG = None,
    ) -> None:
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) else normalized_shape
        self.normalized_shape = tuple(int(n) for n in shape)
        _check_sizes(
            "LayerNorm", **{f"normalized_shape[{i}]": n for i, n in enumerate(self.normalized_shape)}
        )
        if not eps > 0:
            raise ValueError(f"LayerNorm: eps must be > 0, got {eps!r}")
        self.eps, self.elementwise_affine = eps, elementwise_affine
        affine = self.elementwise_affine
        self.weight = Parameter(np.ones(self.normalized_shape, dtype)) if affine else None
        self.bias = Parameter(np.zeros(self.normalized_shape, dtype)) if affine and bias else None

    def forward(self, x: ArrayLike) -> Tensor:
        dtype = None if self.weight is None else self.weight.dtype
        x = _as_tensor(x, dtype)
        k = len(self.normalized_shape)
        if x.shape[x.ndim - k :] != self.normalized_shape or x.ndim < k:
            raise ValueError(
                f"LayerNorm: input {x.shape} must end in normalized_shape {self.normalized_shape}"
            )
        axes = tuple(range(-k, 0))
        centred = x - x.mean(axis=axes, keepdims=True)
        var = (centred * centred).mean(axis=axes, keepdims=True)
        y = centred * (var + self.eps) ** -0.5
        if self.weight is not None:
            y = y * self.weight
        return y if self.bias is None else y + self.bias

    def extra_repr(self) -> str:
        return (
            f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, "
            f"bias={self.bias is not None}"
        )


class Tanh(Module):
    """Elementwise tanh, as a module (for Sequential)."""

    def forward(self, x: ArrayLike) -> Tensor:
        return _as_tensor(x, None).tanh()


class ReLU(Module):
    """Elementwise max(x, 0), as a module (for Sequential)."""

    def forward(self, x: ArrayLike) -> Tensor:
        return _as_tensor(x, None).relu()


class Sigmoid(Module):
    """Elementwise 1 / (1 + exp(-x)), as a module (for Sequential)."""

    def forward(self, x: ArrayLike) -> Tensor:
        return _as_tensor(x, None).sigmoid()
