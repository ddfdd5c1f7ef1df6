"""How well a model predicts a text: nats and bits per character, perplexity; `tinygrad-rnn eval`.

    result = evaluate(model, vocab.encode(text))      # one stream from a zero state
    result.nats_per_char, result.bits_per_char, result.perplexity, result.chars

The definition (exact, the one a training run's validation loss uses): the whole text is one
stream (B = 1) read from a zero hidden state, the state carried from each character to the
next, and the figure is the mean cross-entropy over all N - 1 predicted characters (the first
character is only read). `batch=B` splits the text into B contiguous streams read side by
side, each from a zero state (the last one also reads the remainder): faster, but each
stream's first characters are predicted without the context before them, so the figure is
an approximation, a little higher than the exact one. The model runs in eval mode (no
dropout) and records nothing on a tape.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from tinygrad_rnn.argtypes import positive_int
from tinygrad_rnn.data import CharVocab, DataError, read_text
from tinygrad_rnn.layers import CharRNN
from tinygrad_rnn.tape import no_grad

CHUNK = 256  # characters per forward call; the state is carried across calls, so any value is exact
HELP = "bits per character, nats per character and perplexity of a checkpoint on a text"
DESCRIPTION = (
    "Evaluate a checkpoint on a text. Exact definition: the whole text as one stream from a "
    "zero hidden state, the state carried through, the mean cross-entropy over all N-1 "
    "predicted characters (bits = nats / ln 2, perplexity = e^nats). --batch B splits the "
    "text into B contiguous streams, each from a zero state: faster, an approximation."
)


@dataclass(frozen=True)
class Evaluation:
    """The mean cross-entropy (nats) over `chars` predicted characters; `skipped`: characters
    left out of the text because the vocabulary lacks them."""

    nats_per_char: float
    chars: int
    skipped: int = 0

    @property
    def bits_per_char(self) -> float:
        return self.nats_per_char / math.log(2)

    @property
    def perplexity(self) -> float:
        return math.exp(self.nats_per_char)

    def to_dict(self) -> dict[str, Any]:
        """The figures as `eval --json` prints them."""
        return {
            "bits_per_char": self.bits_per_char,
            "nats_per_char": self.nats_per_char,
            "perplexity": self.perplexity,
            "chars": self.chars,
            "skipped": self.skipped,
        }


def evaluate(model: CharRNN, ids: Any, batch: int = 1) -> Evaluation:
    """The model's mean cross-entropy on ids (N,) int: exact for batch=1 (see the module's doc).

    ValueError for fewer than 2 ids or a batch < 1. The model's mode is restored afterwards.
    """
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    n = len(ids) - 1
    if n < 1:
        raise ValueError(f"evaluate: the text must have at least 2 characters, got {len(ids)}")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"evaluate: batch must be an integer >= 1, got {batch!r}")
    streams = min(batch, n)
    per = n // streams  # predictions per stream; the last stream also takes the n % streams left
    starts = np.arange(streams) * per
    steps = np.arange(per)[:, None] + starts[None, :]  # (per, B): stream b reads ids[b*per:]
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            total, state = _summed_loss(model, ids[steps], ids[steps + 1], None)
            if streams * per < n:  # the remainder, read on by the last stream
                tail = ids[streams * per :]
                last = model.state_from_array(model.state_array(state)[..., -1:, :], 1)
                more, _ = _summed_loss(model, tail[:-1, None], tail[1:, None], last)
                total += more
    finally:
        model.train(was_training)
    return Evaluation(total / n, n)


def _summed_loss(model: CharRNN, inputs: np.ndarray, targets: np.ndarray, state: Any) -> tuple[float, Any]:
    """The cross-entropy summed over every (T, B) prediction, in chunks with the state carried."""
    total, batch = 0.0, inputs.shape[1]
    for s in range(0, len(inputs), CHUNK):
        loss, state = model.loss(inputs[s : s + CHUNK], targets[s : s + CHUNK], state)
        total += float(loss.item()) * batch  # the loss is averaged over the batch
    return total, state


def encode_known(vocab: CharVocab, text: str, skip_unknown: bool) -> tuple[np.ndarray, int]:
    """(ids of the text, characters skipped): DataError naming the characters outside the
    vocabulary and their count, unless `skip_unknown` leaves them out."""
    unknown = vocab.unknown(text)
    if not unknown:
        return vocab.encode(text), 0
    kept = "".join(c for c in text if c in vocab.index)
    count = len(text) - len(kept)
    if not skip_unknown:
        shown = ", ".join(repr(c) for c in unknown[:5]) + (", ..." if len(unknown) > 5 else "")
        raise DataError(
            f"{count} characters of the text ({len(unknown)} distinct: {shown}) are not in the "
            "model's vocabulary; --skip-unknown leaves them out"
        )
    return vocab.encode(kept), count


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `tinygrad-rnn eval`; `run` takes the parsed namespace."""
    p.add_argument("--model", metavar="PATH", required=True, help="a checkpoint written by train")
    p.add_argument("--text", metavar="PATH", required=True, help="a UTF-8 text file to evaluate on")
    p.add_argument(
        "--batch",
        type=positive_int,
        default=1,
        help="read the text as B contiguous streams: faster, an approximation (default 1: exact)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object (bits_per_char, ...)")
    p.add_argument(
        "--skip-unknown", action="store_true", help="leave out characters the vocabulary lacks (counted)"
    )


def run(args: argparse.Namespace, out: Optional[Any] = None) -> int:
    """Evaluate `args.model` on `args.text` and print the figures (a line, or JSON)."""
    from tinygrad_rnn.train import load_model  # the app layer; imported here to keep this module light

    out = out or sys.stdout
    for flag, path in (("--model", args.model), ("--text", args.text)):
        if not path:
            raise DataError(f"{flag} must not be empty (an unset shell variable?)")
    if args.batch < 1:
        raise DataError(f"--batch must be an integer >= 1, got {args.batch}")
    model, ck = load_model(args.model)
    ids, skipped = encode_known(ck.vocab, read_text(args.text), args.skip_unknown)
    if len(ids) < 2:
        raise DataError(f"the text {args.text} has fewer than 2 characters to evaluate on")
    r = evaluate(model, ids, batch=args.batch)
    r = Evaluation(r.nats_per_char, r.chars, skipped)
    if args.json:
        print(json.dumps(r.to_dict()), file=out)
    else:
        extra = f", {skipped} unknown characters skipped" if skipped else ""
        approx = f" (batch {args.batch}: an approximation)" if args.batch > 1 else ""
        print(
            f"{r.bits_per_char:.4f} bits/char, {r.nats_per_char:.4f} nats/char, perplexity "
            f"{r.perplexity:.4f}, {r.chars} characters predicted{extra}{approx}",
            file=out,
        )
    return 0
