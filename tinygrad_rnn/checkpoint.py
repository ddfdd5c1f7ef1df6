"""Checkpoints: one `.npz` file that `np.load(path, allow_pickle=False)` reads. No pickle.

Layout of the archive:
  meta          a JSON string: format tag, version, configuration, step, data position,
                extra numbers, and the structure of the optimizer and random generator states
  vocab         (V,) int32 code points of the sorted vocabulary
  param/<name>  one array per model parameter (the model's state_dict)
  hidden        (..., B, H) the state carried to the next chunk (absent when there is none):
                (B, H) for the seed's model; leading axes for layers and an LSTM's (h, c)
  optim/<n>     the arrays of the optimizer state, referenced from `meta`

Nested dicts, lists and tuples of arrays, numbers, strings, bools and None (an optimizer's
`state_dict()`, a `Generator.bit_generator.state`) are stored as a JSON tree whose array
leaves point to `optim/<n>` keys; ints keep their type (dict keys too) and arbitrary size.

`save` writes a temporary file in the target directory (`tempfile.mkstemp`), flushes and
fsyncs it, then `os.replace`s the target: an interrupted save leaves the old file intact.
`load` validates everything and raises `CheckpointError` with a one-line reason.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from typing import IO, Any, Callable, Optional, Union

import numpy as np

from tinygrad_rnn.data import CharVocab, DataError
from tinygrad_rnn.validate import OPTIMIZER_SLOTS, param_count, physical_memory, show_bytes

FORMAT = "tinygrad_rnn-checkpoint"
VERSION = 1
PathLike = Union[str, "os.PathLike[str]"]
MAX_DEPTH = 100  # levels of JSON in meta; ours has about 15
MAX_META_BYTES = 2**24  # 16 MiB of meta; ours has a few kB
FALLBACK_NUMBERS = 2**28  # what a config without sizes may declare: 2 GiB of float64
_SIZE_KEYS = (("vocab_size", None), ("hidden_size", None), ("num_layers", 1), ("batch_size", 1))


class CheckpointError(ValueError):
    """A checkpoint that cannot be written or read: missing, truncated, corrupted, foreign."""


@dataclass
class Checkpoint:
    """Everything needed to continue training exactly where it stopped.

    params: name -> array (the model's state_dict); vocab: the sorted characters;
    config: JSON values (hyperparameters); step: steps done; position: the data position;
    hidden: (..., B, H) or None; optimizer: the optimizer's state_dict(); rng: the generator's
    `bit_generator.state`; extra: JSON values (smoothed loss, seconds, ...).
    """

    params: dict[str, np.ndarray]
    vocab: CharVocab
    config: dict[str, Any] = field(default_factory=dict)
    step: int = 0
    position: int = 0
    hidden: Optional[np.ndarray] = None
    optimizer: Optional[dict[str, Any]] = None
    rng: Optional[dict[str, Any]] = None
    extra: dict[str, Any] = field(default_factory=dict)


# --- nested state <-> JSON tree + arrays ---------------------------------------------------
def _check_array(a: np.ndarray, what: str) -> None:
    if a.dtype.kind not in "biuf":
        raise CheckpointError(f"{what}: arrays of dtype {a.dtype} cannot be stored (numbers only)")


def _pack(obj: Any, arrays: dict[str, np.ndarray], where: str) -> Any:
    """A JSON tree for `obj`; its arrays go into `arrays` under fresh `optim/<n>` keys."""
    if isinstance(obj, np.ndarray) or isinstance(obj, np.generic):
        a = np.array(obj)  # a copy: later training steps must not change what was saved
        _check_array(a, where)
        key = f"optim/{len(arrays)}"
        arrays[key] = a
        return {"array" if isinstance(obj, np.ndarray) else "scalar": key}
    if obj is None:
        return {"none": None}
    if isinstance(obj, bool):
        return {"bool": obj}
    if isinstance(obj, int):
        return {"int": obj}
    if isinstance(obj, float):
        return {"float": obj}
    if isinstance(obj, str):
        return {"str": obj}
    if isinstance(obj, (list, tuple)):
        items = [_pack(v, arrays, f"{where}[{i}]") for i, v in enumerate(obj)]
        return {"list" if isinstance(obj, list) else "tuple": items}
    if isinstance(obj, dict):
        for k in obj:
            if not isinstance(k, (str, int)) or isinstance(k, bool):
                raise CheckpointError(f"{where}: dict keys must be str or int, not {type(k).__name__}")
        return {
            "dict": [[_pack(k, arrays, where), _pack(v, arrays, f"{where}[{k!r}]")] for k, v in obj.items()]
        }
    raise CheckpointError(f"{where}: cannot store a {type(obj).__name__} (arrays, numbers, strings only)")


def _unpack(node: Any, arrays: dict[str, np.ndarray], used: set[str]) -> Any:
    if not isinstance(node, dict) or len(node) != 1:
        raise CheckpointError("malformed state tree in meta")
    ((tag, value),) = node.items()
    if tag in ("array", "scalar"):
        if not isinstance(value, str) or value not in arrays or not value.startswith("optim/"):
            raise CheckpointError(f"missing array {value!r} referenced by the optimizer state")
        used.add(value)
        a = arrays[value]
        if tag == "array":
            return a
        if a.ndim != 0:
            raise CheckpointError(f"{value}: expected a scalar, got shape {a.shape}")
        return a[()]
    types: dict[str, Any] = {"bool": bool, "int": int, "float": (float, int), "str": str}
    if tag == "none" and value is None:
        return None
    if tag in types and isinstance(value, types[tag]) and (tag == "bool" or not isinstance(value, bool)):
        return float(value) if tag == "float" else value
    if tag in ("list", "tuple") and isinstance(value, list):
        items = [_unpack(v, arrays, used) for v in value]
        return items if tag == "list" else tuple(items)
    if tag == "dict" and isinstance(value, list) and all(isinstance(p, list) and len(p) == 2 for p in value):
        keys = [_unpack(k, arrays, used) for k, _ in value]
        if not all(isinstance(k, (str, int)) and not isinstance(k, bool) for k in keys):
            raise CheckpointError("malformed state tree in meta (a dict key that is not a str or int)")
        return {k: _unpack(v, arrays, used) for k, (_, v) in zip(keys, value)}
    raise CheckpointError(f"malformed state tree in meta (tag {tag!r})")


# --- save ------------------------------------------------------------------------------------
def _archive(ckpt: Checkpoint) -> dict[str, np.ndarray]:
    """The arrays of the .npz, validated before any file is touched."""
    arrays: dict[str, np.ndarray] = {}
    trees = {
        "optimizer": _pack(ckpt.optimizer, arrays, "optimizer"),
        "rng": _pack(ckpt.rng, arrays, "rng"),
    }
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "config": ckpt.config,
        "step": int(ckpt.step),
        "position": int(ckpt.position),
        "extra": ckpt.extra,
        **trees,
    }
    try:
        text = json.dumps(meta, allow_nan=True)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"config and extra must hold JSON values only: {e}") from None
    out = {"meta": np.array(text), "vocab": ckpt.vocab.codepoints()}
    for name, a in ckpt.params.items():
        a = np.asarray(a)
        _check_array(a, f"parameter {name}")
        out[f"param/{name}"] = a
    if ckpt.hidden is not None:
        out["hidden"] = np.asarray(ckpt.hidden)
        _check_array(out["hidden"], "hidden state")
    out.update(arrays)
    return out


def _write_npz(f: Any, arrays: dict[str, np.ndarray]) -> None:
    members: dict[str, Any] = arrays  # keys are meta, vocab, hidden, param/*, optim/*
    np.savez(f, **members)


def save(path: PathLike, ckpt: Checkpoint) -> None:
    """Write `ckpt` to `path` atomically (see `write_atomically`)."""
    arrays = _archive(ckpt)
    write_atomically(os.fspath(path), lambda f: _write_npz(f, arrays))


def write_atomically(path: str, write: Callable[[IO[bytes]], object], mode: Optional[int] = None) -> None:
    """`write(f)` into a temporary file in `path`'s directory, fsync it, `os.replace` it onto
    `path`, fsync the directory: a crash never leaves half a file. `mode`: the new file's
    permissions (default the usual 0o666 less the umask; mkstemp's own are 0600).

    On any failure (including KeyboardInterrupt) the temp file is removed and a previous
    file at `path` is left as it was. Checkpoints, exported weights and the CSV log use it.
    """
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask if mode is None else mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable, where supported
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


# --- load ------------------------------------------------------------------------------------
def _open(path: str) -> Any:
    """The archive, opened lazily (np.load reads no array yet); CheckpointError if it is none."""
    try:
        npz = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint not found: {path}") from None
    except IsADirectoryError:
        raise CheckpointError(f"checkpoint path is a directory: {path}") from None
    except PermissionError:
        raise CheckpointError(f"cannot read checkpoint {path}: permission denied") from None
    except Exception as e:  # np.load raises many types for non-npz bytes; none is a bug here
        # bytes that are neither zip nor .npy make numpy suggest pickle: never; say what it is
        why = "neither an .npz archive nor a .npy array" if "pickle" in str(e) else str(e)
        raise CheckpointError(
            f"not a checkpoint (not an .npz archive, or truncated): {path} ({why})"
        ) from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise CheckpointError(f"not a checkpoint (a single .npy array, not an .npz archive): {path}")
    return npz


def _read_array(npz: Any, key: str) -> np.ndarray:
    try:
        a: np.ndarray = npz[key]
        return a
    except ValueError as e:
        if "pickle" in str(e) or "Object arrays" in str(e):
            raise CheckpointError(f"refusing object (pickled) array {key!r}") from None
        raise CheckpointError(f"corrupted array {key!r}: {e}") from None
    except Exception as e:  # zipfile/zlib/EOF errors: bad CRC, truncated member, ...
        raise CheckpointError(f"corrupted array {key!r}: {e}") from None


def _read_meta(npz: Any, sizes: dict[str, tuple[int, int]]) -> Any:
    """The meta record's JSON value, or None when there is no meta record."""
    if "meta" not in sizes:
        return None
    meta_arr = _read_array(npz, "meta")
    if meta_arr.dtype.kind != "U" or meta_arr.ndim != 0:
        return None
    try:
        return json.loads(str(meta_arr[()]))
    except RecursionError:
        raise CheckpointError(f"meta nests deeper than {MAX_DEPTH} levels") from None
    except ValueError as e:  # JSONDecodeError, or an integer of more than 4300 digits
        raise CheckpointError(f"meta is not valid JSON ({e})") from None


def load(path: PathLike) -> Checkpoint:
    """Read and validate a checkpoint; CheckpointError with a one-line reason if anything is off.

    Before any array is read, what its members declare is checked (`layout`, `check_budget`);
    then the format tag and version, the meta JSON (at most MAX_DEPTH levels), the vocabulary,
    numeric dtypes (object arrays refused), finite parameters, hidden and optimizer states,
    vocab_size/hidden_size/batch_size of the config against the arrays, and that no unknown
    key is present.
    """
    path = os.fspath(path)
    with _open(path) as npz:
        try:
            sizes = layout(npz.zip)
            meta = _read_meta(npz, sizes)
        except CheckpointError as e:
            raise CheckpointError(f"corrupted checkpoint {path}: {e}") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            why = "wrong format tag" if "meta" in sizes else "no meta record"
            raise CheckpointError(f"not a tinygrad_rnn checkpoint ({why}): {path}")
        if meta.get("version") != VERSION:
            raise CheckpointError(
                f"checkpoint {path} has version {meta.get('version')!r}; this reads {VERSION}"
            )
        try:
            check_depth(meta, "meta")
            if not isinstance(meta.get("config"), dict):
                raise CheckpointError("meta.config is missing or not an object")
            check_budget(sizes, meta["config"])
            arrays = {key: _read_array(npz, key) for key in sizes if key != "meta"}
            return _validate(meta, arrays)
        except CheckpointError as e:
            raise CheckpointError(f"invalid checkpoint {path}: {e}") from None


# --- what an archive may declare, checked before reading it ---------------------------------
def layout(zf: zipfile.ZipFile) -> dict[str, tuple[int, int]]:
    """key -> (numbers, bytes) of each member, from the zip directory and the .npy headers only.

    CheckpointError for a member that is not an .npy array, an object (pickled) dtype, a
    duplicate, a meta over MAX_META_BYTES, or a size other than its header declares.
    """
    out: dict[str, tuple[int, int]] = {}
    for info in zf.infolist():
        key = info.filename[: -len(".npy")]
        if not info.filename.endswith(".npy") or key in out:
            raise CheckpointError(f"unexpected or repeated member {info.filename!r}")
        shape, dtype, header = _npy_header(zf, info, key)
        if dtype.hasobject:
            raise CheckpointError(f"refusing object (pickled) array {key!r}")
        numbers = math.prod(shape)
        if header + numbers * dtype.itemsize != info.file_size:
            raise CheckpointError(
                f"array {key!r}: its header declares {dtype}{shape}, "
                f"{numbers * dtype.itemsize} bytes, but the member holds {info.file_size - header}"
            )
        if key == "meta" and info.file_size > MAX_META_BYTES:
            raise CheckpointError(f"meta holds {info.file_size} bytes (at most {MAX_META_BYTES})")
        out[key] = (numbers, info.file_size)
    return out


def _npy_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo, key: str) -> tuple[tuple[int, ...], Any, int]:
    """(shape, dtype, header length) of a member, reading only its first bytes."""
    fmt = np.lib.format
    try:
        with zf.open(info) as f:
            version = fmt.read_magic(f)
            if version not in ((1, 0), (2, 0)):
                raise CheckpointError(f"array {key!r}: .npy version {version} is not supported")
            read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, _, dtype = read(f)
            return tuple(shape), dtype, f.tell()
    except CheckpointError:
        raise
    except Exception as e:  # zipfile/zlib errors, a header numpy cannot parse
        raise CheckpointError(f"corrupted array {key!r}: {e}") from None


def _sizes_from(config: dict[str, Any]) -> Optional[tuple[int, int, int, int]]:
    """(vocab_size, hidden_size, num_layers, batch_size) when the config gives them as ints."""
    values = [config.get(k, d) for k, d in _SIZE_KEYS]
    ints = [v for v in values if isinstance(v, int) and not isinstance(v, bool) and v >= 1]
    return (ints[0], ints[1], ints[2], ints[3]) if len(ints) == len(values) else None


def check_budget(sizes: dict[str, tuple[int, int]], config: dict[str, Any]) -> None:
    """CheckpointError if the members declare more numbers than the config's model can hold.

    The bound: twice the parameters and optimizer state (Adam's two arrays per parameter)
    of the largest cell (an LSTM) with the config's vocab_size, hidden_size and num_layers,
    plus the hidden state and a full vocabulary; FALLBACK_NUMBERS for a config without sizes.
    The total must also fit in the machine's memory.
    """
    given = _sizes_from(config)
    if given is None:
        budget = FALLBACK_NUMBERS
    else:
        v, h, layers, batch = given
        params = param_count(v, h, "lstm", layers)
        budget = 2 * (1 + OPTIMIZER_SLOTS) * params + 4 * layers * batch * h + 0x110000 + 2**20
    arrays = {k: n for k, (n, _) in sizes.items() if k != "meta"}
    total = sum(arrays.values())
    if total > budget:
        largest = max(arrays, key=lambda k: arrays[k])
        raise CheckpointError(
            f"the arrays declare {total} numbers (largest: {largest!r}, {arrays[largest]}), more than "
            f"{budget} that a model of this config can hold; refusing to read them"
        )
    nbytes, memory = sum(b for _, b in sizes.values()), physical_memory()
    if nbytes > memory:
        raise CheckpointError(
            f"the arrays declare {show_bytes(nbytes)}, more than this machine's {show_bytes(memory)}"
        )


def check_depth(tree: Any, what: str) -> None:
    """CheckpointError if a JSON value nests deeper than MAX_DEPTH (checked without recursion)."""
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise CheckpointError(f"{what} nests deeper than {MAX_DEPTH} levels")
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        stack.extend((c, depth + 1) for c in children)


def _validate(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> Checkpoint:
    for key in ("config", "extra"):
        if not isinstance(meta.get(key), dict):
            raise CheckpointError(f"meta.{key} is missing or not an object")
    for key in ("step", "position"):
        v = meta.get(key)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise CheckpointError(f"meta.{key} must be a non-negative integer, got {v!r}")
    for key, a in arrays.items():
        if a.dtype.kind not in "biuf":
            raise CheckpointError(f"array {key!r} has dtype {a.dtype}; only numbers are allowed")
    if "vocab" not in arrays:
        raise CheckpointError("the vocabulary is missing")
    try:
        vocab = CharVocab.from_codepoints(arrays.pop("vocab"))
    except DataError as e:
        raise CheckpointError(str(e)) from None
    params = {k[len("param/") :]: a for k, a in arrays.items() if k.startswith("param/")}
    if not params:
        raise CheckpointError("no parameters")
    for name, a in params.items():
        if a.dtype.kind != "f":
            raise CheckpointError(f"parameter {name} has dtype {a.dtype}, not float")
        if not np.all(np.isfinite(a)):
            raise CheckpointError(f"parameter {name} contains NaN or infinity")
    config = meta["config"]
    if "vocab_size" in config and config["vocab_size"] != len(vocab):
        raise CheckpointError(
            f"vocabulary has {len(vocab)} characters but the config says {config['vocab_size']}"
        )
    hidden = arrays.get("hidden")
    if hidden is not None:
        _check_hidden(hidden, config)
    used: set[str] = set()
    optimizer, rng = (_state_tree(meta, key, arrays, used) for key in ("optimizer", "rng"))
    known = {"hidden", *used} | {f"param/{n}" for n in params}
    unknown = sorted(set(arrays) - known)
    if unknown:
        raise CheckpointError(f"unexpected keys: {', '.join(unknown)}")
    return Checkpoint(
        params=params,
        vocab=vocab,
        config=config,
        step=meta["step"],
        position=meta["position"],
        hidden=hidden,
        optimizer=optimizer,
        rng=rng,
        extra=meta["extra"],
    )


def _state_tree(meta: dict[str, Any], key: str, arrays: dict[str, np.ndarray], used: set[str]) -> Any:
    """meta[key]'s tree (the optimizer's or the generator's state) with its arrays: a dict or
    None; its float arrays finite. The keys of the arrays it uses are added to `used`."""
    mine: set[str] = set()
    tree = _unpack(meta.get(key, {"none": None}), arrays, mine)
    for k in sorted(mine):
        if arrays[k].dtype.kind == "f" and not np.all(np.isfinite(arrays[k])):
            raise CheckpointError(f"array {k!r} of the {key} state contains NaN or infinity")
    if tree is not None and not isinstance(tree, dict):
        raise CheckpointError(f"the {key} state is not a dict")
    used |= mine
    return tree


def _check_hidden(hidden: np.ndarray, config: dict[str, Any]) -> None:
    """CheckpointError unless the hidden state is float (..., B, H) with the config's B and H."""
    want = (config.get("batch_size"), config.get("hidden_size"))
    if (
        hidden.dtype.kind != "f"
        or not 2 <= hidden.ndim <= 4
        or any(w is not None and w != s for w, s in zip(want, hidden.shape[-2:]))
    ):
        raise CheckpointError(
            f"hidden state of shape {hidden.shape} and dtype {hidden.dtype} does not fit the config"
        )
    if not np.all(np.isfinite(hidden)):
        raise CheckpointError("the hidden state contains NaN or infinity")


def check_params(expected: dict[str, np.ndarray], got: dict[str, np.ndarray]) -> None:
    """CheckpointError unless `got` has exactly the names, shapes and dtypes of `expected`."""
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    if missing or extra:
        parts = ([f"missing {', '.join(missing)}"] if missing else []) + (
            [f"unexpected {', '.join(extra)}"] if extra else []
        )
        raise CheckpointError(f"parameters do not match the model: {'; '.join(parts)}")
    for name, want in expected.items():
        a = got[name]
        if a.shape != want.shape or a.dtype != want.dtype:
            raise CheckpointError(
                f"parameter {name}: checkpoint has {a.dtype}{a.shape}, "
                f"the model needs {want.dtype}{want.shape}"
            )
