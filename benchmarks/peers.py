"""Peers beyond PyTorch: JAX and HIPS autograd, each running the same char-model training step.

  jax, jax lstm, jax gru
              `jax.jit` over one whole step: embedding gather, `lax.scan` over the cell,
              output layer, summed cross-entropy / B, `jax.value_and_grad`, clip at 5 and
              the seed's Adagrad (m += g*g; p -= lr*g/sqrt(m + 1e-8)), all compiled by XLA
  hips autograd
              `autograd.value_and_grad` (HIPS autograd) over a numpy loop through time (the
              output layer and the loss once over the stacked states), then the same clip
              and Adagrad in numpy

Both start from the `CharRNN` weights the other contenders get (the same seed) and see the
same chunks; each is skipped when its package is not importable (`import_jax`,
`import_autograd` return None).

Threads: XLA reads `XLA_FLAGS` once, when jax is first imported. `import_jax` adds
`--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1` to it when numpy's BLAS
is limited to one thread (OPENBLAS_NUM_THREADS=1 and the like), so the peers run with the
same number of threads; set XLA_FLAGS yourself before the run to choose otherwise.
It also turns on `jax_enable_x64`, without which JAX silently computes in float32.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Sequence

import numpy as np
from contenders import CLIP, LR, Config, _chunks, numpy_threads

from tinygrad_rnn.layers import CharRNN

ONE_THREAD_XLA = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
PEER_NAMES = ("jax", "hips autograd")
CELL_PEER_NAMES = ("jax lstm", "jax gru")


def import_jax() -> Any:
    """The jax module set up for the benchmark (x64 on, XLA's threads as numpy's), or None."""
    if numpy_threads() == 1 and "jax" not in sys.modules:
        flags = os.environ.get("XLA_FLAGS", "")
        if "xla_cpu_multi_thread_eigen" not in flags:
            os.environ["XLA_FLAGS"] = f"{flags} {ONE_THREAD_XLA}".strip()
    try:
        import jax
    except ImportError:
        return None
    jax.config.update("jax_enable_x64", True)  # float64 configs compute in float64
    return jax


def import_autograd() -> Any:
    """HIPS autograd's `autograd` module, or None when it cannot be imported."""
    try:
        import autograd
    except ImportError:
        return None
    return autograd


def _initial_state(cfg: Config, cell: str, seed: int) -> dict[str, np.ndarray]:
    """The CharRNN's state_dict: the weights every contender of `cfg` starts from."""
    return CharRNN(cfg.vocab, cfg.hidden, cell=cell, dtype=cfg.dtype, rng=seed).state_dict()


# --- JAX ----------------------------------------------------------------------------------------
def _jax_step_fn(jax: Any, cell: str, batch: int) -> Any:
    """One jitted training step (params, mem, state, inputs, targets) -> (params, mem, state, loss)."""
    jnp, lax, sig = jax.numpy, jax.lax, jax.nn.sigmoid

    def rnn(w: dict, h: Any, x: Any) -> Any:
        h = jnp.tanh(x + h @ w["weight_hh"].T)
        return h, h

    def lstm(w: dict, hc: Any, x: Any) -> Any:
        h, c = hc
        i, f, g, o = jnp.split(x + h @ w["rnn.weight_hh_l0"].T, 4, axis=-1)
        c = sig(f) * c + sig(i) * jnp.tanh(g)
        h = sig(o) * jnp.tanh(c)
        return (h, c), h

    def gru(w: dict, h: Any, x: Any) -> Any:
        b = h @ w["rnn.weight_hh_l0"].T + w["rnn.bias_hh_l0"]
        x_r, x_z, x_n = jnp.split(x, 3, axis=-1)
        b_r, b_z, b_n = jnp.split(b, 3, axis=-1)
        r, z = sig(x_r + b_r), sig(x_z + b_z)
        n = jnp.tanh(x_n + r * b_n)
        h = (1 - z) * n + z * h
        return h, h

    def loss_fn(w: dict, state: Any, inputs: Any, targets: Any) -> Any:
        x = w["embed.weight"][inputs]  # (T, B, H)
        if cell == "rnn":
            xw = x + w["bias_h"]
        else:
            xw = x @ w["rnn.weight_ih_l0"].T + w["rnn.bias_ih_l0"]
            xw = xw + w["rnn.bias_hh_l0"] if cell == "lstm" else xw
        body = {"rnn": rnn, "lstm": lstm, "gru": gru}[cell]
        last, hs = lax.scan(lambda s, x_t: body(w, s, x_t), state, xw)
        logp = jax.nn.log_softmax(hs @ w["head.weight"].T + w["head.bias"], axis=-1)
        picked = jnp.take_along_axis(logp, targets[..., None], axis=-1)
        return -picked.sum() / batch, last

    def step(w: dict, mem: dict, state: Any, inputs: Any, targets: Any) -> Any:
        (loss, last), grads = jax.value_and_grad(loss_fn, has_aux=True)(w, state, inputs, targets)
        grads = {k: jnp.clip(g, -CLIP, CLIP) for k, g in grads.items()}
        mem = {k: mem[k] + g * g for k, g in grads.items()}
        w = {k: w[k] - LR * g / jnp.sqrt(mem[k] + 1e-8) for k, g in grads.items()}
        return w, mem, lax.stop_gradient(last), loss

    return jax.jit(step, donate_argnums=(0, 1))


