"""Issue 14, the command line: reused paths, interrupts, broken pipes, locks, exploding losses.

Every test runs `python -m tinygrad_rnn train` in a subprocess, bounded by a timeout.
"""

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
from test_cli import cli  # the same runner (timeout 300 s)

from tinygrad_rnn import checkpoint as ckpt_io
from tinygrad_rnn.checkpoint import load
from tinygrad_rnn.guard import StopSignals

SMALL = ("--hidden", "16", "--seq-len", "10")  # fast steps
TIMEOUT = 120


def popen(*args: str, cwd: Path, stdout: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tinygrad_rnn", *args],
        cwd=cwd,
        stdout=stdout,  # type: ignore[arg-type]
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(predicate, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def snapshot(d: Path) -> dict[str, tuple[bytes, int] | str]:
    """Every entry of `d`: regular files by bytes and mtime, the others by kind or link target."""
    out: dict[str, tuple[bytes, int] | str] = {}
    for p in d.iterdir():
        if p.is_symlink():
            out[p.name] = "-> " + os.readlink(p)
        elif p.is_file():
            out[p.name] = (p.read_bytes(), p.stat().st_mtime_ns)
        else:
            out[p.name] = "dir" if p.is_dir() else "other"
    return out


def refused(r: subprocess.CompletedProcess[str], message: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.strip().split("\n")
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert re.search(message, lines[0]), lines[0]


def assert_same_state(a: Path, b: Path) -> None:
    x, y = load(a), load(b)
    assert (x.step, x.position) == (y.step, y.position)
    assert x.params.keys() == y.params.keys()
    for k in x.params:
        np.testing.assert_array_equal(x.params[k], y.params[k])  # bit for bit
    np.testing.assert_array_equal(x.hidden, y.hidden)
    assert x.rng == y.rng and x.extra["smooth_loss"] == y.extra["smooth_loss"]


@pytest.fixture(scope="module")
def spot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with a text, a checkpoint, a log, a hard link, a symlink, a FIFO, a directory."""
    d = tmp_path_factory.mktemp("paths")
    (d / "t.txt").write_text("to be or not to be, that is the question. " * 10, encoding="utf-8")
    r = cli("train", "--text", "t.txt", *SMALL, "--steps", "3", "--out", "ck.npz", "--log", "ck.csv", cwd=d)
    assert r.returncode == 0, r.stderr
    os.link(d / "t.txt", d / "hard.txt")
    os.symlink("t.txt", d / "soft.txt")
    os.mkfifo(d / "fifo")
    (d / "adir").mkdir()
    (d / "ck.dat").write_bytes((d / "ck.npz").read_bytes())  # a checkpoint under another extension
    (d / "w.safetensors").write_bytes(b"not read")
    return d


PATHS = [
    (["--text", "t.txt", "--out", "t.txt"], r"--out t.txt and --text t.txt are the same file"),
    (["--text", "t.txt", "--out", "hard.txt"], r"--out hard.txt and --text t.txt are the same file"),
    (["--text", "t.txt", "--log", "soft.txt"], r"--text t.txt and --log soft.txt are the same file"),
    (["--out", "x.npz", "--log", "x.npz"], r"--out x.npz and --log x.npz are the same file"),
    (["--out", "x.npz", "--plot", "./x.npz"], r"--out x.npz and --plot ./x.npz are the same file"),
    (["--resume", "ck.npz", "--log", "ck.npz"], r"the checkpoint ck.npz and --log ck.npz are the same"),
    (["--resume", "ck.npz", "--text", "t.txt", "--out", "t.txt"], r"--out t.txt and --text t.txt"),
    (["--resume", "ck.npz", "--out", "new.npz", "--log", "ck.npz"], r"--log ck.npz and --resume ck.npz"),
    (["--resume", ""], r"--resume must not be empty"),
    (["--out", ""], r"--out must not be empty"),
    (["--text", ""], r"--text must not be empty"),
    (["--log", ""], r"--log must not be empty"),
    (["--plot", ""], r"--plot must not be empty"),
    (["--out", "/dev/null"], r"checkpoint /dev/null is a device, not a regular file"),
    (["--out", "fifo"], r"checkpoint fifo is a FIFO, not a regular file"),
    (["--out", "adir"], r"checkpoint adir is a directory"),
    (["--plot", "loss.xyz"], r"--plot loss.xyz: unsupported format 'xyz'"),
    (["--out", "d.npz", "--log", "ck.npz"], r"--log ck.npz is an existing checkpoint or weights file"),
    (["--out", "d.npz", "--plot", "ck.npz"], r"--plot ck.npz is an existing checkpoint or weights file"),
    (["--out", "d.npz", "--log", "ck.dat"], r"--log ck.dat is an existing checkpoint or weights file"),
    (["--out", "d.npz", "--log", "w.safetensors"], r"--log w.safetensors is an existing checkpoint"),
]


@pytest.mark.parametrize("args,message", PATHS, ids=[" ".join(a) for a, _ in PATHS])
def test_bad_paths_are_refused_and_nothing_changes(spot, args, message) -> None:
    before = snapshot(spot)
    refused(cli("train", *args, "--steps", "2", cwd=spot), message)
    assert snapshot(spot) == before


def test_a_symlinked_out_updates_the_file_it_points_to(tmp_path) -> None:
    (tmp_path / "real.npz").write_bytes(b"")
    os.symlink("real.npz", tmp_path / "link.npz")
    r = cli("train", *SMALL, "--steps", "4", "--out", "link.npz", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert os.readlink(tmp_path / "link.npz") == "real.npz"
    assert load(tmp_path / "real.npz").step == 4
    assert "is not a readable checkpoint; this run replaces it" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.npz", "real.npz"]  # no lock left


def test_a_fresh_run_leaves_an_existing_checkpoint_until_its_first_save(tmp_path) -> None:
    r = cli("train", *SMALL, "--steps", "5", "--out", "old.npz", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    before = snapshot(tmp_path)
    with open(tmp_path / "out.txt", "w") as out:
        proc = popen("train", *SMALL, "--steps", "1000000", "--sample-every", "10", "--out", "old.npz",
                     cwd=tmp_path, stdout=out)  # fmt: skip
        try:
            wait_for(lambda: "--- step 20," in (tmp_path / "out.txt").read_text(), "a sample")
        finally:
            proc.kill()  # no chance to save: what is on disk is what a crash leaves
            _, err = proc.communicate(timeout=TIMEOUT)
    assert (
        "note: old.npz holds a checkpoint at step 5; this run replaces it when it first saves (step 1000)"
        in err
    )
    after = snapshot(tmp_path)
    assert after["old.npz"] == before["old.npz"]


@pytest.mark.parametrize("sig,code,sample_every", [(signal.SIGINT, 130, "7"), (signal.SIGTERM, 143, "0")])
def test_a_signal_saves_and_resume_continues_bit_for_bit(tmp_path, sig, code, sample_every) -> None:
    opts = (*SMALL, "--batch", "2", "--sample-every", sample_every)
    with open(tmp_path / "b.txt", "w") as out:
        proc = popen("train", *opts, "--steps", "1000000", "--save-every", "5", "--out", "b.npz",
                     "--log", "b.csv", cwd=tmp_path, stdout=out)  # fmt: skip
        try:
            wait_for(lambda: (tmp_path / "b.npz").exists(), "the first checkpoint")
            proc.send_signal(sig)
            _, err = proc.communicate(timeout=TIMEOUT)
        finally:
            proc.kill()
    assert proc.returncode == code, err
    stopped = load(tmp_path / "b.npz").step
    name = signal.Signals(sig).name
    assert f"interrupted by {name} after step {stopped}: checkpoint b.npz written at step {stopped}" in err
    assert not (tmp_path / "b.npz.lock").exists()
    a = cli("train", *opts, "--steps", str(stopped + 30), "--out", "a.npz", "--log", "a.csv", cwd=tmp_path)
    assert a.returncode == 0, a.stderr
    b = cli("train", "--resume", "b.npz", "--sample-every", sample_every, "--steps", "30", "--log", "b.csv",
            cwd=tmp_path)  # fmt: skip
    assert b.returncode == 0, b.stderr
    assert_same_state(tmp_path / "a.npz", tmp_path / "b.npz")
    with open(tmp_path / "a.csv") as fa, open(tmp_path / "b.csv") as fb:
        rows_a, rows_b = [r[:3] for r in csv.reader(fa)], [r[:3] for r in csv.reader(fb)]
    assert rows_a == rows_b and len(rows_a) == stopped + 31


def test_a_resumed_log_drops_the_rows_past_the_checkpoint(tmp_path) -> None:
    run = ("train", *SMALL, "--sample-every", "0", "--steps", "10", "--log", "l.csv")
    assert cli(*run, "--out", "c.npz", cwd=tmp_path).returncode == 0
    (tmp_path / "c10.npz").write_bytes((tmp_path / "c.npz").read_bytes())
    assert (
        cli(*run[:-4], "--steps", "10", "--resume", "c.npz", "--log", "l.csv", cwd=tmp_path).returncode == 0
    )
    first = (tmp_path / "l.csv").read_text()
    r = cli(
        "train", "--resume", "c10.npz", "--sample-every", "0", "--steps", "10", "--log", "l.csv", cwd=tmp_path
    )
    assert r.returncode == 0, r.stderr
    with open(tmp_path / "l.csv") as f:
        rows = list(csv.reader(f))
    assert [int(row[0]) for row in rows[1:]] == list(range(20))  # no duplicates: rows 10-19 once
    assert [row[:3] for row in rows] == [row[:3] for row in csv.reader(first.splitlines())]


def test_a_closed_stdout_stops_printing_not_training(tmp_path) -> None:
    proc = popen("train", *SMALL, "--steps", "300", "--sample-every", "1", "--save-every", "1000",
                 "--out", "p.npz", cwd=tmp_path, stdout=subprocess.PIPE)  # fmt: skip
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("training:")
        proc.stdout.close()  # like `train | head -1`
        err = proc.stderr.read() if proc.stderr is not None else ""
        proc.wait(timeout=TIMEOUT)
    finally:
        proc.kill()
    assert proc.returncode == 0 and "Traceback" not in err, err
    assert load(tmp_path / "p.npz").step == 300


def test_an_exploding_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path) -> None:
    assert cli("train", *SMALL, "--steps", "3", "--out", "x.npz", cwd=tmp_path).returncode == 0
    before = snapshot(tmp_path)
    explode = ("--optim", "sgd", "--lr", "1e300", "--clip", "0")
    r = cli("train", *explode, "--steps", "1000", "--save-every", "10", "--out", "x.npz", cwd=tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    last = r.stderr.strip().split("\n")[-1]
    assert re.search(r"error: the loss exploded: above 10x the first step's [\d.]+ for 100 steps", last), last
    assert "x.npz is left as it was" in last
    assert snapshot(tmp_path) == before


def test_unprintable_characters_are_replaced(tmp_path) -> None:
    (tmp_path / "u.txt").write_text("héllo wörld € " * 40, encoding="utf-8")
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    r = cli(
        "train", "--text", "u.txt", *SMALL, "--steps", "20", "--sample-every", "10", cwd=tmp_path, env=env
    )
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert "?" in r.stdout and "done: step 20" in r.stdout


def test_a_second_run_on_the_same_out_is_refused_and_a_stale_lock_taken_over(tmp_path) -> None:
    proc = popen("train", *SMALL, "--steps", "1000000", "--sample-every", "0", "--out", "m.npz",
                 cwd=tmp_path, stdout=subprocess.DEVNULL)  # fmt: skip
    try:
        lock = tmp_path / "m.npz.lock"
        wait_for(lambda: lock.exists() and lock.read_text().strip() == str(proc.pid), "the lock file")
        second = cli("train", *SMALL, "--steps", "2", "--out", "./m.npz", cwd=tmp_path)
        refused(second, rf"another run \(pid {proc.pid}\) is writing .*m.npz \(lock file .*m.npz.lock\)")
    finally:
        proc.terminate()
        proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 143 and not (tmp_path / "m.npz.lock").exists()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])  # its pid is free once waited for
    dead.wait(timeout=TIMEOUT)
    (tmp_path / "m.npz.lock").write_text(f"{dead.pid}\n")
    r = cli("train", "--resume", "m.npz", "--steps", "2", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"note: taking over the stale lock m.npz.lock (process {dead.pid} is gone)" in r.stderr
    assert not (tmp_path / "m.npz.lock").exists()


def test_fused_is_recorded_and_resumed(tmp_path) -> None:
    r = cli("train", *SMALL, "--no-fused", "--steps", "3", "--out", "f.npz", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert load(tmp_path / "f.npz").config["fused"] is False
    again = cli("train", "--resume", "f.npz", "--steps", "2", cwd=tmp_path)
    assert again.returncode == 0 and again.stdout.split("\n")[0].endswith("float64, autograd")


def test_a_checkpoint_without_a_text_digest_gives_no_false_note(tmp_path) -> None:
    assert cli("train", *SMALL, "--steps", "3", "--out", "d.npz", cwd=tmp_path).returncode == 0
    ck = load(tmp_path / "d.npz")
    del ck.config["text_sha256"]
    ckpt_io.save(tmp_path / "d.npz", ck)
    r = cli("train", "--resume", "d.npz", "--steps", "2", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "differs" not in r.stderr and "does not record which text" in r.stderr


def test_an_empty_model_path_is_refused(tmp_path) -> None:
    refused(cli("sample", "--model", "", cwd=tmp_path), "--model must not be empty")


def test_signals_are_caught_only_inside_the_block() -> None:
    before = {s: signal.getsignal(s) for s in StopSignals.SIGNALS}
    with StopSignals() as stop:
        assert all(signal.getsignal(s) != before[s] for s in StopSignals.SIGNALS)
        os.kill(os.getpid(), signal.SIGTERM)
        wait_for(lambda: stop.received is not None, "the handler")
        assert stop.received == signal.SIGTERM
        assert {s: signal.getsignal(s) for s in StopSignals.SIGNALS} == before  # a second one acts
    assert {s: signal.getsignal(s) for s in StopSignals.SIGNALS} == before
    with StopSignals():
        pass
    assert {s: signal.getsignal(s) for s in StopSignals.SIGNALS} == before
