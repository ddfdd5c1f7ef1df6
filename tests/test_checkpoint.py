import os
import zipfile

import numpy as np
import pytest

from tinygrad_rnn import checkpoint as ck
from tinygrad_rnn.checkpoint import Checkpoint, CheckpointError, check_params, load, save
from tinygrad_rnn.data import CharVocab


def _ckpt(seed: int = 0) -> Checkpoint:
    rng = np.random.default_rng(seed)
    rng.standard_normal(7)  # move the generator off its start
    params = {"wxh": rng.standard_normal((4, 3)), "bh": np.zeros(4)}
    optimizer = {
        "state": {0: {"sum": rng.standard_normal((4, 3)), "step": np.int64(3)}, 1: {"sum": np.ones(4)}},
        "param_groups": [
            {"lr": 0.1, "eps": 1e-8, "params": [0, 1], "betas": (0.9, 0.999), "nesterov": False}
        ],
        "name": "Adagrad",
        "nothing": None,
    }
    return Checkpoint(
        params=params,
        vocab=CharVocab("abc"),
        config={"vocab_size": 3, "hidden_size": 4, "batch_size": 2, "optim": "adagrad", "lr": 0.1},
        step=1234,
        position=50,
        hidden=rng.standard_normal((2, 4)),
        optimizer=optimizer,
        rng=rng.bit_generator.state,
        extra={"smooth_loss": 1.25, "seconds": 3.5},
    )


def test_round_trip_is_exact_and_readable_without_pickle(tmp_path) -> None:
    path = tmp_path / "m.npz"
    c = _ckpt()
    save(path, c)
    with np.load(path, allow_pickle=False) as raw:
        assert "meta" in raw.files and "param/wxh" in raw.files
    d = load(path)
    assert d.vocab == c.vocab and d.config == c.config and d.extra == c.extra
    assert (d.step, d.position) == (1234, 50)
    for k in c.params:
        np.testing.assert_array_equal(d.params[k], c.params[k])
    np.testing.assert_array_equal(d.hidden, c.hidden)
    assert d.optimizer is not None and c.optimizer is not None
    state = d.optimizer["state"]
    assert set(state) == {0, 1}  # int keys stay ints
    np.testing.assert_array_equal(state[0]["sum"], c.optimizer["state"][0]["sum"])
    assert state[0]["step"] == 3 and isinstance(state[0]["step"], np.int64)
    assert d.optimizer["param_groups"][0]["betas"] == (0.9, 0.999)
    assert d.optimizer["param_groups"][0]["nesterov"] is False and d.optimizer["nothing"] is None
    # the generator continues exactly
    g1, g2 = np.random.default_rng(), np.random.default_rng()
    assert c.rng is not None and d.rng is not None
    g1.bit_generator.state, g2.bit_generator.state = c.rng, d.rng
    np.testing.assert_array_equal(g1.random(5), g2.random(5))


def test_no_hidden_and_no_optimizer(tmp_path) -> None:
    c = Checkpoint(params={"w": np.ones((2, 2), np.float32)}, vocab=CharVocab("xy"))
    save(tmp_path / "a.npz", c)
    d = load(tmp_path / "a.npz")
    assert d.hidden is None and d.optimizer is None and d.rng is None
    assert d.params["w"].dtype == np.float32


def test_interrupted_save_leaves_the_old_file_loadable(tmp_path, monkeypatch) -> None:
    path = tmp_path / "m.npz"
    save(path, _ckpt(0))
    before = path.read_bytes()

    def broken(f, arrays):  # write half an archive, then get interrupted
        f.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt

    monkeypatch.setattr(ck, "_write_npz", broken)
    with pytest.raises(KeyboardInterrupt):
        save(path, _ckpt(1))
    assert path.read_bytes() == before
    assert load(path).step == 1234
    assert os.listdir(tmp_path) == ["m.npz"]  # the temporary file was removed


def test_save_refuses_objects_before_touching_the_file(tmp_path) -> None:
    c = _ckpt()
    c.optimizer = {"weird": object()}
    with pytest.raises(CheckpointError, match="cannot store"):
        save(tmp_path / "m.npz", c)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("cut", [10, 200, -30])
