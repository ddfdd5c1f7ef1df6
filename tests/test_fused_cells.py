"""The LSTM's and the GRU's hand-written BPTT (reference) and the fused ops built on them.

Checked against PyTorch's documented equations written out step by step (numpy only),
against the unfused composition of the engine's ops (`RNN(cell=...)`), against finite
differences, and against torch.nn.LSTM / torch.nn.GRU where installed.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tinygrad_rnn as tg
from tinygrad_rnn import Tensor, gradcheck, reference
from tinygrad_rnn.fused import GRURecurrence, LSTMRecurrence
from tinygrad_rnn.layers import RNN

TOL = {"rtol": 1e-10, "atol": 1e-10}
GATES = {"lstm": 4, "gru": 3}


# --- the reference's forward is PyTorch's documented equations -------------------------------
def _sigmoid(a: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-a))


def _lstm_as_documented(x, w_ih, w_hh, b_ih, b_hh, h, c):  # type: ignore[no-untyped-def]
    """torch.nn.LSTM's equations, one line each, one step at a time."""
    hs, hidden = [], h.shape[1]
    for x_t in x:
        gates = x_t @ w_ih.T + b_ih + h @ w_hh.T + b_hh
        a_i, a_f, a_g, a_o = (gates[:, k * hidden : (k + 1) * hidden] for k in range(4))
        i, f, g, o = _sigmoid(a_i), _sigmoid(a_f), np.tanh(a_g), _sigmoid(a_o)
        c = f * c + i * g
        h = o * np.tanh(c)
        hs.append(h)
    return np.stack(hs), c


def _gru_as_documented(x, w_ih, w_hh, b_ih, b_hh, h):  # type: ignore[no-untyped-def]
    """torch.nn.GRU's equations, one line each, one step at a time."""
    hs, H = [], h.shape[1]
    for x_t in x:
        r = _sigmoid(x_t @ w_ih[:H].T + b_ih[:H] + h @ w_hh[:H].T + b_hh[:H])
        z = _sigmoid(x_t @ w_ih[H : 2 * H].T + b_ih[H : 2 * H] + h @ w_hh[H : 2 * H].T + b_hh[H : 2 * H])
        n = np.tanh(x_t @ w_ih[2 * H :].T + b_ih[2 * H :] + r * (h @ w_hh[2 * H :].T + b_hh[2 * H :]))
        h = (1 - z) * n + z * h
        hs.append(h)
    return np.stack(hs)


def _weights(
    cell: str, n_in: int, hidden: int, rng: np.random.Generator, scale: float = 0.5
) -> list[np.ndarray]:
    """weight_ih, weight_hh, bias_ih, bias_hh in PyTorch's shapes."""
    rows = GATES[cell] * hidden
    shapes = [(rows, n_in), (rows, hidden), (rows,), (rows,)]
    return [rng.standard_normal(s) * scale for s in shapes]


@pytest.mark.parametrize("steps,batch,n_in,hidden", [(1, 1, 1, 1), (6, 3, 4, 5)])
def test_reference_forwards_are_pytorchs_documented_equations(
    steps: int, batch: int, n_in: int, hidden: int
) -> None:
    rng = np.random.default_rng(steps)
    x = rng.standard_normal((steps, batch, n_in))
    h0, c0 = rng.standard_normal((2, batch, hidden))
    w_ih, w_hh, b_ih, b_hh = _weights("lstm", n_in, hidden, rng, scale=1.0)
    hs, cs, gates, tanh_cs = reference.lstm_forward(x @ w_ih.T + b_ih + b_hh, w_hh, h0, c0)
    want_h, want_c = _lstm_as_documented(x, w_ih, w_hh, b_ih, b_hh, h0, c0)
    np.testing.assert_allclose(hs[1:], want_h, **TOL)
    np.testing.assert_allclose(cs[-1], want_c, **TOL)
    np.testing.assert_allclose(tanh_cs, np.tanh(cs[1:]), **TOL)
    assert gates.shape == (steps, batch, 4 * hidden) and hs.shape == cs.shape == (steps + 1, batch, hidden)
    w_ih, w_hh, b_ih, b_hh = _weights("gru", n_in, hidden, rng, scale=1.0)
    hs, rz, n, b_n = reference.gru_forward(x @ w_ih.T + b_ih, w_hh, b_hh, h0)
    np.testing.assert_allclose(hs[1:], _gru_as_documented(x, w_ih, w_hh, b_ih, b_hh, h0), **TOL)
    np.testing.assert_array_equal(hs[0], h0)
    # what backward gets besides: r and z, n, and b_n = h @ W_hn.T + b_hn, of every step
    H = hidden
    a_rz = x @ w_ih[: 2 * H].T + b_ih[: 2 * H] + hs[:-1] @ w_hh[: 2 * H].T + b_hh[: 2 * H]
    np.testing.assert_allclose(rz, _sigmoid(a_rz), **TOL)
    np.testing.assert_allclose(b_n, hs[:-1] @ w_hh[2 * H :].T + b_hh[2 * H :], **TOL)
    np.testing.assert_allclose(n, np.tanh(x @ w_ih[2 * H :].T + b_ih[2 * H :] + rz[..., :H] * b_n), **TOL)


