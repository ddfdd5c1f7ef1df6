"""`tinygrad-rnn train | sample | eval | export | gradcheck | gradflow | bench`: the notebook as a program.

    tinygrad-rnn train                        # the seed: the verse x100, H=64, T=25, Adagrad
    tinygrad-rnn train --text my.txt --steps 20000 --out my.npz
    tinygrad-rnn train --resume my.npz --steps 5000     # continues exactly where it stopped
    tinygrad-rnn train --cell lstm --layers 2           # an LSTM (or GRU) stack instead
    tinygrad-rnn sample --model my.npz --prime "Hope" -n 300
    tinygrad-rnn eval --model my.npz --text other.txt   # bits per character on a text
    tinygrad-rnn gradcheck                    # autograd vs reference BPTT vs fused vs finite diff
    tinygrad-rnn bench --quick                # time steps side by side (benchmarks/README.md)

This file parses options and prints; the loop is `run.py`, the training program `train.py`
(TrainConfig, Trainer), what a run prints and logs `runlog.py`, evaluation `evaluate.py`,
the gradient reports `reports.py`, the benchmarks `benchmarks/`.

Bad input (a missing text, a wrong option value, a broken checkpoint, ...) is one line on
stderr and exit code 2. A loss that becomes NaN or infinite stops training with exit code 1
and leaves the last good checkpoint in place. What guards a run (paths, the lock, signals, a
closed stdout) is `guard.py`; README "Nothing lost" says what a user gets.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn, Optional, Sequence

from tinygrad_rnn import checkpoint as ckpt_io
from tinygrad_rnn import evaluate, export, gradflow, runlog
from tinygrad_rnn.argtypes import nonnegative_float, nonnegative_int, positive_float, positive_int
from tinygrad_rnn.checkpoint import CheckpointError
from tinygrad_rnn.data import DataError, read_text
from tinygrad_rnn.guard import (
    UsageError,
    check_train_paths,
    held_step,
    out_lock,
    replace_unprintable,
    same_file,
    say,
    silence_stdout,
)
from tinygrad_rnn.layers import CELLS
from tinygrad_rnn.reports import run_gradcheck, run_stack_gradcheck
from tinygrad_rnn.run import RunOptions, RunResult, run
from tinygrad_rnn.train import (
    DEFAULT_OUT,
    DTYPES,
    OPTIMIZERS,
    ConfigError,
    TrainConfig,
    Trainer,
    TrainingDiverged,
    load_params,
    meta_value,
    training_text,
)

PROG = "tinygrad-rnn"
RECITAL_CHARS = 200  # the seed's final generation
BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"  # a source checkout's harness


# --- argument parsing ------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, no usage block
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Train, sample, check and benchmark a character-level RNN.")
    sub = parser.add_subparsers(
        dest="command", metavar="{train,sample,eval,export,gradcheck,gradflow,bench}", parser_class=_Parser
    )
    sub.required = True
    _add_train(sub)
    _add_sample(sub)
    e = sub.add_parser("eval", help=evaluate.HELP, description=evaluate.DESCRIPTION)
    evaluate.add_arguments(e)
    e.set_defaults(run=evaluate.run)
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
    t.add_argument("--steps", type=positive_int, default=10000, help="steps of this run (default 10000)")
    t.add_argument("--hidden", type=positive_int, help="hidden size (default 64)")
    t.add_argument("--cell", choices=tuple(CELLS), help="recurrent cell (default rnn, the seed's)")
    t.add_argument("--layers", type=positive_int, help="recurrent layers stacked (default 1)")
    t.add_argument("--seq-len", type=positive_int, help="characters per chunk, T (default 25)")
    t.add_argument("--batch", type=positive_int, help="parallel streams through the text, B (default 1)")
    t.add_argument("--optim", choices=tuple(OPTIMIZERS), help="optimizer (default adagrad)")
    t.add_argument(
        "--lr",
        type=positive_float,
        help="learning rate (default: adagrad 0.1, sgd 0.01, adam 0.003, rmsprop 0.002)",
    )
    t.add_argument(
        "--clip", type=nonnegative_float, help="clip gradient values to [-c, c]; 0: off (default 5)"
    )
    t.add_argument("--seed", type=nonnegative_int, help="seed of the random generator (default 0)")
    t.add_argument(
        "--sample-every", type=nonnegative_int, default=1000, help="print a sample every N steps; 0: never"
    )
    t.add_argument(
        "--save-every",
        type=nonnegative_int,
        default=1000,
        help="write the checkpoint every N steps (default 1000), and at the end or on Ctrl-C / SIGTERM; "
        "0: only then",
    )
    t.add_argument(
        "--fused",
        action=argparse.BooleanOptionalAction,
        help="run each layer's recurrence as one fused op (default; --no-fused: unrolled ops)",
    )
    t.add_argument("--dtype", choices=tuple(DTYPES), help="float64 (default) or float32")
    t.add_argument(
        "--out", metavar="PATH", help=f"checkpoint to write (default {DEFAULT_OUT}, or --resume's)"
    )
    t.add_argument("--resume", metavar="PATH", help="continue training from this checkpoint")
    t.add_argument("--init-from", metavar="PATH", help="start from these weights (.safetensors or .npz)")
    t.add_argument("--log", metavar="PATH", help="CSV of step, losses per character, seconds")
    t.add_argument("--plot", metavar="PATH", help="PNG of the losses (after --resume: the run's, from --log)")
    runlog.add_arguments(t)
    t.set_defaults(run=cmd_train)


def _add_sample(sub: Any) -> None:
    s = sub.add_parser("sample", help="generate text from a checkpoint")
    s.add_argument(
        "--model",
        metavar="PATH",
        default=DEFAULT_OUT,
        help=f"a .npz checkpoint or .safetensors file (default {DEFAULT_OUT}, what train writes)",
    )
    s.add_argument("--prime", help="text to start from (default: the training text's first character)")
    s.add_argument("-n", type=nonnegative_int, default=RECITAL_CHARS, help="characters to generate")
    s.add_argument("--prime-file", metavar="PATH", help="start from this file's text instead of --prime")
    s.add_argument("--temperature", type=nonnegative_float, default=1.0, help="0: most likely; 1: as is")
    s.add_argument("--top-k", type=positive_int, help="draw among the K most likely characters only")
    s.add_argument("--seed", type=nonnegative_int, default=0, help="random generator seed (default 0)")
    s.set_defaults(run=cmd_sample)


def _add_gradcheck(sub: Any) -> None:
    g = sub.add_parser("gradcheck", help="compare autograd, reference BPTT, fused op and finite differences")
    g.add_argument("--hidden", type=positive_int, default=16, help="hidden size (default 16)")
    g.add_argument(
        "--cell", choices=tuple(CELLS), default="rnn", help="rnn (default: all four paths), lstm or gru"
    )
    g.add_argument("--layers", type=positive_int, default=1, help="recurrent layers stacked (default 1)")
    g.add_argument("--seq-len", type=positive_int, default=10, help="sequence length (default 10)")
    g.add_argument("--batch", type=positive_int, default=2, help="batch size (default 2)")
    g.add_argument(
        "--seed", type=nonnegative_int, default=0, help="seed for the weights and data (default 0)"
    )
    g.set_defaults(run=cmd_gradcheck)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of `tinygrad-rnn` and `python -m tinygrad_rnn`; returns the exit code."""
    replace_unprintable()
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if rest and args.command != "bench":
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.bench_argv = rest
    try:
        code: int = args.run(args)
        sys.stdout.flush()  # a closed pipe shows here, not in the exit's final flush
        return code
    except BrokenPipeError:  # `... | head`: the reader has all it wanted
        silence_stdout()
        return 0
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
def _note(message: str) -> None:
    print(f"{PROG}: note: {message}", file=sys.stderr)


