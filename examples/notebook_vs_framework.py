"""The seed notebook's cells beside the framework code that does the same, computed both ways.

Each piece of the notebook (one-hot input, the forward per step, softmax, the loss, BPTT,
clipping, Adagrad, sampling) runs here as the notebook writes it, in plain numpy, and then
through the framework (`Embedding`, `CharRNN`, `softmax_cross_entropy`, the tape's
backward, `clip_grad_value_`, `Adagrad`, `CharRNN.sample`), from the same weights, on the
first 25 characters of the built-in verse. One line per piece gives the largest absolute
difference; the exit code is 1 if any is above 1e-10. docs/from_notebook.md walks
through the same pieces in prose.

Run: python examples/notebook_vs_framework.py
"""

import sys

import numpy as np

from tinygrad_rnn import softmax_cross_entropy
from tinygrad_rnn.data import CharVocab, default_text
from tinygrad_rnn.layers import CharRNN
from tinygrad_rnn.optim import Adagrad, clip_grad_value_
from tinygrad_rnn.reference import bptt

TOL = 1e-10
SEED_NAMES = ("Wxh", "Whh", "Why", "bh", "by")


# --- the notebook, cell by cell (its names; np.random replaced by a Generator) ---------------
def softmax(x):
    e_x = np.exp(x - np.max(x))  # shift to avoid overflow
    return e_x / np.sum(e_x)


def nb_forward(p, inputs, h_prev):
    """The notebook's RNN.forward: one-hot inputs, hidden states, logits, probabilities."""
    xs, hs, ys, ps = {}, {}, {}, {}
    hs[-1] = np.copy(h_prev)
    for t in range(len(inputs)):
        xs[t] = np.zeros((p["Wxh"].shape[1], 1))
        xs[t][inputs[t]] = 1
        hs[t] = np.tanh(np.dot(p["Wxh"], xs[t]) + np.dot(p["Whh"], hs[t - 1]) + p["bh"])
        ys[t] = np.dot(p["Why"], hs[t]) + p["by"]
        ps[t] = softmax(ys[t])
    return xs, hs, ys, ps


def nb_loss(ps, targets):
    return sum(-np.log(ps[t][targets[t], 0]) for t in range(len(targets)))


def nb_backward(p, inputs, targets, xs, hs, ps):
    """The notebook's RNN.backward without its clipping (that is `nb_clip`)."""
    d = {k: np.zeros_like(v) for k, v in p.items()}
    dhnext = np.zeros_like(hs[0])
    for t in reversed(range(len(inputs))):
        dy = np.copy(ps[t])
        dy[targets[t]] -= 1
        d["Why"] += np.dot(dy, hs[t].T)
        d["by"] += dy
        dh = np.dot(p["Why"].T, dy) + dhnext
        dhraw = (1 - hs[t] * hs[t]) * dh
        d["bh"] += dhraw
        d["Wxh"] += np.dot(dhraw, xs[t].T)
        d["Whh"] += np.dot(dhraw, hs[t - 1].T)
        dhnext = np.dot(p["Whh"].T, dhraw)
    return d


def nb_clip(d, clip):
    return {k: np.clip(g, -clip, clip) for k, g in d.items()}


def nb_update(p, d, mem, lr=0.1):
    """The notebook's update_params (Adagrad), in place."""
    for k in SEED_NAMES:
        mem[k] += d[k] * d[k]
        p[k] += -lr * d[k] / np.sqrt(mem[k] + 1e-8)


def nb_sample(p, seed_ix, n, rng):
    h = np.zeros((p["Whh"].shape[0], 1))
    x = np.zeros((p["Wxh"].shape[1], 1))
    x[seed_ix] = 1
    ixes = []
    for _ in range(n):
        h = np.tanh(np.dot(p["Wxh"], x) + np.dot(p["Whh"], h) + p["bh"])
        y = np.dot(p["Why"], h) + p["by"]
        ix = rng.choice(range(len(x)), p=softmax(y).ravel())
        x = np.zeros_like(x)
        x[ix] = 1
        ixes.append(ix)
    return ixes


# --- the comparisons ------------------------------------------------------------------------
def columns(d):
    """{t: (n, 1) column} -> (T, n), the framework's layout (rows are steps)."""
    return np.concatenate([d[t].T for t in range(len(d) - (-1 in d))])


