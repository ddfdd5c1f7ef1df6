"""What a learner reads: the notebook beside the framework, checked number by number."""

import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ROW = re.compile(r"^(\S.*?)\s+(\d\.\d{3}e[+-]\d+)$")
PIECES = ("one-hot", "forward", "softmax", "loss", "BPTT", "clipping", "Adagrad", "sampling")


def test_notebook_and_framework_agree_to_1e_10_on_every_piece() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "notebook_vs_framework.py")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    rows = dict(m.groups() for m in map(ROW.match, done.stdout.splitlines()) if m)
    assert {name.split(":")[0] for name in rows} == set(PIECES)
    for piece in ("dWxh", "dWhh", "dWhy", "dbh", "dby"):
        assert {f"BPTT: {piece} (autograd)", f"BPTT: {piece} (fused op)"} <= set(rows)
    assert len(rows) >= 25
    assert all(float(diff) < 1e-10 for diff in rows.values()), rows
    assert "clipping: to 0.05 (0 elements" not in done.stdout  # the clipping row clips something
    assert "largest difference" in done.stdout and "all below 1e-10" in done.stdout


def test_the_document_names_what_it_compares() -> None:
    doc = (ROOT / "docs" / "from_notebook.md").read_text(encoding="utf-8")
    names = ("Embedding", "softmax_cross_entropy", "clip_grad_value_", "Adagrad", "CharRNN.sample")
    assert all(f"`{n}" in doc for n in names + ("reference.bptt",))
    assert "examples/notebook_vs_framework.py" in doc
    for path in re.findall(r"\]\(((?:\.\./)?[\w/.-]+)\)", doc):  # relative links resolve
        assert (ROOT / "docs" / path).resolve().exists(), path


def test_draw_tape_example_draws_the_unfused_rnn_with_names(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")  # without dot, matplotlib draws
    out = tmp_path / "tape.svg"
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "draw_tape.py"), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count(": tanh (1, 8) -> (1, 8)") == 3  # one per time step: unfused
    for svg in (out, ROOT / "docs" / "tape.svg"):  # the committed picture is this one's
        text = " ".join(t for el in ET.parse(svg).getroot().iter() for t in (el.text,) if t)
        assert all(n in text for n in ("embed.weight", "head.weight", "weight_hh", "softmax_cross_entropy"))
        assert text.count("|grad|") == 15 + 5  # every op and every leaf


def test_readme_learning_block_shows_every_step_and_the_names(capsys: pytest.CaptureFixture[str]) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## Learning\n.*?```python\n(.*?)```", readme, re.S).group(1)
    namespace: dict[str, object] = {}
    exec(compile(block, "README.md", "exec"), namespace)
    out = capsys.readouterr().out
    assert out.startswith("15 ops:") and out.count(": tanh (1, 8) -> (1, 8)") == 3
    assert all(f'label="{n}\\n' in str(namespace["dot"]) for n in ("embed.weight", "head.weight"))
    assert "docs/from_notebook.md" in readme and 'src="docs/tape.svg"' in readme
