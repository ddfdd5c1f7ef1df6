"""The seed's math: forward and backpropagation through time written by hand, in numpy only.

`bptt` is the seed notebook's `forward` + loss + `backward`, line for line (one-hot column
vectors, a softmax per step, the same names `dWxh`, `dhnext`, ...), without the clipping.
It is the oracle that every autograd gradient of the char-RNN is checked against.

The rest is the same BPTT generalised to a batch and written for speed, in the layers'
layout (rows are examples, weights are (out, in) like PyTorch):

    seed                      here (batched)
    Wxh @ onehot(x)           embed[x]            embed = Wxh.T, shape (V, H)
    Whh @ h + bh              h @ weight_hh.T + bias
    Why @ h + by              h @ head_weight.T + head_bias

One hidden-state buffer holds every step; the output layer and its softmax run once over
all steps; the weight gradients are single matmuls after the backward loop. The engine's
fused ops (`tinygrad_rnn.fused`) call these functions.
"""

from __future__ import annotations

from typing import Optional

import numpy as np


def _softmax(x: np.ndarray) -> np.ndarray:
    e_x = np.exp(x - np.max(x))  # shift to avoid overflow
    return e_x / np.sum(e_x)


def bptt(
    p: dict[str, np.ndarray], inputs: list[int], targets: list[int], h_prev: np.ndarray
) -> tuple[float, dict[str, np.ndarray], np.ndarray]:
    """The seed's forward and backward over one sequence, without gradient clipping.

    p: Wxh (H, V), Whh (H, H), Why (V, H), bh (H, 1), by (V, 1); inputs, targets: T ids;
    h_prev (H, 1). Returns the summed cross-entropy, the gradients keyed like p (grads["Wxh"]
    is the seed's dWxh, ...), and the last hidden state (H, 1).
    """
    Wxh, Whh, Why, bh, by = p["Wxh"], p["Whh"], p["Why"], p["bh"], p["by"]
    vocab_size = Why.shape[0]

    # forward: as the seed's RNN.forward, plus its loss
    xs, hs, ys, ps = {}, {}, {}, {}
    hs[-1] = np.copy(h_prev)
    loss = 0.0
    for t in range(len(inputs)):
        xs[t] = np.zeros((vocab_size, 1))  # one-hot input
        xs[t][inputs[t]] = 1
        hs[t] = np.tanh(np.dot(Wxh, xs[t]) + np.dot(Whh, hs[t - 1]) + bh)
        ys[t] = np.dot(Why, hs[t]) + by
        ps[t] = _softmax(ys[t])
        loss += -np.log(ps[t][targets[t], 0])

    # backward: as the seed's RNN.backward
    dWxh, dWhh, dWhy = np.zeros_like(Wxh), np.zeros_like(Whh), np.zeros_like(Why)
    dbh, dby = np.zeros_like(bh), np.zeros_like(by)
    dhnext = np.zeros_like(hs[0])
    for t in reversed(range(len(inputs))):
        dy = np.copy(ps[t])
        dy[targets[t]] -= 1  # softmax + cross-entropy: p - onehot(target)
        dWhy += np.dot(dy, hs[t].T)
        dby += dy
        dh = np.dot(Why.T, dy) + dhnext  # from this step's output and from the next step
        dhraw = (1 - hs[t] * hs[t]) * dh  # through tanh
        dbh += dhraw
        dWxh += np.dot(dhraw, xs[t].T)
        dWhh += np.dot(dhraw, hs[t - 1].T)
        dhnext = np.dot(Whh.T, dhraw)
    grads = {"Wxh": dWxh, "Whh": dWhh, "Why": dWhy, "bh": dbh, "by": dby}
    return float(loss), grads, hs[len(inputs) - 1]


# --- the same BPTT, batched and fast --------------------------------------------------------
def rnn_forward(xh: np.ndarray, weight_hh: np.ndarray, h0: np.ndarray) -> np.ndarray:
    """Run the recurrence hs[t+1] = tanh(xh[t] + hs[t] @ weight_hh.T) from hs[0] = h0.

    xh (T, B, H): the input's share of every step's pre-activation, bias included.
    Returns the one buffer hs (T+1, B, H) of all hidden states, hs[0] = h0.
    """
    steps = xh.shape[0]
    hs = np.empty((steps + 1,) + h0.shape, np.result_type(xh, weight_hh, h0))
    hs[0] = h0
    w_t = weight_hh.T
    for h_prev, h, x in zip(hs, hs[1:], xh):  # three numpy calls a step, no allocation
        h_prev.dot(w_t, out=h)  # the method skips np.dot's dispatcher; matmul is slower still
        h += x
        np.tanh(h, out=h)
    return hs


