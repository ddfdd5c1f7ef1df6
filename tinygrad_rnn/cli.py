"""`tinygrad-rnn train | sample | gradcheck | bench`: the seed notebook as a command-line program.

    tinygrad-rnn train                        # the seed: the verse x100, H=64, T=25, Adagrad
    tinygrad-rnn train --text my.txt --steps 20000 --out my.npz
    tinygrad-rnn train --resume my.npz --steps 5000     # continues exactly where it stopped
    tinygrad-rnn train --cell lstm --layers 2           # an LSTM (or GRU) stack instead
    tinygrad-rnn sample --model my.npz --prime "Hope" -n 300
    tinygrad-rnn gradcheck                    # autograd vs reference BPTT vs fused vs finite diff
    tinygrad-rnn bench --quick                # time steps side by side (benchmarks/README.md)

Bad input (a missing text, a wrong option value, a broken checkpoint, ...) is one line on
stderr and exit code 2. A loss that becomes NaN or infinite stops training with exit code 1
and leaves the last good checkpoint in place.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
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
from tinygrad_rnn.checkpoint import Checkpoint, CheckpointError
from tinygrad_rnn.data import CharBatches, CharVocab, DataError, default_text, read_text
from tinygrad_rnn.layers import CELLS, CharRNN
from tinygrad_rnn.optim import SGD, Adagrad, Adam, Optimizer, RMSprop, clip_grad_value_
from tinygrad_rnn.reports import run_gradcheck, run_stack_gradcheck

PROG = "tinygrad-rnn"
DEFAULT_OUT = "tinygrad_rnn.npz"
OPTIMIZERS = ("adagrad", "sgd", "adam", "rmsprop")
DTYPES = {"float64": np.float64, "float32": np.float32}
SMOOTHING = 0.999  # smoothed loss = 0.999 * smoothed + 0.001 * loss, as in min-char-rnn
SAMPLE_CHARS = 150  # the seed's progress samples
RECITAL_CHARS = 200  # the seed's final generation
BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"  # the harness, in a source checkout


class UsageError(Exception):
    """Bad input from the user: reported as one line, exit code 2."""


class TrainingDiverged(Exception):
    """The loss became NaN or infinite: reported as one line, exit code 1."""


# --- argument parsing ------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, no usage block
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def _nonnegative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}")
    return value


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
        dest="command", metavar="{train,sample,gradcheck,bench}", parser_class=_Parser
    )
    sub.required = True

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
    t.add_argument("--optim", choices=OPTIMIZERS, help="optimizer (default adagrad)")
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
    t.add_argument("--log", metavar="PATH", help="CSV of step, loss, smoothed loss, seconds")
    t.add_argument("--plot", metavar="PATH", help="PNG of the loss curve (needs matplotlib)")
    t.set_defaults(run=cmd_train)

    s = sub.add_parser("sample", help="generate text from a checkpoint")
    s.add_argument("--model", metavar="PATH", required=True, help="a checkpoint written by train")
    s.add_argument("--prime", help="text to start from (default: the training text's first character)")
    s.add_argument("-n", type=_nonnegative_int, default=RECITAL_CHARS, help="characters to generate")
    s.add_argument("--temperature", type=_nonnegative_float, default=1.0, help="0: most likely; 1: as is")
    s.add_argument(
        "--seed", type=_nonnegative_int, default=0, help="seed of the random generator (default 0)"
    )
    s.set_defaults(run=cmd_sample)

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

    # the harness lives outside the package: cmd_bench imports it and parses its options
    b = sub.add_parser(
        "bench", help="time training steps: the seed's loop, autograd, fused, PyTorch", add_help=False
    )
    b.set_defaults(run=cmd_bench)
    return parser


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
    except (UsageError, DataError, CheckpointError) as e:
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


def _load_checkpoint(path: str) -> Checkpoint:
    ck = ckpt_io.load(path)
    for key in ("hidden_size", "vocab_size", "dtype"):
        if key not in ck.config:
            raise CheckpointError(f"invalid checkpoint {path}: the config has no {key!r}")
    if ck.config["dtype"] not in DTYPES:
        raise CheckpointError(f"invalid checkpoint {path}: unknown dtype {ck.config['dtype']!r}")
    for key, default in ARCH_DEFAULTS.items():
        ck.config.setdefault(key, default)  # written before LSTM/GRU and stacks: the seed's rnn
    if ck.config["cell"] not in CELLS:
        raise CheckpointError(f"invalid checkpoint {path}: unknown cell {ck.config['cell']!r}")
    layers = ck.config["num_layers"]
    if not isinstance(layers, int) or isinstance(layers, bool) or layers < 1:
        raise CheckpointError(
            f"invalid checkpoint {path}: num_layers must be an integer >= 1, got {layers!r}"
        )
    return ck


def _build_model(config: dict[str, Any], fused: bool, rng: Any) -> CharRNN:
    """The model the config describes (its architecture: vocabulary, hidden, cell, layers)."""
    return CharRNN(
        int(config["vocab_size"]),
        int(config["hidden_size"]),
        fused=fused,
        cell=str(config.get("cell", ARCH_DEFAULTS["cell"])),
        num_layers=int(config.get("num_layers", ARCH_DEFAULTS["num_layers"])),
        dtype=DTYPES[config["dtype"]],
        rng=rng,
    )


def _restore_params(model: CharRNN, ck: Checkpoint, path: str) -> None:
    try:
        ckpt_io.check_params(model.state_dict(), ck.params)
    except CheckpointError as e:
        raise CheckpointError(f"invalid checkpoint {path}: {e}") from None
    model.load_state_dict(ck.params)


def _make_optimizer(name: str, params: list[Any], lr: float) -> Optimizer:
    classes: dict[str, Any] = {"adagrad": Adagrad, "sgd": SGD, "adam": Adam, "rmsprop": RMSprop}
    optimizer: Optimizer = classes[name](params, lr=lr)
    return optimizer


# --- train -----------------------------------------------------------------------------------
TRAIN_DEFAULTS: dict[str, Any] = {
    "hidden": 64,
    "cell": "rnn",
    "layers": 1,
    "seq_len": 25,
    "batch": 1,
    "optim": "adagrad",
    "lr": None,  # then LR_DEFAULTS[optim]
    "clip": 5.0,
    "seed": 0,
    "dtype": "float64",
}
# learning rates that train the verse well (see examples/swap_optimizers.py); adagrad's is the seed's
LR_DEFAULTS = {"adagrad": 0.1, "sgd": 0.01, "adam": 0.003, "rmsprop": 0.002}
# option name -> key in the checkpoint's config
CONFIG_KEYS = {
    "hidden": "hidden_size",
    "cell": "cell",
    "layers": "num_layers",
    "seq_len": "seq_len",
    "batch": "batch_size",
    "optim": "optim",
    "lr": "lr",
    "clip": "clip",
    "seed": "seed",
    "dtype": "dtype",
}
# config keys that checkpoints written before LSTM/GRU and stacks lack: they are the seed's rnn
ARCH_DEFAULTS: dict[str, Any] = {"cell": "rnn", "num_layers": 1}


def _text_of(path: Optional[str]) -> str:
    text = default_text() if path is None else read_text(path)
    if not text:
        raise DataError(f"the text file is empty: {path}")
    return text


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class _Run:
    """The state of one training invocation (model, optimizer, data, generator, counters)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.out = args.out or args.resume or DEFAULT_OUT
        _check_writable(self.out, "checkpoint")
        if args.log:
            _check_writable(args.log, "log")
        if args.plot:
            _check_writable(args.plot, "plot")
            _require_matplotlib()
        resumed = _load_checkpoint(args.resume) if args.resume else None
        self.resumed = resumed

        if resumed is None:
            opts = {
                k: (TRAIN_DEFAULTS[k] if getattr(args, k) is None else getattr(args, k)) for k in CONFIG_KEYS
            }
            if opts["lr"] is None:
                opts["lr"] = LR_DEFAULTS[opts["optim"]]
            text_path = args.text
        else:
            saved = resumed.config
            opts = {}
            for opt, key in CONFIG_KEYS.items():
                if key not in saved:
                    raise CheckpointError(f"invalid checkpoint {args.resume}: the config has no {key!r}")
                given = getattr(args, opt)
                if given is not None and given != saved[key]:
                    flag = "--" + opt.replace("_", "-")
                    raise UsageError(
                        f"{flag} {given} differs from the checkpoint's {saved[key]}; "
                        "with --resume it comes from the checkpoint (leave it out)"
                    )
                opts[opt] = saved[key]
            text_path = args.text if args.text is not None else saved.get("text")

        try:
            text = _text_of(text_path)
        except DataError as e:
            if args.text is None and text_path is not None:  # the path came from the checkpoint
                raise DataError(f"{e} (the checkpoint's text; give it with --text)") from None
            raise
        if resumed is None:
            self.vocab = CharVocab.from_text(text)
        else:
            self.vocab = resumed.vocab
            unknown = self.vocab.unknown(text)
            if unknown:
                shown = ", ".join(repr(c) for c in unknown)
                raise DataError(
                    f"the text has characters that are not in the checkpoint's vocabulary: {shown}"
                )
        ids = self.vocab.encode(text)
        self.config: dict[str, Any] = {
            "text": None if text_path is None else os.path.abspath(text_path),
            "text_sha256": _digest(text),
            "text_length": len(text),
            "prime": text[0],
            "vocab_size": len(self.vocab),
            "hidden_size": int(opts["hidden"]),
            "cell": str(opts["cell"]),
            "num_layers": int(opts["layers"]),
            "seq_len": int(opts["seq_len"]),
            "batch_size": int(opts["batch"]),
            "optim": str(opts["optim"]),
            "lr": float(opts["lr"]),
            "clip": float(opts["clip"]),
            "seed": int(opts["seed"]),
            "dtype": str(opts["dtype"]),
        }
        self.batches = CharBatches(ids, self.config["seq_len"], self.config["batch_size"])

        self.rng = np.random.default_rng(self.config["seed"])
        if args.fused and self.config["cell"] != "rnn":
            raise UsageError(f"--fused is only for --cell rnn; a {self.config['cell']} runs unfused")
        self.fused = self.config["cell"] == "rnn" if args.fused is None else bool(args.fused)
        self.model = _build_model(self.config, self.fused, self.rng)
        self.params = self.model.parameters()
        self.opt = _make_optimizer(self.config["optim"], self.params, self.config["lr"])
        self.step = 0
        self.hidden: Any = None  # the state carried between chunks (see CharRNN); None: zeros
        self.smooth = -math.log(1.0 / len(self.vocab)) * self.config["seq_len"]
        self.seconds = 0.0
        self.first_input = 0  # id of the last chunk's first input (primes the progress samples)
        if resumed is not None:
            self._restore(resumed, args.resume, same_text=resumed.config.get("text_sha256") == _digest(text))

    def _restore(self, ck: Checkpoint, path: str, same_text: bool) -> None:
        _restore_params(self.model, ck, path)
        if ck.optimizer is None or ck.rng is None:
            raise CheckpointError(
                f"invalid checkpoint {path}: no optimizer or generator state to resume from"
            )
        try:
            self.opt.load_state_dict(ck.optimizer)
        except (ValueError, KeyError, TypeError) as e:
            raise CheckpointError(f"invalid checkpoint {path}: optimizer state: {e}") from None
        try:
            self.rng.bit_generator.state = ck.rng
        except (ValueError, KeyError, TypeError) as e:
            raise CheckpointError(f"invalid checkpoint {path}: generator state: {e}") from None
        self.step = ck.step
        self.smooth = float(ck.extra.get("smooth_loss", self.smooth))
        self.seconds = float(ck.extra.get("seconds", 0.0))
        if same_text:
            try:
                self.batches.position = ck.position
            except DataError as e:
                raise CheckpointError(f"invalid checkpoint {path}: {e}") from None
            if ck.hidden is not None:
                try:
                    self.hidden = self.model.state_from_array(ck.hidden, self.config["batch_size"])
                except ValueError as e:
                    raise CheckpointError(f"invalid checkpoint {path}: hidden state: {e}") from None
        else:
            print(
                f"{PROG}: note: the text differs from the checkpoint's; reading it from its start",
                file=sys.stderr,
            )

    def checkpoint(self) -> Checkpoint:
        return Checkpoint(
            params=self.model.state_dict(),
            vocab=self.vocab,
            config=self.config,
            step=self.step,
            position=self.batches.position,
            hidden=None if self.hidden is None else self.model.state_array(self.hidden),
            optimizer=self.opt.state_dict(),
            rng=dict(self.rng.bit_generator.state),
            extra={"smooth_loss": self.smooth, "seconds": self.seconds},
        )

    def check_finite(self) -> None:
        """TrainingDiverged if an update left a parameter NaN or infinite (before sampling/saving)."""
        for name, p in self.model.named_parameters():
            if not np.isfinite(p.data).all():
                raise TrainingDiverged(
                    f"parameter {name} became NaN or infinite at step {self.step - 1}; training "
                    f"stopped (the last good checkpoint is {self.out}; try a smaller --lr)"
                )

    def save(self) -> None:
        self.check_finite()
        ckpt_io.save(self.out, self.checkpoint())

    def train_step(self) -> float:
        """One step: next chunk, forward, backward, clip, update; returns the chunk's loss.

        A NaN or infinite loss raises TrainingDiverged before anything is updated.
        """
        chunk = self.batches.next()
        self.first_input = int(chunk.inputs[0, 0])
        if chunk.reset:
            self.hidden = None
        loss, h = self.model.loss(chunk.inputs, chunk.targets, self.hidden)
        value = float(loss.item())
        if not math.isfinite(value):
            raise TrainingDiverged(
                f"the loss became {value} at step {self.step}; training stopped "
                f"(the last good checkpoint is {self.out}; try a smaller --lr)"
            )
        self.opt.zero_grad()
        loss.backward()
        if self.config["clip"] > 0:
            clip_grad_value_(self.params, self.config["clip"])
        self.opt.step()
        self.hidden = h
        self.smooth = SMOOTHING * self.smooth + (1 - SMOOTHING) * value
        return value

    def sample(self, prime: str, n: int) -> str:
        ids = self.model.sample(self.vocab.encode(prime), n, rng=self.rng)
        return prime + self.vocab.decode(ids)


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


