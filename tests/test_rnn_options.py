"""RNN's PyTorch options: nonlinearity, bias, batch_first, dropout, bidirectional (and fused with them).

Every option against torch.nn.RNN/LSTM/GRU with the weights copied (outputs, last states,
gradients of the input, the first state and every weight, to 1e-10 in float64), and
without torch: an independent numpy recurrence, finite differences, layouts and names.
"""

from __future__ import annotations

import warnings
from typing import Any, Optional

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinygrad_rnn import Tensor
from tinygrad_rnn.gradcheck import agrees, numerical_gradient
from tinygrad_rnn.layers import RNN, CharRNN, Dropout, Module, RNNCell
from tinygrad_rnn.tape import no_grad

TOL = {"rtol": 1e-10, "atol": 1e-10}
PARTS = {"rnn": 1, "lstm": 2, "gru": 1}  # tensors in a state: h, or (h, c)


def _load_random(m: Module, rng: np.random.Generator, scale: float = 0.6) -> dict[str, np.ndarray]:
    sd = {k: rng.standard_normal(v.shape) * scale for k, v in m.state_dict().items()}
    m.load_state_dict(sd)
    return sd


def _ours(a: np.ndarray, n: int) -> np.ndarray:
    """A state of PyTorch's layout (L*D, B, H) in ours: (B, H) when L*D is 1."""
    return a[0] if n == 1 else a


def _state_arg(parts: list[Any]) -> Any:
    return tuple(parts) if len(parts) == 2 else parts[0]


# --- an independent numpy recurrence ---------------------------------------------------------
def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


def _np_step(
    cell: str, x: np.ndarray, s: list[np.ndarray], p: list[Optional[np.ndarray]], relu: bool
) -> list:
    """One step of PyTorch's documented equations; p = [w_ih, w_hh, b_ih, b_hh] (None: no bias)."""
    w_ih, w_hh, b_ih, b_hh = p
    a = x @ w_ih.T + (0 if b_ih is None else b_ih)
    b = s[0] @ w_hh.T + (0 if b_hh is None else b_hh)
    if cell == "rnn":
        return [np.maximum(a + b, 0) if relu else np.tanh(a + b)]
    if cell == "lstm":
        i, f, g, o = np.split(a + b, 4, axis=1)
        c = _sigmoid(f) * s[1] + _sigmoid(i) * np.tanh(g)
        return [_sigmoid(o) * np.tanh(c), c]
    (a_r, a_z, a_n), (b_r, b_z, b_n) = np.split(a, 3, axis=1), np.split(b, 3, axis=1)
    r, z = _sigmoid(a_r + b_r), _sigmoid(a_z + b_z)
    n = np.tanh(a_n + r * b_n)
    return [(1 - z) * n + z * s[0]]


def _np_rnn(m: RNN, x: np.ndarray, s0: list[np.ndarray], masks: Optional[list[np.ndarray]] = None) -> tuple:
    """m's forward in numpy: x (T, B, I), s0 parts (L*D, B, H) -> out (T, B, D*H), last parts.

    Each direction runs over its own copy of the time axis (reversed for `_reverse`), its
    outputs put back in time order; the directions' outputs are concatenated. masks[k-1]
    (already scaled) multiplies layer k's input.
    """
    sd, dirs = m.state_dict(), 2 if m.bidirectional else 1
    last: list[list[np.ndarray]] = [[] for _ in s0]
    for k in range(m.num_layers):
        if k > 0 and masks is not None:
            x = x * masks[k - 1]
        outs = []
        for d in range(dirs):
            sfx = f"_l{k}" + ("_reverse" if d else "")
            b_ih = sd.get("bias_ih" + sfx, sd.get("bias_h" + sfx))  # our plain cell's one bias
            p = [sd["weight_ih" + sfx], sd["weight_hh" + sfx], b_ih, sd.get("bias_hh" + sfx)]
            s = [part[k * dirs + d] for part in s0]
            hs = []
            for t in reversed(range(len(x))) if d else range(len(x)):
                s = _np_step(m.cell, x[t], s, p, m.nonlinearity == "relu")
                hs.append(s[0])
            outs.append(np.stack(hs[::-1] if d else hs))
            for j, part in enumerate(s):
                last[j].append(part)
        x = np.concatenate(outs, axis=2)
    return x, [np.stack(parts) for parts in last]


