"""`tinygrad-rnn train | sample | export | gradcheck | gradflow | bench`: the seed notebook as a command line.

    tinygrad-rnn train                        # the seed: the verse x100, H=64, T=25, Adagrad
    tinygrad-rnn train --text my.txt --steps 20000 --out my.npz
    tinygrad-rnn train --resume my.npz --steps 5000     # continues exactly where it stopped
    tinygrad-rnn train --cell lstm --layers 2           # an LSTM (or GRU) stack instead
    tinygrad-rnn sample --model my.npz --prime "Hope" -n 300
    tinygrad-rnn gradcheck                    # autograd vs reference BPTT vs fused vs finite diff
    tinygrad-rnn bench --quick                # time steps side by side (benchmarks/README.md)

This file parses options, prints and runs the loop; the training program is `train.py`
(TrainConfig, Trainer), the gradient reports `reports.py`, the benchmarks `benchmarks/`.

Bad input (a missing text, a wrong option value, a broken checkpoint, ...) is one line on
stderr and exit code 2. A loss that becomes NaN or infinite stops training with exit code 1
and leaves the last good checkpoint in place.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import importlib
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any, NoReturn, Optional, Sequence

import numpy as np
from tqdm import tqdm

from tinygrad_rnn import checkpoint as ckpt_io
from tinygrad_rnn import export, gradflow
from tinygrad_rnn.checkpoint import CheckpointError
from tinygrad_rnn.data import DataError
from tinygrad_rnn.layers import CELLS
from tinygrad_rnn.reports import run_gradcheck, run_stack_gradcheck
from tinygrad_rnn.train import (
    DEFAULT_OUT,
    DTYPES,
    OPTIMIZERS,
    ConfigError,
    TrainConfig,
    Trainer,
    TrainingDiverged,
    load_params,
    training_text,
)

PROG = "tinygrad-rnn"
SAMPLE_CHARS = 150  # the seed's progress samples
RECITAL_CHARS = 200  # the seed's final generation
BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"  # the harness, in a source checkout


class UsageError(Exception):
    """Bad input from the user: reported as one line, exit code 2."""


# --- argument parsing ------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, no usage block
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _int(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        value = least - 1
    if value < least:
        want = "a positive integer" if least == 1 else "an integer >= 0"
        raise argparse.ArgumentTypeError(f"must be {want}, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    return _int(text, least=1)


def _nonnegative_int(text: str) -> int:
    return _int(text, least=0)


def _float(text: str, positive: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        want = "a positive number" if positive else "a number >= 0"
        raise argparse.ArgumentTypeError(f"must be {want}, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    return _float(text, positive=True)


def _nonnegative_float(text: str) -> float:
    return _float(text, positive=False)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Train, sample, check and benchmark a character-level RNN.")
    sub = parser.add_subparsers(
        dest="command", metavar="{train,sample,gradcheck,export,gradflow,bench}", parser_class=_Parser
    )
    sub.required = True
    _add_train(sub)
    _add_sample(sub)
    _add_gradcheck(sub)
    for name, feature in (("export", export), ("gradflow", gradflow)):  # options and run in their modules
        feature.add_arguments(f := sub.add_parser(name, help=feature.HELP, description=feature.DESCRIPTION))
        f.set_defaults(run=feature.run)
    # the harness lives outside the package: cmd_bench imports it and parses its options
    b = sub.add_parser(
        "bench", help="time training steps: the seed's loop, autograd, fused, PyTorch", add_help=False
    )
    b.set_defaults(run=cmd_bench)
    return parser


def _add_train(sub: Any) -> None:
    t = sub.add_parser(
        "train",
        help="train a char-RNN (no options: the seed notebook's run)",
        description="Train a char-RNN. Without options this is the seed notebook: the verse "
        "repeated 100 times, hidden 64, seq-len 25, batch 1, Adagrad lr 0.1, gradients clipped "
        "at 5, 10000 steps, seed 0. With --resume, the model, optimizer, data position, hidden "
        "state and random generator continue from the checkpoint.",
    )
    t.add_argument("--text", metavar="PATH", help="a UTF-8 text file (default: the built-in verse x100)")
    t.add_argument("--steps", type=_positive_int, default=10000, help="steps of this run (default 10000)")
    t.add_argument("--hidden", type=_positive_int, help="hidden size (default 64)")
    t.add_argument("--cell", choices=tuple(CELLS), help="recurrent cell (default rnn, the seed's)")
    t.add_argument("--layers", type=_positive_int, help="recurrent layers stacked (default 1)")
    t.add_argument("--seq-len", type=_positive_int, help="characters per chunk, T (default 25)")
    t.add_argument("--batch", type=_positive_int, help="parallel streams through the text, B (default 1)")
    t.add_argument("--optim", choices=tuple(OPTIMIZERS), help="optimizer (default adagrad)")
    t.add_argument(
        "--lr",
        type=_positive_float,
        help="learning rate (default: adagrad 0.1, sgd 0.01, adam 0.003, rmsprop 0.002)",
    )
    t.add_argument(
        "--clip", type=_nonnegative_float, help="clip gradient values to [-c, c]; 0: off (default 5)"
    )
    t.add_argument("--seed", type=_nonnegative_int, help="seed of the random generator (default 0)")
    t.add_argument(
        "--sample-every", type=_nonnegative_int, default=1000, help="print a sample every N steps; 0: never"
    )
    t.add_argument(
        "--fused",
        action=argparse.BooleanOptionalAction,
        help="use the fused op (default for --cell rnn; lstm and gru have none and run unfused)",
    )
    t.add_argument("--dtype", choices=tuple(DTYPES), help="float64 (default) or float32")
    t.add_argument(
        "--out", metavar="PATH", help=f"checkpoint to write (default {DEFAULT_OUT}, or --resume's)"
    )
    t.add_argument("--resume", metavar="PATH", help="continue training from this checkpoint")
    t.add_argument("--init-from", metavar="PATH", help="start from these weights (.safetensors or .npz)")
    t.add_argument("--log", metavar="PATH", help="CSV of step, loss, smoothed loss, seconds")
    t.add_argument("--plot", metavar="PATH", help="PNG of the loss curve (needs matplotlib)")
    t.set_defaults(run=cmd_train)


def _add_sample(sub: Any) -> None:
    s = sub.add_parser("sample", help="generate text from a checkpoint")
    s.add_argument("--model", metavar="PATH", required=True, help="a .npz checkpoint or .safetensors file")
    s.add_argument("--prime", help="text to start from (default: the training text's first character)")
    s.add_argument("-n", type=_nonnegative_int, default=RECITAL_CHARS, help="characters to generate")
    s.add_argument("--temperature", type=_nonnegative_float, default=1.0, help="0: most likely; 1: as is")
    s.add_argument("--seed", type=_nonnegative_int, default=0, help="random generator seed (default 0)")
    s.set_defaults(run=cmd_sample)


def _add_gradcheck(sub: Any) -> None:
    g = sub.add_parser("gradcheck", help="compare autograd, reference BPTT, fused op and finite differences")
    g.add_argument("--hidden", type=_positive_int, default=16, help="hidden size (default 16)")
    g.add_argument(
        "--cell", choices=tuple(CELLS), default="rnn", help="rnn (default: all four paths), lstm or gru"
    )
    g.add_argument("--layers", type=_positive_int, default=1, help="recurrent layers stacked (default 1)")
    g.add_argument("--seq-len", type=_positive_int, default=10, help="sequence length (default 10)")
    g.add_argument("--batch", type=_positive_int, default=2, help="batch size (default 2)")
    g.add_argument(
        "--seed", type=_nonnegative_int, default=0, help="seed for the weights and data (default 0)"
    )
    g.set_defaults(run=cmd_gradcheck)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of `tinygrad-rnn` and `python -m tinygrad_rnn`; returns the exit code."""
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if rest and args.command != "bench":
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.bench_argv = rest
    try:
        code: int = args.run(args)
        return code
    except (UsageError, ConfigError, DataError, CheckpointError) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except TrainingDiverged as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # the disk filled up, a file vanished mid-run, ...
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted", file=sys.stderr)
        return 130