def _start(args: argparse.Namespace, out: str) -> tuple[Trainer, bool]:
    """(the Trainer `train`'s options describe, writing to `out`, resumed?)."""
    ck = ckpt_io.load(args.resume) if args.resume else None
    saved = None if ck is None else TrainConfig.from_checkpoint(ck, args.resume)
    config, init = export.init_from(args, TrainConfig.from_args(args, resumed=saved))  # init: --init-from's
    try:
        text = training_text(config.text)
    except DataError as e:
        if args.text is None and config.text is not None:  # the path came from the checkpoint
            raise DataError(f"{e} (the checkpoint's text; give it with --text)") from None
        raise
    if saved is not None and config.changes(saved):
        _note(f"fine-tuning: {', '.join(config.changes(saved))}")
    trainer = Trainer(config, text, out=out, vocab=getattr(ck or init, "vocab", None))
    if init is not None:
        load_params(trainer.model, init, args.init_from)
    if ck is not None and not trainer.restore(ck, args.resume):
        if "text_sha256" in ck.config:
            _note("the text differs from the checkpoint's; reading it from its start")
        else:
            _note("the checkpoint does not record which text it read; reading the text from its start")
    if os.path.exists(out) and not (args.resume and same_file(args.resume, out)):
        first = trainer.steps_done + (args.save_every if 0 < args.save_every < args.steps else args.steps)
        step = held_step(out)
        held = "is not a readable checkpoint" if step is None else f"holds a checkpoint at step {step}"
        _note(f"{out} {held}; this run replaces it when it first saves (step {first})")
    return trainer, ck is not None


