"""Recurrent cells (`RNNCell`, `LSTMCell`, `GRUCell`), the recurrence that unrolls them, and `RNN`.

Cells are one time step each, with PyTorch's equations and parameter names; `RNN(cell=...,
num_layers=...)` (and `CharRNN`) unroll any of them through one loop, after one input
matmul per layer for all steps, with PyTorch's options (nonlinearity, bias, batch_first,
dropout, bidirectional). With `fused=True` the recurrence runs as one op from
`tinygrad_rnn.fused` (`FUSED`: the tanh cell, the LSTM and the GRU); the parameters are the
same either way, and every other option works around the op (a reversed direction flips
its input and output), so only nonlinearity="relu", which has no fused op, is refused.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, ClassVar, Optional, Sequence, Union

import numpy as np

from tinygrad_rnn.creation import RNG
from tinygrad_rnn.creation import generator as _generator
from tinygrad_rnn.fused import GRURecurrence, LSTMRecurrence, RNNRecurrence
from tinygrad_rnn.layers.basic import Dropout, _linear
from tinygrad_rnn.layers.module import (
    DType,
    Module,
    Parameter,
    _as_tensor,
    _check_sizes,
    _small_normal,
)
from tinygrad_rnn.ops import addmm, concat, stack
from tinygrad_rnn.tensor import ArrayLike, Tensor

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
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        *,
        dtype: DType = np.float64,
        rng: RNG = None,
    ) -> None:
        super().__init__()
        _check_sizes(type(self).__name__, input_size=input_size, hidden_size=hidden_size)
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bool(bias)
        _add_params(self, type(self), input_size, hidden_size, "", _generator(rng), dtype, self.bias)

    @classmethod
    def param_shapes(
        cls, input_size: int, hidden_size: int, bias: bool = True
    ) -> list[tuple[str, tuple[int, ...]]]:
        """PyTorch's names and shapes, in PyTorch's order: weight_ih, weight_hh, then the biases."""
        rows = cls.gates * hidden_size
        weights = [("weight_ih", (rows, input_size)), ("weight_hh", (rows, hidden_size))]
        return weights + [(name, (rows,)) for name in cls.bias_names if bias]

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")

    @staticmethod
    def step(xw: Tensor, state: Any, weight_hh_t: Tensor, bias_hh: Optional[Tensor]) -> Any:
        """The next state from xw = x @ weight_ih.T + bias_ih (B, gates*H) and the state."""
        raise NotImplementedError

    @staticmethod
    def output(state: Any) -> Tensor:
        """The hidden state h (B, H) that a cell's state holds (what the next layer sees)."""
        return state

    @staticmethod
    def input_bias(
        bias_ih: Optional[Tensor], bias_hh: Optional[Tensor]
    ) -> tuple[Optional[Tensor], Optional[Tensor]]:
        """(the bias of the input matmul, the bias_hh that `step` gets); a cell whose bias_hh
        only adds to the gates folds it into the input's bias, once, and passes None on."""
        return bias_ih, bias_hh

    @property
    def kind(self) -> type[_Cell]:
        """The class whose static math this cell runs: its own (RNNCell's relu differs)."""
        return type(self)

    def forward(self, x: ArrayLike, h: Optional[StateLike] = None) -> Any:
        """x (B, I), h: the state (h, or the pair (h, c)) or None for zeros -> the next state."""
        kind = self.kind
        w_ih, w_hh, b_ih, b_hh = _weights(self, kind, "")
        x = _as_tensor(x, w_hh.dtype)
        shape = (x.shape[0], self.hidden_size)
        s = _state(kind, h, shape, w_hh.dtype, type(self).__name__)
        b_in, b_hh = kind.input_bias(b_ih, b_hh)
        return kind.step(_linear(x, w_ih, b_in), s, w_hh.T, b_hh)


