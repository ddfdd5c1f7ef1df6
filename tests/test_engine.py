"""The tape's behaviour: accumulation, graphs, release, no_grad, dtypes, safety, errors."""

from __future__ import annotations

import gc
import tracemalloc

import numpy as np
import pytest

import tinygrad_rnn as tg
from tinygrad_rnn import Context, Function, GradcheckError, Tape, Tensor, gradcheck, no_grad


def leaf(*shape: int, seed: int = 0, dtype: type = np.float64) -> Tensor:
    return Tensor(np.random.default_rng(seed).standard_normal(shape).astype(dtype), requires_grad=True)


# --- accumulation -------------------------------------------------------------------------
def test_tensor_used_twice_gets_both_contributions() -> None:
    x = leaf(3)
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad, 2 * x.data, rtol=1e-15)
    y = leaf(3)
    (y + y).sum().backward()
    np.testing.assert_array_equal(y.grad, np.full(3, 2.0))


def test_reused_node_micrograd_trap() -> None:
    a = Tensor(3.0, requires_grad=True)
    b = a + a
    c = b + b  # c = 4a
    d = c * b  # d = 8a^2, dd/da = 16a = 48
    d.backward()
    assert a.grad is not None and a.grad.shape == () and isinstance(a.grad, np.ndarray)
    assert a.grad == 48.0


def test_diamond_graph() -> None:
    x = leaf(4)
    h = x.tanh()
    left, right = h * 2.0, h.exp()
    (left + right).sum().backward()
    t = np.tanh(x.data)
    np.testing.assert_allclose(x.grad, (2 + np.exp(t)) * (1 - t * t), rtol=1e-14)


def test_weight_used_at_every_time_step() -> None:
    rng = np.random.default_rng(0)
    w = Tensor(rng.standard_normal((3, 3)) * 0.5, requires_grad=True)
    xs = rng.standard_normal((6, 2, 3))
    h = Tensor(np.zeros((2, 3)))
    for t in range(6):
        h = (h @ w + xs[t]).tanh()
    h.sum().backward()
    # same recurrence written by hand: reverse loop summing dW over time
    hs = [np.zeros((2, 3))]
    for t in range(6):
        hs.append(np.tanh(hs[-1] @ w.data + xs[t]))
    dh, dw = np.ones((2, 3)), np.zeros((3, 3))
    for t in reversed(range(6)):
        draw = dh * (1 - hs[t + 1] ** 2)
        dw += hs[t].T @ draw
        dh = draw @ w.data.T
    np.testing.assert_allclose(w.grad, dw, rtol=1e-12)


def test_backward_accumulates_across_calls_until_zeroed() -> None:
    x = leaf(2)
    (x * 3.0).sum().backward()
    (x * 3.0).sum().backward()
    np.testing.assert_array_equal(x.grad, [6.0, 6.0])
    x.zero_grad()
    assert x.grad is None


def test_deep_graph_does_not_recurse() -> None:
    x = Tensor(np.array([0.5]), requires_grad=True)
    h = x
    for _ in range(5000):
        h = h * 1.0 + 0.0
    h.sum().backward()
    np.testing.assert_array_equal(x.grad, [1.0])
    del h
    gc.collect()


# --- the tape -----------------------------------------------------------------------------
def test_tape_records_in_order_and_prints_names_and_shapes() -> None:
    x, w = leaf(3, 4), leaf(4, 2, seed=1)
    with Tape() as tape:
        loss = tg.softmax_cross_entropy((x @ w).tanh(), np.array([0, 1, 1]))
    assert len(tape) == 3
    assert [n.name for n in tape] == ["matmul", "tanh", "softmax_cross_entropy"]
    lines = str(tape).splitlines()
    assert lines[1].strip() == "0: matmul (3, 4), (4, 2) -> (3, 2)"
    assert lines[3].strip() == "2: softmax_cross_entropy (3, 2) -> ()"
    dot = tape.to_dot()
    assert dot.startswith("digraph") and dot.count("->") == 4 and "matmul" in dot
    assert loss.requires_grad


