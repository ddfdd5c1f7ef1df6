"""The practitioner's run (issue 15): validation, dropout, schedules, init, bad values, small things."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinygrad_rnn.checkpoint import CheckpointError, load
from tinygrad_rnn.data import default_text
from tinygrad_rnn.layers import CharRNN
from tinygrad_rnn.optim import Adagrad, clip_grad_value_
from tinygrad_rnn.runlog import read_log
from tinygrad_rnn.train import ConfigError, TrainConfig, Trainer, best_path, split_text

OUT_AND_LOG = ("--out", "m.npz", "--log", "m.csv")
TEXT = "the quick brown fox jumps over the lazy dog; pack my box with five dozen liquor jugs. " * 6


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tinygrad_rnn", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def _params_equal(a: Trainer, b: Trainer) -> None:
    for (name, x), (_, y) in zip(a.model.named_parameters(), b.model.named_parameters()):
        np.testing.assert_array_equal(x.data, y.data, err_msg=name)


# --- validation -------------------------------------------------------------------------------
def test_the_split_holds_out_the_last_fraction() -> None:
    train, held = split_text("abcdefghij", 0.3)
    assert (train, held) == ("abcdefg", "hij")
    assert split_text("abcdefghij", 0.0) == ("abcdefghij", "")
    trainer = Trainer(TrainConfig(seq_len=5, hidden=4, val_frac=0.25), TEXT)
    assert trainer.val_ids is not None and len(trainer.val_ids) == int(0.25 * len(TEXT))
    assert trainer.vocab.decode(trainer.val_ids) == TEXT[len(TEXT) - int(0.25 * len(TEXT)) :]
    assert Trainer(TrainConfig(seq_len=5, hidden=4), TEXT).val_ids is None  # the verse's default


def test_validation_loss_of_a_run_equals_eval_on_the_held_out_text(tmp_path) -> None:
    (tmp_path / "t.txt").write_text(TEXT, encoding="utf-8")
    opts = ("--hidden", "16", "--seq-len", "10", "--steps", "40", "--sample-every", "0", "--eval-every", "10")
    r = cli(
        "train",
        "--text",
        "t.txt",
        "--val-frac",
        "0.2",
        *opts,
        *OUT_AND_LOG,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    held = TEXT[len(TEXT) - int(0.2 * len(TEXT)) :]
    (tmp_path / "held.txt").write_text(held, encoding="utf-8")
    with open(tmp_path / "m.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    vals = {int(row["step"]): float(row["val_nats_per_char"]) for row in rows if row["val_nats_per_char"]}
    assert sorted(vals) == [0, 10, 20, 30, 39]  # every 10 steps and at the end
    e = cli("eval", "--model", "m.npz", "--text", "held.txt", "--json", cwd=tmp_path)
    assert e.returncode == 0, e.stderr
    got = json.loads(e.stdout)
    assert got["nats_per_char"] == pytest.approx(vals[39], rel=1e-12) and got["chars"] == len(held) - 1
    assert f"validation {vals[39]:.4f} nats/char ({vals[39] / math.log(2):.4f} bits/char)" in r.stdout
    best = cli("eval", "--model", "m.best.npz", "--text", "held.txt", "--json", cwd=tmp_path)
    assert json.loads(best.stdout)["nats_per_char"] == pytest.approx(min(vals.values()), rel=1e-12)
    assert load(tmp_path / "m.npz").extra["best_val_loss"] == pytest.approx(min(vals.values()), rel=1e-12)
    assert best_path("dir/m.npz") == "dir/m.best.npz" and best_path("m") == "m.best.npz"


def test_losses_are_per_character_and_the_plot_continues_after_resume(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    (tmp_path / "t.txt").write_text(TEXT, encoding="utf-8")
    opts = ("--text", "t.txt", "--hidden", "8", "--seq-len", "10", "--sample-every", "10")
    r = cli("train", *opts, "--steps", "20", "--out", "m.npz", "--log", "m.csv", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    rows = read_log(str(tmp_path / "m.csv"))
    step0 = rows[0]
    assert f"--- step 0, loss {step0[1]:.4f} nats/char ({step0[1] / math.log(2):.4f} bits/char)" in r.stdout
    ck = load(tmp_path / "m.npz")
    assert ck.extra["smooth_loss"] == pytest.approx(
        rows[-1][2] * 10, rel=1e-12
    )  # the notebook's: a chunk's sum
    assert r.stdout.split("\n")[1].startswith("model: ") and " parameters, init notebook" in r.stdout
    r = cli("train", "--resume", "m.npz", "--steps", "15", "--log", "m.csv", "--plot", "m.png", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    rows = read_log(str(tmp_path / "m.csv"))
    assert [row[0] for row in rows] == list(range(35))  # what the plot draws: the whole run
    assert (tmp_path / "m.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "done: step 35, smoothed loss" in r.stdout and "nats/char" in r.stdout


# --- dropout -----------------------------------------------------------------------------------
def test_dropout_zero_is_the_run_without_dropout_bit_for_bit() -> None:
    """A default Trainer is the plain loop: CharRNN, loss, clip at 5, the seed's Adagrad, and the
    run's generator draws nothing but the weights (dropout 0 makes no draws)."""
    text = default_text()
    trainer = Trainer(TrainConfig(dropout=0.0), text)
    g = np.random.default_rng(0)
    vocab = trainer.vocab
    model = CharRNN(len(vocab), 64, fused=True, rng=g)
    opt = Adagrad(model.parameters(), lr=0.1)
    ids, h = vocab.encode(text), None
    for i in range(30):
        trainer.step()
        loss, h = model.loss(ids[i * 25 : i * 25 + 25], ids[i * 25 + 1 : i * 25 + 26], h)
        opt.zero_grad()
        loss.backward()
        clip_grad_value_(model.parameters(), 5.0)
        opt.step()
    for (name, a), b in zip(trainer.model.named_parameters(), model.parameters()):
        np.testing.assert_array_equal(a.data, b.data, err_msg=name)
    assert trainer.rng.bit_generator.state == g.bit_generator.state
    assert not hasattr(trainer.model, "drop")