class RNNCell(_Cell):
    """h' = tanh(x @ weight_ih.T + h @ weight_hh.T + bias_h); x (B, I), h (B, H) -> h' (B, H).

    One hidden bias where PyTorch's RNNCell has two (bias_ih + bias_hh play its role).
    nonlinearity="relu" (PyTorch's option) puts max(., 0) in place of tanh.
    """

    gates = 1
    bias_names = ("bias_h",)
    weight_ih: Parameter
    weight_hh: Parameter
    bias_h: Parameter

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        nonlinearity: str = "tanh",
        *,
        dtype: DType = np.float64,
        rng: RNG = None,
    ) -> None:
        _check_nonlinearity(nonlinearity, "RNNCell")
        super().__init__(input_size, hidden_size, bias, dtype=dtype, rng=rng)
        self.nonlinearity = nonlinearity

    @property
    def kind(self) -> type[_Cell]:
        return _ReLURNNCell if self.nonlinearity == "relu" else type(self)

    def extra_repr(self) -> str:
        relu = self.nonlinearity == "relu"
        return super().extra_repr() + (", nonlinearity='relu'" if relu else "")

    @staticmethod
    def step(xw: Tensor, state: Any, weight_hh_t: Tensor, bias_hh: Optional[Tensor]) -> Tensor:
        """tanh(xw + h @ W_hh^T), xw the input's share (the seed's Wxh x + bh); bias_hh is None."""
        return addmm(xw, state, weight_hh_t).tanh()  # addmm(c, a, b) = c + a @ b, one node


class _ReLURNNCell(RNNCell):
    """RNNCell's step with nonlinearity="relu": h' = max(xw + h @ W_hh^T, 0). The recurrence
    runs it as `RNN(nonlinearity="relu")`'s cell; an RNNCell reaches it through `kind`."""

    @staticmethod
    def step(xw: Tensor, state: Any, weight_hh_t: Tensor, bias_hh: Optional[Tensor]) -> Tensor:
        return addmm(xw, state, weight_hh_t).relu()


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
    def input_bias(
        bias_ih: Optional[Tensor], bias_hh: Optional[Tensor]
    ) -> tuple[Optional[Tensor], Optional[Tensor]]:
        """bias_hh adds to every step's gates: it joins bias_ih, so the input matmul's addmm
        adds both at once (no op over all steps' gates, none a step)."""
        if bias_ih is None or bias_hh is None:
            return (bias_hh if bias_ih is None else bias_ih), None
        return bias_ih + bias_hh, None

    @staticmethod
    def step(xw: Tensor, state: Any, weight_hh_t: Tensor, bias_hh: Optional[Tensor]) -> tuple[Tensor, Tensor]:
        h, c = state
        gates = addmm(xw, h, weight_hh_t)
        if bias_hh is not None:  # not folded into the input's bias by `input_bias`
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
        h = state  # bias_hh cannot join xw: r gates it
        hw = h @ weight_hh_t if bias_hh is None else addmm(bias_hh, h, weight_hh_t)
        x_r, x_z, x_n = xw.chunk(3, axis=1)
        h_r, h_z, h_n = hw.chunk(3, axis=1)
        r = (x_r + h_r).sigmoid()
        z = (x_z + h_z).sigmoid()
        n = (x_n + r * h_n).tanh()
        return n + z * (h - n)  # (1 - z) * n + z * h


CELLS: dict[str, type[_Cell]] = {"rnn": RNNCell, "lstm": LSTMCell, "gru": GRUCell}


NONLINEARITIES = ("tanh", "relu")


def _check_nonlinearity(nonlinearity: str, who: str) -> None:
    if not isinstance(nonlinearity, str) or nonlinearity not in NONLINEARITIES:
        raise ValueError(f"{who}: nonlinearity must be 'tanh' or 'relu', not {nonlinearity!r}")


def _cell_class(cell: str, who: str, nonlinearity: str = "tanh") -> type[_Cell]:
    """The class whose static math runs a layer of `cell` (relu: only for the plain cell, as torch)."""
    if cell not in CELLS:
        raise ValueError(f"{who}: cell must be one of {', '.join(map(repr, CELLS))}, not {cell!r}")
    _check_nonlinearity(nonlinearity, who)
    if nonlinearity == "relu":
        if cell != "rnn":
            raise ValueError(f"{who}: nonlinearity='relu' is only for cell='rnn', not {cell!r}")
        return _ReLURNNCell
    return CELLS[cell]