def test_user_function_appears_under_its_class_name() -> None:
    class Cube(Function):
        @staticmethod
        def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
            ctx.save_for_backward(x)
            return x**3

        @staticmethod
        def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
            (x,) = ctx.saved_tensors
            return 3 * x**2 * grad

    x = leaf(3)
    with Tape() as tape:
        Cube.apply(x).sum()
    assert [n.name for n in tape] == ["Cube", "sum"]
    assert gradcheck(lambda a: Cube.apply(a), [x])


def test_tape_gradient_returns_arrays_without_touching_grad() -> None:
    x, w = leaf(3, 4), leaf(4, 2, seed=1)
    with Tape() as tape:
        h = x @ w
        loss = h.tanh().sum()
    dx, dw, dh = tape.gradient(loss, [x, w, h])
    assert x.grad is None and w.grad is None
    y = np.tanh(x.data @ w.data)
    np.testing.assert_allclose(dh, 1 - y * y, rtol=1e-14)
    np.testing.assert_allclose(dw, x.data.T @ (1 - y * y), rtol=1e-14)
    np.testing.assert_allclose(dx, (1 - y * y) @ w.data.T, rtol=1e-14)
    unused = leaf(2)
    with Tape() as tape2:
        out = (x * 2.0).sum()
    (g,) = tape2.gradient(out, [unused])
    np.testing.assert_array_equal(g, np.zeros(2))


def test_released_graph_raises_unless_retained() -> None:
    x = leaf(3)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad, 4 * x.data, rtol=1e-15)
    with pytest.raises(RuntimeError, match="second time.*retain_graph"):
        y.backward()


def test_backward_releases_saved_arrays() -> None:
    x = leaf(1000)
    y = x.tanh()
    loss = (y * y).sum()
    node = loss._node
    loss.backward()
    assert node is not None and node.released
    assert y._node is not None and y._node.released


def test_training_loop_memory_stays_flat() -> None:
    w = leaf(64, 64)
    xs = np.random.default_rng(0).standard_normal((20, 8, 64))

    def step() -> None:
        h = Tensor(np.zeros((8, 64)))
        for t in range(20):
            h = (h @ w + xs[t]).tanh()
        h.sum().backward()
        w.zero_grad()

    for _ in range(5):
        step()
    gc.collect()
    tracemalloc.start()
    for _ in range(5):
        step()
    first, _ = tracemalloc.get_traced_memory()
    for _ in range(50):
        step()
    second, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert second - first < 200_000  # one step holds ~20 * 8 * 64 * 8 bytes * a few = ~100 kB


# --- no_grad, dtypes -------------------------------------------------------------------------
def test_no_grad_records_nothing_as_context_and_decorator() -> None:
    x = leaf(3)
    with Tape() as tape, no_grad():
        y = (x * 2.0).tanh()
    assert len(tape) == 0 and not y.requires_grad and y._node is None
    assert tg.is_grad_enabled()

    @no_grad()
    def f(t: Tensor) -> Tensor:
        assert not tg.is_grad_enabled()
        return t * t

    assert not f(x).requires_grad
    assert tg.is_grad_enabled()

    @no_grad()
    def countdown(n: int) -> int:  # the same decorator instance entered recursively
        return 0 if n == 0 else countdown(n - 1)

    countdown(3)
    assert tg.is_grad_enabled()


def test_float32_stays_float32_through_ops_and_grads() -> None:
    x, w = leaf(3, 4, dtype=np.float32), leaf(4, 2, seed=1, dtype=np.float32)
    b = Tensor(np.zeros(2, np.float32), requires_grad=True)
    y = ((x @ w + b) * 2.0 - 1).tanh().sigmoid().exp().log().softmax()
    loss = tg.softmax_cross_entropy(y / 3.0, np.array([0, 1, 0]), reduction="mean")
    assert y.dtype == np.float32 and loss.dtype == np.float32
    loss.backward()
    for t in (x, w, b):
        assert t.grad is not None and t.grad.dtype == np.float32 and t.grad.shape == t.shape


