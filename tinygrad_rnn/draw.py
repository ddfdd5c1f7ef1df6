"""Pictures of a tape: its ops and leaves, with parameter names, shapes and gradient norms.

`Tape.draw(path, names=model)` and `Tape.to_dot(names=model)` call this module. A picture
is made by Graphviz's `dot` when it is on PATH and by matplotlib otherwise, so a missing
binary is never an error; without matplotlib either, `draw` raises `DrawingUnavailable`
(an ImportError) that says what to install.

Gradient norms: after `loss.backward()` each leaf shows the norm of its `.grad`. The ops'
own gradients are not kept by a backward (the sweep drops each one once it has passed it
on), so `target=loss` asks for them here instead: one extra `Tape.gradient(loss, ...,
retain_graph=True)` over the recorded graph, before the backward (or after a backward with
`retain_graph=True`), gives every op's box and every leaf the norm of d loss / d its output.
The engine's sweep stays as it is.

The matplotlib picture lays the graph out in layers without a graph library: the tape is
already in execution order, so each op's layer is one more than its inputs' (then moved
down next to its first consumer), and a leaf sits just above the op that uses it.
"""

from __future__ import annotations

import io
import math
import shutil
import subprocess
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Protocol, Union

import numpy as np

from tinygrad_rnn.tape import Node, Output, Tape
from tinygrad_rnn.tensor import Tensor

DOT_TIMEOUT = 30.0  # seconds for one run of Graphviz's `dot`
INSTALL_HINT = (
    "drawing a tape needs Graphviz's `dot` on PATH or matplotlib: "
    "pip install 'tinygrad-rnn[plot]' (or: pip install matplotlib)"
)
FORMATS = ("svg", "png")


class DrawingUnavailable(ImportError):
    """Neither Graphviz's `dot` nor matplotlib can be used to draw."""


class _Named(Protocol):
    def named_parameters(self) -> Any: ...


Names = Union[_Named, Mapping[str, Tensor], None]


@dataclass
class Box:
    """One thing in the picture: an op ("op"), a leaf tensor ("leaf") or a constant ("const")."""

    key: str
    kind: str
    lines: list[str]
    inputs: list[str] = field(default_factory=list)  # keys of the boxes with an arrow into this one
    foreign: bool = False  # an op recorded before this tape was opened (drawn dashed)


def _name_map(names: Names) -> dict[int, str]:
    """id(tensor) -> name, from a Module (`named_parameters`) or a {name: tensor} mapping."""
    if names is None:
        return {}
    pairs = names.named_parameters() if hasattr(names, "named_parameters") else names.items()
    return {id(t): str(n) for n, t in pairs}


def _norm(g: Optional[np.ndarray]) -> Optional[float]:
    return None if g is None else float(np.sqrt(np.vdot(g, g).real))


def _grad_line(norm: Optional[float]) -> list[str]:
    return [] if norm is None else [f"|grad| {norm:.3g}"]


def _stand_in(edge: Union[Node, Output]) -> Tensor:
    """A tensor that `Tape.gradient` treats as the output of `edge` (no data is copied)."""
    t = Tensor(np.broadcast_to(np.zeros((), edge.out_dtype), edge.out_shape))
    t._node = edge
    return t


def gradient_norms(tape: Tape, target: Tensor) -> dict[int, float]:
    """Norm of d target / d x for every op's output and every leaf of `tape`, keyed by id(node)
    or id(leaf tensor); an op with several outputs gets the norm of all their gradients.

    Sweeps the recorded graph once more with `retain_graph=True`, so the graph must not be
    released yet (call it before `target.backward()`).
    """
    owners: list[Any] = []
    sources: list[Tensor] = []
    leaves: set[int] = set()
    for node in tape.nodes:
        outs: Any = (node,) if node.outputs is None else node.outputs
        for o in outs:
            owners.append(node)
            sources.append(_stand_in(o))
        for edge in node.edges:
            if isinstance(edge, Tensor) and id(edge) not in leaves:
                leaves.add(id(edge))
                owners.append(edge)
                sources.append(edge)
    grads = tape.gradient(target, sources, retain_graph=True)
    squares: dict[int, float] = {}
    for owner, g in zip(owners, grads):
        squares[id(owner)] = squares.get(id(owner), 0.0) + float(np.vdot(g, g).real)
    return {k: math.sqrt(v) for k, v in squares.items()}


