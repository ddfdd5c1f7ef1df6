"""What keeps `tinygrad-rnn train` from losing data: path checks, a lock, signals, a safe stdout.

    out = check_train_paths(args)         # UsageError before anything is written
    with out_lock(out, note):             # out + ".lock" holds our pid while we may write out
        with StopSignals() as stop:       # SIGINT / SIGTERM only set stop.received
            ...                           # the loop finishes its step, saves, exits 128 + signal
    say("a line")                         # a closed stdout (`train | head`) silences printing only

The path rules: --text, --out, --log, --plot and the resumed checkpoint (unless it is also the
output) must name different files, through links too; --log and --plot never name an existing
.npz/.safetensors file or checkpoint; the output must be a regular file or
not exist yet (a symlink is followed: the file it points to is replaced); empty paths are
errors. Each broken rule is a UsageError: one line, exit code 2, nothing written.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import signal
import stat
import sys
import tempfile
import time
import zipfile
from types import FrameType
from typing import Any, Callable, Iterator, Optional

import numpy as np

from tinygrad_rnn.checkpoint import write_atomically
from tinygrad_rnn.train import DEFAULT_OUT

META_LIMIT = 1 << 20  # bytes of a checkpoint's meta record read to show the step it holds


class UsageError(Exception):
    """Bad input from the user: reported as one line, exit code 2."""


# --- paths -----------------------------------------------------------------------------------
def same_file(a: str, b: str) -> bool:
    """Whether two paths name one file: the same inode when both exist, else the same real path."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file"


def _checkpoint_target(out: str) -> str:
    """The path a checkpoint goes to (a symlink followed to its target); UsageError unless it is
    a regular file or does not exist yet."""
    real = os.path.realpath(out) if os.path.islink(out) else out
    try:
        mode = os.stat(real).st_mode
    except FileNotFoundError:
        return real
    except OSError as e:
        raise UsageError(f"cannot use checkpoint {out}: {e.strerror or e}") from None
    if not stat.S_ISREG(mode):
        raise UsageError(f"checkpoint {out} is {_kind(mode)}, not a regular file")
    return real


def check_writable(path: str, what: str, shown: Optional[str] = None) -> None:
    """UsageError unless a file can be created next to `path` (probed with a real temp file);
    messages name it `shown` (default: `path`)."""
    directory = os.path.dirname(os.path.abspath(path))
    path = shown or path
    if os.path.isdir(path):
        raise UsageError(f"{what} {path} is a directory")
    if not os.path.isdir(directory):
        raise UsageError(f"cannot write {what} {path}: directory {directory} does not exist")
    try:
        fd, probe = tempfile.mkstemp(prefix=".probe.", dir=directory)
    except OSError as e:
        raise UsageError(f"cannot write {what} {path}: {e.strerror or e}") from None
    os.close(fd)
    os.unlink(probe)
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise UsageError(f"cannot write {what} {path}: permission denied")


def check_train_paths(args: argparse.Namespace) -> str:
    """The path `train` writes its checkpoint to (a symlink's target), after checking every path
    rule of the module's docstring."""
    given = {"--text": args.text, "--out": args.out, "--log": args.log, "--plot": args.plot}
    for flag, path in {**given, "--resume": args.resume}.items():
        if path == "":
            raise UsageError(f"{flag} must not be empty (an unset shell variable?)")
    out = args.out or args.resume or DEFAULT_OUT
    real = _checkpoint_target(out)
    named = [(flag, p) for flag, p in given.items() if p is not None and flag != "--out"]
    named.insert(0, ("--out" if args.out else "the checkpoint", out))
    if args.resume and not same_file(args.resume, out):
        named.append(("--resume", args.resume))
    for i, (flag_a, a) in enumerate(named):
        for flag_b, b in named[i + 1 :]:
            if same_file(a, b):
                raise UsageError(f"{flag_a} {a} and {flag_b} {b} are the same file")
    check_writable(real, "checkpoint", shown=out)
    if args.log:
        check_not_checkpoint(args.log, "--log")
        check_writable(args.log, "log")
    if args.plot:
        check_not_checkpoint(args.plot, "--plot")
        check_writable(args.plot, "plot")
        check_plot_format(args.plot)
    return real


def check_not_checkpoint(path: str, flag: str) -> None:
    """UsageError if `path` names an existing checkpoint or weights file (.npz, .safetensors, or
    anything `held_step` reads), which a log or plot would overwrite."""
    ext = os.path.splitext(path)[1].lower()
    if os.path.isfile(path) and (ext in (".npz", ".safetensors") or held_step(path) is not None):
        raise UsageError(f"{flag} {path} is an existing checkpoint or weights file; refusing to overwrite it")