def _add_params(
    m: Module,
    cell: type[_Cell],
    input_size: int,
    hidden_size: int,
    suffix: str,
    g: np.random.Generator,
    dtype: DType,
    bias: bool = True,
) -> None:
    """Register one layer's parameters on m as `<name><suffix>`: weights drawn, biases zero
    (or None with bias=False, as PyTorch's)."""
    for name, shape in cell.param_shapes(input_size, hidden_size):
        if name.startswith("weight"):
            setattr(m, name + suffix, Parameter(_small_normal(g, shape, dtype)))
        else:
            setattr(m, name + suffix, Parameter(np.zeros(shape, dtype)) if bias else None)


def _weights(
    m: Module, cell: type[_Cell], suffix: str
) -> tuple[Tensor, Tensor, Optional[Tensor], Optional[Tensor]]:
    """One layer's (weight_ih, weight_hh, bias_ih or None, bias_hh or None) registered on m."""
    ps = [getattr(m, name + suffix) for name, _ in cell.param_shapes(1, 1)]
    return ps[0], ps[1], ps[2], (ps[3] if len(ps) > 3 else None)


def _state_shape(num_layers: int, batch: int, hidden_size: int) -> tuple[int, ...]:
    """Shape of h (and c): (B, H) for one layer, (num_layers, B, H) for a stack (PyTorch's h_n)."""
    return (batch, hidden_size) if num_layers == 1 else (num_layers, batch, hidden_size)


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


def _fused_rnn(xw: Tensor, state: Any, weight_hh: Tensor, bias_hh: Optional[Tensor]) -> tuple[Tensor, Any]:
    out = RNNRecurrence.apply(xw, weight_hh, state)  # bias_hh is None: the plain cell's is in xw
    return out, out[-1]


def _fused_lstm(xw: Tensor, state: Any, weight_hh: Tensor, bias_hh: Optional[Tensor]) -> tuple[Tensor, Any]:
    if bias_hh is not None:  # the layers fold it into xw (`LSTMCell.input_bias`); a caller may not
        xw = xw + bias_hh
    out, c = LSTMRecurrence.apply(xw, weight_hh, *state)
    return out, (out[-1], c)


def _fused_gru(xw: Tensor, state: Any, weight_hh: Tensor, bias_hh: Optional[Tensor]) -> tuple[Tensor, Any]:
    if bias_hh is None:  # bias=False: the op adds zeros, which get no gradient
        bias_hh = Tensor(np.zeros(weight_hh.shape[0], weight_hh.dtype))
    out = GRURecurrence.apply(xw, weight_hh, bias_hh, state)
    return out, out[-1]


# The ops of `tinygrad_rnn.fused` that run a cell's whole recurrence as one node:
# (xw = x @ weight_ih.T + the input's bias (T, B, gates*H), first state, weight_hh, bias_hh
# or None, as `input_bias` splits the biases) -> (all h (T, B, H), last state). A cell
# listed here is accepted with fused=True by RNN and CharRNN; `_recurrence` handles the
# reversed direction around it.
FUSED: dict[type[_Cell], Callable[[Tensor, Any, Tensor, Optional[Tensor]], tuple[Tensor, Any]]] = {
    RNNCell: _fused_rnn,
    LSTMCell: _fused_lstm,
    GRUCell: _fused_gru,
}


def _check_fused(cell: type[_Cell], who: str) -> None:
    if cell not in FUSED:  # by identity: the relu variant of RNNCell has no fused op
        what = "nonlinearity='relu'" if cell is _ReLURNNCell else f"cell={_cell_name(cell)!r}"
        raise ValueError(f"{who}: fused=True has no op for {what} (only tanh for cell='rnn')")


def _cell_name(cell: type[_Cell]) -> str:
    return next((name for name, c in CELLS.items() if issubclass(cell, c)), cell.__name__)


