"""The engine's teaching examples run and say what they promise."""

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run(name: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_custom_op_passes_gradcheck_and_the_wrong_one_is_caught() -> None:
    out = run("custom_op.py")
    assert "1: Softplus (3, 2) -> (3, 2)" in out
    assert "gradcheck Softplus: True" in out
    assert "gradcheck WrongSoftplus: gradcheck: input 0, element (0, 0)" in out


def test_explore_tape_prints_the_tape_and_writes_dot(tmp_path: Path) -> None:
    dot = tmp_path / "tape.dot"
    out = run("explore_tape.py", str(dot))
    assert "5 ops recorded" in out and "4: softmax_cross_entropy (4, 5) -> ()" in out
    assert "same as .grad: True True" in out
    text = dot.read_text(encoding="utf-8")
    assert text.startswith("digraph tape {") and text.rstrip().endswith("}")
