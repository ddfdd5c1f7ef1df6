"""Weights files both frameworks read: `export` writes safetensors under PyTorch's names (read
here with safetensors' numpy API, no torch), `sample` and `train --init-from` read them,
PyTorch's modules load them as they are, and bad files are one line with exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tinygrad_rnn import checkpoint as ckpt_io
from tinygrad_rnn import export
from tinygrad_rnn.data import CharVocab
from tinygrad_rnn.layers import CharRNN
from tinygrad_rnn.train import TrainConfig, Trainer, training_text

st = pytest.importorskip("safetensors.numpy")
TEXT = "Hope is the thing with feathers that perches in the soul. " * 4
MODELS = {
    "seed": dict(cell="rnn", layers=1),
    "rnn-2": dict(cell="rnn", layers=2),
    "lstm-2": dict(cell="lstm", layers=2),
    "gru": dict(cell="gru", layers=1),
}


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tinygrad_rnn", *args], capture_output=True, text=True, timeout=120, cwd=cwd
    )


def _checkpoint(tmp_path: Path, cell: str = "rnn", layers: int = 1, steps: int = 3) -> Path:
    """A checkpoint trained a few steps on TEXT (in process: quicker than the command line)."""
    (tmp_path / "t.txt").write_text(TEXT, encoding="utf-8")
    config = TrainConfig(text=str(tmp_path / "t.txt"), hidden=6, cell=cell, layers=layers, seq_len=8)
    trainer = Trainer(config, training_text(config.text), out=str(tmp_path / f"{cell}{layers}.npz"))
    for _ in range(steps):
        trainer.step()
    trainer.save()
    return Path(trainer.out)


def _model(path: Path) -> CharRNN:
    return export.read_model(str(path))[0]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_export_writes_torchs_names_with_config_and_vocab(tmp_path: Path, name: str) -> None:
    npz = _checkpoint(tmp_path, **MODELS[name])
    done = cli("export", "--model", str(npz), "--out", "m.safetensors", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    tensors = st.load_file(str(tmp_path / "m.safetensors"))
    ours = _model(npz)
    rnn = [k for k in tensors if k.startswith("rnn.")]
    layers = MODELS[name]["layers"]
    assert sorted(rnn) == sorted(
        f"rnn.{w}_l{k}" for k in range(layers) for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    )
    assert sorted(set(tensors) - set(rnn)) == ["embed.weight", "head.bias", "head.weight"]
    assert np.array_equal(tensors["head.weight"], ours.head.weight.data)
    if name == "seed":  # the notebook's model: an identity input matrix, its bias in bias_ih
        assert np.array_equal(tensors["rnn.weight_ih_l0"], np.eye(6)) and not tensors["rnn.bias_hh_l0"].any()
        assert np.array_equal(tensors["rnn.weight_hh_l0"], ours.weight_hh.data)
        assert np.array_equal(tensors["rnn.bias_ih_l0"], ours.bias_h.data)
    from safetensors import safe_open

    with safe_open(str(tmp_path / "m.safetensors"), framework="np") as f:
        meta = f.metadata()
    config = json.loads(meta["config"])
    assert meta["format"] == "tinygrad_rnn-charrnn" and meta["version"] == "1"
    assert json.loads(meta["vocab"]) == sorted(set(TEXT)) and "text" not in config
    assert (config["cell"], config["num_layers"], config["hidden_size"]) == (ours.cell, layers, 6)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_file_reads_back_bit_for_bit(tmp_path: Path, name: str) -> None:
    npz = _checkpoint(tmp_path, **MODELS[name])
    model, ck = export.read_model(str(npz))
    export.save(str(tmp_path / "m.safetensors"), model, ck.vocab, ck.config)
    back, vocab, config = export.load(str(tmp_path / "m.safetensors"))
    assert vocab == ck.vocab and config["seq_len"] == 8
    assert back.state_dict().keys() == model.state_dict().keys()
    assert all(np.array_equal(a, b) for a, b in zip(model.state_dict().values(), back.state_dict().values()))


def test_sample_from_the_file_is_the_checkpoints_sample(tmp_path: Path) -> None:
    npz = _checkpoint(tmp_path, steps=20)
    assert cli("export", "--model", str(npz), "--out", "m.safetensors", cwd=tmp_path).returncode == 0
    a = cli("sample", "--model", str(npz), "-n", "60", "--seed", "3", cwd=tmp_path)
    b = cli("sample", "--model", "m.safetensors", "-n", "60", "--seed", "3", cwd=tmp_path)
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    assert a.stdout == b.stdout and len(b.stdout.strip()) == 61


@pytest.mark.parametrize("name", ["seed", "lstm-2"])
def test_train_init_from_starts_from_the_files_weights(tmp_path: Path, name: str) -> None:
    """One SGD step at lr 1e-300 moves no weight of size ~0.01 (the zero biases by ~1e-300):
    the new run's parameters are the file's, and its model is the file's model."""
    npz = _checkpoint(tmp_path, **MODELS[name])
    assert cli("export", "--model", str(npz), "--out", "m.safetensors", cwd=tmp_path).returncode == 0
    (tmp_path / "other.txt").write_text("the soul. " * 20, encoding="utf-8")
    done = cli(
        "train", "--init-from", "m.safetensors", "--text", "other.txt", "--steps", "1", "--optim", "sgd",
        "--lr", "1e-300", "--seq-len", "5", "--sample-every", "0", "--out", "new.npz", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    new = ckpt_io.load(tmp_path / "new.npz")
    want = _model(npz).state_dict()
    assert new.vocab == CharVocab(set(TEXT)) and new.step == 1
    assert (new.config["cell"], new.config["num_layers"], new.config["hidden_size"]) == (
        MODELS[name]["cell"], MODELS[name]["layers"], 6,
    )  # fmt: skip
    assert new.params.keys() == want.keys()
    assert all(np.allclose(new.params[k], want[k], rtol=1e-12, atol=1e-250) for k in want)


def test_init_from_refuses_what_does_not_fit(tmp_path: Path) -> None:
    npz = _checkpoint(tmp_path)
    assert cli("export", "--model", str(npz), "--out", "m.safetensors", cwd=tmp_path).returncode == 0
    other = "Xylophones and zebras! " * 10
    (tmp_path / "x.txt").write_text(other, encoding="utf-8")
    unknown = ", ".join(map(repr, sorted(set(other) - set(TEXT))))
    cases = {
        ("--text", "x.txt"): f"not in the checkpoint's vocabulary: {unknown}",
        ("--hidden", "8"): "--hidden 8 differs from m.safetensors's 6",
        ("--cell", "gru"): "--cell gru differs from m.safetensors's rnn",
        ("--dtype", "float32"): "--dtype float32 differs from m.safetensors's float64",
        ("--resume", str(npz)): "--init-from starts a fresh run from weights and --resume continues one",
    }
    done = cli("train", "--init-from", str(npz), "--out", str(npz), cwd=tmp_path)
    assert done.returncode == 2 and "is the --init-from file" in done.stderr
    done = cli("train", "--init-from", "", cwd=tmp_path)
    assert done.returncode == 2 and "--init-from must not be empty" in done.stderr
    for extra, message in cases.items():
        done = cli(
            "train", "--init-from", "m.safetensors", "--steps", "1", "--out", "n.npz", *extra, cwd=tmp_path
        )
        assert done.returncode == 2 and message in done.stderr, (extra, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "n.npz").exists()


def _bad_files(tmp_path: Path, good: Path) -> dict[str, tuple[Path, str]]:
    """name -> (a file, what the error says about it)."""
    data = good.read_bytes()
    tensors = st.load_file(str(good))
    from safetensors import safe_open

    with safe_open(str(good), framework="np") as f:
        meta = f.metadata()
    files: dict[str, tuple[Path, str]] = {}

    def write(name: str, what: str, tensors: dict[str, np.ndarray], meta: Any) -> None:
        st.save_file(tensors, str(tmp_path / f"{name}.safetensors"), metadata=meta)
        files[name] = (tmp_path / f"{name}.safetensors", what)

    (tmp_path / "junk.safetensors").write_bytes(b"PK\x03\x04 this is not a safetensors file at all")
    files["junk"] = (tmp_path / "junk.safetensors", "not a safetensors file")
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) - 40])
    files["truncated"] = (tmp_path / "cut.safetensors", "not a safetensors file, or truncated")
    files["missing"] = (tmp_path / "nothing.safetensors", "weights file not found")
    write("no-meta", "has no tinygrad_rnn metadata", tensors, None)
    write(
        "shape",
        "parameter head.weight: checkpoint has float64(3, 6)",
        {**tensors, "head.weight": np.zeros((3, 6))},
        meta,
    )
    write("extra", "unexpected rnn.weight_ih_l1", {**tensors, "rnn.weight_ih_l1": np.zeros((6, 6))}, meta)
    write(
        "hidden",
        "embed.weight: checkpoint has float64(19, 6), the model needs float64(19, 7)",
        tensors,
        {**meta, "config": json.dumps({**json.loads(meta["config"]), "hidden_size": 7})},
    )
    write(
        "cell",
        "unknown cell 'tree'",
        tensors,
        {**meta, "config": json.dumps({**json.loads(meta["config"]), "cell": "tree"})},
    )
    write("json", "bad config or vocab", tensors, {**meta, "config": "{not json"})
    write("vocab", "sorted order", tensors, {**meta, "vocab": json.dumps(sorted(set(TEXT))[::-1])})
    write("nan", "contain NaN", {**tensors, "head.bias": np.full(tensors["head.bias"].shape, np.nan)}, meta)
    write("version", "has version '9'", tensors, {**meta, "version": "9"})
    return files


