"""Layers: `Module` and the recurrent network built from the engine's ops.

A `Module` registers every `Parameter` and sub-`Module` assigned to one of its attributes,
as PyTorch's does. Weights follow PyTorch's layout (`Linear.weight` is (out, in)); sequences
are time-major, (T, B, ...). Initial weights are the seed's (normal * 0.01, zero biases),
drawn from the Generator (or int seed) passed as `rng`, so the same seed gives the same model.

With `fused=True` the recurrence (and the char-RNN's whole loss) runs as one op from
`tinygrad_rnn.fused`; the parameters, and so the state_dict keys, are the same either way.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping, Optional, Union

import numpy as np

from tinygrad_rnn.fused import CharRNNLoss, RNNRecurrence
from tinygrad_rnn.ops import softmax_cross_entropy, stack
from tinygrad_rnn.tape import no_grad
from tinygrad_rnn.tensor import ArrayLike, Tensor

RNG = Union[np.random.Generator, int, None]
DType = Any  # np.float64 or np.float32


def _generator(rng: RNG) -> np.random.Generator:
    """The Generator itself, or a new one seeded with the int (fresh entropy for None)."""
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _small_normal(rng: np.random.Generator, shape: tuple[int, ...], dtype: DType) -> np.ndarray:
    return (rng.standard_normal(shape) * 0.01).astype(dtype)  # the seed's init


class Parameter(Tensor):
    """A Tensor that a Module registers and an optimizer updates: it requires grad."""

    def __init__(self, data: ArrayLike, dtype: DType = None) -> None:
        super().__init__(data, requires_grad=True, dtype=dtype)


class Module:
    """Base class: assign Parameters and Modules as attributes; define `forward`."""

    _children: dict[str, Any]  # name -> Parameter or Module, in registration order

    def __init__(self) -> None:
        object.__setattr__(self, "_children", {})

    def __setattr__(self, name: str, value: Any) -> None:
        children = self.__dict__.get("_children")
        if children is None:
            raise AttributeError(f"{type(self).__name__}: call super().__init__() before assigning {name}")
        if isinstance(value, (Parameter, Module)):
            children[name] = value
        else:
            children.pop(name, None)
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        self._children.pop(name, None)
        object.__delattr__(self, name)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} has no forward")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """(dotted name, parameter) in registration order; a shared parameter appears once."""
        seen: set[int] = set()
        stack: list[tuple[str, Any]] = [(prefix, self)]
        while stack:  # depth first, in registration order
            path, obj = stack.pop()
            if isinstance(obj, Parameter):
                if id(obj) not in seen:
                    seen.add(id(obj))
                    yield path, obj
                continue
            dot = path + "." if path else ""
            stack.extend((dot + name, child) for name, child in reversed(obj._children.items()))

    def parameters(self) -> list[Parameter]:
        return [p for _, p in self.named_parameters()]

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    def state_dict(self) -> dict[str, np.ndarray]:
        """name -> a copy of the parameter's array."""
        return {name: p.data.copy() for name, p in self.named_parameters()}

    def load_state_dict(self, state: Mapping[str, ArrayLike]) -> None:
        """Copy arrays into the parameters (cast to each one's dtype); all names and shapes must match.

        Raises ValueError naming every missing or unexpected key and every wrong shape,
        before any parameter changes.
        """
        params = dict(self.named_parameters())
        missing = [k for k in params if k not in state]
        unexpected = [k for k in state if k not in params]
        if missing or unexpected:
            who = f"load_state_dict: {type(self).__name__}"
            raise ValueError(f"{who}: missing keys {missing}, unexpected keys {unexpected}")
        arrays = {k: np.asarray(v.data if isinstance(v, Tensor) else v) for k, v in state.items()}
        wrong = [
            f"{k}: expected {p.shape}, got {arrays[k].shape}"
            for k, p in params.items()
            if arrays[k].shape != p.shape
        ]
        if wrong:
            raise ValueError(f"load_state_dict: {type(self).__name__}: wrong shapes: {'; '.join(wrong)}")
        for k, p in params.items():
            p.data = np.array(arrays[k], dtype=p.dtype)


