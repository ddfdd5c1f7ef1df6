"""The training loop of `tinygrad-rnn train`: N steps of a Trainer with logging and checkpoints.

    result = run(trainer, RunOptions(steps=1000, sample_every=100, save_every=500, log="log.csv"))

cli.py parses the options and prints the header and the end of a run; this module runs the
steps between: the CSV log, the progress bar and samples, checkpoints every `save_every`
steps and at the end, SIGINT / SIGTERM (finish the step, save, stop) and a loss that explodes
without becoming NaN. Checkpoints are written only while the loss is sane (`Watch`), so the
last one written is always a good one.
"""

from __future__ import annotations

import contextlib
import csv
import os
import sys
import time
from dataclasses import dataclass, field
from typing import IO, Any, Optional

import numpy as np
from tqdm import tqdm

from tinygrad_rnn import runlog
from tinygrad_rnn.evaluate import Evaluation
from tinygrad_rnn.guard import StopSignals, say, trim_log
from tinygrad_rnn.runlog import Row
from tinygrad_rnn.train import Trainer, TrainingDiverged

SAMPLE_CHARS = 150  # the seed's progress samples
EXPLODE_FACTOR = 10.0  # a loss above this many times the run's first loss ...
EXPLODE_STEPS = 100  # ... for this many steps in a row stops training


@dataclass(frozen=True)
class RunOptions:
    """steps: steps of this run; sample_every / save_every: print a sample / write a checkpoint
    every N steps (0: never; a checkpoint is also written at the end); log: a CSV path or None;
    resumed: the trainer continues a checkpoint (the log is trimmed to it, then appended to);
    eval_every: the validation loss every N steps (0: never) and at the end, with a held-out text."""

    steps: int
    sample_every: int = 1000
    save_every: int = 1000
    log: Optional[str] = None
    resumed: bool = False
    eval_every: int = 0


@dataclass
class RunResult:
    """rows: (step, loss, smoothed, validation) per character of this run (`runlog.Row`);
    signal: the signal that stopped it (None: it ran all its steps); saved: the step of the last
    checkpoint written (None: none); note: why the run ended without a checkpoint of its last
    step; val: the last validation figure (None: none measured)."""

    rows: list[Row] = field(default_factory=list)
    signal: Optional[int] = None
    saved: Optional[int] = None
    note: Optional[str] = None
    val: Optional[Evaluation] = None


class Watch:
    """Tells a loss that exploded without becoming NaN: above EXPLODE_FACTOR x the run's first
    loss for EXPLODE_STEPS steps in a row. `calm`: the last loss was not above that bound."""

    def __init__(self) -> None:
        self.first: Optional[float] = None
        self.streak = 0

    @property
    def calm(self) -> bool:
        return self.streak == 0

    def update(self, loss: float, step: int) -> None:
        """Record a step's loss; TrainingDiverged once it stayed too high for too long."""
        if self.first is None:
            self.first = loss
        self.streak = self.streak + 1 if loss > EXPLODE_FACTOR * self.first else 0
        if self.streak >= EXPLODE_STEPS:
            raise TrainingDiverged(
                f"the loss exploded: above {EXPLODE_FACTOR:g}x the first step's {self.first:.4g} for "
                f"{EXPLODE_STEPS} steps, {loss:.4g} at step {step}; training stopped"
            )


def _open_log(path: str, resumed_at: Optional[int]) -> tuple[IO[str], Any]:
    """The CSV log and its writer; a resumed run drops rows past its checkpoint, then appends."""
    if resumed_at is not None:
        trim_log(path, resumed_at)
    append = resumed_at is not None and os.path.exists(path) and os.path.getsize(path) > 0
    log = open(path, "a" if append else "w", newline="", encoding="utf-8")
    writer = csv.writer(log)
    if not append:
        writer.writerow(runlog.LOG_COLUMNS)
    return log, writer


def _kept(trainer: Trainer, result: RunResult) -> str:
    """Where the last good checkpoint is, for a message about a run that stopped."""
    if result.saved is not None:
        return f"the last good checkpoint is {trainer.out}, step {result.saved}"
    if os.path.exists(trainer.out):
        return f"{trainer.out} is left as it was"
    return "no checkpoint was written"


def run(trainer: Trainer, opts: RunOptions, result: RunResult) -> None:
    """Train `opts.steps` steps (fewer if a signal arrives), filling `result`; TrainingDiverged
    (saying which checkpoint is left) if the loss becomes NaN or explodes."""
    resumed_at = trainer.steps_done if opts.resumed else None
    log, writer = _open_log(opts.log, resumed_at) if opts.log else (None, None)
    bar = tqdm(total=opts.steps, desc="train", unit="step", dynamic_ncols=True, file=sys.stderr, disable=None)
    watch = Watch()
    try:
        with contextlib.ExitStack() as stack:
            # overflow is detected and reported (loss and parameters), not warned about
            stack.enter_context(np.errstate(over="ignore", invalid="ignore"))
            if log is not None:
                stack.enter_context(log)
            stack.enter_context(bar)
            stop = stack.enter_context(StopSignals())
            _loop(trainer, opts, result, (log, writer, bar, watch, stop))
            if watch.calm:
                _save(trainer, result, log)
    except TrainingDiverged as e:
        raise TrainingDiverged(f"{e} ({_kept(trainer, result)}; try a smaller --lr)") from None
    if not watch.calm:
        result.note = (
            f"no checkpoint of step {trainer.steps_done}: the loss is above {EXPLODE_FACTOR:g}x "
            f"the first step's ({_kept(trainer, result)})"
        )


def _save(trainer: Trainer, result: RunResult, log: Optional[IO[str]]) -> None:
    if log is not None:  # the log's rows up to the checkpoint are on disk before it
        log.flush()
    trainer.save()
    result.saved = trainer.steps_done


def _loop(trainer: Trainer, opts: RunOptions, result: RunResult, tools: tuple[Any, ...]) -> None:
    """The steps of `run`: train, log, watch, sample, save; stop early on a signal."""
    log, writer, bar, watch, stop = tools
    start = time.perf_counter() - trainer.seconds
    before, chars = trainer.seconds, trainer.config.seq_len * trainer.config.batch
    for i in range(opts.steps):
        loss = trainer.step()
        step = trainer.steps_done - 1
        trainer.seconds = time.perf_counter() - start
        measure = (opts.eval_every and step % opts.eval_every == 0) or i == opts.steps - 1
        val = trainer.validate() if measure else None
        result.val = val or result.val
        result.rows.append(runlog.make_row(trainer, loss, val))
        if writer is not None:
            runlog.log_row(writer, result.rows[-1], trainer)
        watch.update(loss, step)
        if opts.sample_every and step % opts.sample_every == 0:
            trainer.check_finite()
            # like the seed: primed with the chunk's first input, from a zero state
            text = trainer.sample(trainer.vocab.chars[trainer.first_input], SAMPLE_CHARS)
            say(f"{runlog.sample_header(step, result.rows[-1])}\n{text}", bar.write)
        if (
            opts.save_every
            and trainer.steps_done % opts.save_every == 0
            and watch.calm
            and i < opts.steps - 1
        ):
            _save(trainer, result, log)
        bar.update(1)
        if step % 10 == 0 or i == opts.steps - 1:
            rate = (i + 1) * chars / max(trainer.seconds - before, 1e-9)
            bar.set_postfix_str(f"{result.rows[-1][2]:.4f} nats/char, {rate:.0f} chars/s", refresh=False)
        if stop.received is not None:
            result.signal = stop.received
            return
