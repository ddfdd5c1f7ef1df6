"""Layers: Module bookkeeping, Linear/Embedding, RNNCell/RNN (vs PyTorch), CharRNN, fused == unfused."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

from tinygrad_rnn import Tensor
from tinygrad_rnn.layers import RNN, CharRNN, Embedding, Linear, Module, Parameter, RNNCell


# --- Module ----------------------------------------------------------------------------------
class Block(Module):
    def __init__(self) -> None:
        super().__init__()
        self.scale = Parameter(np.ones(2))
        self.inner = Linear(2, 3, rng=0)
        self.offset = Parameter(np.zeros(3))
        self.note = "not a parameter"


def test_module_registers_parameters_and_submodules_in_order() -> None:
    m = Block()
    names = [n for n, _ in m.named_parameters()]
    assert names == ["scale", "inner.weight", "inner.bias", "offset"]
    assert [p.shape for p in m.parameters()] == [(2,), (3, 2), (3,), (3,)]
    assert all(p.requires_grad for p in m.parameters())
    m.offset = None  # type: ignore[assignment]  # no longer a parameter
    m.tied = m.scale  # a shared parameter is listed once
    assert [n for n, _ in m.named_parameters()] == ["scale", "inner.weight", "inner.bias"]
    del m.inner
    assert [n for n, _ in m.named_parameters()] == ["scale"]


def test_module_without_super_init_is_a_clear_error() -> None:
    class Bad(Module):
        def __init__(self) -> None:
            self.w = Parameter(np.ones(1))

    with pytest.raises(AttributeError, match="super"):
        Bad()


def test_call_runs_forward_and_zero_grad_clears() -> None:
    lin = Linear(4, 3, rng=1)
    x = np.random.default_rng(0).standard_normal((5, 2, 4))
    y = lin(x)
    assert y.shape == (5, 2, 3)
    np.testing.assert_allclose(y.data, x @ lin.weight.data.T + lin.bias.data)  # type: ignore[union-attr]
    y.sum().backward()
    assert lin.weight.grad is not None and lin.weight.grad.shape == (3, 4)
    lin.zero_grad()
    assert all(p.grad is None for p in lin.parameters())
    assert Linear(4, 3, bias=False).bias is None and len(Linear(4, 3, bias=False).parameters()) == 1


def test_embedding_lookup_scatter_adds_repeated_ids() -> None:
    emb = Embedding(5, 3, rng=0)
    ids = np.array([[1, 1], [4, 1]])
    out = emb(ids)
    np.testing.assert_array_equal(out.data, emb.weight.data[ids])
    out.sum().backward()
    assert emb.weight.grad is not None
    np.testing.assert_array_equal(emb.weight.grad[:, 0], [0, 3, 0, 0, 1])
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        emb(np.array([-1]))


def test_state_dict_round_trip_copies_and_moves_between_fused_and_unfused() -> None:
    a, b = CharRNN(6, 4, rng=0), CharRNN(6, 4, fused=True, rng=1)
    sd = a.state_dict()
    assert list(sd) == ["embed.weight", "weight_hh", "bias_h", "head.weight", "head.bias"]
    assert list(sd) == list(b.state_dict())
    sd["weight_hh"][...] = 7.0  # a copy: the model is unchanged
    assert not np.any(a.weight_hh.data == 7.0)
    b.load_state_dict(a.state_dict())
    for (n1, p1), (n2, p2) in zip(a.named_parameters(), b.named_parameters()):
        assert n1 == n2
        np.testing.assert_array_equal(p1.data, p2.data)
    ids = np.array([[0, 1], [2, 3]])
    np.testing.assert_allclose(a(ids)[0].data, b(ids)[0].data, rtol=1e-12)


def test_load_state_dict_names_missing_unexpected_and_misshapen_keys() -> None:
    m = CharRNN(6, 4, rng=0)
    before = m.state_dict()
    sd = m.state_dict()
    del sd["bias_h"]
    sd["extra"] = np.zeros(1)
    with pytest.raises(ValueError, match=r"missing keys \['bias_h'\], unexpected keys \['extra'\]"):
        m.load_state_dict(sd)
    sd = {k: v + 1 for k, v in m.state_dict().items()}
    sd["head.weight"] = np.zeros((4, 6))
    with pytest.raises(ValueError, match=r"head.weight: expected \(6, 4\), got \(4, 6\)"):
        m.load_state_dict(sd)
    for k, v in m.state_dict().items():  # nothing changed
        np.testing.assert_array_equal(v, before[k])


def test_same_seed_same_model_and_seed_param_round_trip() -> None:
    a, b = CharRNN(6, 4, rng=3), CharRNN(6, 4, rng=np.random.default_rng(3))
    for k, v in a.state_dict().items():
        np.testing.assert_array_equal(v, b.state_dict()[k])
    assert not np.array_equal(a.weight_hh.data, CharRNN(6, 4, rng=4).weight_hh.data)
    assert np.all(a.bias_h.data == 0) and np.abs(a.weight_hh.data).max() < 0.1  # the seed's init
    p = a.seed_params()
    assert {k: v.shape for k, v in p.items()} == {
        "Wxh": (4, 6),
        "Whh": (4, 4),
        "Why": (6, 4),
        "bh": (4, 1),
        "by": (6, 1),
    }
    back = CharRNN.from_seed_params(p).seed_params()
    for k in p:
        np.testing.assert_array_equal(back[k], p[k])
    with pytest.raises(RuntimeError, match="no gradient"):
        a.seed_grads()


# --- fused == unfused ------------------------------------------------------------------------
def grads(m: Module) -> dict[str, Any]:
    return {n: p.grad for n, p in m.named_parameters()}


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("steps", [1, 7])
def test_fused_charrnn_equals_unfused(batch: int, steps: int) -> None:
    rng = np.random.default_rng(10 * batch + steps)
    a = CharRNN(5, 6, rng=0)
    for p in a.parameters():
        p.data = rng.standard_normal(p.shape)
    b = CharRNN(5, 6, fused=True)
    b.load_state_dict(a.state_dict())
    inputs, targets = rng.integers(0, 5, (steps, batch)), rng.integers(0, 5, (steps, batch))
    h0 = np.tanh(rng.standard_normal((batch, 6)))
    results = []
    for m in (a, b):
        loss, h = m.loss(inputs, targets, h0)
        loss.backward()
        logits, h_fwd = m(inputs, h0)
        (logits * 0.3).sum().backward()  # the forward path's gradients, added to the loss's
        results.append((loss.item(), h.data, logits.data, h_fwd.data, grads(m)))
    (la, ha, za, hfa, ga), (lb, hb, zb, hfb, gb) = results
    np.testing.assert_allclose(lb, la, rtol=1e-10)
    for x, y in [(hb, ha), (zb, za), (hfb, hfa), (hfb, hb)]:
        np.testing.assert_allclose(x, y, rtol=1e-10, atol=1e-12)
    for n in ga:
        np.testing.assert_allclose(gb[n], ga[n], rtol=1e-10, atol=1e-12, err_msg=n)


@pytest.mark.parametrize("cell,layers,fused", [("lstm", 1, True), ("gru", 2, False), ("rnn", 2, True)])
@pytest.mark.parametrize("steps,vocab", [(7, 5), (2, 40)])  # fewer rows than T*B, and more
def test_charrnn_stack_reads_the_embedding_like_rnn_of_the_looked_up_rows(
    cell: str, layers: int, fused: bool, steps: int, vocab: int
) -> None:
    """A stack's first layer may project the embedding's rows and look them up after: the
    same loss, state and gradients as `RNN` applied to embed.weight[ids]."""
    rng = np.random.default_rng(steps)
    model = CharRNN(vocab, 4, fused, cell=cell, num_layers=layers, rng=0)
    for p in model.parameters():
        p.data = rng.standard_normal(p.shape)
    ids, targets = rng.integers(0, vocab, (steps, 3)), rng.integers(0, vocab, (steps, 3))
    loss, h = model.loss(ids, targets)
    loss.backward()
    got = grads(model)
    model.zero_grad()
    out, h_by_hand = model.rnn(model.embed.weight[ids])
    logits = model.head(out)
    want = -logits.log_softmax(axis=-1).numpy()[np.arange(steps)[:, None], np.arange(3), targets].sum() / 3
    picked = Tensor(np.eye(vocab)[targets])  # the same loss through the ops, for the gradients
    (-(logits.log_softmax(axis=-1) * picked).sum() / 3).backward()
    assert loss.item() == pytest.approx(want, rel=1e-12)
    for part, part_by_hand in zip(
        h if isinstance(h, tuple) else (h,), h_by_hand if isinstance(h, tuple) else (h_by_hand,)
    ):
        np.testing.assert_allclose(part.data, part_by_hand.data, rtol=1e-12, atol=1e-14)
    for n, g in grads(model).items():
        np.testing.assert_allclose(got[n], g, rtol=1e-10, atol=1e-12, err_msg=n)


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("steps", [1, 7])
def test_fused_rnn_equals_unfused(batch: int, steps: int) -> None:
    rng = np.random.default_rng(batch + steps)
    a, b = RNN(4, 6, rng=0), RNN(4, 6, fused=True)
    for p in a.parameters():
        p.data = rng.standard_normal(p.shape) * 0.8
    b.load_state_dict(a.state_dict())
    x_np, h0_np = rng.standard_normal((steps, batch, 4)), rng.standard_normal((batch, 6))
    r_out, r_h = rng.standard_normal((steps, batch, 6)), rng.standard_normal((batch, 6))
    results = []
    for m in (a, b):
        x, h0 = Tensor(x_np, requires_grad=True), Tensor(h0_np, requires_grad=True)
        out, h = m(x, h0)
        ((out * r_out).sum() + (h * r_h).sum()).backward()
        results.append((out.data, h.data, x.grad, h0.grad, grads(m)))
    for x, y in zip(results[1][:4], results[0][:4]):
        np.testing.assert_allclose(x, y, rtol=1e-10, atol=1e-12)
    for n, g in results[0][4].items():
        np.testing.assert_allclose(results[1][4][n], g, rtol=1e-10, atol=1e-12, err_msg=n)


def test_rnn_starts_from_zeros_and_cell_is_one_step() -> None:
    rnn, cell = RNN(3, 4, rng=0), RNNCell(3, 4)
    cell.load_state_dict({k[:-3]: v for k, v in rnn.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((2, 5, 3))
    out, h = rnn(x)
    assert out.shape == (2, 5, 4) and h.shape == (5, 4)
    h1 = cell(x[0])
    np.testing.assert_allclose(out.data[0], h1.data, rtol=1e-12)
    np.testing.assert_allclose(out.data[1], cell(x[1], h1).data, rtol=1e-12)
    np.testing.assert_array_equal(h.data, out.data[-1])


# --- against PyTorch ------------------------------------------------------------------------
@pytest.mark.parametrize("fused", [False, True])
def test_rnn_and_cell_match_torch(fused: bool) -> None:
    torch = pytest.importorskip("torch")
    steps, batch, n_in, hidden = 5, 3, 4, 6
    rng = np.random.default_rng(5)
    ours, cell = RNN(n_in, hidden, fused=fused), RNNCell(n_in, hidden)
    sd = {k: rng.standard_normal(v.shape) * 0.7 for k, v in ours.state_dict().items()}
    ours.load_state_dict(sd)
    cell.load_state_dict({k[:-3]: v for k, v in sd.items()})
    theirs = torch.nn.RNN(n_in, hidden, dtype=torch.float64)
    their_cell = torch.nn.RNNCell(n_in, hidden, dtype=torch.float64)
    with torch.no_grad():
        for mod, suffix in ((theirs, "_l0"), (their_cell, "")):
            getattr(mod, "weight_ih" + suffix).copy_(torch.from_numpy(sd["weight_ih_l0"]))
            getattr(mod, "weight_hh" + suffix).copy_(torch.from_numpy(sd["weight_hh_l0"]))
            getattr(mod, "bias_ih" + suffix).copy_(torch.from_numpy(sd["bias_h_l0"]))
            getattr(mod, "bias_hh" + suffix).zero_()  # our one bias is the sum of PyTorch's two
    x_np, h0_np = rng.standard_normal((steps, batch, n_in)), rng.standard_normal((batch, hidden))
    r = rng.standard_normal((steps, batch, hidden))

    x, h0 = Tensor(x_np, requires_grad=True), Tensor(h0_np, requires_grad=True)
    out, h = ours(x, h0)
    ((out * r).sum() + h.sum()).backward()
    tx = torch.tensor(x_np, requires_grad=True)
    th0 = torch.tensor(h0_np, requires_grad=True)
    tout, th = theirs(tx, th0[None])
    ((tout * torch.from_numpy(r)).sum() + th.sum()).backward()
    np.testing.assert_allclose(out.data, tout.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(h.data, th[0].detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(h0.grad, th0.grad.numpy(), rtol=1e-10, atol=1e-12)
    for name, theirs_name in [
        ("weight_ih_l0", "weight_ih_l0"),
        ("weight_hh_l0", "weight_hh_l0"),
        ("bias_h_l0", "bias_ih_l0"),
    ]:
        np.testing.assert_allclose(
            getattr(ours, name).grad, getattr(theirs, theirs_name).grad.numpy(), rtol=1e-10, atol=1e-12
        )

    xc, hc = Tensor(x_np[0], requires_grad=True), Tensor(h0_np, requires_grad=True)
    y = cell(xc, hc)
    (y * r[0]).sum().backward()
    txc, thc = torch.tensor(x_np[0], requires_grad=True), torch.tensor(h0_np, requires_grad=True)
    ty = their_cell(txc, thc)
    (ty * torch.from_numpy(r[0])).sum().backward()
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    for ours_g, theirs_g in [
        (xc.grad, txc.grad),
        (hc.grad, thc.grad),
        (cell.weight_ih.grad, their_cell.weight_ih.grad),
        (cell.weight_hh.grad, their_cell.weight_hh.grad),
        (cell.bias_h.grad, their_cell.bias_ih.grad),
    ]:
        np.testing.assert_allclose(ours_g, theirs_g.numpy(), rtol=1e-10, atol=1e-12)


# --- sampling, float32, errors --------------------------------------------------------------
@pytest.mark.parametrize("fused", [False, True])
def test_sample_is_deterministic_and_greedy_at_temperature_zero(fused: bool) -> None:
    m = CharRNN(8, 16, fused=fused, rng=0)
    for p in m.parameters():
        p.data = p.data * 100  # a peaked distribution, so sampling is not uniform noise
    state = np.random.get_state()
    s1 = m.sample([1, 2, 3], 30, rng=np.random.default_rng(7))
    assert s1 == m.sample([1, 2, 3], 30, rng=7)
    assert len(s1) == 30 and all(isinstance(i, int) and 0 <= i < 8 for i in s1)
    assert np.array_equal(np.random.get_state()[1], state[1])  # numpy's global RNG untouched

    greedy = m.sample([1, 2, 3], 10, temperature=0)
    ids, h = [1, 2, 3], None
    want = []
    logits, h = m(np.array(ids)[:, None])
    for _ in range(10):
        want.append(int(np.argmax(logits.data[-1, 0])))
        logits, h = m(np.array([[want[-1]]]), h)
    assert greedy == want
    assert m.sample([1], 10, temperature=1e-6, rng=0) == m.sample([1], 10, temperature=0)


@pytest.mark.parametrize("fused", [False, True])
def test_float32_model_stays_float32(fused: bool) -> None:
    m = CharRNN(6, 8, fused=fused, dtype=np.float32, rng=0)
    m64 = CharRNN(6, 8, fused=fused, rng=0)
    rng = np.random.default_rng(0)
    inputs, targets = rng.integers(0, 6, (5, 2)), rng.integers(0, 6, (5, 2))
    loss, h = m.loss(inputs, targets)
    loss.backward()
    loss64, _ = m64.loss(inputs, targets)
    loss64.backward()
    assert loss.dtype == np.float32 and h.dtype == np.float32
    np.testing.assert_allclose(loss.item(), loss64.item(), rtol=1e-5)
    for (name, p), p64 in zip(m.named_parameters(), m64.parameters()):
        assert p.dtype == np.float32 and p.grad is not None and p.grad.dtype == np.float32, name
        np.testing.assert_allclose(p.grad, p64.grad, rtol=1e-3, atol=1e-6)  # type: ignore[arg-type]
    out, h_t = RNN(3, 4, fused=fused, dtype=np.float32)(np.ones((2, 1, 3)))
    assert out.dtype == np.float32 and h_t.dtype == np.float32


def test_charrnn_input_errors() -> None:
    m = CharRNN(5, 4, rng=0)
    with pytest.raises(ValueError, match="inputs must be in"):
        m.loss([1, 5], [1, 2])
    with pytest.raises(ValueError, match="must both be"):
        m.loss([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match=r"h0 must be \(1, 4\)"):
        m.loss([1, 2], [1, 2], h0=np.zeros((4,)))
    with pytest.raises(ValueError, match="integers"):
        m(np.zeros((2, 1)))
    small = CharRNN(5, 4, dtype=np.float32, rng=0)
    with pytest.raises(ValueError, match="h0 must be float32 like the model, got float64"):
        small.loss([1, 2], [1, 2], h0=Tensor(np.zeros((1, 4))))
    loss, h = small.loss([1, 2], [1, 2], h0=np.zeros((1, 4)))  # an array is cast to the model's dtype
    assert loss.dtype == np.float32 and h.dtype == np.float32


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: CharRNN(0, 4), "CharRNN: vocab_size must be a positive integer, got 0"),
        (lambda: Linear(-3, 4), "Linear: in_features must be a positive integer, got -3"),
        (lambda: RNN(3, 4, num_layers=0), "RNN: num_layers must be a positive integer, got 0"),
        (lambda: CharRNN(5, 4, rng=0).sample([0], n=-1), "n must be >= 0"),
        (lambda: CharRNN(5, 4, rng=0).sample([0], n=3, temperature=float("nan")), "temperature must be"),
    ],
)
def test_bad_sizes_and_sampling_arguments_are_named(build: Any, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        build()
