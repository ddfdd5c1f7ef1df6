"""The tape: a record of ops in execution order, and backward as a reverse sweep of it.

Six ideas, in the order they are needed before backward makes sense:

1. Tensor: a numpy array, with `.grad` and the node that made it (`tensor.py`).
2. Function: an op's `forward` (arrays in, array out) and `backward` (the output's
   gradient in, one gradient per input out) (`tensor.py`).
3. Node: the record of one applied op, which is also its `ctx`: what forward saved, and one
   edge per input: the input's own node, the input tensor itself (a leaf that wants
   `.grad`) or None (a constant). Nodes never hold their outputs.
4. Execution order: nodes are numbered as they are made, so sorting by number replays the
   forward; a `Tape` opened with `with` keeps every node made inside it.
5. The reverse sweep: from the output, newest node first, call each node's backward with
   its output's gradient and collect what it returns per input (per edge).
6. Combine: an input's contributions become one array of its shape and dtype, summed,
   broadcasting reduced (`grads.combine`, `grads.unbroadcast`).

Details that come after: an op with several outputs (`unbind`) is one node whose output
tensors each point to an `Output` of it; its backward gets one gradient per output. The
numbering clock also dates changes of memory: assigning a tensor's `.data` in place notes
it, and backward refuses a node whose saved arrays changed after it was made. Grad mode
(`no_grad`) is per thread.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import threading
import weakref
from itertools import repeat
from operator import attrgetter, is_not
from types import TracebackType
from typing import TYPE_CHECKING, Any, Callable, Generator, Optional, Sequence, TypeVar, Union

import numpy as np

from tinygrad_rnn import grads
from tinygrad_rnn.grads import Contributions
from tinygrad_rnn.grads import IndexedGrad as IndexedGrad  # noqa: F401  (their old home)
from tinygrad_rnn.grads import ProductGrad as ProductGrad  # noqa: F401
from tinygrad_rnn.grads import unbroadcast as unbroadcast  # noqa: F401

if TYPE_CHECKING:
    from tinygrad_rnn.tensor import Function, Tensor

Edge = Union["Node", "Output", "Tensor", None]
F = TypeVar("F", bound=Callable[..., Any])

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


class _GradMode(threading.local):
    """Whether ops record, per thread (as in PyTorch): `no_grad` in one thread leaves others alone."""

    enabled = True


_grad_mode = _GradMode()


def is_grad_enabled() -> bool:
    """True unless inside `no_grad()` (in this thread)."""
    return _grad_mode.enabled


class no_grad:
    """Context manager and decorator: ops inside record nothing and hold no memory.

    As a decorator it also works on a generator function: grad is off inside the generator's
    body, and the caller's mode is back between the values it yields (PyTorch's behaviour).
    """

    def __init__(self) -> None:
        self._prev: list[bool] = []  # a stack: one `no_grad()` object may be entered twice

    def __enter__(self) -> no_grad:
        self._prev.append(_grad_mode.enabled)
        _grad_mode.enabled = False
        return self

    def __exit__(self, *exc: object) -> None:
        _grad_mode.enabled = self._prev.pop()

    def __call__(self, func: F) -> F:
        if inspect.isgeneratorfunction(func):
            return _no_grad_generator(func)  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with no_grad():  # a new one per call: calls may overlap (recursion, threads)
                return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


def _no_grad_generator(func: Callable[..., Generator[Any, Any, Any]]) -> Callable[..., Any]:
    """`func`'s generators with grad off while their body runs, and only then."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        gen = func(*args, **kwargs)
        sent: Any = None
        thrown: Optional[BaseException] = None
        while True:
            try:
                with no_grad():
                    out = gen.throw(thrown) if thrown is not None else gen.send(sent)
            except StopIteration as stop:
                return stop.value
            thrown = sent = None
            try:
                sent = yield out
            except GeneratorExit:
                with no_grad():
                    gen.close()
                raise
            except BaseException as e:  # thrown in by the caller: pass it on to the body
                thrown = e

    return wrapper


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
        return tuple(map(is_not, self.edges, repeat(None)))  # e is not None, for each edge

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


def _sweep(
    nodes: Sequence[Node], root: Edge, root_grad: np.ndarray, keep: frozenset[Any] = frozenset()
) -> tuple[dict[Any, Any], list[Node]]:
    """Reverse sweep of `nodes` (in execution order) from `root` with gradient `root_grad`.

    Returns what was collected per key for the leaves (keyed by tensor) and for the nodes
    in `keep` (see `grads.combine`), and the nodes that were swept. Changes no state, so an
    error leaves everything as it was: the caller writes `.grad` and releases the nodes.
    """
    pending: dict[Any, Any] = {root: root_grad}  # key -> its gradient contributions so far
    swept: list[Node] = []
    for node in reversed(nodes):
        if node.outputs is None:  # one output, keyed by the node
            grad = pending.get(node) if node in keep else pending.pop(node, None)
            if grad is None:
                continue  # nothing reached this node
            if grad.__class__ is not np.ndarray:  # several contributions, or another form
                grad = grads.combine(grad, node.out_shape, node.out_dtype)
            if node.released or node.seq < _last_change[0]:  # memory changed since the op
                node.check()
            in_grads = node.fn.backward(node, grad)
        else:  # several outputs: a gradient for each, zeros where none came
            out_grads = _output_grads(pending, node.outputs, keep)
            if out_grads is None:
                continue
            node.check()
            in_grads = node.fn.backward(node, *out_grads)
        _collect(pending, node, in_grads)
        swept.append(node)
    return pending, swept


