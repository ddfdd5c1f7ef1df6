"""Look inside the tape: record a small expression, print it, export it as Graphviz DOT.

Run: python examples/explore_tape.py [out.dot]   (a picture instead of DOT text: `tape.draw("tape.svg")`,
with Graphviz or, without it, matplotlib; examples/draw_tape.py draws a char-RNN's tape)
"""

import sys

import numpy as np

import tinygrad_rnn as tg
from tinygrad_rnn import Tape, Tensor


def main() -> None:
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((4, 3)), requires_grad=True)
    w = Tensor(rng.standard_normal((3, 5)), requires_grad=True)
    b = Tensor(np.zeros(5), requires_grad=True)
    targets = np.array([0, 2, 4, 1])

    with Tape() as tape:
        h = (x @ w + b).tanh()  # b broadcasts over the 4 rows
        loss = tg.softmax_cross_entropy(h * 3.0, targets, reduction="mean")

    print(f"{len(tape)} ops recorded, in execution order:")
    print(tape)

    # gradients straight from the tape, without touching .grad
    dw, db = tape.gradient(loss, [w, b], retain_graph=True)
    print("dL/db (reduced over the broadcast rows):", db)

    loss.backward()  # the same reverse sweep, accumulating into .grad
    print("same as .grad:", np.allclose(dw, w.grad), np.allclose(db, b.grad))

    dot = tape.to_dot()
    if len(sys.argv) > 1:
        with open(sys.argv[1], "w", encoding="utf-8") as f:
            f.write(dot)
        print("DOT written to", sys.argv[1])
    else:
        print(dot)


if __name__ == "__main__":
    main()