def _recurrence(
    cell: type[_Cell],
    xw: Tensor,
    state: Any,
    weight_hh: Tensor,
    bias_hh: Optional[Tensor],
    fused: bool,
    reverse: bool = False,
) -> tuple[Tensor, Any]:
    """All hidden states (T, B, H) and the last state, from xw (T, B, gates*H) and the first state.

    xw holds x @ weight_ih.T + the input's bias (`_Cell.input_bias`) of every step. The one
    place that picks the fused op (`FUSED[cell]`, the whole loop as one node) or the
    unrolled loop. reverse=True runs from the last step to the first (a bidirectional
    layer's second direction); the outputs stay in time order and the last state is the
    one after step 0.
    """
    if fused:
        if not reverse:
            return FUSED[cell](xw, state, weight_hh, bias_hh)
        out, state = FUSED[cell](xw[::-1], state, weight_hh, bias_hh)
        return out[::-1], state
    w_t = weight_hh.T
    hs = []
    steps = xw.unbind(0)  # one node takes the steps apart; the plain cell adds two a step
    for xw_t in reversed(steps) if reverse else steps:
        state = cell.step(xw_t, state, w_t, bias_hh)
        hs.append(cell.output(state))
    return stack(hs[::-1] if reverse else hs), state


def _check_dropout(p: float, who: str) -> float:
    """p as a float in [0, 1] (PyTorch's rule), or a clear ValueError."""
    ok = isinstance(p, (int, float, np.integer, np.floating)) and not isinstance(p, bool)
    if not ok or not 0 <= p <= 1:
        raise ValueError(f"{who}: dropout must be a probability in [0, 1], got {p!r}")
    return float(p)