# --- shared helpers --------------------------------------------------------------------------
def _check_writable(path: str, what: str) -> None:
    """UsageError unless a file can be created next to `path` (probed with a real temp file)."""
    if os.path.isdir(path):
        raise UsageError(f"{what} {path} is a directory")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise UsageError(f"cannot write {what} {path}: directory {directory} does not exist")
    try:
        fd, probe = tempfile.mkstemp(prefix=".probe.", dir=directory)
    except OSError as e:
        raise UsageError(f"cannot write {what} {path}: {e.strerror or e}") from None
    os.close(fd)
    os.unlink(probe)
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise UsageError(f"cannot write {what} {path}: permission denied")


def _require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError(
            "--plot needs matplotlib, which is not installed: pip install 'tinygrad-rnn[plot]'"
        ) from None


def _plot(path: str, rows: list[tuple[int, float, float, float]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r[0] for r in rows]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot(steps, [r[1] for r in rows], lw=0.5, alpha=0.4, label="loss")
    ax.plot(steps, [r[2] for r in rows], lw=1.5, label="smoothed loss")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy per chunk")
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --- train -----------------------------------------------------------------------------------
def _start(args: argparse.Namespace) -> tuple[Trainer, bool]:
    """(the Trainer `train`'s options describe, resumed?); every path is checked first."""
    out = args.out or args.resume or DEFAULT_OUT
    _check_writable(out, "checkpoint")
    if args.log:
        _check_writable(args.log, "log")
    if args.plot:
        _check_writable(args.plot, "plot")
        _require_matplotlib()
    ck = ckpt_io.load(args.resume) if args.resume else None
    saved = None if ck is None else TrainConfig.from_checkpoint(ck, args.resume)
    config, init = export.init_from(args, TrainConfig.from_args(args, resumed=saved))  # init: --init-from's
    try:
        text = training_text(config.text)
    except DataError as e:
        if args.text is None and config.text is not None:  # the path came from the checkpoint
            raise DataError(f"{e} (the checkpoint's text; give it with --text)") from None
        raise
    trainer = Trainer(config, text, out=out, vocab=getattr(ck or init, "vocab", None))
    if init is not None:
        load_params(trainer.model, init, args.init_from)
    if ck is not None and not trainer.restore(ck, args.resume):
        note = "the text differs from the checkpoint's; reading it from its start"
        print(f"{PROG}: note: {note}", file=sys.stderr)
    return trainer, ck is not None


def _header(trainer: Trainer, resumed: bool) -> str:
    """The first line of a run: what is trained on what, with which settings."""
    c = trainer.config
    source = "the built-in verse x100" if c.text is None else os.path.abspath(c.text)
    start = f"resuming at step {trainer.steps_done}" if resumed else "training"
    return (
        f"{start}: {source}, {trainer.text_length} characters, vocabulary {len(trainer.vocab)}, "
        f"{c.cell} x{c.layers}, hidden {c.hidden}, seq-len {c.seq_len}, batch {c.batch}, "
        f"{c.optim} lr {c.lr}, clip {c.clip}, seed {c.seed}, {c.dtype}, {'fused' if c.fused else 'autograd'}"
    )


def _open_log(path: str, resumed: bool) -> tuple[IO[str], Any]:
    """The CSV log and its writer; a resumed run appends to a log that has rows."""
    append = resumed and os.path.exists(path) and os.path.getsize(path) > 0
    log = open(path, "a" if append else "w", newline="", encoding="utf-8")
    writer = csv.writer(log)
    if not append:
        writer.writerow(["step", "loss", "smooth_loss", "seconds"])
    return log, writer


def cmd_train(args: argparse.Namespace) -> int:
    trainer, resumed = _start(args)
    print(_header(trainer, resumed))
    trainer.save()  # a good checkpoint exists from the start (and the output path works)
    log, writer = _open_log(args.log, resumed) if args.log else (None, None)
    rows: list[tuple[int, float, float, float]] = []
    start = time.perf_counter() - trainer.seconds
    bar = tqdm(total=args.steps, desc="train", unit="step", dynamic_ncols=True, file=sys.stderr, disable=None)
    try:
        with contextlib.ExitStack() as stack:
            # overflow is detected and reported below (loss and parameters), not warned about
            stack.enter_context(np.errstate(over="ignore", invalid="ignore"))
            if log is not None:
                stack.enter_context(log)
            stack.enter_context(bar)
            for i in range(args.steps):
                loss = trainer.step()
                step, smooth = trainer.steps_done - 1, trainer.smooth
                trainer.seconds = time.perf_counter() - start
                rows.append((step, loss, smooth, trainer.seconds))
                if writer is not None:
                    writer.writerow([step, repr(loss), repr(smooth), f"{trainer.seconds:.3f}"])
                if args.sample_every and step % args.sample_every == 0:
                    trainer.check_finite()
                    # like the seed: primed with the chunk's first input, from a zero state
                    text = trainer.sample(trainer.vocab.chars[trainer.first_input], SAMPLE_CHARS)
                    bar.write(f"--- step {step}, loss {loss:.4f}, smoothed {smooth:.4f}\n{text}")
                    trainer.save()
                    if log is not None:
                        log.flush()
                bar.update(1)
                if step % 10 == 0 or i == args.steps - 1:
                    bar.set_postfix_str(f"loss {smooth:.4f}", refresh=False)
            trainer.save()
    finally:
        if args.plot and rows:
            _plot(args.plot, rows)
    print(f"done: step {trainer.steps_done}, smoothed loss {trainer.smooth:.4f}, checkpoint {trainer.out}")
    print(f"--- {RECITAL_CHARS} characters from {trainer.prime!r}:")
    print(trainer.sample(trainer.prime, RECITAL_CHARS))
    return 0


# --- sample ----------------------------------------------------------------------------------
def cmd_sample(args: argparse.Namespace) -> int:
    model, ck = export.read_model(args.model)  # a checkpoint or a .safetensors weights file
    prime = args.prime if args.prime is not None else str(ck.config.get("prime") or ck.vocab.chars[0])
    if not prime:
        raise UsageError("--prime must not be empty")
    unknown = ck.vocab.unknown(prime)
    if unknown:
        shown = ", ".join(repr(c) for c in unknown)
        raise UsageError(f"the prime has characters that are not in the model's vocabulary: {shown}")
    ids = model.sample(ck.vocab.encode(prime), args.n, temperature=args.temperature, rng=args.seed)
    print(prime + ck.vocab.decode(ids))
    return 0


# --- gradcheck -------------------------------------------------------------------------------
def cmd_gradcheck(args: argparse.Namespace) -> int:
    if args.cell == "rnn" and args.layers == 1:
        return run_gradcheck(args.hidden, args.seq_len, args.batch, args.seed)
    return run_stack_gradcheck(args.cell, args.layers, args.hidden, args.seq_len, args.batch, args.seed)


# --- bench -----------------------------------------------------------------------------------
def cmd_bench(args: argparse.Namespace) -> int:
    """The harness of benchmarks/ next to the package (a source checkout), imported only now."""
    if not (BENCHMARKS / "harness.py").is_file():
        raise UsageError(
            "the benchmark harness is not installed with the package; "
            "run `python benchmarks/bench_rnn.py` from a source checkout"
        )
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    harness = importlib.import_module("harness")
    parser = _Parser(
        prog=f"{PROG} bench", description="Time training steps side by side (benchmarks/README.md)."
    )
    harness.add_arguments(parser)
    code: int = harness.run(parser.parse_args(args.bench_argv))
    return code
