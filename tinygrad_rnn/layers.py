"""Layers: `Module` and the recurrent network built from the engine's ops.

A `Module` registers every `Parameter` and sub-`Module` assigned to one of its attributes,
as PyTorch's does. Weights follow PyTorch's layout (`Linear.weight` is (out, in)); sequences
are time-major, (T, B, ...). Initial weights are the seed's (normal * 0.01, zero biases),
drawn from the Generator (or int seed) passed as `rng`, so the same seed gives the same model.

Cells (`RNNCell`, `LSTMCell`, `GRUCell`) are one time step each, with PyTorch's equations
and parameter names; `RNN(cell=..., num_layers=...)` and `CharRNN` unroll any of them
through one loop, after one input matmul per layer for all steps.

With `fused=True` the recurrence (and the char-RNN's whole loss) runs as one op from
`tinygrad_rnn.fused`; the parameters, and so the state_dict keys, are the same either way.
Only the plain tanh cell has a fused op.
"""

from __future__ import annotations

from typing import Any, ClassVar, Iterator, Mapping, Optional, Sequence, Union

import numpy as np

from tinygrad_rnn.fused import CharRNNLoss, RNNRecurrence
from tinygrad_rnn.ops import addmm, class_ids, softmax_cross_entropy, stack
from tinygrad_rnn.tape import no_grad
from tinygrad_rnn.tensor import ArrayLike, Tensor

RNG = Union[np.random.Generator, int, None]
DType = Any  # np.float64 or np.float32


def _generator(rng: RNG) -> np.random.Generator:
    """The Generator itself, or a new one seeded with the int (fresh entropy for None)."""
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _check_sizes(who: str, **sizes: int) -> None:
    """Sizes of a layer must be positive integers; say which one is not."""
    for name, n in sizes.items():
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"{who}: {name} must be a positive integer, got {n!r}")


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
    x2 = x if x.ndim == 2 else x.reshape(-1, x.shape[-1])
    y = x2 @ weight.T if bias is None else addmm(bias, x2, weight.T)  # addmm: one node
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


# --- recurrent cells ---------------------------------------------------------------------
# A cell is the math of one time step. The unrolled `RNN` (and `CharRNN`) call a cell's
# static `step` with the input's share of the pre-activations already computed for all
# steps (one matmul per layer before the loop), so every cell runs through one loop.
State = Union[Tensor, tuple[Tensor, Tensor]]  # h (B, H), or (h, c) for the LSTM
StateLike = Union[ArrayLike, tuple[ArrayLike, ArrayLike]]


class _Cell(Module):
    """Base of the cells: parameters named by `param_shapes`, one time step in `step`.

    x (B, I), state (or None: zeros) -> the next state; the state is h (B, H), or the
    pair (h, c) when `state_parts` is 2.
    """

    gates: ClassVar[int]  # blocks of H rows in weight_ih and weight_hh
    state_parts: ClassVar[int] = 1
    bias_names: ClassVar[tuple[str, ...]] = ("bias_ih", "bias_hh")

    def __init__(
        self, input_size: int, hidden_size: int, *, dtype: DType = np.float64, rng: RNG = None
    ) -> None:
        super().__init__()
        _check_sizes(type(self).__name__, input_size=input_size, hidden_size=hidden_size)
        self.input_size, self.hidden_size = input_size, hidden_size
        _add_params(self, type(self), input_size, hidden_size, "", _generator(rng), dtype)

    @classmethod
    def param_shapes(cls, input_size: int, hidden_size: int) -> list[tuple[str, tuple[int, ...]]]:
        """PyTorch's names and shapes, in PyTorch's order: weight_ih, weight_hh, then the biases."""
        rows = cls.gates * hidden_size
        weights = [("weight_ih", (rows, input_size)), ("weight_hh", (rows, hidden_size))]
        return weights + [(name, (rows,)) for name in cls.bias_names]

    @staticmethod
    def step(xw: Tensor, state: Any, weight_hh_t: Tensor, bias_hh: Optional[Tensor]) -> Any:
        """The next state from xw = x @ weight_ih.T + bias_ih (B, gates*H) and the state."""
        raise NotImplementedError

    @staticmethod
    def output(state: Any) -> Tensor:
        """The hidden state h (B, H) that a cell's state holds (what the next layer sees)."""
        return state

    @staticmethod
    def input_share(xw: Tensor, bias_hh: Optional[Tensor]) -> tuple[Tensor, Optional[Tensor]]:
        """(xw, bias_hh) as `step` gets them; a cell whose bias_hh only adds to xw folds it in
        here, once for all steps, and passes None on."""
        return xw, bias_hh

    def forward(self, x: ArrayLike, h: Optional[StateLike] = None) -> Any:
        """x (B, I), h: the state (h, or the pair (h, c)) or None for zeros -> the next state."""
        w_ih, w_hh, b_ih, b_hh = _weights(self, type(self), "")
        x = _as_tensor(x, w_hh.dtype)
        shape = (x.shape[0], self.hidden_size)
        s = _state(type(self), h, shape, w_hh.dtype, type(self).__name__)
        xw, b_hh = self.input_share(_linear(x, w_ih, b_ih), b_hh)
        return self.step(xw, s, w_hh.T, b_hh)


