"""The module system: containers, train/eval, Dropout, LayerNorm, activations, repr, bias=False,
registration rules (replacing parameters, shared and cyclic modules), load_state_dict.

Each layer is checked against an independent numpy formula and, where installed, against
torch.nn with the same weights.
"""

from __future__ import annotations

from collections import OrderedDict
from itertools import islice
from typing import Any

import numpy as np
import pytest

from tinygrad_rnn import Tensor
from tinygrad_rnn.layers import (
    RNN,
    CharRNN,
    Dropout,
    Embedding,
    GRUCell,
    LayerNorm,
    Linear,
    LSTMCell,
    Module,
    ModuleDict,
    ModuleList,
    Parameter,
    ReLU,
    RNNCell,
    Sequential,
    Sigmoid,
    Tanh,
)

TOL = dict(rtol=1e-10, atol=1e-12)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


def randomize(m: Module, seed: int) -> dict[str, np.ndarray]:
    """Give every parameter random values; return the state dict."""
    rng = np.random.default_rng(seed)
    m.load_state_dict({k: rng.standard_normal(v.shape) for k, v in m.state_dict().items()})
    return m.state_dict()


def copy_into_torch(torch: Any, theirs: Any, state: dict[str, np.ndarray]) -> None:
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})


# --- containers ------------------------------------------------------------------------------
def test_module_list_indexes_iterates_and_grows_like_a_list() -> None:
    a, b, c, d = (Linear(2, 2, rng=i) for i in range(4))
    ml = ModuleList([a, b])
    assert len(ml) == 2 and ml[0] is a and ml[-1] is b and list(ml) == [a, b]
    assert ml.append(c) is ml and ml[2] is c
    ml.insert(1, d)
    assert list(ml) == [a, d, b, c]
    assert [n for n, _ in ml.named_children()] == ["0", "1", "2", "3"]
    del ml[0]
    assert list(ml) == [d, b, c] and [n for n, _ in ml.named_children()] == ["0", "1", "2"]
    ml[1] = a
    assert list(ml) == [d, a, c]
    assert isinstance(ml[1:], ModuleList) and list(ml[1:]) == [a, c]
    ml.extend([b])
    assert list(ml.state_dict()) == [f"{i}.{w}" for i in range(4) for w in ("weight", "bias")]
    with pytest.raises(IndexError, match="index 4 is out of range for 4 modules"):
        ml[4]
    with pytest.raises(TypeError, match="is not a Module"):
        ml.append(3)  # type: ignore[arg-type]


def test_module_dict_is_a_mapping_of_registered_modules() -> None:
    a, b = Linear(2, 3, rng=0), Tanh()
    md = ModuleDict({"proj": a})
    md["act"] = b
    assert len(md) == 2 and md["proj"] is a and "act" in md and "nope" not in md
    assert list(md) == md.keys() == ["proj", "act"]
    assert md.items() == [("proj", a), ("act", b)] and md.values() == [a, b]
    assert list(md.state_dict()) == ["proj.weight", "proj.bias"]
    assert md.pop("proj") is a and md.keys() == ["act"] and md.parameters() == []
    md.update([("x", a)])
    assert md.keys() == ["act", "x"]
    for bad in ("a.b", "", "keys", "training"):  # a dot, empty, or an attribute it has
        with pytest.raises(KeyError):
            md[bad] = Tanh()
    with pytest.raises(KeyError):
        md["missing"]


