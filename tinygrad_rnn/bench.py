"""Benchmarks: training steps of one char-RNN, timed side by side in one process.

    python benchmarks/bench_rnn.py            # the full run (a few minutes)
    python benchmarks/bench_rnn.py --quick    # tiny settings: checks that everything runs

Contenders, all starting from the same weights and fed the same chunks:

  seed loop   the seed notebook's step as written (column vectors, one-hot matmuls, a
              softmax per step, clip at 5, Adagrad), in numpy; it has no batch, so in a
              configuration with B > 1 it trains one stream (compare chars/s, not ms/step)
  autograd    CharRNN(fused=False) through the engine, clip_grad_value_, Adagrad
  fused       CharRNN(fused=True), the same
  torch       nn.Embedding + nn.RNN + nn.Linear, cross-entropy, clip_grad_value_,
              torch.optim.Adagrad (skipped when torch is not importable); nn.RNN's input
              matrix is set to the identity so that it computes the same function
  lstm autograd, gru autograd
              CharRNN(cell="lstm" | "gru") through the engine (Embedding -> cell -> Linear)
  torch lstm, torch gru
              nn.Embedding + nn.LSTM | nn.GRU + nn.Linear with the same weights (one to one)

In the main tables, "time vs torch" compares each LSTM/GRU row with its PyTorch twin.

Timing interleaves the contenders round-robin (the starting contender rotates every round)
and reports medians over rounds. Peak memory is what tracemalloc sees during one step
beyond what was allocated before it; torch's allocator is invisible to tracemalloc, so its
memory is "n/a". Model FLOPs per step are 6*T*B*H*(H+V) (forward, and backward through the
recurrence and the output layer; elementwise work and the seed's one-hot products are not
counted), 6*T*B*(2*G*H*H + H*V) for a cell with G gates (input and recurrent matmuls),
compared with a large numpy matmul of the same dtype.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import os
import pstats
import statistics
import sys
import time
import tracemalloc
from dataclasses import dataclass, replace
from typing import Any, Callable, Optional, Sequence

import numpy as np

from tinygrad_rnn.layers import CharRNN
from tinygrad_rnn.optim import Adagrad, clip_grad_value_

CLIP = 5.0  # the seed's gradient clip
LR = 0.1  # the seed's learning rate
CHUNKS = 8  # distinct (inputs, targets) chunks cycled through by every contender
CONTENDER_NAMES = ("seed loop", "autograd", "fused", "torch")
CELL_CONTENDER_NAMES = ("lstm autograd", "torch lstm", "gru autograd", "torch gru")
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


# --- contender 1: the seed notebook's training step, as written ------------------------------
def _softmax(x: np.ndarray) -> np.ndarray:
    e_x = np.exp(x - np.max(x))
    return e_x / np.sum(e_x)


class SeedLoop:
    """The seed notebook's RNN.forward / backward / update_params and the loss line of `train`.

    Only two changes: the arrays it creates get the configuration's dtype (the notebook's
    are float64), and the weights come from `p` (the seed's names and shapes).
    """

    name = "seed loop"

    def __init__(self, p: dict[str, np.ndarray], chunks: Sequence[tuple[np.ndarray, np.ndarray]]) -> None:
        self.Wxh, self.Whh, self.Why = (p[k].copy() for k in ("Wxh", "Whh", "Why"))
        self.bh, self.by = p["bh"].copy(), p["by"].copy()
        self.dtype = self.Wxh.dtype
        self.hidden_size, self.vocab_size = self.Wxh.shape
        self.mWxh, self.mWhh, self.mWhy = (
            np.zeros_like(self.Wxh),
            np.zeros_like(self.Whh),
            np.zeros_like(self.Why),
        )
        self.mbh, self.mby = np.zeros_like(self.bh), np.zeros_like(self.by)
        # the seed has no batch: it trains the first stream, as lists of ids
        self.data = [(i[:, 0].tolist(), t[:, 0].tolist()) for i, t in chunks]
        self.chars = len(self.data[0][0])
        self.h_prev = np.zeros((self.hidden_size, 1), self.dtype)
        self.i = 0

    def forward(self, inputs: list[int], h_prev: np.ndarray) -> tuple[dict, dict, dict, dict]:
        xs: dict[int, np.ndarray] = {}
        hs: dict[int, np.ndarray] = {}
        ys: dict[int, np.ndarray] = {}
        ps: dict[int, np.ndarray] = {}
        hs[-1] = np.copy(h_prev)
        for t in range(len(inputs)):
            xs[t] = np.zeros((self.vocab_size, 1), self.dtype)
            xs[t][inputs[t]] = 1
            hs[t] = np.tanh(np.dot(self.Wxh, xs[t]) + np.dot(self.Whh, hs[t - 1]) + self.bh)
            ys[t] = np.dot(self.Why, hs[t]) + self.by
            ps[t] = _softmax(ys[t])
        return xs, hs, ys, ps

    def backward(
        self, inputs: list[int], targets: list[int], xs: dict, hs: dict, ps: dict
    ) -> list[np.ndarray]:
        dWxh, dWhh, dWhy = np.zeros_like(self.Wxh), np.zeros_like(self.Whh), np.zeros_like(self.Why)
        dbh, dby = np.zeros_like(self.bh), np.zeros_like(self.by)
        dhnext = np.zeros_like(hs[0])
        for t in reversed(range(len(inputs))):
            dy = np.copy(ps[t])
            dy[targets[t]] -= 1
            dWhy += np.dot(dy, hs[t].T)
            dby += dy
            dh = np.dot(self.Why.T, dy) + dhnext
            dhraw = (1 - hs[t] * hs[t]) * dh
            dbh += dhraw
            dWxh += np.dot(dhraw, xs[t].T)
            dWhh += np.dot(dhraw, hs[t - 1].T)
            dhnext = np.dot(self.Whh.T, dhraw)
        for dparam in [dWxh, dWhh, dWhy, dbh, dby]:
            np.clip(dparam, -CLIP, CLIP, out=dparam)
        return [dWxh, dWhh, dWhy, dbh, dby]

    def update_params(self, grads: list[np.ndarray]) -> None:
        for param, dparam, mem in zip(
            [self.Wxh, self.Whh, self.Why, self.bh, self.by],
            grads,
            [self.mWxh, self.mWhh, self.mWhy, self.mbh, self.mby],
        ):
            mem += dparam * dparam
            param += -LR * dparam / np.sqrt(mem + 1e-8)

    def step(self) -> float:
        inputs, targets = self.data[self.i % CHUNKS]
        self.i += 1
        xs, hs, ys, ps = self.forward(inputs, self.h_prev)
        loss = 0.0
        for t in range(len(inputs)):
            loss += -np.log(ps[t][targets[t], 0])
        grads = self.backward(inputs, targets, xs, hs, ps)
        self.update_params(grads)
        self.h_prev = hs[len(inputs) - 1]
        return float(loss)


# --- contenders 2 and 3: CharRNN through the engine -------------------------------------------
class EngineStep:
    """CharRNN.loss, backward, clip_grad_value_ and Adagrad: the framework's training step."""

    def __init__(self, model: CharRNN, chunks: Sequence[tuple[np.ndarray, np.ndarray]]) -> None:
        self.name = "fused" if model.fused else "autograd"
        if model.cell != "rnn":
            self.name = f"{model.cell} autograd"
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


# --- contender 4: PyTorch ---------------------------------------------------------------------
def _torch() -> Any:
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
        torch = _torch()
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
    if use_torch and _torch() is not None:
        out.append(TorchStep(state, cfg, chunks))
    return out


def make_cell_contenders(cfg: Config, use_torch: bool = True, seed: int = 0) -> list[Contender]:
    """LSTM and GRU char models through the engine, each followed by its PyTorch twin (same weights)."""
    chunks = _chunks(cfg, seed)
    out: list[Contender] = []
    for cell in ("lstm", "gru"):
        model = CharRNN(cfg.vocab, cfg.hidden, cell=cell, dtype=cfg.dtype, rng=seed)
        out.append(EngineStep(model, chunks))
        if use_torch and _torch() is not None:
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


def interleaved(
    contenders: Sequence[Contender], steps: int, rounds: int, warmup: int
) -> dict[str, list[float]]:
    """Seconds per step of each contender in every round; the contenders take turns."""
    for c in contenders:
        for _ in range(warmup):
            c.step()
    times: dict[str, list[float]] = {c.name: [] for c in contenders}
    n = len(contenders)
    gc.collect()
    gc.freeze()  # the garbage collector stays on, but no longer walks torch's many objects
    for r in range(rounds):
        for c in [*contenders[r % n :], *contenders[: r % n]]:
            t0 = time.perf_counter()
            for _ in range(steps):
                c.step()
            times[c.name].append((time.perf_counter() - t0) / steps)
    return times


def peak_bytes(step: Callable[[], Any]) -> int:
    """Peak bytes tracemalloc sees during one call of `step`, beyond what was live before it."""
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        step()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def matmul_gflops(dtype: Any, n: int = 1024, repeat: int = 5) -> float:
    """GFLOP/s of an (n, n) @ (n, n) numpy matmul: the machine's practical peak for `dtype`."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n)).astype(dtype), rng.standard_normal((n, n)).astype(dtype)
    out = a @ b
    best = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        np.matmul(a, b, out=out)
        best.append(time.perf_counter() - t0)
    return 2.0 * n**3 / statistics.median(best) / 1e9


# --- reports ----------------------------------------------------------------------------------
def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown pipe table, padded to read well in a terminal too."""
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), sep, *[line(r) for r in rows]])


