"""A reproducible mutation run: put one small realistic bug at a time into the library, run
the test suite, and report which bugs the tests catch.

    python tools/mutants.py                    # every mutant, torch as installed
    python tools/mutants.py --hide-torch       # `import torch` fails: the README's test run
    python tools/mutants.py --tests OLD/tests  # score another copy of the tests
    python tools/mutants.py --only 4 12        # some mutants by number
    python tools/mutants.py --check            # only check that every pattern applies

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

# (what the bug is, file where it lives today (a hint for the error message), old text, new text,
#  test files to run first: those most likely to catch it, so that -x stops sooner)
# The LSTM and GRU math has two homes: the unrolled cells (layers/cells.py, RNN's default) and
# the fused ops' numpy loops (reference.py, the command line's default for lstm and gru). A
# mutant of the fused forward alone is what a slip there looks like; the bias folding
# (LSTMCell.input_bias) serves both paths.
OPTIM = ("tests/test_optim.py", "tests/test_oracles.py", "tests/test_optim_more.py")
LSTM = ("tests/test_fused_cells.py", "tests/test_oracles.py", "tests/test_layers.py")
GRU = LSTM
TRAIN = ("tests/test_train.py", "tests/test_training_math.py")
DATA = ("tests/test_data.py", *TRAIN)
MUTANTS: list[tuple[str, str, str, str, tuple[str, ...]]] = [
    (
        "SGD: nesterov ignored",
        "optim/rules.py",
        'g = g + momentum * buf if group["nesterov"] else buf',
        "g = buf",
        OPTIM,
    ),
    (
        "Adam: no bias correction of m",
        "optim/rules.py",
        "p.data -= lr / (1 - beta1**t) * m / denom",
        "p.data -= lr * m / denom",
        OPTIM,
    ),
    (
        "Adam: no bias correction of v",
        "optim/rules.py",
        "denom = np.sqrt(v) / math.sqrt(1 - beta2**t)",
        "denom = np.sqrt(v)",
        OPTIM,
    ),
    (
        "RMSprop: eps inside the square root",
        "optim/rules.py",
        'denom = np.sqrt(v)\n        denom += group["eps"]',
        'denom = np.sqrt(v + group["eps"])',
        OPTIM,
    ),
    ("RMSprop: (1 - alpha) dropped", "optim/rules.py", "v += (1 - alpha) * g * g", "v += g * g", OPTIM),
    (
        "Adagrad: eps outside the square root",
        "kernels.py",
        "param -= lr * grad / np.sqrt(sum_sq + eps)",
        "param -= lr * grad / (np.sqrt(sum_sq) + eps)",
        OPTIM,
    ),
    (
        "clip_grad_value_: lower bound dropped",
        "optim/clip.py",
        "g.clip(-clip, clip, out=g)",
        "g.clip(None, clip, out=g)",
        OPTIM,
    ),
    (
        "LSTM (fused forward, the CLI's default): gate order i, f, o, g",
        "reference.py",
        "tanh_c, a, i, f, g, o in per_step",
        "tanh_c, a, i, f, o, g in per_step",
        LSTM,
    ),
    (
        "LSTM (fused forward, the CLI's default): input and forget gates swapped",
        "reference.py",
        "np.multiply(f, c_prev, out=c)\n        np.multiply(i, g, out=ig)",
        "np.multiply(i, c_prev, out=c)\n        np.multiply(f, g, out=ig)",
        LSTM,
    ),
    (
        "LSTM (fused forward, the CLI's default): no tanh of the cell state",
        "reference.py",
        "np.multiply(o, tanh_c, out=h)",
        "np.multiply(o, c, out=h)",
        LSTM,
    ),
    (
        "LSTM (input_bias, both paths): bias_hh dropped",
        "layers/cells.py",
        "return bias_ih + bias_hh, None",
        "return bias_ih, None",
        LSTM,
    ),
    (
        "GRU (fused forward, the CLI's default): r gates the input share of n",
        "reference.py",
        "np.multiply(r_t, b_n_t, out=n_t)\n        n_t += x_n_t",
        "np.multiply(r_t, x_n_t, out=n_t)\n        n_t += b_n_t",
        GRU,
    ),
    (
        "GRU (fused forward, the CLI's default): z and 1 - z swapped",
        "reference.py",
        "np.subtract(h_prev, n_t, out=h)\n        h *= z_t\n        h += n_t",
        "np.subtract(n_t, h_prev, out=h)\n        h *= z_t\n        h += h_prev",
        GRU,
    ),
    (
        "GRU (fused forward, the CLI's default): bias_hh of n dropped",
        "reference.py",
        "np.add(b[:, 2 * hidden :], bias_n, out=b_n_t)",
        "np.copyto(b_n_t, b[:, 2 * hidden :])",
        GRU,
    ),
    (
        "train: clip before backward",
        "train.py",
        "loss.backward()\n        if self.config.clip > 0:\n"
        "            clip_grad_value_(self.params, self.config.clip)\n",
        "if self.config.clip > 0:\n"
        "            clip_grad_value_(self.params, self.config.clip)\n        loss.backward()\n",
        TRAIN,
    ),
    (
        "train: hidden state not reset on wrap",
        "train.py",
        "if chunk.reset:  # the data pointer went back to the start: so does the state\n"
        "            self.hidden = None",
        "if chunk.reset:\n            pass",
        TRAIN,
    ),
    (
        "data: wrap one step late (p + T + 1 > L)",
        "data.py",
        "reset = p + t + 1 >= self.segment_length",
        "reset = p + t + 1 > self.segment_length",
        DATA,
    ),
    (
        "data: pointer advances T + 1",
        "data.py",
        "self._position = p + t\n",
        "self._position = p + t + 1\n",
        DATA,
    ),
    (
        "checkpoint: temporary file not fsynced",
        "checkpoint.py",
        "os.fsync(f.fileno())\n        umask = os.umask(0)",
        "f.flush()\n        umask = os.umask(0)",
        ("tests/test_checkpoint.py",),
    ),
    (
        "unbroadcast: only the first stretched axis summed",
        "grads.py",
        "grad = grad.sum(axis=stretched, keepdims=True)",
        "grad = grad.sum(axis=stretched[:1], keepdims=True)",
        ("tests/test_engine.py", "tests/test_ops.py"),
    ),
]


def copy_repo(dest: Path, tests: Path) -> None:
    """The package, its tests and what they read (README, docs, examples, benchmarks, tools, CI)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".hypothesis")
    for name in (PACKAGE, "docs", "examples", "benchmarks", "tools", ".ci"):
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