def test_default_dtypes() -> None:
    assert Tensor([1.0, 2.0]).dtype == np.float64
    assert Tensor(np.ones(2, np.float16)).dtype == np.float64
    assert Tensor(np.ones(2, np.float32)).dtype == np.float32
    assert Tensor([1, 2]).dtype.kind == "i"
    with pytest.raises(TypeError, match="only float tensors"):
        Tensor([1, 2], requires_grad=True)


def test_broadcast_grads_keep_shape_and_dtype_for_scalars_and_0d() -> None:
    s = Tensor(np.float32(2.0), requires_grad=True)
    v = leaf(3, dtype=np.float32)
    (s * v).sum().backward()
    assert isinstance(s.grad, np.ndarray) and s.grad.shape == () and s.grad.dtype == np.float32
    np.testing.assert_allclose(s.grad, v.data.sum(), rtol=1e-6)
    b = leaf(1, 3)
    (b + leaf(4, 3)).sum().backward()
    np.testing.assert_array_equal(b.grad, np.full((1, 3), 4.0))


# --- ops with several outputs -----------------------------------------------------------------
class SquareAndCube(Function):
    """A user's op with two outputs; it records the gradients its backward receives."""

    seen: list[tuple[np.ndarray, np.ndarray]] = []

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ctx.save_for_backward(x)
        return x * x, x * x * x

    @staticmethod
    def backward(ctx: Context, *grads: np.ndarray) -> np.ndarray:
        (x,) = ctx.saved_tensors
        SquareAndCube.seen.append((grads[0].copy(), grads[1].copy()))
        return 2 * x * grads[0] + 3 * x * x * grads[1]


def test_a_users_op_with_two_outputs_is_one_node_and_gets_a_gradient_per_output() -> None:
    x = leaf(3)
    with Tape() as tape:
        sq, cube = SquareAndCube.apply(x)
        loss = (sq * 2.0 + cube).sum()
    assert [n.name for n in tape] == ["SquareAndCube", "mul", "add", "sum"]
    loss.backward()
    np.testing.assert_allclose(x.grad, 4 * x.data + 3 * x.data**2, rtol=1e-14)
    assert gradcheck(lambda t: (SquareAndCube.apply(t)[0] - SquareAndCube.apply(t)[1]).sum(), [leaf(4)])
    SquareAndCube.seen.clear()
    x.zero_grad()
    SquareAndCube.apply(x)[1].sum().backward()  # the square is unused: its gradient is zeros
    (g_sq, g_cube) = SquareAndCube.seen[-1]
    np.testing.assert_array_equal(g_sq, np.zeros(3))
    np.testing.assert_array_equal(g_cube, np.ones(3))
    np.testing.assert_allclose(x.grad, 3 * x.data**2, rtol=1e-14)


def test_unbind_is_one_node_of_views_and_works_as_root_target_and_source() -> None:
    x = leaf(4, 3)
    with Tape() as tape:
        rows = x.unbind()
        y = (rows[0] * rows[2]).sum()
    assert len(rows) == 4 and all(r.shape == (3,) for r in rows) and rows[1].data.base is not None
    assert str(tape).splitlines()[1].endswith("unbind (4, 3) -> 4 x (3,)")
    assert "4 x (3,)" in tape.to_dot()
    dx, d0, d1 = tape.gradient(y, [x, rows[0], rows[1]], retain_graph=True)
    np.testing.assert_array_equal(d0, x.data[2])
    np.testing.assert_array_equal(d1, np.zeros(3))
    np.testing.assert_array_equal(dx, np.stack([x.data[2], np.zeros(3), x.data[0], np.zeros(3)]))
    rows[3].backward(np.arange(3.0), retain_graph=True)  # an output of a multi-output op as root
    np.testing.assert_array_equal(x.grad, np.stack([np.zeros(3)] * 3 + [np.arange(3.0)]))
    x.zero_grad()
    y.backward()
    np.testing.assert_array_equal(x.grad, dx)
    with pytest.raises(RuntimeError, match="unbind: backward through this graph a second time"):
        (rows[1] * 1.0).sum().backward()


