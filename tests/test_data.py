import os
import subprocess
import sys

import numpy as np
import pytest

from tinygrad_rnn.data import VERSE, CharBatches, CharVocab, DataError, default_text, read_text


def test_default_text_is_the_seeds_corpus() -> None:
    text = default_text()
    assert len(text) == 11900 and len(set(text)) == 22
    assert text.startswith("Hope is the thing with feathers") and text == VERSE * 100


def test_vocab_is_sorted_and_round_trips() -> None:
    vocab = CharVocab.from_text("hello world")
    assert vocab.chars == sorted(set("hello world"))
    ids = vocab.encode("hello")
    assert ids.dtype == np.int64 and vocab.decode(ids) == "hello"
    assert CharVocab.from_codepoints(vocab.codepoints()) == vocab


def test_vocab_ids_are_the_same_in_another_process() -> None:
    code = "from tinygrad_rnn.data import *; print(CharVocab.from_text(default_text()).chars)"
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": str(s)},
        ).stdout
        for s in (1, 2, 3)
    }
    assert len(outs) == 1 and str(CharVocab.from_text(default_text()).chars) in outs.pop()


def test_unknown_characters_are_named() -> None:
    vocab = CharVocab.from_text("abc")
    with pytest.raises(DataError, match=r"'x', 'z'"):
        vocab.encode("abzx")
    with pytest.raises(DataError, match="empty"):
        CharVocab.from_text("")


def test_read_text_errors(tmp_path) -> None:
    with pytest.raises(DataError, match="not found"):
        read_text(tmp_path / "missing.txt")
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8"):
        read_text(bad)
    with pytest.raises(DataError, match="directory"):
        read_text(tmp_path)


def _seed_pointer(data: str, seq_length: int, steps: int) -> list[tuple[str, str, bool]]:
    """The seed notebook's data pointer, verbatim in spirit."""
    out, p = [], 0
    for _ in range(steps):
        reset = False
        if p + seq_length + 1 >= len(data):
            reset, p = True, 0
        out.append((data[p : p + seq_length], data[p + 1 : p + seq_length + 1], reset))
        p += seq_length
    return out


def test_batch_one_follows_the_seeds_pointer() -> None:
    text = default_text()
    vocab = CharVocab.from_text(text)
    batches = CharBatches(vocab.encode(text), seq_len=25)
    for inputs, targets, reset in _seed_pointer(text, 25, 1000):  # wraps twice
        chunk = batches.next()
        assert chunk.inputs.shape == (25, 1) and chunk.reset == reset
        assert vocab.decode(chunk.inputs[:, 0]) == inputs and vocab.decode(chunk.targets[:, 0]) == targets


def test_streams_are_contiguous_segments_and_position_restores() -> None:
    ids = np.arange(103)
    batches = CharBatches(ids, seq_len=4, batch_size=3)  # segments of 34, last one dropped
    first = batches.next()
    assert first.inputs.shape == (4, 3) and not first.reset
    np.testing.assert_array_equal(first.inputs[:, 1], np.arange(34, 38))
    np.testing.assert_array_equal(first.targets, first.inputs + 1)
    for _ in range(5):
        batches.next()
    saved = batches.position
    expected = [batches.next() for _ in range(10)]
    again = CharBatches(ids, seq_len=4, batch_size=3, position=saved)
    for want in expected:
        got = again.next()
        np.testing.assert_array_equal(got.inputs, want.inputs)
        assert got.reset == want.reset
    assert any(c.reset for c in expected)  # the restore crossed a wrap


def test_too_short_text_and_bad_position() -> None:
    with pytest.raises(DataError, match="too short"):
        CharBatches(np.arange(25), seq_len=25)
    exact = CharBatches(np.arange(26), seq_len=25).next()  # exactly seq_len + 1 is enough
    np.testing.assert_array_equal(exact.inputs[:, 0], np.arange(25))
    np.testing.assert_array_equal(exact.targets[:, 0], np.arange(1, 26))
    with pytest.raises(DataError, match=r"batch 2 x \(seq-len 25 \+ 1\) needs at least 52"):
        CharBatches(np.arange(40), seq_len=25, batch_size=2)
    with pytest.raises(DataError, match="position"):
        CharBatches(np.arange(40), seq_len=5, position=41)


@pytest.mark.parametrize("length", [12, 13, 14])  # p + T + 1 == L is reached at p = 8 when L = 13
def test_wrap_boundary_is_the_seeds(length: int) -> None:
    T = 4
    batches = CharBatches(np.arange(length), seq_len=T)
    starts, resets = [], []
    for _ in range(7):
        c = batches.next()
        starts.append(int(c.inputs[0, 0]))
        resets.append(c.reset)
        np.testing.assert_array_equal(c.inputs[:, 0], np.arange(starts[-1], starts[-1] + T))
        np.testing.assert_array_equal(c.targets[:, 0], np.arange(starts[-1] + 1, starts[-1] + T + 1))
    p, want, wrapped = 0, [], []  # the seed notebook's pointer: if p + T + 1 >= len(data): p = 0
    for _ in range(7):
        wrapped.append(p + T + 1 >= length)
        if wrapped[-1]:
            p = 0
        want.append(p)
        p += T
    assert starts == want
    assert resets == wrapped
    if length == 13:  # the exact boundary wraps (8 + 4 + 1 == 13), one character before it would
        assert starts[:3] == [0, 4, 0]
    if length == 14:
        assert starts[:4] == [0, 4, 8, 0]


def test_wrap_boundary_with_parallel_streams() -> None:
    batches = CharBatches(np.arange(27), seq_len=4, batch_size=2)  # two streams of 13
    chunks = [batches.next() for _ in range(3)]
    assert [c.reset for c in chunks] == [False, False, True]
    np.testing.assert_array_equal(chunks[2].inputs, [[0, 13], [1, 14], [2, 15], [3, 16]])
    np.testing.assert_array_equal(chunks[1].targets[-1], [8, 21])
