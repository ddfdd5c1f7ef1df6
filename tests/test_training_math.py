"""`train` does the seed notebook's arithmetic: N steps of the command equal N steps of the
notebook's own loop (reference.bptt, gradients clipped by hand, the notebook's Adagrad, its
data pointer and wrap rule), and `--clip` changes the result exactly as clipping by hand does.

The loop below is the notebook's (seed cell "train"), with `reference.bptt` standing in for
its forward + loss + backward; it uses nothing of the library's training code.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinygrad_rnn import checkpoint, reference
from tinygrad_rnn.data import VERSE, CharVocab
from tinygrad_rnn.layers import CharRNN

TEXT = VERSE * 2  # 238 characters: with seq-len 25 the pointer wraps at step 9
HIDDEN, SEQ, STEPS, LR = 16, 25, 14, 0.1


def notebook_loop(params: dict[str, np.ndarray], data: np.ndarray, steps: int, clip: float):
    """The seed's training loop; returns the losses, the final parameters and counters."""
    params = {k: v.copy() for k, v in params.items()}
    mem = {k: np.zeros_like(v) for k, v in params.items()}
    p, h_prev = 0, np.zeros((HIDDEN, 1))
    losses, wraps, clipped = [], 0, 0
    for _ in range(steps):
        if p + SEQ + 1 >= len(data):  # at the end of the text: back to its start, fresh state
            h_prev, p = np.zeros((HIDDEN, 1)), 0
            wraps += 1
        inputs, targets = list(data[p : p + SEQ]), list(data[p + 1 : p + SEQ + 1])
        loss, grads, h = reference.bptt(params, inputs, targets, h_prev)
        for k, d in grads.items():
            if clip > 0:
                clipped += int((np.abs(d) > clip).sum())
                np.clip(d, -clip, clip, out=d)
            mem[k] += d * d
            params[k] += -LR * d / np.sqrt(mem[k] + 1e-8)
        losses.append(loss)
        h_prev, p = h, p + SEQ
    return losses, params, wraps, clipped


def train_cli(tmp: Path, *flags: str) -> tuple[list[float], dict[str, np.ndarray]]:
    """Run `train` on TEXT (nothing held out); its per-step losses and final seed-shaped params."""
    (tmp / "text.txt").write_text(TEXT, encoding="utf-8")
    cmd = [sys.executable, "-m", "tinygrad_rnn", "train", "--text", "text.txt", "--steps", str(STEPS)]
    cmd += ["--hidden", str(HIDDEN), "--seq-len", str(SEQ), "--lr", str(LR), "--sample-every", "0"]
    cmd += ["--out", "ck.npz", "--log", "log.csv", "--val-frac", "0", *flags]
    r = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    with open(tmp / "log.csv", encoding="utf-8") as f:
        losses = [float(row["nats_per_char"]) * SEQ for row in csv.DictReader(f)]  # the chunk's loss
    ck = checkpoint.load(tmp / "ck.npz")
    model = CharRNN(len(ck.vocab), HIDDEN, rng=0)
    model.load_state_dict(ck.params)
    return losses, model.seed_params()


def initial_params() -> dict[str, np.ndarray]:
    """The documented initial model of `train --seed 0`: CharRNN drawn from default_rng(0)."""
    vocab = CharVocab.from_text(TEXT)
    return CharRNN(len(vocab), HIDDEN, rng=np.random.default_rng(0)).seed_params()


DATA = CharVocab.from_text(TEXT).encode(TEXT)


@pytest.mark.parametrize("fused", ["--fused", "--no-fused"])
@pytest.mark.parametrize("clip", [5.0, 0.5, 0.0])
def test_train_is_the_notebook_loop(tmp_path: Path, fused: str, clip: float) -> None:
    losses, params = train_cli(tmp_path, fused, "--clip", str(clip))
    want_losses, want, wraps, clipped = notebook_loop(initial_params(), DATA, STEPS, clip)
    assert wraps == 1  # the run crosses the wrap boundary, where the state is reset
    if clip == 0.5:
        assert clipped > 0  # the clip really bites at 0.5
    # the fused op and the tape sum in another order than the seed's per-step dots: 1e-12, not bits
    # (Adagrad's first steps, g / sqrt(g^2 + 1e-8), magnify 1e-16 in tiny gradients to ~1e-13)
    np.testing.assert_allclose(losses, want_losses, rtol=1e-12, atol=0)
    for k in want:
        np.testing.assert_allclose(params[k], want[k], rtol=1e-12, atol=1e-12, err_msg=k)


def test_clip_changes_the_result_exactly_as_clipping_by_hand(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _, off = train_cli(tmp_path / "a", "--clip", "0")
    _, tight = train_cli(tmp_path / "b", "--clip", "0.5")
    _, want_off, _, _ = notebook_loop(initial_params(), DATA, STEPS, 0.0)
    _, want_tight, _, _ = notebook_loop(initial_params(), DATA, STEPS, 0.5)
    for k in want_off:
        change, want_change = tight[k] - off[k], want_tight[k] - want_off[k]
        assert np.abs(want_change).max() > 1e-3  # clipping matters at this size ...
        np.testing.assert_allclose(change, want_change, rtol=1e-9, atol=1e-12, err_msg=k)  # ... exactly so
