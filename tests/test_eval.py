"""`evaluate` and `tinygrad-rnn eval`: against a numpy forward written by hand from the weights."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from tinygrad_rnn.checkpoint import load
from tinygrad_rnn.data import CharVocab, DataError
from tinygrad_rnn.evaluate import CHUNK, encode_known, evaluate
from tinygrad_rnn.layers import CharRNN

TEXT = "the quick brown fox jumps over the lazy dog; pack my box with five dozen liquor jugs. " * 8


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def _layer(cell: str, p: dict[str, np.ndarray], k: int, xs: np.ndarray, h: np.ndarray) -> np.ndarray:
    """One layer of PyTorch's equations over xs (N, I) from zero states, one row at a time."""
    w_ih, w_hh = p[f"rnn.weight_ih_l{k}"], p[f"rnn.weight_hh_l{k}"]
    c, out = np.zeros_like(h), []
    for x in xs:
        if cell == "rnn":
            h = np.tanh(w_ih @ x + p[f"rnn.bias_h_l{k}"] + w_hh @ h)
        elif cell == "lstm":
            a = w_ih @ x + p[f"rnn.bias_ih_l{k}"] + w_hh @ h + p[f"rnn.bias_hh_l{k}"]
            i, f, g, o = np.split(a, 4)
            c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
            h = _sigmoid(o) * np.tanh(c)
        else:
            a, b = w_ih @ x + p[f"rnn.bias_ih_l{k}"], w_hh @ h + p[f"rnn.bias_hh_l{k}"]
            (ar, az, an), (br, bz, bn) = np.split(a, 3), np.split(b, 3)
            r, z = _sigmoid(ar + br), _sigmoid(az + bz)
            n = np.tanh(an + r * bn)
            h = (1 - z) * n + z * h
        out.append(h)
    return np.array(out)


def numpy_nats_per_char(p: dict[str, np.ndarray], cell: str, layers: int, ids: np.ndarray) -> float:
    """The mean cross-entropy of predicting ids[1:] from ids[:-1], one stream from zeros."""
    xs = p["embed.weight"][ids[:-1]]
    hidden = p["embed.weight"].shape[1]
    if cell == "rnn" and layers == 1:  # the seed's model: the embedding is its Wxh x
        h, out = np.zeros(hidden), []
        for x in xs:
            h = np.tanh(x + p["bias_h"] + p["weight_hh"] @ h)
            out.append(h)
        xs = np.array(out)
    else:
        for k in range(layers):
            xs = _layer(cell, p, k, xs, np.zeros(hidden))
    logits = xs @ p["head.weight"].T + p["head.bias"]
    m = logits.max(axis=1, keepdims=True)
    logz = m[:, 0] + np.log(np.exp(logits - m).sum(axis=1))
    return float(np.mean(logz - logits[np.arange(len(logits)), ids[1:]]))


def _model(cell: str, layers: int, seed: int = 0) -> CharRNN:
    vocab = CharVocab.from_text(TEXT)
    model = CharRNN(len(vocab), 12, cell=cell, num_layers=layers, rng=seed)
    g = np.random.default_rng(seed + 1)
    for p in model.parameters():  # weights large enough that the state matters
        p.data = g.normal(0, 0.4, p.shape)
    return model


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("layers", [1, 2])
def test_evaluate_is_the_numpy_forward(cell: str, layers: int) -> None:
    model = _model(cell, layers)
    ids = CharVocab.from_text(TEXT).encode(TEXT)
    assert len(ids) > 2 * CHUNK  # the state is carried across the forward calls
    r = evaluate(model, ids)
    want = numpy_nats_per_char(model.state_dict(), cell, layers, ids)
    assert r.chars == len(ids) - 1
    assert r.nats_per_char == pytest.approx(want, rel=1e-10, abs=0)
    assert r.bits_per_char == pytest.approx(want / math.log(2), rel=1e-12)
    assert r.perplexity == pytest.approx(math.exp(want), rel=1e-12)