def paired_ratio(times: dict[str, list[float]], chars: dict[str, int], a: str, b: str) -> Optional[float]:
    """Time per character of `a` relative to `b`: the median over rounds of each round's ratio.

    The rounds interleave the contenders, so the two times of a round were taken seconds
    apart and a drift in the machine's speed (other tenants of a shared host) cancels out.
    None if either contender did not run.
    """
    if a not in times or b not in times:
        return None
    return statistics.median((ta / chars[a]) / (tb / chars[b]) for ta, tb in zip(times[a], times[b]))


def _ratio(r: Optional[float]) -> str:
    return "-" if r is None else f"{r:.2f}x"


def _mib(n: Optional[int]) -> str:
    return "n/a" if n is None else f"{n / 2**20:.3f}"


def main_table(cfg: Config, args: argparse.Namespace, out: Any) -> None:
    """Time the contenders on `cfg` and print ms/step, chars/s, peak memory, ratios, GFLOP/s."""
    use_torch = not args.no_torch
    contenders = make_contenders(cfg, use_torch, args.seed) + make_cell_contenders(cfg, use_torch, args.seed)
    losses = first_losses(contenders)
    times = interleaved(contenders, args.steps, args.rounds, args.warmup)
    peak = matmul_gflops(cfg.dtype, n=args.matmul_n)
    med = {name: statistics.median(t) for name, t in times.items()}
    chars = {c.name: c.chars for c in contenders}
    rows = []
    for c in contenders:
        mem = None if c.name.startswith("torch") else peak_bytes(c.step)
        ts = times[c.name]
        cell = cell_of(c.name)
        flops = cfg.flops if cell == "rnn" else cfg.cell_flops(cell)
        gflops = flops * (c.chars / (cfg.seq_len * cfg.batch)) / med[c.name] / 1e9
        rows.append(
            [
                c.name,
                f"{c.chars}",
                f"{med[c.name] * 1e3:.3f}",
                f"{min(ts) * 1e3:.3f}-{max(ts) * 1e3:.3f}",
                f"{c.chars / med[c.name]:,.0f}",
                _mib(mem),
                _ratio(paired_ratio(times, chars, c.name, "seed loop")),
                _ratio(paired_ratio(times, chars, c.name, torch_twin(c.name))),
                f"{gflops:.2f} ({100 * gflops / peak:.1f}%)",
            ]
        )
    header = [
        "contender",
        "chars/step",
        "ms/step",
        "range",
        "chars/s",
        "peak MiB",
        "time vs seed",
        "time vs torch",
        "GFLOP/s (% of matmul)",
    ]
    print(f"\n## {cfg.name} config ({cfg.describe()})\n", file=out)
    print(_table(header, rows), file=out)
    families = {"rnn": [k for k in CONTENDER_NAMES if k != "seed loop" or cfg.batch == 1]}
    families.update({cell: [f"{cell} autograd", f"torch {cell}"] for cell in ("lstm", "gru")})
    spread = 0.0
    for names in families.values():
        same = [losses[k] for k in names if k in losses]
        spread = max(spread, (max(same) - min(same)) / max(abs(min(same)), 1e-30))
    print(
        f"\nmedian of {args.rounds} rounds x {args.steps} steps; 'time vs' = time per character "
        "relative to that row's in the same round, median over rounds (< 1 is faster); numpy "
        f"{np.dtype(cfg.dtype).name} matmul "
        f"{args.matmul_n}^2: {peak:.1f} GFLOP/s; first-step losses agree to {spread:.1e} (relative; "
        "within each cell's rows)",
        file=out,
    )


