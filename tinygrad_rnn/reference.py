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
fused ops (`tinygrad_rnn.fused`) call these functions. Its two scatter helpers are the
engine's too, and live with the gradient forms (`tinygrad_rnn.grads`).
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from tinygrad_rnn.grads import flat_positions, scatter_add_rows


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
        xs[t] = np.zeros((vocab_size, 1), Wxh.dtype)  # one-hot input, in the weights' dtype
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
    w_t = np.ascontiguousarray(weight_hh.T)  # BLAS multiplies by it 1.5x faster than by a .T view
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
    dhraw = np.multiply(hs[1:], hs[1:])
    np.subtract(1, dhraw, out=dhraw)  # tanh's derivative 1 - h*h, all steps at once; dhraw below
    dhnext = np.zeros(hs.shape[1:], hs.dtype)
    for d, dh in zip(dhraw[::-1], dhs[::-1]):  # t = T-1 down to 0
        dhnext += dh  # dh = output share + dhnext
        d *= dhnext  # dhraw = (1 - h*h) * dh, in place of the derivative
        d.dot(weight_hh, out=dhnext)  # dhnext = dhraw @ Whh (rows: the seed's Whh.T @ dhraw)
    hidden = hs.shape[-1]
    dweight_hh = dhraw.reshape(-1, hidden).T.dot(hs[:-1].reshape(-1, hidden))  # sum_t dhraw h^T
    return dhraw, dhnext, dweight_hh


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
    hs = rnn_forward((embed + bias)[inputs], weight_hh, h0)  # the bias joins V rows, not T*B
    hidden = hs.shape[-1]
    logits = hs[1:].reshape(-1, hidden).dot(head_weight.T)  # every step's output layer at once
    logits += head_bias
    logits -= logits.max(axis=1, keepdims=True)  # log-sum-exp, shifted
    picked = logits.ravel()[flat_positions(targets, logits.shape[1])].sum()
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
    dy.ravel()[flat_positions(targets, vocab)] -= scale  # the seed's dy = p - onehot(target)
    h_all = hs[1:].reshape(-1, hidden)
    dhead_weight = dy.T.dot(h_all)
    dhead_bias = dy.sum(axis=0)
    dhs = dy.dot(head_weight).reshape(steps, batch, hidden)
    if dh_last is not None:
        dhs[-1] += dh_last
    dhraw, dh0, dweight_hh = rnn_backward(dhs, hs, weight_hh)
    dhraw_all = dhraw.reshape(-1, hidden)
    dembed = scatter_add_rows(inputs.ravel(), dhraw_all, vocab)
    dbias = dembed.sum(axis=0)  # every step's dhraw is in one row of dembed: V rows, not T*B
    return dembed, dweight_hh, dbias, dhead_weight, dhead_bias, dh0


# --- the LSTM's and the GRU's BPTT, batched ---------------------------------------------------
# PyTorch's equations and gate order (torch.nn.LSTM, torch.nn.GRU), a whole sequence at once.
# As in `rnn_forward`, xw (T, B, gates*H) is the input's share of every step's gates, computed
# for all steps before the loop; the loops hold only what depends on the previous step.
#
# sigmoid(a) = tanh(a/2)/2 + 1/2, so one tanh call activates all four LSTM gates (and the
# GRU's r and z): the pre-activations are scaled by s (1/2 for a sigmoid gate, 1 for a tanh
# gate), then tanh, then `* s + (1 - s)`. Scaling weight_hh's rows once is the same as
# scaling every step's h @ weight_hh.T.


def _gate_scale(blocks: list[float], hidden: int, dtype: np.dtype) -> np.ndarray:
    """One factor per gate column: s (gates*H,), each block's factor repeated H times."""
    return np.repeat(np.array(blocks, dtype), hidden)


