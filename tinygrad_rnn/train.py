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
from tinygrad_rnn.evaluate import Evaluation, evaluate
from tinygrad_rnn.layers import CELLS, CharRNN
from tinygrad_rnn.optim import SGD, Adagrad, Adam, Optimizer, RMSprop, clip_grad_value_, lr_scheduler

DEFAULT_OUT = "tinygrad_rnn.npz"
OPTIMIZERS: dict[str, Any] = {"adagrad": Adagrad, "sgd": SGD, "adam": Adam, "rmsprop": RMSprop}
# learning rates that train the verse well (see examples/swap_optimizers.py); adagrad's is the seed's
LR_DEFAULTS = {"adagrad": 0.1, "sgd": 0.01, "adam": 0.003, "rmsprop": 0.002}
DTYPES = {"float64": np.float64, "float32": np.float32}
DEFAULT_VAL_FRAC = 0.1  # held out of a user's text by default
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
    "val_frac": ("val_frac", "float"),
    "dropout": ("dropout", "float"),
    "init": ("init", "str"),
    "schedule": ("schedule", "str"),
    "lr_decay": ("lr_decay", "float"),
    "lr_decay_every": ("lr_decay_every", "int"),
}
# written before these were recorded: the seed's rnn (fused then meant the rnn cell: the others
# had no fused op, so such a checkpoint resumes unfused), the notebook's init, no held-out text,
# no dropout, a constant learning rate
LEGACY_DEFAULTS = {
    "text": None,
    "cell": "rnn",
    "layers": 1,
    "fused": None,
    "val_frac": 0.0,
    "dropout": 0.0,
    "init": "notebook",
    "schedule": "none",
    "lr_decay": 1.0,
    "lr_decay_every": 1,
}
# what --resume may change: the text, fused, and to fine-tune the learning rate and its schedule
TUNING = ("lr", "schedule", "lr_decay", "lr_decay_every")
RESUME_MAY_CHANGE = ("text", "fused", *TUNING)
INITS = ("notebook", "pytorch")
SCHEDULES = ("none", "step", "exp", "cosine")
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


