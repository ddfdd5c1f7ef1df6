"""The contenders of the benchmark: one char-RNN training step each, from the same weights and chunks.

  seed loop   the seed notebook's step: its forward and backward (`reference.bptt`, the
              notebook's lines: column vectors, one-hot matmuls, a softmax per step), the
              clip at 5 and its Adagrad, in numpy; it has no batch, so in a configuration
              with B > 1 it trains one stream (compare chars/s, not ms/step)
  autograd    CharRNN(fused=False) through the engine, clip_grad_value_, Adagrad
  fused       CharRNN(fused=True), the same
  fused numba the same with the fused loops compiled by numba (`kernels.use("numba")`, on
              for its own steps only; skipped when numba is not importable)
  torch       nn.Embedding + nn.RNN + nn.Linear, cross-entropy, clip_grad_value_,
              torch.optim.Adagrad (skipped when torch is not importable); nn.RNN's input
              matrix is set to the identity so that it computes the same function
  lstm autograd, gru autograd
              CharRNN(cell="lstm" | "gru") through the engine (Embedding -> cell -> Linear)
  lstm fused, gru fused
              CharRNN(cell="lstm" | "gru", fused=True): the recurrence is one op
  torch lstm, torch gru
              nn.Embedding + nn.LSTM | nn.GRU + nn.Linear with the same weights (one to one)

JAX and HIPS autograd are in `peers.py`.

Each contender has a `name`, `chars` (characters trained per step) and `step()` (one
training step; returns the chunk's loss). `harness` times them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from tinygrad_rnn import kernels
from tinygrad_rnn.layers import CharRNN
from tinygrad_rnn.optim import Adagrad, clip_grad_value_
from tinygrad_rnn.reference import bptt

CLIP = 5.0  # the seed's gradient clip
LR = 0.1  # the seed's learning rate
CHUNKS = 8  # distinct (inputs, targets) chunks cycled through by every contender
CONTENDER_NAMES = ("seed loop", "autograd", "fused", "fused numba", "torch")
CELL_CONTENDER_NAMES = ("lstm autograd", "lstm fused", "torch lstm", "gru autograd", "gru fused", "torch gru")
GATES = {"rnn": 1, "lstm": 4, "gru": 3}


@dataclass(frozen=True)
class Config:
    """One benchmark setting: batch B, hidden H, vocabulary V, sequence length T, dtype."""

    name: str
    batch: int
    hidden: int
    vocab: int
    seq_len: int
    dtype: Any

    @property
    def flops(self) -> float:
        """Model FLOPs of one training step (matmuls of the recurrence and the output layer)."""
        return 6.0 * self.seq_len * self.batch * self.hidden * (self.hidden + self.vocab)

    def cell_flops(self, cell: str) -> float:
        """Model FLOPs of one step of the Embedding -> cell -> Linear model (see the module doc)."""
        t_b, h = self.seq_len * self.batch, self.hidden
        return 6.0 * t_b * (2 * GATES[cell] * h * h + h * self.vocab)

    def describe(self) -> str:
        dt = np.dtype(self.dtype).name
        return f"B={self.batch}, H={self.hidden}, V={self.vocab}, T={self.seq_len}, {dt}"


CONFIGS = {
    "seed": Config("seed", 1, 64, 22, 25, np.float64),
    "scale": Config("scale", 32, 256, 65, 64, np.float32),
}
# --quick shrinks the scale configuration so that a smoke test runs in seconds
QUICK_SCALE = Config("scale (quick: shrunk)", 4, 32, 65, 16, np.float32)


def _chunks(cfg: Config, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """CHUNKS pairs of (inputs, targets), int64 (T, B), targets shifted by one as in the seed."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(CHUNKS):
        ids = rng.integers(0, cfg.vocab, size=(cfg.seq_len + 1, cfg.batch), dtype=np.int64)
        out.append((ids[:-1].copy(), ids[1:].copy()))
    return out