def test_sequential_chains_and_keeps_ordered_dict_names() -> None:
    l1, l2 = Linear(3, 4, rng=0), Linear(4, 2, rng=1)
    s = Sequential(l1, Tanh(), l2, Sigmoid())
    assert len(s) == 4 and s[0] is l1 and s[-2] is l2
    x = np.random.default_rng(0).standard_normal((5, 3))
    w1, b1, w2, b2 = (p.data for p in s.parameters())
    np.testing.assert_allclose(s(x).data, sigmoid(np.tanh(x @ w1.T + b1) @ w2.T + b2), **TOL)
    named = Sequential(OrderedDict(first=l1, act=ReLU(), second=l2))
    assert list(named.state_dict()) == ["first.weight", "first.bias", "second.weight", "second.bias"]
    assert isinstance(named[1:], Sequential) and [n for n, _ in named[1:].named_children()] == [
        "act",
        "second",
    ]
    np.testing.assert_allclose(named(x).data, np.maximum(x @ w1.T + b1, 0) @ w2.T + b2, **TOL)
    assert s.append(ReLU()) is s and len(s) == 5


def test_containers_match_torch_names_outputs_and_gradients(torch: Any) -> None:
    nn = torch.nn
    ours = Sequential(Linear(3, 4), Tanh(), LayerNorm(4), Linear(4, 2), ReLU(), Sigmoid())
    theirs = nn.Sequential(
        nn.Linear(3, 4), nn.Tanh(), nn.LayerNorm(4), nn.Linear(4, 2), nn.ReLU(), nn.Sigmoid()
    ).double()
    state = randomize(ours, 0)
    assert list(state) == list(theirs.state_dict())
    copy_into_torch(torch, theirs, state)
    x_np = np.random.default_rng(1).standard_normal((6, 3))
    x, tx = Tensor(x_np, requires_grad=True), torch.tensor(x_np, requires_grad=True)
    r = np.random.default_rng(2).standard_normal((6, 2))
    (ours(x) * r).sum().backward()
    (theirs(tx) * torch.from_numpy(r)).sum().backward()
    np.testing.assert_allclose(ours(x).data, theirs(tx).detach().numpy(), **TOL)
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), **TOL)
    for (name, p), (their_name, tp) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert name == their_name
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), **TOL)


