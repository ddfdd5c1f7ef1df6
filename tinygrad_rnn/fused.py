"""The reference's batched BPTT plugged into the engine as ordinary `Function`s.

Each is one node on the tape however long the sequence: the whole recurrence (and, for
`CharRNNLoss`, the output layer and the loss) runs in `reference`'s numpy loops, or, for the
plain RNN, in their compiled twins when `kernels.use("numba")` is on. The layers use them
when built with `fused=True`; tests check them against the composed ops.
"""

from __future__ import annotations

import numpy as np

from tinygrad_rnn import kernels, reference
from tinygrad_rnn.tensor import Context, Function


class RNNRecurrence(Function):
    """out[t] = tanh(xh[t] + out[t-1] @ weight_hh.T), out[-1] = h0, for t = 0..T-1.

    xh (T, B, H) is the input's share of each pre-activation (bias included), weight_hh
    (H, H), h0 (B, H); returns out (T, B, H).
    """

    name = "rnn_recurrence"

    @staticmethod
    def forward(ctx: Context, xh: np.ndarray, weight_hh: np.ndarray, h0: np.ndarray) -> np.ndarray:
        hs = kernels.rnn_forward(xh, weight_hh, h0)
        ctx.save_for_backward(hs, weight_hh)
        return hs[1:]

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        hs, weight_hh = ctx.saved_tensors
        dxh, dh0, dweight_hh = kernels.rnn_backward(grad, hs, weight_hh)
        return dxh, dweight_hh, dh0


class CharRNNLoss(Function):
    """The char-RNN's whole training loss as one op (see `reference.charrnn_forward`).

    Inputs: embed (V, H), weight_hh (H, H), bias_h (H,), head_weight (V, H), head_bias (V,),
    h0 (B, H); options: inputs and targets int (T, B). Two outputs: the scalar loss and the
    last hidden state h_T (B, H). A gradient reaching h_T (zeros when it is unused or
    detached, as callers carrying it to the next chunk do) joins the BPTT at the last step.
    """

    name = "charrnn_loss"

    @staticmethod
    def forward(
        ctx: Context,
        embed: np.ndarray,
        weight_hh: np.ndarray,
        bias_h: np.ndarray,
        head_weight: np.ndarray,
        head_bias: np.ndarray,
        h0: np.ndarray,
        inputs: np.ndarray,
        targets: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        loss, hs, p = kernels.charrnn_forward(
            embed, weight_hh, bias_h, head_weight, head_bias, h0, inputs, targets
        )
        ctx.save_for_backward(weight_hh, head_weight, hs, p)
        ctx.inputs, ctx.targets = inputs, targets
        return np.asarray(loss, dtype=hs.dtype), hs[-1].copy()  # a copy: hs stays as saved

    @staticmethod
    def backward(ctx: Context, *grads: np.ndarray) -> tuple[np.ndarray, ...]:
        grad, grad_h = grads  # one per output: the loss's, h_T's
        weight_hh, head_weight, hs, p = ctx.saved_tensors
        return kernels.charrnn_backward(
            weight_hh, head_weight, ctx.inputs, ctx.targets, hs, p, scale=float(grad), dh_last=grad_h
        )


def _check_shapes(op: str, gates: int, xw: np.ndarray, weight_hh: np.ndarray, **others: np.ndarray) -> None:
    """A ValueError naming the op and every shape unless xw (T, B, gates*H), weight_hh
    (gates*H, H) and the others (states (B, H); bias_hh (gates*H,)) fit together."""
    rows, hidden = gates * weight_hh.shape[-1], weight_hh.shape[-1]
    steps, batch = xw.shape[:2] if xw.ndim == 3 else (-1, -1)
    want = {"xw": (steps, batch, rows), "weight_hh": (rows, hidden)}
    want.update({k: (rows,) if k.startswith("bias") else (batch, hidden) for k in others})
    got = {"xw": xw.shape, "weight_hh": weight_hh.shape, **{k: a.shape for k, a in others.items()}}
    if got != want:
        shapes = ", ".join(f"{k} {v}" for k, v in got.items())
        raise ValueError(f"{op}: shapes {shapes} do not fit (xw (T, B, {gates}H), weight_hh ({gates}H, H))")


class LSTMRecurrence(Function):
    """The LSTM over a sequence (see `reference.lstm_forward`): two outputs, out and c_T.

    xw (T, B, 4H) is the input's share of the gates, x @ weight_ih.T + bias_ih + bias_hh
    (the biases summed once, `LSTMCell.input_bias`), weight_hh (4H, H), h0 and c0 (B, H);
    returns out (T, B, H), every step's h (h_T is out[-1]), and c_T (B, H), the last cell state.
    """

    name = "lstm_recurrence"

    @staticmethod
    def forward(
        ctx: Context, xw: np.ndarray, weight_hh: np.ndarray, h0: np.ndarray, c0: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        _check_shapes("lstm_recurrence", 4, xw, weight_hh, h0=h0, c0=c0)
        hs, cs, gates, tanh_cs = reference.lstm_forward(xw, weight_hh, h0, c0)
        ctx.save_for_backward(hs, cs, gates, tanh_cs, weight_hh)
        return hs[1:], cs[-1]

    @staticmethod
    def backward(ctx: Context, *grads: np.ndarray) -> tuple[np.ndarray, ...]:
        dout, dc_last = grads  # one per output; zeros for an output that got none
        hs, cs, gates, tanh_cs, weight_hh = ctx.saved_tensors
        dxw, dweight_hh, dh0, dc0 = reference.lstm_backward(dout, dc_last, hs, cs, gates, tanh_cs, weight_hh)
        return dxw, dweight_hh, dh0, dc0


class GRURecurrence(Function):
    """The GRU over a sequence (see `reference.gru_forward`).

    xw (T, B, 3H) is the input's share of the gates, x @ weight_ih.T + bias_ih (bias_hh stays
    an input: r gates its n block), weight_hh (3H, H), bias_hh (3H,), h0 (B, H); returns
    out (T, B, H), every step's h (h_T is out[-1]).
    """

    name = "gru_recurrence"

    @staticmethod
    def forward(
        ctx: Context, xw: np.ndarray, weight_hh: np.ndarray, bias_hh: np.ndarray, h0: np.ndarray
    ) -> np.ndarray:
        _check_shapes("gru_recurrence", 3, xw, weight_hh, bias_hh=bias_hh, h0=h0)
        hs, rz, n, b_n = reference.gru_forward(xw, weight_hh, bias_hh, h0)
        ctx.save_for_backward(hs, rz, n, b_n, weight_hh)
        return hs[1:]

    @staticmethod
    def backward(ctx: Context, dout: np.ndarray) -> tuple[np.ndarray, ...]:
        hs, rz, n, b_n, weight_hh = ctx.saved_tensors
        dxw, dweight_hh, dbias_hh, dh0 = reference.gru_backward(dout, hs, rz, n, b_n, weight_hh)
        return dxw, dweight_hh, dbias_hh, dh0