def meta_value(table: dict[str, Any], key: str, kind: str, where: str, default: Any = _MISSING) -> Any:
    """table[key] checked to be of `kind` (int, float, str, bool, path); CheckpointError if not.

    Every value read from a checkpoint's meta goes through here. A missing key gives
    `default`, or a CheckpointError when there is none. `where` starts the message.
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
    return float(value) if kind == "float" else value


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run; the defaults are the seed notebook's run.

    text: a UTF-8 file, None for the built-in verse x100; hidden: H; cell: rnn | lstm | gru;
    layers: recurrent layers stacked; seq_len: T, characters per chunk; batch: B, parallel
    streams; optim: adagrad | sgd | adam | rmsprop, with learning rate lr (the notebook's
    0.1 for Adagrad; `LR_DEFAULTS` has one per optimizer); clip: gradient values clipped to
    [-clip, clip], 0 for none; seed: of the run's random generator; dtype: float64 |
    float32; fused: each layer's recurrence as one fused op (every cell; False: unrolled).
    val_frac: the last fraction of the text held out for validation, in [0, 1); dropout: the
    probability in [0, 1) of zeroing a hidden unit between stacked layers and before the output
    layer while training; init: notebook (N(0, 0.01)) | pytorch (U(-1/sqrt(H), 1/sqrt(H)) for
    the recurrent layers), None: notebook for rnn, pytorch for lstm and gru; schedule: none |
    step (lr times lr_decay every lr_decay_every steps) | exp (times lr_decay every step) |
    cosine (half a cosine from lr to 0 over lr_decay_every steps), torch's schedulers.
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
    val_frac: float = 0.0
    dropout: float = 0.0
    init: Optional[str] = None
    schedule: str = "none"
    lr_decay: float = 1.0
    lr_decay_every: int = 1

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
        self._check_practice()

    def _check_practice(self) -> None:
        """ConfigError for a bad split, dropout, init or schedule; resolves init=None per cell."""
        for name in ("val_frac", "dropout"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise ConfigError(f"{name} must be a number in [0, 1), got {value!r}")
        if self.init is None:
            object.__setattr__(self, "init", "notebook" if self.cell == "rnn" else "pytorch")
        for name, allowed in (("init", INITS), ("schedule", SCHEDULES)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"unknown {name} {getattr(self, name)!r} (one of {', '.join(allowed)})")
        if not math.isfinite(self.lr_decay) or not 0 < self.lr_decay <= 1:
            raise ConfigError(f"lr_decay must be a number in (0, 1], got {self.lr_decay!r}")
        every = self.lr_decay_every
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise ConfigError(f"lr_decay_every must be an integer >= 1, got {every!r}")

    @classmethod
    def from_args(cls, args: argparse.Namespace, resumed: Optional[TrainConfig] = None) -> TrainConfig:
        """The run that `tinygrad-rnn train`'s parsed options describe.

        An option left out (None) is the default (lr: the optimizer's in `LR_DEFAULTS`;
        val_frac: 0.1 with a text, 0 for the verse; schedule: step
        when lr_decay is given), or with `resumed` (the checkpoint's config) the checkpoint's
        value. With `resumed`, an option that differs from it is a ConfigError except those
        of `RESUME_MAY_CHANGE`: the text, the fused flag (fused and unfused agree to rounding,
        see gradcheck), the learning rate and its schedule (to fine-tune).
        """
        base = resumed or cls()
        values: dict[str, Any] = {}
        for name in META_KEYS:
            given = getattr(args, name, None)
            if given is None:
                continue
            if resumed is not None and name not in RESUME_MAY_CHANGE and given != getattr(resumed, name):
                flag = "--" + name.replace("_", "-")
                raise ConfigError(
                    f"{flag} {given} differs from the checkpoint's {getattr(resumed, name)}; "
                    "with --resume it comes from the checkpoint (leave it out)"
                )
            values[name] = given
        if resumed is None and "lr" not in values:
            values["lr"] = LR_DEFAULTS[values.get("optim", base.optim)]
        if resumed is None:
            values.setdefault("init", None)  # per cell: the base's was resolved for rnn
        if resumed is None and "val_frac" not in values:  # the verse repeats: no split by default
            values["val_frac"] = 0.0 if values.get("text") is None else DEFAULT_VAL_FRAC
        if "schedule" not in values and getattr(args, "lr_decay", None) is not None:
            values["schedule"] = "step"
        return replace(base, **values)

    @classmethod
    def from_checkpoint(cls, ck: Checkpoint, path: str) -> TrainConfig:
        """The run a checkpoint was written by; CheckpointError naming any bad or missing value.

        Every setting must be present with the right JSON type, except those older
        checkpoints lack (`LEGACY_DEFAULTS`: the seed's rnn, one layer, fused for the rnn).
        """
        where = f"invalid checkpoint {path}"
        values: dict[str, Any] = {}
        for name, (key, kind) in META_KEYS.items():
            default = LEGACY_DEFAULTS.get(name, _MISSING)
            values[name] = meta_value(ck.config, key, kind, where, default)
        if values["fused"] is None:
            values["fused"] = values["cell"] == "rnn"
        try:
            return cls(**values)
        except ConfigError as e:
            raise CheckpointError(f"{where}: {e}") from None

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
            dropout=self.dropout,
            init=self.init or "notebook",
            dtype=DTYPES[self.dtype],
            rng=rng,
        )

    def make_optimizer(self, params: list[Any]) -> Optimizer:
        """The optimizer of these settings over `params`, at learning rate lr."""
        optimizer: Optimizer = OPTIMIZERS[self.optim](params, lr=self.lr)
        return optimizer

    def make_scheduler(self, optimizer: Optimizer) -> Optional[lr_scheduler.LRScheduler]:
        """The schedule of these settings on `optimizer` (stepped once a training step), or None."""
        if self.schedule == "step":
            return lr_scheduler.StepLR(optimizer, self.lr_decay_every, self.lr_decay)
        if self.schedule == "exp":
            return lr_scheduler.ExponentialLR(optimizer, self.lr_decay)
        if self.schedule == "cosine":
            return lr_scheduler.CosineAnnealingLR(optimizer, self.lr_decay_every)
        return None

    def changes(self, saved: TrainConfig) -> list[str]:
        """What this config changes of `saved`'s learning rate and schedule (a resumed run's note)."""
        return [
            f"--{name.replace('_', '-')} {getattr(saved, name)} -> {getattr(self, name)}"
            for name in TUNING
            if getattr(self, name) != getattr(saved, name)
        ]


def training_text(path: Optional[str]) -> str:
    """The text of a file (UTF-8), or the built-in verse x100 for None; DataError if empty."""
    text = default_text() if path is None else read_text(path)
    if not text:
        raise DataError(f"the text file is empty: {path}")
    return text


def text_digest(text: str) -> str:
    """The SHA-256 of the text's UTF-8 bytes (a checkpoint's `text_sha256`)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


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
        train_part, held_out = split_text(text, config.val_frac)
        if held_out and len(held_out) < config.seq_len + 1:
            raise ConfigError(
                f"the held-out part (--val-frac {config.val_frac}) has {len(held_out)} characters, "
                f"fewer than seq-len + 1 = {config.seq_len + 1}; raise --val-frac or give a longer text"
            )
        self.batches = CharBatches(self.vocab.encode(train_part), config.seq_len, config.batch)
        self.val_ids = self.vocab.encode(held_out) if held_out else None
        self.rng = np.random.default_rng(config.seed)  # the weights, then dropout and every sample
        self.model = config.make_model(len(self.vocab), self.rng)
        self.params = self.model.parameters()
        self.opt = config.make_optimizer(self.params)
        self.scheduler = config.make_scheduler(self.opt)
        self.best_val = math.inf  # the lowest validation loss so far (nats/char)
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
            raise TrainingDiverged(f"the loss became {value} at step {self.steps_done}; training stopped")
        self.opt.zero_grad()
        loss.backward()
        if self.config.clip > 0:
            clip_grad_value_(self.params, self.config.clip)
        self.opt.step()
        if self.scheduler is not None:
            self.scheduler.step()
        self.hidden = h
        self.smooth = SMOOTHING * self.smooth + (1 - SMOOTHING) * value
        self.steps_done += 1
        return value

    def sample(self, prime: str, n: int) -> str:
        """`prime` and n characters sampled after it (from a zero state, with the run's generator)."""
        ids = self.model.sample(self.vocab.encode(prime), n, rng=self.rng)  # in eval mode: no dropout
        return prime + self.vocab.decode(ids)

    def validate(self) -> Optional[Evaluation]:
        """The loss on the held-out text (`evaluate`'s exact definition), None without one.

        A new best is saved next to `out` as `best_path(out)`.
        """
        if self.val_ids is None:
            return None
        result = evaluate(self.model, self.val_ids)
        if result.nats_per_char < self.best_val:
            self.best_val = result.nats_per_char
            self.save(best_path(self.out))
        return result

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
            extra=self._extra(),
        )

    def _extra(self) -> dict[str, Any]:
        extra: dict[str, Any] = {"smooth_loss": self.smooth, "seconds": self.seconds}
        if self.scheduler is not None:
            extra["scheduler"] = self.scheduler.state_dict()
        if math.isfinite(self.best_val):
            extra["best_val_loss"] = self.best_val
        return extra

    def check_finite(self) -> None:
        """TrainingDiverged if an update left a parameter NaN or infinite (before sampling/saving)."""
        for name, p in self.model.named_parameters():
            if not np.isfinite(p.data).all():
                raise TrainingDiverged(
                    f"parameter {name} became NaN or infinite at step {self.steps_done - 1}; training stopped"
                )

    def save(self, path: Optional[str] = None) -> None:
        """Write `checkpoint()` to `path` or `out` (atomically), after checking the parameters are finite."""
        self.check_finite()
        ckpt_io.save(path or self.out, self.checkpoint())

    def restore(self, ck: Checkpoint, path: str) -> bool:
        """Continue from `ck`: parameters, optimizer, generator, counters and, on the same text,
        the data position and hidden state. Returns whether the text was the same (else the
        data is read from its start). CheckpointError names anything that does not fit.
        """
        where = f"invalid checkpoint {path}"
        load_params(self.model, ck, path)
        if ck.optimizer is None or ck.rng is None:
            raise CheckpointError(f"{where}: no optimizer or generator state to resume from")
        try:
            self.opt.load_state_dict(ck.optimizer)
        except (ValueError, KeyError, TypeError) as e:
            raise CheckpointError(f"{where}: optimizer state: {e}") from None
        try:
            self.rng.bit_generator.state = ck.rng
        except (ValueError, KeyError, TypeError) as e:
            raise CheckpointError(f"{where}: generator state: {e}") from None
        self._restore_schedule(ck, path)
        self.steps_done = ck.step
        self.smooth = meta_value(ck.extra, "smooth_loss", "float", where, self.smooth)
        self.seconds = meta_value(ck.extra, "seconds", "float", where, 0.0)
        self.best_val = meta_value(ck.extra, "best_val_loss", "float", where, math.inf)
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

    def _restore_schedule(self, ck: Checkpoint, path: str) -> None:
        """The learning rate and schedule state of `ck`, or this config's when it changes them
        (fine-tuning: the new lr is the base and a new schedule starts at this step)."""
        saved = TrainConfig.from_checkpoint(ck, path)
        if self.config.changes(saved):
            for group in self.opt.param_groups:
                group["lr"] = group["initial_lr"] = self.config.lr
            self.scheduler = self.config.make_scheduler(self.opt)
        elif self.scheduler is not None:
            try:
                self.scheduler.load_state_dict(ck.extra["scheduler"])
            except (ValueError, KeyError, TypeError) as e:
                raise CheckpointError(f"invalid checkpoint {path}: schedule state: {e}") from None


def split_text(text: str, val_frac: float) -> tuple[str, str]:
    """(training part, held-out part): the last int(val_frac * len(text)) characters held out."""
    held = int(val_frac * len(text))
    return text[: len(text) - held], text[len(text) - held :]


def best_path(out: str) -> str:
    """Where the best checkpoint by validation loss goes: NAME.best.npz next to NAME.npz."""
    stem = out[:-4] if out.endswith(".npz") else out
    return stem + ".best.npz"


def load_model(path: str, fused: Optional[bool] = None) -> tuple[CharRNN, Checkpoint]:
    """The model a checkpoint holds, in eval mode, and the checkpoint; CheckpointError if it does
    not fit. fused: override the checkpoint's choice (None: the run's, so figures match it)."""
    ck = ckpt_io.load(path)
    model = TrainConfig.from_checkpoint(ck, path).make_model(len(ck.vocab), rng=0, fused=fused)
    load_params(model, ck, path)
    return model.eval(), ck