class Net(Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = Embedding(5, 3)
        self.blocks = ModuleList([Linear(3, 3), Linear(3, 3, bias=False)])
        self.heads = ModuleDict({"a": Linear(3, 2), "b": Sequential(Linear(3, 2), Tanh())})
        self.norm = LayerNorm(3)


def test_tree_walks_name_what_torch_names(torch: Any) -> None:
    nn = torch.nn

    class TorchNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(5, 3)
            self.blocks = nn.ModuleList([nn.Linear(3, 3), nn.Linear(3, 3, bias=False)])
            self.heads = nn.ModuleDict({"a": nn.Linear(3, 2), "b": nn.Sequential(nn.Linear(3, 2), nn.Tanh())})
            self.norm = nn.LayerNorm(3)

    ours, theirs = Net(), TorchNet()
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert [n for n, _ in ours.named_children()] == [n for n, _ in theirs.named_children()]
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert len(list(ours.modules())) == len(list(theirs.modules())) == 11
    assert list(ours.children()) == [ours.embed, ours.blocks, ours.heads, ours.norm]
    ours_tree = repr(ours).rsplit("\n", 1)[0].replace("TorchNet", "Net")
    assert ours_tree == repr(theirs).replace("TorchNet", "Net")


@pytest.mark.parametrize(
    "value, container",
    [([Tanh(), Tanh()], "ModuleList"), ((Linear(1, 1),), "ModuleList"), ({"a": Tanh()}, "ModuleDict")],
)
def test_plain_list_or_dict_of_modules_is_an_error_naming_the_container(value: Any, container: str) -> None:
    m = Module()
    with pytest.raises(TypeError, match=f"{container}"):
        m.layers = value
    m.sizes = [1, 2]  # a list of anything else is a plain attribute
    m.names = {"a": 1}
    assert m.parameters() == [] and m.sizes == [1, 2]


# --- modes and Dropout --------------------------------------------------------------------------
def test_train_and_eval_set_every_module_and_return_self() -> None:
    m = Net()
    assert all(sub.training for sub in m.modules())
    assert m.eval() is m and not any(sub.training for sub in m.modules())
    assert m.train() is m and all(sub.training for sub in m.modules())
    m.blocks.eval()
    assert m.training and not m.blocks.training and not m.blocks[0].training
    with pytest.raises(ValueError, match="mode must be a bool"):
        m.train("no")  # type: ignore[arg-type]


def test_dropout_is_inverted_dropout_from_its_generator() -> None:
    p, x_np = 0.3, np.random.default_rng(0).standard_normal((40, 50))
    drop = Dropout(p, rng=7)
    x = Tensor(x_np, requires_grad=True)
    y = drop(x)
    keep = np.random.default_rng(7).random(x_np.shape) >= p  # the formula, from the same seed
    np.testing.assert_allclose(y.data, x_np * keep / (1 - p), **TOL)
    y.sum().backward()
    np.testing.assert_allclose(x.grad, keep / (1 - p), **TOL)
    assert 0.6 < keep.mean() < 0.8
    assert not np.array_equal(drop(x_np).data, y.data)  # an int seed makes one stream, not one mask
    drop.rng = np.random.default_rng(7)  # a trainer hands its generator
    np.testing.assert_array_equal(drop(x_np).data, y.data)
    assert drop.eval()(x) is x and Dropout(0.0)(x) is x  # identity in eval mode and for p = 0


def test_dropout_never_touches_numpys_global_state_and_checks_p() -> None:
    state = np.random.get_state()
    Dropout(0.5)(np.ones((10, 10)))
    assert np.array_equal(np.random.get_state()[1], state[1])
    np.testing.assert_array_equal(Dropout(1.0)(np.ones(4)).data, np.zeros(4))  # as torch allows
    for bad in (-0.1, 1.5, float("nan"), "0.5", True):
        with pytest.raises(ValueError, match="Dropout: p must be a probability in"):
            Dropout(bad)  # type: ignore[arg-type]


def test_dropout_matches_torch_in_both_modes(torch: Any) -> None:
    x_np = np.random.default_rng(0).standard_normal((30, 30))
    ours, theirs = Dropout(0.4, rng=1), torch.nn.Dropout(0.4)
    y, ty = ours(x_np).data, theirs(torch.from_numpy(x_np)).numpy()
    for out in (y, ty):  # each element is dropped or scaled by 1 / (1 - p)
        kept = out != 0
        np.testing.assert_allclose(out[kept], x_np[kept] / 0.6, **TOL)
    ours.eval(), theirs.eval()
    np.testing.assert_array_equal(ours(x_np).data, theirs(torch.from_numpy(x_np)).numpy())
    np.testing.assert_array_equal(
        Dropout(1.0)(x_np).data, torch.nn.Dropout(1.0)(torch.from_numpy(x_np)).numpy()
    )


# --- LayerNorm and activations -------------------------------------------------------------------
@pytest.mark.parametrize("shape, normalized", [((4, 5), 5), ((2, 3, 4), (3, 4))])
def test_layer_norm_matches_the_formula(shape: tuple[int, ...], normalized: Any) -> None:
    ln = LayerNorm(normalized, eps=1e-3)
    state = randomize(ln, 1)
    x_np = np.random.default_rng(0).standard_normal(shape) * 3 + 1
    axes = tuple(range(-len(np.atleast_1d(normalized)), 0))
    mu, var = x_np.mean(axes, keepdims=True), x_np.var(axes, keepdims=True)
    want = (x_np - mu) / np.sqrt(var + 1e-3) * state["weight"] + state["bias"]
    np.testing.assert_allclose(ln(x_np).data, want, **TOL)
    plain = LayerNorm(normalized, elementwise_affine=False)
    assert plain.parameters() == [] and plain.weight is None
    np.testing.assert_allclose(plain(x_np).data, (x_np - mu) / np.sqrt(var + 1e-5), **TOL)
    assert LayerNorm(4, dtype=np.float32)(np.ones((2, 4), np.float32)).dtype == np.float32
    with pytest.raises(ValueError, match=r"LayerNorm: input \(4, 6\) must end in normalized_shape \(5,\)"):
        LayerNorm(5)(np.ones((4, 6)))


@pytest.mark.parametrize("normalized, bias", [(6, True), ((3, 6), False)])
def test_layer_norm_matches_torch_with_gradients(torch: Any, normalized: Any, bias: bool) -> None:
    ours = LayerNorm(normalized, eps=1e-4, bias=bias)
    theirs = torch.nn.LayerNorm(normalized, eps=1e-4, bias=bias, dtype=torch.float64)
    copy_into_torch(torch, theirs, randomize(ours, 3))
    x_np = np.random.default_rng(4).standard_normal((2, 3, 6))
    r = np.random.default_rng(5).standard_normal(x_np.shape)
    x, tx = Tensor(x_np, requires_grad=True), torch.tensor(x_np, requires_grad=True)
    y, ty = ours(x), theirs(tx)
    (y * r).sum().backward()
    (ty * torch.from_numpy(r)).sum().backward()
    np.testing.assert_allclose(y.data, ty.detach().numpy(), **TOL)
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), **TOL)
    for (_, p), (_, tp) in zip(ours.named_parameters(), theirs.named_parameters(), strict=True):
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), **TOL)