# --- against PyTorch -------------------------------------------------------------------------
def _torch_module(torch: Any, m: RNN, dropout: float) -> Any:
    cls = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[m.cell]
    kw = {"nonlinearity": m.nonlinearity} if m.cell == "rnn" else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's own warning for dropout with one layer
        return cls(m.input_size, m.hidden_size, num_layers=m.num_layers, bias=m.bias,
                   batch_first=m.batch_first, dropout=dropout, bidirectional=m.bidirectional,
                   dtype=torch.float64, **kw)  # fmt: skip


def _copy_into_torch(torch: Any, theirs: Any, sd: dict[str, np.ndarray]) -> dict[str, str]:
    """Our weights into torch's module; returns torch's name -> ours (our plain cell's one
    bias bias_h is torch's bias_ih, with torch's bias_hh zero)."""
    names = {}
    with torch.no_grad():
        for name, p in theirs.named_parameters():
            ours = name if name in sd else name.replace("bias_ih", "bias_h")
            if ours in sd:
                p.copy_(torch.from_numpy(sd[ours]))
                names[name] = ours
            else:
                assert name.startswith("bias_hh"), name
                p.zero_()
    return names


def _projected(out: Any, parts: list[Any], r_out: Any, *r_s: Any) -> Any:
    """sum(out * r_out) + sum(part * r) over the state's parts: every output reaches the loss
    (ours or torch's tensors alike)."""
    loss = (out * r_out).sum()
    for part, r in zip(parts, r_s):
        loss = loss + (part * r).sum()
    return loss


options = st.fixed_dictionaries(
    {
        "cell": st.sampled_from(["rnn", "lstm", "gru"]),
        "relu": st.booleans(),
        "bias": st.booleans(),
        "batch_first": st.booleans(),
        "bidirectional": st.booleans(),
        "num_layers": st.integers(1, 3),
        "dropout": st.sampled_from(["none", "eval", "all"]),  # p=0; p=0.5 in eval; p=1 in training
        "fused": st.booleans(),
        "sizes": st.tuples(st.integers(1, 4), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3)),
        "seed": st.integers(0, 2**16),
    }
)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(options)
def test_every_option_matches_torch(torch: Any, o: dict[str, Any]) -> None:
    steps, batch, n_in, hidden = o["sizes"]
    relu = o["relu"] and o["cell"] == "rnn"
    fused = o["fused"] and o["cell"] == "rnn" and not relu
    p = {"none": 0.0, "eval": 0.5, "all": 1.0}[o["dropout"]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # dropout with one layer
        m = RNN(n_in, hidden, fused, cell=o["cell"], num_layers=o["num_layers"],
                nonlinearity="relu" if relu else "tanh", bias=o["bias"], batch_first=o["batch_first"],
                dropout=p, bidirectional=o["bidirectional"])  # fmt: skip
    theirs = _torch_module(torch, m, p)
    if o["dropout"] == "eval":
        m.eval()
        theirs.eval()
    rng = np.random.default_rng(o["seed"])
    names = _copy_into_torch(torch, theirs, _load_random(m, rng))
    n = o["num_layers"] * (2 if o["bidirectional"] else 1)
    x_shape = (batch, steps, n_in) if o["batch_first"] else (steps, batch, n_in)
    x_np = rng.standard_normal(x_shape)
    s0_np = [rng.standard_normal((n, batch, hidden)) for _ in range(PARTS[o["cell"]])]
    r_out = rng.standard_normal(x_shape[:2] + (hidden * (2 if o["bidirectional"] else 1),))
    r_s = [rng.standard_normal(a.shape) for a in s0_np]

    x, s0 = Tensor(x_np, requires_grad=True), [Tensor(_ours(a, n), requires_grad=True) for a in s0_np]
    out, s = m(x, _state_arg(s0))
    s_parts = list(s) if isinstance(s, tuple) else [s]
    _projected(out, s_parts, r_out, *[_ours(r, n) for r in r_s]).backward()
    tx, ts0 = torch.tensor(x_np, requires_grad=True), [torch.tensor(a, requires_grad=True) for a in s0_np]
    tout, ts = theirs(tx, _state_arg(ts0))
    ts_parts = list(ts) if isinstance(ts, tuple) else [ts]
    _projected(tout, ts_parts, *[torch.from_numpy(r) for r in (r_out, *r_s)]).backward()

    np.testing.assert_allclose(out.data, tout.detach().numpy(), **TOL)
    for part, tpart in zip(s_parts, ts_parts):
        np.testing.assert_allclose(part.data, _ours(tpart.detach().numpy(), n), **TOL)
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), **TOL)
    for a, t in zip(s0, ts0):
        np.testing.assert_allclose(a.grad, _ours(t.grad.numpy(), n), **TOL)
    ours_params = dict(m.named_parameters())
    assert sorted(ours_params) == sorted(names.values())  # every weight of ours is compared
    for name, tp in theirs.named_parameters():
        if name in names:
            np.testing.assert_allclose(ours_params[names[name]].grad, tp.grad.numpy(), **TOL, err_msg=name)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_names_and_shapes_are_torchs(torch: Any, cell: str) -> None:
    m = RNN(3, 4, cell=cell, num_layers=2, bidirectional=True, bias=False)
    theirs = _torch_module(torch, m, 0.0)
    assert {k: v.shape for k, v in m.state_dict().items()} == {
        k: tuple(v.shape) for k, v in theirs.state_dict().items()
    }
    assert list(m.state_dict()) == list(theirs.state_dict())


