"""fused=True for every cell in `RNN` and `CharRNN`: the same numbers as the unrolled layers.

The fused LSTM and GRU ops (tests/test_fused_cells.py checks them alone) wired into the
layers: any depth, both directions, batch_first, bias=False, dropout; the same parameters
and state_dict keys either way; against PyTorch's nn.LSTM/GRU and an independent numpy
forward of the stack; and the command line, fused by default, resuming bit for bit.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinygrad_rnn import Tape, Tensor
from tinygrad_rnn import checkpoint as ckpt_io
from tinygrad_rnn.layers import RNN, CharRNN

TOL = {"rtol": 1e-10, "atol": 1e-10}


def _random_weights(m: Any, seed: int, scale: float = 0.5) -> dict[str, np.ndarray]:
    """Weights large enough that every gate and every layer carries signal (the init is 0.01)."""
    rng = np.random.default_rng(seed)
    sd = {k: rng.standard_normal(v.shape) * scale for k, v in m.state_dict().items()}
    m.load_state_dict(sd)
    return sd


def _pair(cell: str, seed: int, **options: Any) -> tuple[RNN, RNN]:
    """An unrolled and a fused RNN with the same weights (moved by load_state_dict) and the
    same dropout generator state."""
    unrolled = RNN(3, 4, cell=cell, rng=seed, **options)
    fused = RNN(3, 4, cell=cell, fused=True, rng=seed + 1, **options)  # other weights: loaded next
    fused.load_state_dict(_random_weights(unrolled, seed))
    if options.get("dropout", 0) > 0:
        unrolled.drop.rng, fused.drop.rng = seed, seed
    return unrolled, fused


def _run(m: RNN, x: np.ndarray, state: tuple[np.ndarray, ...], seed: int) -> list[np.ndarray]:
    """Outputs, last state and the gradients of x, the first state and every parameter of a
    random projection of both outputs."""
    x_t = Tensor(x, requires_grad=True)
    s_t = [Tensor(s, requires_grad=True) for s in state]
    out, last = m(x_t, s_t[0] if len(s_t) == 1 else tuple(s_t))
    lasts = last if isinstance(last, tuple) else (last,)
    rng = np.random.default_rng(seed)
    loss = (out * rng.standard_normal(out.shape)).sum()
    for part in lasts:
        loss = loss + (part * rng.standard_normal(part.shape)).sum()
    m.zero_grad()
    loss.backward()
    grads = [x_t.grad, *[s.grad for s in s_t], *[p.grad for p in m.parameters()]]
    return [out.data, *[p.data for p in lasts], *grads]


@given(
    cell=st.sampled_from(["lstm", "gru"]),
    layers=st.integers(1, 3),
    bidirectional=st.booleans(),
    batch_first=st.booleans(),
    bias=st.booleans(),
    dropout=st.sampled_from([0.0, 0.4]),
    training=st.booleans(),
    steps=st.integers(1, 5),
    batch=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_fused_stack_equals_unrolled_outputs_states_and_every_gradient(
    cell: str,
    layers: int,
    bidirectional: bool,
    batch_first: bool,
    bias: bool,
    dropout: float,
    training: bool,
    steps: int,
    batch: int,
    seed: int,
) -> None:
    options = dict(num_layers=layers, bidirectional=bidirectional, batch_first=batch_first, bias=bias)
    if layers > 1:
        options["dropout"] = dropout
    unrolled, fused = _pair(cell, seed, **options)
    for m in (unrolled, fused):
        m.train(training)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, steps, 3) if batch_first else (steps, batch, 3))
    parts = 2 if cell == "lstm" else 1
    state = tuple(np.tanh(rng.standard_normal(unrolled.state_shape(batch))) for _ in range(parts))
    want, got = _run(unrolled, x, state, seed), _run(fused, x, state, seed)
    assert len(got) == len(want)
    for k, (g, w) in enumerate(zip(got, want)):
        assert g.shape == w.shape and g.dtype == w.dtype == np.float64
        np.testing.assert_allclose(g, w, **TOL, err_msg=f"result {k}")


def test_dropout_masks_are_the_same_draws_fused_or_not() -> None:
    """Training mode: both paths draw the same masks from the same generator state, so a
    dropped unit is zero in both outputs' gradients alike (and the generators end equal)."""
    unrolled, fused = _pair("lstm", 3, num_layers=3, dropout=0.5)
    x = np.random.default_rng(0).standard_normal((4, 2, 3))
    want, got = (
        _run(unrolled, x, (np.zeros((3, 2, 4)),) * 2, 1),
        _run(fused, x, (np.zeros((3, 2, 4)),) * 2, 1),
    )
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, **TOL)
    assert unrolled.drop.rng.random() == fused.drop.rng.random()


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_each_layer_and_direction_is_one_fused_node(cell: str) -> None:
    m = RNN(3, 4, cell=cell, num_layers=2, bidirectional=True, fused=True, rng=0)
    with Tape() as tape:
        m(np.ones((6, 2, 3)))
    assert str(tape).count(f"{cell}_recurrence") == 4
    unrolled = RNN(3, 4, cell=cell, num_layers=2, bidirectional=True, rng=0)
    with Tape() as tape_u:
        unrolled(np.ones((6, 2, 3)))
    assert f"{cell}_recurrence" not in str(tape_u) and len(tape_u) > 4 * 6


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_same_parameters_and_weights_move_by_load_state_dict(cell: str) -> None:
    unrolled = CharRNN(7, 5, cell=cell, num_layers=2, rng=0)
    fused = CharRNN(7, 5, cell=cell, num_layers=2, fused=True, rng=0)
    assert [(k, v.shape) for k, v in fused.state_dict().items()] == [
        (k, v.shape) for k, v in unrolled.state_dict().items()
    ]
    for a, b in zip(fused.parameters(), unrolled.parameters()):
        np.testing.assert_array_equal(a.data, b.data)  # the same draws from the same seed
    sd = _random_weights(fused, 1)
    unrolled.load_state_dict(sd)
    ids = np.random.default_rng(2).integers(0, 7, (6, 3))
    np.testing.assert_allclose(fused(ids)[0].data, unrolled(ids)[0].data, **TOL)
    assert "fused=True" in repr(fused.rnn) and "fused" not in repr(unrolled.rnn)


