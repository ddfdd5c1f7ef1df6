"""The tape: a record of ops in execution order, and backward as a reverse sweep of it.

Every op applied to a tensor that requires grad leaves a `Node` here. A node is also the
op's context: it keeps what the forward saved, and one *edge* per input: the input's own
node (an intermediate result), the input tensor itself (a leaf that wants `.grad`), or None
(a constant). Nodes never hold their outputs, so an intermediate array lives only as long
as the user or a saved array holds it.

An op with several outputs (`unbind`) is one node too; each of its output tensors points
to an `Output` of it, and its backward gets one gradient per output.

Nodes are numbered as they are made, so sorting by that number gives execution order.
The same clock dates changes: assigning a tensor's `.data` notes the number at which its
memory changed, and backward refuses a node whose saved arrays changed after it was made.
`loss.backward()` sweeps, in reverse, the recorded nodes that reach `loss`; a `Tape`
opened with `with` keeps every node made inside it, for `tape.gradient`, `print` and DOT.
"""

from __future__ import annotations

import itertools
import weakref
from contextlib import ContextDecorator
from operator import attrgetter
from types import TracebackType
from typing import TYPE_CHECKING, Any, Optional, Sequence, Union

import numpy as np

if TYPE_CHECKING:
    from tinygrad_rnn.tensor import Function, Tensor

Edge = Union["Node", "Output", "Tensor", None]

_counter = itertools.count()  # numbers nodes and changes of memory, in one order
_active_tapes: list[Tape] = []
# id of an array that owns memory -> the number at which a tensor's `.data` over it was last
# assigned; numpy arrays cannot carry a version counter, so the clock is kept here
_changed: dict[int, int] = {}
_last_change = [-1]  # the number of the latest change of all


def note_change(array: np.ndarray) -> None:
    """Note that `array`'s memory (and so every view of it) changes now (`Tensor.data = ...`)."""
    owner = array if array.base is None else array.base
    key = id(owner)
    if key not in _changed:  # forget the entry when the memory is freed (its id can be reused)
        try:
            weakref.finalize(owner, _changed.pop, key, None)
        except TypeError:  # an owner without weak references (bytes): a stale entry is harmless,
            pass  # as memory made after a change is saved only by nodes numbered after it
    _changed[key] = _last_change[0] = next(_counter)


class _GradMode:
    enabled = True


def is_grad_enabled() -> bool:
    """True unless inside `no_grad()`."""
    return _GradMode.enabled


class no_grad(ContextDecorator):
    """Context manager and decorator: ops inside record nothing and hold no memory."""

    def __init__(self) -> None:
        self._prev: list[bool] = []  # a stack: a decorated function may call itself

    def __enter__(self) -> no_grad:
        self._prev.append(_GradMode.enabled)
        _GradMode.enabled = False
        return self

    def __exit__(self, *exc: object) -> None:
        _GradMode.enabled = self._prev.pop()