def test_charrnn_dropout_is_torchs_stack_in_eval_and_with_p_1(torch: Any) -> None:
    """CharRNN(dropout=p): nn.Embedding -> nn.GRU(dropout=p) -> nn.Dropout(p) -> nn.Linear."""
    vocab, hidden = 6, 4
    ours = CharRNN(vocab, hidden, cell="gru", num_layers=2, dropout=1.0)
    sd = _load_random(ours, np.random.default_rng(0))
    embed, head = torch.nn.Embedding(vocab, hidden, dtype=torch.float64), torch.nn.Linear(hidden, vocab)
    gru = torch.nn.GRU(hidden, hidden, num_layers=2, dropout=1.0, dtype=torch.float64)
    head, drop = head.double(), torch.nn.Dropout(1.0)
    for prefix, mod in (("embed", embed), ("rnn", gru), ("head", head)):
        mod.load_state_dict(
            {k[len(prefix) + 1 :]: torch.from_numpy(v) for k, v in sd.items() if k.startswith(prefix)}
        )
    ids = np.random.default_rng(1).integers(0, vocab, (5, 2))
    for training in (True, False):
        for mod in (ours, drop, gru):
            mod.train(training)
        logits, _ = ours(ids)
        tout, _ = gru(embed(torch.from_numpy(ids)))
        np.testing.assert_allclose(logits.data, head(drop(tout)).detach().numpy(), **TOL)


# --- without PyTorch: the numpy recurrence --------------------------------------------------
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("bias", [True, False])
def test_bidirectional_stack_is_two_numpy_recurrences_concatenated(cell: str, bias: bool) -> None:
    rng = np.random.default_rng(3)
    m = RNN(3, 4, cell=cell, num_layers=2, bidirectional=True, bias=bias)
    _load_random(m, rng)
    x = rng.standard_normal((5, 2, 3))
    s0 = [rng.standard_normal((4, 2, 4)) for _ in range(PARTS[cell])]
    out, s = m(x, _state_arg(s0))
    want_out, want_s = _np_rnn(m, x, s0)
    assert out.shape == (5, 2, 8)
    np.testing.assert_allclose(out.data, want_out, rtol=1e-12, atol=1e-14)
    for part, want in zip(s if isinstance(s, tuple) else (s,), want_s):
        assert part.shape == (4, 2, 4)  # layer 0, layer 0 reverse, layer 1, layer 1 reverse
        np.testing.assert_allclose(part.data, want, rtol=1e-12, atol=1e-14)
    # the reverse direction's last state is its state after step 0; the forward's after T-1
    np.testing.assert_array_equal(_parts0(s)[2], out.data[-1, :, :4])
    np.testing.assert_array_equal(_parts0(s)[3], out.data[0, :, 4:])