# --- CharRNN --------------------------------------------------------------------------------
@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("layers,dropout", [(1, 0.0), (2, 0.0), (3, 0.3)])
def test_charrnn_fused_loss_state_and_gradients_equal_unrolled(
    cell: str, layers: int, dropout: float
) -> None:
    results = []
    for fused in (False, True):
        m = CharRNN(11, 6, fused, cell=cell, num_layers=layers, dropout=dropout, rng=5)
        _random_weights(m, 7)
        rng = np.random.default_rng(8)
        inputs, targets = rng.integers(0, 11, (2, 7, 3))
        h0 = m.state_from_array(np.tanh(rng.standard_normal(m.state_array_shape(3))), 3)
        loss, h = m.loss(inputs, targets, h0)
        loss.backward()
        results.append([loss.data, m.state_array(h), *[p.grad for p in m.parameters()]])
    for k, (u, f) in enumerate(zip(*results)):
        np.testing.assert_allclose(f, u, **TOL, err_msg=f"result {k}")


# --- against PyTorch and an independent numpy forward ----------------------------------------
def _sigmoid(a: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-a))


def _numpy_layer(cell: str, x: np.ndarray, w: list[np.ndarray], h: np.ndarray, c: np.ndarray) -> Any:
    """One layer and direction over x (T, B, I), PyTorch's documented equations step by step."""
    w_ih, w_hh, b_ih, b_hh = w
    outs = []
    for x_t in x:
        a, b = x_t @ w_ih.T + b_ih, h @ w_hh.T + b_hh
        if cell == "lstm":
            i, f, g, o = np.split(a + b, 4, axis=1)
            c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
            h = _sigmoid(o) * np.tanh(c)
        else:
            (a_r, a_z, a_n), (b_r, b_z, b_n) = np.split(a, 3, axis=1), np.split(b, 3, axis=1)
            r, z = _sigmoid(a_r + b_r), _sigmoid(a_z + b_z)
            n = np.tanh(a_n + r * b_n)
            h = (1 - z) * n + z * h
        outs.append(h)
    return np.stack(outs), h, c