def lstm_forward(
    xw: np.ndarray, weight_hh: np.ndarray, h0: np.ndarray, c0: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The LSTM over a sequence: for t = 0..T-1, with a = xw[t] + h @ weight_hh.T,

        i, f, g, o = sigmoid(a_i), sigmoid(a_f), tanh(a_g), sigmoid(a_o)   (blocks of H)
        c' = f * c + i * g;   h' = o * tanh(c')

    xw (T, B, 4H): x @ weight_ih.T + bias_ih + bias_hh; weight_hh (4H, H); h0, c0 (B, H).
    Returns hs, cs (T+1, B, H) (hs[0] = h0, cs[0] = c0), the activated gates (T, B, 4H) and
    tanh_cs (T, B, H), tanh of cs[1:]: what `lstm_backward` needs.
    """
    steps, (batch, hidden) = xw.shape[0], h0.shape
    dtype = np.result_type(xw, weight_hh, h0, c0)
    hs, cs = np.empty((2, steps + 1, batch, hidden), dtype)
    hs[0], cs[0] = h0, c0
    s = _gate_scale([0.5, 0.5, 1.0, 0.5], hidden, dtype)
    w_t = np.multiply(weight_hh.T, s, order="C")  # contiguous: BLAS is faster on it
    gates = np.multiply(xw, s, dtype=dtype)  # the scaled input share; activated in place below
    tanh_cs = np.empty((steps, batch, hidden), dtype)
    shift = 1 - s
    hw, ig = np.empty((batch, 4 * hidden), dtype), np.empty((batch, hidden), dtype)
    ifgo = [gates[..., k * hidden : (k + 1) * hidden] for k in range(4)]  # (T, B, H) views
    per_step = zip(hs, hs[1:], cs, cs[1:], tanh_cs, gates, *ifgo)
    for h_prev, h, c_prev, c, tanh_c, a, i, f, g, o in per_step:  # ten numpy calls a step
        h_prev.dot(w_t, out=hw)
        a += hw
        np.tanh(a, out=a)
        a *= s
        a += shift  # i, f, g, o of this step, in place
        np.multiply(f, c_prev, out=c)
        np.multiply(i, g, out=ig)
        c += ig  # c' = f * c + i * g
        np.tanh(c, out=tanh_c)
        np.multiply(o, tanh_c, out=h)  # h' = o * tanh(c')
    return hs, cs, gates, tanh_cs


def lstm_backward(
    dhs: np.ndarray,
    dc_last: np.ndarray,
    hs: np.ndarray,
    cs: np.ndarray,
    gates: np.ndarray,
    tanh_cs: np.ndarray,
    weight_hh: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Backward of `lstm_forward`: dhs (T, B, H) reaches hs[1:], dc_last (B, H) reaches cs[-1].

    The chain rule of one step, from its outputs back (dh, dc: the loss gradient at h', c'):

        h' = o * tanh(c'):       do = dh * tanh(c');   dc += dh * o * (1 - tanh(c')^2)
        c' = f * c + i * g:      di = dc * g;  df = dc * c;  dg = dc * i;  dcnext = dc * f
        the nonlinearities:      da_i = di * i (1 - i), ... , da_g = dg * (1 - g^2)
        a = xw + h @ W_hh.T:     dxw = da;  dhnext = da @ W_hh;  dW_hh += da.T @ h

    Every factor that does not depend on the gradient is computed for all steps before the
    loop. Returns dxw (T, B, 4H), dweight_hh (4H, H), dh0 (B, H), dc0 (B, H).
    """
    steps, batch, hidden = tanh_cs.shape
    i, f, g, o = (gates[..., k * hidden : (k + 1) * hidden] for k in range(4))
    dc_dh = np.multiply(tanh_cs, tanh_cs)
    np.subtract(1, dc_dh, out=dc_dh)
    dc_dh *= o  # dc' += dh * o * (1 - tanh(c')^2)
    # da = local * (dc, dc, dc, dh): the gates' pre-activation gradients per unit of dc or dh
    local = np.subtract(1, gates)
    local *= gates  # sigmoid's derivative s (1 - s) (the g block is replaced below)
    local[..., :hidden] *= g
    local[..., hidden : 2 * hidden] *= cs[:-1]
    local_g = local[..., 2 * hidden : 3 * hidden]
    np.multiply(g, g, out=local_g)
    np.subtract(1, local_g, out=local_g)
    local_g *= i
    local[..., 3 * hidden :] *= tanh_cs
    local4 = local.reshape(steps, batch, 4, hidden)
    da = np.empty_like(gates)
    da4 = da.reshape(steps, batch, 4, hidden)
    dh, dhnext = np.zeros((2, batch, hidden), hs.dtype)
    dc3 = np.empty((batch, 1, hidden), hs.dtype)  # dc as (B, 1, H): broadcasts over i, f, g
    dc, dcnext = dc3[:, 0], np.array(dc_last, hs.dtype)
    back = zip(dhs, dc_dh, local4[:, :, :3], local4[:, :, 3], da4[:, :, :3], da4[:, :, 3], da, f)
    for dh_out, dc_dh_t, local_ifg, local_o, da_ifg, da_o, da_t, f_t in reversed(list(back)):
        np.add(dh_out, dhnext, out=dh)  # from this step's output and from the next step
        np.multiply(dh, dc_dh_t, out=dc)
        dc += dcnext
        np.multiply(local_ifg, dc3, out=da_ifg)  # da_i, da_f, da_g
        np.multiply(local_o, dh, out=da_o)
        np.multiply(dc, f_t, out=dcnext)
        da_t.dot(weight_hh, out=dhnext)
    dweight_hh = da.reshape(-1, 4 * hidden).T.dot(hs[:-1].reshape(-1, hidden))  # sum_t da h^T
    return da, dweight_hh, dhnext, dcnext


def gru_forward(
    xw: np.ndarray, weight_hh: np.ndarray, bias_hh: np.ndarray, h0: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The GRU over a sequence: for t = 0..T-1, with b = h @ weight_hh.T + bias_hh,

        r = sigmoid(xw_r + b_r);  z = sigmoid(xw_z + b_z);  n = tanh(xw_n + r * b_n)
        h' = (1 - z) * n + z * h                                          (blocks of H)

    xw (T, B, 3H): x @ weight_ih.T + bias_ih (bias_hh stays apart: r gates b_n);
    weight_hh (3H, H); bias_hh (3H,); h0 (B, H). Returns hs (T+1, B, H) (hs[0] = h0), the
    gates rz (T, B, 2H) (r, then z) and n (T, B, H), and b_n (T, B, H): what backward needs.
    """
    steps, (batch, hidden) = xw.shape[0], h0.shape
    dtype = np.result_type(xw, weight_hh, bias_hh, h0)
    hs = np.empty((steps + 1, batch, hidden), dtype)
    hs[0] = h0
    s = _gate_scale([0.5, 0.5, 1.0], hidden, dtype)  # r, z: sigmoid through tanh; n apart
    w_t = np.multiply(weight_hh.T, s, order="C")
    rz = np.add(xw[..., : 2 * hidden], bias_hh[: 2 * hidden], dtype=dtype)
    rz *= 0.5  # the scaled input share of r and z, biases in; activated in place below
    n, b_n = np.empty((2, steps, batch, hidden), dtype)
    x_n, bias_n = xw[..., 2 * hidden :], bias_hh[2 * hidden :]
    b = np.empty((batch, 3 * hidden), dtype)  # one step's h @ w_t
    # each step's r and z are one contiguous (B, 2H) block: numpy runs 2-3x faster over it
    # than over a column block of a (B, 3H) row
    per_step = zip(hs, hs[1:], x_n, rz, rz[..., :hidden], rz[..., hidden:], n, b_n)
    for h_prev, h, x_n_t, rz_t, r_t, z_t, n_t, b_n_t in per_step:  # twelve calls a step
        h_prev.dot(w_t, out=b)
        rz_t += b[:, : 2 * hidden]
        np.tanh(rz_t, out=rz_t)
        rz_t *= 0.5
        rz_t += 0.5  # r, z
        np.add(b[:, 2 * hidden :], bias_n, out=b_n_t)
        np.multiply(r_t, b_n_t, out=n_t)
        n_t += x_n_t
        np.tanh(n_t, out=n_t)  # n = tanh(xw_n + r * b_n)
        np.subtract(h_prev, n_t, out=h)
        h *= z_t
        h += n_t  # h' = n + z * (h - n)
    return hs, rz, n, b_n


def gru_backward(
    dhs: np.ndarray, hs: np.ndarray, rz: np.ndarray, n: np.ndarray, b_n: np.ndarray, weight_hh: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Backward of `gru_forward`, given dhs (T, B, H), the loss gradient reaching hs[1:].

    The chain rule of one step, from its output back (dh: the loss gradient at h'):

        h' = n + z * (h - n):         dn = dh * (1 - z);  dz = dh * (h - n);  dhnext = dh * z
        n = tanh(xw_n + r * b_n):     da_n = dn * (1 - n^2);  dr = da_n * b_n;  db_n = da_n * r
        r, z = sigmoid(.):            da_r = dr * r (1 - r);  da_z = dz * z (1 - z)
        b = h @ W_hh.T + bias_hh:     db = (da_r, da_z, db_n);  dhnext += db @ W_hh

    Returns dxw (T, B, 3H) = (da_r, da_z, da_n), dweight_hh (3H, H), dbias_hh (3H,), dh0 (B, H).
    """
    steps, batch, hidden = n.shape
    r, z = rz[..., :hidden], rz[..., hidden:]
    # the factors that do not depend on the gradient, for all steps before the loop
    one_minus_z = np.subtract(1, z)
    dz_dh = np.subtract(hs[:-1], n)
    dz_dh *= z
    dz_dh *= one_minus_z  # da_z = dh * (h - n) * z (1 - z)
    dn_dh = np.multiply(n, n)
    np.subtract(1, dn_dh, out=dn_dh)
    dn_dh *= one_minus_z  # da_n = dh * (1 - z) * (1 - n^2)
    dr_dn = np.subtract(1, r)
    dr_dn *= r
    dr_dn *= b_n  # da_r = da_n * b_n * r (1 - r)
    db = np.empty((steps, batch, 3 * hidden), n.dtype)  # (da_r, da_z, db_n) of every step
    da_n = np.empty_like(n)
    dhnext, dh = np.zeros((2, batch, hidden), n.dtype)
    back = zip(dhs, dz_dh, dn_dh, dr_dn, r, z, db, da_n)
    for dh_out, dz_dh_t, dn_dh_t, dr_dn_t, r_t, z_t, db_t, da_n_t in reversed(list(back)):
        np.add(dh_out, dhnext, out=dh)  # from this step's output and from the next step
        np.multiply(dh, dn_dh_t, out=da_n_t)
        np.multiply(da_n_t, dr_dn_t, out=db_t[:, :hidden])  # da_r
        np.multiply(dh, dz_dh_t, out=db_t[:, hidden : 2 * hidden])  # da_z
        np.multiply(da_n_t, r_t, out=db_t[:, 2 * hidden :])  # db_n
        db_t.dot(weight_hh, out=dhnext)
        dh *= z_t
        dhnext += dh
    db_all = db.reshape(-1, 3 * hidden)
    dweight_hh = db_all.T.dot(hs[:-1].reshape(-1, hidden))  # sum_t db h^T, one matmul
    dxw = np.concatenate([db[..., : 2 * hidden], da_n], axis=-1)
    return dxw, dweight_hh, db_all.sum(axis=0), dhnext