class Node:
    """One op on the tape, and the context its forward and backward share (as in PyTorch).

    `Function.apply` makes the node before the forward: the forward saves arrays on it
    (`save_for_backward`) and sets any attribute; the backward reads them back. A node
    that records also keeps the op's edges (see the module docstring), its number in
    execution order and the output's shape and dtype, never the output itself.
    `needs_input_grad[i]` tells whether input i wants a gradient at all.
    """

    __slots__ = (
        "fn", "edges", "saved_tensors", "released", "seq", "out_shape", "out_dtype", "outputs",
        "in_shapes", "__dict__",
    )  # fmt: skip
    if TYPE_CHECKING:  # ops store what they like on a node; tell mypy so, at no runtime cost
        # (a real __getattr__ would keep the interpreter from specialising attribute reads)
        def __setattr__(self, name: str, value: Any) -> None: ...

        def __getattr__(self, name: str) -> Any: ...

    def __init__(self, fn: type[Function], edges: tuple[Edge, ...]) -> None:
        self.fn = fn
        self.edges = edges
        self.saved_tensors: tuple[Any, ...] = ()
        self.released = False

    @property
    def needs_input_grad(self) -> tuple[bool, ...]:
        return tuple([e is not None for e in self.edges])

    @property
    def name(self) -> str:
        return self.fn.op_name()

    def save_for_backward(self, *arrays: Any) -> None:
        self.saved_tensors = arrays

    def record(self, inputs: list[np.ndarray], outputs: Union[Tensor, tuple[Tensor, ...]]) -> None:
        """Put this node on the tape as the maker of `outputs` (a tensor, or a tuple of them).

        `inputs` are the arrays the forward got (their shapes are shown by a Tape)."""
        self.seq = next(_counter)
        self.out_shape: Any  # the output's shape; for several outputs, theirs (print and DOT)
        if isinstance(outputs, tuple):
            self.outputs: Optional[tuple[Output, ...]] = tuple(
                [Output(self, i, t) for i, t in enumerate(outputs)]
            )
            self.out_shape = tuple([t._data.shape for t in outputs])
        else:
            self.outputs = None
            outputs._node = self
            self.out_shape, self.out_dtype = outputs._data.shape, outputs._data.dtype
        self.in_shapes: tuple[tuple[int, ...], ...] = ()  # only needed for printing a Tape
        if _active_tapes:
            self.in_shapes = tuple([a.shape for a in inputs])
            for tape in _active_tapes:
                tape.nodes.append(self)

    def check(self) -> None:
        """Raise if this node cannot be swept: released, or a saved array changed after it."""
        if self.released:
            raise RuntimeError(
                f"{self.name}: backward through this graph a second time; its saved arrays "
                "were released by the first backward (pass retain_graph=True to keep them)"
            )
        for a in self.saved_tensors:
            if a.__class__ is np.ndarray:
                changed = _changed.get(id(a if a.base is None else a.base), -1)
                if changed > self.seq:
                    raise RuntimeError(
                        f"{self.name}: an array saved for backward was modified in place after "
                        f"the forward (op {self.seq}, changed at {changed}); the gradient would be "
                        "wrong. Run backward before updating, or recompute the forward."
                    )

    def __repr__(self) -> str:
        ins = ", ".join(str(s) for s in self.in_shapes)
        return f"{self.name} {ins} -> {self.out_text()}"

    def out_text(self) -> str:
        """The output's shape, or "n x shape" for the n outputs of a multi-output op."""
        if self.outputs is None:
            return str(self.out_shape)
        shapes = set(self.out_shape)
        return f"{len(self.outputs)} x {shapes.pop()}" if len(shapes) == 1 else str(self.out_shape)


class Output:
    """Output `index` of a multi-output node: what each of its tensors points to as its maker."""

    __slots__ = ("node", "index", "out_shape", "out_dtype")

    def __init__(self, node: Node, index: int, tensor: Tensor) -> None:
        self.node, self.index = node, index
        self.out_shape, self.out_dtype = tensor._data.shape, tensor._data.dtype
        tensor._node = self


class IndexedGrad:
    """A gradient that is zero except at `index`, where it is `values`: what `x[index]` gets.

    A backward may return one in place of a dense array. The sweep adds it into a single
    buffer per input, so taking a sequence apart step by step (`xs[t]` for every t) costs
    the size of a step per step, not the size of the whole sequence.
    """

    __slots__ = ("index", "values")

    def __init__(self, index: Any, values: np.ndarray) -> None:
        self.index, self.values = index, values


class ProductGrad:
    """A gradient that is the matrix product `left @ right` (2-D), kept as its two factors.

    A matmul's backward returns one for its second operand (`a.T @ grad`). A weight used at
    every step of a recurrence gets one per step, and the sweep multiplies them all at once
    when the weight's gradient is needed: concat(lefts, axis=1) @ concat(rights, axis=0), one
    (k, T*n) @ (T*n, m) matmul instead of T small ones and T additions of (k, m) arrays.
    """

    __slots__ = ("left", "right")

    def __init__(self, left: np.ndarray, right: np.ndarray) -> None:
        self.left, self.right = left, right


