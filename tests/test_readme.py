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
        assert ns["c"].shape == (2, 4, 32)
        assert ns["out"].shape == (10, 4, 64) and ns["h"].shape == (4, 10, 32)  # the bidirectional GRU
        assert "weight_ih_l0_reverse" in dict(ns["bi"].named_parameters())
        checks += 1
    if "tg.value_and_grad(f)" in block:  # bound sqrt(6 / 7); dw: an array (3, 4)
        assert np.abs(ns["w"].data).max() <= np.sqrt(6 / 7) and ns["dw"].shape == (3, 4)
        np.testing.assert_allclose(ns["loss"], ns["f"](ns["w"], ns["tg"].randn(5, 4, rng=1)).item())
        checks += 1
    if "to_arrays(opt.state_dict())" in block:  # trained, saved and loaded: the same model
        losses = ns["losses"]
        assert losses[-1] < losses[0] / 5
        assert printed.strip().endswith("reloaded: 0.0")
        assert [g["initial_lr"] for g in ns["opt"].param_groups] == [3e-3, 1e-2]
        assert ns["sched"].get_last_lr() == pytest.approx([0.0, 0.0], abs=1e-12)  # the cosine's end
        checks += 1
    if "Total params" in block:  # eval mode everywhere; the repr ends with the parameter count
        assert not any(m.training for m in ns["mlp"].modules())
        assert printed.startswith("MLP(") and printed.strip().endswith("Total params: 220")
        assert ns["y"].shape == (2, 4)
        checks += 1
    if "trainer.step()" in block:  # 20 steps of the notebook's run, and a sample
        steps, loss, sample = printed.rstrip("\n").split(" ", 2)
        assert int(steps) == 20 and 0 < float(loss) < 80 and sample.startswith("H") and len(sample) == 41
        assert ns["ck"].step == 20
        checks += 1
    if "tape.to_dot(names=model)" in block:  # 3 steps, each an addmm and a tanh; named leaves
        names = [node.name for node in ns["tape"]]
        assert names.count("tanh") == 3 and names[-1] == "softmax_cross_entropy"
        for name in ("embed.weight", "weight_hh", "bias_h", "head.weight", "head.bias"):
            assert name in ns["dot"]
        checks += 1
    if "gradflow_experiment" in block:  # the tanh RNN's gradient fades faster than the LSTM's
        norms = ns["table"].norms
        assert norms["rnn", "init"][10] < norms["lstm", "init"][10]
        assert printed.count("\n") >= 5
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
