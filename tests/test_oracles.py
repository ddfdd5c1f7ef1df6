"""The optimizers and the recurrent layers against independent numpy formulas (tests/oracles.py).

No PyTorch needed: each rule and each cell is written from its published formula and
compared with the library to 1e-12 on random inputs, parameters and gradients.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import oracles
import pytest

from tinygrad_rnn import Tensor
from tinygrad_rnn.layers import RNN, CharRNN, GRUCell, LSTMCell, RNNCell
from tinygrad_rnn.optim import SGD, Adagrad, Adam, RMSprop

TOL = {"rtol": 1e-12, "atol": 1e-14}

# --- optimizers ---------------------------------------------------------------------------------
OPTIMIZERS = [
    (SGD, oracles.sgd_step, {"lr": 0.1}),
    (SGD, oracles.sgd_step, {"lr": 0.1, "weight_decay": 0.3}),
    (SGD, oracles.sgd_step, {"lr": 0.1, "momentum": 0.9}),
    (SGD, oracles.sgd_step, {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
    (SGD, oracles.sgd_step, {"lr": 0.05, "momentum": 0.5, "nesterov": True, "weight_decay": 0.2}),
    (Adam, oracles.adam_step, {"lr": 0.01}),
    (Adam, oracles.adam_step, {"lr": 0.01, "betas": (0.8, 0.9), "eps": 1e-3}),
    (Adam, oracles.adam_step, {"lr": 0.01, "weight_decay": 0.5}),
    (RMSprop, oracles.rmsprop_step, {"lr": 0.01}),
    (RMSprop, oracles.rmsprop_step, {"lr": 0.01, "alpha": 0.9, "eps": 0.1}),  # eps big: its place shows
    (Adagrad, oracles.adagrad_step, {"lr": 0.1}),
    (Adagrad, oracles.adagrad_step, {"lr": 0.1, "eps": 0.5}),
]


@pytest.mark.parametrize(
    "cls,rule,kwargs", OPTIMIZERS, ids=[f"{c.__name__}-{i}" for i, (c, _, _) in enumerate(OPTIMIZERS)]
)
def test_optimizer_follows_its_published_rule(cls: Any, rule: Any, kwargs: dict[str, Any]) -> None:
    rng = np.random.default_rng(0)
    shapes = [(3, 4), (4,), ()]
    ref = [rng.standard_normal(s) for s in shapes]
    params = [Tensor(a.copy(), requires_grad=True) for a in ref]
    opt = cls(params, **kwargs)
    states: list[dict[str, Any]] = [{} for _ in shapes]
    for step in range(8):
        grads = [rng.standard_normal(s) * (0.1 if step % 2 else 2.0) for s in shapes]
        for p, g in zip(params, grads):
            p.grad = g.copy()
        opt.step()
        ref = [rule(r, g, s, **kwargs) for r, g, s in zip(ref, grads, states)]
        for p, r in zip(params, ref):
            np.testing.assert_allclose(p.data, r, **TOL, err_msg=f"{cls.__name__} step {step}")


def test_a_parameter_without_gradient_keeps_its_value_and_state() -> None:
    a, b = Tensor(np.ones(3), requires_grad=True), Tensor(np.ones(2), requires_grad=True)
    opt = Adam([a, b], lr=0.1)
    state: dict[str, Any] = {}
    for _ in range(3):
        a.grad, b.grad = np.full(3, 0.5), None
        opt.step()
    want = np.ones(3)
    for _ in range(3):
        want = oracles.adam_step(want, np.full(3, 0.5), state, lr=0.1)
    np.testing.assert_allclose(a.data, want, **TOL)  # the step count is a's own
    np.testing.assert_array_equal(b.data, np.ones(2))


# --- cells ----------------------------------------------------------------------------------------
def randomize(module: Any, rng: np.random.Generator, scale: float = 0.6) -> dict[str, np.ndarray]:
    """Random weights AND biases (the initial biases are zero, which would hide a bias bug)."""
    sd = {k: rng.standard_normal(v.shape) * scale for k, v in module.state_dict().items()}
    module.load_state_dict(sd)
    return sd


B, IN, H, T = 3, 4, 5, 6


def test_rnn_cell() -> None:
    rng = np.random.default_rng(1)
    cell = RNNCell(IN, H, rng=0)
    w = randomize(cell, rng)
    x, h = rng.standard_normal((B, IN)), rng.standard_normal((B, H))
    want = oracles.rnn_cell(x, h, w["weight_ih"], w["weight_hh"], w["bias_h"])
    np.testing.assert_allclose(cell(x, h).data, want, **TOL)


def test_lstm_cell_gate_order_i_f_g_o() -> None:
    rng = np.random.default_rng(2)
    cell = LSTMCell(IN, H, rng=0)
    w = randomize(cell, rng)
    x, h, c = (rng.standard_normal(s) for s in [(B, IN), (B, H), (B, H)])
    h_new, c_new = cell(x, (h, c))
    want_h, want_c = oracles.lstm_cell(x, h, c, w["weight_ih"], w["weight_hh"], w["bias_ih"], w["bias_hh"])
    np.testing.assert_allclose(c_new.data, want_c, **TOL)
    np.testing.assert_allclose(h_new.data, want_h, **TOL)


def test_gru_cell_r_gates_the_hidden_share_of_n() -> None:
    rng = np.random.default_rng(3)
    cell = GRUCell(IN, H, rng=0)
    w = randomize(cell, rng)
    x, h = rng.standard_normal((B, IN)), rng.standard_normal((B, H))
    want = oracles.gru_cell(x, h, w["weight_ih"], w["weight_hh"], w["bias_ih"], w["bias_hh"])
    np.testing.assert_allclose(cell(x, h).data, want, **TOL)


def test_cells_start_from_zeros_without_a_state() -> None:
    rng = np.random.default_rng(4)
    x, zero = rng.standard_normal((B, IN)), np.zeros((B, H))
    lstm, gru = LSTMCell(IN, H, rng=0), GRUCell(IN, H, rng=0)
    wl, wg = randomize(lstm, rng), randomize(gru, rng)
    want_h, want_c = oracles.lstm_cell(
        x, zero, zero, wl["weight_ih"], wl["weight_hh"], wl["bias_ih"], wl["bias_hh"]
    )
    np.testing.assert_allclose(lstm(x)[0].data, want_h, **TOL)
    np.testing.assert_allclose(lstm(x)[1].data, want_c, **TOL)
    want = oracles.gru_cell(x, zero, wg["weight_ih"], wg["weight_hh"], wg["bias_ih"], wg["bias_hh"])
    np.testing.assert_allclose(gru(x).data, want, **TOL)


# --- RNN: the cells stacked and unrolled over time ----------------------------------------------
CELLS = {
    "rnn": (oracles.rnn_cell, ("weight_ih", "weight_hh", "bias_h"), 1),
    "lstm": (oracles.lstm_cell, ("weight_ih", "weight_hh", "bias_ih", "bias_hh"), 2),
    "gru": (oracles.gru_cell, ("weight_ih", "weight_hh", "bias_ih", "bias_hh"), 1),
}
RNN_CASES = [(c, n, False) for c in CELLS for n in (1, 2)] + [("rnn", 1, True), ("rnn", 2, True)]


@pytest.mark.parametrize("cell,layers,fused", RNN_CASES)
def test_rnn_module_unrolled_over_time(cell: str, layers: int, fused: bool) -> None:
    fn, names, parts = CELLS[cell]
    rng = np.random.default_rng(5)
    rnn = RNN(IN, H, fused, cell=cell, num_layers=layers, rng=0)
    w = randomize(rnn, rng)
    x = rng.standard_normal((T, B, IN))
    h0 = [tuple(rng.standard_normal((B, H)) for _ in range(parts)) for _ in range(layers)]
    weights = [tuple(w[f"{n}_l{k}"] for n in names) for k in range(layers)]
    want_out, want_last = oracles.rnn_unrolled(fn, x, h0, weights)

    given = [s[0] for s in h0] if parts == 1 else [[s[j] for s in h0] for j in range(parts)]
    if layers == 1:
        state_in: Any = given[0] if parts == 1 else tuple(g[0] for g in given)
    else:
        state_in = np.stack(given) if parts == 1 else tuple(np.stack(g) for g in given)
    out, last = rnn(x, state_in)
    np.testing.assert_allclose(out.data, want_out, **TOL)
    got_parts = last if isinstance(last, tuple) else (last,)
    for j, got in enumerate(got_parts):
        want = np.stack([s[j] for s in want_last]) if layers > 1 else want_last[0][j]
        np.testing.assert_allclose(got.data, want, **TOL)


def char_oracle(model: CharRNN, sd: dict[str, np.ndarray], ids: np.ndarray, targets: np.ndarray) -> float:
    """The char model by hand: embedding rows -> cells -> output layer; CE summed over time, mean over B."""
    x = sd["embed.weight"][ids]
    layers = model.num_layers
    if model.cell == "rnn" and layers == 1:  # the seed's model: embed is Wxh.T, one hidden bias
        fn: Any = oracles.rnn_cell
        weights = [(np.eye(model.hidden_size), sd["weight_hh"], sd["bias_h"])]
        parts = 1
    else:
        fn, names, parts = CELLS[model.cell]
        weights = [tuple(sd[f"rnn.{n}_l{k}"] for n in names) for k in range(layers)]
    zero = np.zeros((ids.shape[1], model.hidden_size))
    hs, _ = oracles.rnn_unrolled(fn, x, [(zero,) * parts] * layers, weights)
    logits = hs @ sd["head.weight"].T + sd["head.bias"]
    logp = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
    picked = np.take_along_axis(logp, targets[..., None], axis=-1)
    return float(-picked.sum() / ids.shape[1])


CHAR_CASES = [("rnn", 1, False), ("rnn", 1, True), ("rnn", 2, False), ("rnn", 2, True)]
CHAR_CASES += [("lstm", 1, False), ("lstm", 2, False), ("gru", 2, False)]


@pytest.mark.parametrize("cell,layers,fused", CHAR_CASES)
def test_char_rnn_loss_by_hand(cell: str, layers: int, fused: bool) -> None:
    rng = np.random.default_rng(6)
    model = CharRNN(7, H, fused, cell=cell, num_layers=layers, rng=0)
    sd = randomize(model, rng)
    ids = rng.integers(0, 7, (T + 1, B))
    loss, _ = model.loss(ids[:-1], ids[1:])
    assert loss.item() == pytest.approx(char_oracle(model, sd, ids[:-1], ids[1:]), rel=1e-12)