class RNN(Module):
    """A stack of cells unrolled over time: x (T, B, I), h0 or None -> out (T, B, D*H), h_T.

    PyTorch's nn.RNN/LSTM/GRU options; D = 2 with bidirectional=True, else 1.
    cell: "rnn", "lstm" or "gru"; nonlinearity: "tanh" or "relu" (cell "rnn" only).
    num_layers: cells stacked, each layer's outputs the next one's inputs (D*H of them).
    bias=False: no bias parameters. batch_first=True: x (B, T, I) and out (B, T, D*H);
    the state keeps its layout. dropout=p: inverted dropout on the outputs of every layer
    but the last, in training mode only (a `Dropout` module `drop`, its masks drawn from
    the Generator that drew the weights; set `rnn.drop.rng` to hand another).
    bidirectional=True: each layer also runs over reversed time with its own parameters
    (suffix `_reverse`); out[t] = [forward h_t, reverse h_t] (PyTorch's layout).
    The state h0 / h_T is (B, H) for one layer and one direction, else (num_layers*D, B, H)
    ordered layer 0, layer 0 reverse, layer 1, ... (PyTorch's h_n); for the LSTM a pair
    (h, c) of those. Parameters keep PyTorch's names per layer k: weight_ih_lk,
    weight_hh_lk, bias_ih_lk, bias_hh_lk (and *_lk_reverse); the plain cell has one hidden
    bias bias_h_lk instead of the two (PyTorch's sum).
    The input projection of all steps is one matmul per layer and direction; only the
    recurrence loops. fused=True runs each layer's recurrence in each direction as one op,
    for every cell (nonlinearity="relu" has none: ValueError); every other option works
    around it, and the parameters are the same.
    """

    drop: Dropout  # with dropout > 0

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        fused: bool = False,
        *,
        cell: str = "rnn",
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        dtype: DType = np.float64,
        rng: RNG = None,
    ) -> None:
        super().__init__()
        self.cell_class = _cell_class(cell, "RNN", nonlinearity)
        _check_sizes("RNN", input_size=input_size, hidden_size=hidden_size, num_layers=num_layers)
        if fused:
            _check_fused(self.cell_class, "RNN")
        self.dropout = _check_dropout(dropout, "RNN")
        if self.dropout > 0 and num_layers == 1:
            warnings.warn(
                "RNN: dropout acts on the outputs of every layer but the last, so dropout="
                f"{dropout} with num_layers=1 does nothing (as in PyTorch)",
                UserWarning,
                stacklevel=2,
            )
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.fused, self.cell, self.nonlinearity, self.bias = fused, cell, nonlinearity, bool(bias)
        self.batch_first, self.bidirectional = bool(batch_first), bool(bidirectional)
        self.num_directions = 2 if self.bidirectional else 1
        self.dtype = np.dtype(dtype)
        g = _generator(rng)
        for i in range(num_layers * self.num_directions):  # PyTorch's order: l0, l0_reverse, l1, ...
            n_in = input_size if i < self.num_directions else hidden_size * self.num_directions
            _add_params(self, self.cell_class, n_in, hidden_size, self._suffix(i), g, dtype, self.bias)
        if self.dropout > 0:
            self.drop = Dropout(self.dropout, rng=g)

    def state_shape(self, batch: int) -> tuple[int, ...]:
        """Shape of h (and c): (B, H) for one layer and direction, else (num_layers*D, B, H)."""
        return _state_shape(self.num_layers * self.num_directions, batch, self.hidden_size)

    def forward(self, x: ArrayLike, h0: Optional[StateLike] = None) -> tuple[Tensor, Any]:
        """x (T, B, I) (batch_first: (B, T, I)), h0 or None -> out (T, B, D*H) (or (B, T, D*H)), h_T."""
        x = _as_tensor(x, self.dtype)
        if x.ndim != 3 or x.shape[2] != self.input_size:
            layout = "(B, T, input_size)" if self.batch_first else "(T, B, input_size)"
            raise ValueError(
                f"RNN: input must be {layout} with input_size {self.input_size}, got shape {x.shape}"
            )
        if self.batch_first:
            x = x.transpose(1, 0, 2)
        state = _state(self.cell_class, h0, self.state_shape(x.shape[1]), self.dtype, "RNN")
        out, last = self._layers(x, state)
        return (out.transpose(1, 0, 2) if self.batch_first else out), last

    def extra_repr(self) -> str:
        defaults = {"num_layers": 1, "nonlinearity": "tanh", "bias": True, "batch_first": False}
        defaults.update(dropout=0.0, bidirectional=False, fused=False)
        options = [f"cell={self.cell!r}"] if self.cell != "rnn" else []
        options += [f"{k}={getattr(self, k)!r}" for k, v in defaults.items() if getattr(self, k) != v]
        return ", ".join([str(self.input_size), str(self.hidden_size), *options])

    def _suffix(self, i: int) -> str:
        """Parameter suffix of layer i // D in direction i % D: _lk or _lk_reverse."""
        k, reverse = divmod(i, self.num_directions)
        return f"_l{k}" + ("_reverse" if reverse else "")

    def _layers(self, x: Tensor, state: Any, ids: Optional[np.ndarray] = None) -> tuple[Tensor, Any]:
        """x (T, B, I) through every layer and direction -> out (T, B, D*H), the last state.

        With ids int (T, B), x is a table (N, I) and the first layer's inputs are x[ids].
        """
        n, dirs = self.num_layers * self.num_directions, self.num_directions
        if n == 1:
            return self._run(0, x, state, ids)
        firsts = [_from_parts([p[i] for p in _parts(state)]) for i in range(n)]  # h0[i] (and c0[i])
        lasts = []
        for k in range(self.num_layers):
            if k > 0 and self.dropout > 0:
                x = self.drop(x)  # the identity in eval mode
            outs = []
            for i in range(k * dirs, (k + 1) * dirs):
                out, last = self._run(i, x, firsts[i], ids if k == 0 else None)
                outs.append(out)
                lasts.append(_parts(last))
            x = outs[0] if dirs == 1 else concat(outs, axis=2)
        return x, _from_parts([stack(list(p)) for p in zip(*lasts)])

    def _run(self, i: int, x: Tensor, state: Any, ids: Optional[np.ndarray] = None) -> tuple[Tensor, Any]:
        """Layer i // D in direction i % D over x (T, B, in) -> its outputs (T, B, H), last state.

        With ids int (T, B), the inputs are the rows x[ids] of a table x (N, in). When the
        table has far fewer rows than the sequence (a character set), its rows are projected
        first and then looked up: (x @ W.T)[ids] is x[ids] @ W.T with N rows of work, not T*B
        (from half as many rows on: at N close to T*B the lookup's backward costs more than
        the rows it saves, 2-3% of the seed's LSTM step).
        """
        w_ih, w_hh, b_ih, b_hh = _weights(self, self.cell_class, self._suffix(i))
        reverse = i % self.num_directions == 1
        b_in, b_hh = self.cell_class.input_bias(b_ih, b_hh)
        if ids is None or 2 * x.shape[0] > ids.size:
            xw = _linear(x if ids is None else x[ids], w_ih, b_in)
        else:
            xw = _linear(x, w_ih, b_in)[ids]
        return _recurrence(self.cell_class, xw, state, w_hh, b_hh, self.fused, reverse)
