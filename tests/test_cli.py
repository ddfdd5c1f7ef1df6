"""The command line, run for real: `python -m tinygrad_rnn ...` in a subprocess."""

from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tinygrad_rnn.checkpoint import load
from tinygrad_rnn.data import VERSE
from tinygrad_rnn.runlog import LOG_COLUMNS

# what the seed notebook printed (a single chunk's loss) at these steps, same data position
SEED_LOSS = {2000: 0.3242, 3000: 0.1763}


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tinygrad_rnn", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )


def samples(stdout: str) -> dict[int, str]:
    """step -> the sample printed after '--- step N, ...'."""
    return {int(m[1]): m[2] for m in re.finditer(r"^--- step (\d+), [^\n]*\n([^\n]*)$", stdout, re.M)}


def recital(stdout: str) -> str:
    return stdout.rstrip("\n").split("\n")[-1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """`tinygrad-rnn train` with no options but where to write: the seed's full run."""
    d = tmp_path_factory.mktemp("default")
    r = cli("train", "--out", "hope.npz", "--log", "log.csv", cwd=d)
    assert r.returncode == 0, r.stderr
    return d, r


def test_default_training_beats_the_seed_and_recites_the_verse(trained) -> None:
    """The seed's run, seed 0: below the seed's printed loss at the same steps (same chunk).

    Training is chaotic: a change in floating-point rounding (an engine or BLAS change) moves
    the curve as a new seed would, and across seeds the loss at step 3000 spreads around the
    seed's 0.1763 (0.13-0.29 for seeds 0-5). The end state is robust: smoothed loss < 0.1
    and a recital of the verse.
    """
    d, r = trained
    assert "hidden 64, seq-len 25, batch 1, adagrad lr 0.1, clip 5.0, seed 0" in r.stdout
    with open(d / "log.csv") as f:
        rows = {int(row["step"]): row for row in csv.DictReader(f)}
    assert len(rows) == 10000
    for step, seed_loss in SEED_LOSS.items():
        assert float(rows[step]["nats_per_char"]) * 25 < seed_loss  # the seed printed a chunk's sum
    assert float(rows[9999]["smooth_chunk_loss"]) < 0.1
    assert sorted(samples(r.stdout)) == list(range(0, 10000, 1000))
    final = recital(r.stdout)
    assert len(final) == 201 and final.startswith("H") and VERSE in final
    ck = load(d / "hope.npz")
    assert ck.step == 10000 and len(ck.vocab) == 22 and ck.config["hidden_size"] == 64


def test_sample_from_the_trained_model(trained) -> None:
    d, _ = trained
    r = cli("sample", "--model", "hope.npz", "--prime", "Hope is", "-n", "120", "--seed", "3", cwd=d)
    assert r.returncode == 0, r.stderr
    out = r.stdout.rstrip("\n")
    assert out.startswith("Hope is") and len(out) == len("Hope is") + 120
    assert (
        cli("sample", "--model", "hope.npz", "--prime", "Hope is", "-n", "120", "--seed", "3", cwd=d).stdout
        == r.stdout
    )
    greedy = cli("sample", "--model", "hope.npz", "-n", "150", "--temperature", "0", cwd=d)
    assert greedy.returncode == 0 and VERSE in greedy.stdout


def _compare_checkpoints(a: Path, b: Path) -> None:
    x, y = load(a), load(b)
    assert x.step == y.step and x.position == y.position and x.extra["smooth_loss"] == y.extra["smooth_loss"]
    assert x.params.keys() == y.params.keys()
    for k in x.params:
        np.testing.assert_array_equal(x.params[k], y.params[k])  # bit for bit
    assert (x.hidden is None) == (y.hidden is None)
    if x.hidden is not None:
        np.testing.assert_array_equal(x.hidden, y.hidden)
    assert x.rng == y.rng
    assert x.optimizer is not None and y.optimizer is not None
    for i, state in x.optimizer["state"].items():
        for k, v in state.items():
            np.testing.assert_array_equal(v, y.optimizer["state"][i][k])


def test_resume_2000_plus_2000_is_4000_in_one_go(tmp_path) -> None:
    common = ("--steps", "2000", "--sample-every", "500")
    in_one_go = subprocess.Popen(  # alongside the other two
        [sys.executable, "-m", "tinygrad_rnn", "train", "--steps", "4000", "--sample-every", "500"]
        + ["--out", "one.npz"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    first = cli("train", *common, "--out", "two.npz", cwd=tmp_path)
    second = cli("train", "--resume", "two.npz", *common, cwd=tmp_path)
    out, err = in_one_go.communicate(timeout=300)
    one = subprocess.CompletedProcess(in_one_go.args, in_one_go.returncode, out, err)
    for r in (one, first, second):
        assert r.returncode == 0, r.stderr
    assert "resuming at step 2000" in second.stdout
    _compare_checkpoints(tmp_path / "one.npz", tmp_path / "two.npz")
    s1, s2 = samples(one.stdout), {**samples(first.stdout), **samples(second.stdout)}
    assert sorted(s1) == list(range(0, 4000, 500)) and s1 == s2
    assert recital(one.stdout) == recital(second.stdout)


def test_resume_with_batches_float32_adam_and_autograd(tmp_path) -> None:
    (tmp_path / "t.txt").write_text("the quick brown fox jumps over the lazy dog. " * 12, encoding="utf-8")
    opts = ("--text", "t.txt", "--batch", "3", "--seq-len", "8", "--hidden", "16", "--optim", "adam")
    opts += ("--lr", "0.01", "--dtype", "float32", "--no-fused", "--sample-every", "15", "--clip", "0")
    one = cli("train", *opts, "--steps", "60", "--out", "one.npz", "--log", "one.csv", cwd=tmp_path)
    first = cli("train", *opts, "--steps", "25", "--out", "two.npz", "--log", "two.csv", cwd=tmp_path)
    second = cli(
        "train",
        "--resume",
        "two.npz",
        "--no-fused",
        "--sample-every",
        "15",
        "--steps",
        "35",
        "--log",
        "two.csv",
        cwd=tmp_path,
    )
    for r in (one, first, second):
        assert r.returncode == 0, r.stderr
    _compare_checkpoints(tmp_path / "one.npz", tmp_path / "two.npz")
    x = load(tmp_path / "one.npz")
    assert x.hidden is not None and x.hidden.shape == (3, 16) and x.hidden.dtype == np.float32
    assert x.params["weight_hh"].dtype == np.float32
    s2 = {**samples(first.stdout), **samples(second.stdout)}
    assert samples(one.stdout) == s2 and sorted(s2) == [0, 15, 30, 45]
    with open(tmp_path / "one.csv") as f1, open(tmp_path / "two.csv") as f2:
        a, b = list(csv.reader(f1)), list(csv.reader(f2))
    assert a[0] == LOG_COLUMNS and len(a) == len(b) == 61
    assert [row[:3] for row in a] == [row[:3] for row in b]  # the log is appended on resume


def test_gradcheck_agrees(tmp_path) -> None:
    r = cli("gradcheck", "--hidden", "8", "--seq-len", "6", "--batch", "3", "--seed", "1", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    for name in ("Wxh", "Whh", "Why", "bh", "by"):
        assert re.search(rf"^{name}\s.*yes$", r.stdout, re.M)
    assert "all gradients agree" in r.stdout


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path) -> None:
    assert cli("train", "--steps", "3", "--sample-every", "0", cwd=tmp_path).returncode == 0
    r = cli("train", "--optim", "sgd", "--lr", "1e308", "--steps", "50", "--sample-every", "0", cwd=tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert re.search(
        r"error: the loss became nan at step \d+; training stopped \(tinygrad_rnn.npz is left as it was",
        r.stderr.strip().split("\n")[-1],
    )
    ck = load(tmp_path / "tinygrad_rnn.npz")  # the last good one: loadable, finite
    assert ck.step == 3


def test_kill_during_training_leaves_a_loadable_checkpoint(tmp_path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tinygrad_rnn", "train", "--steps", "1000000", "--save-every", "20"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    path = tmp_path / "tinygrad_rnn.npz"
    try:
        deadline = time.time() + 60
        while time.time() < deadline and not (path.exists() and load(path).step > 0):
            time.sleep(0.05)  # a save is atomic: whenever the file exists, it loads
        proc.send_signal(signal.SIGKILL)  # it saves a checkpoint every 20 steps (--save-every 20)
    finally:
        proc.wait()
    ck = load(path)
    assert ck.step > 0 and ck.step % 20 == 0


# --- bad input: one line on stderr, exit code 2, no traceback ---------------------------
def _bad(r: subprocess.CompletedProcess[str], message: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().split("\n")
    assert len(lines) == 1, r.stderr
    assert re.search(message, lines[0]), lines[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("bad")
    (d / "latin1.txt").write_bytes("un caf\xe9 noir, ".encode("latin-1") * 10)
    (d / "empty.txt").write_text("")
    (d / "short.txt").write_text("abc")
    (d / "other.txt").write_text("xyz! " * 40)
    (d / "ok.txt").write_text("abcab " * 10)
    (d / "adir").mkdir()
    (d / "notnpz.npz").write_text("hello, I am not a checkpoint")
    np.savez(d / "foreign.npz", weights=np.ones(3))
    r = cli(
        "train",
        "--text",
        "ok.txt",
        "--steps",
        "3",
        "--hidden",
        "4",
        "--seq-len",
        "4",
        "--out",
        "good.npz",
        cwd=d,
    )
    assert r.returncode == 0, r.stderr
    data = (d / "good.npz").read_bytes()
    (d / "truncated.npz").write_bytes(data[: len(data) // 2])
    return d


BAD = [
    (["train", "--text", "missing.txt"], "text file not found: missing.txt"),
    (["train", "--text", "adir"], "is a directory"),
    (["train", "--text", "latin1.txt"], "not UTF-8"),
    (["train", "--text", "empty.txt"], "empty"),
    (["train", "--text", "short.txt"], "text too short: 3 characters; seq-len 25 needs at least 26"),
    (["train", "--text", "ok.txt", "--seq-len", "10", "--batch", "6", "--val-frac", "0"], "text too short"),
    (["train", "--steps", "0"], "--steps: must be a positive integer, got '0'"),
    (["train", "--steps", "many"], "--steps: must be a positive integer"),
    (["train", "--hidden", "-3"], "--hidden: must be a positive integer"),
    (["train", "--seq-len", "0"], "--seq-len: must be a positive integer"),
    (["train", "--batch", "0"], "--batch: must be a positive integer"),
    (["train", "--lr", "0"], "--lr: must be a positive number"),
    (["train", "--lr", "-0.1"], "--lr: must be a positive number"),
    (["train", "--lr", "inf"], "--lr: must be a positive number"),
    (["train", "--clip", "-1"], "--clip: must be a number >= 0"),
    (["train", "--optim", "lbfgs"], "--optim: invalid choice: 'lbfgs'"),
    (["train", "--dtype", "float16"], "--dtype: invalid choice"),
    (
        ["train", "--out", "nodir/model.npz"],
        "cannot write checkpoint nodir/model.npz: directory .* does not exist",
    ),
    (["train", "--out", "adir"], "checkpoint adir is a directory"),
    (["train", "--log", "nodir/log.csv"], "cannot write log"),
    (["train", "--resume", "missing.npz"], "checkpoint not found: missing.npz"),
    (["train", "--resume", "notnpz.npz"], "not a checkpoint"),
    (["train", "--resume", "foreign.npz"], "not a tinygrad_rnn checkpoint"),
    (["train", "--resume", "truncated.npz"], "not a checkpoint|corrupted"),
    (["train", "--resume", "adir"], "is a directory"),
    (
        ["train", "--resume", "good.npz", "--text", "other.txt"],
        r"not in the checkpoint's vocabulary: '!', 'x'",
    ),
    (["train", "--resume", "good.npz", "--hidden", "8"], "--hidden 8 differs from the checkpoint's 4"),
    (["train", "--resume", "good.npz", "--optim", "sgd"], "--optim sgd differs"),
    (["sample", "--model", "missing.npz"], "checkpoint not found"),
    (["sample", "--model", "truncated.npz"], "not a checkpoint|corrupted"),
    (["sample", "--model", "good.npz", "--prime", "abz?"], r"not in the model's vocabulary: '\?', 'z'"),
    (["sample", "--model", "good.npz", "--prime", ""], "--prime must not be empty"),
    (["sample", "--model", "good.npz", "-n", "-1"], "-n: must be an integer >= 0"),
    (["sample", "--model", "good.npz", "--temperature", "-1"], "--temperature: must be a number >= 0"),
    (["sample"], "checkpoint not found: tinygrad_rnn.npz"),  # train's default --out
    (["gradcheck", "--hidden", "0"], "--hidden: must be a positive integer"),
    (["eval", "--model", "good.npz", "--text", "ok.txt", "--batch", "0"], "--batch: must be a positive"),
    (["fly"], "invalid choice: 'fly'"),
    ([], "required"),
]


@pytest.mark.parametrize("args,message", BAD, ids=[" ".join(a) or "no-command" for a, _ in BAD])
def test_bad_input_is_one_line_and_exit_code_2(files, args, message) -> None:
    _bad(cli(*args, cwd=files), message)


def test_unreadable_text(files) -> None:
    (files / "plain.txt").write_text("abc" * 20)  # a file where a directory should be: root fails too
    r = cli("train", "--text", "plain.txt/secret.txt", cwd=files)
    _bad(r, "cannot read text file plain.txt/secret.txt")


def test_plot_without_matplotlib_says_so(files, tmp_path) -> None:
    stub = tmp_path / "stub" / "matplotlib"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("raise ImportError('No module named matplotlib')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(stub.parent), os.environ.get("PYTHONPATH", "")])}
    r = cli("train", "--steps", "1", "--plot", "loss.png", cwd=files, env=env)
    _bad(r, r"--plot needs matplotlib.*pip install 'tinygrad-rnn\[plot\]'")


def test_plot_writes_a_png(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    r = cli("train", "--steps", "30", "--sample-every", "0", "--plot", "loss.png", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_hope_example_runs(tmp_path) -> None:
    example = Path(__file__).resolve().parents[1] / "examples" / "hope.py"
    if not example.exists():
        pytest.skip("examples/ is not next to the tests")
    r = subprocess.run([sys.executable, str(example), "1001"], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "step 0, loss" in r.stdout and "step 1000, loss" in r.stdout
    final = r.stdout.rstrip("\n").split("\n")[-1]
    assert final.startswith("H") and len(final) == 201


CLOSED_PIPE = [
    ["gradcheck", "--hidden", "4", "--seq-len", "4"],
    ["gradflow", "--hidden", "4", "--seq-len", "6", "--chunks", "2", "--train-steps", "2", "--text=ok.txt"],
    ["eval", "--model", "good.npz", "--text", "ok.txt"],
    ["sample", "--model", "good.npz", "-n", "20"],
    ["export", "--model", "good.npz", "--out", "piped.safetensors"],
]


@pytest.mark.parametrize("args", CLOSED_PIPE, ids=[a[0] for a in CLOSED_PIPE])
def test_a_closed_stdout_ends_quietly_with_exit_0(files, args) -> None:
    """`tinygrad-rnn ... | head -1`: the reader is gone before the first write (a pipe whose read
    end is closed), so every write fails with EPIPE; no error line, exit code 0."""
    if args[0] == "export":
        pytest.importorskip("safetensors")  # an optional extra: without it export is exit 2
    read, write = os.pipe()
    os.close(read)
    try:
        r = subprocess.run(
            [sys.executable, "-m", "tinygrad_rnn", *args],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            cwd=files,
            timeout=300,
        )
    finally:
        os.close(write)
    assert r.returncode == 0, r.stderr
    assert "Broken pipe" not in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_sample_reads_trains_default_output_without_model(files, tmp_path) -> None:
    (tmp_path / "tinygrad_rnn.npz").write_bytes((files / "good.npz").read_bytes())
    r = cli("sample", "-n", "30", "--seed", "2", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (
        r.stdout
        == cli("sample", "--model", str(files / "good.npz"), "-n", "30", "--seed", "2", cwd=tmp_path).stdout
    )
