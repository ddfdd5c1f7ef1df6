"""The README's Python examples run as written, and its set-up commands stay the CI's."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```python\n(.*?)```", README, re.S)


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_python_blocks_run(block: str, capsys: pytest.CaptureFixture[str]) -> None:
    namespace: dict[str, object] = {}
    exec(compile(block, "README.md", "exec"), namespace)
    if "print(tape)" in block:
        assert "0: matmul (3, 4), (4, 2) -> (3, 2)" in capsys.readouterr().out


def test_ci_runs_the_readme_test_command() -> None:
    command = re.search(r"Install and run the tests:\n\n```bash\n(.*?)\n```", README).group(1)
    assert command in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
