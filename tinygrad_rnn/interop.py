"""The bridge to PyTorch: `to_torch(module)` and `from_torch(torch_module)`, weights copied.

    twin = to_torch(model)            # a torch.nn module computing what `model` computes
    model = from_torch(twin)          # and back (after training it in PyTorch, say)

Supported, both ways: Linear, Embedding, LayerNorm, Dropout, Tanh, ReLU, Sigmoid, the cells
(RNNCell, LSTMCell, GRUCell), RNN (every cell, any layers, bidirectional, batch_first,
bias, nonlinearity, dropout), Sequential, ModuleList and ModuleDict of supported modules,
and CharRNN, whose twin is `TorchCharRNN` (defined here: the same forward, state layout
and loss). Anything else is a TypeError naming the class. The dtype is kept (float64 ->
torch.float64) and so is the training mode; a Dropout's random masks are each framework's.

Names. Ours are PyTorch's except for the plain tanh/relu cell, which has one hidden bias
`bias_h` where torch has two: torch's `bias_ih` holds it and `bias_hh` is zero (and on the
way back bias_h = bias_ih + bias_hh). The notebook's CharRNN (cell "rnn", one layer) has no
input matrix (its embedding is the seed's Wxh): its twin is `nn.RNN(H, H)` fed by the
embedding, with `rnn.weight_ih_l0` the identity, `rnn.weight_hh_l0` = weight_hh and
`rnn.bias_ih_l0` = bias_h. On the way back whatever PyTorch made of them folds in exactly:
embed.weight = E @ W_ih^T, bias_h = b_ih + b_hh (the embedding is a lookup, so
W_ih e_x + b = (E W_ih^T)[x] + b).

`torch_state_dict(module)` and `state_dict_from_torch(module, arrays)` are that renaming on
numpy arrays alone (no torch needed): what `tinygrad_rnn.export` writes to and reads from
safetensors files. PyTorch is imported only when a function here needs it.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from typing import Any, Callable, Mapping, Optional

import numpy as np
from typing_extensions import TypeGuard

from tinygrad_rnn.layers import (
    RNN,
    CharRNN,
    Dropout,
    Embedding,
    GRUCell,
    LayerNorm,
    Linear,
    LSTMCell,
    Module,
    ModuleDict,
    ModuleList,
    ReLU,
    RNNCell,
    Sequential,
    Sigmoid,
    Tanh,
)

INSTALL_HINT = "pip install torch (or pip install 'tinygrad-rnn[torch]')"
CONTAINERS = (Sequential, ModuleList, ModuleDict)
Entry = tuple[str, Optional[str], np.ndarray]  # (torch's name, ours or None for a constant, array)


def _torch() -> Any:
    """The torch module, or an ImportError that says how to install it."""
    try:
        import torch
    except ImportError:
        raise ImportError(
            f"tinygrad_rnn.interop needs PyTorch, which is not installed: {INSTALL_HINT}"
        ) from None
    return torch


def _is_seed_charrnn(m: Module) -> TypeGuard[CharRNN]:
    return isinstance(m, CharRNN) and m.cell == "rnn" and m.num_layers == 1


def _has_plain_bias(m: Module) -> bool:
    """A module whose plain cell keeps one hidden bias bias_h (torch: bias_ih + bias_hh)."""
    return type(m) is RNNCell or (type(m) is RNN and m.cell == "rnn")


# --- names and arrays, numpy only ------------------------------------------------------------
def _entries(m: Module, prefix: str = "") -> list[Entry]:
    """Every array of m's torch twin: (torch's dotted name, our name or None, the array).

    None marks what the twin has and we do not: a zero bias_hh, the seed model's identity
    weight_ih. TypeError for a module that has no twin.
    """
    _check_supported(m, "to_torch")
    if type(m) in CONTAINERS:
        return [e for name, child in m.named_children() for e in _entries(child, f"{prefix}{name}.")]
    if _is_seed_charrnn(m):
        p, w_hh, b = prefix, m.weight_hh.data, m.bias_h.data
        body: list[Entry] = [
            (p + "rnn.weight_ih_l0", None, np.eye(m.hidden_size, dtype=w_hh.dtype)),
            (p + "rnn.weight_hh_l0", p + "weight_hh", w_hh.copy()),
            (p + "rnn.bias_ih_l0", p + "bias_h", b.copy()),
            (p + "rnn.bias_hh_l0", None, np.zeros_like(b)),
        ]
        return _entries(m.embed, p + "embed.") + body + _entries(m.head, p + "head.")
    if isinstance(m, CharRNN):
        return [
            e for name in ("embed", "rnn", "head") for e in _entries(getattr(m, name), f"{prefix}{name}.")
        ]
    out: list[Entry] = []
    for name, param in m.named_parameters():
        if _has_plain_bias(m) and name.startswith("bias_h"):
            suffix = name[len("bias_h") :]
            out.append((f"{prefix}bias_ih{suffix}", prefix + name, param.data.copy()))
            out.append((f"{prefix}bias_hh{suffix}", None, np.zeros_like(param.data)))
        else:
            out.append((prefix + name, prefix + name, param.data.copy()))
    return out


def torch_names(module: Module) -> dict[str, str]:
    """Our parameter name -> the name of the twin's parameter that holds the same values and,
    after the same backward, the same gradient (the plain cell's bias_h -> bias_ih)."""
    return {ours: theirs for theirs, ours, _ in _entries(module) if ours is not None}


def torch_state_dict(module: Module) -> dict[str, np.ndarray]:
    """module's weights (copies) under the state-dict names of its PyTorch twin (`to_torch`)."""
    return {theirs: a for theirs, _, a in _entries(module)}


def state_dict_from_torch(module: Module, arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A state dict for `module` from arrays under its twin's names (the inverse of
    `torch_state_dict`, folding in what we keep as one array; see the module doc).

    ValueError naming the keys if the names differ from the twin's.
    """
    entries = _entries(module)
    want = {theirs for theirs, _, _ in entries}
    missing, unexpected = sorted(want - set(arrays)), sorted(set(arrays) - want)
    if missing or unexpected:
        raise ValueError(f"state_dict_from_torch: missing keys {missing}, unexpected keys {unexpected}")
    t = {k: np.asarray(v) for k, v in arrays.items()}
    constants = {theirs for theirs, ours, _ in entries if ours is None}
    out = {}
    for theirs, ours, _ in entries:
        if ours is None:
            continue
        value = t[theirs]
        partner = theirs.replace("bias_ih", "bias_hh")  # the plain cell's second bias
        if partner != theirs and partner in constants:
            value = value + t[partner]
        if ours.endswith("embed.weight") and ours[: -len("embed.weight")] + "rnn.weight_ih_l0" in constants:
            value = value @ t[ours[: -len("embed.weight")] + "rnn.weight_ih_l0"].T  # the seed model
        out[ours] = value
    return out


# --- to_torch ------------------------------------------------------------------------------
def _torch_rnn(nn: Any, m: Any) -> Any:
    cls = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[m.cell]
    kw = {"nonlinearity": m.nonlinearity} if m.cell == "rnn" else {}
    dropout = m.dropout if m.num_layers > 1 else 0.0  # torch warns for it with one layer, as we did
    options = dict(bias=m.bias, batch_first=m.batch_first, dropout=dropout, bidirectional=m.bidirectional)
    return cls(m.input_size, m.hidden_size, m.num_layers, **options, **kw)


def _torch_cell(nn: Any, m: Any) -> Any:
    if type(m) is RNNCell:
        return nn.RNNCell(m.input_size, m.hidden_size, m.bias, nonlinearity=m.nonlinearity)
    return {LSTMCell: nn.LSTMCell, GRUCell: nn.GRUCell}[type(m)](m.input_size, m.hidden_size, m.bias)


def _torch_children(m: Module, torch: Any) -> Any:
    children = [(name, _skeleton(child, torch)) for name, child in m.named_children()]
    if type(m) is Sequential:
        return torch.nn.Sequential(OrderedDict(children))
    if type(m) is ModuleList:
        return torch.nn.ModuleList([c for _, c in children])
    return torch.nn.ModuleDict(OrderedDict(children))


# our class -> a builder of its twin (torch, our module) -> torch module, weights not yet copied
_TO_TORCH: dict[type, Callable[[Any, Any], Any]] = {
    Linear: lambda torch, m: torch.nn.Linear(m.in_features, m.out_features, bias=m.bias is not None),
    Embedding: lambda torch, m: torch.nn.Embedding(*m.weight.shape),
    LayerNorm: lambda torch, m: torch.nn.LayerNorm(
        m.normalized_shape, m.eps, m.elementwise_affine, bias=m.bias is not None
    ),
    Dropout: lambda torch, m: torch.nn.Dropout(m.p),
    Tanh: lambda torch, m: torch.nn.Tanh(),
    ReLU: lambda torch, m: torch.nn.ReLU(),
    Sigmoid: lambda torch, m: torch.nn.Sigmoid(),
    RNNCell: lambda torch, m: _torch_cell(torch.nn, m),
    LSTMCell: lambda torch, m: _torch_cell(torch.nn, m),
    GRUCell: lambda torch, m: _torch_cell(torch.nn, m),
    RNN: lambda torch, m: _torch_rnn(torch.nn, m),
    Sequential: lambda torch, m: _torch_children(m, torch),
    ModuleList: lambda torch, m: _torch_children(m, torch),
    ModuleDict: lambda torch, m: _torch_children(m, torch),
    CharRNN: lambda torch, m: _twin_class()(m.vocab_size, m.hidden_size, m.cell, m.num_layers, m.dropout),
}


def _check_supported(m: Any, who: str) -> None:
    if type(m) not in _TO_TORCH:  # by exact class: a subclass may compute something else
        names = ", ".join(sorted(c.__name__ for c in _TO_TORCH))
        raise TypeError(f"{who}: {type(m).__name__} is not supported (supported: {names})")


def _skeleton(m: Module, torch: Any) -> Any:
    _check_supported(m, "to_torch")
    return _TO_TORCH[type(m)](torch, m)


def to_torch(module: Module) -> Any:
    """An equivalent torch.nn module with module's weights copied (same dtype, same mode).

    TypeError naming the class for a module that has no twin (see the module doc).
    """
    torch = _torch()
    twin = _skeleton(module, torch)
    arrays = torch_state_dict(module)
    if arrays:
        dtype = next(iter(arrays.values())).dtype
        twin = twin.to({np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}[dtype])
    twin.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()})
    return twin.train(module.training)


# --- from_torch ----------------------------------------------------------------------------
def _ours_rnn(tm: Any, cell: str, dtype: Any) -> RNN:
    if getattr(tm, "proj_size", 0):
        raise TypeError("from_torch: an LSTM with proj_size > 0 is not supported")
    return RNN(
        tm.input_size,
        tm.hidden_size,
        cell=cell,
        num_layers=tm.num_layers,
        nonlinearity=getattr(tm, "nonlinearity", "tanh"),
        bias=tm.bias,
        batch_first=tm.batch_first,
        dropout=tm.dropout if tm.num_layers > 1 else 0.0,
        bidirectional=tm.bidirectional,
        dtype=dtype,
        rng=0,
    )


def _ours_embedding(tm: Any, dtype: Any) -> Embedding:
    options = {"padding_idx": None, "max_norm": None, "scale_grad_by_freq": False, "sparse": False}
    changed = [k for k, default in options.items() if getattr(tm, k) != default]
    if changed:
        raise TypeError(f"from_torch: an Embedding with {', '.join(changed)} set is not supported")
    return Embedding(tm.num_embeddings, tm.embedding_dim, dtype=dtype, rng=0)


def _ours_children(tm: Any, dtype: Any) -> Module:
    children = [(name, _ours_skeleton(child, dtype)) for name, child in tm.named_children()]
    kind = type(tm).__name__
    if kind == "Sequential":
        return Sequential(OrderedDict(children))
    if kind == "ModuleList":
        return ModuleList([c for _, c in children])
    return ModuleDict(OrderedDict(children))


def _from_torch_table(nn: Any) -> dict[type, Callable[[Any, Any], Module]]:
    """torch's class -> a builder (torch module, numpy dtype) -> our module, weights not yet copied."""
    return {
        nn.Linear: lambda tm, dt: Linear(
            tm.in_features, tm.out_features, tm.bias is not None, dtype=dt, rng=0
        ),
        nn.Embedding: _ours_embedding,
        nn.LayerNorm: lambda tm, dt: LayerNorm(
            tm.normalized_shape, tm.eps, tm.elementwise_affine, tm.bias is not None, dtype=dt
        ),
        nn.Dropout: lambda tm, dt: Dropout(tm.p),
        nn.Tanh: lambda tm, dt: Tanh(),
        nn.ReLU: lambda tm, dt: ReLU(),
        nn.Sigmoid: lambda tm, dt: Sigmoid(),
        nn.RNNCell: lambda tm, dt: RNNCell(tm.input_size, tm.hidden_size, tm.bias, tm.nonlinearity, dtype=dt),
        nn.LSTMCell: lambda tm, dt: LSTMCell(tm.input_size, tm.hidden_size, tm.bias, dtype=dt),
        nn.GRUCell: lambda tm, dt: GRUCell(tm.input_size, tm.hidden_size, tm.bias, dtype=dt),
        nn.RNN: lambda tm, dt: _ours_rnn(tm, "rnn", dt),
        nn.LSTM: lambda tm, dt: _ours_rnn(tm, "lstm", dt),
        nn.GRU: lambda tm, dt: _ours_rnn(tm, "gru", dt),
        nn.Sequential: _ours_children,
        nn.ModuleList: _ours_children,
        nn.ModuleDict: _ours_children,
        _twin_class(): lambda tm, dt: CharRNN(
            tm.vocab_size,
            tm.hidden_size,
            cell=tm.cell,
            num_layers=tm.num_layers,
            dropout=tm.dropout,
            dtype=dt,
        ),
    }


def _ours_skeleton(tm: Any, dtype: Any) -> Module:
    return _from_torch_table(_torch().nn)[type(tm)](tm, dtype)


def _check_torch_supported(tm: Any) -> None:
    """TypeError naming the first module of tm's tree (tm included) we have no module for."""
    table = _from_torch_table(_torch().nn)
    for sub in tm.modules():
        if type(sub) not in table:  # by exact class: a subclass may compute something else
            names = ", ".join(sorted(c.__name__ for c in table))
            raise TypeError(f"from_torch: {type(sub).__name__} is not supported (supported: {names})")


def from_torch(torch_module: Any) -> Module:
    """Our module equivalent to a torch.nn module, weights copied (same dtype, same mode).

    The reverse of `to_torch`; TypeError naming the class for one we have no module for,
    or for parameters that are neither float32 nor float64.
    """
    torch = _torch()
    if not isinstance(torch_module, torch.nn.Module):
        raise TypeError(f"from_torch: expected a torch.nn.Module, got {type(torch_module).__name__}")
    _check_torch_supported(torch_module)
    arrays = {k: v.detach().cpu().numpy() for k, v in torch_module.state_dict().items()}
    dtypes = {a.dtype for a in arrays.values()}
    if not dtypes <= {np.dtype(np.float32), np.dtype(np.float64)} or len(dtypes) > 1:
        raise TypeError(
            f"from_torch: parameters must all be float32 or all float64, got {sorted(map(str, dtypes))}"
        )
    dtype = dtypes.pop() if dtypes else np.float64
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # our RNN's warning for dropout with one layer: torch gave it
        ours = _ours_skeleton(torch_module, dtype)
    ours.load_state_dict(state_dict_from_torch(ours, arrays))
    return ours.train(torch_module.training)


# --- CharRNN's twin ------------------------------------------------------------------------
_TWIN: list[Any] = []  # the class, defined on first use (it needs torch)


def _twin_class() -> Any:
    if not _TWIN:
        _TWIN.append(_define_twin(_torch()))
    return _TWIN[0]


def __getattr__(name: str) -> Any:  # `from tinygrad_rnn.interop import TorchCharRNN`, torch loaded then
    if name == "TorchCharRNN":
        return _twin_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _define_twin(torch: Any) -> Any:
    nn, functional = torch.nn, torch.nn.functional
    base: Any = nn.Module

    class TorchCharRNN(base):
        """CharRNN in PyTorch: embed -> nn.RNN/LSTM/GRU(H, H, num_layers) -> dropout -> head.

        Same forward, loss and state layout as `CharRNN` (h (B, H) for one layer, else
        (num_layers, B, H); (h, c) for the LSTM). For the notebook's model (cell "rnn", one
        layer) `to_torch` sets rnn.weight_ih_l0 to the identity (see the module doc).
        """

        def __init__(
            self,
            vocab_size: int,
            hidden_size: int,
            cell: str = "rnn",
            num_layers: int = 1,
            dropout: float = 0.0,
        ) -> None:
            super().__init__()
            self.vocab_size, self.hidden_size, self.cell = vocab_size, hidden_size, cell
            self.num_layers, self.dropout = num_layers, float(dropout)
            rnn = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell]
            self.embed = nn.Embedding(vocab_size, hidden_size)
            self.rnn = rnn(hidden_size, hidden_size, num_layers, dropout=dropout if num_layers > 1 else 0.0)
            self.drop = nn.Dropout(dropout)
            self.head = nn.Linear(hidden_size, vocab_size)

        def _map_state(self, state: Any, fn: Callable[[Any], Any]) -> Any:
            if state is None or self.num_layers > 1:
                return state  # one layer: ours is (B, H) where torch's is (1, B, H)
            return tuple(fn(s) for s in state) if isinstance(state, tuple) else fn(state)

        def forward(self, inputs: Any, h0: Any = None) -> tuple[Any, Any]:
            """inputs long (T, B), h0 (CharRNN's layout) or None -> logits (T, B, V), last state."""
            out, h = self.rnn(self.embed(inputs), self._map_state(h0, lambda s: s.unsqueeze(0)))
            return self.head(self.drop(out)), self._map_state(h, lambda s: s.squeeze(0))

        @staticmethod
        def cross_entropy(logits: Any, targets: Any) -> Any:
            """Summed over time, averaged over the batch: logits (T, B, V), targets long (T, B)."""
            total = functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="sum"
            )
            return total / targets.shape[1]

        def loss(self, inputs: Any, targets: Any, h0: Any = None) -> tuple[Any, Any]:
            """CharRNN.loss: inputs, targets long (T,) or (T, B) -> (loss, the detached last state)."""
            if inputs.ndim == 1:
                inputs, targets = inputs[:, None], targets[:, None]
            logits, h = self(inputs, h0)
            h = tuple(s.detach() for s in h) if isinstance(h, tuple) else h.detach()
            return self.cross_entropy(logits, targets), h

    TorchCharRNN.__module__, TorchCharRNN.__qualname__ = __name__, "TorchCharRNN"
    return TorchCharRNN