def cmd_train(args: argparse.Namespace) -> int:
    run = _Run(args)
    cfg = run.config
    source = cfg["text"] or "the built-in verse x100"
    first, last = run.step, run.step + args.steps
    print(
        f"{'resuming at step ' + str(first) if run.resumed else 'training'}: {source}, "
        f"{cfg['text_length']} characters, vocabulary {cfg['vocab_size']}, "
        f"{cfg['cell']} x{cfg['num_layers']}, hidden {cfg['hidden_size']}, seq-len {cfg['seq_len']}, "
        f"batch {cfg['batch_size']}, {cfg['optim']} lr {cfg['lr']}, "
        f"clip {cfg['clip']}, seed {cfg['seed']}, {cfg['dtype']}, {'fused' if run.fused else 'autograd'}"
    )
    run.save()  # a good checkpoint exists from the start (and the output path works)
    log: Optional[IO[str]] = None
    writer: Any = None
    if args.log:
        append = bool(run.resumed) and os.path.exists(args.log) and os.path.getsize(args.log) > 0
        log = open(args.log, "a" if append else "w", newline="", encoding="utf-8")
        writer = csv.writer(log)
        if not append:
            writer.writerow(["step", "loss", "smooth_loss", "seconds"])
    rows: list[tuple[int, float, float, float]] = []
    start = time.perf_counter() - run.seconds
    bar = tqdm(total=args.steps, desc="train", unit="step", dynamic_ncols=True, file=sys.stderr, disable=None)
    try:
        with contextlib.ExitStack() as stack:
            # overflow is detected and reported below (loss and parameters), not warned about
            stack.enter_context(np.errstate(over="ignore", invalid="ignore"))
            if log is not None:
                stack.enter_context(log)
            stack.enter_context(bar)
            for step in range(first, last):
                loss = run.train_step()
                run.step = step + 1
                run.seconds = time.perf_counter() - start
                rows.append((step, loss, run.smooth, run.seconds))
                if writer is not None:
                    writer.writerow([step, repr(loss), repr(run.smooth), f"{run.seconds:.3f}"])
                if args.sample_every and step % args.sample_every == 0:
                    run.check_finite()
                    # like the seed: primed with the chunk's first input, from a zero state
                    text = run.sample(run.vocab.chars[run.first_input], SAMPLE_CHARS)
                    bar.write(f"--- step {step}, loss {loss:.4f}, smoothed {run.smooth:.4f}\n{text}")
                    run.save()
                    if log is not None:
                        log.flush()
                bar.update(1)
                if step % 10 == 0 or step == last - 1:
                    bar.set_postfix_str(f"loss {run.smooth:.4f}", refresh=False)
            run.save()
    finally:
        if args.plot and rows:
            _plot(args.plot, rows)
    print(f"done: step {run.step}, smoothed loss {run.smooth:.4f}, checkpoint {run.out}")
    print(f"--- {RECITAL_CHARS} characters from {cfg['prime']!r}:")
    print(run.sample(cfg["prime"], RECITAL_CHARS))
    return 0


# --- sample ----------------------------------------------------------------------------------
def cmd_sample(args: argparse.Namespace) -> int:
    ck = _load_checkpoint(args.model)
    model = _build_model(ck.config, fused=False, rng=0)
    _restore_params(model, ck, args.model)
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