class RNNCell(_Cell):
    """h' = tanh(x @ weight_ih.T + h @ weight_hh.T + bias_h); x (B, I), h (B, H) -> h' (B, H).

    One hidden bias where PyTorch's RNNCell has two (bias_ih + bias_hh play its role).
    """

    gates = 1
    bias_names = ("bias_h",)
    weight_ih: Parameter
    weight_hh: Parameter
    bias_h: Parameter

    @staticmethod
    def step(xw: Tensor, state: Any, weight_hh_t: Tensor, bias_hh: Optional[Tensor]) -> Tensor:
        """tanh(xw + h @ W_hh^T), xw the input's share (the seed's Wxh x + bh); bias_hh is None."""
        return addmm(xw, state, weight_hh_t).tanh()  # addmm(c, a, b) = c + a @ b, one node


class LSTMCell(_Cell):
    """PyTorch's LSTMCell: (x (B, I), (h, c) (B, H) each) -> (h', c'); gates in the order i, f, g, o.

    i, f, o = sigmoid(.), g = tanh(.) of x @ weight_ih.T + bias_ih + h @ weight_hh.T + bias_hh
    (split in four blocks of H columns); c' = f * c + i * g; h' = o * tanh(c').
    Parameters: weight_ih (4H, I), weight_hh (4H, H), bias_ih (4H,), bias_hh (4H,).
    """

    gates = 4
    state_parts = 2
    weight_ih: Parameter
    weight_hh: Parameter
    bias_ih: Parameter
    bias_hh: Parameter

    @staticmethod
    def input_share(xw: Tensor, bias_hh: Optional[Tensor]) -> tuple[Tensor, Optional[Tensor]]:
        """bias_hh adds to every step's gates: it joins xw once (one op, not one a step)."""
        return (xw, None) if bias_hh is None else (xw + bias_hh, None)

    @staticmethod
    def step(xw: Tensor, state: Any, weight_hh_t: Tensor, bias_hh: Optional[Tensor]) -> tuple[Tensor, Tensor]:
        h, c = state
        gates = addmm(xw, h, weight_hh_t)
        if bias_hh is not None:  # not folded into xw by `input_share`
            gates = gates + bias_hh
        i, f, g, o = gates.chunk(4, axis=1)
        c = f.sigmoid() * c + i.sigmoid() * g.tanh()
        return o.sigmoid() * c.tanh(), c

    @staticmethod
    def output(state: Any) -> Tensor:
        return state[0]


class GRUCell(_Cell):
    """PyTorch's GRUCell: x (B, I), h (B, H) -> h' (B, H); gates in the order r, z, n.

    With a = x @ weight_ih.T + bias_ih and b = h @ weight_hh.T + bias_hh, each split in
    three blocks of H columns: r = sigmoid(a_r + b_r), z = sigmoid(a_z + b_z),
    n = tanh(a_n + r * b_n) (r gates weight_hh's term and its bias), h' = (1 - z) * n + z * h.
    Parameters: weight_ih (3H, I), weight_hh (3H, H), bias_ih (3H,), bias_hh (3H,).
    """

    gates = 3
    weight_ih: Parameter
    weight_hh: Parameter
    bias_ih: Parameter
    bias_hh: Parameter

    @staticmethod
    def step(xw: Tensor, state: Any, weight_hh_t: Tensor, bias_hh: Optional[Tensor]) -> Tensor:
        h = state
        assert bias_hh is not None  # it cannot join xw: r gates it
        x_r, x_z, x_n = xw.chunk(3, axis=1)
        h_r, h_z, h_n = addmm(bias_hh, h, weight_hh_t).chunk(3, axis=1)
        r = (x_r + h_r).sigmoid()
        z = (x_z + h_z).sigmoid()
        n = (x_n + r * h_n).tanh()
        return n + z * (h - n)  # (1 - z) * n + z * h


