"""The README's Python examples run as written, and its set-up commands stay the CI's."""

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```python\n(.*?)```", README, re.S)


def check_block(block: str, ns: dict[str, Any], printed: str) -> int:
    """Assert what a block prints and what its comments state; returns the number of checks."""
    checks = 0
    if "print(tape)" in block:  # "0: matmul (3, 4), (4, 2) -> (3, 2)  1: tanh ...  2: sum ..."
        ops = re.findall(r"^\s*(\d+): (.*)$", printed, re.M)
        assert ops[0] == ("0", "matmul (3, 4), (4, 2) -> (3, 2)")
        assert [name.split()[0] for _, name in ops] == ["matmul", "tanh", "sum"]
        x, w = ns["x"], ns["w"]
        dy = 1 - np.tanh(x.data @ w.data) ** 2  # "loss.backward(): x.grad, w.grad"
        np.testing.assert_allclose(w.grad, x.data.T @ dy, rtol=1e-12)
        np.testing.assert_allclose(x.grad, dy @ w.data.T, rtol=1e-12)
        checks += 1
    if "model.loss(inputs[:-1], inputs[1:])" in block:  # summed over time, averaged over the batch
        steps = ns["inputs"].shape[0] - 1
        assert ns["loss"].item() == pytest.approx(steps * np.log(22), rel=1e-3)  # near-uniform at init
        assert len(ns["ids"]) == 50
        checks += 1
    if "out, (h, c) = rnn(x)" in block:  # out (10, 4, 32); h and c (2, 4, 32)
        assert ns["out"].shape == (10, 4, 32)
        assert ns["h"].shape == ns["c"].shape == (2, 4, 32)
        checks += 1
    return checks


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_python_blocks_run(block: str, capsys: pytest.CaptureFixture[str]) -> None:
    namespace: dict[str, Any] = {}
    exec(compile(block, "README.md", "exec"), namespace)
    assert check_block(block, namespace, capsys.readouterr().out) > 0, "a README block nothing checks"


def test_ci_runs_the_readme_test_command() -> None:
    command = re.search(r"Install and run the tests:\n\n```bash\n(.*?)\n```", README).group(1)
    assert command in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
