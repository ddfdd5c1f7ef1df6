"""Engine behaviours a PyTorch user relies on: grad mode (generators, threads), `.data`
assignment and the change clock, a Tape entered twice."""

from __future__ import annotations

import threading
from typing import Iterator

import numpy as np
import pytest

import tinygrad_rnn as tg
from tinygrad_rnn import Tape, Tensor, no_grad


def leaf(*shape: int, seed: int = 0) -> Tensor:
    return Tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=True)


# --- no_grad on a generator function -------------------------------------------------------
def test_no_grad_on_a_generator_turns_grad_off_inside_its_body_only() -> None:
    x = leaf(3)
    seen: list[bool] = []

    @no_grad()
    def doubled(n: int) -> Iterator[Tensor]:
        for _ in range(n):
            seen.append(tg.is_grad_enabled())
            received = yield x * 2.0
            seen.append(received == "ping" and tg.is_grad_enabled())
        return None

    gen = doubled(2)
    first = next(gen)
    assert tg.is_grad_enabled()  # the caller's mode between yields
    assert not first.requires_grad  # made inside the body: not recorded
    second = gen.send("ping")
    assert not second.requires_grad and tg.is_grad_enabled()
    with pytest.raises(StopIteration):
        gen.send("ping")
    assert seen == [False, False, False, False]
    assert (x * 2.0).requires_grad


def test_no_grad_generator_passes_exceptions_and_close_through() -> None:
    closed: list[bool] = []

    @no_grad()
    def counter() -> Iterator[int]:
        try:
            while True:
                try:
                    yield 1
                except ValueError:
                    yield -1
        finally:
            closed.append(tg.is_grad_enabled())

    gen = counter()
    assert next(gen) == 1
    assert gen.throw(ValueError("x")) == -1
    gen.close()
    assert closed == [False] and tg.is_grad_enabled()


def test_no_grad_as_a_plain_decorator_and_nested_keeps_the_outer_mode() -> None:
    @no_grad()
    def f(x: Tensor) -> Tensor:
        return x * 2.0

    assert not f(leaf(2)).requires_grad and tg.is_grad_enabled()
    guard = no_grad()
    with guard:
        with guard:
            assert not tg.is_grad_enabled()
        assert not tg.is_grad_enabled()
    assert tg.is_grad_enabled()


# --- grad mode is per thread ---------------------------------------------------------------
def test_no_grad_in_another_thread_does_not_stop_recording_here() -> None:
    inside, done = threading.Event(), threading.Event()

    def other() -> None:
        with no_grad():
            inside.set()
            done.wait(10)

    t = threading.Thread(target=other)
    t.start()
    try:
        assert inside.wait(10)
        x = leaf(3)
        y = x * 2.0 + x * 3.0  # recorded although the other thread is inside no_grad
        assert y.requires_grad and tg.is_grad_enabled()
        y.sum().backward()
        np.testing.assert_array_equal(x.grad, np.full(3, 5.0))
    finally:
        done.set()
        t.join()


def test_a_new_thread_starts_with_grad_enabled() -> None:
    got: list[bool] = []
    with no_grad():
        t = threading.Thread(target=lambda: got.append(tg.is_grad_enabled()))
        t.start()
        t.join()
    assert got == [True]


# --- assigning .data and the change clock -------------------------------------------------
def test_assigning_a_fresh_array_to_data_after_the_forward_is_fine() -> None:
    x = leaf(3)
    loss = (x * x).sum()
    saved = x.data.copy()
    x.data = np.zeros(3)  # new memory: what mul saved did not change
    loss.backward()
    np.testing.assert_array_equal(x.grad, 2 * saved)
    w = leaf(3, seed=1)
    loss = (w * w).sum()
    w.data = w.data - 0.1  # out of place: a fresh array too
    loss.backward()


def test_rebinding_data_of_another_tensor_over_the_same_memory_is_fine() -> None:
    x = leaf(3)
    loss = (x * x).sum()
    alias = Tensor(x.data)  # the same memory
    alias.data = np.ones(3)  # rebinds alias; x's memory is untouched
    other = Tensor(np.ones(3))
    other.data = x.data  # points another tensor at x's memory: no change either
    loss.backward()
    np.testing.assert_array_equal(x.grad, 2 * x.data)


def test_an_in_place_step_on_saved_memory_still_raises() -> None:
    p = leaf(3)
    loss = (p * p).sum()
    p.data -= 0.1  # changes the memory mul saved, then rebinds the same array
    with pytest.raises(RuntimeError, match="mul: an array saved for backward was modified in place"):
        loss.backward()
    q = leaf(2, 3)
    loss = (q * q).sum()
    q.data = q.data[:, ::-1]  # a view of the same memory counts as a change
    with pytest.raises(RuntimeError, match="modified in place"):
        loss.backward()


# --- a Tape entered twice ------------------------------------------------------------------
def test_entering_an_active_tape_again_is_an_error_and_records_nothing_twice() -> None:
    x = leaf(3)
    tape = Tape()
    with tape:
        y = x * 2.0
        with pytest.raises(RuntimeError, match="Tape: this tape is already recording"):
            with tape:
                pass
        z = y + 1.0
    assert len(tape) == 2
    with tape:  # after it closed it may record again
        z * 3.0
    assert len(tape) == 3
    with Tape() as outer, Tape() as inner:  # two tapes nested: each records once
        x * 4.0
    assert len(outer) == 1 and len(inner) == 1
    (dx,) = tape.gradient(z, [x], grad=np.ones(3))
    np.testing.assert_array_equal(dx, np.full(3, 2.0))  # once through each op, not twice
