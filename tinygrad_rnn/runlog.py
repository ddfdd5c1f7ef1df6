"""What `tinygrad-rnn train` shows of a run: its options beyond the model, the printed lines,
the CSV log and the plot.

Every loss shown is per character: the chunk's cross-entropy (summed over its T characters,
averaged over the batch) divided by T, in nats, and in bits (nats / ln 2). The notebook's
figure, the smoothed loss summed over a chunk, stays in the log as `smooth_chunk_loss`.
The validation loss is `evaluate`'s exact figure over the whole held-out text.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
from typing import Any, Optional

from tinygrad_rnn.argtypes import nonnegative_int
from tinygrad_rnn.evaluate import Evaluation
from tinygrad_rnn.train import INITS, SCHEDULES, Trainer

LN2 = math.log(2)
# one row a step; val_nats_per_char is empty where the held-out text was not measured
LOG_COLUMNS = [
    "step",
    "nats_per_char",
    "smooth_nats_per_char",
    "val_nats_per_char",
    "smooth_chunk_loss",
    "seconds",
]
Row = tuple[int, float, float, Optional[float]]  # step, nats/char, smoothed nats/char, validation


def add_arguments(t: argparse.ArgumentParser) -> None:
    """`train`'s options for held-out validation, dropout, initialisation and the lr schedule."""
    t.add_argument(
        "--val-frac",
        type=float,
        metavar="F",
        help="hold out the last F of the text for validation (default 0.1 with --text; 0 for the "
        "built-in verse, whose repeats make a split meaningless)",
    )
    t.add_argument(
        "--eval-every",
        type=nonnegative_int,
        metavar="N",
        help="validation loss every N steps (default: with each sample) and at the end; 0: at the end only",
    )
    t.add_argument(
        "--dropout",
        type=float,
        metavar="P",
        help="dropout between stacked layers and before the output layer while training (default 0)",
    )
    t.add_argument(
        "--init",
        choices=INITS,
        help="notebook: N(0, 0.01); pytorch: U(+-1/sqrt(H)) (default: rnn notebook, else pytorch)",
    )
    t.add_argument(
        "--schedule",
        choices=SCHEDULES,
        help="lr schedule, stepped every step: step, exp (times --lr-decay every step), cosine (to 0 "
        "over --lr-decay-every steps); default step with --lr-decay, else none",
    )
    t.add_argument("--lr-decay", type=float, metavar="G", help="multiply the lr by G in (0, 1] (default 1)")
    t.add_argument(
        "--lr-decay-every", type=int, metavar="N", help="steps between decays; cosine: its length (default 1)"
    )


def header(trainer: Trainer, resumed: bool) -> str:
    """The first lines of a run: what is trained on what with which settings, then the model's
    size, its init and what issue 15 added (held-out text, dropout, schedule)."""
    c = trainer.config
    source = "the built-in verse x100" if c.text is None else os.path.abspath(c.text)
    start = f"resuming at step {trainer.steps_done}" if resumed else "training"
    held = 0 if trainer.val_ids is None else len(trainer.val_ids)
    n_params = sum(p.data.size for p in trainer.params)
    extras = [f"{held} characters held out for validation"] if held else []
    extras += [f"dropout {c.dropout}"] if c.dropout else []
    extras += [f"schedule {_schedule(c)}"] if c.schedule != "none" else []
    return (
        f"{start}: {source}, {trainer.text_length} characters, vocabulary {len(trainer.vocab)}, "
        f"{c.cell} x{c.layers}, hidden {c.hidden}, seq-len {c.seq_len}, batch {c.batch}, "
        f"{c.optim} lr {c.lr}, clip {c.clip}, seed {c.seed}, {c.dtype}, {'fused' if c.fused else 'autograd'}"
        f"\nmodel: {n_params} parameters, init {c.init}" + "".join(", " + e for e in extras)
    )


def _schedule(c: Any) -> str:
    if c.schedule == "cosine":
        return f"cosine over {c.lr_decay_every} steps"
    every = f" every {c.lr_decay_every} steps" if c.schedule == "step" else " every step"
    return f"x{c.lr_decay}{every}"


def per_char(nats: float) -> str:
    """'1.2345 nats/char (1.7810 bits/char)'."""
    return f"{nats:.4f} nats/char ({nats / LN2:.4f} bits/char)"


def sample_header(step: int, row: Row) -> str:
    """The line above a progress sample: this chunk's loss, the smoothed one, validation."""
    _, loss, smooth, val = row
    text = f"--- step {step}, loss {per_char(loss)}, smoothed {smooth:.4f} nats/char"
    return text + ("" if val is None else f", validation {per_char(val)}")


def done_line(trainer: Trainer, val: Optional[Evaluation]) -> str:
    """The final line: the smoothed training loss and the last validation loss, per character."""
    smooth = trainer.smooth / trainer.config.seq_len
    line = f"done: step {trainer.steps_done}, smoothed loss {per_char(smooth)}"
    if val is not None:
        line += f", validation {per_char(val.nats_per_char)} (best {trainer.best_val:.4f})"
    return line + f", checkpoint {trainer.out}"


def make_row(trainer: Trainer, loss: float, val: Optional[Evaluation]) -> Row:
    """The step just done: (step, loss per char, smoothed loss per char, validation or None)."""
    t = trainer.config.seq_len
    v = None if val is None else val.nats_per_char
    return trainer.steps_done - 1, loss / t, trainer.smooth / t, v


def log_row(writer: Any, row: Row, trainer: Trainer) -> None:
    step, loss, smooth, val = row
    writer.writerow(
        [
            step,
            repr(loss),
            repr(smooth),
            "" if val is None else repr(val),
            repr(trainer.smooth),
            f"{trainer.seconds:.3f}",
        ]
    )


def read_log(path: str) -> list[Row]:
    """The rows of a log (the whole run's, earlier invocations included); [] if it has another layout."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames != LOG_COLUMNS:
            return []
        return [
            (
                int(r["step"]),
                float(r["nats_per_char"]),
                float(r["smooth_nats_per_char"]),
                float(r["val_nats_per_char"]) if r["val_nats_per_char"] else None,
            )
            for r in reader
        ]


def plot(path: str, rows: list[Row]) -> None:
    """A PNG of the loss per character in bits: each chunk's, smoothed, and validation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r[0] for r in rows]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot(steps, [r[1] / LN2 for r in rows], lw=0.5, alpha=0.4, label="training chunk")
    ax.plot(steps, [r[2] / LN2 for r in rows], lw=1.5, label="training, smoothed")
    val = [(r[0], r[3] / LN2) for r in rows if r[3] is not None]
    if val:
        ax.plot(*zip(*val), "o-", ms=3, lw=1, label="validation (held-out text)")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy per character (bits)")
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