def test_an_in_place_change_under_an_unbind_view_is_caught() -> None:
    x = leaf(2, 3)
    a, b = x.unbind()
    loss = (a * b).sum()  # mul saved the views a and b
    x.data -= 0.5
    with pytest.raises(RuntimeError, match="mul: an array saved for backward was modified in place"):
        loss.backward()


# --- gradients kept as products ---------------------------------------------------------------
def test_a_weight_shared_by_many_matmuls_gets_the_sum_of_their_products() -> None:
    w = leaf(4, 3)
    xs = [leaf(2, 4, seed=s) for s in range(1, 6)]
    with Tape() as tape:
        y = tg.stack([x @ w for x in xs[:3]] + [tg.addmm(leaf(1, 3), x, w) for x in xs[3:]])
        loss = (y * y).sum() + (w * w).sum() + w[1].sum()  # products, a dense term, a scatter
    r = 2 * y.data
    want = sum(x.data.T @ r[k] for k, x in enumerate(xs)) + 2 * w.data
    want[1] += 1.0
    (dw,) = tape.gradient(loss, [w], retain_graph=True)
    np.testing.assert_allclose(dw, want, rtol=1e-13)
    loss.backward()
    np.testing.assert_allclose(w.grad, want, rtol=1e-13)
    assert gradcheck(
        lambda a, b: (tg.stack([a @ b, b.T @ b.T.T]) ** 2).sum(), [leaf(3, 3), leaf(3, 3, seed=2)]
    )


@pytest.mark.parametrize(
    "left, right, message",
    [
        ((2, 1), (1, 5), r"backward returned products of shape \(2, 5\) for input 0 of shape \(2, 3\)"),
        ((2, 4), (1, 3), r"backward returned a ProductGrad that does not multiply: \(2, 4\) @ \(1, 3\)"),
    ],
)
def test_a_product_gradient_that_does_not_fit_names_the_op(
    left: tuple[int, int], right: tuple[int, int], message: str
) -> None:
    class BadProduct(Function):
        @staticmethod
        def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
            return x.sum(keepdims=True)

        @staticmethod
        def backward(ctx: Context, grad: np.ndarray) -> tg.ProductGrad:
            return tg.ProductGrad(np.ones(left), np.ones(right))  # for a (2, 3) input

    with pytest.raises(RuntimeError, match="BadProduct: " + message):
        BadProduct.apply(leaf(2, 3)).sum().backward()


# --- safety and errors -----------------------------------------------------------------------
def test_in_place_change_of_a_saved_array_makes_backward_raise() -> None:
    w = leaf(4, 2)
    x = Tensor(np.ones((3, 4)))
    loss = (x @ w).tanh().sum()
    w.data -= 0.1  # an optimizer step between forward and backward
    with pytest.raises(RuntimeError, match="matmul: an array saved for backward was modified in place"):
        loss.backward()
    assert w.grad is None  # nothing changed


def test_in_place_change_of_a_saved_output_is_caught() -> None:
    x = leaf(3)
    y = x.tanh()
    loss = (y * 1.0).sum()
    y.data *= 0  # changes the array tanh (and mul) saved, in place
    with pytest.raises(RuntimeError, match="(tanh|mul): an array saved"):
        loss.backward()


