"""Swap optimizers in one line: train the seed's char-RNN briefly with each, compare the losses.

The training loop is the seed's (sequence 25, hidden 64, gradients clipped to [-5, 5]);
only the line that builds the optimizer changes. Prints the loss per character, averaged
over windows of steps, side by side; with matplotlib installed and a PNG path given, also
plots the curves.

Run: python examples/swap_optimizers.py [--steps 600] [curves.png]
"""

from __future__ import annotations

import argparse
from typing import Callable, Iterable

from tinygrad_rnn.data import CharBatches, CharVocab, default_text
from tinygrad_rnn.layers import CharRNN, Parameter
from tinygrad_rnn.optim import SGD, Adagrad, Adam, Optimizer, RMSprop, clip_grad_value_

MakeOptimizer = Callable[[Iterable[Parameter]], Optimizer]

OPTIMIZERS: dict[str, MakeOptimizer] = {
    "Adagrad": lambda ps: Adagrad(ps, lr=0.1),  # the seed's
    "SGD": lambda ps: SGD(ps, lr=0.01),
    "SGD+momentum": lambda ps: SGD(ps, lr=0.003, momentum=0.9),
    "Adam": lambda ps: Adam(ps, lr=0.003),
    "RMSprop": lambda ps: RMSprop(ps, lr=0.002),
}


def train(make_optimizer: MakeOptimizer, steps: int, hidden: int = 64, seq_len: int = 25) -> list[float]:
    """The seed's loop for `steps` steps; returns the loss per character of every step."""
    text = default_text()
    vocab = CharVocab.from_text(text)
    batches = CharBatches(vocab.encode(text), seq_len)
    model = CharRNN(len(vocab), hidden, rng=0)  # the same start for every optimizer
    opt = make_optimizer(model.parameters())  # the one line that differs
    losses, h = [], None
    for _ in range(steps):
        chunk = batches.next()
        loss, h = model.loss(chunk.inputs, chunk.targets, None if chunk.reset else h)
        opt.zero_grad()
        loss.backward()
        clip_grad_value_(model.parameters(), 5.0)
        opt.step()
        losses.append(loss.item() / seq_len)
    return losses


def window_means(losses: list[float], window: int) -> list[float]:
    return [sum(losses[i : i + window]) / len(losses[i : i + window]) for i in range(0, len(losses), window)]


def plot(curves: dict[str, list[float]], path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"matplotlib is not installed: no plot written to {path}")
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, losses in curves.items():
        ax.plot(range(1, len(losses) + 1), losses, label=name, linewidth=1)
    ax.set_xlabel("step")
    ax.set_ylabel("loss per character")
    ax.set_yscale("log")
    ax.set_title("The seed's char-RNN, one optimizer line swapped")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("plot", nargs="?", metavar="PNG", help="PNG for the loss curves (needs matplotlib)")
    parser.add_argument("--steps", type=int, default=600, help="training steps per optimizer (default 600)")
    args = parser.parse_args()

    curves = {name: train(make, args.steps) for name, make in OPTIMIZERS.items()}
    window = max(1, args.steps // 10)
    print(f"loss per character, mean over windows of {window} steps")
    print(f"{'steps':>11}" + "".join(f"{name:>14}" for name in curves))
    columns = [window_means(losses, window) for losses in curves.values()]
    for i, row in enumerate(zip(*columns)):
        first, last = i * window + 1, min((i + 1) * window, args.steps)
        print(f"{first:>5}-{last:<5}" + "".join(f"{x:>14.4f}" for x in row))
    if args.plot:
        plot(curves, args.plot)


if __name__ == "__main__":
    main()
