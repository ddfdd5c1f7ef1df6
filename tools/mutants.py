"""A reproducible mutation run: put one small realistic bug at a time into the library, run
the test suite, and report which bugs the tests catch.

    python tools/mutants.py                    # every mutant, torch as installed
    python tools/mutants.py --hide-torch       # `import torch` fails: the README's test run
    python tools/mutants.py --tests OLD/tests  # score another copy of the tests
    python tools/mutants.py --only 4 12        # some mutants by number

The repository is copied to a temporary directory and mutated there, so the working tree is
never touched. Each mutant is a string replacement found by its text anywhere under
tinygrad_rnn/ (files may move); a pattern that is missing or not unique is an error that
names the mutant, never a silent skip. A mutant counts as caught when pytest fails.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "tinygrad_rnn"
# pytest.importorskip skips on ModuleNotFoundError only (a plain ImportError is an error)
HIDDEN_TORCH = "raise ModuleNotFoundError(\"No module named 'torch' (hidden)\", name='torch')\n"

# (what the bug is, file where it lives today (a hint for the error message), old text, new text)
MUTANTS: list[tuple[str, str, str, str]] = [
    ("SGD: nesterov ignored", "optim.py", "g = g + self.momentum * buf if self.nesterov else buf", "g = buf"),
    (
        "Adam: no bias correction of m",
        "optim.py",
        "p.data -= self.lr / (1 - beta1**t) * m / denom",
        "p.data -= self.lr * m / denom",
    ),
    (
        "Adam: no bias correction of v",
        "optim.py",
        "denom = np.sqrt(v) / math.sqrt(1 - beta2**t)",
        "denom = np.sqrt(v)",
    ),
    (
        "RMSprop: eps inside the square root",
        "optim.py",
        "denom = np.sqrt(v)\n        denom += self.eps",
        "denom = np.sqrt(v + self.eps)",
    ),
    ("RMSprop: (1 - alpha) dropped", "optim.py", "v += (1 - self.alpha) * g * g", "v += g * g"),
    (
        "Adagrad: eps outside the square root",
        "optim.py",
        "g / np.sqrt(m + self.eps)",
        "g / (np.sqrt(m) + self.eps)",
    ),
    (
        "clip_grad_value_: lower bound dropped",
        "optim.py",
        "p.grad.clip(-clip, clip, out=p.grad)",
        "p.grad.clip(None, clip, out=p.grad)",
    ),
    (
        "LSTM: gate order i, f, o, g",
        "layers.py",
        "i, f, g, o = gates.chunk(4, axis=1)",
        "i, f, o, g = gates.chunk(4, axis=1)",
    ),
    (
        "LSTM: input and forget gates swapped",
        "layers.py",
        "f.sigmoid() * c + i.sigmoid() * g.tanh()",
        "i.sigmoid() * c + f.sigmoid() * g.tanh()",
    ),
    ("LSTM: no tanh of the cell state", "layers.py", "o.sigmoid() * c.tanh()", "o.sigmoid() * c"),
    (
        "LSTM: bias_hh dropped",
        "layers.py",
        "(xw, None) if bias_hh is None else (xw + bias_hh, None)",
        "(xw, None)",
    ),
    (
        "GRU: r gates the input share of n",
        "layers.py",
        "n = (x_n + r * h_n).tanh()",
        "n = (r * x_n + h_n).tanh()",
    ),
    ("GRU: z and 1 - z swapped", "layers.py", "return n + z * (h - n)", "return h + z * (n - h)"),
    ("GRU: bias_hh dropped", "layers.py", "addmm(bias_hh, h, weight_hh_t)", "(h @ weight_hh_t)"),
    (
        "train: clip before backward",
        "cli.py",
        'loss.backward()\n        if self.config["clip"] > 0:\n'
        '            clip_grad_value_(self.params, self.config["clip"])\n',
        'if self.config["clip"] > 0:\n'
        '            clip_grad_value_(self.params, self.config["clip"])\n        loss.backward()\n',
    ),
    (
        "train: hidden state not reset on wrap",
        "cli.py",
        "if chunk.reset:\n            self.hidden = None",
        "if chunk.reset:\n            pass",
    ),
    (
        "data: wrap one step late (p + T + 1 > L)",
        "data.py",
        "reset = p + t + 1 >= self.segment_length",
        "reset = p + t + 1 > self.segment_length",
    ),
    ("data: pointer advances T + 1", "data.py", "self._position = p + t\n", "self._position = p + t + 1\n"),
    ("checkpoint: temporary file not fsynced", "checkpoint.py", "os.fsync(f.fileno())", "f.flush()"),
    (
        "unbroadcast: only the first stretched axis summed",
        "tape.py",
        "grad = grad.sum(axis=stretched, keepdims=True)",
        "grad = grad.sum(axis=stretched[:1], keepdims=True)",
    ),
]


def copy_repo(dest: Path, tests: Path) -> None:
    """The package, its tests and what they read (README, examples, benchmarks, CI script)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".hypothesis")
    for name in (PACKAGE, "examples", "benchmarks", ".ci"):
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, dest / name, ignore=ignore)
    for name in ("README.md", "pyproject.toml"):
        shutil.copy2(ROOT / name, dest / name)
    shutil.copytree(tests, dest / "tests", ignore=ignore)