def test_a_change_through_a_detached_or_memory_sharing_tensor_is_caught() -> None:
    w = leaf(3)
    loss = (w * w).sum()
    w.detach().data -= 1.0  # the same memory
    with pytest.raises(RuntimeError, match="mul: an array saved for backward was modified in place"):
        loss.backward()
    base = np.ones((2, 3))
    a = Tensor(base, requires_grad=True)
    loss = (a * a).sum()
    Tensor(base[0]).data -= 1.0  # another tensor over a row of the same memory
    with pytest.raises(RuntimeError, match="modified in place"):
        loss.backward()


def test_the_change_clock_forgets_freed_memory() -> None:
    from tinygrad_rnn import tape

    before = len(tape._changed)
    for _ in range(50):
        t = Tensor(np.ones(4))
        t.data -= 1.0  # each a new array, freed on the next iteration
    gc.collect()
    assert len(tape._changed) <= before + 1
    # memory owned by bytes (no weak references): the change is still noted, and stops a backward
    over_bytes = Tensor(np.frombuffer(bytes(32), dtype=np.float64), requires_grad=True)
    y = (over_bytes * over_bytes).sum()
    over_bytes.data = over_bytes.data[::-1]  # a view of the same memory: a change of it
    with pytest.raises(RuntimeError, match="modified in place"):
        y.backward()


def test_update_after_backward_is_fine() -> None:
    w = leaf(3)
    (w * w).sum().backward()
    w.data -= 0.1 * w.grad
    w.zero_grad()
    (w * w).sum().backward()
    np.testing.assert_allclose(w.grad, 2 * w.data, rtol=1e-15)


def test_shape_errors_name_the_op_and_shapes_at_the_op() -> None:
    with pytest.raises(ValueError, match=r"matmul: shapes \(3, 4\) and \(5, 2\) do not align"):
        leaf(3, 4) @ leaf(5, 2)
    with pytest.raises(ValueError, match=r"add: .*\(3,4\).*\(5,\)"):
        leaf(3, 4) + leaf(5)
    with pytest.raises(ValueError, match="reshape: "):
        leaf(3, 4).reshape(5)
    with pytest.raises(ValueError, match=r"softmax_cross_entropy: targets of shape \(2,\)"):
        tg.softmax_cross_entropy(leaf(3, 4), np.array([0, 1]))
    with pytest.raises(ValueError, match=r"softmax_cross_entropy: targets must be in \[0, 4\)"):
        tg.softmax_cross_entropy(leaf(3, 4), np.array([0, 1, 4]))
    with pytest.raises(ValueError, match="sum: axis 2 is out of range"):
        leaf(3, 4).sum(axis=2)
    with pytest.raises(ValueError, match=r"pow: .*\(3,\).*\(2,\)"):  # a tensor exponent broadcasts
        leaf(3).abs() ** leaf(2)


def test_backward_on_non_scalar_needs_a_gradient() -> None:
    x = leaf(3)
    y = x * 2.0
    with pytest.raises(RuntimeError, match=r"grad must be given for a non-scalar output of shape \(3,\)"):
        y.backward()
    with pytest.raises(ValueError, match=r"grad of shape \(2,\)"):
        y.backward(np.ones(2))
    y.backward(np.array([1.0, 0.0, 2.0]))
    np.testing.assert_array_equal(x.grad, [2.0, 0.0, 4.0])  # the given gradient, through * 2
    with pytest.raises(RuntimeError, match="does not require grad"):
        Tensor(1.0).backward()


def test_wrong_number_of_gradients_from_a_function_is_a_clear_error() -> None:
    class Bad(Function):
        @staticmethod
        def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
            return a + b

        @staticmethod
        def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
            return grad

    with pytest.raises(RuntimeError, match="Bad: backward returned 1 gradients for 2 inputs"):
        Bad.apply(leaf(2), leaf(2)).sum().backward()


# --- gradcheck -------------------------------------------------------------------------------
class Square(Function):
    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        (x,) = ctx.saved_tensors
        return 2 * x * grad


