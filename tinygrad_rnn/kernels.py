"""Compiled kernels for the plain RNN's fused loops and Adagrad (optional), and the switch that picks them.

Why: at the seed's size (B=1, H=64, T=25) a training step is a few hundred numpy calls on
arrays of 64 numbers; each call costs about a microsecond of dispatch, more than its
arithmetic. The same loops compiled by numba run without that cost.

What: `rnn_forward`, `rnn_backward`, `charrnn_forward` and `charrnn_backward`, with the
signatures and results of `tinygrad_rnn.reference`'s functions of the same names (the ones
`fused.RNNRecurrence` and `fused.CharRNNLoss` call). Each runs the reference (numpy, the
default and the oracle the tests check against) or its loop twin below, compiled by numba.
The loops are the reference's math written element by element; they agree with it to about
1e-15 relative in float64 (sums in another order; the tests ask for 1e-12) and keep float32
as float32. And `adagrad_update`, the seed's optimizer's update of one parameter (`optim.Adagrad`
calls it): numpy's seven calls, or one compiled pass for any size (0.6x numpy's time for the
seed's 64 x 64 matrix, vectorised: error_model="numpy" lets division and sqrt be, as numpy's,
IEEE operations instead of Python's checked ones).

When it wins: where one time step's state is small, B*H at most `COMPILED_MAX_STATE` (64;
the loss's forward and backward take 0.6x numpy's time at the seed's size; the measurements
are next to it). Above that the numpy path runs even when numba is on: BLAS's matmuls beat
plain loops (3x at the scale config B=32, H=256).

How: `pip install "tinygrad-rnn[compiled]"`, then

    from tinygrad_rnn import kernels
    kernels.use("numba")              # returns the previous choice, "numpy" by default
    with kernels.using("numba"): ...  # or for a block only

The choice is global (all threads). numba is imported at the first `use("numba")`, never by
`import tinygrad_rnn`; each loop is compiled at its first call for each dtype (a few
seconds), and cached on disk: in NUMBA_CACHE_DIR if set, else in `__pycache__` next to
this file, else in numba's per-user cache directory, else nowhere (then every process
compiles again). `using` is for one thread at a time: two threads entering and leaving it
interleaved can leave the other choice in force.
"""

from __future__ import annotations

import contextlib
import types
from typing import Any, Callable, Iterator, Optional

import numpy as np

from tinygrad_rnn import reference

CHOICES = ("numpy", "numba")
_active = "numpy"
_compiled: dict[str, Callable[..., Any]] = {}  # loop name -> numba dispatcher, filled by _compile

# The loops run where B*H <= COMPILED_MAX_STATE. Their time over numpy's, one thread, for
# (B,H), V=22, T=25, float64 unless said: the char-RNN loss forward+backward / rnn_forward+
# rnn_backward (timeit, best of 5 each, the median of 3 such ratios):
#   B*H <= 64:  (1,16) 0.27/0.18, (1,32) 0.38/0.31, (1,64) 0.63/0.58 (the seed), (2,32) 0.62/0.51,
#               (4,16) 0.64/0.49, (1,64 V=65 T=64 float32) 0.84/0.65, (2,32 V=65 T=64 float32) 0.91/0.58
#   above:      (1,80) 0.67/0.74, (1,96) 0.83/0.88, (2,48) 0.80/0.86, (1,128) 1.01/1.07,
#               (2,64) 1.01/1.10, (4,32 V=65 T=16 float32) 1.00/0.87,
#               (32,256 V=65 T=64 float32: the scale config) 3.1/-
# numpy's per-call cost is fixed, the loops' grows with B*H*H: they win clearly up to 64 and
# are even by 128.
COMPILED_MAX_STATE = 64
_FASTMATH = {"reassoc", "contract"}


def active() -> str:
    """The kernels in use: "numpy" (the default) or "numba"."""
    return _active


def use(name: str) -> str:
    """Pick the kernels of the fused RNN ops: "numpy" or "numba". Returns the previous choice.

    The choice is global (all threads). "numba" raises RuntimeError when numba is not installed.
    """
    global _active
    if name not in CHOICES:
        raise ValueError(f"kernels.use: expected one of {', '.join(CHOICES)}, got {name!r}")
    if name == "numba":
        _compile()
    previous, _active = _active, name
    return previous


@contextlib.contextmanager
def using(name: str) -> Iterator[None]:
    """`with kernels.using("numba"):` the block runs with those kernels; the previous ones return after."""
    previous = use(name)
    try:
        yield
    finally:
        use(previous)