def test_dropout_acts_in_training_only_with_the_inverted_scale() -> None:
    m = CharRNN(7, 6, cell="lstm", dropout=0.5, rng=1)
    plain = CharRNN(7, 6, cell="lstm", rng=1)
    plain.load_state_dict(m.state_dict())
    ids = np.array([[1], [2], [3], [4]])
    train_logits, _ = m(ids)
    hs, _ = plain.hidden_states(ids)
    logits = train_logits.data - plain.head.bias.data
    dropped = np.linalg.lstsq(plain.head.weight.data, logits.reshape(-1, 7).T, rcond=None)[0].T
    ratio = dropped / hs.data.reshape(-1, 6)
    assert np.allclose(np.sort(np.unique(np.round(ratio, 8))), [0.0, 2.0])  # zeroed or scaled by 1/(1-p)
    m.eval()
    np.testing.assert_array_equal(m(ids)[0].data, plain(ids)[0].data)


def test_dropout_with_resume_is_bit_exact(tmp_path) -> None:
    config = TrainConfig(cell="lstm", layers=2, hidden=10, seq_len=8, batch=2, dropout=0.3, val_frac=0.2)
    one = Trainer(config, TEXT)
    for _ in range(24):
        one.step()
    first = Trainer(config, TEXT, out=str(tmp_path / "a.npz"))
    for _ in range(10):
        first.step()
    first.save()
    ck = load(tmp_path / "a.npz")
    second = Trainer(config, TEXT, vocab=ck.vocab)
    assert second.restore(ck, "a.npz")
    for _ in range(14):
        second.step()
    _params_equal(one, second)
    assert one.sample("t", 40) == second.sample("t", 40)