# --- contender 1: the seed notebook's training step -------------------------------------------
class SeedLoop:
    """The notebook's step: `reference.bptt` (its forward, loss and backward), clip, Adagrad.

    The notebook's `train` loop calls its forward, sums the loss, calls its backward (which
    clips every gradient to [-5, 5]) and `update_params`; `reference.bptt` is that forward,
    loss and backward line for line, so the clip and the update follow here as the notebook
    writes them. The weights come from `p` (the seed's names and shapes) in their dtype.
    """

    name = "seed loop"

    def __init__(self, p: dict[str, np.ndarray], chunks: Sequence[tuple[np.ndarray, np.ndarray]]) -> None:
        self.p = {k: v.copy() for k, v in p.items()}
        self.mem = {k: np.zeros_like(v) for k, v in self.p.items()}  # Adagrad's memory
        # the seed has no batch: it trains the first stream, as lists of ids
        self.data = [(i[:, 0].tolist(), t[:, 0].tolist()) for i, t in chunks]
        self.chars = len(self.data[0][0])
        self.h_prev = np.zeros((p["Whh"].shape[0], 1), p["Whh"].dtype)
        self.i = 0

    def step(self) -> float:
        inputs, targets = self.data[self.i % CHUNKS]
        self.i += 1
        loss, grads, self.h_prev = bptt(self.p, inputs, targets, self.h_prev)
        for k, dparam in grads.items():
            np.clip(dparam, -CLIP, CLIP, out=dparam)
            mem = self.mem[k]
            mem += dparam * dparam
            self.p[k] += -LR * dparam / np.sqrt(mem + 1e-8)
        return loss


# --- contenders 2 and 3: CharRNN through the engine -------------------------------------------
class EngineStep:
    """CharRNN.loss, backward, clip_grad_value_ and Adagrad: the framework's training step."""

    def __init__(self, model: CharRNN, chunks: Sequence[tuple[np.ndarray, np.ndarray]]) -> None:
        self.name = "fused" if model.fused else "autograd"
        if model.cell != "rnn":
            self.name = f"{model.cell} {self.name}"
        self.model, self.chunks = model, list(chunks)
        self.params = model.parameters()
        self.opt = Adagrad(self.params, lr=LR)
        self.chars = self.chunks[0][0].size
        self.h: Any = None
        self.i = 0

    def step(self) -> float:
        inputs, targets = self.chunks[self.i % CHUNKS]
        self.i += 1
        self.opt.zero_grad()
        loss, self.h = self.model.loss(inputs, targets, self.h)
        loss.backward()
        clip_grad_value_(self.params, CLIP)
        self.opt.step()
        return float(loss.item())


class NumbaStep(EngineStep):
    """The fused step with numba's kernels; the switch is global, so each step turns it on and
    gives the previous choice back (the other contenders run numpy's)."""

    def __init__(self, model: CharRNN, chunks: Sequence[tuple[np.ndarray, np.ndarray]]) -> None:
        super().__init__(model, chunks)
        self.name = "fused numba"

    def step(self) -> float:
        with kernels.using("numba"):
            return super().step()


def import_numba() -> Any:
    """The numba module, or None when it cannot be imported."""
    try:
        import numba
    except ImportError:
        return None
    return numba


# --- contender 4: PyTorch ---------------------------------------------------------------------
def import_torch() -> Any:
    """The torch module, or None when it cannot be imported."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def numpy_threads() -> int:
    """Threads numpy's BLAS may use: OPENBLAS/OMP/MKL_NUM_THREADS if set, else the CPU count."""
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        value = os.environ.get(var, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return os.cpu_count() or 1


class TorchStep:
    """nn.Embedding + nn.RNN(tanh) | nn.LSTM | nn.GRU + nn.Linear, summed cross-entropy / B, clip, Adagrad."""

    def __init__(
        self,
        state: dict[str, np.ndarray],
        cfg: Config,
        chunks: Sequence[tuple[np.ndarray, np.ndarray]],
        cell: str = "rnn",
    ) -> None:
        torch = import_torch()
        nn = torch.nn
        self.torch = torch
        self.name = "torch" if cell == "rnn" else f"torch {cell}"
        dtype = torch.float64 if np.dtype(cfg.dtype) == np.float64 else torch.float32
        self.embed = nn.Embedding(cfg.vocab, cfg.hidden, dtype=dtype)
        layer = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell]
        self.rnn = layer(cfg.hidden, cfg.hidden, dtype=dtype)
        self.head = nn.Linear(cfg.hidden, cfg.vocab, dtype=dtype)
        with torch.no_grad():  # the same function and weights as the CharRNN
            self.embed.weight.copy_(torch.from_numpy(state["embed.weight"]))
            if cell == "rnn":  # the seed's model has no input matrix: the identity
                self.rnn.weight_ih_l0.copy_(torch.eye(cfg.hidden, dtype=dtype))
                self.rnn.weight_hh_l0.copy_(torch.from_numpy(state["weight_hh"]))
                self.rnn.bias_ih_l0.copy_(torch.from_numpy(state["bias_h"]))
                self.rnn.bias_hh_l0.zero_()
            else:  # PyTorch's names: rnn.weight_ih_l0, ... one to one
                for name, p in self.rnn.named_parameters():
                    p.copy_(torch.from_numpy(state[f"rnn.{name}"]))
            self.head.weight.copy_(torch.from_numpy(state["head.weight"]))
            self.head.bias.copy_(torch.from_numpy(state["head.bias"]))
        self.params = [*self.embed.parameters(), *self.rnn.parameters(), *self.head.parameters()]
        self.opt = torch.optim.Adagrad(self.params, lr=LR)
        self.chunks = [(torch.from_numpy(i), torch.from_numpy(t).reshape(-1)) for i, t in chunks]
        self.batch, self.vocab = cfg.batch, cfg.vocab
        self.chars = cfg.seq_len * cfg.batch
        self.h: Any = torch.zeros(1, cfg.batch, cfg.hidden, dtype=dtype)
        if cell == "lstm":
            self.h = (self.h, torch.zeros_like(self.h))
        self.i = 0

    def step(self) -> float:
        torch = self.torch
        inputs, targets = self.chunks[self.i % CHUNKS]
        self.i += 1
        self.opt.zero_grad(set_to_none=True)
        out, h = self.rnn(self.embed(inputs), self.h)
        logits = self.head(out).reshape(-1, self.vocab)
        loss = torch.nn.functional.cross_entropy(logits, targets, reduction="sum") / self.batch
        loss.backward()
        torch.nn.utils.clip_grad_value_(self.params, CLIP)
        self.opt.step()
        self.h = tuple(s.detach() for s in h) if isinstance(h, tuple) else h.detach()
        return float(loss.item())