def test_bad_files_are_one_line_and_exit_2(tmp_path: Path) -> None:
    good = tmp_path / "m.safetensors"
    npz = _checkpoint(tmp_path)
    assert cli("export", "--model", str(npz), "--out", str(good), cwd=tmp_path).returncode == 0
    for name, (path, what) in _bad_files(tmp_path, good).items():
        with pytest.raises(export.WeightsFileError) as e:
            export.load(str(path))
        assert what in str(e.value), (name, str(e.value))
    for name in ("junk", "shape"):  # the same errors through the command line
        path, what = _bad_files(tmp_path, good)[name]
        for args in (("sample", "--model", str(path)), ("train", "--init-from", str(path), "--steps", "1")):
            done = cli(*args, cwd=tmp_path)
            assert done.returncode == 2 and what in done.stderr and len(done.stderr.strip().splitlines()) == 1
    done = cli("export", "--model", str(npz), "--out", "m.npz", cwd=tmp_path)
    assert done.returncode == 2 and "--out must end in .safetensors" in done.stderr
    done = cli("export", "--model", "nothing.npz", "--out", "x.safetensors", cwd=tmp_path)
    assert done.returncode == 2 and "checkpoint not found" in done.stderr


def test_missing_safetensors_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "safetensors", None)
    with pytest.raises(export.WeightsFileError, match="pip install safetensors"):
        export.save(str(tmp_path / "m.safetensors"), CharRNN(3, 2), CharVocab("abc"))


