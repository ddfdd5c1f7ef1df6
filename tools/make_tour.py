"""Build examples/tour.ipynb from the cells below and run it, so it is saved with real outputs.

Run from anywhere in a source checkout: python tools/make_tour.py
(needs nbformat, nbclient, ipykernel and matplotlib: pip install -e ".[test,plot]").
Edit the notebook here, not in Jupyter: tests/test_notebook.py checks that the committed
notebook holds exactly these cells, that it was saved after a run, and runs it again.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "examples" / "tour.ipynb"
BUDGET = 60.0  # seconds for all the cells together

# (id, kind, source): the id is the cell's Jupyter id and the tag the tests look for
CELLS: list[tuple[str, str, str]] = [
    (
        "title",
        "md",
        """
# A tour of tinygrad_rnn

A small autograd engine over numpy, in five steps: tensors and the tape, your own op checked
by `gradcheck`, the tape of a character-level RNN drawn, that RNN trained on a short verse,
and how far back in time its gradient reaches compared with an LSTM and a GRU. Everything
runs on a CPU in a few seconds.

Run it from a source checkout (`pip install -e ".[plot]"`, then open it in Jupyter).
`python tools/make_tour.py` rebuilds it and runs it again.
""",
    ),
    (
        "setup",
        "code",
        """
%matplotlib inline
import importlib.util
import sys

if importlib.util.find_spec("tinygrad_rnn") is None:  # a source checkout, not installed:
    sys.path.insert(0, "..")  # the package is one folder up

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import SVG

from tinygrad_rnn import Function, GradcheckError, Tape, Tensor, gradcheck
""",
    ),
    (
        "md-tensors",
        "md",
        """
## 1. Tensors, ops and the tape

A `Tensor` wraps a numpy array. Every op on tensors (`@`, `+`, `tanh`, `sum`, ...) is recorded
on the open `Tape`, in the order it runs. Printing the tape lists the ops with the shapes that
go in and come out.
""",
    ),
    (
        "tensors",
        "code",
        """
rng = np.random.default_rng(0)
x = Tensor(rng.standard_normal((3, 4)), requires_grad=True)
w = Tensor(rng.standard_normal((4, 2)), requires_grad=True)
b = Tensor(np.zeros(2), requires_grad=True)

with Tape() as tape:
    loss = (x @ w + b).tanh().sum()  # b is added to each of the 3 rows (broadcasting)
print(tape)
print("loss:", loss.item())
""",
    ),
    (
        "md-backward",
        "md",
        """
`loss.backward()` walks the tape backwards, from the last op to the first, applying the chain
rule at each op. Every tensor created with `requires_grad=True` then has a `.grad`: the
derivative of the loss with respect to it, in the tensor's own shape. Below, the same
derivatives written out by hand in numpy agree.
""",
    ),
    (
        "backward",
        "code",
        """
loss.backward()
print("w.grad:\\n", w.grad)
print("b.grad:", b.grad, "- shape", b.grad.shape, "like b: summed over the rows it was added to")

# by hand: z = x @ w + b, loss = sum(tanh(z)), and d tanh(z) / dz = 1 - tanh(z)^2
dz = 1 - np.tanh(x.data @ w.data + b.data) ** 2
print("same as by hand:", np.allclose(w.grad, x.data.T @ dz), np.allclose(b.grad, dz.sum(axis=0)))
""",
    ),
    (
        "md-custom-op",
        "md",
        """
## 2. Your own op, checked by gradcheck

Every op, built in or yours, is a `Function` with two static methods: `forward` gets numpy
arrays, returns the result and saves what the backward will need; `backward` gets the gradient
of the loss with respect to the output and returns one gradient per input. Here the softsign
function, $s(x) = x / (1 + |x|)$, whose derivative is $1 / (1 + |x|)^2$. On the tape it
appears under its class name, like the built-in ops.
""",
    ),
    (
        "custom-op",
        "code",
        """