def test_dropout_resume_through_the_command_line_is_bit_exact(tmp_path) -> None:
    (tmp_path / "t.txt").write_text(TEXT, encoding="utf-8")
    opts = ("--text", "t.txt", "--cell", "gru", "--hidden", "8", "--seq-len", "6", "--dropout", "0.4")
    opts += ("--sample-every", "5")
    one = cli("train", *opts, "--steps", "16", "--out", "one.npz", cwd=tmp_path)
    first = cli("train", *opts, "--steps", "7", "--out", "two.npz", cwd=tmp_path)
    second = cli("train", "--resume", "two.npz", "--sample-every", "5", "--steps", "9", cwd=tmp_path)
    for r in (one, first, second):
        assert r.returncode == 0, r.stderr
    a, b = load(tmp_path / "one.npz"), load(tmp_path / "two.npz")
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k], err_msg=k)
    assert a.rng == b.rng and b.config["dropout"] == 0.4
    assert one.stdout.split("\n")[-2] == second.stdout.split("\n")[-2]  # the recital


# --- schedules ---------------------------------------------------------------------------------
SCHEDULES = [
    ({"schedule": "step", "lr_decay": 0.5, "lr_decay_every": 4}, "StepLR", {"step_size": 4, "gamma": 0.5}),
    ({"schedule": "exp", "lr_decay": 0.9}, "ExponentialLR", {"gamma": 0.9}),
    ({"schedule": "cosine", "lr_decay_every": 7}, "CosineAnnealingLR", {"T_max": 7}),
]


@pytest.mark.parametrize("options,name,torch_options", SCHEDULES, ids=["step", "exp", "cosine"])
def test_schedules_match_torch_step_by_step(torch, options, name, torch_options) -> None:
    trainer = Trainer(TrainConfig(hidden=4, seq_len=5, **options), TEXT)
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    sched = getattr(torch.optim.lr_scheduler, name)(opt, **torch_options)
    for _ in range(20):
        assert trainer.opt.param_groups[0]["lr"] == pytest.approx(
            opt.param_groups[0]["lr"], rel=1e-12, abs=1e-15
        )
        trainer.step()
        opt.step()
        sched.step()


