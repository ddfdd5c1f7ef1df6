"""Pictures of a tape: names, shapes and gradient norms, with Graphviz or matplotlib."""

import shutil
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from tinygrad_rnn import Tape, draw
from tinygrad_rnn.layers import CharRNN

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
NAMES = ("embed.weight", "weight_hh", "bias_h", "head.weight", "head.bias")


def recorded() -> tuple[Tape, CharRNN, object]:
    model = CharRNN(22, 8, fused=False, rng=0)
    with Tape() as tape:
        loss, _ = model.loss(np.array([1, 2, 3]), np.array([2, 3, 4]))
    return tape, model, loss


def svg_text(path: Path) -> str:
    """All the text of an SVG file, which must parse as XML."""
    root = ET.parse(path).getroot()
    assert root.tag.endswith("svg")
    return " ".join(t for el in root.iter() for t in (el.text, *el.attrib.values()) if t)


def test_dot_names_the_two_22_by_8_leaves_apart_and_shows_shapes() -> None:
    tape, model, _ = recorded()
    dot = tape.to_dot(names=model)
    assert 'label="embed.weight\\n(22, 8)"' in dot and 'label="head.weight\\n(22, 8)"' in dot
    assert "14: softmax_cross_entropy" in dot and "|grad|" not in dot  # no backward yet
    assert [p for p in NAMES if p in dot] == list(NAMES)
    assert "tensor\\n(22, 8)" in tape.to_dot()  # without names, leaves are just tensors


def test_leaf_gradient_norms_after_backward_are_the_norms_of_grad() -> None:
    tape, model, loss = recorded()
    loss.backward()  # type: ignore[attr-defined]
    dot = tape.to_dot(names=model)
    for name, p in model.named_parameters():
        assert f"{name}\\n{p.shape}\\n|grad| {np.linalg.norm(p.grad):.3g}" in dot


def test_target_gives_every_op_its_gradient_norm_and_keeps_the_graph() -> None:
    tape, model, loss = recorded()
    norms = draw.gradient_norms(tape, loss)  # type: ignore[arg-type]
    assert norms[id(tape.nodes[-1])] == pytest.approx(1.0)  # d loss / d loss
    loss.backward()  # type: ignore[attr-defined]  # the graph was retained
    for _, p in model.named_parameters():
        assert norms[id(p)] == pytest.approx(np.linalg.norm(p.grad), rel=1e-12)
    boxes = draw.boxes(tape, model)
    ops = [b for b in boxes if b.kind == "op"]
    assert len(ops) == len(tape) and all(b.lines[-1].startswith("|grad|") for b in boxes if b.kind == "leaf")


def test_layers_put_every_box_below_its_inputs() -> None:
    tape, model, _ = recorded()
    boxes = draw.boxes(tape, model)
    layer = draw.layers(boxes)
    assert all(layer[k] < layer[b.key] for b in boxes for k in b.inputs)
    assert len(set(draw.positions(boxes).values())) == len(boxes)  # no two boxes on one spot


@pytest.mark.parametrize("suffix", ["svg", "png"])
def test_matplotlib_picture(tmp_path: Path, suffix: str) -> None:
    pytest.importorskip("matplotlib")
    tape, model, loss = recorded()
    out = tape.draw(tmp_path / f"tape.{suffix}", names=model, target=loss, engine="matplotlib")
    if suffix == "png":
        assert out.read_bytes().startswith(PNG_SIGNATURE)
    else:
        text = svg_text(out)
        assert all(name in text for name in NAMES) and "softmax_cross_entropy" in text


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
@pytest.mark.parametrize("suffix", ["svg", "png"])
def test_graphviz_picture(tmp_path: Path, suffix: str) -> None:
    tape, model, loss = recorded()
    loss.backward()  # type: ignore[attr-defined]
    out = tape.draw(str(tmp_path / f"tape.{suffix}"), names=model, engine="graphviz")
    if suffix == "png":
        assert out.read_bytes().startswith(PNG_SIGNATURE)
    else:
        text = svg_text(out)
        assert all(name in text for name in NAMES) and "|grad|" in text


def test_without_dot_auto_falls_back_to_matplotlib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("matplotlib")
    monkeypatch.setattr(draw.shutil, "which", lambda _: None)
    tape, model, _ = recorded()
    out = tape.draw(tmp_path / "tape.svg", names=model)
    assert "embed.weight" in svg_text(out)
    with pytest.raises(RuntimeError, match="Graphviz"):
        tape.draw(tmp_path / "tape.png", engine="graphviz")


def test_without_dot_and_matplotlib_the_error_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(draw.shutil, "which", lambda _: None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now fails
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    tape, _, _ = recorded()
    with pytest.raises(ImportError, match=r"pip install") as err:
        tape.draw(tmp_path / "tape.svg")
    assert isinstance(err.value, draw.DrawingUnavailable) and not (tmp_path / "tape.svg").exists()
    assert tape._repr_svg_() is None  # Jupyter then shows the text


def test_bad_file_name_and_engine_are_clear_errors(tmp_path: Path) -> None:
    tape, _, _ = recorded()
    with pytest.raises(ValueError, match=r"draw: the file must end in \.svg or \.png"):
        tape.draw(tmp_path / "tape.jpg")
    with pytest.raises(ValueError, match="draw: engine"):
        tape.draw(tmp_path / "tape.svg", engine="tikz")


def test_jupyter_shows_a_tape_as_svg() -> None:
    pytest.importorskip("matplotlib")
    tape, model, _ = recorded()
    svg = tape._repr_svg_()
    assert svg is not None and "<svg" in svg and "softmax_cross_entropy" in svg
    assert Tape()._repr_svg_() is None  # an empty tape has nothing to show


def test_names_may_be_a_mapping_and_target_needs_the_graph() -> None:
    tape, model, loss = recorded()
    dot = tape.to_dot(names={"W_out": model.head.weight})
    assert 'label="W_out\\n(22, 8)"' in dot and 'label="tensor\\n(22, 8)"' in dot
    loss.backward()  # type: ignore[attr-defined]  # releases the graph
    with pytest.raises(RuntimeError, match="retain_graph"):
        draw.boxes(tape, model, target=loss)  # type: ignore[arg-type]