class WrongSquare(Square):
    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        (x,) = ctx.saved_tensors
        return 2.01 * x * grad


class AffineSquare(Square):
    """Right at grad = 1, but not linear in the upstream gradient."""

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        (x,) = ctx.saved_tensors
        return 2 * x * grad + 1e-3


def test_gradcheck_passes_right_and_rejects_wrong_backward() -> None:
    x = leaf(2, 3)
    assert gradcheck(lambda t: Square.apply(t), [x])
    with pytest.raises(GradcheckError, match=r"input 0, element \(\d, \d\): backward gives .*finite"):
        gradcheck(lambda t: WrongSquare.apply(t), [x])
    with pytest.raises(GradcheckError, match="zero upstream gradient"):
        gradcheck(lambda t: AffineSquare.apply(t), [x])


def test_gradcheck_works_in_float64_even_for_float32_inputs() -> None:
    x = leaf(4, dtype=np.float32)
    assert gradcheck(lambda t: (t * t).tanh(), [x], atol=1e-8, rtol=1e-7)
    assert x.dtype == np.float32  # the caller's tensor is untouched


def test_in_place_change_seen_through_a_view() -> None:
    # matmul saves w.T, a view of w: an update of w must still be caught
    w = leaf(4, 2)
    loss = (Tensor(np.ones((3, 2))) @ w.T).sum()
    w.data -= 0.1
    with pytest.raises(RuntimeError, match="matmul: an array saved for backward was modified"):
        loss.backward()


def test_slicing_a_sequence_step_by_step_scatters_into_one_buffer() -> None:
    xs = leaf(50, 2, 3)
    w = leaf(3, 3, seed=1)
    h = Tensor(np.zeros((2, 3)))
    for t in range(50):
        h = (xs[t] + h @ w).tanh()
    with Tape() as tape:
        y = (xs[[1, 1, 4]] * 2.0).sum() + xs[-1, :, 0].sum()
    (dxs,) = tape.gradient(y, [xs])
    expected = np.zeros((50, 2, 3))
    expected[1] += 4.0  # picked twice by the integer array
    expected[4] += 2.0
    expected[-1, :, 0] += 1.0
    np.testing.assert_array_equal(dxs, expected)
    h.sum().backward()
    assert xs.grad is not None and xs.grad.shape == (50, 2, 3) and np.all(xs.grad[:, :, :] != 0)
    assert gradcheck(lambda a, b: (a[0] + a[1] @ b + a[1][[0, 0]]).tanh(), [leaf(2, 2, 3), w])


@pytest.mark.parametrize(
    "rows", [5, 300]
)  # the two ways rows are scattered: a one-hot matmul, sort + reduceat
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_rows_picked_by_an_integer_array_get_every_pick_like_add_at(rows: int, dtype: type) -> None:
    """An embedding's lookup: ids of any shape, repeated and negative, pick rows (1-D too)."""
    rng = np.random.default_rng(3)
    ids = rng.integers(-rows, rows, size=(7, 4))
    for shape in [(rows, 3, 2), (rows,)]:
        table = leaf(*shape, seed=2, dtype=dtype)
        upstream = rng.standard_normal(ids.shape + shape[1:]).astype(dtype)
        (table[ids] * upstream).sum().backward()
        want = np.zeros(shape, dtype)
        np.add.at(want, ids, upstream)
        assert table.grad is not None and table.grad.dtype == dtype
        np.testing.assert_allclose(table.grad, want, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-6)
        assert np.count_nonzero(table.grad.reshape(rows, -1).any(axis=1)) == len(np.unique(ids % rows))