def _collect(pending: dict[Any, Any], node: Node, in_grads: Any) -> None:
    """Add what `node`'s backward returned (a gradient per input) to its inputs' contributions."""
    edges = node.edges
    if in_grads.__class__ is np.ndarray:
        in_grads = (in_grads,)  # the gradient of a one-input op
    if in_grads.__class__ is not tuple or len(in_grads) != len(edges):
        in_grads = _one_per_input(in_grads, node)
    for i, g in enumerate(in_grads):
        edge = edges[i]
        if edge is None or g is None:
            continue
        if edge.__class__ is Node or edge.__class__ is Output:
            shape, dtype = edge.out_shape, edge.out_dtype
        else:  # a leaf tensor
            shape, dtype = edge._data.shape, edge._data.dtype  # type: ignore[union-attr]
        if g.__class__ is not np.ndarray or g.shape != shape or (g.dtype is not dtype and g.dtype != dtype):
            g = grads.fit(g, shape, dtype, node, i)  # broadcast, dtype, or another form
        old = pending.get(edge)  # what came before: None, one gradient, or Contributions
        if old is None:
            pending[edge] = g
        elif old.__class__ is Contributions:
            old.append(g)
        else:
            pending[edge] = grads.add(old, g)


def _output_grads(
    pending: dict[Any, Any], outputs: tuple[Output, ...], keep: frozenset[Any]
) -> Optional[tuple[np.ndarray, ...]]:
    """The gradients of a multi-output node's outputs (zeros where none came), or None if none came."""
    got: list[Any] = []
    missing = 0
    for o in outputs:
        g = pending.get(o) if o in keep else pending.pop(o, None)
        if g is None:
            missing += 1
        elif g.__class__ is not np.ndarray:
            g = grads.combine(g, o.out_shape, o.out_dtype)
        got.append(g)
    if missing == len(got):
        return None
    if missing:
        got = [np.zeros(o.out_shape, o.out_dtype) if g is None else g for o, g in zip(outputs, got)]
    return tuple(got)


def _one_per_input(in_grads: Any, node: Node) -> tuple[Any, ...]:
    """A backward's result as a tuple of one gradient per input (a list, or a single gradient)."""
    if in_grads.__class__ is not tuple:
        in_grads = tuple(in_grads) if isinstance(in_grads, list) else (in_grads,)
    if len(in_grads) != len(node.edges):
        raise RuntimeError(
            f"{node.name}: backward returned {len(in_grads)} gradients for {len(node.edges)} inputs"
        )
    return in_grads


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
        _accumulate({tensor: grad})
        return
    pending, swept = _sweep(_reachable(root.node if isinstance(root, Output) else root), root, grad)
    _accumulate(pending)
    if not retain_graph:
        _release(swept)


def _accumulate(pending: dict[Any, Any]) -> None:
    """Add each leaf's combined gradient into its `.grad`; an array the sweep did not make is copied."""
    for key, collected in pending.items():
        if not isinstance(key, (Node, Output)):
            g = grads.combine(collected, key._data.shape, key._data.dtype)
            if key.grad is not None:
                key.grad = np.asarray(key.grad + g)
            else:
                key.grad = np.array(g) if g is collected else g


class Tape:
    """Records every op made inside `with Tape() as tape:`, in execution order.

    `tape.gradient(y, [a, b])` sweeps the record backwards and returns arrays without
    touching `.grad`; gradients flow only through ops recorded on this tape.
    `len(tape)`, `print(tape)` and `tape.to_dot()` show what was recorded. A tape may be
    entered again after it closed (it goes on recording); entering it while it records is
    a RuntimeError, as it would record every op twice. Tapes record ops of every thread.
    """

    def __init__(self) -> None:
        self.nodes: list[Node] = []

    def __enter__(self) -> Tape:
        if self in _active_tapes:  # it would record every op twice
            raise RuntimeError("Tape: this tape is already recording; enter it once (nest another Tape)")
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
        pending, swept = _sweep(self.nodes, root, seed, keep)
        if not retain_graph:
            _release(swept)
        out = []
        for s, k in zip(sources, keys):
            collected = pending.get(k)
            g = (
                np.zeros(s.shape, s.dtype)
                if collected is None
                else grads.combine(collected, s.shape, s.dtype)
            )
            out.append(np.array(g, dtype=s.dtype))  # a copy: the caller may write into it
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
