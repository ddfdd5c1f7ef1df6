"""`CharRNN`: a character model, embed -> recurrent layers -> output layer, over (T, B) ids.

Two bodies sit between the embedding and the output layer, chosen once at construction:
the seed's single tanh layer (`_SeedBody`, whose input matrix is the embedding itself) or
`RNN`'s stack of any cell (`_StackBody`). Everything else (checks, states, head, loss,
sampling) is one code path.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from tinygrad_rnn.creation import RNG
from tinygrad_rnn.creation import generator as _generator
from tinygrad_rnn.fused import CharRNNLoss
from tinygrad_rnn.init import uniform_
from tinygrad_rnn.layers.basic import Dropout, Embedding, Linear, _linear
from tinygrad_rnn.layers.cells import (
    CELLS,
    RNN,
    RNNCell,
    StateLike,
    _cell_class,
    _check_dropout,
    _check_fused,
    _detach,
    _from_parts,
    _parts,
    _recurrence,
    _state,
    _state_shape,
)
from tinygrad_rnn.layers.module import DType, Module, Parameter, _check_sizes, _small_normal
from tinygrad_rnn.ops import class_ids, softmax_cross_entropy
from tinygrad_rnn.tape import no_grad
from tinygrad_rnn.tensor import ArrayLike, Tensor


class _SeedBody:
    """The seed's recurrent layer: h_t = tanh(embed[x_t] + bias_h + h_{t-1} @ weight_hh.T).

    The embedding is the seed's Wxh @ onehot(x), so there is no other input matrix; the
    parameters weight_hh (H, H) and bias_h (H,) sit on the model (the seed's Whh and bh).
    """

    has_seed_arrays = True  # the seed's Wxh, Whh, bh, Why, by; and its loss as one fused op

    @staticmethod
    def add_params(m: CharRNN, g: np.random.Generator, dtype: DType) -> None:
        m.weight_hh = Parameter(_small_normal(g, (m.hidden_size, m.hidden_size), dtype))
        m.bias_h = Parameter(np.zeros(m.hidden_size, dtype))

    @staticmethod
    def hidden(m: CharRNN, ids: np.ndarray, state: Any) -> tuple[Tensor, Any]:
        """ids int (T, B) -> hidden states (T, B, H), last state."""
        return _recurrence(RNNCell, m.embed.weight[ids] + m.bias_h, state, m.weight_hh, None, m.fused)


class _StackBody:
    """PyTorch's nn.LSTM/GRU/RNN(H, H, num_layers) as `m.rnn` (parameters rnn.weight_ih_l0, ...)."""

    has_seed_arrays = False

    @staticmethod
    def add_params(m: CharRNN, g: np.random.Generator, dtype: DType) -> None:
        h = m.hidden_size
        between = m.dropout if m.num_layers > 1 else 0.0  # dropout between the stacked layers
        m.rnn = RNN(h, h, m.fused, cell=m.cell, num_layers=m.num_layers, dropout=between, dtype=dtype, rng=g)

    @staticmethod
    def hidden(m: CharRNN, ids: np.ndarray, state: Any) -> tuple[Tensor, Any]:
        """ids int (T, B) -> the top layer's hidden states (T, B, H), last state; the first
        layer reads embed.weight's rows through its input matrix (see `RNN._run`)."""
        return m.rnn._layers(m.embed.weight, state, ids)


class CharRNN(Module):
    """A character model: embed -> recurrent layers -> output layer, over (T, B) ids.

    The default (cell="rnn", num_layers=1) is the seed's model: the embedding is the seed's
    Wxh @ onehot(x), so there is no other input matrix. Parameters: embed.weight (V, H),
    weight_hh (H, H), bias_h (H,), head.weight (V, H), head.bias (V,); the seed's Wxh, Whh,
    bh, Why, by (see `seed_params`).
    Any other cell ("lstm", "gru") or num_layers > 1 is PyTorch's nn.Embedding(V, H) ->
    nn.LSTM/GRU/RNN(H, H, num_layers) -> nn.Linear(H, V): embed.weight, rnn.<PyTorch's
    names> (rnn.weight_ih_l0, ...; see `RNN`), head.weight, head.bias. The state is then
    `RNN`'s: (B, H) or (num_layers, B, H), a pair (h, c) of them for the LSTM.
    fused=True: the seed's model runs its whole loss as one op (with dropout > 0 only its
    recurrence, the dropout and the head being ops of their own); a stack of any cell runs
    each layer's recurrence as one op. The parameters are the same either way.
    dropout=p: inverted dropout between the stacked layers (`RNN`'s) and on the top layer's
    outputs before the output layer (a `Dropout` module `drop`), in training mode only;
    masks come from the Generator that drew the weights (set each Dropout's `rng` to hand
    another). dropout=0 adds nothing: the model computes exactly what it did without it.
    init: "notebook" draws every weight from N(0, 0.01) (the seed's); "pytorch" redraws the
    recurrent layers' weights and biases from U(-1/sqrt(H), 1/sqrt(H)) (nn.RNN/LSTM/GRU's).
    """

    weight_hh: Parameter  # the seed's body
    bias_h: Parameter
    rnn: RNN  # a stack's body
    drop: Dropout  # with dropout > 0

    def __init__(
        self,
        vocab_size: int,
        hidden_size: int,
        fused: bool = False,
        *,
        cell: str = "rnn",
        num_layers: int = 1,
        dropout: float = 0.0,
        init: str = "notebook",
        dtype: DType = np.float64,
        rng: RNG = None,
    ) -> None:
        super().__init__()
        if init not in ("notebook", "pytorch"):
            raise ValueError(f"CharRNN: init must be 'notebook' or 'pytorch', not {init!r}")
        cell_class = _cell_class(cell, "CharRNN")
        _check_sizes("CharRNN", vocab_size=vocab_size, hidden_size=hidden_size, num_layers=num_layers)
        if fused:
            _check_fused(cell_class, "CharRNN")
        g = _generator(rng)
        self.vocab_size, self.hidden_size, self.fused = vocab_size, hidden_size, fused
        self.cell, self.num_layers, self.dropout = cell, num_layers, _check_dropout(dropout, "CharRNN")
        self._body = _SeedBody if cell == "rnn" and num_layers == 1 else _StackBody  # the one choice
        self._loss_is_one_op = fused and self._body.has_seed_arrays and self.dropout == 0
        self.embed = Embedding(vocab_size, hidden_size, dtype=dtype, rng=g)
        self._body.add_params(self, g, dtype)
        if init == "pytorch":
            bound = 1 / np.sqrt(hidden_size)
            for name, p in self.named_parameters():
                if not name.startswith("embed."):  # the recurrent layers' (registered so far)
                    uniform_(p, -bound, bound, rng=g)
        self.head = Linear(hidden_size, vocab_size, dtype=dtype, rng=g)
        if self.dropout > 0:
            self.drop = Dropout(self.dropout, rng=g)

    # --- the state -------------------------------------------------------------------------
    def state_shape(self, batch: int) -> tuple[int, ...]:
        """Shape of h (and c): (B, H), or (num_layers, B, H) for a stack."""
        return _state_shape(self.num_layers, batch, self.hidden_size)

    def _h0(self, h0: Optional[StateLike], batch: int) -> Any:
        cell = CELLS[self.cell]
        return _state(cell, h0, self.state_shape(batch), self.head.weight.dtype, "CharRNN")

    def state_array(self, state: Any) -> np.ndarray:
        """The state as one array (a copy): h, or np.stack([h, c]) for the LSTM."""
        parts = [np.array(p.data) for p in _parts(state)]
        return parts[0] if len(parts) == 1 else np.stack(parts)

    def state_array_shape(self, batch: int) -> tuple[int, ...]:
        """Shape of `state_array`: `state_shape(batch)`, with a leading 2 for the LSTM's (h, c)."""
        parts = CELLS[self.cell].state_parts
        return ((parts,) if parts > 1 else ()) + self.state_shape(batch)

    def state_from_array(self, array: np.ndarray, batch: int) -> Any:
        """The inverse of `state_array` for batch size B; ValueError if the shape does not fit."""
        parts = CELLS[self.cell].state_parts
        want = self.state_array_shape(batch)
        if array.shape != want:
            raise ValueError(f"CharRNN: a state array must be {want}, got {array.shape}")
        dtype = self.head.weight.dtype
        arrays = list(array) if parts > 1 else [array]
        return _from_parts([Tensor(np.array(a, dtype=dtype)) for a in arrays])

    # --- forward and loss ------------------------------------------------------------------
    def hidden_states(self, inputs: ArrayLike, h0: Optional[StateLike] = None) -> tuple[Tensor, Any]:
        """inputs int (T, B), h0 or None -> the top layer's hidden states (T, B, H), the last state."""
        ids = class_ids(inputs, self.vocab_size, "inputs")
        if ids.ndim != 2:
            raise ValueError(f"CharRNN: inputs must be (T, B), got shape {ids.shape}")
        return self._body.hidden(self, ids, self._h0(h0, ids.shape[1]))

    def forward(self, inputs: ArrayLike, h0: Optional[StateLike] = None) -> tuple[Tensor, Any]:
        """inputs int (T, B), h0 or None -> logits (T, B, V), last state."""
        hs, h = self.hidden_states(inputs, h0)
        return self._logits(hs), h

    def _logits(self, hs: Tensor) -> Tensor:
        """hidden states (..., H) -> logits (..., V), through the dropout (training mode) if any."""
        if self.dropout > 0:
            hs = self.drop(hs)
        return _linear(hs, self.head.weight, self.head.bias)

    def loss(
        self, inputs: ArrayLike, targets: ArrayLike, h0: Optional[StateLike] = None
    ) -> tuple[Tensor, Any]:
        """Cross-entropy summed over time, averaged over the batch, and the detached last state.

        inputs, targets int (T,) or (T, B); with B = 1 the loss is the seed's.
        """
        ids, tgt = self._loss_ids(inputs, targets)
        h0_t = self._h0(h0, ids.shape[1])
        if self._loss_is_one_op:
            return self._fused_loss(ids, tgt, h0_t)
        hs, h = self._body.hidden(self, ids, h0_t)
        logits = self._logits(hs.reshape(-1, self.hidden_size))
        loss = softmax_cross_entropy(logits, tgt.ravel(), reduction="sum")
        batch = ids.shape[1]
        return (loss if batch == 1 else loss / batch), _detach(h)

    def _loss_ids(self, inputs: ArrayLike, targets: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """inputs and targets as checked int arrays (T, B); a (T,) pair becomes (T, 1)."""
        ids = class_ids(inputs, self.vocab_size, "inputs")
        tgt = class_ids(targets, self.vocab_size, "targets")
        if ids.shape != tgt.shape or ids.ndim not in (1, 2):
            raise ValueError(
                f"CharRNN.loss: inputs {ids.shape} and targets {tgt.shape} must both be (T,) or (T, B)"
            )
        return (ids[:, None], tgt[:, None]) if ids.ndim == 1 else (ids, tgt)

    def _fused_loss(self, ids: np.ndarray, tgt: np.ndarray, h0: Tensor) -> tuple[Tensor, Tensor]:
        """The seed's model's whole loss as one op: (loss, the last hidden state (B, H))."""
        assert self.head.bias is not None  # built with a bias
        params = (self.embed.weight, self.weight_hh, self.bias_h, self.head.weight, self.head.bias)
        loss, h = CharRNNLoss.apply(*params, h0, inputs=ids, targets=tgt)
        return loss, h.detach()

    @no_grad()
    def sample(
        self,
        prime_ids: ArrayLike,
        n: int,
        temperature: float = 1.0,
        rng: RNG = None,
        h0: Optional[StateLike] = None,
        top_k: Optional[int] = None,
    ) -> list[int]:
        """Feed prime_ids (at least one) from h0 (a batch-1 state) or zeros, then draw n ids, each fed back.

        temperature scales the logits (0: always the most likely id); top_k: draw among the
        k most likely ids only (None: all); rng is a Generator or an int seed. Runs in eval
        mode (no dropout, no draw from its Generator), then puts every module's mode back.
        """
        modes = [(m, m.training) for m in self.modules()]
        self.eval()
        try:
            return self._sample(prime_ids, n, temperature, rng, h0, top_k)
        finally:
            for m, training in modes:
                m.training = training

    def _sample(
        self,
        prime_ids: ArrayLike,
        n: int,
        temperature: float,
        rng: RNG,
        h0: Optional[StateLike],
        top_k: Optional[int] = None,
    ) -> list[int]:
        g = _generator(rng)
        ids = class_ids(prime_ids, self.vocab_size, "prime_ids").reshape(-1, 1)
        if ids.size == 0:
            raise ValueError("CharRNN.sample: prime_ids must hold at least one id")
        if not temperature >= 0 or not np.isfinite(temperature):
            raise ValueError(f"CharRNN.sample: temperature must be finite and >= 0, got {temperature}")
        if n < 0:
            raise ValueError(f"CharRNN.sample: n must be >= 0, got {n}")
        if top_k is not None and not (isinstance(top_k, int) and top_k >= 1):
            raise ValueError(f"CharRNN.sample: top_k must be an integer >= 1 or None, got {top_k!r}")
        logits, h = self.forward(ids, h0)
        out: list[int] = []
        for i in range(n):
            z = logits.data[-1, 0].astype(np.float64)
            if temperature == 0:
                nxt = int(np.argmax(z))
            else:
                # shift, then divide: a temperature so small that the quotient overflows (1e-310)
                # gives -inf, never NaN, for all but the largest logits: greedy, as 0 is
                with np.errstate(over="ignore"):
                    z = (z - z.max()) / temperature
                if top_k is not None and top_k < len(z):  # ties at the k-th value stay in
                    z = np.where(z < np.partition(z, -top_k)[-top_k], -np.inf, z)
                p = np.exp(z)
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

    def _check_seed_model(self, who: str) -> None:
        if not self._body.has_seed_arrays:
            raise ValueError(
                f"CharRNN.{who}: only the seed's model (cell='rnn', num_layers=1) has the seed's arrays"
            )

    def seed_params(self) -> dict[str, np.ndarray]:
        """Copies of the parameters in the seed's names and shapes."""
        self._check_seed_model("seed_params")
        return _to_seed(self.state_dict())

    def seed_grads(self) -> dict[str, np.ndarray]:
        """The parameters' gradients in the seed's shapes, keyed like `seed_params` (Wxh, ...)."""
        self._check_seed_model("seed_grads")
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