def cmd_train(args: argparse.Namespace) -> int:
    out = check_train_paths(args)
    with out_lock(out, _note):
        trainer, resumed = _start(args, out)
        say(runlog.header(trainer, resumed))
        result = RunResult()
        eval_every = args.sample_every if args.eval_every is None else args.eval_every
        opts = RunOptions(args.steps, args.sample_every, args.save_every, args.log, resumed, eval_every)
        try:
            run(trainer, opts, result)
        finally:
            if args.plot and result.rows:
                whole = runlog.read_log(args.log) if args.log and resumed else []
                runlog.plot(args.plot, whole or result.rows)  # after --resume, the whole run's curve
    if result.note:
        _note(result.note)
    if result.signal is not None:
        name = signal.Signals(result.signal).name
        if result.saved == trainer.steps_done:
            where = f"checkpoint {trainer.out} written at step {result.saved}; continue with --resume"
        else:
            where = "no checkpoint written"
        print(f"{PROG}: interrupted by {name} after step {trainer.steps_done}: {where}", file=sys.stderr)
        return 128 + result.signal
    say(runlog.done_line(trainer, result.val))
    say(f"--- {RECITAL_CHARS} characters from {trainer.prime!r}:")
    say(trainer.sample(trainer.prime, RECITAL_CHARS))
    return 0


# --- sample ----------------------------------------------------------------------------------
def cmd_sample(args: argparse.Namespace) -> int:
    if not args.model:
        raise UsageError("--model must not be empty (an unset shell variable?)")
    model, ck = export.read_model(args.model)  # a checkpoint or a .safetensors weights file
    saved = meta_value(ck.config, "prime", "str", f"invalid checkpoint {args.model}", "")
    prime = args.prime if args.prime is not None else saved or ck.vocab.chars[0]
    if args.prime_file is not None:
        prime = read_text(args.prime_file)
    if not prime:
        raise UsageError("--prime must not be empty")
    unknown = ck.vocab.unknown(prime)
    if unknown:
        shown = ", ".join(repr(c) for c in unknown)
        raise UsageError(f"the prime has characters that are not in the model's vocabulary: {shown}")
    ids = model.sample(
        ck.vocab.encode(prime), args.n, temperature=args.temperature, rng=args.seed, top_k=args.top_k
    )
    print(prime + ck.vocab.decode(ids))
    return 0


# --- gradcheck -------------------------------------------------------------------------------
def cmd_gradcheck(args: argparse.Namespace) -> int:
    if args.cell == "rnn" and args.layers == 1:
        return run_gradcheck(args.hidden, args.seq_len, args.batch, args.seed)
    return run_stack_gradcheck(args.cell, args.layers, args.hidden, args.seq_len, args.batch, args.seed)


# --- bench -----------------------------------------------------------------------------------
def cmd_bench(args: argparse.Namespace) -> int:
    """The harness of benchmarks/ in the source checkout the package sits in, loaded only now."""
    if not (BENCHMARKS.parent / "pyproject.toml").is_file() or not (BENCHMARKS / "harness.py").is_file():
        raise UsageError(
            "the benchmark harness is not installed with the package; "
            "run `python benchmarks/bench_rnn.py` from a source checkout"
        )
    for name in ("contenders", "peers"):  # harness.py's `from contenders import ...` (and peers)
        _load_benchmark(name, shared=True)
    harness = _load_benchmark("harness")
    parser = _Parser(
        prog=f"{PROG} bench", description="Time training steps side by side (benchmarks/README.md)."
    )
    harness.add_arguments(parser)
    code: int = harness.run(parser.parse_args(args.bench_argv))
    return code


def _load_benchmark(name: str, shared: bool = False) -> ModuleType:
    """benchmarks/<name>.py loaded by its file path (sys.path untouched); `shared`: registered
    in sys.modules under `name`, for the harness's import of it (reused if loaded from there)."""
    path = BENCHMARKS / f"{name}.py"
    loaded = sys.modules.get(name)
    if shared and loaded is not None and Path(getattr(loaded, "__file__", "")) == path:
        return loaded
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UsageError(f"cannot load the benchmark module {path}")
    module = importlib.util.module_from_spec(spec)
    if shared:
        sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