CELLS: dict[str, type[_Cell]] = {"rnn": RNNCell, "lstm": LSTMCell, "gru": GRUCell}


def _cell_class(cell: str, who: str) -> type[_Cell]:
    if cell not in CELLS:
        raise ValueError(f"{who}: cell must be one of {', '.join(map(repr, CELLS))}, not {cell!r}")
    return CELLS[cell]


def _add_params(
    m: Module,
    cell: type[_Cell],
    input_size: int,
    hidden_size: int,
    suffix: str,
    g: np.random.Generator,
    dtype: DType,
) -> None:
    """Register one layer's parameters on m as `<name><suffix>`: weights drawn, biases zero."""
    for name, shape in cell.param_shapes(input_size, hidden_size):
        data = _small_normal(g, shape, dtype) if name.startswith("weight") else np.zeros(shape, dtype)
        setattr(m, name + suffix, Parameter(data))


def _weights(m: Module, cell: type[_Cell], suffix: str) -> tuple[Tensor, Tensor, Tensor, Optional[Tensor]]:
    """One layer's (weight_ih, weight_hh, bias_ih, bias_hh or None) registered on m."""
    ps = [getattr(m, name + suffix) for name, _ in cell.param_shapes(1, 1)]
    return ps[0], ps[1], ps[2], (ps[3] if len(ps) > 3 else None)


def _parts(state: Any) -> tuple[Tensor, ...]:
    """A state's tensors: (h,) or (h, c)."""
    return state if isinstance(state, tuple) else (state,)


def _from_parts(parts: Sequence[Tensor]) -> Any:
    """The inverse of `_parts`: h alone, or the pair (h, c)."""
    return parts[0] if len(parts) == 1 else (parts[0], parts[1])


def _state(
    cell: type[_Cell], state: Optional[StateLike], shape: tuple[int, ...], dtype: DType, who: str
) -> Any:
    """The state as Tensors of `shape` (zeros for None): h, or the pair (h, c) for the LSTM."""
    if state is None:
        return _from_parts([Tensor(np.zeros(shape, dtype)) for _ in range(cell.state_parts)])
    given = state if isinstance(state, (tuple, list)) else (state,)
    if len(given) != cell.state_parts:
        want = "a pair (h0, c0)" if cell.state_parts == 2 else "one tensor h0"
        raise ValueError(f"{who}: the state must be {want}, got {len(given)} tensors")
    parts = [_as_tensor(s, dtype) for s in given]
    for part in parts:
        if part.shape != shape:
            raise ValueError(f"{who}: h0 must be {shape}, got {part.shape}")
        if part.dtype != dtype:  # it would silently turn the whole recurrence into its dtype
            raise ValueError(f"{who}: h0 must be {np.dtype(dtype).name} like the model, got {part.dtype}")
    return _from_parts(parts)


def _detach(state: Any) -> Any:
    """The state cut from the tape (truncated BPTT: the next chunk starts from it)."""
    return _from_parts([p.detach() for p in _parts(state)])


def _recurrence(
    cell: type[_Cell], xw: Tensor, state: Any, weight_hh: Tensor, bias_hh: Optional[Tensor], fused: bool
) -> tuple[Tensor, Any]:
    """All hidden states (T, B, H) and the last state, from xw (T, B, gates*H) and the first state.

    xw holds x @ weight_ih.T + bias_ih of every step; `fused` (the plain tanh cell only) runs
    the whole loop as one op.
    """
    if fused:
        out = RNNRecurrence.apply(xw, weight_hh, state)
        return out, out[-1]
    xw, bias_hh = cell.input_share(xw, bias_hh)
    w_t = weight_hh.T
    hs = []
    for xw_t in xw.unbind(0):  # one node takes the steps apart; the plain cell adds two a step
        state = cell.step(xw_t, state, w_t, bias_hh)
        hs.append(cell.output(state))
    return stack(hs), state