def _parts0(s: Any) -> np.ndarray:
    return (s[0] if isinstance(s, tuple) else s).data


@pytest.mark.parametrize("cell,relu", [("rnn", True), ("rnn", False), ("lstm", False), ("gru", False)])
def test_finite_differences_for_every_option(cell: str, relu: bool) -> None:
    """Gradients of the input, the first state and every weight of a 2-layer bidirectional,
    batch-first, bias-free stack against central differences."""
    rng = np.random.default_rng(4)
    m = RNN(2, 3, cell=cell, num_layers=2, nonlinearity="relu" if relu else "tanh", bias=False,
            batch_first=True, bidirectional=True)  # fmt: skip
    _load_random(m, rng)
    x = Tensor(rng.standard_normal((2, 3, 2)), requires_grad=True)
    s0 = [Tensor(rng.standard_normal((4, 2, 3)), requires_grad=True) for _ in range(PARTS[cell])]
    r = rng.standard_normal((2, 3, 6))

    def loss() -> Tensor:
        out, s = m(x, _state_arg(s0))
        return (out * r).sum() + sum(
            ((p * p).sum() for p in (s if isinstance(s, tuple) else (s,))), Tensor(0.0)
        )

    loss().backward()
    for t in [x, *s0, *m.parameters()]:
        num = numerical_gradient(lambda: float(_no_grad(loss).data), t.data)
        assert agrees(t.grad, num, atol=1e-7, rtol=1e-6).all()


def _no_grad(f: Any) -> Any:
    with no_grad():
        return f()


def test_batch_first_is_the_transpose() -> None:
    rng = np.random.default_rng(5)
    a = RNN(3, 4, cell="lstm", num_layers=2, bidirectional=True)
    b = RNN(3, 4, cell="lstm", num_layers=2, bidirectional=True, batch_first=True)
    b.load_state_dict(_load_random(a, rng))
    x_np = rng.standard_normal((5, 2, 3))
    s0 = (rng.standard_normal((4, 2, 4)), rng.standard_normal((4, 2, 4)))
    r = rng.standard_normal((5, 2, 8))
    xa, xb = Tensor(x_np, requires_grad=True), Tensor(x_np.transpose(1, 0, 2).copy(), requires_grad=True)
    out_a, (h_a, c_a) = a(xa, s0)
    out_b, (h_b, c_b) = b(xb, s0)
    assert out_b.shape == (2, 5, 8) and h_b.shape == c_b.shape == (4, 2, 4)
    np.testing.assert_array_equal(out_b.data, out_a.data.transpose(1, 0, 2))
    np.testing.assert_array_equal(h_b.data, h_a.data)
    np.testing.assert_array_equal(c_b.data, c_a.data)
    ((out_a * r).sum() + c_a.sum()).backward()
    ((out_b * r.transpose(1, 0, 2)).sum() + c_b.sum()).backward()
    np.testing.assert_allclose(xb.grad, xa.grad.transpose(1, 0, 2), rtol=1e-13, atol=1e-15)
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        np.testing.assert_allclose(q.grad, p.grad, rtol=1e-13, atol=1e-15, err_msg=name)