def check_plot_format(path: str, shown: str = "--plot ") -> None:
    """UsageError unless matplotlib is installed and can write `path`'s extension (none: PNG);
    a bad extension's message starts with `shown` + path."""
    try:
        import matplotlib  # noqa: F401  (first: a submodule already imported would not fail)
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:
        raise UsageError(
            "--plot needs matplotlib, which is not installed: pip install 'tinygrad-rnn[plot]'"
        ) from None
    ext = os.path.splitext(path)[1][1:].lower()
    formats = FigureCanvasBase.get_supported_filetypes()
    if ext and ext not in formats:
        raise UsageError(f"{shown}{path}: unsupported format {ext!r} (one of {', '.join(sorted(formats))})")


def held_step(path: str) -> Optional[int]:
    """The step of the checkpoint at `path`, read from its meta record only; None if unreadable."""
    try:
        with zipfile.ZipFile(path) as z:
            info = z.getinfo("meta.npy")
            if info.file_size > META_LIMIT:
                return None
            with z.open(info) as f:
                meta = json.loads(str(np.lib.format.read_array(f, allow_pickle=False)[()]))
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, RecursionError):
        return None
    step = meta.get("step") if isinstance(meta, dict) else None
    return step if isinstance(step, int) and not isinstance(step, bool) and step >= 0 else None


def trim_log(path: str, step: int) -> int:
    """Drop the rows of the CSV log at `path` whose step is >= `step` (written after the checkpoint
    a run resumes from), rewriting it atomically; returns how many were dropped."""
    real = os.path.realpath(path)
    if not os.path.isfile(real):
        return 0
    with open(real, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows or rows[0][:1] != ["step"]:
        return 0  # not a log of ours: only appended to
    kept = [rows[0]] + [r for r in rows[1:] if not (r and r[0].isdigit() and int(r[0]) >= step)]
    if len(kept) == len(rows):
        return 0
    text = io.StringIO(newline="")
    csv.writer(text).writerows(kept)
    data = text.getvalue().encode("utf-8")
    write_atomically(real, lambda f: f.write(data), mode=stat.S_IMODE(os.stat(real).st_mode))
    return len(rows) - len(kept)


# --- the lock --------------------------------------------------------------------------------
def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return pid != os.getpid()  # our own pid in a lock we did not take: a reused, stale one


def _lock_pid(lock: str, tries: int = 1) -> Optional[int]:
    """The pid in a lock file; None if it holds none after `tries` reads 0.1 s apart (a lock
    just created by another run is empty for an instant)."""
    for i in range(tries):
        try:
            with open(lock, encoding="ascii") as f:
                text = f.read(32).strip()
        except (OSError, UnicodeDecodeError):
            text = ""
        if text.isdigit():
            return int(text)
        if i < tries - 1:
            time.sleep(0.1)
    return None


def _acquire(lock: str, out: str, note: Callable[[str], None]) -> None:
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            pid = _lock_pid(lock, tries=10)
            if pid is None:
                raise UsageError(
                    f"the lock file {lock} exists but names no process; if no run is writing {out}, remove it"
                ) from None
            if _alive(pid):
                raise UsageError(
                    f"another run (pid {pid}) is writing {out} (lock file {lock}); "
                    "wait for it or use another --out"
                ) from None
            note(f"taking over the stale lock {lock} (process {pid} is gone)")
            with contextlib.suppress(FileNotFoundError):
                os.unlink(lock)
            continue
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(f"{os.getpid()}\n")
        return
    raise UsageError(f"cannot take the lock {lock}: another run keeps creating it")


@contextlib.contextmanager
def out_lock(out: str, note: Callable[[str], None]) -> Iterator[str]:
    """Hold `out + ".lock"` (our pid, created exclusively) for the block; yields the lock's path.

    A lock whose process is gone is taken over with a `note`; a live one is a UsageError.
    """
    lock = out + ".lock"
    _acquire(lock, out, note)
    try:
        yield lock
    finally:
        if _lock_pid(lock) == os.getpid():
            with contextlib.suppress(OSError):
                os.unlink(lock)


# --- signals and output ----------------------------------------------------------------------
class StopSignals:
    """Within the block SIGINT and SIGTERM set `received` (the signal number) instead of stopping.

    The first signal restores the previous handlers, so a second one acts at once; leaving the
    block restores them too. Outside the main thread (no signal handlers there) it does nothing.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.received: Optional[int] = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Optional[FrameType]) -> None:
        self.received = signum
        self._restore()

    def _restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def __enter__(self) -> StopSignals:
        with contextlib.suppress(ValueError):  # not the main thread
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        self._restore()


def say(text: str, write: Callable[[str], Any] = print) -> None:
    """Print a line to stdout; once stdout is a closed pipe, drop this and every later line."""
    try:
        write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        silence_stdout()


def silence_stdout() -> None:
    """Point stdout at the null device once it is a closed pipe (`... | head`), as Python's docs
    recommend for SIGPIPE: later prints and the exit's final flush then go nowhere."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())  # the exit's final flush goes there too
    except (OSError, ValueError, AttributeError):
        sys.stdout = open(os.devnull, "w")
    finally:
        os.close(devnull)


def replace_unprintable() -> None:
    """Make stdout and stderr replace characters their encoding cannot show (PYTHONIOENCODING=ascii)."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="replace")