class RNN(Module):
    """A stack of cells unrolled over time: x (T, B, I), h0 or None -> out (T, B, H), h_T.

    cell: "rnn" (tanh), "lstm" or "gru"; num_layers: cells stacked, each layer's outputs the
    next one's inputs. The state h0 / h_T is (B, H) for one layer and (num_layers, B, H)
    for a stack (PyTorch's h_n); for the LSTM it is a pair (h, c) of those. Parameters keep
    PyTorch's names per layer k: weight_ih_lk, weight_hh_lk, bias_ih_lk, bias_hh_lk; the
    plain cell has one hidden bias bias_h_lk instead of the two (PyTorch's sum).
    The input projection of all steps is one matmul per layer; only the recurrence loops.
    fused=True runs each layer's recurrence as one op (cell "rnn" only; ValueError otherwise).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        fused: bool = False,
        *,
        cell: str = "rnn",
        num_layers: int = 1,
        dtype: DType = np.float64,
        rng: RNG = None,
    ) -> None:
        super().__init__()
        self.cell_class = _cell_class(cell, "RNN")
        _check_sizes("RNN", input_size=input_size, hidden_size=hidden_size, num_layers=num_layers)
        if fused and self.cell_class is not RNNCell:
            raise ValueError(f"RNN: fused=True is only for cell='rnn', not {cell!r}")
        g = _generator(rng)
        self.hidden_size, self.fused, self.cell, self.num_layers = hidden_size, fused, cell, num_layers
        self.dtype = np.dtype(dtype)
        for k in range(num_layers):
            _add_params(
                self, self.cell_class, input_size if k == 0 else hidden_size, hidden_size, f"_l{k}", g, dtype
            )

    def state_shape(self, batch: int) -> tuple[int, ...]:
        """Shape of h (and c): (B, H) for one layer, (num_layers, B, H) for a stack."""
        lead = (self.num_layers,) if self.num_layers > 1 else ()
        return (*lead, batch, self.hidden_size)

    def forward(self, x: ArrayLike, h0: Optional[StateLike] = None) -> tuple[Tensor, Any]:
        dtype = self.dtype
        x = _as_tensor(x, dtype)
        if x.ndim != 3:
            raise ValueError(f"RNN: input must be (T, B, input_size), got shape {x.shape}")
        state = _state(self.cell_class, h0, self.state_shape(x.shape[1]), dtype, "RNN")
        if self.num_layers == 1:
            return self._layer(0, x, state)
        last = []
        for k in range(self.num_layers):  # layer k starts from h0[k] (and c0[k])
            x, s = self._layer(k, x, _from_parts([p[k] for p in _parts(state)]))
            last.append(_parts(s))
        return x, _from_parts([stack(list(p)) for p in zip(*last)])

    def _layer(self, k: int, x: Tensor, state: Any) -> tuple[Tensor, Any]:
        w_ih, w_hh, b_ih, b_hh = _weights(self, self.cell_class, f"_l{k}")
        return _recurrence(self.cell_class, _linear(x, w_ih, b_ih), state, w_hh, b_hh, self.fused)


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
    fused=True: the seed's model runs its whole loss as one op, a plain-rnn stack each
    layer's recurrence; for "lstm" and "gru" it is a ValueError.
    """

    def __init__(
        self,
        vocab_size: int,
        hidden_size: int,
        fused: bool = False,
        *,
        cell: str = "rnn",
        num_layers: int = 1,
        dtype: DType = np.float64,
        rng: RNG = None,
    ) -> None:
        super().__init__()
        cell_class = _cell_class(cell, "CharRNN")
        _check_sizes("CharRNN", vocab_size=vocab_size, hidden_size=hidden_size, num_layers=num_layers)
        if fused and cell_class is not RNNCell:
            raise ValueError(f"CharRNN: fused=True is only for cell='rnn', not {cell!r}")
        g = _generator(rng)
        self.vocab_size, self.hidden_size, self.fused = vocab_size, hidden_size, fused
        self.cell, self.num_layers = cell, num_layers
        self.embed = Embedding(vocab_size, hidden_size, dtype=dtype, rng=g)
        self.rnn: Optional[RNN] = None
        if cell == "rnn" and num_layers == 1:  # the seed's model
            self.weight_hh = Parameter(_small_normal(g, (hidden_size, hidden_size), dtype))
            self.bias_h = Parameter(np.zeros(hidden_size, dtype))
        else:
            self.rnn = RNN(
                hidden_size, hidden_size, fused, cell=cell, num_layers=num_layers, dtype=dtype, rng=g
            )
        self.head = Linear(hidden_size, vocab_size, dtype=dtype, rng=g)

    @property
    def _head_bias(self) -> Parameter:
        assert self.head.bias is not None  # built with a bias
        return self.head.bias

    def state_shape(self, batch: int) -> tuple[int, ...]:
        """Shape of h (and c): (B, H), or (num_layers, B, H) for a stack."""
        return (batch, self.hidden_size) if self.rnn is None else self.rnn.state_shape(batch)

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

    def hidden_states(self, inputs: ArrayLike, h0: Optional[StateLike] = None) -> tuple[Tensor, Any]:
        """inputs int (T, B), h0 or None -> the top layer's hidden states (T, B, H), the last state."""
        ids = class_ids(inputs, self.vocab_size, "inputs")
        if ids.ndim != 2:
            raise ValueError(f"CharRNN: inputs must be (T, B), got shape {ids.shape}")
        return self._hidden(ids, self._h0(h0, ids.shape[1]))

    def _hidden(self, ids: np.ndarray, state: Any) -> tuple[Tensor, Any]:
        """hidden_states for checked ids (T, B) and a state already made by `_h0`."""
        if self.rnn is not None:
            return self.rnn(self.embed.weight[ids], state)
        xh = self.embed.weight[ids] + self.bias_h
        return _recurrence(RNNCell, xh, state, self.weight_hh, None, self.fused)

    def forward(self, inputs: ArrayLike, h0: Optional[StateLike] = None) -> tuple[Tensor, Any]:
        """inputs int (T, B), h0 or None -> logits (T, B, V), last state."""
        hs, h = self.hidden_states(inputs, h0)
        return _linear(hs, self.head.weight, self.head.bias), h

    def loss(
        self, inputs: ArrayLike, targets: ArrayLike, h0: Optional[StateLike] = None
    ) -> tuple[Tensor, Any]:
        """Cross-entropy summed over time, averaged over the batch, and the detached last state.

        inputs, targets int (T,) or (T, B); with B = 1 the loss is the seed's.
        """
        ids = class_ids(inputs, self.vocab_size, "inputs")
        tgt = class_ids(targets, self.vocab_size, "targets")
        if ids.shape != tgt.shape or ids.ndim not in (1, 2):
            raise ValueError(
                f"CharRNN.loss: inputs {ids.shape} and targets {tgt.shape} must both be (T,) or (T, B)"
            )
        if ids.ndim == 1:
            ids, tgt = ids[:, None], tgt[:, None]
        batch = ids.shape[1]
        h0_t = self._h0(h0, batch)
        if self.fused and self.rnn is None:
            params = (self.embed.weight, self.weight_hh, self.bias_h, self.head.weight, self._head_bias)
            loss, h = CharRNNLoss.apply(*params, h0_t, inputs=ids, targets=tgt)
            return loss, h.detach()
        hs, h = self._hidden(ids, h0_t)
        logits = _linear(hs.reshape(-1, self.hidden_size), self.head.weight, self.head.bias)
        loss = softmax_cross_entropy(logits, tgt.ravel(), reduction="sum")
        return (loss if batch == 1 else loss / batch), _detach(h)

    @no_grad()
    def sample(
        self,
        prime_ids: ArrayLike,
        n: int,
        temperature: float = 1.0,
        rng: RNG = None,
        h0: Optional[StateLike] = None,
    ) -> list[int]:
        """Feed prime_ids (at least one) from h0 (a batch-1 state) or zeros, then draw n ids, each fed back.

        temperature scales the logits (0: always the most likely id); rng is a Generator
        or an int seed.
        """
        g = _generator(rng)
        ids = class_ids(prime_ids, self.vocab_size, "prime_ids").reshape(-1, 1)
        if ids.size == 0:
            raise ValueError("CharRNN.sample: prime_ids must hold at least one id")
        if not temperature >= 0 or not np.isfinite(temperature):
            raise ValueError(f"CharRNN.sample: temperature must be finite and >= 0, got {temperature}")
        if n < 0:
            raise ValueError(f"CharRNN.sample: n must be >= 0, got {n}")
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

    def _check_seed_model(self, who: str) -> None:
        if self.rnn is not None:
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
