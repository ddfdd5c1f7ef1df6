"""The training program: a `TrainConfig` (the notebook's run by default) and a `Trainer` that runs it.

    config = TrainConfig()                    # the verse x100, hidden 64, T 25, Adagrad 0.1, clip 5
    trainer = Trainer(config, training_text(config.text), out="hope.npz")
    for _ in range(10000):
        loss = trainer.step()                 # the next chunk: forward, backward, clip, update
    print(trainer.sample("H", 200))
    trainer.save()                            # everything needed to continue bit for bit

`tinygrad-rnn train` (cli.py) is this loop plus printing, a CSV log and a plot. A checkpoint's
config is `Trainer.meta()`: the settings (`TrainConfig.to_meta`) and facts about the text.
`TrainConfig.from_checkpoint` reads the settings back, checking the type of every value, and
`Trainer.restore` continues a run from a checkpoint.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
from dataclasses import dataclass, replace
from typing import Any, Optional

import numpy as np

from tinygrad_rnn import checkpoint as ckpt_io
from tinygrad_rnn.checkpoint import Checkpoint, CheckpointError
from tinygrad_rnn.data import CharBatches, CharVocab, DataError, default_text, read_text
from tinygrad_rnn.layers import CELLS, CharRNN
from tinygrad_rnn.optim import SGD, Adagrad, Adam, Optimizer, RMSprop, clip_grad_value_
from tinygrad_rnn.validate import param_count, physical_memory, show_bytes, step_bytes

DEFAULT_OUT = "tinygrad_rnn.npz"
OPTIMIZERS: dict[str, Any] = {"adagrad": Adagrad, "sgd": SGD, "adam": Adam, "rmsprop": RMSprop}
# learning rates that train the verse well (see examples/swap_optimizers.py); adagrad's is the seed's
LR_DEFAULTS = {"adagrad": 0.1, "sgd": 0.01, "adam": 0.003, "rmsprop": 0.002}
DTYPES = {"float64": np.float64, "float32": np.float32}
SMOOTHING = 0.999  # smoothed loss = 0.999 * smoothed + 0.001 * loss, as in min-char-rnn

_MISSING = object()
# TrainConfig field -> (its key in a checkpoint's config, the JSON type its value must have)
META_KEYS: dict[str, tuple[str, str]] = {
    "text": ("text", "path"),
    "hidden": ("hidden_size", "int"),
    "cell": ("cell", "str"),
    "layers": ("num_layers", "int"),
    "seq_len": ("seq_len", "int"),
    "batch": ("batch_size", "int"),
    "optim": ("optim", "str"),
    "lr": ("lr", "float"),
    "clip": ("clip", "float"),
    "seed": ("seed", "int"),
    "dtype": ("dtype", "str"),
    "fused": ("fused", "bool"),
}
# written before LSTM/GRU, stacks and `fused` were recorded: the seed's rnn, fused when possible
LEGACY_DEFAULTS = {"text": None, "cell": "rnn", "layers": 1, "fused": None}
_TYPES = {
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "bool": "true or false",
    "path": "a string or null",
}


class ConfigError(ValueError):
    """A training setting out of range, or an option that contradicts the resumed checkpoint."""


class TrainingDiverged(Exception):
    """The loss, or a parameter, became NaN or infinite."""


def meta_value(
    table: dict[str, Any],
    key: str,
    kind: str,
    where: str,
    default: Any = _MISSING,
    minimum: Optional[float] = None,
) -> Any:
    """table[key] checked to be of `kind` (int, float, str, bool, path); CheckpointError if not.

    Every value read from a checkpoint's meta goes through here. A missing key gives
    `default`, or a CheckpointError when there is none. `where` starts the message. With
    `minimum`, a number must also be finite and at least that.
    """
    if key not in table:
        if default is _MISSING:
            raise CheckpointError(f"{where}: the config has no {key!r}")
        return default
    value = table[key]
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = {
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": number,
        "str": isinstance(value, str),
        "bool": isinstance(value, bool),
        "path": value is None or isinstance(value, str),
    }[kind]
    if not ok:
        raise CheckpointError(f"{where}: {key!r} must be {_TYPES[kind]}, got {value!r}")
    if minimum is not None and not (math.isfinite(value) and value >= minimum):
        raise CheckpointError(f"{where}: {key!r} must be a finite number >= {minimum}, got {value!r}")
    return float(value) if kind == "float" else value


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run; the defaults are the seed notebook's run.

    text: a UTF-8 file, None for the built-in verse x100; hidden: H; cell: rnn | lstm | gru;
    layers: recurrent layers stacked; seq_len: T, characters per chunk; batch: B, parallel
    streams; optim: adagrad | sgd | adam | rmsprop, with learning rate lr (the notebook's
    0.1 for Adagrad; `LR_DEFAULTS` has one per optimizer); clip: gradient values clipped to
    [-clip, clip], 0 for none; seed: of the run's random generator; dtype: float64 |
    float32; fused: the fused op for the rnn cell (the other cells have none: always False).
    """

    text: Optional[str] = None
    hidden: int = 64
    cell: str = "rnn"
    layers: int = 1
    seq_len: int = 25
    batch: int = 1
    optim: str = "adagrad"
    lr: float = 0.1
    clip: float = 5.0
    seed: int = 0
    dtype: str = "float64"
    fused: bool = True

    def __post_init__(self) -> None:
        """ConfigError naming the first setting that is out of range."""
        for name in ("hidden", "layers", "seq_len", "batch"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ConfigError(f"seed must be an integer >= 0, got {self.seed!r}")
        for name, allowed in (("cell", CELLS), ("optim", OPTIMIZERS), ("dtype", DTYPES)):
            if getattr(self, name) not in allowed:
                choices = ", ".join(map(repr, allowed))
                raise ConfigError(f"unknown {name} {getattr(self, name)!r} (one of {choices})")
        if not math.isfinite(self.lr) or self.lr <= 0:
            raise ConfigError(f"lr must be a positive number, got {self.lr!r}")
        if not math.isfinite(self.clip) or self.clip < 0:
            raise ConfigError(f"clip must be a number >= 0, got {self.clip!r}")
        if self.cell != "rnn":  # only the rnn cell has a fused op
            object.__setattr__(self, "fused", False)

    @classmethod
    def from_args(cls, args: argparse.Namespace, resumed: Optional[TrainConfig] = None) -> TrainConfig:
        """The run that `tinygrad-rnn train`'s parsed options describe.

        An option left out (None) is the default (lr: the optimizer's in `LR_DEFAULTS`;
        fused: for the rnn cell), or with `resumed` (the checkpoint's config) the checkpoint's
        value. With `resumed`, an option that differs from it is a ConfigError; only the text
        and the fused flag may change (fused and unfused agree to rounding, see gradcheck).
        """
        base = resumed or cls()
        values: dict[str, Any] = {}
        for name in META_KEYS:
            given = getattr(args, name, None)
            if given is None:
                continue
            if resumed is not None and name not in ("text", "fused") and given != getattr(resumed, name):
                flag = "--" + name.replace("_", "-")
                raise ConfigError(
                    f"{flag} {given} differs from the checkpoint's {getattr(resumed, name)}; "
                    "with --resume it comes from the checkpoint (leave it out)"
                )
            values[name] = given
        if resumed is None and "lr" not in values:
            values["lr"] = LR_DEFAULTS[values.get("optim", base.optim)]
        cell = values.get("cell", base.cell)
        if values.get("fused") and cell != "rnn":
            raise ConfigError(f"--fused is only for --cell rnn; a {cell} runs unfused")
        return replace(base, **values)

    @classmethod
    def from_checkpoint(cls, ck: Checkpoint, path: str) -> TrainConfig:
        """The run a checkpoint was written by; CheckpointError naming any bad or missing value.

        Every setting must be present with the right JSON type, except those older
        checkpoints lack (`LEGACY_DEFAULTS`: the seed's rnn, one layer, fused if possible).
        """
        where = f"invalid checkpoint {path}"
        values: dict[str, Any] = {}
        for name, (key, kind) in META_KEYS.items():
            default = LEGACY_DEFAULTS.get(name, _MISSING)
            values[name] = meta_value(ck.config, key, kind, where, default)
        if values["fused"] is None:
            values["fused"] = values["cell"] == "rnn"
        try:
            config = cls(**values)
        except ConfigError as e:
            raise CheckpointError(f"{where}: {e}") from None
        # before any model is built: a crafted hidden_size must not allocate gigabytes
        want = param_count(len(ck.vocab), config.hidden, config.cell, config.layers)
        held = sum(a.size for a in ck.params.values())
        if held != want:
            raise CheckpointError(
                f"{where}: the config describes a {config.cell} x{config.layers} of hidden size "
                f"{config.hidden} ({want} parameters), the arrays hold {held} numbers"
            )
        return config

    def to_meta(self) -> dict[str, Any]:
        """The settings as a checkpoint's config stores them (the keys of `META_KEYS`)."""
        values = {name: getattr(self, name) for name in META_KEYS}
        values["text"] = None if self.text is None else os.path.abspath(self.text)
        return {key: values[name] for name, (key, _) in META_KEYS.items()}

    def make_model(self, vocab_size: int, rng: Any, fused: Optional[bool] = None) -> CharRNN:
        """The CharRNN these settings describe (fused: override the config's choice)."""
        return CharRNN(
            vocab_size,
            self.hidden,
            fused=self.fused if fused is None else fused,
            cell=self.cell,
            num_layers=self.layers,
            dtype=DTYPES[self.dtype],
            rng=rng,
        )

    def make_optimizer(self, params: list[Any]) -> Optimizer:
        """The optimizer of these settings over `params`, at learning rate lr."""
        optimizer: Optimizer = OPTIMIZERS[self.optim](params, lr=self.lr)
        return optimizer


def training_text(path: Optional[str]) -> str:
    """The text of a file (UTF-8), or the built-in verse x100 for None; DataError if empty."""
    text = default_text() if path is None else read_text(path)
    if not text:
        raise DataError(f"the text file is empty: {path}")
    return text


def text_digest(text: str) -> str:
    """The SHA-256 of the text's UTF-8 bytes (a checkpoint's `text_sha256`)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def check_optimizer_state(state: dict[str, Any], lr: float, where: str) -> None:
    """CheckpointError unless every learning rate in an optimizer's state_dict is `lr` (the
    config's) and every step counter an integer >= 0. The learning rates: one per parameter
    group (tinygrad_rnn 0.1's state dicts keep one, in "hyper"); the rest `load_state_dict` checks.
    """
    groups, hyper, states = state.get("param_groups"), state.get("hyper"), state.get("state")
    if isinstance(groups, list):
        lrs = [g.get("lr") if isinstance(g, dict) else None for g in groups]
    else:
        lrs = [hyper.get("lr") if isinstance(hyper, dict) else None]
    for saved in lrs:
        if saved != lr:
            raise CheckpointError(f"{where}: the optimizer's lr {saved!r} differs from the config's {lr}")
    for key, entry in states.items() if isinstance(states, dict) else ():
        step = entry.get("step", 0) if isinstance(entry, dict) else 0
        if not isinstance(step, (int, np.integer)) or isinstance(step, bool) or step < 0:
            raise CheckpointError(
                f"{where}: optimizer state[{key!r}]['step'] must be an integer >= 0, got {step!r}"
            )


def check_memory(config: TrainConfig, vocab_size: int) -> None:
    """ConfigError if one training step of `config` would need more than the machine's memory
    (`validate.step_bytes` against `validate.physical_memory`), before anything is allocated."""
    c = config
    itemsize = np.dtype(DTYPES[c.dtype]).itemsize
    need = step_bytes(vocab_size, c.hidden, c.cell, c.layers, c.batch, c.seq_len, itemsize)
    have = physical_memory()
    if need > have:
        raise ConfigError(
            f"hidden {c.hidden}, layers {c.layers}, batch {c.batch}, seq-len {c.seq_len} need about "
            f"{show_bytes(need)} for one training step (parameters, gradients, optimizer state, "
            f"activations); this machine has {show_bytes(have)}"
        )


def load_params(model: CharRNN, ck: Checkpoint, path: str) -> None:
    """Load the checkpoint's parameters into `model`; CheckpointError if names or shapes differ."""
    try:
        ckpt_io.check_params(model.state_dict(), ck.params)
    except CheckpointError as e:
        raise CheckpointError(f"invalid checkpoint {path}: {e}") from None
    model.load_state_dict(ck.params)


class Trainer:
    """One training run: the model, optimizer, data position, hidden state and random generator.

    `step()` trains on the next chunk of `text`; `checkpoint()` / `save()` capture everything
    needed to continue bit for bit and `restore()` continues from such a checkpoint. `vocab`:
    the vocabulary to use (a resumed checkpoint's); None builds it from the text. `out`: where
    `save()` writes. `seconds` (time trained so far) is kept by the caller's loop.
    """

    def __init__(
        self, config: TrainConfig, text: str, out: str = DEFAULT_OUT, vocab: Optional[CharVocab] = None
    ) -> None:
        self.config, self.out = config, out
        unknown = [] if vocab is None else vocab.unknown(text)
        if unknown:
            shown = ", ".join(repr(c) for c in unknown)
            raise DataError(f"the text has characters that are not in the checkpoint's vocabulary: {shown}")
        self.vocab = CharVocab.from_text(text) if vocab is None else vocab
        self.text_sha256, self.text_length, self.prime = text_digest(text), len(text), text[0]
        self.batches = CharBatches(self.vocab.encode(text), config.seq_len, config.batch)
        check_memory(config, len(self.vocab))
        self.rng = np.random.default_rng(config.seed)  # the weights, then every sample
        self.model = config.make_model(len(self.vocab), self.rng)
        self.params = self.model.parameters()
        self.opt = config.make_optimizer(self.params)
        self.steps_done = 0
        self.hidden: Any = None  # the state carried between chunks (see CharRNN); None: zeros
        self.smooth = -math.log(1.0 / len(self.vocab)) * config.seq_len
        self.seconds = 0.0
        self.first_input = 0  # id of the last chunk's first input (primes the progress samples)

    def step(self) -> float:
        """One step: next chunk, forward, backward, clip, update, carry the hidden state.

        Returns the chunk's loss (cross-entropy summed over time, averaged over the batch).
        A NaN or infinite loss raises TrainingDiverged before anything is updated.
        """
        chunk = self.batches.next()
        self.first_input = int(chunk.inputs[0, 0])
        if chunk.reset:  # the data pointer went back to the start: so does the state
            self.hidden = None
        loss, h = self.model.loss(chunk.inputs, chunk.targets, self.hidden)
        value = float(loss.item())
        if not math.isfinite(value):
            raise TrainingDiverged(
                f"the loss became {value} at step {self.steps_done}; training stopped "
                f"(the last good checkpoint is {self.out}; try a smaller --lr)"
            )
        self.opt.zero_grad()
        loss.backward()
        if self.config.clip > 0:
            clip_grad_value_(self.params, self.config.clip)
        self.opt.step()
        self.hidden = h
        self.smooth = SMOOTHING * self.smooth + (1 - SMOOTHING) * value
        self.steps_done += 1
        return value

    def sample(self, prime: str, n: int) -> str:
        """`prime` and n characters sampled after it (from a zero state, with the run's generator)."""
        ids = self.model.sample(self.vocab.encode(prime), n, rng=self.rng)
        return prime + self.vocab.decode(ids)

    def meta(self) -> dict[str, Any]:
        """A checkpoint's config: facts about the text, then the settings."""
        facts = {"text_sha256": self.text_sha256, "text_length": self.text_length, "prime": self.prime}
        return {**facts, "vocab_size": len(self.vocab), **self.config.to_meta()}

    def checkpoint(self) -> Checkpoint:
        """Everything needed to continue this run exactly where it is."""
        return Checkpoint(
            params=self.model.state_dict(),
            vocab=self.vocab,
            config=self.meta(),
            step=self.steps_done,
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
                    f"parameter {name} became NaN or infinite at step {self.steps_done - 1}; training "
                    f"stopped (the last good checkpoint is {self.out}; try a smaller --lr)"
                )

    def save(self) -> None:
        """Write `checkpoint()` to `out` (atomically), after checking the parameters are finite."""
        self.check_finite()
        ckpt_io.save(self.out, self.checkpoint())

    def restore(self, ck: Checkpoint, path: str) -> bool:
        """Continue from `ck`: parameters, optimizer, generator, counters and, on the same text,
        the data position and hidden state. Returns whether the text was the same (else the
        data is read from its start). CheckpointError names anything that does not fit.
        """
        where = f"invalid checkpoint {path}"
        load_params(self.model, ck, path)
        if ck.optimizer is None or ck.rng is None:
            raise CheckpointError(f"{where}: no optimizer or generator state to resume from")
        check_optimizer_state(ck.optimizer, self.config.lr, where)
        try:
            self.opt.load_state_dict(ck.optimizer)
        except (ValueError, KeyError, TypeError, OverflowError) as e:
            raise CheckpointError(f"{where}: optimizer state: {e}") from None
        try:
            self.rng.bit_generator.state = ck.rng
        except (ValueError, KeyError, TypeError, OverflowError) as e:
            raise CheckpointError(f"{where}: generator state: {e}") from None
        self.steps_done = ck.step
        self.smooth = meta_value(ck.extra, "smooth_loss", "float", where, self.smooth, minimum=0.0)
        self.seconds = meta_value(ck.extra, "seconds", "float", where, 0.0, minimum=0.0)
        if ck.config.get("text_sha256") != self.text_sha256:
            return False
        try:
            self.batches.position = ck.position
        except DataError as e:
            raise CheckpointError(f"{where}: {e}") from None
        if ck.hidden is not None:
            try:
                self.hidden = self.model.state_from_array(ck.hidden, self.config.batch)
            except ValueError as e:
                raise CheckpointError(f"{where}: hidden state: {e}") from None
        return True