class JaxStep:
    """The char model's training step compiled by XLA (see the module doc); cell rnn, lstm or gru."""

    def __init__(
        self, cfg: Config, chunks: Sequence[tuple[np.ndarray, np.ndarray]], cell: str = "rnn", seed: int = 0
    ) -> None:
        jax = import_jax()
        jnp = jax.numpy
        self.name = "jax" if cell == "rnn" else f"jax {cell}"
        self.w = {k: jnp.asarray(v) for k, v in _initial_state(cfg, cell, seed).items()}
        self.mem = {k: jnp.zeros_like(v) for k, v in self.w.items()}
        h = jnp.zeros((cfg.batch, cfg.hidden), cfg.dtype)
        self.state: Any = (h, h) if cell == "lstm" else h
        self.chunks = [(jnp.asarray(i), jnp.asarray(t)) for i, t in chunks]
        self.chars = cfg.seq_len * cfg.batch
        self.fn = _jax_step_fn(jax, cell, cfg.batch)
        self.i = 0

    def step(self) -> float:
        inputs, targets = self.chunks[self.i % len(self.chunks)]
        self.i += 1
        self.w, self.mem, self.state, loss = self.fn(self.w, self.mem, self.state, inputs, targets)
        return float(loss)  # waits for the step to finish


# --- HIPS autograd --------------------------------------------------------------------------------
class HipsStep:
    """The seed's model through HIPS autograd: a numpy loop through time, `value_and_grad`."""

    name = "hips autograd"

    def __init__(self, cfg: Config, chunks: Sequence[tuple[np.ndarray, np.ndarray]], seed: int = 0) -> None:
        autograd = import_autograd()
        import autograd.numpy as anp

        state = _initial_state(cfg, "rnn", seed)
        self.keys = ["embed.weight", "weight_hh", "bias_h", "head.weight", "head.bias"]
        self.w = [state[k] for k in self.keys]
        self.mem = [np.zeros_like(v) for v in self.w]
        self.h = np.zeros((cfg.batch, cfg.hidden), cfg.dtype)
        self.chunks, self.batch = list(chunks), cfg.batch
        self.chars = cfg.seq_len * cfg.batch
        self.getval = autograd.tracer.getval
        self.anp = anp
        self.value_and_grad = autograd.value_and_grad(self.loss)
        self.i = 0

    def loss(self, w: list, h: np.ndarray, inputs: np.ndarray, targets: np.ndarray) -> Any:
        """Summed cross-entropy / B; leaves the last hidden state (detached) in self.h_last."""
        anp = self.anp
        embed, weight_hh, bias_h, head_weight, head_bias = w
        hs = []
        for x_t in inputs:
            h = anp.tanh(embed[x_t] + bias_h + anp.dot(h, weight_hh.T))
            hs.append(h)
        self.h_last = self.getval(h)
        logits = anp.dot(anp.concatenate(hs, axis=0), head_weight.T) + head_bias  # (T*B, V)
        shifted = logits - anp.max(logits, axis=1, keepdims=True)
        logp = shifted - anp.log(anp.sum(anp.exp(shifted), axis=1, keepdims=True))
        return -anp.sum(logp[np.arange(targets.size), targets.ravel()]) / self.batch

    def step(self) -> float:
        inputs, targets = self.chunks[self.i % len(self.chunks)]
        self.i += 1
        loss, grads = self.value_and_grad(self.w, self.h, inputs, targets)
        self.h = self.h_last
        for p, m, g in zip(self.w, self.mem, grads):
            g = np.clip(g, -CLIP, CLIP)
            m += g * g
            p -= (LR * g / np.sqrt(m + 1e-8)).astype(p.dtype, copy=False)
        return float(loss)


# --- building -------------------------------------------------------------------------------------
def make_peers(cfg: Config, seed: int = 0) -> list[Any]:
    """The plain char-RNN's peers whose packages are importable: jax, hips autograd."""
    chunks = _chunks(cfg, seed)
    out: list[Any] = []
    if import_jax() is not None:
        out.append(JaxStep(cfg, chunks, "rnn", seed))
    if import_autograd() is not None:
        out.append(HipsStep(cfg, chunks, seed))
    return out


def make_cell_peers(cfg: Config, cell: str, seed: int = 0) -> list[Any]:
    """JAX's LSTM or GRU char model (same weights as the engine's), or [] without jax."""
    return [JaxStep(cfg, _chunks(cfg, seed), cell, seed)] if import_jax() is not None else []