def scaling_table(base: Config, axis: str, values: Sequence[int], args: argparse.Namespace, out: Any) -> None:
    """ms/step of every contender as one dimension (seq_len or hidden) of `base` grows."""
    rows, names = [], None
    for v in values:
        cfg = replace(base, seq_len=v) if axis == "seq_len" else replace(base, hidden=v)
        contenders = make_contenders(cfg, use_torch=not args.no_torch, seed=args.seed)
        names = [c.name for c in contenders]
        times = interleaved(contenders, args.scaling_steps, args.rounds, args.warmup)
        rows.append([str(v)] + [f"{statistics.median(times[n]) * 1e3:.3f}" for n in names])
    label = {"seq_len": "T", "hidden": "H"}[axis]
    print(f"\n## ms/step as {label} grows ({base.describe().replace(f'{label}=', f'{label}*=')})\n", file=out)
    print(_table([label, *(names or [])], rows), file=out)


def memory_checks(args: argparse.Namespace, out: Any) -> None:
    """Peak memory of one step against T (linear?), and live memory over a long run (flat?)."""
    base = replace(CONFIGS["seed"], seq_len=args.memory_t[0])
    rows = []
    for name in ("seed loop", "autograd", "fused"):
        peaks = []
        for t in args.memory_t:
            c = next(c for c in make_contenders(replace(base, seq_len=t), False, args.seed) if c.name == name)
            c.step()
            peaks.append(peak_bytes(c.step))
        t_vals = np.array(args.memory_t, float)
        slope, icept = np.polyfit(t_vals, peaks, 1)
        resid = max(abs(p - (slope * t + icept)) for p, t in zip(peaks, t_vals)) / max(peaks)
        rows.append([name, *[_mib(p) for p in peaks], f"{slope / 1024:.2f}", f"{100 * resid:.1f}%"])
    ts = [f"T={t} MiB" for t in args.memory_t]
    print(f"\n## peak memory of one step against T ({base.describe().replace('T=', 'T*=')})\n", file=out)
    print(_table(["contender", *ts, "KiB per extra char", "max deviation from linear"], rows), file=out)

    rows = []
    for c in make_contenders(CONFIGS["seed"], False, args.seed):
        warm = max(1, args.memory_steps // 100)
        gc.collect()
        tracemalloc.start()
        try:
            for _ in range(warm):
                c.step()
            gc.collect()
            after_warm = tracemalloc.get_traced_memory()[0]
            high = after_warm
            for i in range(args.memory_steps - warm):
                c.step()
                if i % 100 == 0:
                    high = max(high, tracemalloc.get_traced_memory()[0])
            gc.collect()
            end = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        rows.append(
            [
                c.name,
                f"{after_warm / 1024:.1f}",
                f"{max(high, end) / 1024:.1f}",
                f"{end / 1024:.1f}",
                f"{(end - after_warm) / 1024:+.1f}",
            ]
        )
    print(f"\n## live memory over {args.memory_steps} training steps (seed config)\n", file=out)
    header = [
        "contender",
        f"after {max(1, args.memory_steps // 100)} steps KiB",
        "highest KiB",
        "at the end KiB",
        "growth KiB",
    ]
    print(_table(header, rows), file=out)


def profile(name: str, cfg: Config, args: argparse.Namespace, out: Any, top: int = 25) -> None:
    """cProfile `args.steps` steps of one contender and print the top functions by own time."""
    use_torch = name.startswith("torch")
    contenders = make_contenders(cfg, use_torch, args.seed) + make_cell_contenders(cfg, use_torch, args.seed)
    c = next((c for c in contenders if c.name == name), None)
    if c is None:
        raise SystemExit(f"bench: no contender {name!r} (is torch installed?)")
    for _ in range(args.warmup):
        c.step()
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(args.steps):
        c.step()
    prof.disable()
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf)
    calls = sum(v[1] for v in stats.stats.values())  # type: ignore[attr-defined]
    stats.sort_stats("tottime").print_stats(top)
    print(
        f"\n## profile of {name} on the {cfg.name} config: {calls / args.steps:.0f} calls per step\n",
        file=out,
    )
    print(buf.getvalue(), file=out)