def test_row_picks_by_narrow_or_no_ids_and_an_inf_stay_where_add_at_puts_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """uint8 ids into 256 rows (byte-level text), an empty index, an inf in one picked row's
    gradient (it must not spread to the others), and a one-hot matrix over the size cap."""
    from tinygrad_rnn import grads

    rng = np.random.default_rng(5)
    cases = [
        (rng.integers(0, 256, (9, 2)).astype(np.uint8), 256, np.ones),
        (np.zeros((0,), np.int64), 7, np.ones),
        (
            np.array([[1, 4], [4, 0]]),
            6,
            lambda shape: np.where(np.arange(shape[0])[:, None, None] == 0, np.inf, 1.0),
        ),
    ]
    for cap in (grads.ONEHOT_MAX, 1):
        monkeypatch.setattr(grads, "ONEHOT_MAX", cap)
        for ids, rows, upstream_of in cases:
            table = leaf(rows, 3)
            upstream = upstream_of(ids.shape + (3,)) * np.ones(ids.shape + (3,))
            with np.errstate(invalid="ignore"):  # the loss itself: inf - inf
                (table[ids] * upstream).sum().backward()
            want = np.zeros((rows, 3))
            np.add.at(want, ids, upstream)
            assert table.grad is not None
            np.testing.assert_array_equal(table.grad, want)


def test_numerical_gradient_is_central_differences_and_restores_the_array() -> None:
    x = np.array([[0.5, -1.0], [2.0, 0.1]])
    before = x.copy()
    g = tg.numerical_gradient(lambda: float(np.sum(x**3)), x)
    np.testing.assert_allclose(g, 3 * before**2, rtol=1e-8)
    np.testing.assert_array_equal(x, before)


def test_in_place_change_of_an_output_that_views_a_saved_buffer_is_caught() -> None:
    class Shift(Function):  # saves a buffer and returns a view of it, like a fused recurrence
        @staticmethod
        def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
            buf = np.concatenate([np.zeros(1), np.tanh(x)])
            ctx.save_for_backward(buf)
            return buf[1:]

        @staticmethod
        def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
            (buf,) = ctx.saved_tensors
            return grad * (1 - buf[1:] ** 2)

    x = leaf(3)
    y = Shift.apply(x)
    y.data -= 0.5
    with pytest.raises(RuntimeError, match="Shift: an array saved for backward was modified"):
        y.sum().backward()


def test_saving_an_output_that_views_an_updated_parameter_is_not_a_false_alarm() -> None:
    class Flat(Function):
        @staticmethod
        def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
            out = x.reshape(-1)
            ctx.save_for_backward(out)
            return out

        @staticmethod
        def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
            return grad.reshape(2, 2)

    w = leaf(2, 2)
    w.data -= 0.1  # the parameter is at version 1 before the forward
    Flat.apply(w).sum().backward()
    np.testing.assert_array_equal(w.grad, np.ones((2, 2)))


def test_backward_errors_name_the_right_input_and_accept_lists() -> None:
    class Two(Function):
        @staticmethod
        def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
            return a * b

        @staticmethod
        def backward(ctx: Context, grad: np.ndarray) -> list[np.ndarray]:
            return [grad, np.ones(7)]

    x = leaf(3)
    with pytest.raises(RuntimeError, match=r"Two: backward returned a gradient of shape \(7,\) for input 1"):
        Two.apply(x, x).sum().backward()


def test_tape_gradient_of_a_target_from_elsewhere_is_an_error() -> None:
    x = leaf(3)
    y = (x * 2.0).sum()
    with Tape() as tape:
        z = x * 3.0
    with pytest.raises(ValueError, match="not computed on this tape"):
        tape.gradient(y, [x])
    assert len(tape) == 1 and z.requires_grad


def test_bool_and_data_assignment_are_checked() -> None:
    assert bool(Tensor(np.array(2.0))) and not bool(Tensor(np.zeros(1)))
    with pytest.raises(ValueError, match="item: tensor of shape \\(3,\\)"):
        bool(Tensor(np.zeros(3)))
    w = leaf(2)
    with pytest.raises(TypeError, match="needs float data"):
        w.data = [1, 2]
