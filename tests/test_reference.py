"""The char-RNN's gradients against the seed's hand-written BPTT (`reference.bptt`)."""

from __future__ import annotations

import numpy as np
import pytest

from tinygrad_rnn import Tape, Tensor, gradcheck
from tinygrad_rnn.fused import CharRNNLoss, RNNRecurrence
from tinygrad_rnn.grads import scatter_add_rows
from tinygrad_rnn.layers import CharRNN
from tinygrad_rnn.reference import bptt

H, V, T = 10, 7, 12


def seed_params(rng: np.random.Generator, scale: float = 0.8) -> dict[str, np.ndarray]:
    """Weights large enough that tanh saturates for part of the units."""
    return {
        "Wxh": rng.standard_normal((H, V)) * scale,
        "Whh": rng.standard_normal((H, H)) * scale,
        "Why": rng.standard_normal((V, H)) * scale,
        "bh": rng.standard_normal((H, 1)) * 0.5,
        "by": rng.standard_normal((V, 1)) * 0.5,
    }


def assert_same(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert got.keys() == want.keys()
    for k in want:
        assert got[k].shape == want[k].shape, k
        np.testing.assert_allclose(got[k], want[k], rtol=1e-10, atol=1e-10, err_msg=k)


@pytest.mark.parametrize("fused", [False, True])
def test_charrnn_matches_seed_bptt_over_consecutive_chunks(fused: bool) -> None:
    rng = np.random.default_rng(0)
    p = seed_params(rng)
    model = CharRNN.from_seed_params(p, fused=fused)
    h_ref = np.tanh(rng.standard_normal((H, 1)))
    h: Tensor = Tensor(h_ref.T.copy())
    saturated = False
    for _ in range(3):  # truncated BPTT: the hidden state carries over, detached
        inputs, targets = rng.integers(0, V, T), rng.integers(0, V, T)
        loss_ref, grads_ref, h_ref = bptt(p, list(inputs), list(targets), h_ref)
        model.zero_grad()
        loss, h = model.loss(inputs, targets, h)
        loss.backward()
        assert not h.requires_grad
        np.testing.assert_allclose(loss.item(), loss_ref, rtol=1e-10)
        np.testing.assert_allclose(h.data, h_ref.T, rtol=1e-10, atol=1e-12)
        assert_same(model.seed_grads(), grads_ref)
        saturated |= bool(np.abs(h.data).max() > 0.95)
    assert saturated
    # bptt does not clip: these gradients are beyond the seed's clip at 5
    assert max(np.abs(g).max() for g in grads_ref.values()) > 5


def test_bptt_matches_seed_shapes_and_does_not_change_inputs() -> None:
    rng = np.random.default_rng(1)
    p = seed_params(rng)
    before = {k: v.copy() for k, v in p.items()}
    h_prev = np.zeros((H, 1))
    loss, grads, h_last = bptt(p, [1, 2, 3], [2, 3, 4], h_prev)
    assert isinstance(loss, float) and h_last.shape == (H, 1)
    assert {k: g.shape for k, g in grads.items()} == {k: v.shape for k, v in p.items()}
    assert_same(p, before)
    assert not h_prev.any()


def test_batched_loss_is_the_mean_of_the_seed_loss_over_sequences() -> None:
    rng = np.random.default_rng(2)
    p = seed_params(rng)
    model = CharRNN.from_seed_params(p, fused=True)
    inputs, targets = rng.integers(0, V, (T, 3)), rng.integers(0, V, (T, 3))
    h0 = np.tanh(rng.standard_normal((3, H)))
    loss, h = model.loss(inputs, targets, h0)
    loss.backward()
    runs = [bptt(p, list(inputs[:, b]), list(targets[:, b]), h0[b][:, None]) for b in range(3)]
    np.testing.assert_allclose(loss.item(), np.mean([r[0] for r in runs]), rtol=1e-10)
    np.testing.assert_allclose(h.data, np.hstack([r[2] for r in runs]).T, rtol=1e-10)
    assert_same(model.seed_grads(), {k: np.mean([r[1][k] for r in runs], axis=0) for k in p})


def test_fused_ops_pass_gradcheck_and_are_one_node() -> None:
    rng = np.random.default_rng(3)
    b, steps, hidden, vocab = 2, 4, 5, 6
    params = [
        Tensor(rng.standard_normal(s) * 0.7, requires_grad=True)
        for s in [(vocab, hidden), (hidden, hidden), (hidden,), (vocab, hidden), (vocab,), (b, hidden)]
    ]
    inputs, targets = rng.integers(0, vocab, (steps, b)), rng.integers(0, vocab, (steps, b))
    with Tape() as tape:
        loss, h_last = CharRNNLoss.apply(*params, inputs=inputs, targets=targets)
    assert [node.name for node in tape] == ["charrnn_loss"] and h_last.shape == (b, hidden)
    assert gradcheck(lambda *ps: CharRNNLoss.apply(*ps, inputs=inputs, targets=targets)[0], params)
    r = rng.standard_normal((b, hidden))  # a gradient reaching h_T too joins the BPTT

    def loss_and_last(*ps: Tensor) -> Tensor:
        loss, h = CharRNNLoss.apply(*ps, inputs=inputs, targets=targets)
        return loss + (h * r).sum()

    assert gradcheck(loss_and_last, params)

    xh, w, h0 = (
        Tensor(rng.standard_normal(s), requires_grad=True)
        for s in [(steps, b, hidden), (hidden, hidden), (b, hidden)]
    )
    assert gradcheck(RNNRecurrence.apply, [xh, w, h0])


@pytest.mark.parametrize("num", [7, 300])  # a one-hot matmul, then sort + reduceat
def test_scatter_add_rows_sums_repeated_ids_like_add_at(num: int) -> None:
    rng = np.random.default_rng(4)
    ids, rows = rng.integers(0, num - 1, 40), rng.standard_normal((40, 3))
    want = np.zeros((num, 3))
    np.add.at(want, ids, rows)
    np.testing.assert_allclose(scatter_add_rows(ids, rows, num), want, rtol=1e-12, atol=1e-15)
    assert not scatter_add_rows(ids[:0], rows[:0], num).any()
    assert scatter_add_rows(ids, rows.astype(np.float32), num).dtype == np.float32


def test_batched_charrnn_bptt_is_the_seeds_to_1e12() -> None:
    """The fast batched forward + backward, stream by stream, against the seed's lines."""
    from tinygrad_rnn.reference import charrnn_backward, charrnn_forward

    rng = np.random.default_rng(11)
    p = seed_params(rng)
    batch = 3
    ids, tgt = rng.integers(0, V, (T, batch)), rng.integers(0, V, (T, batch))
    h0 = rng.standard_normal((batch, H)) * 0.5
    weights = (p["Wxh"].T, p["Whh"], p["bh"][:, 0], p["Why"], p["by"][:, 0])
    loss, hs, probs = charrnn_forward(*weights, h0, ids, tgt)
    grads = charrnn_backward(p["Whh"], p["Why"], ids, tgt, hs, probs)
    runs = [bptt(p, list(ids[:, b]), list(tgt[:, b]), h0[b][:, None]) for b in range(batch)]
    want = {k: sum(r[1][k] for r in runs) / batch for k in ("Wxh", "Whh", "bh", "Why", "by")}
    got = {
        "Wxh": grads[0].T,
        "Whh": grads[1],
        "bh": grads[2][:, None],
        "Why": grads[3],
        "by": grads[4][:, None],
    }
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-12, atol=1e-13, err_msg=k)
    np.testing.assert_allclose(loss, np.mean([r[0] for r in runs]), rtol=1e-12)
    np.testing.assert_allclose(hs[-1], np.hstack([r[2] for r in runs]).T, rtol=1e-12, atol=1e-14)
