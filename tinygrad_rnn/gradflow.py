"""Gradients through time: how much the loss at the last step still feels each earlier state.

    tinygrad-rnn gradflow --plot gradflow.png     # rnn, lstm, gru on the verse; table + picture

What is measured (`gradient_through_time`): a chunk of T + 1 characters gives inputs
x_0 .. x_{T-1} and targets y_0 .. y_{T-1}; the model runs from the state that the W
characters before the chunk leave (`warmup`, read without gradient; W = 0: the zero
state), and h_t is its hidden state after reading x_t (for the LSTM the output h_t, not
the cell c_t; for a stack, the h of every layer). loss_T is the cross-entropy of the last
step alone, of the logits from h_{T-1} against y_{T-1}. For each t the engine's
`Tape.gradient` gives d loss_T / d h_t through every path of the graph (h_t's own node is
the source, so for the LSTM c_t is held as it is); its Euclidean norm per batch column is
averaged over the columns and the chunks. Entry d of the result is distance d into the
past: t = T-1-d.

The plain tanh RNN multiplies that gradient by W_hh^T diag(1 - h^2) at every step back,
so it shrinks (or grows) geometrically; the LSTM's cell path and the GRU's z-gated path
pass it on through a sum. `gradflow_experiment` shows it for all three cells on one text,
at initialisation and after some training, `format_table` prints it, `plot_gradflow`
draws it on a log scale. `add_arguments` and `run` are the command line's.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Optional, Sequence, Union

import numpy as np

from tinygrad_rnn.argtypes import nonnegative_int, plot_path, positive_int
from tinygrad_rnn.data import CharVocab, DataError, default_text, read_text
from tinygrad_rnn.layers import CELLS, CharRNN
from tinygrad_rnn.ops import softmax_cross_entropy
from tinygrad_rnn.tape import Tape, no_grad
from tinygrad_rnn.train import TrainConfig, Trainer

DTYPES = {"float64": np.float64, "float32": np.float32}
DISTANCES = (0, 1, 2, 5, 10, 15, 20, 24)  # the rows `format_table` shows by default
PHASES = ("init", "trained")
INSTALL_HINT = "pip install 'tinygrad-rnn[plot]' (in a source checkout: pip install \".[plot]\")"


class PlotUnavailable(ImportError):
    """matplotlib is not installed, so no picture can be drawn."""


# --- the measurement -------------------------------------------------------------------------
def gradient_through_time(model: CharRNN, ids_chunks: Any, warmup: int = 0) -> np.ndarray:
    """Mean norm of d loss_T / d h_{T-1-d} for d = 0 .. T-1 (see the module doc), float64 (T,).

    ids_chunks: int ids (N, W + T + 1) or (N, W + T + 1, B): N chunks of consecutive
    characters (B streams side by side). The first W = `warmup` ids of a chunk are read
    without gradient to make the starting state (zeros when W = 0); then inputs are the
    next T ids and targets the same shifted by one. Works for every cell and stack of a
    CharRNN, fused or not: the state is carried from one step's call to the next, so
    every h_t is its own tensor on the tape.
    """
    chunks = np.asarray(ids_chunks)
    if chunks.ndim == 2:
        chunks = chunks[:, :, None]
    if warmup < 0 or chunks.ndim != 3 or chunks.shape[0] < 1 or chunks.shape[1] < warmup + 2:
        raise ValueError(
            f"gradient_through_time: ids_chunks must be (N, W + T + 1) or (N, W + T + 1, B) with "
            f"N >= 1, T >= 1 and W = warmup = {warmup} >= 0, got shape {np.shape(ids_chunks)}"
        )
    total = np.zeros(chunks.shape[1] - warmup - 1)
    for chunk in chunks:
        with no_grad():
            state = model.hidden_states(chunk[:warmup])[1] if warmup else None
        total += _chunk_norms(model, chunk[warmup:-1], chunk[warmup + 1 :], state)
    return total[::-1] / len(chunks)  # index t -> distance T-1-t


def _chunk_norms(model: CharRNN, inputs: np.ndarray, targets: np.ndarray, state: Any) -> np.ndarray:
    """(T,): for each t, the mean over the B columns of |d loss_T / d h_t|, inputs and targets (T, B)."""
    hs = []
    with Tape() as tape:
        for t in range(len(inputs)):  # one step a call: each h_t stays its own tensor
            state = model.hidden_states(inputs[t : t + 1], state)[1]
            hs.append(state[0] if isinstance(state, tuple) else state)
        top = hs[-1] if hs[-1].ndim == 2 else hs[-1][-1]  # h_{T-1} (B, H), of the top layer
        logits = model.head(top)  # from the state itself, so that it is the source on the path
        loss = softmax_cross_entropy(logits, targets[-1], reduction="sum")  # columns apart
    grads = tape.gradient(loss, hs)
    return np.array([_column_norms(g).mean() for g in grads])


def _column_norms(g: np.ndarray) -> np.ndarray:
    """(B,): the norm of each batch column of a state's gradient (B, H) or (layers, B, H).

    A column's loss depends on its own row only, so a row is that column's gradient."""
    columns = np.moveaxis(g.astype(np.float64), -2, 0).reshape(g.shape[-2], -1)
    return np.linalg.norm(columns, axis=1)


def text_chunks(ids: np.ndarray, length: int, n: int) -> np.ndarray:
    """(n, length): n chunks of `length` consecutive ids, their starts spread evenly over ids."""
    last = len(ids) - length
    if last < 0:
        raise DataError(f"text too short: {len(ids)} characters; chunks of {length} need at least {length}")
    starts = np.linspace(0, last, n).round().astype(int)
    return np.stack([ids[s : s + length] for s in starts])


# --- the experiment --------------------------------------------------------------------------
@dataclass
class GradflowTable:
    """The experiment's result: norms[(cell, phase)][d] is `gradient_through_time` at distance d.

    phase is "init" or "trained" (after `train_steps` steps); losses[cell] is the training
    loss per character (nats) over the last steps of training.
    """

    hidden: int
    seq_len: int
    chunks: int
    train_steps: int
    warmup: int = 0
    norms: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    losses: dict[str, float] = field(default_factory=dict)

    @property
    def cells(self) -> list[str]:
        return list(dict.fromkeys(cell for cell, _ in self.norms))

    @property
    def phases(self) -> list[str]:
        return [p for p in PHASES if any(k[1] == p for k in self.norms)]


def _train(trainer: Trainer, steps: int) -> float:
    """`steps` of `trainer`; the mean loss per character of the last 100 (nan for none)."""
    losses = [trainer.step() / trainer.config.seq_len for _ in range(steps)]
    return float(np.mean(losses[-100:])) if losses else float("nan")


def gradflow_experiment(
    text: Optional[str] = None,
    cells: Sequence[str] = tuple(CELLS),
    hidden: int = 64,
    seq_len: int = 25,
    chunks: int = 20,
    train_steps: int = 300,
    warmup: int = 25,
    seed: int = 0,
    dtype: Any = np.float64,
    log: Optional[Callable[[str], None]] = None,
) -> GradflowTable:
    """Each cell on the same text (default: the built-in verse x100), hidden size and seed:
    `gradient_through_time` over `chunks` chunks spread over the text (each: `warmup`
    characters to make the starting state, then seq_len + 1), at initialisation and
    (train_steps > 0) after training as the notebook (`Trainer`: batch 1, the state carried,
    Adagrad lr 0.1, gradient values clipped to [-5, 5], notebook init, unfused)."""
    text = default_text() if text is None else text
    ids = CharVocab.from_text(text).encode(text)
    sample = text_chunks(ids, warmup + seq_len + 1, chunks)
    table = GradflowTable(hidden, seq_len, chunks, train_steps, warmup)
    for cell in cells:
        config = TrainConfig(
            hidden=hidden, cell=cell, seq_len=seq_len, seed=seed, dtype=np.dtype(dtype).name,
            fused=False, init="notebook", lr=0.1, clip=5.0, optim="adagrad",
        )  # fmt: skip
        trainer = Trainer(config, text)
        table.norms[cell, "init"] = gradient_through_time(trainer.model, sample, warmup)
        if train_steps > 0:
            if log:
                log(f"training {cell}: {train_steps} steps")
            table.losses[cell] = _train(trainer, train_steps)
            table.norms[cell, "trained"] = gradient_through_time(trainer.model, sample, warmup)
    return table


def _column(cell: str, phase: str, table: GradflowTable) -> str:
    return f"{cell} {'init' if phase == 'init' else f'@{table.train_steps}'}"


def format_table(table: GradflowTable, distances: Sequence[int] = DISTANCES) -> str:
    """The table as text: a row per distance (those below seq_len), a column per (cell, phase)."""
    keys = [(c, p) for c in table.cells for p in table.phases if (c, p) in table.norms]
    heads = [_column(c, p, table) for c, p in keys]
    width = max(10, *map(len, heads))
    lines = [
        f"|d loss_T / d h_t| at distance T-1-t, mean over {table.chunks} chunks of "
        f"{table.seq_len} characters, hidden {table.hidden} (@N: after N training steps)",
        "distance" + "".join(h.rjust(width + 2) for h in heads),
    ]
    for d in (d for d in distances if d < table.seq_len):
        lines.append(f"{d:8d}" + "".join(f"{table.norms[k][d]:.3e}".rjust(width + 2) for k in keys))
    if table.losses:
        shown = ", ".join(f"{c} {v:.3f}" for c, v in table.losses.items())
        lines.append(f"loss per character over the last training steps (nats): {shown}")
    return "\n".join(lines)


def plot_gradflow(table: GradflowTable, path: Union[str, os.PathLike[str]]) -> Path:
    """Draw the curves (a colour per cell; dashed: at initialisation) on a log y-axis to
    `path` (the suffix chooses the format: .png, .svg, .pdf); PlotUnavailable without matplotlib."""
    try:
        from matplotlib.figure import Figure
    except ImportError as e:
        raise PlotUnavailable(f"plot_gradflow needs matplotlib: {INSTALL_HINT}") from e
    fig = Figure(figsize=(7.5, 4.5))  # no pyplot: no global figure state
    ax = fig.add_subplot()
    for i, cell in enumerate(table.cells):
        for phase in table.phases:
            y = table.norms.get((cell, phase))
            if y is not None:
                style = "--" if phase == "init" else "-"
                label = f"{cell}, {'at init' if phase == 'init' else f'after {table.train_steps} steps'}"
                ax.semilogy(np.arange(len(y)), y, style, color=f"C{i}", lw=1.8, label=label)
    ax.set_xlabel("distance into the past, T-1-t (steps)")
    ax.set_ylabel(r"$\|\partial\, \mathrm{loss}_T \,/\, \partial h_t\|$")
    ax.set_title(
        f"The last step's loss gradient through time (hidden {table.hidden}, T = {table.seq_len}, "
        f"mean of {table.chunks} chunks)",
        fontsize=10,
    )
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=120)
    return out


# --- the command line: `tinygrad-rnn gradflow` -----------------------------------------------
HELP = "how the last step's loss gradient fades into the past: rnn vs lstm vs gru"
DESCRIPTION = (
    "Measure |d loss_T / d h_t|, the gradient of the loss at the last step of a chunk with "
    "respect to each earlier hidden state, for the plain RNN, LSTM and GRU on the same text, "
    "at initialisation and after training (Adagrad lr 0.1, clip 5, as the notebook); print "
    "the table and, with --plot, draw the curves on a log scale."
)


def _cells(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names or any(n not in CELLS for n in names):
        raise argparse.ArgumentTypeError(f"cells are {', '.join(CELLS)} (comma-separated), got {text!r}")
    return list(dict.fromkeys(names))


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `tinygrad-rnn gradflow`; `run` takes the parsed namespace."""
    p.add_argument("--cells", type=_cells, default=list(CELLS), help="comma-separated (default rnn,lstm,gru)")
    p.add_argument("--hidden", type=positive_int, default=64, help="hidden size of every cell (default 64)")
    p.add_argument("--seq-len", type=positive_int, default=25, help="steps T back from the loss (default 25)")
    p.add_argument("--chunks", type=positive_int, default=20, help="chunks of the text averaged (default 20)")
    p.add_argument(
        "--train-steps",
        type=nonnegative_int,
        default=300,
        help="training steps after the first measure; 0: none (default 300)",
    )
    p.add_argument(
        "--warmup",
        type=nonnegative_int,
        default=25,
        help="characters read first to make each chunk's state (default 25)",
    )
    p.add_argument("--seed", type=nonnegative_int, default=0, help="seed of the initial weights (default 0)")
    p.add_argument("--text", metavar="PATH", help="a UTF-8 text file (default: the built-in verse x100)")
    p.add_argument(
        "--plot", metavar="PATH", type=plot_path, help="draw the curves to PATH (.png, .svg, .pdf, ...)"
    )
    p.add_argument("--dtype", choices=tuple(DTYPES), default="float64", help="float64 (default) or float32")


def run(args: argparse.Namespace, out: Optional[IO[str]] = None) -> int:
    """Run the experiment the parsed `args` describe; print the table to `out` (stdout).

    A text that cannot be read or is too short raises `DataError` (the command line's exit 2)."""
    out = out or sys.stdout
    table = gradflow_experiment(
        text=None if args.text is None else read_text(args.text),
        cells=args.cells,
        hidden=args.hidden,
        seq_len=args.seq_len,
        chunks=args.chunks,
        train_steps=args.train_steps,
        warmup=args.warmup,
        seed=args.seed,
        dtype=DTYPES[args.dtype],
        log=lambda line: print(line, file=sys.stderr, flush=True),
    )
    print(format_table(table), file=out)
    if args.plot:
        print(f"picture: {plot_gradflow(table, args.plot)}", file=out)
    return 0