# --- the fused ops against the engine's unfused composition ----------------------------------
def _fused(cell: str, x: Tensor, params: dict[str, Tensor], state: Any) -> tuple[Tensor, Any]:
    """One layer through the fused op: x (T, B, I) -> out (T, B, H), the last state."""
    steps, batch, n_in = x.shape
    w_ih, w_hh, b_ih, b_hh = (params[k] for k in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"))
    xw = (x.reshape(steps * batch, n_in) @ w_ih.T + b_ih).reshape(steps, batch, w_hh.shape[0])
    if cell == "lstm":
        out, c = LSTMRecurrence.apply(xw + b_hh, w_hh, *state)  # bias_hh folded, as LSTMCell does
        return out, (out[-1], c)
    out = GRURecurrence.apply(xw, w_hh, b_hh, state)
    return out, out[-1]


def _run(
    cell: str,
    fused: bool,
    sd: dict[str, np.ndarray],
    x_np: np.ndarray,
    s0: list[np.ndarray],
    r: dict[str, Optional[np.ndarray]],
    dtype: type = np.float64,
) -> dict[str, np.ndarray]:
    """Outputs, and the gradients of every input of sum(out * r_out) + sum(h_T * r_h) + sum(c_T * r_c)
    (a term whose r is None left out), through the fused op or `RNN(cell=...)`."""
    rnn = RNN(x_np.shape[2], s0[0].shape[1], cell=cell, dtype=dtype)
    rnn.load_state_dict({k: v.astype(dtype) for k, v in sd.items()})
    x = Tensor(x_np.astype(dtype), requires_grad=True)
    state = [Tensor(s.astype(dtype), requires_grad=True) for s in s0]
    given_state = tuple(state) if cell == "lstm" else state[0]
    if fused:
        out, last = _fused(cell, x, dict(rnn.named_parameters()), given_state)
    else:
        out, last = rnn(x, given_state)
    last = last if cell == "lstm" else (last,)
    terms = [(out, r["out"])] + list(zip(last, (r["h"], r["c"])))
    sum((t * w.astype(dtype)).sum() for t, w in terms if w is not None).backward()  # type: ignore[union-attr]
    result = {"out": out.data, "x": x.grad, **{f"{n}0": s.grad for n, s in zip("hc", state)}}
    result.update({f"{n}_T": p.data for n, p in zip("hc", last)})
    result.update({n: p.grad for n, p in rnn.named_parameters()})
    return result


def _draw(cell: str, steps: int, batch: int, n_in: int, hidden: int, seed: int) -> tuple[Any, ...]:
    rng = np.random.default_rng(seed)
    names = ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]
    sd = dict(zip(names, _weights(cell, n_in, hidden, rng)))
    x = rng.standard_normal((steps, batch, n_in))
    s0 = [rng.standard_normal((batch, hidden)) for _ in range(2 if cell == "lstm" else 1)]
    r = {k: rng.standard_normal((batch, hidden)) for k in ("h", "c")}
    r["out"] = rng.standard_normal((steps, batch, hidden))
    return sd, x, s0, r


