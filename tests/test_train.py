"""The training program: TrainConfig (options, checkpoint meta) and Trainer (one step, resume)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tinygrad_rnn.checkpoint import CheckpointError
from tinygrad_rnn.cli import build_parser
from tinygrad_rnn.data import VERSE, DataError, default_text
from tinygrad_rnn.reference import bptt
from tinygrad_rnn.train import ConfigError, TrainConfig, Trainer, TrainingDiverged


def _args(*argv: str):
    return build_parser().parse_args(["train", *argv])


def test_defaults_are_the_notebooks_run() -> None:
    c = TrainConfig()
    assert (c.text, c.hidden, c.cell, c.layers, c.seq_len, c.batch) == (None, 64, "rnn", 1, 25, 1)
    assert (c.optim, c.lr, c.clip, c.seed, c.dtype, c.fused) == ("adagrad", 0.1, 5.0, 0, "float64", True)
    assert TrainConfig.from_args(_args()) == c


def test_from_args_fills_the_optimizers_learning_rate_and_the_cells_fused() -> None:
    c = TrainConfig.from_args(_args("--optim", "sgd", "--hidden", "8", "--text", "t.txt"))
    assert (c.optim, c.lr, c.hidden, c.text) == ("sgd", 0.01, 8, "t.txt")
    assert TrainConfig.from_args(_args("--cell", "lstm", "--layers", "2")).fused is True  # every cell
    assert TrainConfig.from_args(_args("--cell", "gru", "--no-fused")).fused is False
    assert TrainConfig.from_args(_args("--no-fused")).fused is False


def test_resumed_options_come_from_the_checkpoint() -> None:
    saved = TrainConfig(hidden=16, optim="adam", lr=0.003, fused=False, text="/a/t.txt")
    assert TrainConfig.from_args(_args(), resumed=saved) == saved
    assert TrainConfig.from_args(_args("--hidden", "16"), resumed=saved) == saved  # the same: fine
    assert TrainConfig.from_args(_args("--text", "u.txt"), resumed=saved).text == "u.txt"
    assert TrainConfig.from_args(_args("--fused"), resumed=saved).fused is True
    with pytest.raises(ConfigError, match="--seq-len 5 differs from the checkpoint's 25"):
        TrainConfig.from_args(_args("--seq-len", "5"), resumed=saved)


@pytest.mark.parametrize(
    "change,message",
    [
        ({"hidden": 0}, "hidden must be an integer >= 1, got 0"),
        ({"batch": True}, "batch must be an integer >= 1, got True"),
        ({"seed": -1}, "seed must be an integer >= 0"),
        ({"cell": "tree"}, "unknown cell 'tree'"),
        ({"dtype": "float16"}, "unknown dtype 'float16'"),
        ({"lr": float("inf")}, "lr must be a positive number"),
        ({"clip": -1.0}, "clip must be a number >= 0"),
    ],
)
def test_out_of_range_settings_are_config_errors(change, message) -> None:
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**change)


def test_meta_round_trip_and_typed_errors() -> None:
    config = TrainConfig(hidden=8, seq_len=5, cell="gru", layers=2, optim="rmsprop", lr=0.002)
    ck = Trainer(config, VERSE).checkpoint()
    assert TrainConfig.from_checkpoint(ck, "x.npz") == config
    assert ck.config["hidden_size"] == 8 and ck.config["vocab_size"] == len(set(VERSE))
    legacy = dataclasses.replace(ck, config={k: v for k, v in ck.config.items() if k != "fused"})
    assert TrainConfig.from_checkpoint(legacy, "x.npz").fused is False  # a gru then had no fused op
    for key, value, message in [
        ("seq_len", "5", r"invalid checkpoint x.npz: 'seq_len' must be an integer, got '5'"),
        ("lr", True, "'lr' must be a number, got True"),
        ("cell", ["gru"], "'cell' must be a string"),
        ("text", 3, "'text' must be a string or null"),
        ("seq_len", 0, "invalid checkpoint x.npz: seq_len must be an integer >= 1, got 0"),
        ("dtype", "float16", "unknown dtype 'float16'"),
    ]:
        bad = dataclasses.replace(ck, config={**ck.config, key: value})
        with pytest.raises(CheckpointError, match=message):
            TrainConfig.from_checkpoint(bad, "x.npz")
    missing = dataclasses.replace(ck, config={k: v for k, v in ck.config.items() if k != "optim"})
    with pytest.raises(CheckpointError, match="the config has no 'optim'"):
        TrainConfig.from_checkpoint(missing, "x.npz")


@pytest.mark.parametrize("fused", [True, False])
def test_a_step_is_the_seeds_bptt_clip_and_adagrad(fused: bool) -> None:
    """Independent of the engine: reference.bptt on the first chunk, np.clip at 5, the seed's Adagrad."""
    trainer = Trainer(TrainConfig(fused=fused), default_text())
    p = trainer.model.seed_params()
    ids = trainer.vocab.encode(default_text())
    loss, grads, h = bptt(p, list(ids[:25]), list(ids[1:26]), np.zeros((64, 1)))
    assert trainer.step() == pytest.approx(loss, rel=1e-12)
    after = trainer.model.seed_params()
    for k, g in grads.items():
        g = np.clip(g, -5, 5)
        np.testing.assert_allclose(after[k], p[k] - 0.1 * g / np.sqrt(g * g + 1e-8), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(trainer.hidden.numpy(), h.T, atol=1e-14)
    assert trainer.steps_done == 1 and trainer.batches.position == 25


def test_checkpoint_and_restore_continue_bit_for_bit() -> None:
    config = TrainConfig(hidden=12, seq_len=7, batch=2, optim="adam", lr=0.01, dtype="float32")
    text = "the quick brown fox jumps over the lazy dog. " * 3  # wraps around: the state resets
    one = Trainer(config, text)
    for _ in range(15):
        one.step()
    first = Trainer(config, text)
    for _ in range(6):
        first.step()
    ck = first.checkpoint()
    second = Trainer(config, text, vocab=ck.vocab)
    assert second.restore(ck, "ck.npz") is True
    for _ in range(9):
        second.step()
    for (name, a), (_, b) in zip(one.model.named_parameters(), second.model.named_parameters()):
        np.testing.assert_array_equal(a.data, b.data, err_msg=name)
    assert one.sample("t", 30) == second.sample("t", 30)
    other = Trainer(config, text[::-1], vocab=ck.vocab)  # the same characters, another text
    assert other.restore(ck, "ck.npz") is False and other.batches.position == 0  # read from its start
    with pytest.raises(DataError, match="not in the checkpoint's vocabulary: '!'"):
        Trainer(config, text + "!", vocab=ck.vocab)


def test_a_nan_loss_stops_before_the_update() -> None:
    trainer = Trainer(TrainConfig(hidden=4, seq_len=5), VERSE, out="where.npz")
    trainer.model.parameters()[0].data[:] = np.nan
    with pytest.raises(TrainingDiverged, match=r"the loss became nan at step 0; training stopped"):
        trainer.step()
    assert trainer.steps_done == 0


def test_the_cli_resumes_an_unfused_run_unfused(tmp_path, monkeypatch, capsys) -> None:
    from tinygrad_rnn import cli

    monkeypatch.chdir(tmp_path)
    small = ["--hidden", "4", "--seq-len", "4", "--sample-every", "0"]
    assert cli.main(["train", "--steps", "2", *small, "--no-fused", "--out", "a.npz"]) == 0
    assert cli.main(["train", "--resume", "a.npz", "--steps", "1", "--sample-every", "0"]) == 0
    header = capsys.readouterr().out.split("\n")
    resumed = next(line for line in header if line.startswith("resuming at step 2"))
    assert resumed.endswith("float64, autograd")