def test_a_step_schedule_by_its_formula_and_resume_continues_it() -> None:
    config = TrainConfig(hidden=4, seq_len=5, lr_decay=0.5, lr_decay_every=3, schedule="step")
    one = Trainer(config, TEXT)
    lrs = []
    for _ in range(10):
        lrs.append(one.opt.param_groups[0]["lr"])
        one.step()
    assert lrs == [0.1 * 0.5 ** (k // 3) for k in range(10)]
    first = Trainer(config, TEXT)
    for _ in range(4):
        first.step()
    ck = first.checkpoint()
    second = Trainer(config, TEXT, vocab=ck.vocab)
    second.restore(ck, "x.npz")
    for _ in range(6):
        second.step()
    _params_equal(one, second)
    assert second.opt.param_groups[0]["lr"] == one.opt.param_groups[0]["lr"] == 0.1 * 0.5**3


def test_resume_may_change_the_lr_and_schedule_but_not_the_model(tmp_path) -> None:
    r = cli("train", "--hidden", "8", "--steps", "5", "--sample-every", "0", "--out", "m.npz", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = cli(
        "train", "--resume", "m.npz", "--lr", "0.05", "--lr-decay", "0.5", "--lr-decay-every", "2",
        "--steps", "4", "--sample-every", "0", cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "note: fine-tuning: --lr 0.1 -> 0.05, --schedule none -> step, --lr-decay 1.0 -> 0.5" in r.stderr
    ck = load(tmp_path / "m.npz")
    assert (ck.config["lr"], ck.config["schedule"], ck.step) == (0.05, "step", 9)
    assert ck.extra["scheduler"]["last_epoch"] == 4
    assert ck.optimizer is not None
    bad = cli("train", "--resume", "m.npz", "--hidden", "9", "--steps", "1", cwd=tmp_path)
    assert bad.returncode == 2 and "--hidden 9 differs from the checkpoint's 8" in bad.stderr


# --- initialisation ----------------------------------------------------------------------------
def test_init_per_cell_is_recorded_and_old_checkpoints_are_the_notebooks() -> None:
    assert TrainConfig().init == "notebook"
    assert TrainConfig(cell="lstm").init == TrainConfig(cell="gru").init == "pytorch"
    assert TrainConfig(cell="lstm", init="notebook").init == "notebook"
    trainer = Trainer(TrainConfig(cell="lstm", hidden=16, seq_len=5), TEXT)
    bound = 1 / 4
    for name, p in trainer.model.named_parameters():
        if name.startswith("rnn."):
            assert np.abs(p.data).max() <= bound and np.abs(p.data).max() > 0.9 * bound, name
            if p.ndim == 2:  # U(-b, b) has std b / sqrt(3)
                assert p.data.std() == pytest.approx(bound / math.sqrt(3), rel=0.1), name
    assert trainer.model.embed.weight.data.std() == pytest.approx(0.01, rel=0.1)  # the notebook's
    ck = trainer.checkpoint()
    assert ck.config["init"] == "pytorch"
    del ck.config["init"]
    assert TrainConfig.from_checkpoint(ck, "old.npz").init == "notebook"
    ck.config["init"] = "xavier"
    with pytest.raises(CheckpointError, match="unknown init 'xavier'"):
        TrainConfig.from_checkpoint(ck, "bad.npz")


# --- bad values --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "change,message",
    [
        ({"val_frac": 1.0}, r"val_frac must be a number in \[0, 1\), got 1.0"),
        ({"dropout": 1.0}, r"dropout must be a number in \[0, 1\), got 1.0"),
        ({"lr_decay": -0.5}, r"lr_decay must be a number in \(0, 1\], got -0.5"),
        ({"lr_decay_every": 0}, "lr_decay_every must be an integer >= 1"),
        ({"schedule": "cyclic"}, "unknown schedule 'cyclic'"),
    ],
)
def test_bad_settings_are_config_errors(change, message) -> None:
    with pytest.raises(ConfigError, match=message):
        dataclasses.replace(TrainConfig(), **change)


BAD = [
    (["--val-frac", "1"], r"val_frac must be a number in \[0, 1\)"),
    (
        ["--val-frac", "0.05"],
        r"the held-out part \(--val-frac 0.05\) has \d+ characters, fewer than seq-len \+ 1",
    ),
    (["--dropout", "1"], r"dropout must be a number in \[0, 1\)"),
    (["--lr-decay", "-0.5"], r"lr_decay must be a number in \(0, 1\]"),
    (["--eval-every", "-1"], "--eval-every: must be an integer >= 0"),
]


@pytest.mark.parametrize("args,message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_values_exit_2_with_one_line(tmp_path, args, message) -> None:
    (tmp_path / "t.txt").write_text(TEXT[:300], encoding="utf-8")
    r = cli("train", "--text", "t.txt", "--seq-len", "20", "--steps", "1", *args, cwd=tmp_path)
    lines = r.stderr.strip().split("\n")
    assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert __import__("re").search(message, lines[0]), lines[0]


# --- small things ------------------------------------------------------------------------------
def test_sample_top_k_and_prime_file(tmp_path) -> None:
    r = cli("train", "--hidden", "16", "--steps", "30", "--sample-every", "0", "--out", "m.npz", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    greedy = cli(
        "sample", "--model", "m.npz", "--prime", "Hope", "-n", "40", "--temperature", "0", cwd=tmp_path
    )
    top1 = cli("sample", "--model", "m.npz", "--prime", "Hope", "-n", "40", "--top-k", "1", cwd=tmp_path)
    assert greedy.returncode == top1.returncode == 0 and greedy.stdout == top1.stdout  # k=1: the most likely
    (tmp_path / "p.txt").write_text("Hope is", encoding="utf-8")
    f = cli("sample", "--model", "m.npz", "--prime-file", "p.txt", "-n", "20", "--seed", "2", cwd=tmp_path)
    s = cli("sample", "--model", "m.npz", "--prime", "Hope is", "-n", "20", "--seed", "2", cwd=tmp_path)
    assert f.returncode == 0 and f.stdout == s.stdout and f.stdout.startswith("Hope is")


def test_top_k_draws_only_among_the_k_most_likely() -> None:
    m = CharRNN(9, 6, rng=0)
    g = np.random.default_rng(5)
    for p in m.parameters():
        p.data = g.normal(0, 1.0, p.shape)
    ids = m.sample([1], 60, top_k=2, rng=0)
    logits, h = m(np.array([[1]]))
    for nxt in ids:  # replay: every id drawn was one of the two most likely at its step
        assert nxt in np.argsort(logits.data[-1, 0])[-2:]
        logits, h = m(np.array([[nxt]]), h)
    with pytest.raises(ValueError, match="top_k must be an integer >= 1"):
        m.sample([1], 3, top_k=0)


# --- the README's run: an English text installed with Python ----------------------------------
def english_text() -> Path:
    """Python's own LICENSE.txt (lib/pythonX.Y/ on POSIX, the prefix on Windows), else the GPL-3
    text of Debian's base-files; the test skips when neither is installed."""
    base = Path(sys.base_prefix)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for path in (
        base / "lib" / version / "LICENSE.txt",
        base / "LICENSE.txt",
        Path("/usr/share/common-licenses/GPL-3"),
    ):
        if path.is_file() and path.stat().st_size > 5000:
            return path
    pytest.skip("no English text installed with Python or the system")


def test_a_short_readme_run_learns_and_evaluates_on_another_text(tmp_path) -> None:
    """The README's run, shortened: a 2-layer LSTM with dropout on a license text; the held-out
    loss falls well below the uniform guess, and eval reads another text (unknowns skipped)."""
    text = english_text()
    opts = ("--cell", "lstm", "--layers", "2", "--hidden", "32", "--dropout", "0.2", "--seq-len", "25")
    opts += ("--batch", "8", "--optim", "adam", "--lr", "0.01", "--steps", "40", "--sample-every", "0")
    r = cli(
        "train",
        "--text",
        str(text),
        *opts,
        "--eval-every",
        "39",
        *OUT_AND_LOG,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    vals = [row[3] for row in read_log(str(tmp_path / "m.csv")) if row[3] is not None]
    vocab = len(load(tmp_path / "m.npz").vocab)
    assert vals[0] == pytest.approx(math.log(vocab), abs=0.05)  # the start: about uniform
    assert vals[-1] < vals[0] - 0.3  # learning: 4.31 -> 3.82 nats/char measured on LICENSE.txt
    other = tmp_path / "other.txt"
    other.write_text(
        "Permission is granted to anyone to use this software, free of charge.\n", encoding="utf-8"
    )
    e = cli("eval", "--model", "m.npz", "--text", str(other), "--json", "--skip-unknown", cwd=tmp_path)
    assert e.returncode == 0, e.stderr
    assert 0 < json.loads(e.stdout)["bits_per_char"] < math.log2(vocab)


def test_a_schedule_resumes_bit_exact_through_the_checkpoint_file(tmp_path) -> None:
    opts = ("--hidden", "8", "--seq-len", "6", "--sample-every", "0", "--schedule", "cosine")
    opts += ("--lr-decay-every", "7", "--optim", "adam")
    one = cli("train", *opts, "--steps", "10", "--out", "one.npz", cwd=tmp_path)
    first = cli("train", *opts, "--steps", "4", "--out", "two.npz", cwd=tmp_path)
    second = cli("train", "--resume", "two.npz", "--steps", "6", "--sample-every", "0", cwd=tmp_path)
    for r in (one, first, second):
        assert r.returncode == 0, r.stderr
    assert "note" not in second.stderr  # nothing changed
    a, b = load(tmp_path / "one.npz"), load(tmp_path / "two.npz")
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k], err_msg=k)
    assert a.extra["scheduler"] == b.extra["scheduler"] and a.extra["scheduler"]["last_epoch"] == 10