def test_truncated_file_is_a_clear_error(tmp_path, cut) -> None:
    path = tmp_path / "m.npz"
    save(path, _ckpt())
    data = path.read_bytes()
    path.write_bytes(data[:cut])
    with pytest.raises(CheckpointError, match="checkpoint"):
        load(path)


def test_corrupted_bytes_are_a_clear_error(tmp_path) -> None:
    path = tmp_path / "m.npz"
    save(path, _ckpt())
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("param/wxh.npy")
    pos = info.header_offset + 30 + len(info.filename) + 200  # inside that member's data
    data[pos] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupted"):
        load(path)


def test_foreign_files_are_refused(tmp_path) -> None:
    np.savez(tmp_path / "other.npz", x=np.ones(3))
    with pytest.raises(CheckpointError, match="not a tinygrad_rnn checkpoint"):
        load(tmp_path / "other.npz")
    np.save(tmp_path / "one.npy", np.ones(3))
    with pytest.raises(CheckpointError, match="single .npy"):
        load(tmp_path / "one.npy")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(CheckpointError, match="not an .npz"):
        load(tmp_path / "text.npz")
    with pytest.raises(CheckpointError, match="not found"):
        load(tmp_path / "missing.npz")


def test_object_arrays_are_refused(tmp_path) -> None:
    path = tmp_path / "m.npz"
    save(path, _ckpt())
    with np.load(path) as raw:
        arrays = dict(raw)
    arrays["param/bh"] = np.array([{"evil": 1}], dtype=object)
    np.savez(path, **arrays)
    with pytest.raises(CheckpointError, match="object"):
        load(path)


def _rewrite(path, **changes) -> None:
    with np.load(path) as raw:
        arrays = dict(raw)
    arrays.update(changes)
    for k, v in list(arrays.items()):
        if v is None:
            del arrays[k]
    np.savez(path, **arrays)


def test_inconsistent_contents_are_refused(tmp_path) -> None:
    path = tmp_path / "m.npz"
    save(path, _ckpt())
    _rewrite(path, vocab=np.array([97, 98], np.int32))
    with pytest.raises(CheckpointError, match="vocabulary has 2 characters"):
        load(path)
    save(path, _ckpt())
    _rewrite(path, hidden=np.ones((3, 4)))
    with pytest.raises(CheckpointError, match="hidden state"):
        load(path)
    save(path, _ckpt())
    _rewrite(path, **{"optim/0": None})
    with pytest.raises(CheckpointError, match="missing array"):
        load(path)
    save(path, _ckpt())
    _rewrite(path, **{"param/bh": np.array([np.nan, 0, 0, 0])})
    with pytest.raises(CheckpointError, match="NaN"):
        load(path)
    save(path, _ckpt())
    _rewrite(path, surprise=np.ones(1))
    with pytest.raises(CheckpointError, match="unexpected keys: surprise"):
        load(path)


def test_check_params_names_the_mismatch() -> None:
    want = {"a": np.zeros((2, 3)), "b": np.zeros(2)}
    check_params(want, {"a": np.ones((2, 3)), "b": np.ones(2)})
    with pytest.raises(CheckpointError, match="missing b"):
        check_params(want, {"a": np.ones((2, 3))})
    with pytest.raises(CheckpointError, match=r"parameter a: .*\(3, 3\)"):
        check_params(want, {"a": np.ones((3, 3)), "b": np.ones(2)})


def test_save_fsyncs_the_temporary_file_then_replaces_the_target(tmp_path, monkeypatch) -> None:
    events: list[tuple] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        st = os.fstat(fd)
        events.append(("fsync", st.st_ino, st.st_size))
        real_fsync(fd)

    def replace(src, dst) -> None:
        events.append(("replace", os.stat(src).st_ino, os.fspath(src), os.fspath(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    path = tmp_path / "m.npz"
    path.write_bytes(b"the previous checkpoint")
    save(path, _ckpt())
    replaces = [i for i, e in enumerate(events) if e[0] == "replace"]
    assert len(replaces) == 1
    _, inode, src, dst = events[replaces[0]]
    assert dst == str(path) and src != dst
    assert os.path.dirname(os.path.abspath(src)) == str(tmp_path)  # same directory: an atomic rename
    assert not os.path.exists(src)
    # the temporary file was fsynced whole (its final size) before it replaced the target
    assert ("fsync", inode, path.stat().st_size) in events[: replaces[0]]
    assert path.stat().st_ino == inode
    load(path)
