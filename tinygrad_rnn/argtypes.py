"""The argparse value types every command's options share: one rule, one message.

p.add_argument("--steps", type=positive_int)   # `--steps 0`: "must be a positive integer, got '0'"
p.add_argument("--plot", type=plot_path)        # checked before any work: directory, format
"""

from __future__ import annotations

import argparse
import math


def _int(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        value = least - 1
    if value < least:
        want = "a positive integer" if least == 1 else "an integer >= 0"
        raise argparse.ArgumentTypeError(f"must be {want}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1."""
    return _int(text, least=1)


def nonnegative_int(text: str) -> int:
    """An integer >= 0."""
    return _int(text, least=0)


def _float(text: str, positive: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        want = "a positive number" if positive else "a number >= 0"
        raise argparse.ArgumentTypeError(f"must be {want}, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0."""
    return _float(text, positive=True)


def nonnegative_float(text: str) -> float:
    """A finite number >= 0."""
    return _float(text, positive=False)


def plot_path(text: str) -> str:
    """A picture's path: its directory exists, matplotlib is installed and writes its extension
    (none: PNG); the rules of `train --plot` (guard.check_writable, guard.check_plot_format)."""
    from tinygrad_rnn.guard import UsageError, check_plot_format, check_writable  # guard needs train

    try:
        check_writable(text, "plot")
        check_plot_format(text, shown="")
    except UsageError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text