def boxes(tape: Tape, names: Names = None, target: Optional[Tensor] = None) -> list[Box]:
    """The picture's boxes in execution order (each leaf and constant just before its first user)."""
    named = _name_map(names)
    norms = gradient_norms(tape, target) if target is not None else {}
    out: list[Box] = []
    seen: dict[int, str] = {}  # id of a leaf or a foreign node -> its box key
    recorded = set(tape.nodes)
    for i, node in enumerate(tape.nodes):
        op = Box(f"op{node.seq}", "op", [f"{i}: {node.name}", node.out_text()])
        op.lines += _grad_line(norms.get(id(node)))
        for j, edge in enumerate(node.edges):
            if edge.__class__ is Output:
                edge = edge.node
            if edge is None:
                key = f"const{node.seq}_{j}"
                out.append(Box(key, "const", ["const", str(node.in_shapes[j])]))
            elif edge.__class__ is Node:
                key = f"op{edge.seq}"
                if edge not in recorded and id(edge) not in seen:
                    seen[id(edge)] = key
                    out.append(Box(key, "op", [edge.name], foreign=True))
            else:
                key = seen.get(id(edge), "")
                if not key:
                    key = seen[id(edge)] = f"leaf{len(seen)}"
                    leaf = Box(key, "leaf", [named.get(id(edge), "tensor"), str(node.in_shapes[j])])
                    grad = norms.get(id(edge)) if norms else _norm(edge.grad)  # type: ignore[union-attr]
                    leaf.lines += _grad_line(grad)
                    out.append(leaf)
            op.inputs.append(key)
        out.append(op)
    return out


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


_DOT_STYLE = {
    "op": "shape=box, style=filled, fillcolor=aliceblue",
    "leaf": "shape=ellipse, style=filled, fillcolor=honeydew",
    "const": "shape=plaintext",
}


def to_dot(tape: Tape, names: Names = None, target: Optional[Tensor] = None) -> str:
    """Graphviz DOT text: boxes for ops, ellipses for leaves (named from `names`), plain text
    for constants; labels give shapes and, where known, gradient norms (see the module doc)."""
    lines = ["digraph tape {", "  rankdir=TB;", "  node [fontname=Helvetica, fontsize=11];"]
    for b in boxes(tape, names, target):
        style = "shape=box, style=dashed" if b.foreign else _DOT_STYLE[b.kind]
        label = "\\n".join(_quote(s) for s in b.lines)
        lines.append(f'  {b.key} [{style}, label="{label}"];')
        lines += [f"  {src} -> {b.key};" for src in b.inputs]
    lines.append("}")
    return "\n".join(lines)


def _format(path: Union[str, Path]) -> str:
    fmt = Path(path).suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise ValueError(f"draw: the file must end in .svg or .png, got {str(path)!r}")
    return fmt


