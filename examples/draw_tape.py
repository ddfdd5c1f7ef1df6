"""Draw the tape of a char-RNN's loss: three time steps, every op visible, with gradient norms.

The model is unfused (`fused=False`), so the tape holds the RNN's own ops: one `addmm` and
one `tanh` per time step between the embedding lookup and the output layer. (With
`fused=True` the same loss is a single `charrnn_loss` op: faster, but nothing to see.)
Leaves carry the parameter names of `model.named_parameters()`; every box shows its shape
and the norm of d loss / d its output, so the gradient's way back through time can be read
off the picture. Graphviz draws it where `dot` is installed, matplotlib otherwise.
docs/tape.svg was made by this script.

Run: python examples/draw_tape.py [tape.svg | tape.png]
"""

import sys

from tinygrad_rnn import Tape
from tinygrad_rnn.data import CharVocab, default_text
from tinygrad_rnn.layers import CharRNN


def main() -> None:
    path = sys.argv[1] if len(sys.argv) > 1 else "tape.svg"
    text = default_text()
    vocab = CharVocab.from_text(text)
    model = CharRNN(len(vocab), hidden_size=8, fused=False, rng=0)
    ids = vocab.encode(text[:4])  # "Hope": inputs "Hop", targets "ope"
    with Tape() as tape:
        loss, _ = model.loss(ids[:-1], ids[1:])
    print(tape)
    out = tape.draw(path, names=model, target=loss)  # before backward: every op's gradient
    loss.backward()
    print("picture written to", out)


if __name__ == "__main__":
    main()
