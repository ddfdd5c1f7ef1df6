"""Text for the char-RNN: the vocabulary, the built-in verse, and (T, B) training chunks.

`CharVocab` sorts its characters, so a character gets the same id in every process (the
seed built its vocabulary from `set()`, whose order changes from run to run).
`CharBatches` cuts a text into B parallel streams and walks them seq_len characters at a
time with the seed's pointer logic; its `position` is saved in checkpoints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable, Sequence, Union

import numpy as np

# The first verse of "Hope is the thing with feathers" by Emily Dickinson, as the seed has it.
VERSE = (
    "Hope is the thing with feathers that perches in the soul. "
    "And sings the tune without the words and never stops at all. "
)
VERSE_REPEATS = 100


class DataError(ValueError):
    """A text that cannot be used: unreadable, not UTF-8, empty, too short, unknown characters."""


def default_text() -> str:
    """The seed's corpus: the verse repeated 100 times (11900 characters, 22 distinct)."""
    return VERSE * VERSE_REPEATS


def read_text(path: Union[str, os.PathLike[str]]) -> str:
    """The contents of a UTF-8 text file; DataError if it is missing, unreadable or not UTF-8.

    A byte-order mark at the start (Windows editors write one) is not part of the text.
    """
    try:
        with open(path, encoding="utf-8-sig") as f:
            return f.read()
    except FileNotFoundError:
        raise DataError(f"text file not found: {os.fspath(path)}") from None
    except IsADirectoryError:
        raise DataError(f"text path is a directory, not a file: {os.fspath(path)}") from None
    except UnicodeDecodeError as e:
        raise DataError(f"text file is not UTF-8: {os.fspath(path)} (bad byte at offset {e.start})") from None
    except OSError as e:
        raise DataError(f"cannot read text file {os.fspath(path)}: {e.strerror or e}") from None


def _show(chars: Iterable[str]) -> str:
    return ", ".join(repr(c) for c in chars)


class CharVocab:
    """A sorted character vocabulary: `encode(str) -> int64 ids`, `decode(ids) -> str`."""

    def __init__(self, chars: Iterable[str]) -> None:
        chars = list(chars)
        if any(not isinstance(c, str) or len(c) != 1 for c in chars):
            raise DataError("CharVocab: every entry must be a single character")
        self.chars: list[str] = sorted(set(chars))
        if not self.chars:
            raise DataError("CharVocab: the vocabulary is empty")
        self.index: dict[str, int] = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def from_text(cls, text: str) -> CharVocab:
        """The distinct characters of `text`, sorted."""
        if not text:
            raise DataError("the text is empty")
        return cls(set(text))

    def __len__(self) -> int:
        return len(self.chars)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CharVocab) and self.chars == other.chars

    def __hash__(self) -> int:
        return hash(tuple(self.chars))

    def __repr__(self) -> str:
        return f"CharVocab({''.join(self.chars)!r})"

    def unknown(self, text: str) -> list[str]:
        """The characters of `text` that are not in the vocabulary, sorted."""
        return sorted(set(text) - self.index.keys())

    def encode(self, text: str) -> np.ndarray:
        """Ids (len(text),) int64; DataError naming the characters outside the vocabulary."""
        missing = self.unknown(text)
        if missing:
            raise DataError(f"characters not in the vocabulary: {_show(missing)}")
        return np.fromiter((self.index[c] for c in text), dtype=np.int64, count=len(text))

    def decode(self, ids: Union[Sequence[int], np.ndarray]) -> str:
        """The characters of ids (any iterable of ints in [0, len(self)))."""
        try:
            return "".join(self.chars[int(i)] for i in ids)
        except IndexError:
            raise DataError(f"ids out of range for a vocabulary of {len(self)} characters") from None

    def codepoints(self) -> np.ndarray:
        """The characters as int32 code points (V,): how checkpoints store the vocabulary."""
        return np.array([ord(c) for c in self.chars], dtype=np.int32)

    @classmethod
    def from_codepoints(cls, points: np.ndarray) -> CharVocab:
        """Inverse of `codepoints`; DataError unless sorted, distinct and valid."""
        points = np.asarray(points)
        if points.ndim != 1 or points.dtype.kind not in "iu" or points.size == 0:
            raise DataError("vocabulary must be a non-empty 1-D array of integer code points")
        if np.any(points < 0) or np.any(points > 0x10FFFF) or np.any(np.diff(points) <= 0):
            raise DataError("vocabulary code points must be valid, distinct and sorted")
        surrogates = points[(points >= 0xD800) & (points <= 0xDFFF)]
        if surrogates.size:  # half of a UTF-16 pair: no UTF-8 text holds one, none can be printed
            raise DataError(f"vocabulary holds a lone surrogate U+{int(surrogates[0]):04X}, not a character")
        return cls(chr(int(p)) for p in points)


@dataclass
class Chunk:
    """One training step's data: inputs and targets (T, B) int64, targets one character
    ahead; `reset` is True when the streams wrapped to their start (zero the hidden state)."""

    inputs: np.ndarray
    targets: np.ndarray
    reset: bool


class CharBatches:
    """B parallel streams through `ids`, read seq_len characters at a time.

    The text is cut into B equal segments (the last len(ids) % B characters are dropped);
    stream b reads segment b, all streams at the same offset `position`. Each step follows
    the seed: if position + seq_len + 1 >= segment length, wrap to 0 and reset the hidden
    state; take inputs at [position, position + seq_len) and targets one character later;
    advance by seq_len. With B = 1 this is exactly the seed's data pointer.
    """

    def __init__(self, ids: np.ndarray, seq_len: int, batch_size: int = 1, position: int = 0) -> None:
        ids = np.asarray(ids)
        if ids.ndim != 1 or ids.dtype.kind not in "iu":
            raise DataError(f"ids must be a 1-D integer array, got {ids.dtype} of shape {ids.shape}")
        if seq_len < 1 or batch_size < 1:
            raise DataError(f"seq_len and batch_size must be positive, got {seq_len} and {batch_size}")
        length = len(ids) // batch_size
        if length < seq_len + 1:
            need = batch_size * (seq_len + 1)
            what = f"batch {batch_size} x (seq-len {seq_len} + 1)" if batch_size > 1 else f"seq-len {seq_len}"
            raise DataError(f"text too short: {len(ids)} characters; {what} needs at least {need}")
        self.seq_len = seq_len
        self.batch_size = batch_size
        self.segment_length = length
        # (L, B): column b is stream b; contiguous rows make each chunk one slice
        self.streams = np.ascontiguousarray(ids[: length * batch_size].reshape(batch_size, length).T)
        self.position = position

    @property
    def position(self) -> int:
        """Offset of the next chunk in every stream (before the wrap check)."""
        return self._position

    @position.setter
    def position(self, value: int) -> None:
        if not 0 <= int(value) <= self.segment_length:
            raise DataError(f"data position {value} is outside a stream of {self.segment_length} characters")
        self._position = int(value)

    def next(self) -> Chunk:
        """The next chunk: inputs, targets (seq_len, batch_size) and whether the streams wrapped."""
        p, t = self._position, self.seq_len
        reset = p + t + 1 >= self.segment_length
        if reset:
            p = 0
        self._position = p + t
        return Chunk(self.streams[p : p + t], self.streams[p + 1 : p + t + 1], reset)