def _assert_same(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert got.keys() == want.keys()
    for k in want:
        assert got[k] is not None, k
        assert got[k].dtype == want[k].dtype, k
        np.testing.assert_allclose(got[k], want[k], err_msg=k, **TOL)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@given(
    steps=st.integers(1, 6),
    batch=st.integers(1, 4),
    n_in=st.integers(1, 5),
    hidden=st.integers(1, 6),
    seed=st.integers(0, 2**16),
)
def test_fused_equals_unfused_outputs_and_every_gradient(
    cell: str, steps: int, batch: int, n_in: int, hidden: int, seed: int
) -> None:
    sd, x, s0, r = _draw(cell, steps, batch, n_in, hidden, seed)
    _assert_same(_run(cell, True, sd, x, s0, r), _run(cell, False, sd, x, s0, r))


@pytest.mark.parametrize("only", ["out", "h", "c"])
def test_lstm_gradient_through_one_output_alone(only: str) -> None:
    """A gradient on out alone, h_T alone or c_T alone: the other outputs' gradients are zeros."""
    sd, x, s0, r = _draw("lstm", 5, 2, 3, 4, seed=1)
    r = {k: (v if k == only else None) for k, v in r.items()}
    _assert_same(_run("lstm", True, sd, x, s0, r), _run("lstm", False, sd, x, s0, r))


def test_fused_ops_are_one_node_each() -> None:
    sd, x, s0, _ = _draw("lstm", 7, 2, 3, 4, seed=0)
    xw, w_hh = x @ sd["weight_ih_l0"].T, Tensor(sd["weight_hh_l0"], requires_grad=True)
    with tg.Tape() as tape:
        out, c = LSTMRecurrence.apply(xw, w_hh, *s0)
    assert len(tape) == 1 and "lstm_recurrence" in str(tape)
    assert out.shape == (7, 2, 4) and c.shape == (2, 4)


# --- finite differences ---------------------------------------------------------------------
def _lstm_outputs(xw: Tensor, w_hh: Tensor, h0: Tensor, c0: Tensor) -> Tensor:
    out, c = LSTMRecurrence.apply(xw, w_hh, h0, c0)
    return tg.concat([out.reshape(-1), c.reshape(-1)])


def _gru_outputs(xw: Tensor, w_hh: Tensor, b_hh: Tensor, h0: Tensor) -> Tensor:
    return GRURecurrence.apply(xw, w_hh, b_hh, h0)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@given(steps=st.integers(1, 4), batch=st.integers(1, 3), hidden=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_fused_ops_pass_gradcheck(cell: str, steps: int, batch: int, hidden: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    rows = GATES[cell] * hidden
    xw, w_hh = rng.standard_normal((steps, batch, rows)), rng.standard_normal((rows, hidden)) * 0.5
    h0, c0 = rng.standard_normal((2, batch, hidden))
    if cell == "lstm":
        fn, inputs = _lstm_outputs, [xw, w_hh, h0, c0]
    else:
        fn, inputs = _gru_outputs, [xw, w_hh, rng.standard_normal(rows) * 0.5, h0]
    assert gradcheck(fn, [Tensor(a, requires_grad=True) for a in inputs])


# --- float32, bad shapes ----------------------------------------------------------------------
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_float32_stays_float32_and_agrees_with_float64(cell: str) -> None:
    sd, x, s0, r = _draw(cell, 6, 3, 4, 5, seed=2)
    got, want = _run(cell, True, sd, x, s0, r, np.float32), _run(cell, False, sd, x, s0, r)
    for k in want:
        assert got[k].dtype == np.float32, k
        np.testing.assert_allclose(got[k], want[k], rtol=1e-4, atol=1e-4, err_msg=k)


def test_bad_shapes_name_the_op_and_the_shapes() -> None:
    z = np.zeros
    with pytest.raises(ValueError, match=r"lstm_recurrence: shapes xw \(5, 2, 12\), weight_hh \(16, 4\)"):
        LSTMRecurrence.apply(z((5, 2, 12)), z((16, 4)), z((2, 4)), z((2, 4)))
    with pytest.raises(ValueError, match=r"lstm_recurrence: .*c0 \(3, 4\)"):
        LSTMRecurrence.apply(z((5, 2, 16)), z((16, 4)), z((2, 4)), z((3, 4)))
    with pytest.raises(ValueError, match=r"gru_recurrence: .*bias_hh \(4,\)"):
        GRURecurrence.apply(z((5, 2, 12)), z((12, 4)), z(4), z((2, 4)))


# --- against PyTorch --------------------------------------------------------------------------
@pytest.mark.parametrize("cell", ["lstm", "gru"])
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])  # it only sets one thread
@given(steps=st.integers(1, 5), batch=st.integers(1, 3), n_in=st.integers(1, 4), hidden=st.integers(1, 5))
def test_fused_matches_torch(torch: Any, cell: str, steps: int, batch: int, n_in: int, hidden: int) -> None:
    sd, x_np, s0, r = _draw(cell, steps, batch, n_in, hidden, seed=steps * 100 + hidden)
    ours = _run(cell, True, sd, x_np, s0, r)
    theirs = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](n_in, hidden, dtype=torch.float64)
    with torch.no_grad():
        for name, p in theirs.named_parameters():
            p.copy_(torch.from_numpy(sd[name]))
    x = torch.tensor(x_np, requires_grad=True)
    state = [torch.tensor(s[None], requires_grad=True) for s in s0]  # PyTorch's (layers, B, H)
    out, last = theirs(x, tuple(state) if cell == "lstm" else state[0])
    last = last if cell == "lstm" else (last,)
    loss = (out * torch.from_numpy(r["out"])).sum()
    for part, name in zip(last, "hc"):
        loss = loss + (part[0] * torch.from_numpy(r[name])).sum()
    loss.backward()
    want: dict[str, Optional[np.ndarray]] = {"out": out.detach().numpy(), "x": x.grad.numpy()}
    want.update({f"{n}0": s.grad.numpy()[0] for n, s in zip("hc", state)})
    want.update({f"{n}_T": p.detach().numpy()[0] for n, p in zip("hc", last)})
    want.update({n: p.grad.numpy() for n, p in theirs.named_parameters()})
    _assert_same(ours, want)