def rnn_backward(
    dhs: np.ndarray, hs: np.ndarray, weight_hh: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backward of `rnn_forward`, given dhs (T, B, H), the loss gradient reaching hs[1:].

    Returns dxh (T, B, H) (the seed's dhraw of every step), dh0 (B, H), dweight_hh (H, H).
    """
    dtanh = 1 - hs[1:] * hs[1:]  # all steps at once, before the loop
    dhraw = np.empty_like(dtanh)
    dhnext = np.zeros(hs.shape[1:], hs.dtype)
    for d, dh, dt in zip(dhraw[::-1], dhs[::-1], dtanh[::-1]):  # t = T-1 down to 0
        np.add(dh, dhnext, out=d)  # dh = output share + dhnext
        d *= dt  # dhraw = (1 - h*h) * dh
        d.dot(weight_hh, out=dhnext)  # dhnext = dhraw @ Whh (rows: the seed's Whh.T @ dhraw)
    hidden = hs.shape[-1]
    dweight_hh = dhraw.reshape(-1, hidden).T.dot(hs[:-1].reshape(-1, hidden))  # sum_t dhraw h^T
    return dhraw, dhnext, dweight_hh


def scatter_add_rows(ids: np.ndarray, rows: np.ndarray, num: int) -> np.ndarray:
    """out (num, H) with out[i] = the sum of rows[j] (N, H) over every j with ids[j] == i.

    The embedding's backward (a row used twice gets both gradients). Sorting the ids once
    and summing each run with reduceat ties np.add.at at 25 rows and beats it (up to 5x)
    from a few dozen rows on, so it is the one path for every size.
    """
    order = ids.argsort(kind="stable")
    sorted_ids = ids[order]
    run_start = np.empty(sorted_ids.shape, bool)  # True where an id's run begins
    run_start[:1] = True
    np.not_equal(sorted_ids[1:], sorted_ids[:-1], out=run_start[1:])
    starts = run_start.nonzero()[0]
    out = np.zeros((num, rows.shape[1]), rows.dtype)
    out[sorted_ids[starts]] = np.add.reduceat(rows[order], starts, axis=0)
    return out


def _flat_targets(targets: np.ndarray, vocab: int) -> np.ndarray:
    """Positions of the targets (T, B) in a flat (T*B, V) array: cheaper than a 2-D fancy index."""
    return np.arange(targets.size) * vocab + targets.ravel()


def charrnn_forward(
    embed: np.ndarray,
    weight_hh: np.ndarray,
    bias: np.ndarray,
    head_weight: np.ndarray,
    head_bias: np.ndarray,
    h0: np.ndarray,
    inputs: np.ndarray,
    targets: np.ndarray,
) -> tuple[float, np.ndarray, np.ndarray]:
    """Char-RNN loss over a batch: cross-entropy summed over time, averaged over the batch.

    embed (V, H), weight_hh (H, H), bias (H,), head_weight (V, H), head_bias (V,), h0 (B, H),
    inputs and targets int (T, B). Returns the loss, hs (T+1, B, H) and the softmax
    probabilities p (T*B, V), which is all `charrnn_backward` needs.
    """
    hs = rnn_forward(embed[inputs] + bias, weight_hh, h0)
    hidden = hs.shape[-1]
    logits = hs[1:].reshape(-1, hidden).dot(head_weight.T)  # every step's output layer at once
    logits += head_bias
    logits -= logits.max(axis=1, keepdims=True)  # log-sum-exp, shifted
    picked = logits.ravel()[_flat_targets(targets, logits.shape[1])].sum()
    p = np.exp(logits, out=logits)
    total = p.sum(axis=1)
    loss = float(np.log(total).sum() - picked) / inputs.shape[1]
    p /= total[:, None]
    return loss, hs, p


def charrnn_backward(
    weight_hh: np.ndarray,
    head_weight: np.ndarray,
    inputs: np.ndarray,
    targets: np.ndarray,
    hs: np.ndarray,
    p: np.ndarray,
    scale: float = 1.0,
    dh_last: Optional[np.ndarray] = None,
) -> tuple[np.ndarray, ...]:
    """Gradients of `scale * loss` w.r.t. embed, weight_hh, bias, head_weight, head_bias, h0.

    hs and p are `charrnn_forward`'s; neither is changed, so backward can run twice.
    `dh_last` (B, H), if given, is a gradient reaching the last hidden state from elsewhere.
    """
    steps, batch = inputs.shape
    hidden, vocab = hs.shape[-1], head_weight.shape[0]
    scale = scale / batch  # the loss is averaged over the batch
    dy = p * scale
    dy.ravel()[_flat_targets(targets, vocab)] -= scale  # the seed's dy = p - onehot(target)
    h_all = hs[1:].reshape(-1, hidden)
    dhead_weight = dy.T.dot(h_all)
    dhead_bias = dy.sum(axis=0)
    dhs = dy.dot(head_weight).reshape(steps, batch, hidden)
    if dh_last is not None:
        dhs[-1] += dh_last
    dhraw, dh0, dweight_hh = rnn_backward(dhs, hs, weight_hh)
    dhraw_all = dhraw.reshape(-1, hidden)
    dembed = scatter_add_rows(inputs.ravel(), dhraw_all, vocab)
    dbias = dhraw_all.sum(axis=0)
    return dembed, dweight_hh, dbias, dhead_weight, dhead_bias, dh0