class Softsign(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x / (1 + np.abs(x))

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad / (1 + np.abs(x)) ** 2


with Tape() as tape:
    y = Softsign.apply(x @ w).sum()
print(tape)
""",
    ),
    (
        "md-gradcheck",
        "md",
        """
`gradcheck` compares the backward with finite differences: it nudges each input element by
a tiny $\\epsilon$ both ways and measures how the output moves,
$(f(x + \\epsilon) - f(x - \\epsilon)) / 2\\epsilon$, in float64. It returns `True`, or raises
`GradcheckError` naming the input and the element that disagree. A slip in a derivative, here
the missing square, is caught at once.
""",
    ),
    (
        "gradcheck",
        "code",
        """
print("gradcheck Softsign:", gradcheck(lambda a, b: Softsign.apply(a @ b), [x, w]))


class WrongSoftsign(Softsign):
    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad / (1 + np.abs(x))  # the square is missing


try:
    gradcheck(lambda a: WrongSoftsign.apply(a), [x])
    print("WrongSoftsign passed: not caught")
except GradcheckError as e:
    print("WrongSoftsign caught:", e)
""",
    ),
    (
        "md-charrnn",
        "md",
        """
## 3. The tape of a character-level RNN

The model of this project reads text one character at a time. Each character is an id in a
sorted vocabulary; its row of the embedding `embed.weight` plays the part of $W_{xh} x_t$
(a one-hot vector times a matrix is one of its rows). The hidden state is updated as
$h_t = \\tanh(W_{xh} x_t + W_{hh} h_{t-1} + b_h)$, and the linear layer `head` turns $h_t$ into
a score for each possible next character; the loss is the cross-entropy of those scores
against the character that really comes next, summed over the steps.

With `fused=False` the model is built from the engine's ops, so the tape shows every time step:
an `addmm` (the matrix products and the sum) and a `tanh` each. (`fused=True` computes the same
loss as one op, about twice as fast: that is what `tinygrad-rnn train` uses, but its tape is a
single box.) A tiny model, hidden size 8, reads "Hop" and predicts "ope":
""",
    ),
    (
        "charrnn",
        "code",
        """
from tinygrad_rnn.data import CharVocab, default_text
from tinygrad_rnn.layers import CharRNN

text = default_text()  # the verse "Hope is the thing with feathers...", 100 times
vocab = CharVocab.from_text(text)
print(len(vocab), "characters:", vocab)

model = CharRNN(len(vocab), hidden_size=8, fused=False, rng=0)
for name, p in model.named_parameters():
    print(f"{name:12} {p.shape}")

ids = vocab.encode("Hope")
with Tape() as tape:
    loss, h = model.loss(ids[:-1], ids[1:])  # inputs "Hop", targets "ope"
print(tape)
""",
    ),
    (
        "md-draw",
        "md",
        """
In Jupyter a tape shows itself as a picture (put `tape` last in a cell). `render` draws it
with more: the parameters' names on the leaves and, in every box, the size (norm) of the
gradient of the loss with respect to it (`target=loss`, asked for before the backward). The
three `addmm`/`tanh` pairs are the three time steps; `weight_hh` feeds all of them, so its
gradient is the sum of three. `tape.draw("tape.svg", names=model, target=loss)` writes the
same picture to a file (Graphviz draws it where it is installed, matplotlib otherwise).
""",
    ),
    (
        "draw",
        "code",
        """
from tinygrad_rnn.draw import render

SVG(render(tape, "svg", names=model, target=loss))
""",
    ),
    (
        "md-train",
        "md",
        """
## 4. Training the char-RNN

The training loop of the original notebook, with the framework's parts: the text is cut into
chunks of 25 characters; for each chunk the model predicts every next character, `backward`
computes the gradients through the 25 steps (backpropagation through time), each gradient
value is clipped to [-5, 5], and Adagrad updates the weights. The hidden state is carried
into the next chunk, detached: the gradient stops at the chunk's start. The loss is shown per
character, in nats: $\\ln 22 \\approx 3.09$ is a uniform guess among the 22 characters.
""",
    ),
    (
        "train",
        "code",
        """
from tinygrad_rnn.data import CharBatches
from tinygrad_rnn.optim import Adagrad, clip_grad_value_

model = CharRNN(len(vocab), hidden_size=64, fused=False, rng=0)
optimizer = Adagrad(model.parameters(), lr=0.1)
batches = CharBatches(vocab.encode(text), seq_len=25)  # inputs and targets (25, 1)

losses, h = [], None  # h: the hidden state carried from chunk to chunk
for step in range(300):
    chunk = batches.next()
    if chunk.reset:  # back at the start of the text: start again from zeros
        h = None
    loss, h = model.loss(chunk.inputs, chunk.targets, h)
    optimizer.zero_grad()
    loss.backward()
    clip_grad_value_(model.parameters(), 5.0)
    optimizer.step()
    losses.append(loss.item() / 25)  # per character
    if step % 50 == 0:
        print(f"step {step:3d}: loss {losses[-1]:.3f} nats per character")

first, last = np.mean(losses[:20]), np.mean(losses[-20:])
print(f"mean loss per character: first 20 steps {first:.3f}, last 20 steps {last:.3f}")
""",
    ),
    (
        "loss-curve",
        "code",
        """
fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(losses)
ax.set_xlabel("step")
ax.set_ylabel("loss per character (nats)")
ax.set_title("Training the char-RNN on the verse")
plt.show()
""",
    ),
    (
        "md-sample",
        "md",
        """
Now the model writes. From "H" it computes the probabilities of the next character (a
softmax of its scores), draws one, feeds it back in, and so on. After 300 steps it spells
some of the verse's words but cannot recite it yet; `tinygrad-rnn train` runs the original
notebook's 10000 steps, after which it can.
(`tinygrad_rnn.train.Trainer` is this same loop with checkpoints and a resume.)
""",
    ),
    (
        "sample",
        "code",
        """
ids = model.sample(vocab.encode("H"), 200, rng=np.random.default_rng(1))
print("H" + vocab.decode(ids))
""",
    ),
    (
        "md-gradflow",
        "md",
        """
## 5. Gradients through time: why LSTMs exist

How much does the loss at the last step of a chunk still depend on the hidden state $d$ steps
earlier? `gradient_through_time` measures the size of that gradient,
$\\|\\partial\\,\\mathrm{loss}_T / \\partial h_{T-1-d}\\|$, with the tape, and
`gradflow_experiment` does it for the plain RNN, the LSTM and the GRU on the same text, with
the same hidden size, at initialisation and after some training. Small settings here (hidden
32, 5 chunks of 20 characters, 150 training steps): `tinygrad-rnn gradflow --plot g.png` runs
the full experiment.
""",
    ),
    (
        "gradflow",
        "code",
        """
from tinygrad_rnn.gradflow import format_table, gradflow_experiment

table = gradflow_experiment(hidden=32, seq_len=20, chunks=5, train_steps=150, warmup=10)
print(format_table(table))
""",
    ),
    (
        "gradflow-plot",
        "code",
        """
fig, ax = plt.subplots(figsize=(7, 4))
trained = f"after {table.train_steps} steps"
for i, cell in enumerate(table.cells):
    ax.semilogy(table.norms[cell, "init"], "--", color=f"C{i}", label=f"{cell}, at initialisation")
    ax.semilogy(table.norms[cell, "trained"], "-", color=f"C{i}", label=f"{cell}, {trained}")
ax.set_xlabel("distance d into the past (steps)")
ax.set_ylabel("gradient norm (log scale)")
ax.set_title("How much the last step's loss feels the hidden state d steps back")
ax.legend(fontsize=8)
plt.show()
""",
    ),
    (
        "md-why",
        "md",
        """
At initialisation every step back through the plain RNN multiplies the gradient by
$W_{hh}^\\top \\mathrm{diag}(1 - h^2)$, a matrix with small entries, so the gradient falls
geometrically (the dashed straight line on the log scale): what happened a few steps ago
barely moves the loss, so there is almost no signal to learn to remember it. The LSTM passes
its cell state on as a sum, $c_t = f \\odot c_{t-1} + i \\odot g$, and the GRU its state as
$h_t = z \\odot h_{t-1} + (1 - z) \\odot n$: where the gates $f$ and $z$ are near 1 the gradient
goes back almost unchanged. At initialisation they are about 1/2, so those lines fall too, but
far more slowly; training can open them. That gated path is why LSTMs and GRUs exist.
Training changes the RNN as well: its weights grow and its gradient reaches further back. The
README's section "Gradients through time" shows the full run.
""",
    ),
]


def build() -> Any:
    """The notebook of `CELLS`, without outputs (an nbformat NotebookNode)."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    make = {"md": nbformat.v4.new_markdown_cell, "code": nbformat.v4.new_code_cell}
    for cell_id, kind, source in CELLS:
        cell = make[kind](source.strip("\n"), id=cell_id)
        if kind == "code":
            cell.metadata["tags"] = [cell_id]
        nb.cells.append(cell)
    return nb


def execute(nb: Any, budget: float = BUDGET) -> Any:
    """Run every cell of `nb` in place with a python3 kernel in examples/ (as Jupyter would);
    a cell still running `budget` seconds after the start (kernel start-up included) stops the
    run with nbclient's CellTimeoutError, an error in a cell with CellExecutionError."""
    from nbclient import NotebookClient

    deadline = time.monotonic() + budget
    client = NotebookClient(
        nb,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
        timeout_func=lambda cell: max(1, int(deadline - time.monotonic())),
        record_timing=False,
    )
    return client.execute()


def coalesce_streams(nb: Any) -> Any:
    """Join each cell's consecutive stdout (stderr) pieces into one output, as Jupyter shows
    them: how a kernel splits a stream depends on timing, which would make every rebuild differ."""
    for cell in nb.cells:
        joined: list[Any] = []
        for out in cell.get("outputs", []):
            last = joined[-1] if joined else None
            if last is not None and out.output_type == last.output_type == "stream" and out.name == last.name:
                last.text += out.text
            else:
                joined.append(out)
        if cell.cell_type == "code":
            cell.outputs = joined
    return nb


def main() -> None:
    import nbformat

    nb = coalesce_streams(execute(build()))
    nbformat.validate(nb)
    nbformat.write(nb, str(NOTEBOOK))
    print("wrote", NOTEBOOK.relative_to(ROOT), file=sys.stderr)


if __name__ == "__main__":
    main()
