"""The training loop of `tinygrad-rnn train`: N steps of a Trainer with logging and checkpoints.

    rows = run(trainer, RunOptions(steps=1000, sample_every=100, log="log.csv"))

cli.py parses the options and prints the header and the end of a run; this module runs the
steps between: the CSV log, the progress bar and samples, and the checkpoints.
"""

from __future__ import annotations

import contextlib
import csv
import os
import sys
import time
from dataclasses import dataclass
from typing import IO, Any, Optional

import numpy as np
from tqdm import tqdm

from tinygrad_rnn.train import Trainer

SAMPLE_CHARS = 150  # the seed's progress samples
Row = tuple[int, float, float, float]  # step, loss, smoothed loss, seconds


@dataclass(frozen=True)
class RunOptions:
    """steps: steps of this run; sample_every: print a sample (0: never); log: a CSV path or
    None; resumed: the trainer continues a checkpoint (a non-empty log is appended to)."""

    steps: int
    sample_every: int = 1000
    log: Optional[str] = None
    resumed: bool = False


def _open_log(path: str, resumed: bool) -> tuple[IO[str], Any]:
    """The CSV log and its writer; a resumed run appends to a log that has rows."""
    append = resumed and os.path.exists(path) and os.path.getsize(path) > 0
    log = open(path, "a" if append else "w", newline="", encoding="utf-8")
    writer = csv.writer(log)
    if not append:
        writer.writerow(["step", "loss", "smooth_loss", "seconds"])
    return log, writer


def run(trainer: Trainer, opts: RunOptions, rows: list[Row]) -> None:
    """Train `opts.steps` steps, appending (step, loss, smoothed, seconds) to `rows`."""
    trainer.save()  # a good checkpoint exists from the start (and the output path works)
    log, writer = _open_log(opts.log, opts.resumed) if opts.log else (None, None)
    start = time.perf_counter() - trainer.seconds
    bar = tqdm(total=opts.steps, desc="train", unit="step", dynamic_ncols=True, file=sys.stderr, disable=None)
    with contextlib.ExitStack() as stack:
        # overflow is detected and reported below (loss and parameters), not warned about
        stack.enter_context(np.errstate(over="ignore", invalid="ignore"))
        if log is not None:
            stack.enter_context(log)
        stack.enter_context(bar)
        for i in range(opts.steps):
            loss = trainer.step()
            step, smooth = trainer.steps_done - 1, trainer.smooth
            trainer.seconds = time.perf_counter() - start
            rows.append((step, loss, smooth, trainer.seconds))
            if writer is not None:
                writer.writerow([step, repr(loss), repr(smooth), f"{trainer.seconds:.3f}"])
            if opts.sample_every and step % opts.sample_every == 0:
                trainer.check_finite()
                # like the seed: primed with the chunk's first input, from a zero state
                text = trainer.sample(trainer.vocab.chars[trainer.first_input], SAMPLE_CHARS)
                bar.write(f"--- step {step}, loss {loss:.4f}, smoothed {smooth:.4f}\n{text}")
                trainer.save()
                if log is not None:
                    log.flush()
            bar.update(1)
            if step % 10 == 0 or i == opts.steps - 1:
                bar.set_postfix_str(f"loss {smooth:.4f}", refresh=False)
        trainer.save()