def test_relu_cell_is_the_formula() -> None:
    rng = np.random.default_rng(6)
    cell = RNNCell(3, 4, nonlinearity="relu")
    sd = _load_random(cell, rng)
    x, h = rng.standard_normal((5, 3)), rng.standard_normal((5, 4))
    want = np.maximum(x @ sd["weight_ih"].T + h @ sd["weight_hh"].T + sd["bias_h"], 0)
    assert (want == 0).any() and (want > 0).any()  # both sides of the kink are exercised
    np.testing.assert_allclose(cell(x, h).data, want, rtol=1e-13, atol=1e-15)
    no_bias = RNNCell(3, 4, bias=False, nonlinearity="relu")
    no_bias.load_state_dict({k: v for k, v in sd.items() if k != "bias_h"})
    want = np.maximum(x @ sd["weight_ih"].T + h @ sd["weight_hh"].T, 0)
    np.testing.assert_allclose(no_bias(x, h).data, want, rtol=1e-13, atol=1e-15)
    assert "nonlinearity='relu'" in repr(cell) and "bias=False" in repr(no_bias)
    # RNN(nonlinearity="relu") is the relu cell step by step, and the numpy recurrence
    rnn = RNN(3, 4, nonlinearity="relu", num_layers=2)
    _load_random(rnn, rng)
    xs, h0 = rng.standard_normal((6, 2, 3)), rng.standard_normal((2, 2, 4))
    out, h_n = rnn(xs, h0)
    want_out, (want_h,) = _np_rnn(rnn, xs, [h0])
    np.testing.assert_allclose(out.data, want_out, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(h_n.data, want_h, rtol=1e-12, atol=1e-14)


def test_bias_false_names_are_torchs() -> None:
    """PyTorch's documented names: weight_ih_l{k}{_reverse}, weight_hh_l{k}{_reverse}, then the
    biases bias_ih/bias_hh per layer and direction when bias=True."""
    names = ["weight_ih_l0", "weight_hh_l0", "weight_ih_l0_reverse", "weight_hh_l0_reverse",
             "weight_ih_l1", "weight_hh_l1", "weight_ih_l1_reverse", "weight_hh_l1_reverse"]  # fmt: skip
    for cell, gates in (("rnn", 1), ("lstm", 4), ("gru", 3)):
        m = RNN(3, 5, cell=cell, num_layers=2, bidirectional=True, bias=False)
        sd = m.state_dict()
        assert list(sd) == names
        assert sd["weight_ih_l0"].shape == sd["weight_ih_l0_reverse"].shape == (gates * 5, 3)
        assert sd["weight_ih_l1"].shape == (gates * 5, 10)  # layer 1 reads both directions
        assert sd["weight_hh_l1_reverse"].shape == (gates * 5, 5)
    assert list(RNN(3, 5, cell="gru").state_dict()) == [
        "weight_ih_l0",
        "weight_hh_l0",
        "bias_ih_l0",
        "bias_hh_l0",
    ]
    assert list(RNN(3, 5, cell="lstm", bidirectional=True).state_dict()) == [
        "weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0",
        "weight_ih_l0_reverse", "weight_hh_l0_reverse", "bias_ih_l0_reverse", "bias_hh_l0_reverse",
    ]  # fmt: skip
    # a model without bias is the model with zero biases
    rng = np.random.default_rng(7)
    a, b = RNN(3, 5, cell="lstm", bias=False), RNN(3, 5, cell="lstm")
    sd = _load_random(a, rng)
    b.load_state_dict({**sd, "bias_ih_l0": np.zeros(20), "bias_hh_l0": np.zeros(20)})
    x = rng.standard_normal((4, 2, 3))
    np.testing.assert_allclose(a(x)[0].data, b(x)[0].data, rtol=1e-14, atol=1e-16)


# --- dropout ---------------------------------------------------------------------------------
def test_dropout_masks_follow_the_formula_from_the_seed() -> None:
    p, rng = 0.4, np.random.default_rng(8)
    m = RNN(3, 4, cell="gru", num_layers=3, bidirectional=True, dropout=p, rng=0)
    _load_random(m, rng)
    assert isinstance(m.drop, Dropout) and m.drop.p == p
    x, s0 = rng.standard_normal((5, 2, 3)), [rng.standard_normal((6, 2, 4))]
    m.drop.rng = 123  # the trainer hands its generator this way
    out, h = m(x, s0[0])
    g = np.random.default_rng(123)  # layer 1's input mask is drawn first, then layer 2's
    masks = [(g.random((5, 2, 8)) >= p) / (1 - p) for _ in range(2)]
    want_out, (want_h,) = _np_rnn(m, x, s0, masks)
    np.testing.assert_allclose(out.data, want_out, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(h.data, want_h, rtol=1e-12, atol=1e-14)
    # the masks change from call to call, and the gradient goes through the same mask
    assert not np.array_equal(m(x, s0[0])[0].data, out.data)
    # eval: no dropout at all, the numpy recurrence without masks
    m.eval()
    want_out, _ = _np_rnn(m, x, s0)
    np.testing.assert_allclose(m(x, s0[0])[0].data, want_out, rtol=1e-12, atol=1e-14)


def test_dropout_never_touches_numpys_global_state_and_follows_rng() -> None:
    before = np.random.get_state()  # read only: the test does not seed numpy's global state either
    runs = []
    for _ in range(2):
        m = RNN(3, 4, num_layers=2, dropout=0.5, rng=1)
        runs.append([m(np.ones((3, 2, 3)))[0].data for _ in range(2)])
    after = np.random.get_state()
    np.testing.assert_array_equal(after[1], before[1])  # the key
    assert after[2:] == before[2:]  # the position in it and the cached gaussian
    np.testing.assert_array_equal(runs[0][0], runs[1][0])  # the same seed, the same masks
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    assert not np.array_equal(runs[0][0], runs[0][1])


def test_dropout_zero_is_bit_identical_and_eval_turns_dropout_off() -> None:
    rng = np.random.default_rng(9)
    x = rng.standard_normal((4, 2, 3))
    plain, zero = (
        RNN(3, 4, cell="lstm", num_layers=2, rng=2),
        RNN(3, 4, cell="lstm", num_layers=2, dropout=0.0, rng=2),
    )
    assert repr(plain) == repr(zero) and "drop" not in dict(zero.named_modules())
    results = []
    for m in (plain, zero):
        xt = Tensor(x, requires_grad=True)
        out, (h, c) = m(xt)
        ((out * out).sum() + c.sum()).backward()
        results.append([out.data, h.data, c.data, xt.grad, *[p.grad for p in m.parameters()]])
    for u, v in zip(*results):
        np.testing.assert_array_equal(u, v)
    dropped = RNN(3, 4, cell="lstm", num_layers=2, dropout=0.7, rng=2).eval()
    for name, p in dropped.named_parameters():  # the same weights: dropout draws nothing at build
        np.testing.assert_array_equal(p.data, getattr(plain, name).data)
    np.testing.assert_array_equal(dropped(x)[0].data, results[0][0])


def test_dropout_with_one_layer_warns_as_torch() -> None:
    with pytest.warns(UserWarning, match="dropout=0.3 with num_layers=1 does nothing"):
        RNN(3, 4, dropout=0.3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        RNN(3, 4, dropout=0.3, num_layers=2)
        RNN(3, 4, dropout=0.0)
        CharRNN(5, 4, dropout=0.3)  # the seed's model: only before the output layer


def test_charrnn_dropout() -> None:
    ids = np.random.default_rng(10).integers(0, 6, (7, 3))
    for kw in ({}, {"cell": "lstm", "num_layers": 2}):
        plain, zero = CharRNN(6, 5, rng=0, **kw), CharRNN(6, 5, rng=0, dropout=0.0, **kw)  # type: ignore[arg-type]
        la, _ = plain.loss(ids[:-1], ids[1:])
        lb, _ = zero.loss(ids[:-1], ids[1:])
        assert la.item() == lb.item() and repr(plain) == repr(zero)
        m = CharRNN(6, 5, rng=0, dropout=0.5, **kw)  # type: ignore[arg-type]
        assert m.drop.p == 0.5 and (not kw or m.rnn.drop.p == 0.5)
        train_loss = m.loss(ids[:-1], ids[1:])[0].item()
        m.eval()
        assert m.loss(ids[:-1], ids[1:])[0].item() == la.item() != train_loss
        m.train()
        assert m.sample([1, 2], 10, rng=3) == plain.sample([1, 2], 10, rng=3)  # sampling: eval mode
        assert m.training and m.drop.training  # and the mode is back
    # the seed's model fused: its recurrence is one op, the dropout and the head follow
    a, b = CharRNN(6, 5, rng=0, dropout=0.3), CharRNN(6, 5, fused=True, rng=0, dropout=0.3)
    a.drop.rng, b.drop.rng = 4, 4
    la, lb = a.loss(ids[:-1], ids[1:])[0], b.loss(ids[:-1], ids[1:])[0]
    la.backward()
    lb.backward()
    np.testing.assert_allclose(lb.item(), la.item(), **TOL)
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        np.testing.assert_allclose(q.grad, p.grad, **TOL, err_msg=name)


# --- fused with the options ------------------------------------------------------------------
def test_fused_works_with_every_option_but_relu() -> None:
    rng = np.random.default_rng(11)
    kw: dict[str, Any] = {
        "num_layers": 2,
        "bias": False,
        "batch_first": True,
        "dropout": 0.5,
        "bidirectional": True,
    }
    a, b = RNN(3, 4, **kw), RNN(3, 4, fused=True, **kw)
    b.load_state_dict(_load_random(a, rng))
    x_np, h0 = rng.standard_normal((2, 5, 3)), rng.standard_normal((4, 2, 4))
    results = []
    for m in (a, b):
        m.drop.rng = 5  # the same masks for both
        x = Tensor(x_np, requires_grad=True)
        out, h = m(x, h0)
        ((out * out).sum() + h.sum()).backward()
        results.append([out.data, h.data, x.grad, *[p.grad for p in m.parameters()]])
    for u, v in zip(*results):
        np.testing.assert_allclose(v, u, **TOL)
    assert "fused=True" in repr(b)


# --- bad values ------------------------------------------------------------------------------
PROBABILITY = r"dropout must be a probability in \[0, 1\], got "
FUSED_ONLY = "fused=True has no op for "
NONLINEARITY = "nonlinearity must be 'tanh' or 'relu', not "
LSTM2 = RNN(3, 4, cell="lstm", bidirectional=True, num_layers=2)


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda: RNN(3, 4, nonlinearity="sigmoid"), "RNN: " + NONLINEARITY + "'sigmoid'"),
        (lambda: RNNCell(3, 4, nonlinearity="gelu"), "RNNCell: " + NONLINEARITY + "'gelu'"),
        (lambda: RNN(3, 4, cell="lstm", nonlinearity="relu"), "'relu' is only for cell='rnn', not 'lstm'"),
        (lambda: RNN(3, 4, fused=True, nonlinearity="relu"), "RNN: " + FUSED_ONLY + "nonlinearity='relu'"),
        (lambda: RNN(3, 4, num_layers=2, dropout=1.5), "RNN: " + PROBABILITY + "1.5"),
        (lambda: RNN(3, 4, num_layers=2, dropout=-0.1), PROBABILITY + "-0.1"),
        (lambda: RNN(3, 4, num_layers=2, dropout=True), PROBABILITY + "True"),
        (lambda: RNN(3, 4, num_layers=2, dropout="0.5"), PROBABILITY + "'0.5'"),
        (lambda: RNN(3, 4, num_layers=2, dropout=float("nan")), PROBABILITY + "nan"),
        (lambda: CharRNN(5, 4, dropout=2), "CharRNN: " + PROBABILITY + "2"),
        (
            lambda: RNN(3, 4, batch_first=True)(np.zeros((2, 5, 2))),
            r"RNN: input must be \(B, T, input_size\) with input_size 3, got shape \(2, 5, 2\)",
        ),
        (lambda: RNN(3, 4)(np.zeros((5, 3))), r"RNN: input must be \(T, B, input_size\) with input_size 3"),
        (
            lambda: RNN(3, 4, bidirectional=True)(np.zeros((2, 1, 3)), np.zeros((1, 4))),
            r"RNN: h0 must be \(2, 1, 4\), got \(1, 4\)",
        ),
        (lambda: LSTM2(np.zeros((2, 1, 3)), np.zeros((4, 1, 4))), r"the state must be a pair \(h0, c0\)"),
        (lambda: LSTM2(np.zeros((2, 1, 3)), (np.zeros((2, 1, 4)),) * 2), r"h0 must be \(4, 1, 4\)"),
    ],
)
def test_bad_values_are_clear_errors(make: Any, message: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match=message):
            make()


def test_repr_names_the_options_that_differ_from_torchs_defaults() -> None:
    m = RNN(3, 4, cell="gru", num_layers=2, bias=False, batch_first=True, dropout=0.5, bidirectional=True)
    head = repr(m).splitlines()[1].strip()
    assert (
        head
        == "3, 4, cell='gru', num_layers=2, bias=False, batch_first=True, dropout=0.5, bidirectional=True"
    )
    assert "(drop): Dropout(p=0.5)" in repr(m)
    assert repr(RNN(3, 4, nonlinearity="relu")).startswith("RNN(3, 4, nonlinearity='relu')")