@pytest.mark.parametrize(
    "make",
    [
        lambda **kw: Linear(3, 2, **kw),
        lambda **kw: Embedding(5, 2, **kw),
        lambda **kw: Dropout(0.5, **kw),
        lambda **kw: LayerNorm(3, **kw),
        lambda **kw: RNNCell(3, 2, **kw),
        lambda **kw: LSTMCell(3, 2, **kw),
        lambda **kw: GRUCell(3, 2, **kw),
        lambda **kw: RNN(3, 2, **kw),
        lambda **kw: CharRNN(5, 4, **kw),
    ],
)
def test_every_layer_with_a_constructor_takes_dtype_and_rng(make: Any) -> None:
    a, b = make(dtype=np.float32, rng=0), make(dtype=np.float32, rng=0)
    assert all(p.dtype == np.float32 for p in a.parameters())
    for (name, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=name)  # the seed fixes the weights


def test_layer_norm_ignores_rng_and_dropout_ignores_dtype() -> None:
    for rng in (None, 0, np.random.default_rng(1)):
        norm = LayerNorm((2, 3), rng=rng)
        assert norm.weight is not None and norm.bias is not None
        np.testing.assert_array_equal(norm.weight.data, np.ones((2, 3)))
        np.testing.assert_array_equal(norm.bias.data, np.zeros((2, 3)))
    x = np.ones((4, 5), np.float32)
    out = Dropout(0.5, dtype=np.float64, rng=2)(x)
    assert out.dtype == np.float32  # the input's dtype
    np.testing.assert_array_equal(out.data, Dropout(0.5, rng=2)(x).data)


def test_activation_modules_are_their_formulas() -> None:
    x = np.linspace(-3, 3, 13)
    np.testing.assert_allclose(Tanh()(x).data, np.tanh(x), **TOL)
    np.testing.assert_allclose(ReLU()(x).data, np.maximum(x, 0), **TOL)
    np.testing.assert_allclose(Sigmoid()(x).data, sigmoid(x), **TOL)
    assert repr(Tanh()) == "Tanh()\nTotal params: 0"