# --- PyTorch reads the file as it is -------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(MODELS))
def test_torch_loads_the_file_unchanged(torch: Any, tmp_path: Path, name: str) -> None:
    """nn.RNN/LSTM/GRU load the rnn.* tensors, TorchCharRNN the whole file (strict), and the
    loss PyTorch computes equals ours to 1e-10."""
    from safetensors.torch import load_file

    from tinygrad_rnn.interop import TorchCharRNN

    npz = _checkpoint(tmp_path, **MODELS[name])
    assert cli("export", "--model", str(npz), "--out", "m.safetensors", cwd=tmp_path).returncode == 0
    sd = load_file(str(tmp_path / "m.safetensors"))
    cell, layers = MODELS[name]["cell"], MODELS[name]["layers"]
    rnn = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](
        6, 6, layers, dtype=torch.float64
    )
    rnn.load_state_dict({k[len("rnn.") :]: v for k, v in sd.items() if k.startswith("rnn.")})
    twin = TorchCharRNN(len(set(TEXT)), 6, cell, layers).double()
    twin.load_state_dict(sd)
    ours = _model(npz)
    ids = CharVocab(set(TEXT)).encode(TEXT[:41])
    loss, _ = ours.loss(ids[:-1], ids[1:])
    t_loss, _ = twin.loss(torch.from_numpy(ids[:-1]), torch.from_numpy(ids[1:]))
    assert abs(loss.item() - t_loss.item()) < 1e-10