def machine(out: Any, use_torch: bool) -> None:
    """What the numbers were measured on."""
    import platform

    torch = _torch() if use_torch else None

    versions = f"python {platform.python_version()}, numpy {np.__version__}"
    versions += f", torch {torch.__version__ if torch else 'not used'}"
    print("# tinygrad_rnn benchmark\n", file=out)
    print(f"- {versions}", file=out)
    print(f"- {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}", file=out)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    print(f"- load average at the start: {load} (a busy machine makes every number noisy)", file=out)
    threads = f"numpy's BLAS may use {numpy_threads()}"
    if torch is not None:
        threads = f"torch.set_num_threads({torch.get_num_threads()}); {threads}"
    print(f"- threads: {threads} (set OPENBLAS_NUM_THREADS or --threads to change)", file=out)


def _csv_ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) <= 0:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _configs(text: str) -> list[str]:
    names = [v.strip() for v in text.split(",") if v.strip()]
    bad = [n for n in names if n not in CONFIGS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"configs are {', '.join(CONFIGS)}; got {text!r}")
    return names


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The benchmark's options (shared by benchmarks/bench_rnn.py and `tinygrad-rnn bench`)."""
    p.add_argument(
        "--quick", action="store_true", help="tiny settings: a few steps, small scaling and memory runs"
    )
    p.add_argument("--configs", type=_configs, default=["seed", "scale"], help="comma-separated: seed,scale")
    p.add_argument("--steps", type=int, help="steps per contender per round (default 20)")
    p.add_argument(
        "--rounds", type=int, help="rounds of interleaved timing; medians are reported (default 15)"
    )
    p.add_argument("--warmup", type=int, help="untimed steps per contender first (default 5)")
    p.add_argument(
        "--seq-lens", type=_csv_ints, help="T values of the scaling table (default 25,50,100,200,400)"
    )
    p.add_argument(
        "--hiddens", type=_csv_ints, help="H values of the scaling table (default 32,64,128,256,512)"
    )
    p.add_argument("--no-scaling", action="store_true", help="skip the T and H scaling tables")
    p.add_argument(
        "--memory-t", type=_csv_ints, help="T values of the peak-memory check (default 250,500,1000)"
    )
    p.add_argument("--memory-steps", type=int, help="steps of the long-run memory check (default 10000)")
    p.add_argument("--no-memory", action="store_true", help="skip the memory checks")
    p.add_argument("--no-torch", action="store_true", help="leave PyTorch out even when installed")
    p.add_argument(
        "--threads", type=int, help="torch.set_num_threads (default: the threads numpy's BLAS may use)"
    )
    p.add_argument("--matmul-n", type=int, help="size of the reference numpy matmul (default 1024)")
    p.add_argument(
        "--profile",
        choices=CONTENDER_NAMES + CELL_CONTENDER_NAMES,
        help="cProfile one contender on the first config instead",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and data (default 0)")


def _defaults(args: argparse.Namespace) -> None:
    quick = args.quick
    for name, full, small in [
        ("steps", 20, 2),
        ("rounds", 15, 2),
        ("warmup", 5, 1),
        ("seq_lens", [25, 50, 100, 200, 400], [5, 10]),
        ("hiddens", [32, 64, 128, 256, 512], [8, 16]),
        ("memory_t", [250, 500, 1000], [10, 20, 40]),
        ("memory_steps", 10000, 20),
        ("matmul_n", 1024, 128),
    ]:
        if getattr(args, name) is None:
            setattr(args, name, small if quick else full)
    args.scaling_steps = max(1, args.steps // 2)


def run(args: argparse.Namespace, out: Any = None) -> int:
    """Run the benchmark described by parsed `args`; print Markdown to `out` (stdout)."""
    out = out or sys.stdout
    _defaults(args)
    torch = None if args.no_torch else _torch()
    if torch is not None:
        torch.set_num_threads(args.threads or numpy_threads())
    machine(out, torch is not None)
    if args.profile:
        profile(args.profile, CONFIGS[args.configs[0]], args, out)
        return 0
    for name in args.configs:
        main_table(QUICK_SCALE if args.quick and name == "scale" else CONFIGS[name], args, out)
        out.flush()
    if not args.no_scaling:
        scaling_table(CONFIGS["seed"], "seq_len", args.seq_lens, args, out)
        scaling_table(CONFIGS["seed"], "hidden", args.hiddens, args, out)
    if not args.no_memory:
        memory_checks(args, out)
    gc.unfreeze()
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """`python benchmarks/bench_rnn.py [options]`; returns the exit code."""
    parser = argparse.ArgumentParser(prog="bench_rnn", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