def locate(package: Path, number: int, hint: str, old: str) -> Path:
    """The one file under the package holding `old` exactly once; SystemExit otherwise."""
    hits = [(f, f.read_text(encoding="utf-8").count(old)) for f in sorted(package.rglob("*.py"))]
    hits = [(f, n) for f, n in hits if n]
    if not hits:
        raise SystemExit(f"mutant {number}: pattern not found in {PACKAGE}/ (it was in {hint}): {old!r}")
    if len(hits) > 1 or hits[0][1] > 1:
        where = ", ".join(f"{f.relative_to(package.parent)} x{n}" for f, n in hits)
        raise SystemExit(f"mutant {number}: pattern is not unique ({where}): {old!r}")
    return hits[0][0]


def test_files(tests: Path) -> list[str]:
    """Every test file, those that start subprocesses last: -x then stops a caught mutant sooner
    (the order changes no verdict, as a missed mutant passes every test)."""
    files = sorted(tests.glob("test_*.py"))
    return [
        str(f.relative_to(tests.parent)) for f in sorted(files, key=lambda f: "subprocess" in f.read_text())
    ]


def run_suite(cwd: Path, env: dict[str, str]) -> int:
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *test_files(cwd / "tests")]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900).returncode


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tests", type=Path, default=ROOT / "tests", help="the tests directory to score")
    ap.add_argument("--hide-torch", action="store_true", help="make `import torch` fail in the runs")
    ap.add_argument("--only", type=int, nargs="*", help="mutant numbers (1-based) to run")
    ap.add_argument(
        "--skip-baseline", action="store_true", help="trust that the unmutated suite passes (split runs)"
    )
    args = ap.parse_args()
    chosen = args.only or list(range(1, len(MUTANTS) + 1))
    with tempfile.TemporaryDirectory(prefix="mutants.") as tmp:
        work = Path(tmp) / "repo"
        copy_repo(work, args.tests.resolve())
        package = work / PACKAGE
        files = {n: locate(package, n, MUTANTS[n - 1][1], MUTANTS[n - 1][2]) for n in chosen}
        path = [str(work)]
        if args.hide_torch:
            stub = Path(tmp) / "no_torch" / "torch"
            stub.mkdir(parents=True)
            (stub / "__init__.py").write_text(HIDDEN_TORCH)
            path.insert(0, str(stub.parent))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(path), "PYTHONDONTWRITEBYTECODE": "1"}
        if not args.skip_baseline and run_suite(work, env) != 0:
            raise SystemExit("the unmutated suite fails: fix it before scoring mutants")
        caught = 0
        for n in chosen:
            name, _, old, new = MUTANTS[n - 1]
            original = files[n].read_text(encoding="utf-8")
            files[n].write_text(original.replace(old, new), encoding="utf-8")
            start = time.perf_counter()
            try:
                rc = run_suite(work, env)
            finally:
                files[n].write_text(original, encoding="utf-8")
            caught += rc != 0
            verdict = "caught" if rc != 0 else "MISSED"
            print(f"{n:2d} {verdict:6s} {time.perf_counter() - start:5.1f}s  {name}", flush=True)
        torch_note = "torch hidden" if args.hide_torch else "torch as installed"
        print(f"caught {caught} of {len(chosen)} ({torch_note}, tests from {args.tests})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
