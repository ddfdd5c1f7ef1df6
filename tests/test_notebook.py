"""examples/tour.ipynb: saved after a run of the cells that tools/make_tour.py builds, and it
runs again, in a python3 kernel, without error, within its budget, printing what it promises."""

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tinygrad_rnn.data import default_text

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "examples" / "tour.ipynb"


def make_tour() -> ModuleType:
    """tools/make_tour.py, the notebook's source (tools/ is not a package)."""
    spec = importlib.util.spec_from_file_location("make_tour", ROOT / "tools" / "make_tour.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def text(cell: Any) -> str:
    """Everything the cell printed (stdout and stderr)."""
    return "".join("".join(o["text"]) for o in cell["outputs"] if o["output_type"] == "stream")


def cell(nb: Any, cell_id: str) -> Any:
    (found,) = [c for c in nb["cells"] if c.get("id") == cell_id]
    return found


def test_the_committed_notebook_is_the_tools_cells_after_a_run() -> None:
    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    kinds = {"md": "markdown", "code": "code"}
    built = [(i, kinds[kind], source.strip("\n")) for i, kind, source in make_tour().CELLS]
    assert [(c["id"], c["cell_type"], "".join(c["source"])) for c in nb["cells"]] == built
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert [c["execution_count"] for c in code] == list(range(1, len(code) + 1))  # one run, in order
    assert all(o["output_type"] != "error" for c in code for o in c["outputs"])
    assert "gradcheck Softsign: True" in text(cell(nb, "gradcheck"))
    assert "image/png" in cell(nb, "gradflow-plot")["outputs"][0]["data"]


@pytest.fixture(scope="module")
def executed() -> Any:
    """The committed notebook run again from examples/, with every output replaced."""
    nbformat = pytest.importorskip("nbformat", reason="the notebook test needs nbformat (the test extra)")
    pytest.importorskip("nbclient", reason="the notebook test needs nbclient (the test extra)")
    pytest.importorskip("ipykernel", reason="the notebook test needs ipykernel (the test extra)")
    pytest.importorskip("matplotlib", reason="the notebook draws with matplotlib (the plot extra)")
    nb = nbformat.read(str(NOTEBOOK), as_version=4)
    for c in nb.cells:
        if c.cell_type == "code":  # so that nothing below can come from the committed run
            c.outputs, c.execution_count = [], None
    # a cell error raises CellExecutionError; the budget (60 s in all) CellTimeoutError
    return make_tour().execute(nb)


def test_the_notebook_runs_without_error(executed: Any) -> None:
    code = [c for c in executed.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code)
    assert all(o.output_type != "error" for c in code for o in c.outputs)
    assert all("Traceback" not in text(c) for c in code)


def test_the_engine_tour_agrees_with_the_chain_rule_by_hand(executed: Any) -> None:
    assert "3: sum (3, 2) -> ()" in text(cell(executed, "tensors"))
    assert "same as by hand: True True" in text(cell(executed, "backward"))


def test_gradcheck_passes_the_op_and_catches_the_wrong_backward(executed: Any) -> None:
    assert "1: Softsign (3, 2) -> (3, 2)" in text(cell(executed, "custom-op"))
    out = text(cell(executed, "gradcheck"))
    assert "gradcheck Softsign: True" in out
    assert "WrongSoftsign caught: gradcheck: input 0, element" in out
    assert "not caught" not in out


def test_the_tape_of_the_unfused_charrnn_is_drawn_with_names(executed: Any) -> None:
    printed = text(cell(executed, "charrnn"))
    assert "Tape with 15 ops" in printed and printed.count(": tanh (1, 8) -> (1, 8)") == 3
    svg = cell(executed, "draw").outputs[0].data["image/svg+xml"]
    assert "<svg" in svg and "weight_hh" in svg and "|grad|" in svg


def test_training_brings_the_loss_down_and_the_sample_uses_the_vocabulary(executed: Any) -> None:
    out = text(cell(executed, "train"))
    match = re.search(r"first 20 steps ([\d.]+), last 20 steps ([\d.]+)", out)
    assert match, out
    first, last = map(float, match.groups())
    assert last < first / 3, out  # from ln 22 = 3.09 a character to well below 1
    assert "image/png" in cell(executed, "loss-curve").outputs[0].data
    sample = text(cell(executed, "sample"))
    assert sample.endswith("\n")
    sample = sample[:-1]
    assert len(sample) == 201 and sample.startswith("H")
    assert set(sample) <= set(default_text()), sample


def test_gradients_through_time_fade_faster_in_the_rnn_than_the_lstm(executed: Any) -> None:
    lines = text(cell(executed, "gradflow")).splitlines()
    head = lines[1].split()  # distance, rnn init, rnn @150, ...
    columns = [" ".join(head[i : i + 2]) for i in range(1, len(head), 2)]
    (row,) = [line.split() for line in lines if line.split()[:1] == ["15"]]
    norms = dict(zip(columns, map(float, row[1:])))
    assert norms["rnn init"] < 1e-6 * norms["lstm init"]  # geometric decay vs the gated path
    assert "image/png" in cell(executed, "gradflow-plot").outputs[0].data
