"""Small layers: `Linear` and `Embedding`.

Weights follow PyTorch's layout (`Linear.weight` is (out, in)). Initial weights are the
seed's (normal * 0.01, zero biases), drawn from the Generator (or int seed) passed as `rng`.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from tinygrad_rnn.layers.module import (
    RNG,
    DType,
    Module,
    Parameter,
    _as_tensor,
    _check_sizes,
    _generator,
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

    def forward(self, x: ArrayLike) -> Tensor:
        return _linear(_as_tensor(x, self.weight.dtype), self.weight, self.bias)


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