# --- repr ---------------------------------------------------------------------------------------
def test_repr_is_a_tree_with_shapes_and_a_parameter_count() -> None:
    assert repr(CharRNN(22, 64)) == (
        "CharRNN(\n"
        "  (embed): Embedding(22, 64)\n"
        "  (weight_hh): Parameter(64, 64)\n"
        "  (bias_h): Parameter(64,)\n"
        "  (head): Linear(in_features=64, out_features=22, bias=True)\n"
        ")\n"
        "Total params: 6,998"
    )
    assert 22 * 64 + 64 * 64 + 64 + 64 * 22 + 22 == 6998
    stack = CharRNN(22, 8, cell="lstm", num_layers=2)
    assert "(rnn): RNN(8, 8, cell='lstm', num_layers=2)" in repr(stack)
    assert repr(stack).endswith(f"Total params: {sum(p.size for p in stack.parameters()):,}")


def test_repr_of_layers_matches_torch(torch: Any) -> None:
    nn = torch.nn
    ours = Sequential(
        Linear(3, 4, bias=False), Embedding(5, 2), RNNCell(3, 4), LSTMCell(3, 4, bias=False), GRUCell(2, 3)
    )
    theirs = nn.Sequential(
        nn.Linear(3, 4, bias=False),
        nn.Embedding(5, 2),
        nn.RNNCell(3, 4),
        nn.LSTMCell(3, 4, bias=False),
        nn.GRUCell(2, 3),
    )
    assert repr(ours).rsplit("\n", 1)[0] == repr(theirs)


# --- bias=False ---------------------------------------------------------------------------------
def test_cells_without_bias_are_their_formulas() -> None:
    rng = np.random.default_rng(0)
    x, h = rng.standard_normal((2, 3)), rng.standard_normal((2, 4))
    cell = RNNCell(3, 4, bias=False)
    assert list(cell.state_dict()) == ["weight_ih", "weight_hh"] and cell.bias_h is None
    sd = randomize(cell, 1)
    np.testing.assert_allclose(cell(x, h).data, np.tanh(x @ sd["weight_ih"].T + h @ sd["weight_hh"].T), **TOL)
    gru = GRUCell(3, 4, bias=False)
    sd = randomize(gru, 2)
    a, b = x @ sd["weight_ih"].T, h @ sd["weight_hh"].T
    r, z = sigmoid(a[:, :4] + b[:, :4]), sigmoid(a[:, 4:8] + b[:, 4:8])
    n = np.tanh(a[:, 8:] + r * b[:, 8:])
    np.testing.assert_allclose(gru(x, h).data, (1 - z) * n + z * h, **TOL)
    lstm = LSTMCell(3, 4, bias=False)
    sd = randomize(lstm, 3)
    g = x @ sd["weight_ih"].T + h @ sd["weight_hh"].T
    c = sigmoid(g[:, 4:8]) * h + sigmoid(g[:, :4]) * np.tanh(g[:, 8:12])
    h1, c1 = lstm(x, (h, h))
    np.testing.assert_allclose(c1.data, c, **TOL)
    np.testing.assert_allclose(h1.data, sigmoid(g[:, 12:]) * np.tanh(c), **TOL)


@pytest.mark.parametrize("name", ["RNNCell", "LSTMCell", "GRUCell"])
def test_cells_without_bias_match_torch(torch: Any, name: str) -> None:
    ours = {"RNNCell": RNNCell, "LSTMCell": LSTMCell, "GRUCell": GRUCell}[name](3, 4, bias=False)
    theirs = getattr(torch.nn, name)(3, 4, bias=False, dtype=torch.float64)
    state = randomize(ours, 5)
    assert list(state) == list(theirs.state_dict())
    copy_into_torch(torch, theirs, state)
    rng = np.random.default_rng(6)
    x_np, h_np = rng.standard_normal((2, 3)), rng.standard_normal((2, 4))
    x, tx = Tensor(x_np, requires_grad=True), torch.tensor(x_np, requires_grad=True)
    state_in = (h_np, h_np) if name == "LSTMCell" else h_np
    t_state = tuple(map(torch.from_numpy, state_in)) if name == "LSTMCell" else torch.from_numpy(h_np)
    out, t_out = ours(x, state_in), theirs(tx, t_state)
    h, th = (out[0], t_out[0]) if name == "LSTMCell" else (out, t_out)
    (h * h).sum().backward()
    (th * th).sum().backward()
    np.testing.assert_allclose(h.data, th.detach().numpy(), **TOL)
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), **TOL)
    for (_, p), (_, tp) in zip(ours.named_parameters(), theirs.named_parameters(), strict=True):
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), **TOL)