class _Sum:
    """The gradient of one input while ProductGrads arrive: their factors and the dense
    gradients that came too, added up by `total` when the gradient is needed."""

    __slots__ = ("lefts", "rights", "dense", "node")

    def __init__(self, dense: Optional[np.ndarray], node: Node) -> None:
        self.lefts: list[np.ndarray] = []
        self.rights: list[np.ndarray] = []
        self.dense = [] if dense is None else [dense]
        self.node = node  # the first op that sent a product, for errors

    def __iadd__(self, g: np.ndarray) -> _Sum:  # the sweep's `old += g`
        self.dense.append(g)
        return self

    def total(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """The sum as one array of `shape` and `dtype` (a new one, which the sweep owns)."""
        try:
            if len(self.lefts) == 1:
                out = np.dot(self.lefts[0], self.rights[0])
            else:
                out = np.dot(np.concatenate(self.lefts, axis=1), np.concatenate(self.rights, axis=0))
        except ValueError as e:
            raise RuntimeError(
                f"{self.node.name}: backward returned a ProductGrad that does not multiply: {e}"
            ) from None
        if out.shape != shape:
            raise RuntimeError(
                f"{self.node.name}: backward returned products of shape {out.shape} "
                f"for an input of shape {shape}"
            )
        for g in self.dense:
            out += g
        return out if out.dtype == dtype else out.astype(dtype)


def _defer(grads: dict[Any, Any], owned: set[Any], edge: Any, g: ProductGrad, node: Node) -> None:
    """Keep a ProductGrad's factors in the edge's `_Sum` (made on the first one); `total` checks them."""
    acc = grads.get(edge)
    if acc.__class__ is not _Sum:
        grads[edge] = acc = _Sum(acc, node)
        owned.add(edge)  # so later dense gradients go to `acc += g`
    acc.lefts.append(g.left)
    acc.rights.append(g.right)


def is_basic_index(index: Any) -> bool:
    """True for ints, slices, None and Ellipsis: each element is picked at most once."""
    for part in index if isinstance(index, tuple) else (index,):
        if not (isinstance(part, (int, np.integer, slice)) or part is None or part is Ellipsis):
            return False
    return True


def _scatter(
    grads: dict[Any, np.ndarray], owned: set[Any], edge: Any, g: IndexedGrad, shape: Any, dtype: Any
) -> None:
    """Add an IndexedGrad into the edge's gradient buffer, made (or copied) once and owned."""
    buf = grads.get(edge)
    if buf.__class__ is _Sum:
        buf = buf.total(shape, dtype)
    elif buf is None:
        buf = np.zeros(shape, dtype)
    elif edge not in owned:
        buf = np.array(buf)  # a borrowed gradient may be shared or read-only
    grads[edge] = buf
    owned.add(edge)
    if is_basic_index(g.index):
        buf[g.index] += g.values
    else:  # an index may repeat: every occurrence adds its share
        np.add.at(buf, g.index, g.values)


def unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum `grad` over the axes that broadcasting added or stretched, back to `shape`.

    This is the only place where broadcasting's gradients are reduced: ops return gradients
    in the broadcast shape and the sweep calls this for every input.
    """
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad


def _fit(grad: Any, shape: tuple[int, ...], dtype: np.dtype, node: Node, i: int) -> np.ndarray:
    """An op's gradient for input i, as an array of that input's shape and dtype."""
    grad = np.asarray(grad)
    if grad.shape != shape:
        if grad.ndim >= len(shape):
            grad = unbroadcast(grad, shape)
        if grad.shape != shape:
            raise RuntimeError(
                f"{node.name}: backward returned a gradient of shape {grad.shape} "
                f"for input {i} of shape {shape}"
            )
    return grad if grad.dtype == dtype else grad.astype(dtype)


def _sweep(
    nodes: Sequence[Node],
    root: Edge,
    root_grad: np.ndarray,
    keep: frozenset[Any] = frozenset(),
) -> tuple[dict[Any, np.ndarray], list[Node], set[Any]]:
    """Reverse sweep of `nodes` (in execution order) from `root` with gradient `root_grad`.

    Returns the gradients reaching leaves (keyed by tensor) and nodes in `keep` (keyed by
    node), the nodes that were swept, and the keys whose arrays the sweep made itself.
    Changes no state, so an error leaves everything as it was: the caller writes `.grad`
    and releases the nodes after a whole sweep.
    """
    grads: dict[Any, np.ndarray] = {root: root_grad}
    owned: set[Any] = set()
    swept: list[Node] = []
    # the hot path of training: `x.__class__ is C` and `dtype is not d` are cheap identity
    # tests in front of the general cases (`_fit`, `_scatter`)
    for node in reversed(nodes):
        if node.outputs is None:
            grad = grads.get(node) if node in keep else grads.pop(node, None)
            if grad is None:
                continue
            if grad.__class__ is _Sum:
                grad = grad.total(node.out_shape, node.out_dtype)
            if node.released or node.seq < _last_change[0]:  # memory changed since the op
                node.check()
            in_grads = node.fn.backward(node, grad)
        else:  # an op with several outputs: a gradient for each, zeros where none came
            out_grads = _output_grads(grads, node.outputs, keep)
            if out_grads is None:
                continue
            node.check()
            in_grads = node.fn.backward(node, *out_grads)
        if in_grads.__class__ is not tuple:
            in_grads = tuple(in_grads) if isinstance(in_grads, list) else (in_grads,)
        edges = node.edges
        if len(in_grads) != len(edges):
            raise RuntimeError(
                f"{node.name}: backward returned {len(in_grads)} gradients for {len(edges)} inputs"
            )
        for i, g in enumerate(in_grads):
            edge = edges[i]
            if edge is None or g is None:
                continue
            if edge.__class__ is Node or edge.__class__ is Output:
                shape, dtype = edge.out_shape, edge.out_dtype
            else:
                shape, dtype = edge._data.shape, edge._data.dtype  # type: ignore[union-attr]
            if g.__class__ is not np.ndarray or g.shape != shape or g.dtype is not dtype:
                if g.__class__ is IndexedGrad:
                    _scatter(grads, owned, edge, g, shape, dtype)
                    continue
                if g.__class__ is ProductGrad:
                    _defer(grads, owned, edge, g, node)
                    continue
                g = _fit(g, shape, dtype, node, i)
            old = grads.get(edge)
            if old is None:
                grads[edge] = g  # borrowed: it may be a view of another node's gradient
            elif edge in owned:
                old += g
            else:  # the first sum is a new array that the sweep owns and may add into
                grads[edge] = np.asarray(old + g)  # asarray: 0-d sums come back as scalars
                owned.add(edge)
        swept.append(node)
    return grads, swept, owned


def _output_grads(
    grads: dict[Any, np.ndarray], outputs: tuple[Output, ...], keep: frozenset[Any]
) -> Optional[tuple[np.ndarray, ...]]:
    """The gradients of a multi-output node's outputs (zeros where none came), or None if none came."""
    got: list[Any] = []
    missing = 0
    for o in outputs:
        g = grads.get(o) if o in keep else grads.pop(o, None)
        if g is None:
            missing += 1
        elif g.__class__ is _Sum:
            g = g.total(o.out_shape, o.out_dtype)
        got.append(g)
    if missing == len(outputs):
        return None
    if missing:
        got = [np.zeros(o.out_shape, o.out_dtype) if g is None else g for o, g in zip(outputs, got)]
    return tuple(got)


def _release(nodes: list[Node]) -> None:
    """Drop everything the nodes' forwards saved (after a backward without retain_graph)."""
    for node in nodes:
        node.__dict__.clear()
        node.saved_tensors = ()
        node.released = True


def _reachable(root: Node) -> list[Node]:
    """The recorded nodes that reach `root`, in execution order (iterative, no recursion)."""
    seen = {root}
    stack = [root]
    while stack:
        for edge in stack.pop().edges:
            if edge.__class__ is not Node:
                if edge.__class__ is not Output:
                    continue  # a leaf or a constant
                edge = edge.node
            if edge not in seen:
                seen.add(edge)
                stack.append(edge)
    return sorted(seen, key=attrgetter("seq"))


def backward(tensor: Tensor, grad: np.ndarray, retain_graph: bool) -> None:
    """Accumulate d(tensor)/d(leaf) . grad into every leaf's `.grad` (see Tensor.backward)."""
    root = tensor._node
    if root is None:  # a leaf: its gradient is the seed itself
        _accumulate({tensor: grad}, set())
        return
    start = root.node if isinstance(root, Output) else root
    grads, swept, owned = _sweep(_reachable(start), root, grad)
    _accumulate(grads, owned)
    if not retain_graph:
        _release(swept)


def _accumulate(grads: dict[Any, np.ndarray], owned: set[Any]) -> None:
    """Add each leaf's gradient into its `.grad`; copy only arrays the sweep did not make."""
    for key, g in grads.items():
        if not isinstance(key, (Node, Output)):
            if g.__class__ is _Sum:
                g = g.total(key._data.shape, key._data.dtype)
            if key.grad is not None:
                key.grad = np.asarray(key.grad + g)
            else:
                key.grad = g if key in owned else np.array(g)


class Tape:
    """Records every op made inside `with Tape() as tape:`, in execution order.

    `tape.gradient(y, [a, b])` sweeps the record backwards and returns arrays without
    touching `.grad`; gradients flow only through ops recorded on this tape.
    `len(tape)`, `print(tape)` and `tape.to_dot()` show what was recorded.
    """

    def __init__(self) -> None:
        self.nodes: list[Node] = []

    def __enter__(self) -> Tape:
        _active_tapes.append(self)
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        _active_tapes.remove(self)

    def __len__(self) -> int:
        return len(self.nodes)

    def __iter__(self) -> Any:
        return iter(self.nodes)

    def __str__(self) -> str:
        lines = [f"Tape with {len(self.nodes)} ops"]
        lines += [f"{i:4d}: {node!r}" for i, node in enumerate(self.nodes)]
        return "\n".join(lines)

    __repr__ = __str__

    def gradient(
        self,
        target: Tensor,
        sources: Sequence[Tensor],
        grad: Optional[np.ndarray] = None,
        retain_graph: bool = False,
    ) -> list[np.ndarray]:
        """d(target)/d(source) . grad for each source, as arrays of the sources' shapes.

        `grad` defaults to 1 for a scalar target. A source the target does not depend on
        (through this tape) gets zeros. Unless `retain_graph`, the swept nodes are released.
        """
        seed = target._seed_grad(grad)
        maker = target._node.node if target._node.__class__ is Output else target._node
        if maker is not None and maker not in self.nodes:
            raise ValueError("gradient: the target was not computed on this tape")
        root: Edge = target._node if target._node is not None else target
        keys = [s._node if s._node is not None else s for s in sources]
        keep = frozenset(k for k in keys if isinstance(k, (Node, Output)))
        grads, swept, _ = _sweep(self.nodes, root, seed, keep)
        if not retain_graph:
            _release(swept)
        out = []
        for s, k in zip(sources, keys):
            g = grads.get(k)
            if g.__class__ is _Sum:
                g = g.total(s.shape, s.dtype)
            out.append(np.zeros(s.shape, s.dtype) if g is None else np.array(g, dtype=s.dtype))
        return out

    def to_dot(self, names: Any = None) -> str:
        """The recorded graph as Graphviz DOT text: boxes for ops, ellipses for leaves,
        named from `names` (a Module's `named_parameters`, or {name: tensor})."""
        from tinygrad_rnn import draw

        return draw.to_dot(self, names)

    def draw(
        self, path: Any, names: Any = None, target: Optional[Tensor] = None, engine: str = "auto"
    ) -> Any:
        """Write the recorded graph to `path` (.svg or .png) with Graphviz, or matplotlib
        without it; `target=loss` adds every op's gradient norm (see `tinygrad_rnn.draw`)."""
        from tinygrad_rnn import draw

        return draw.draw(self, path, names, target, engine)

    def _repr_svg_(self) -> Optional[str]:
        """Jupyter shows a tape as its picture (up to 300 ops; else, or if nothing can draw, as text)."""
        from tinygrad_rnn import draw

        if not 0 < len(self.nodes) <= 300:
            return None
        try:
            return draw.render(self, "svg").decode()
        except draw.DrawingUnavailable:
            return None