def _linear(x: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
    """x (..., in) @ weight.T + bias -> (..., out), as one 2-D matmul over all leading axes."""
    lead = x.shape[:-1]
    y = (x if x.ndim == 2 else x.reshape(-1, x.shape[-1])) @ weight.T
    if bias is not None:
        y = y + bias
    return y if len(lead) == 1 else y.reshape(*lead, weight.shape[0])


def _as_tensor(x: ArrayLike, dtype: DType) -> Tensor:
    """A Tensor passes as it is; an array or list becomes a constant of the model's dtype."""
    return x if isinstance(x, Tensor) else Tensor(x, dtype=dtype)


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
        self.weight = Parameter(_small_normal(_generator(rng), (num_embeddings, embedding_dim), dtype))

    def forward(self, ids: ArrayLike) -> Tensor:
        return self.weight[_ids(ids, self.weight.shape[0])]


def _ids(ids: Any, vocab: int, name: str = "ids") -> np.ndarray:
    """An integer array with every id in [0, vocab) (negative ids would silently wrap)."""
    arr = np.asarray(ids.data if isinstance(ids, Tensor) else ids)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{name} must be integers, not {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() >= vocab):
        raise ValueError(f"{name} must be in [0, {vocab}), got {arr.min()}..{arr.max()}")
    return arr


def _step(xh_t: Tensor, h: Tensor, weight_hh_t: Tensor) -> Tensor:
    """One step: tanh(xh_t + h @ W_hh^T), xh_t the input's share (the seed's Wxh x + bh)."""
    return (xh_t + h @ weight_hh_t).tanh()


def _recurrence(xh: Tensor, weight_hh: Tensor, h0: Tensor, fused: bool) -> tuple[Tensor, Tensor]:
    """All hidden states (T, B, H) and the last (B, H), from xh (T, B, H) and h0 (B, H)."""
    if fused:
        out = RNNRecurrence.apply(xh, weight_hh, h0)
        return out, out[-1]
    w_t = weight_hh.T
    h, hs = h0, []
    for t in range(xh.shape[0]):  # four nodes a step: getitem, matmul, add, tanh
        h = _step(xh[t], h, w_t)
        hs.append(h)
    return stack(hs), h


class RNNCell(Module):
    """h' = tanh(x @ weight_ih.T + h @ weight_hh.T + bias_h); x (B, I), h (B, H) -> h' (B, H)."""

    def __init__(
        self, input_size: int, hidden_size: int, *, dtype: DType = np.float64, rng: RNG = None
    ) -> None:
        super().__init__()
        g = _generator(rng)
        self.hidden_size = hidden_size
        self.weight_ih = Parameter(_small_normal(g, (hidden_size, input_size), dtype))
        self.weight_hh = Parameter(_small_normal(g, (hidden_size, hidden_size), dtype))
        self.bias_h = Parameter(np.zeros(hidden_size, dtype))

    def forward(self, x: ArrayLike, h: Optional[ArrayLike] = None) -> Tensor:
        dtype = self.weight_hh.dtype
        x = _as_tensor(x, dtype)
        h = Tensor(np.zeros((x.shape[0], self.hidden_size), dtype)) if h is None else _as_tensor(h, dtype)
        return _step(_linear(x, self.weight_ih, self.bias_h), h, self.weight_hh.T)


class RNN(Module):
    """One tanh layer unrolled over time: x (T, B, I), h0 (B, H) or None -> out (T, B, H), h_T (B, H).

    Parameters keep PyTorch's per-layer names, with one hidden bias (PyTorch has two whose
    sum plays its role): weight_ih_l0 (H, I), weight_hh_l0 (H, H), bias_h_l0 (H,).
    The input projection of all steps is one matmul; only the recurrence loops.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        fused: bool = False,
        *,
        dtype: DType = np.float64,
        rng: RNG = None,
    ) -> None:
        super().__init__()
        g = _generator(rng)
        self.hidden_size, self.fused = hidden_size, fused
        self.weight_ih_l0 = Parameter(_small_normal(g, (hidden_size, input_size), dtype))
        self.weight_hh_l0 = Parameter(_small_normal(g, (hidden_size, hidden_size), dtype))
        self.bias_h_l0 = Parameter(np.zeros(hidden_size, dtype))

    def forward(self, x: ArrayLike, h0: Optional[ArrayLike] = None) -> tuple[Tensor, Tensor]:
        dtype = self.weight_hh_l0.dtype
        x = _as_tensor(x, dtype)
        if x.ndim != 3:
            raise ValueError(f"RNN: input must be (T, B, input_size), got shape {x.shape}")
        h0 = Tensor(np.zeros((x.shape[1], self.hidden_size), dtype)) if h0 is None else _as_tensor(h0, dtype)
        xh = _linear(x, self.weight_ih_l0, self.bias_h_l0)
        return _recurrence(xh, self.weight_hh_l0, h0, self.fused)


class CharRNN(Module):
    """The seed's character model: embed -> tanh RNN -> output layer, over (T, B) ids.

    The embedding is the seed's Wxh @ onehot(x), so there is no other input matrix.
    Parameters: embed.weight (V, H), weight_hh (H, H), bias_h (H,), head.weight (V, H),
    head.bias (V,); the seed's Wxh, Whh, bh, Why, by (see `seed_params`).
    """

    def __init__(
        self,
        vocab_size: int,
        hidden_size: int,
        fused: bool = False,
        *,
        dtype: DType = np.float64,
        rng: RNG = None,
    ) -> None:
        super().__init__()
        g = _generator(rng)
        self.vocab_size, self.hidden_size, self.fused = vocab_size, hidden_size, fused
        self.embed = Embedding(vocab_size, hidden_size, dtype=dtype, rng=g)
        self.weight_hh = Parameter(_small_normal(g, (hidden_size, hidden_size), dtype))
        self.bias_h = Parameter(np.zeros(hidden_size, dtype))
        self.head = Linear(hidden_size, vocab_size, dtype=dtype, rng=g)

    @property
    def _head_bias(self) -> Parameter:
        assert self.head.bias is not None  # built with a bias
        return self.head.bias

    def _h0(self, h0: Optional[ArrayLike], batch: int) -> Tensor:
        dtype = self.weight_hh.dtype
        if h0 is None:
            return Tensor(np.zeros((batch, self.hidden_size), dtype))
        h0 = _as_tensor(h0, dtype)
        if h0.shape != (batch, self.hidden_size):
            raise ValueError(f"CharRNN: h0 must be ({batch}, {self.hidden_size}), got {h0.shape}")
        return h0

    def hidden_states(self, inputs: ArrayLike, h0: Optional[ArrayLike] = None) -> tuple[Tensor, Tensor]:
        """inputs int (T, B), h0 (B, H) or None -> all hidden states (T, B, H) and the last (B, H)."""
        ids = _ids(inputs, self.vocab_size, "inputs")
        if ids.ndim != 2:
            raise ValueError(f"CharRNN: inputs must be (T, B), got shape {ids.shape}")
        xh = self.embed.weight[ids] + self.bias_h
        return _recurrence(xh, self.weight_hh, self._h0(h0, ids.shape[1]), self.fused)

    def forward(self, inputs: ArrayLike, h0: Optional[ArrayLike] = None) -> tuple[Tensor, Tensor]:
        """inputs int (T, B), h0 (B, H) or None -> logits (T, B, V), last hidden state (B, H)."""
        hs, h = self.hidden_states(inputs, h0)
        return _linear(hs, self.head.weight, self.head.bias), h

    def loss(
        self, inputs: ArrayLike, targets: ArrayLike, h0: Optional[ArrayLike] = None
    ) -> tuple[Tensor, Tensor]:
        """Cross-entropy summed over time, averaged over the batch, and the detached last h (B, H).

        inputs, targets int (T,) or (T, B); with B = 1 the loss is the seed's.
        """
        ids = _ids(inputs, self.vocab_size, "inputs")
        tgt = _ids(targets, self.vocab_size, "targets")
        if ids.shape != tgt.shape or ids.ndim not in (1, 2):
            raise ValueError(
                f"CharRNN.loss: inputs {ids.shape} and targets {tgt.shape} must both be (T,) or (T, B)"
            )
        if ids.ndim == 1:
            ids, tgt = ids[:, None], tgt[:, None]
        batch = ids.shape[1]
        h0_t = self._h0(h0, batch)
        if self.fused:
            h_out = np.empty(h0_t.shape, h0_t.dtype)
            params = (self.embed.weight, self.weight_hh, self.bias_h, self.head.weight, self._head_bias)
            loss = CharRNNLoss.apply(*params, h0_t, inputs=ids, targets=tgt, h_out=h_out)
            return loss, Tensor(h_out)
        hs, h = self.hidden_states(ids, h0_t)
        logits = _linear(hs.reshape(-1, self.hidden_size), self.head.weight, self.head.bias)
        loss = softmax_cross_entropy(logits, tgt.ravel(), reduction="sum")
        return (loss if batch == 1 else loss / batch), h.detach()

    @no_grad()
    def sample(
        self,
        prime_ids: ArrayLike,
        n: int,
        temperature: float = 1.0,
        rng: RNG = None,
        h0: Optional[ArrayLike] = None,
    ) -> list[int]:
        """Feed prime_ids (at least one) from h0 (1, H) or zeros, then draw n ids, each fed back.

        temperature scales the logits (0: always the most likely id); rng is a Generator
        or an int seed.
        """
        g = _generator(rng)
        ids = _ids(prime_ids, self.vocab_size, "prime_ids").reshape(-1, 1)
        if ids.size == 0:
            raise ValueError("CharRNN.sample: prime_ids must hold at least one id")
        if temperature < 0:
            raise ValueError(f"CharRNN.sample: temperature must be >= 0, got {temperature}")
        logits, h = self.forward(ids, h0)
        out: list[int] = []
        for i in range(n):
            z = logits.data[-1, 0].astype(np.float64)
            if temperature == 0:
                nxt = int(np.argmax(z))
            else:
                z = z / temperature
                p = np.exp(z - z.max())
                nxt = int(g.choice(self.vocab_size, p=p / p.sum()))
            out.append(nxt)
            if i + 1 < n:
                logits, h = self.forward(np.array([[nxt]]), h)
        return out

    # --- the seed's names and shapes -------------------------------------------------------
    @classmethod
    def from_seed_params(
        cls, p: dict[str, np.ndarray], fused: bool = False, *, dtype: DType = np.float64
    ) -> CharRNN:
        """A model holding the seed's arrays Wxh (H, V), Whh (H, H), Why (V, H), bh (H, 1), by (V, 1)."""
        hidden, vocab = np.shape(p["Wxh"])
        model = cls(vocab, hidden, fused, dtype=dtype, rng=0)
        model.load_state_dict(_from_seed(p))
        return model

    def seed_params(self) -> dict[str, np.ndarray]:
        """Copies of the parameters in the seed's names and shapes."""
        return _to_seed(self.state_dict())

    def seed_grads(self) -> dict[str, np.ndarray]:
        """The parameters' gradients in the seed's shapes, keyed like `seed_params` (Wxh, ...)."""
        named = dict(self.named_parameters())
        missing = [k for k, p in named.items() if p.grad is None]
        if missing:
            raise RuntimeError(f"CharRNN.seed_grads: no gradient yet for {missing}; run a backward first")
        return _to_seed({k: np.array(p.grad) for k, p in named.items()})


def _to_seed(d: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {
        "Wxh": d["embed.weight"].T.copy(),
        "Whh": d["weight_hh"],
        "Why": d["head.weight"],
        "bh": d["bias_h"][:, None],
        "by": d["head.bias"][:, None],
    }


def _from_seed(p: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {
        "embed.weight": np.asarray(p["Wxh"]).T,
        "weight_hh": np.asarray(p["Whh"]),
        "bias_h": np.asarray(p["bh"]).reshape(-1),
        "head.weight": np.asarray(p["Why"]),
        "head.bias": np.asarray(p["by"]).reshape(-1),
    }