# --- registration rules ---------------------------------------------------------------------------
def test_a_plain_tensor_over_a_parameter_is_a_type_error_that_says_what_to_do() -> None:
    l1, l2 = Linear(2, 2, rng=0), Linear(2, 2, rng=1)
    with pytest.raises(TypeError, match=r"Linear\.weight.*registered Parameter.*Parameter\(array\).*\.data"):
        l2.weight = l1.weight * 2
    assert len(l2.parameters()) == 2  # still registered
    l2.weight.data = l1.weight.data * 2  # the ways that work
    l2.weight = Parameter(l1.weight.data * 3)
    np.testing.assert_array_equal(l2.state_dict()["weight"], l1.weight.data * 3)
    l2.bias = None  # None unregisters, as in torch
    assert list(l2.state_dict()) == ["weight"]
    m = Sequential(Tanh())
    with pytest.raises(TypeError, match="is not a Module"):
        m.add_module("0", 3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="registered sub-module"):
        setattr(m, "0", 3)


def test_a_module_under_two_names_is_in_the_state_dict_under_both(torch: Any) -> None:
    shared = Linear(2, 3, rng=0)
    m = Module()
    m.enc, m.dec = shared, shared
    assert list(m.state_dict()) == ["enc.weight", "enc.bias", "dec.weight", "dec.bias"]
    assert [n for n, _ in m.named_parameters()] == ["enc.weight", "enc.bias"]  # once, like torch
    theirs = torch.nn.Module()
    theirs.enc = theirs.dec = torch.nn.Linear(2, 3).double()
    assert list(theirs.state_dict()) == list(m.state_dict())
    m.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})  # a torch state dict loads
    np.testing.assert_array_equal(shared.weight.data, theirs.enc.weight.detach().numpy())


def test_a_module_referring_to_itself_or_a_parent_is_visited_once() -> None:
    m = Net()
    m.me = m
    m.blocks[0].parent = m
    assert len(list(islice(m.modules(), 50))) == 11
    assert len(list(islice(m.named_parameters(), 50))) == len(Net().parameters()) == 10
    assert list(m.state_dict()) == list(Net().state_dict())
    assert m.eval() is m and not m.blocks[0].training
    m.zero_grad()
    assert "(me): Net(<cycle" in repr(m)


def test_load_state_dict_checks_everything_before_changing_anything() -> None:
    m = Net()
    before = m.state_dict()
    good = {k: np.ones_like(v) for k, v in before.items()}
    for key, bad, message in [
        ("norm.weight", np.ones(3, complex), "norm.weight: cannot cast complex128"),
        ("embed.weight", np.array(["a"] * 15).reshape(5, 3), "embed.weight: cannot cast <U1"),
        ("blocks.0.bias", [[1.0], [2.0, 3.0]], "blocks.0.bias: not an array"),
        ("heads.a.weight", np.ones((3, 2)), r"heads.a.weight: expected \(2, 3\), got \(3, 2\)"),
    ]:
        with pytest.raises(ValueError, match=message):
            m.load_state_dict({**good, key: bad})
        for k, v in m.state_dict().items():
            np.testing.assert_array_equal(v, before[k], err_msg=k)
    ints = {k: np.ones(v.shape, np.int64) for k, v in before.items()}
    m.load_state_dict({**ints, "norm.bias": Tensor(np.full(3, 2.0))})  # ints cast, Tensors read
    assert m.norm.bias.dtype == np.float64 and m.norm.bias.data.tolist() == [2.0, 2.0, 2.0]