def biggest(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def max_diff(a, b):
    """The largest difference over the five arrays of two dicts in the notebook's names."""
    return max(biggest(a[k], b[k]) for k in SEED_NAMES)


def main() -> int:
    rows: list[tuple[str, float]] = []
    vocab = CharVocab.from_text(default_text())
    ids = vocab.encode(default_text())
    inputs, targets = ids[:25], ids[1:26]  # the notebook's first chunk
    model = CharRNN(len(vocab), 64, fused=False, rng=0)  # the notebook's sizes, seeded
    p = model.seed_params()  # the same weights in the notebook's names and shapes
    h0 = np.zeros((64, 1))

    xs, hs, ys, ps = nb_forward(p, inputs, h0)
    rows.append(
        ("one-hot: Wxh @ x_t vs Embedding", biggest(columns(xs) @ p["Wxh"].T, model.embed(inputs).data))
    )
    hs_fw, _ = model.hidden_states(inputs[:, None])
    rows.append(("forward: hidden states h_t", biggest(columns(hs), hs_fw.data[:, 0])))
    logits, _ = model(inputs[:, None])  # (T, 1, V): the output layer of every step
    loss_ops = softmax_cross_entropy(logits.reshape(-1, len(vocab)), targets, reduction="sum")
    rows.append(("forward: logits y_t", biggest(columns(ys), logits.data[:, 0])))
    rows.append(("softmax: probabilities p_t", biggest(columns(ps), logits.softmax(axis=-1).data[:, 0])))
    loss_nb = nb_loss(ps, targets)
    rows.append(("loss: softmax_cross_entropy", abs(loss_nb - loss_ops.item())))
    loss, _ = model.loss(inputs, targets)
    rows.append(("loss: CharRNN.loss", abs(loss_nb - loss.item())))
    ref_loss, ref_grads, _ = bptt(p, list(inputs), list(targets), h0)
    rows.append(("loss: reference.bptt", abs(loss_nb - ref_loss)))

    d = nb_backward(p, inputs, targets, xs, hs, ps)
    model.zero_grad()
    loss.backward()  # the tape's reverse sweep: BPTT
    grads = model.seed_grads()
    fused = CharRNN(len(vocab), 64, fused=True, rng=0)  # the same weights, the loss as one op
    fused.load_state_dict(model.state_dict())
    fused.loss(inputs, targets)[0].backward()
    for k in SEED_NAMES:
        rows.append((f"BPTT: d{k} (autograd)", biggest(d[k], grads[k])))
        rows.append((f"BPTT: d{k} (fused op)", biggest(d[k], fused.seed_grads()[k])))
        rows.append((f"BPTT: d{k} (reference.bptt)", biggest(d[k], ref_grads[k])))

    for clip in (5.0, 0.05):  # the notebook's 5 clips nothing at initialisation; 0.05 does
        clipped = nb_clip(d, clip)
        clip_grad_value_(model.parameters(), clip)
        n = sum(int(np.sum(np.abs(g) > clip)) for g in d.values())
        now = model.seed_grads()
        rows.append((f"clipping: to {clip} ({n} elements clipped)", max_diff(clipped, now)))

    rows += train_both(model, p, ids)
    rng_nb, rng_fw = np.random.default_rng(1), np.random.default_rng(1)
    h_ix = int(vocab.encode("H")[0])
    sample_nb = nb_sample(p, h_ix, 200, rng_nb)
    sample_fw = model.sample([h_ix], 200, rng=rng_fw)
    rows.append(("sampling: 200 ids from the same Generator", biggest(sample_nb, sample_fw)))

    for name, diff in rows:
        print(f"{name:<44} {diff:.3e}")
    worst = max(diff for _, diff in rows)
    print(f"largest difference {worst:.3e}: {'all below' if worst <= TOL else 'NOT all below'} {TOL:g}")
    print("sample:", "H" + vocab.decode(sample_fw))
    return 0 if worst <= TOL else 1


def train_both(model, p, ids):
    """Three training steps (forward, BPTT, clip to 5, Adagrad) both ways, from the same
    weights (p is model's, in the notebook's names), the hidden state carried between chunks."""
    rows = []
    mem = {k: np.zeros_like(v) for k, v in p.items()}
    opt = Adagrad(model.parameters(), lr=0.1)
    h_nb, h_fw = np.zeros((64, 1)), None
    for step in range(3):
        inputs, targets = ids[25 * step : 25 * step + 25], ids[25 * step + 1 : 25 * step + 26]
        xs, hs, ys, ps = nb_forward(p, inputs, h_nb)
        nb_update(p, nb_clip(nb_backward(p, inputs, targets, xs, hs, ps), 5.0), mem)
        h_nb = hs[len(inputs) - 1]  # carried to the next chunk
        loss, h_fw = model.loss(inputs, targets, h_fw)
        opt.zero_grad()
        loss.backward()
        clip_grad_value_(model.parameters(), 5.0)
        opt.step()
        rows.append((f"Adagrad: parameters after step {step + 1}", max_diff(p, model.seed_params())))
    return rows


if __name__ == "__main__":
    sys.exit(main())