def test_files(tests: Path, first: tuple[str, ...] = ()) -> list[str]:
    """Every test file: `first` (a mutant's likeliest catchers), then those that start no
    subprocess, then the rest: -x then stops a caught mutant sooner (the order changes no
    verdict, as a missed mutant passes every test)."""
    files = sorted(tests.glob("test_*.py"))
    ordered = [f for f in first if (tests.parent / f).is_file()]
    rest = sorted(files, key=lambda f: "subprocess" in f.read_text())
    return ordered + [name for f in rest if (name := str(f.relative_to(tests.parent))) not in ordered]


def run_suite(cwd: Path, env: dict[str, str], first: tuple[str, ...] = ()) -> tuple[int, str]:
    """pytest's return code and the first failing test ("" if none failed)."""
    files = test_files(cwd / "tests", first)
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-rf", "-p", "no:cacheprovider", *files]
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    failed = [line.split()[1] for line in done.stdout.splitlines() if line.startswith(("FAILED ", "ERROR "))]
    return done.returncode, (failed[0] if failed else "")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tests", type=Path, default=ROOT / "tests", help="the tests directory to score")
    ap.add_argument("--hide-torch", action="store_true", help="make `import torch` fail in the runs")
    ap.add_argument("--only", type=int, nargs="*", help="mutant numbers (1-based) to run")
    ap.add_argument("--check", action="store_true", help="only check that every pattern applies; run no test")
    ap.add_argument(
        "--skip-baseline", action="store_true", help="trust that the unmutated suite passes (split runs)"
    )
    args = ap.parse_args()
    chosen = args.only or list(range(1, len(MUTANTS) + 1))
    if args.check:
        package = ROOT / PACKAGE
        for n in chosen:
            where = locate(package, n, MUTANTS[n - 1][1], MUTANTS[n - 1][2]).relative_to(ROOT)
            print(f"{n:2d} applies in {where}: {MUTANTS[n - 1][0]}")
        return 0
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
        if not args.skip_baseline and run_suite(work, env)[0] != 0:
            raise SystemExit("the unmutated suite fails: fix it before scoring mutants")
        caught = 0
        for n in chosen:
            name, _, old, new, first = MUTANTS[n - 1]
            original = files[n].read_text(encoding="utf-8")
            files[n].write_text(original.replace(old, new), encoding="utf-8")
            start = time.perf_counter()
            try:
                rc, by = run_suite(work, env, first)
            finally:
                files[n].write_text(original, encoding="utf-8")
            caught += rc != 0
            verdict = "caught" if rc != 0 else "MISSED"
            print(f"{n:2d} {verdict:6s} {time.perf_counter() - start:5.1f}s  {name}  {by}", flush=True)
        torch_note = "torch hidden" if args.hide_torch else "torch as installed"
        print(f"caught {caught} of {len(chosen)} ({torch_note}, tests from {args.tests})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
