"""Hand-edited and crafted checkpoints, numbers and options (issue 14).

Every crafted file is made here from a real checkpoint. The command line is run as a user
runs it (a subprocess): a bad file or value is one line on stderr, exit code 2, and nothing
on disk changes; the library raises CheckpointError naming the key.
"""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
import tracemalloc
import warnings
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from test_cli import _bad as one_line_error  # one line on stderr, exit code 2, no traceback

from tinygrad_rnn import checkpoint as ckpt_io
from tinygrad_rnn import train as train_mod
from tinygrad_rnn import validate
from tinygrad_rnn.checkpoint import Checkpoint, CheckpointError
from tinygrad_rnn.data import CharVocab, read_text
from tinygrad_rnn.layers import CharRNN
from tinygrad_rnn.train import ConfigError, TrainConfig, Trainer

ROOT = Path(__file__).resolve().parents[1]
TEXT = "abcab cabba " * 10
CONFIG = dict(hidden=4, seq_len=4, optim="adam", lr=0.003)


def cli(*args: str, cwd: Path, **kw: Any) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "tinygrad_rnn", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, **kw)


def snapshot(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real checkpoint: an Adam run of 3 steps on TEXT (t.txt) with a hidden state."""
    d = tmp_path_factory.mktemp("good")
    (d / "t.txt").write_text(TEXT)
    trainer = Trainer(TrainConfig(text=str(d / "t.txt"), **CONFIG), TEXT, out=str(d / "good.npz"))
    for _ in range(3):
        trainer.step()
    trainer.save()
    return d / "good.npz"


# --- crafting ------------------------------------------------------------------------------
def resaved(edit: Callable[[Checkpoint], None]) -> Callable[[Path, Path], None]:
    """A crafter: load the good checkpoint, edit it, write it with checkpoint.save."""

    def craft(good: Path, out: Path) -> None:
        ck = ckpt_io.load(good)
        edit(ck)
        ckpt_io.save(out, ck)

    return craft


def raw(edit: Callable[[dict[str, Any], dict[str, np.ndarray]], Any]) -> Callable[[Path, Path], None]:
    """A crafter of the archive itself: edit(meta, arrays) may return the meta's JSON text."""

    def craft(good: Path, out: Path) -> None:
        with np.load(good, allow_pickle=False) as z:
            arrays = dict(z)
        meta = json.loads(str(arrays["meta"][()]))
        text = edit(meta, arrays)
        arrays["meta"] = np.array(text if text is not None else json.dumps(meta))
        np.savez(out, **arrays)

    return craft


def config(key: str, value: Any) -> Callable[[Path, Path], None]:
    return raw(lambda meta, arrays: meta["config"].__setitem__(key, value))


def optimizer_groups(ck: Checkpoint) -> list[dict[str, Any]]:
    """The dicts holding "lr": the parameter groups (or tinygrad_rnn 0.1's "hyper")."""
    assert ck.optimizer is not None
    return ck.optimizer.get("param_groups") or [ck.optimizer["hyper"]]


def set_lr(ck: Checkpoint) -> None:
    for g in optimizer_groups(ck):
        g["lr"] = 0.5


def set_steps(value: Any) -> Callable[[Checkpoint], None]:
    def edit(ck: Checkpoint) -> None:
        assert ck.optimizer is not None
        for state in ck.optimizer["state"].values():
            state["step"] = value

    return edit


def nan_in_optimizer_state(ck: Checkpoint) -> None:
    assert ck.optimizer is not None
    state = next(iter(ck.optimizer["state"].values()))
    state["exp_avg_sq"] = np.full_like(state["exp_avg_sq"], np.nan)


def set_generator(key: str, value: Any) -> Callable[[Checkpoint], None]:
    def edit(ck: Checkpoint) -> None:
        assert ck.rng is not None
        ck.rng["state"][key] = value

    return edit


def nan_in_hidden(ck: Checkpoint) -> None:
    assert ck.hidden is not None
    ck.hidden[0, 0] = np.nan


def deep_json(levels: int) -> Callable[[Path, Path], None]:
    def edit(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> str:
        meta["extra"]["deep"] = "DEEP"
        return json.dumps(meta).replace('"DEEP"', "[" * levels + "]" * levels)

    return raw(edit)


def huge_int(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> str:
    meta["step"] = "HUGE"
    return json.dumps(meta).replace('"HUGE"', "9" * 5000)


def array_reference_as_list(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> str:
    text = json.dumps(meta)
    assert '"array": "optim/0"' in text
    return text.replace('"array": "optim/0"', '"array": ["optim/0"]')


def surrogate(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    vocab = arrays["vocab"].copy()
    vocab[-1] = 0xD800  # still sorted and distinct: only the surrogate is wrong
    arrays["vocab"] = vocab


def no_hidden(key: str, value: Any) -> Callable[[Path, Path], None]:
    def edit(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        meta["config"][key] = value
        del arrays["hidden"]

    return raw(edit)


def write_lying_header(good: Path, out: Path) -> None:
    """param/head.bias's header claims 10**8 float64 (800 MB); the member holds 4 of them."""
    raw(lambda meta, arrays: None)(good, out)
    with zipfile.ZipFile(out) as z:
        members = {i.filename: z.read(i) for i in z.infolist()}
    f = io.BytesIO()
    np.lib.format.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False, "shape": (10**8,)})
    members["param/head.bias.npy"] = f.getvalue() + bytes(32)
    with zipfile.ZipFile(out, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)


BOTH, TRAIN, SAMPLE = ("train", "sample"), ("train",), ("sample",)
CASES: list[tuple[str, Callable[[Path, Path], None], str, tuple[str, ...]]] = [
    ("dtype-list", config("dtype", ["float64"]), r"'dtype' must be a string, got \['float64'\]", BOTH),
    ("cell-list", config("cell", ["rnn"]), r"'cell' must be a string", BOTH),
    ("seq_len-string", config("seq_len", "4"), r"'seq_len' must be an integer, got '4'", BOTH),
    ("seq_len-zero", config("seq_len", 0), r"seq_len must be an integer >= 1, got 0", BOTH),
    ("lr-string", config("lr", "0.003"), r"'lr' must be a number, got '0.003'", BOTH),
    ("lr-nan", config("lr", math.nan), r"lr must be a positive number, got nan", BOTH),
    ("clip-bool", config("clip", True), r"'clip' must be a number, got True", BOTH),
    ("clip-negative", config("clip", -1), r"clip must be a number >= 0, got -1", BOTH),
    ("seed-float", config("seed", 1.5), r"'seed' must be an integer, got 1.5", BOTH),
    ("optim-number", config("optim", 3), r"'optim' must be a string, got 3", BOTH),
    ("optim-unknown", config("optim", "lbfgs"), r"unknown optim 'lbfgs'", BOTH),
    ("text-number", config("text", 0), r"'text' must be a string or null, got 0", BOTH),
    ("hidden-huge", no_hidden("hidden_size", 100000), r"hidden size 100000 \(\d+ parameters\)", BOTH),
    ("layers-huge", no_hidden("num_layers", 10**6), r"rnn x1000000 .* the arrays hold \d+ numbers", BOTH),
    ("prime-list", config("prime", ["a"]), r"'prime' must be a string, got \['a'\]", SAMPLE),
    ("adam-step-string", resaved(set_steps("3")), r"\['step'\] must be an integer >= 0, got '3'", TRAIN),
    ("adam-step-negative", resaved(set_steps(-1)), r"\['step'\] must be an integer >= 0, got -1", TRAIN),
    ("optimizer-lr", resaved(set_lr), r"the optimizer's lr 0.5 does not fit the config's 0.003", TRAIN),
    (
        "seconds-negative",
        raw(lambda m, a: m["extra"].__setitem__("seconds", -5)),
        r"'seconds' must be",
        TRAIN,
    ),
    (
        "nan-optimizer",
        resaved(nan_in_optimizer_state),
        r"'optim/\d+' of the optimizer state contains NaN",
        BOTH,
    ),
    (
        "rng-state-huge",
        resaved(set_generator("state", 2**200)),
        r"generator state: ",
        TRAIN,
    ),
    ("rng-inc-negative", resaved(set_generator("inc", -1)), r"generator state: ", TRAIN),
    ("nan-hidden", resaved(nan_in_hidden), r"the hidden state contains NaN", BOTH),
    ("json-100000-deep", deep_json(100_000), r"meta nests deeper than 100 levels", BOTH),
    ("json-150-deep", deep_json(150), r"meta nests deeper than 100 levels", BOTH),
    ("json-huge-int", raw(huge_int), r"meta is not valid JSON", BOTH),
    ("state-tree-list", raw(array_reference_as_list), r"missing array \['optim/0'\] referenced", BOTH),
    ("surrogate", raw(surrogate), r"lone surrogate U\+D800", BOTH),
    ("step-negative", raw(lambda m, a: m.__setitem__("step", -1)), r"meta.step must be a non-negative", BOTH),
    (
        "unknown-member",
        raw(lambda m, a: a.__setitem__("surprise", np.ones(3))),
        r"unexpected keys: surprise",
        BOTH,
    ),
    ("lying-header", write_lying_header, r"'param/head.bias'.* declares float64\(100000000,\)", BOTH),
]
IDS = [c[0] for c in CASES]


def library_resume(path: Path) -> None:
    """What `train --resume` does, in process: load, read the config, restore a Trainer."""
    ck = ckpt_io.load(path)
    config = TrainConfig.from_checkpoint(ck, str(path))
    Trainer(config, TEXT, vocab=ck.vocab).restore(ck, str(path))


@pytest.mark.parametrize("name,craft,message,fails", CASES, ids=IDS)
def test_crafted_checkpoint_is_a_clear_error_in_the_library(
    good, tmp_path, name, craft, message, fails
) -> None:
    path = tmp_path / "crafted.npz"
    craft(good, path)
    if "train" in fails:
        with pytest.raises(CheckpointError, match=message) as e:
            library_resume(path)
        assert str(path) in str(e.value) and "\n" not in str(e.value)
    else:
        library_resume(path)  # a value only `sample` reads


@pytest.mark.parametrize("name,craft,message,fails", CASES, ids=IDS)
def test_crafted_checkpoint_is_one_line_exit_2_and_changes_nothing(
    good, tmp_path, name, craft, message, fails
) -> None:
    craft(good, tmp_path / "crafted.npz")
    before = snapshot(tmp_path)
    for command in fails:
        args = ["--model"] if command == "sample" else ["--steps", "2", "--resume"]
        # stdin closed: "text": 0 used to make the run read it (and a terminal hang)
        r = cli(command, *args, "crafted.npz", cwd=tmp_path, stdin=subprocess.DEVNULL)
        one_line_error(r, message)
        assert snapshot(tmp_path) == before


def test_the_good_checkpoint_still_resumes_and_samples(good, tmp_path) -> None:
    """The checks refuse only what is wrong: the file they start from passes all of them."""
    (tmp_path / "t.txt").write_text(TEXT)
    path = tmp_path / "ok.npz"
    path.write_bytes(good.read_bytes())
    library_resume(path)
    r = cli(
        "train", "--resume", "ok.npz", "--text", "t.txt", "--steps", "2", "--sample-every", "0", cwd=tmp_path
    )
    assert r.returncode == 0, r.stderr
    assert ckpt_io.load(path).step == 5
    r = cli("sample", "--model", "ok.npz", "-n", "5", cwd=tmp_path)
    assert r.returncode == 0, r.stderr


# --- a compressed archive that inflates to 820 MB ------------------------------------------
BOMB_NUMBERS = 102_500_000  # float64: 820 MB


def _npy(a: np.ndarray) -> bytes:
    f = io.BytesIO()
    np.lib.format.write_array(f, a, allow_pickle=False)
    return f.getvalue()


@pytest.fixture(scope="module")
def bomb(good: Path) -> Path:
    """The good checkpoint plus param/bomb, 820 MB of zeros deflated to a few MB."""
    path = good.parent / "bomb.npz"
    with (
        np.load(good, allow_pickle=False) as z,
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as out,
    ):
        for key in z.files:
            out.writestr(f"{key}.npy", _npy(z[key]))
        with out.open("param/bomb.npy", "w", force_zip64=True) as f:
            header = {"descr": "<f8", "fortran_order": False, "shape": (BOMB_NUMBERS,)}
            np.lib.format.write_array_header_1_0(f, header)
            chunk = bytes(2**22)
            left = BOMB_NUMBERS * 8
            while left:
                f.write(chunk[: min(left, len(chunk))])
                left -= min(left, len(chunk))
    assert path.stat().st_size < 8 * 2**20
    return path


def test_a_compression_bomb_is_refused_before_it_is_inflated(bomb) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError, match=r"declare 102500\d+ numbers \(largest: 'param/bomb'"):
            ckpt_io.load(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20, peak  # a few headers were read, never the 820 MB


@pytest.mark.parametrize("command", ["sample --model bomb.npz", "train --resume bomb.npz --steps 1"])
def test_a_compression_bomb_is_one_line_exit_2(bomb, command) -> None:
    before = snapshot(bomb.parent)
    one_line_error(cli(*command.split(), cwd=bomb.parent), "declare .* numbers")
    assert snapshot(bomb.parent) == before


def test_the_budget_follows_the_config() -> None:
    """Without sizes in the config the fixed bound applies; with them, the model's."""
    small = {"vocab_size": 4, "hidden_size": 4}
    ckpt_io.check_budget({"param/a": (1000, 8000)}, small)
    with pytest.raises(CheckpointError, match="declare 3000000 numbers"):
        ckpt_io.check_budget({"param/a": (3_000_000, 24_000_000)}, small)
    ckpt_io.check_budget({"param/a": (3_000_000, 24_000_000)}, {})
    with pytest.raises(CheckpointError, match="declare"):
        ckpt_io.check_budget({"param/a": (ckpt_io.FALLBACK_NUMBERS + 1, 8)}, {})


# --- memory of a training run ----------------------------------------------------------------
@pytest.mark.parametrize("cell,layers", [("rnn", 1), ("rnn", 3), ("lstm", 1), ("lstm", 2), ("gru", 2)])
def test_param_count_is_the_models(cell, layers) -> None:
    model = CharRNN(7, 5, cell=cell, num_layers=layers, rng=0)
    assert validate.param_count(7, 5, cell, layers) == sum(p.data.size for p in model.parameters())


@pytest.mark.parametrize("cell,dtype", [("rnn", "float64"), ("lstm", "float32"), ("gru", "float64")])
def test_step_bytes_is_close_to_what_a_step_allocates(cell, dtype) -> None:
    """The estimate against tracemalloc's peak over building a run and two steps (numpy reports
    its arrays to tracemalloc): the same order, within a factor of two."""
    text = "".join(chr(97 + i % 26) for i in range(3000))
    config = TrainConfig(
        hidden=64, cell=cell, layers=2, seq_len=32, batch=8, optim="adam", lr=0.003, dtype=dtype
    )
    tracemalloc.start()
    try:
        trainer = Trainer(config, text)
        trainer.step()
        trainer.step()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    itemsize = np.dtype(dtype).itemsize
    estimate = validate.step_bytes(26, 64, cell, 2, 8, 32, itemsize)
    assert 0.5 < estimate / peak < 2, (estimate, peak)


def test_a_run_that_does_not_fit_in_memory_is_refused_before_allocating(monkeypatch) -> None:
    monkeypatch.setattr(train_mod, "physical_memory", lambda: 10**6)
    with pytest.raises(ConfigError, match=r"batch 200, seq-len 25 need about .* this machine has 1.0 MB"):
        Trainer(TrainConfig(batch=200, hidden=16), "abcdefgh" * 1000)
    Trainer(TrainConfig(batch=1, hidden=16), "abcdefgh" * 1000)  # about 50 kB: fits


@pytest.mark.parametrize(
    "args", [["--hidden", "1000000"], ["--layers", "10000000"], ["--hidden", "30000", "--layers", "1000"]]
)
def test_huge_sizes_are_one_line_exit_2(tmp_path, args) -> None:
    one_line_error(
        cli("train", *args, cwd=tmp_path), r"need about .* for one training step.* this machine has"
    )
    assert list(tmp_path.iterdir()) == []


def test_physical_memory_is_the_machines() -> None:
    if not hasattr(os, "sysconf"):
        assert validate.physical_memory() == validate.FALLBACK_MEMORY
        return
    assert validate.physical_memory() == os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert validate.show_bytes(80e9) == "80.0 GB" and validate.show_bytes(512) == "512 B"


# --- sampling at tiny temperatures -----------------------------------------------------------
@pytest.mark.parametrize("temperature", [1e-310, 5e-324, 1e-200, 1e-30])
def test_tiny_temperatures_are_greedy(temperature) -> None:
    model = CharRNN(6, 8, rng=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning, no NaN
        ids = model.sample([1, 2], 30, temperature=temperature, rng=0)
    assert ids == model.sample([1, 2], 30, temperature=0)


def test_sample_temperature_1e_310_on_the_command_line(good, tmp_path) -> None:
    path = tmp_path / "m.npz"
    path.write_bytes(good.read_bytes())
    tiny = cli("sample", "--model", "m.npz", "-n", "40", "--temperature", "1e-310", cwd=tmp_path)
    greedy = cli("sample", "--model", "m.npz", "-n", "40", "--temperature", "0", cwd=tmp_path)
    assert tiny.returncode == 0, tiny.stderr
    assert tiny.stdout == greedy.stdout and len(tiny.stdout.strip()) == 41
    one_line_error(
        cli("sample", "--model", "m.npz", "--temperature", "-1e-310", cwd=tmp_path), "--temperature"
    )


# --- bench options ---------------------------------------------------------------------------
BENCH = [
    (["--steps", "0"], "--steps: must be a positive integer, got '0'"),
    (["--steps", "-1"], "--steps: must be a positive integer, got '-1'"),
    (["--rounds", "0"], "--rounds: must be a positive integer"),
    (["--matmul-n", "0"], "--matmul-n: must be a positive integer"),
    (["--warmup", "-1"], "--warmup: must be an integer >= 0"),
    (["--memory-steps", "0"], "--memory-steps: must be a positive integer"),
    (["--threads", "two"], "--threads: must be a positive integer, got 'two'"),
]


@pytest.mark.parametrize("args,message", BENCH, ids=[" ".join(a) for a, _ in BENCH])
def test_bench_numbers_are_checked(tmp_path, args, message) -> None:
    one_line_error(cli("bench", *args, cwd=tmp_path), message)


# --- a byte-order mark -----------------------------------------------------------------------
def test_a_byte_order_mark_is_not_a_character(tmp_path) -> None:
    (tmp_path / "plain.txt").write_text(TEXT, encoding="utf-8")
    (tmp_path / "bom.txt").write_text(TEXT, encoding="utf-8-sig")
    assert (tmp_path / "bom.txt").read_bytes()[:3] == b"\xef\xbb\xbf"
    assert read_text(tmp_path / "bom.txt") == TEXT
    inner = "ab\ufeffab " * 10  # not at the start: a character of the text (ZWNBSP), kept
    (tmp_path / "inner.txt").write_text(inner, encoding="utf-8")
    assert read_text(tmp_path / "inner.txt") == inner
    runs = {}
    for name in ("plain", "bom"):
        sizes = "--steps 3 --hidden 4 --seq-len 4".split()
        r = cli("train", "--text", f"{name}.txt", *sizes, "--out", f"{name}.npz", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        runs[name] = ckpt_io.load(tmp_path / f"{name}.npz")
    assert runs["bom"].vocab == runs["plain"].vocab == CharVocab(TEXT)
    assert runs["bom"].config["text_sha256"] == runs["plain"].config["text_sha256"]
    for k, a in runs["plain"].params.items():
        np.testing.assert_array_equal(runs["bom"].params[k], a)
