"""Weights files both frameworks read: a CharRNN as safetensors under PyTorch's state-dict names.

    tinygrad-rnn export --model run.npz --out run.safetensors
    tinygrad-rnn sample --model run.safetensors             # reads it back
    tinygrad-rnn train --init-from run.safetensors --text more.txt     # a fresh run from it

The tensors are what `interop.torch_state_dict` gives: the names of `TorchCharRNN`'s
state dict, so `TorchCharRNN(...).load_state_dict(safetensors.torch.load_file(path))` and
`torch.nn.LSTM(H, H, L).load_state_dict(<the rnn.* tensors without "rnn.">)` take them as
they are. Ours -> the file's:

    embed.weight                  embed.weight (V, H)
    rnn.<name>_l<k>[_reverse]     rnn.<name>_l<k>[_reverse]     (LSTM, GRU, stacks; nn.LSTM's names)
    rnn.bias_h_l<k>               rnn.bias_ih_l<k>, and rnn.bias_hh_l<k> = 0    (the plain cell)
    weight_hh, bias_h             rnn.weight_hh_l0, rnn.bias_ih_l0, with rnn.weight_ih_l0 = I and
                                  rnn.bias_hh_l0 = 0           (the notebook's model, no input matrix)
    head.weight, head.bias        head.weight (V, H), head.bias (V,)

Reading folds back what PyTorch made of the extra arrays (see `tinygrad_rnn.interop`).
The metadata (safetensors holds str -> str) is `metadata()`: "format"
("tinygrad_rnn-charrnn"), "version" ("1"), "config" (JSON: hidden_size, cell, num_layers,
vocab_size, dropout, and the training settings of the checkpoint it came from, without the
text's path) and "vocab" (JSON list of the sorted characters). Only the `safetensors`
package is needed (its numpy API), not torch. A file that cannot be read or does not fit
is a `WeightsFileError`, one line (exit 2 on the command line).
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import replace
from typing import Any, Optional

import numpy as np

from tinygrad_rnn import checkpoint as ckpt_io
from tinygrad_rnn.checkpoint import Checkpoint, CheckpointError
from tinygrad_rnn.data import CharVocab, DataError
from tinygrad_rnn.interop import state_dict_from_torch, torch_state_dict
from tinygrad_rnn.layers import CELLS, CharRNN
from tinygrad_rnn.train import DEFAULT_OUT, ConfigError, TrainConfig, load_model, meta_value

FORMAT, VERSION = "tinygrad_rnn-charrnn", "1"
SUFFIX = ".safetensors"
INSTALL_HINT = "pip install safetensors (or pip install 'tinygrad-rnn[safetensors]')"
HELP = "write a checkpoint's weights as safetensors under PyTorch's names"
DESCRIPTION = (
    "Write a checkpoint's model as a .safetensors file that PyTorch and this package both read: "
    "the weights under TorchCharRNN's (nn.Embedding, nn.RNN/LSTM/GRU, nn.Linear) state-dict names, "
    "the configuration and vocabulary in its metadata. `sample --model` and `train --init-from` read it."
)


class WeightsFileError(CheckpointError):
    """A weights file that cannot be written or read: missing, not safetensors, foreign, wrong shapes."""


def _safetensors() -> Any:
    try:
        import safetensors.numpy
    except ImportError:
        raise WeightsFileError(
            f"reading and writing {SUFFIX} files needs safetensors: {INSTALL_HINT}"
        ) from None
    return safetensors


# --- write ---------------------------------------------------------------------------------
def metadata(model: Any, vocab: CharVocab, config: Optional[dict[str, Any]] = None) -> dict[str, str]:
    """The file's metadata for `model` (a CharRNN or a TorchCharRNN) and its vocabulary;
    `config`: more settings to record (a checkpoint's; its "text" path is left out)."""
    settings = {k: v for k, v in (config or {}).items() if k != "text"}
    settings.update(
        vocab_size=len(vocab),
        hidden_size=model.hidden_size,
        cell=model.cell,
        num_layers=model.num_layers,
        dropout=float(model.dropout),
    )
    return {
        "format": FORMAT,
        "version": VERSION,
        "config": json.dumps(settings),
        "vocab": json.dumps(vocab.chars),
    }


def save(path: str, model: CharRNN, vocab: CharVocab, config: Optional[dict[str, Any]] = None) -> None:
    """Write `model` with `vocab` (and `config`, see `metadata`) to `path`, atomically."""
    st = _safetensors()
    tensors = {k: np.ascontiguousarray(v) for k, v in torch_state_dict(model).items()}
    data = st.numpy.save(tensors, metadata=metadata(model, vocab, config))
    try:
        ckpt_io.write_atomically(path, lambda f: f.write(data))
    except OSError as e:
        raise WeightsFileError(f"cannot write {path}: {e.strerror or e}") from None


# --- read ----------------------------------------------------------------------------------
def _read_raw(path: str) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """(metadata, tensors) of a safetensors file; WeightsFileError saying why not."""
    st = _safetensors()
    try:
        with st.safe_open(path, framework="np") as f:
            meta = f.metadata()
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except FileNotFoundError:
        raise WeightsFileError(f"weights file not found: {path}") from None
    except (IsADirectoryError, PermissionError) as e:
        raise WeightsFileError(f"cannot read weights file {path}: {e.strerror or e}") from None
    except Exception as e:  # safetensors' own error for bytes that are not (all of) a file
        raise WeightsFileError(f"not a safetensors file, or truncated: {path} ({e})") from None
    if not meta or meta.get("format") != FORMAT:
        raise WeightsFileError(
            f"{path} has no tinygrad_rnn metadata (format {FORMAT!r}, config, vocab): "
            "write it with `tinygrad-rnn export`, or save_file(..., metadata=export.metadata(...))"
        )
    if meta.get("version") != VERSION:
        raise WeightsFileError(f"{path} has version {meta.get('version')!r}; this reads {VERSION}")
    return meta, tensors


def _model_of(meta: dict[str, str], tensors: dict[str, np.ndarray], where: str) -> tuple[CharRNN, CharVocab]:
    """The (untrained) CharRNN and the vocabulary the metadata and the tensors' dtype describe."""
    try:
        config, chars = json.loads(meta.get("config", "")), json.loads(meta.get("vocab", ""))
        vocab = CharVocab(chars if isinstance(chars, list) else "")
    except (json.JSONDecodeError, DataError) as e:
        raise WeightsFileError(f"{where}: bad config or vocab in the metadata ({e})") from None
    if not isinstance(config, dict):
        raise WeightsFileError(f"{where}: the metadata's config is not a JSON object")
    if vocab.chars != chars:  # an id is a position in the sorted list: another order would shuffle them
        raise WeightsFileError(f"{where}: the vocab must be a list of distinct characters in sorted order")
    hidden, cell = meta_value(config, "hidden_size", "int", where), meta_value(config, "cell", "str", where)
    layers, dropout = (
        meta_value(config, "num_layers", "int", where),
        meta_value(config, "dropout", "float", where, 0.0),
    )
    if config.get("vocab_size", len(vocab)) != len(vocab):
        raise WeightsFileError(
            f"{where}: the vocabulary has {len(vocab)} characters, the config {config['vocab_size']}"
        )
    dtypes = {a.dtype for a in tensors.values()}
    if len(dtypes) != 1 or not dtypes <= {np.dtype(np.float32), np.dtype(np.float64)}:
        raise WeightsFileError(
            f"{where}: tensors must all be float32 or all float64, got {sorted(map(str, dtypes))}"
        )
    if cell not in CELLS:
        raise WeightsFileError(f"{where}: unknown cell {cell!r}")
    try:
        model = CharRNN(
            len(vocab), hidden, cell=cell, num_layers=layers, dropout=dropout, dtype=dtypes.pop(), rng=0
        )
    except ValueError as e:
        raise WeightsFileError(f"{where}: {e}") from None
    return model, vocab


def load(path: str) -> tuple[CharRNN, CharVocab, dict[str, Any]]:
    """The CharRNN of a weights file (written by `save`, or by PyTorch with `metadata`), its
    vocabulary and the metadata's config. WeightsFileError naming what does not fit."""
    meta, tensors = _read_raw(path)
    where = f"invalid weights file {path}"
    model, vocab = _model_of(meta, tensors, where)
    try:
        ckpt_io.check_params(torch_state_dict(model), tensors)  # names, shapes, dtype
    except CheckpointError as e:
        raise WeightsFileError(f"{where}: {e}") from None
    bad = [k for k, a in tensors.items() if not np.isfinite(a).all()]
    if bad:
        raise WeightsFileError(f"{where}: {', '.join(sorted(bad))} contain NaN or infinity")
    model.load_state_dict(state_dict_from_torch(model, tensors))
    return model, vocab, json.loads(meta["config"])


def read_model(path: str) -> tuple[CharRNN, Checkpoint]:
    """The model of a checkpoint (.npz) or a weights file (.safetensors), unfused, and the file
    as a Checkpoint (parameters in our names, vocabulary, config; no optimizer state)."""
    if path.endswith(SUFFIX):
        model, vocab, config = load(path)
        return model, Checkpoint(params=model.state_dict(), vocab=vocab, config=config)
    return load_model(path, fused=False)


# --- the command line ----------------------------------------------------------------------
def init_from(args: argparse.Namespace, config: TrainConfig) -> tuple[TrainConfig, Optional[Checkpoint]]:
    """`train --init-from PATH`: the run's config with the file's model (cell, hidden size,
    layers, dtype) and the file as a Checkpoint to load; (config, None) without the option.

    An option that contradicts the file, or --resume as well, is a ConfigError.
    """
    path = getattr(args, "init_from", None)
    if path is None:
        return config, None
    if not path:
        raise ConfigError("--init-from must not be empty (an unset shell variable?)")
    if getattr(args, "resume", None):
        raise ConfigError("--init-from starts a fresh run from weights and --resume continues one: give one")
    out = getattr(args, "out", None) or DEFAULT_OUT
    if os.path.exists(out) and os.path.exists(path) and os.path.samefile(out, path):
        raise ConfigError(
            f"--out {out} is the --init-from file: the run would overwrite the weights it starts from"
        )
    model, ck = read_model(path)
    dtype = np.dtype(model.head.weight.dtype).name
    fields = {"cell": model.cell, "hidden": model.hidden_size, "layers": model.num_layers, "dtype": dtype}
    for name, value in fields.items():
        given = getattr(args, name, None)
        if given is not None and given != value:
            raise ConfigError(
                f"--{name} {given} differs from {path}'s {value}; with --init-from it comes from the file"
            )
    if getattr(args, "fused", None) and model.cell != "rnn":
        raise ConfigError(f"--fused is only for --cell rnn; {path} holds a {model.cell}")
    return replace(config, **fields), ck


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `tinygrad-rnn export`; `run` takes the parsed namespace."""
    p.add_argument("--model", metavar="PATH", required=True, help="a checkpoint written by train (.npz)")
    p.add_argument("--out", metavar="PATH", required=True, help=f"the weights file to write (*{SUFFIX})")


def run(args: argparse.Namespace) -> int:
    if not args.out.endswith(SUFFIX):
        raise WeightsFileError(f"--out must end in {SUFFIX} (sample and train --init-from read it by that)")
    if os.path.exists(args.out) and os.path.exists(args.model) and os.path.samefile(args.out, args.model):
        raise WeightsFileError(f"--out {args.out} is the --model file itself")
    model, ck = read_model(args.model)
    save(args.out, model, ck.vocab, ck.config)
    names = ", ".join(torch_state_dict(model))
    print(f"wrote {args.out}: {names} (PyTorch's names), with the config and vocabulary in its metadata")
    return 0