def _numpy_stack(cell: str, sd: dict[str, np.ndarray], x: np.ndarray, h0: np.ndarray, c0: np.ndarray) -> Any:
    """A bidirectional stack from the layer above: out (T, B, 2H), h_n, c_n (layers*2, B, H)."""
    layers = len(h0) // 2
    h_n, c_n = [], []
    for k in range(layers):
        outs = []
        for d, suffix in enumerate([f"_l{k}", f"_l{k}_reverse"]):
            w = [sd[name + suffix] for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            xs = x if d == 0 else x[::-1]
            out, h, c = _numpy_layer(cell, xs, w, h0[2 * k + d], c0[2 * k + d])
            outs.append(out if d == 0 else out[::-1])
            h_n.append(h)
            c_n.append(c)
        x = np.concatenate(outs, axis=2)
    return x, np.stack(h_n), np.stack(c_n)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_fused_bidirectional_stack_is_the_documented_equations(cell: str) -> None:
    m = RNN(3, 4, cell=cell, num_layers=2, bidirectional=True, fused=True, rng=0)
    sd = _random_weights(m, 1)
    rng = np.random.default_rng(2)
    x, (h0, c0) = rng.standard_normal((5, 2, 3)), rng.standard_normal((2, 4, 2, 4))
    out, last = m(x, (h0, c0) if cell == "lstm" else h0)
    want_out, want_h, want_c = _numpy_stack(cell, sd, x, h0, c0)
    np.testing.assert_allclose(out.data, want_out, **TOL)
    got_h, got_c = last if cell == "lstm" else (last, None)
    np.testing.assert_allclose(got_h.data, want_h, **TOL)
    if got_c is not None:
        np.testing.assert_allclose(got_c.data, want_c, **TOL)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize(
    "layers,bidirectional,batch_first,bias", [(1, False, False, True), (3, True, True, False)]
)
def test_fused_stack_matches_torch(
    torch: Any, cell: str, layers: int, bidirectional: bool, batch_first: bool, bias: bool
) -> None:
    options = dict(num_layers=layers, bidirectional=bidirectional, batch_first=batch_first, bias=bias)
    ours = RNN(3, 4, cell=cell, fused=True, rng=0, **options)
    sd = _random_weights(ours, 1)
    theirs = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](3, 4, **options).double()
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 5, 3) if batch_first else (5, 2, 3))
    states = rng.standard_normal((2, layers * (2 if bidirectional else 1), 2, 4))
    states = states if cell == "lstm" else states[:1]
    got = _run(ours, x, tuple(s.reshape(ours.state_shape(2)) for s in states), 3)  # (B, H) for one
    x_t = torch.tensor(x, requires_grad=True)
    s_t = [torch.tensor(s, requires_grad=True) for s in states]
    out, last = theirs(x_t, tuple(s_t) if cell == "lstm" else s_t[0])
    lasts = last if cell == "lstm" else (last,)
    proj = np.random.default_rng(3)  # the projections `_run` draws, in its order
    loss = (out * torch.from_numpy(proj.standard_normal(out.shape))).sum()
    for part in lasts:
        loss = loss + (part * torch.from_numpy(proj.standard_normal(part.shape))).sum()
    loss.backward()
    grads = [x_t.grad, *[s.grad for s in s_t], *[p.grad for p in theirs.parameters()]]
    want = [t.detach().numpy() for t in (out, *lasts, *grads)]
    assert len(got) == len(want)
    for k, (g, w) in enumerate(zip(got, want)):
        np.testing.assert_allclose(g, w.reshape(g.shape), **TOL, err_msg=f"result {k}")


# --- the command line -----------------------------------------------------------------------
def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tinygrad_rnn", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def test_train_lstm_stack_runs_fused_by_default_and_resumes_bit_exact(tmp_path: Path) -> None:
    common = ["--cell", "lstm", "--layers", "2", "--hidden", "8", "--seq-len", "6", "--batch", "2"]
    common += ["--sample-every", "0"]
    r = cli("train", *common, "--steps", "6", "--out", "once.npz", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = cli("train", *common, "--steps", "3", "--out", "twice.npz", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = cli("train", "--resume", "twice.npz", "--steps", "3", "--sample-every", "0", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = cli("train", *common, "--no-fused", "--steps", "6", "--out", "unrolled.npz", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    once, twice, unrolled = (ckpt_io.load(tmp_path / f) for f in ("once.npz", "twice.npz", "unrolled.npz"))
    assert once.config["fused"] is True and twice.config["fused"] is True and twice.step == 6
    assert unrolled.config["fused"] is False
    assert once.params.keys() == unrolled.params.keys()
    for k, v in once.params.items():
        np.testing.assert_array_equal(twice.params[k], v, err_msg=k)  # bit for bit
        np.testing.assert_allclose(unrolled.params[k], v, rtol=1e-9, atol=1e-12, err_msg=k)  # rounding
    assert once.hidden is not None and twice.hidden is not None
    np.testing.assert_array_equal(twice.hidden, once.hidden)