def test_batch_streams_are_the_numpy_forward_of_each_stream() -> None:
    """B contiguous streams from zeros; the last one reads the remainder on."""
    model = _model("lstm", 1)
    ids = CharVocab.from_text(TEXT).encode(TEXT)[:203]  # 202 predictions: 3 streams of 67, 1 left
    p = model.state_dict()
    total = 0.0
    for lo, hi in [(0, 68), (67, 135), (134, 203)]:
        total += numpy_nats_per_char(p, "lstm", 1, ids[lo:hi]) * (hi - lo - 1)
    r = evaluate(model, ids, batch=3)
    assert r.chars == 202
    assert r.nats_per_char == pytest.approx(total / 202, rel=1e-10)
    assert r.nats_per_char != pytest.approx(evaluate(model, ids).nats_per_char, rel=1e-6)


def test_evaluate_runs_in_eval_mode_and_restores_the_mode() -> None:
    vocab = CharVocab.from_text(TEXT)
    ids = vocab.encode(TEXT[:100])
    plain = CharRNN(len(vocab), 8, cell="gru", rng=3)
    dropping = CharRNN(len(vocab), 8, cell="gru", dropout=0.5, rng=3)
    dropping.load_state_dict(plain.state_dict())
    assert evaluate(dropping, ids) == evaluate(plain, ids)  # no dropout while evaluating
    assert dropping.training
    dropping.eval()
    evaluate(dropping, ids)
    assert not dropping.training


def test_bad_arguments_are_value_errors() -> None:
    model = _model("rnn", 1)
    with pytest.raises(ValueError, match="at least 2 characters"):
        evaluate(model, [3])
    with pytest.raises(ValueError, match="batch must be an integer >= 1, got 0"):
        evaluate(model, [3, 4, 5], batch=0)


def test_unknown_characters_are_named_and_counted_or_skipped() -> None:
    vocab = CharVocab.from_text("abc ")
    with pytest.raises(DataError, match=r"4 characters of the text \(3 distinct: 'x', 'y', 'z'\)"):
        encode_known(vocab, "ab xyzz c", skip_unknown=False)
    ids, skipped = encode_known(vocab, "ab xyzz c", skip_unknown=True)
    assert skipped == 4 and vocab.decode(ids) == "ab  c"


def _cli(*args: str, cwd) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tinygrad_rnn", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_eval_of_a_checkpoint_is_the_numpy_forward_of_its_weights(tmp_path, cell: str) -> None:
    (tmp_path / "t.txt").write_text(TEXT, encoding="utf-8")
    (tmp_path / "other.txt").write_text("the lazy dog jumps over a quick brown fox. " * 5, encoding="utf-8")
    opts = ("--text", "t.txt", "--cell", cell, "--layers", "2", "--hidden", "16", "--steps", "40")
    r = _cli("train", *opts, "--sample-every", "0", "--out", "m.npz", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = _cli("eval", "--model", "m.npz", "--text", "other.txt", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert set(got) >= {"bits_per_char", "nats_per_char", "perplexity", "chars"}
    ck = load(tmp_path / "m.npz")
    ids = ck.vocab.encode((tmp_path / "other.txt").read_text(encoding="utf-8"))
    want = numpy_nats_per_char(ck.params, cell, 2, ids)
    assert got["nats_per_char"] == pytest.approx(want, rel=1e-10, abs=0)
    assert got["bits_per_char"] == pytest.approx(want / math.log(2), rel=1e-10)
    assert got["chars"] == len(ids) - 1 and got["skipped"] == 0
    line = _cli("eval", "--model", "m.npz", "--text", "other.txt", "--batch", "4", cwd=tmp_path)
    assert line.returncode == 0 and "bits/char" in line.stdout and "an approximation" in line.stdout
    (tmp_path / "odd.txt").write_text("the dog: 42!", encoding="utf-8")
    bad = _cli("eval", "--model", "m.npz", "--text", "odd.txt", cwd=tmp_path)
    assert bad.returncode == 2 and len(bad.stderr.strip().split("\n")) == 1
    assert "characters of the text" in bad.stderr and "'!'" in bad.stderr
    skip = _cli("eval", "--model", "m.npz", "--text", "odd.txt", "--skip-unknown", "--json", cwd=tmp_path)
    assert skip.returncode == 0 and json.loads(skip.stdout)["skipped"] == 4
