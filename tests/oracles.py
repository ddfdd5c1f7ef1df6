"""Independent numpy oracles, written from the published formulas, not from the library.

The optimizers follow PyTorch's documentation (torch.optim.SGD, Adam, RMSprop) and the seed
notebook's Adagrad; the cells follow PyTorch's documentation of nn.LSTMCell (gates i, f, g, o)
and nn.GRUCell (gates r, z, n). Each function is the plainest reading of its formula, so
the tests in test_oracles.py and test_training_math.py are strong without PyTorch.
"""

from __future__ import annotations

import numpy as np


# --- optimizers: one step, the state a dict the oracle owns -----------------------------------
def sgd_step(p, g, state, lr, momentum=0.0, nesterov=False, weight_decay=0.0):
    """PyTorch's SGD (dampening 0): g += wd p; b = g (t = 1) or mu b + g; nesterov: g + mu b."""
    if weight_decay != 0:
        g = g + weight_decay * p
    if momentum != 0:
        if "b" not in state:
            state["b"] = g.copy()
        else:
            state["b"] = momentum * state["b"] + g
        g = g + momentum * state["b"] if nesterov else state["b"]
    return p - lr * g


def adam_step(p, g, state, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    """Adam (Kingma & Ba, with PyTorch's L2 weight decay): bias-corrected m and v."""
    b1, b2 = betas
    if weight_decay != 0:
        g = g + weight_decay * p
    t = state["t"] = state.get("t", 0) + 1
    state["m"] = b1 * state.get("m", 0.0) + (1 - b1) * g
    state["v"] = b2 * state.get("v", 0.0) + (1 - b2) * g * g
    m_hat = state["m"] / (1 - b1**t)
    v_hat = state["v"] / (1 - b2**t)
    return p - lr * m_hat / (np.sqrt(v_hat) + eps)


def rmsprop_step(p, g, state, lr, alpha=0.99, eps=1e-8):
    """PyTorch's RMSprop (not centered, no momentum): eps outside the square root."""
    state["v"] = alpha * state.get("v", 0.0) + (1 - alpha) * g * g
    return p - lr * g / (np.sqrt(state["v"]) + eps)


def adagrad_step(p, g, state, lr, eps=1e-8):
    """The seed notebook's Adagrad: mem += g^2; p -= lr g / sqrt(mem + eps) (eps inside)."""
    state["mem"] = state.get("mem", 0.0) + g * g
    return p - lr * g / np.sqrt(state["mem"] + eps)


# --- cells: x (B, I), h (B, H), weights in PyTorch's layout -----------------------------------
def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def rnn_cell(x, h, w_ih, w_hh, b):
    """h' = tanh(W_ih x + W_hh h + b) (the seed's one hidden bias)."""
    return np.tanh(x @ w_ih.T + h @ w_hh.T + b)


def lstm_cell(x, h, c, w_ih, w_hh, b_ih, b_hh):
    """nn.LSTMCell: i, f, g, o = split(W_ih x + b_ih + W_hh h + b_hh); c' = f c + i g; h' = o tanh(c')."""
    H = h.shape[1]
    z = x @ w_ih.T + b_ih + h @ w_hh.T + b_hh
    i = sigmoid(z[:, 0:H])
    f = sigmoid(z[:, H : 2 * H])
    g = np.tanh(z[:, 2 * H : 3 * H])
    o = sigmoid(z[:, 3 * H : 4 * H])
    c_new = f * c + i * g
    return o * np.tanh(c_new), c_new


def gru_cell(x, h, w_ih, w_hh, b_ih, b_hh):
    """nn.GRUCell: r, z from x and h; n = tanh(W_in x + b_in + r (W_hn h + b_hn)); h' = (1-z) n + z h."""
    H = h.shape[1]
    W_ir, W_iz, W_in = w_ih[:H], w_ih[H : 2 * H], w_ih[2 * H :]
    W_hr, W_hz, W_hn = w_hh[:H], w_hh[H : 2 * H], w_hh[2 * H :]
    b_ir, b_iz, b_in = b_ih[:H], b_ih[H : 2 * H], b_ih[2 * H :]
    b_hr, b_hz, b_hn = b_hh[:H], b_hh[H : 2 * H], b_hh[2 * H :]
    r = sigmoid(x @ W_ir.T + b_ir + h @ W_hr.T + b_hr)
    z = sigmoid(x @ W_iz.T + b_iz + h @ W_hz.T + b_hz)
    n = np.tanh(x @ W_in.T + b_in + r * (h @ W_hn.T + b_hn))
    return (1 - z) * n + z * h


def rnn_unrolled(cell, x, h0, layers):
    """A stack of cells over time: x (T, B, I); h0: per layer the state tuple; layers: per layer
    the weight tuple in `cell`'s order. Returns the top layer's outputs (T, B, H) and the last
    state of every layer."""
    states = list(h0)
    for k, weights in enumerate(layers):
        outs = []
        for x_t in x:
            s = cell(x_t, *states[k], *weights)
            states[k] = s if isinstance(s, tuple) else (s,)
            outs.append(states[k][0])
        x = np.stack(outs)
    return x, states