def _compile() -> None:
    """Hand the loops below to numba (which compiles each at its first call, per dtype)."""
    if _compiled:
        return
    try:
        import numba
    except ImportError:
        raise RuntimeError(
            'kernels.use("numba"): numba is not installed; pip install "tinygrad-rnn[compiled]"'
        ) from None
    # The loops call one another by name: compile each with globals in which those names are
    # the compiled loops (the plain functions below stay as they are).
    namespace: dict[str, Any] = {"np": np, "__name__": __name__}
    for name in _LOOPS:
        loop = types.FunctionType(globals()[name].__code__, namespace, name)
        try:
            namespace[name] = numba.njit(cache=True, fastmath=_FASTMATH, error_model="numpy")(loop)
        except RuntimeError:  # numba finds no writable cache directory: compile in every process
            namespace[name] = numba.njit(fastmath=_FASTMATH, error_model="numpy")(loop)
    _compiled.update((name, namespace[name]) for name in _LOOPS)


def _wins(batch: int, hidden: int) -> bool:
    return _active == "numba" and batch * hidden <= COMPILED_MAX_STATE


# --- the switch: one function per reference function ------------------------------------------
def rnn_forward(xh: np.ndarray, weight_hh: np.ndarray, h0: np.ndarray) -> np.ndarray:
    """`reference.rnn_forward`: xh (T, B, H), weight_hh (H, H), h0 (B, H) -> hs (T+1, B, H)."""
    if not _wins(*h0.shape):
        return reference.rnn_forward(xh, weight_hh, h0)
    return _compiled["_rnn_forward_loops"](*_one_dtype(xh, weight_hh, h0))