# --- building and timing ----------------------------------------------------------------------
Contender = Any  # SeedLoop | EngineStep | TorchStep: a `name`, `chars` per step and `step()`


def make_contenders(cfg: Config, use_torch: bool = True, seed: int = 0) -> list[Contender]:
    """The contenders for `cfg`, all with the same initial weights and the same chunks."""
    model = CharRNN(cfg.vocab, cfg.hidden, fused=False, dtype=cfg.dtype, rng=seed)
    state = model.state_dict()
    fused = CharRNN(cfg.vocab, cfg.hidden, fused=True, dtype=cfg.dtype, rng=seed)
    fused.load_state_dict(state)
    chunks = _chunks(cfg, seed)
    out: list[Contender] = [
        SeedLoop(model.seed_params(), chunks),
        EngineStep(model, chunks),
        EngineStep(fused, chunks),
    ]
    if import_numba() is not None:
        compiled = CharRNN(cfg.vocab, cfg.hidden, fused=True, dtype=cfg.dtype, rng=seed)
        compiled.load_state_dict(state)
        out.append(NumbaStep(compiled, chunks))
    if use_torch and import_torch() is not None:
        out.append(TorchStep(state, cfg, chunks))
    return out


def make_cell_contenders(cfg: Config, use_torch: bool = True, seed: int = 0) -> list[Contender]:
    """LSTM and GRU char models through the engine (autograd, fused), each followed by its
    PyTorch twin; all three with the same weights."""
    chunks = _chunks(cfg, seed)
    out: list[Contender] = []
    for cell in ("lstm", "gru"):
        model = CharRNN(cfg.vocab, cfg.hidden, cell=cell, dtype=cfg.dtype, rng=seed)
        fused = CharRNN(cfg.vocab, cfg.hidden, fused=True, cell=cell, dtype=cfg.dtype, rng=seed)
        fused.load_state_dict(model.state_dict())
        out += [EngineStep(model, chunks), EngineStep(fused, chunks)]
        if use_torch and import_torch() is not None:
            out.append(TorchStep(model.state_dict(), cfg, chunks, cell))
    return out


def cell_of(name: str) -> str:
    """The cell a contender runs: "lstm" or "gru" when its name says so, else "rnn"."""
    return next((word for word in name.split() if word in ("lstm", "gru")), "rnn")


def torch_twin(name: str) -> str:
    """The PyTorch row a contender's time is compared with: its own cell's."""
    cell = cell_of(name)
    return "torch" if cell == "rnn" else f"torch {cell}"


def first_losses(contenders: Sequence[Contender]) -> dict[str, float]:
    """Each contender's loss on its first step (a check that they compute the same thing)."""
    return {c.name: c.step() for c in contenders}