def _graphviz(dot: str, fmt: str) -> Optional[bytes]:
    """The picture from `dot`, or None (with a warning) if it fails or takes too long."""
    exe = shutil.which("dot")
    if exe is None:
        return None
    try:
        done = subprocess.run(
            [exe, f"-T{fmt}"], input=dot.encode(), capture_output=True, timeout=DOT_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        warnings.warn(f"draw: Graphviz failed ({e}); drawing with matplotlib", stacklevel=3)
        return None
    if done.returncode != 0 or not done.stdout:
        err = done.stderr.decode(errors="replace").strip()
        warnings.warn(f"draw: Graphviz failed ({err}); drawing with matplotlib", stacklevel=3)
        return None
    return done.stdout


def render(
    tape: Tape, fmt: str, names: Names = None, target: Optional[Tensor] = None, engine: str = "auto"
) -> bytes:
    """The picture as SVG or PNG bytes. engine: "auto" (Graphviz if `dot` works, else
    matplotlib), "graphviz" (an error if `dot` is missing) or "matplotlib"."""
    if fmt not in FORMATS:
        raise ValueError(f"draw: format must be one of {FORMATS}, got {fmt!r}")
    if engine not in ("auto", "graphviz", "matplotlib"):
        raise ValueError(f"draw: engine must be 'auto', 'graphviz' or 'matplotlib', got {engine!r}")
    if engine != "matplotlib":
        picture = _graphviz(to_dot(tape, names, target), fmt)
        if picture is not None:
            return picture
        if engine == "graphviz":
            raise RuntimeError("draw: engine='graphviz' but Graphviz's `dot` is not on PATH or failed")
    return _matplotlib(boxes(tape, names, target), fmt)


def draw(
    tape: Tape,
    path: Union[str, Path],
    names: Names = None,
    target: Optional[Tensor] = None,
    engine: str = "auto",
) -> Path:
    """Write the tape's picture to `path` (.svg or .png) and return the path (see `render`)."""
    fmt = _format(path)
    picture = render(tape, fmt, names, target, engine)
    out = Path(path)
    out.write_bytes(picture)
    return out


# --- the matplotlib picture --------------------------------------------------------------
def layers(items: list[Box]) -> dict[str, int]:
    """Layer (row, 0 at the top) of every box: below all its inputs, as low as its users allow."""
    layer: dict[str, int] = {}
    for b in items:  # in execution order, inputs first
        layer[b.key] = 1 + max((layer[k] for k in b.inputs), default=-1)
    users: dict[str, list[str]] = {}
    for b in items:
        for k in b.inputs:
            users.setdefault(k, []).append(b.key)
    for b in reversed(items):  # move each box down next to its first user
        if b.key in users:
            layer[b.key] = min(layer[u] for u in users[b.key]) - 1
    return layer


def positions(items: list[Box]) -> dict[str, tuple[float, float]]:
    """(x, y) of every box: y is minus its layer; in a layer, boxes are ordered by the mean x
    of their inputs (fewer crossings) and centred."""
    layer = layers(items)
    rows: dict[int, list[Box]] = {}
    for b in items:
        rows.setdefault(layer[b.key], []).append(b)
    pos: dict[str, tuple[float, float]] = {}
    for r in sorted(rows):
        row = rows[r]
        mean_x = {b.key: float(np.mean([pos[k][0] for k in b.inputs if k in pos] or [0.0])) for b in row}
        row.sort(key=lambda b: mean_x[b.key])  # stable: execution order breaks ties
        for i, b in enumerate(row):
            pos[b.key] = (i - (len(row) - 1) / 2, -float(r))
    return pos


_MPL_STYLE = {
    "op": {"boxstyle": "square,pad=0.4", "fc": "aliceblue", "ec": "black"},
    "leaf": {"boxstyle": "round,pad=0.4", "fc": "honeydew", "ec": "darkgreen"},
    "const": {"boxstyle": "square,pad=0.3", "fc": "white", "ec": "white"},
}


def _matplotlib(items: list[Box], fmt: str) -> bytes:
    """Draw the boxes with matplotlib (no pyplot, so no global figure state); SVG keeps text as text."""
    try:
        import matplotlib
        from matplotlib.figure import Figure
    except ImportError as e:
        raise DrawingUnavailable(INSTALL_HINT) from e
    pos = positions(items)
    xs = [p[0] for p in pos.values()] or [0.0]
    ys = [p[1] for p in pos.values()] or [0.0]
    width, height = max(xs) - min(xs) + 1, max(ys) - min(ys) + 1
    fig = Figure(figsize=(max(3.0, 2.1 * width), max(2.0, 0.8 * height)))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(min(xs) - 0.5, max(xs) + 0.5)
    ax.set_ylim(min(ys) - 0.5, max(ys) + 0.5)
    ax.axis("off")
    texts = {}
    for b in items:
        style = dict(_MPL_STYLE[b.kind], ls="--" if b.foreign else "-")
        texts[b.key] = ax.text(
            *pos[b.key], "\n".join(b.lines), ha="center", va="center", fontsize=8,
            family="DejaVu Sans", bbox=style, zorder=2,
        )  # fmt: skip
    for b in items:
        for k in b.inputs:
            skip = pos[k][1] - pos[b.key][1] > 1  # an arrow over a layer bends around the boxes
            ax.annotate(
                "", xy=pos[b.key], xytext=pos[k], zorder=3,
                arrowprops={
                    "arrowstyle": "-|>", "mutation_scale": 10, "color": "dimgray", "lw": 0.8,
                    "patchA": texts[k].get_bbox_patch(), "patchB": texts[b.key].get_bbox_patch(),
                    "connectionstyle": "arc3,rad=0.25" if skip else "arc3",
                },
            )  # fmt: skip
    buf = io.BytesIO()
    with matplotlib.rc_context({"svg.fonttype": "none"}):  # text stays searchable in an SVG
        fig.savefig(buf, format=fmt, dpi=110)
    return buf.getvalue()