def rnn_backward(
    dhs: np.ndarray, hs: np.ndarray, weight_hh: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`reference.rnn_backward`: dhs (T, B, H), hs (T+1, B, H) -> dxh, dh0, dweight_hh."""
    if not _wins(*hs.shape[1:]):
        return reference.rnn_backward(dhs, hs, weight_hh)
    return _compiled["_rnn_backward_loops"](*_one_dtype(dhs, hs, weight_hh))


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
    """`reference.charrnn_forward`: the loss, hs (T+1, B, H) and p (T*B, V)."""
    if not _wins(*h0.shape):
        return reference.charrnn_forward(embed, weight_hh, bias, head_weight, head_bias, h0, inputs, targets)
    weights = _one_dtype(embed, weight_hh, bias, head_weight, head_bias, h0)
    loss, hs, p = _compiled["_charrnn_forward_loops"](*weights, *_ids(inputs, targets))
    return float(loss), hs, p


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
    """`reference.charrnn_backward`: gradients of `scale * loss` w.r.t. embed, weight_hh, bias,
    head_weight, head_bias, h0."""
    if not _wins(*hs.shape[1:]):
        return reference.charrnn_backward(weight_hh, head_weight, inputs, targets, hs, p, scale, dh_last)
    weight_hh, head_weight, hs, p = _one_dtype(weight_hh, head_weight, hs, p)
    dh_last = np.zeros(hs.shape[1:], hs.dtype) if dh_last is None else np.ascontiguousarray(dh_last, hs.dtype)
    scale_b = hs.dtype.type(scale / inputs.shape[1])  # the loss is averaged over the batch
    loops = _compiled["_charrnn_backward_loops"]
    return loops(weight_hh, head_weight, *_ids(inputs, targets), hs, p, scale_b, dh_last)


def adagrad_update(
    param: np.ndarray, grad: np.ndarray, sum_sq: np.ndarray, lr: float, eps: float
) -> np.ndarray:
    """Adagrad's update of one parameter, in place: sum_sq += grad * grad, then
    param -= lr * grad / sqrt(sum_sq + eps). Returns param (grad and sum_sq of its shape).

    Compiled, it is one pass instead of seven numpy calls: at the seed's size the optimizer's
    numpy calls cost as much as the fused loss's compiled loops.
    """
    contiguous = param.flags.c_contiguous and sum_sq.flags.c_contiguous
    if _active != "numba" or not contiguous or grad.dtype != param.dtype or sum_sq.dtype != param.dtype:
        sum_sq += grad * grad
        param -= lr * grad / np.sqrt(sum_sq + eps)
        return param
    dtype = param.dtype.type  # lr and eps in the arrays' dtype: float32 stays float32
    loop = _compiled["_adagrad_update_loop"]
    loop(param.reshape(-1), grad.reshape(-1), sum_sq.reshape(-1), dtype(lr), dtype(eps))
    return param


def _one_dtype(*arrays: np.ndarray) -> list[np.ndarray]:
    """The arrays in their common dtype (the reference's results have it) and in C order, as
    the loops are compiled once per dtype and layout; no copy for those that are already."""
    dtype = np.result_type(*arrays)
    return [np.ascontiguousarray(a, dtype) for a in arrays]


def _ids(*ids: np.ndarray) -> list[np.ndarray]:
    """Id arrays in C order, in their own integer dtype."""
    return [np.ascontiguousarray(a) for a in ids]


# --- the loops (numba compiles them; in plain Python they are correct but slow) -----------------
# The reference's math element by element, with the same names. Sums run in the order the
# compiler likes (fastmath "reassoc": vectorised dot products; "contract": fused multiply-
# adds); nothing else of fastmath, so inf and NaN behave as in numpy. A BLAS sums in its own
# order too: the results agree with numpy's to ~1e-15 in float64 (tests/test_kernels.py).
# `zero` is 0 in the arrays' dtype, so that float32 sums stay float32 as numpy's do.
def _rnn_forward_loops(xh: np.ndarray, weight_hh: np.ndarray, h0: np.ndarray) -> np.ndarray:
    """hs (T+1, B, H): hs[0] = h0, hs[t+1] = tanh(xh[t] + hs[t] @ weight_hh.T)."""
    steps, batch, hidden = xh.shape
    hs = np.empty((steps + 1, batch, hidden), xh.dtype)
    hs[0] = h0
    for t in range(steps):
        for b in range(batch):
            h_prev, h = hs[t, b], hs[t + 1, b]
            for i in range(hidden):
                s = xh[t, b, i]
                for j in range(hidden):
                    s += weight_hh[i, j] * h_prev[j]
                h[i] = s
            for i in range(hidden):  # a loop of its own: 1.2x faster than tanh(s) above
                h[i] = _tanh(h[i])
    return hs


def _tanh(x: Any) -> Any:
    """tanh(x) = (1 - e) / (1 + e) with e = exp(-2|x|), for |x| >= 1/2; np.tanh below.

    One exp is 1.6x faster than libm's tanh (which pays for an expm1), and as exact here:
    e <= exp(-1), so neither 1 - e nor the quotient amplifies exp's error (a few ulp at most).
    """
    if np.abs(x) < 0.5:  # (1 - e) would cancel: tanh(x) ~ x
        return np.tanh(x)
    e = np.exp(-2 * np.abs(x))
    return np.copysign((1 - e) / (1 + e), x)


def _rnn_backward_loops(
    dhs: np.ndarray, hs: np.ndarray, weight_hh: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dhraw (T, B, H) (the gradient of every xh), dh0 (B, H), dweight_hh (H, H) from dhs (T, B, H)."""
    steps, batch, hidden = dhs.shape
    zero, one = dhs.dtype.type(0), dhs.dtype.type(1)
    dhraw = np.empty_like(dhs)
    dhnext = np.zeros((batch, hidden), dhs.dtype)
    w_t = np.ascontiguousarray(weight_hh.T)  # its rows: the columns of weight_hh
    for t in range(steps - 1, -1, -1):
        for b in range(batch):
            h, d = hs[t + 1, b], dhraw[t, b]
            for i in range(hidden):
                d[i] = (one - h[i] * h[i]) * (dhs[t, b, i] + dhnext[b, i])  # dh through tanh
            for j in range(hidden):  # dhnext = dhraw @ weight_hh
                s = zero
                for i in range(hidden):
                    s += w_t[j, i] * d[i]
                dhnext[b, j] = s
    dweight_hh = np.zeros((hidden, hidden), dhs.dtype)
    for t in range(steps):  # dweight_hh = the sum over steps of dhraw^T h_prev
        for b in range(batch):
            for i in range(hidden):
                d_i = dhraw[t, b, i]
                for j in range(hidden):
                    dweight_hh[i, j] += d_i * hs[t, b, j]
    return dhraw, dhnext, dweight_hh


def _check_ids(inputs: np.ndarray, targets: np.ndarray, vocab: int) -> None:
    """IndexError unless every id is in [0, vocab): compiled loops do not check their indices."""
    for t in range(inputs.shape[0]):
        for b in range(inputs.shape[1]):
            if not (0 <= inputs[t, b] < vocab and 0 <= targets[t, b] < vocab):
                raise IndexError("kernels: an input or target id is outside [0, V)")


def _charrnn_forward_loops(
    embed: np.ndarray,
    weight_hh: np.ndarray,
    bias: np.ndarray,
    head_weight: np.ndarray,
    head_bias: np.ndarray,
    h0: np.ndarray,
    inputs: np.ndarray,
    targets: np.ndarray,
) -> tuple[float, np.ndarray, np.ndarray]:
    """The summed cross-entropy / B, hs (T+1, B, H) and p (T*B, V), as `reference.charrnn_forward`."""
    steps, batch = inputs.shape
    vocab, hidden = head_weight.shape
    _check_ids(inputs, targets, min(vocab, embed.shape[0]))
    xh = np.empty((steps, batch, hidden), embed.dtype)
    for t in range(steps):
        for b in range(batch):
            for i in range(hidden):
                xh[t, b, i] = embed[inputs[t, b], i] + bias[i]
    hs = _rnn_forward_loops(xh, weight_hh, h0)
    p = np.empty((steps * batch, vocab), embed.dtype)
    zero = embed.dtype.type(0)
    loss = 0.0
    for t in range(steps):
        for b in range(batch):
            h, y = hs[t + 1, b], p[t * batch + b]
            for v in range(vocab):  # the logits y = h @ head_weight.T + head_bias
                s = head_bias[v]
                for i in range(hidden):
                    s += head_weight[v, i] * h[i]
                y[v] = s
            top = y.max()  # log-sum-exp, shifted
            picked = y[targets[t, b]] - top
            total = zero
            for v in range(vocab):
                y[v] = np.exp(y[v] - top)
                total += y[v]
            loss += np.log(total) - picked
            for v in range(vocab):
                y[v] /= total  # now the softmax p
    return loss / batch, hs, p


def _charrnn_backward_loops(
    weight_hh: np.ndarray,
    head_weight: np.ndarray,
    inputs: np.ndarray,
    targets: np.ndarray,
    hs: np.ndarray,
    p: np.ndarray,
    scale: Any,
    dh_last: np.ndarray,
) -> tuple[np.ndarray, ...]:
    """Gradients of `scale` (already / B) * the loss w.r.t. embed, weight_hh, bias, head_weight,
    head_bias, h0, as `reference.charrnn_backward`; dh_last (B, H) joins at the last step."""
    steps, batch = inputs.shape
    vocab, hidden = head_weight.shape
    _check_ids(inputs, targets, vocab)
    dhead_weight = np.zeros((vocab, hidden), p.dtype)
    dhead_bias = np.zeros(vocab, p.dtype)
    dhs = np.zeros((steps, batch, hidden), p.dtype)
    dhs[steps - 1] = dh_last
    dy = np.empty(vocab, p.dtype)
    for t in range(steps):
        for b in range(batch):
            h, dh = hs[t + 1, b], dhs[t, b]
            for v in range(vocab):
                dy[v] = p[t * batch + b, v] * scale
            dy[targets[t, b]] -= scale  # the seed's dy = p - onehot(target)
            for v in range(vocab):  # dhead_weight += dy^T h; dh += dy @ head_weight
                dhead_bias[v] += dy[v]
                for i in range(hidden):
                    dhead_weight[v, i] += dy[v] * h[i]
                    dh[i] += dy[v] * head_weight[v, i]
    dhraw, dh0, dweight_hh = _rnn_backward_loops(dhs, hs, weight_hh)
    dembed = np.zeros((vocab, hidden), p.dtype)
    for t in range(steps):
        for b in range(batch):
            for i in range(hidden):
                dembed[inputs[t, b], i] += dhraw[t, b, i]
    dbias = np.zeros(hidden, p.dtype)
    for v in range(vocab):  # every step's dhraw is in one row of dembed
        for i in range(hidden):
            dbias[i] += dembed[v, i]
    return dembed, dweight_hh, dbias, dhead_weight, dhead_bias, dh0


def _adagrad_update_loop(param: np.ndarray, grad: np.ndarray, sum_sq: np.ndarray, lr: Any, eps: Any) -> None:
    """`adagrad_update` over flat param, grad and sum_sq (N,), in place."""
    for i in range(param.size):
        g = grad[i]
        sum_sq[i] += g * g
        param[i] -= lr * g / np.sqrt(sum_sq[i] + eps)


_LOOPS = (
    "_tanh",
    "_check_ids",
    "_rnn_forward_loops",
    "_rnn_backward_loops",
    "_charrnn_forward_loops",
    "_charrnn_backward_loops",
    "_adagrad_update_loop",
)
