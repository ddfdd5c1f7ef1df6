"""The bridge to PyTorch: to_torch / from_torch agree to 1e-10 in float64, outputs and
gradients, both ways, for every supported module; the renaming alone checked without torch."""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from tinygrad_rnn import Tensor, interop, no_grad
from tinygrad_rnn.interop import from_torch, state_dict_from_torch, to_torch, torch_names, torch_state_dict
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
    ReLU,
    RNNCell,
    Sequential,
    Sigmoid,
    Tanh,
)

TOL = 1e-10
V, H, IN, T, B = 7, 5, 4, 6, 3


def _randomize(m: Module, seed: int) -> Module:
    g = np.random.default_rng(seed)
    for p in m.parameters():
        p.data = 0.5 * g.standard_normal(p.shape)
    return m


def _charrnn_args(g: np.random.Generator, m: CharRNN) -> list[Any]:
    ids, tgt = g.integers(0, V, (T, B)), g.integers(0, V, (T, B))
    parts = 2 if m.cell == "lstm" else 1
    h0 = [0.5 * g.standard_normal(m.state_shape(B)) for _ in range(parts)]
    return [ids, tgt, h0[0] if parts == 1 else tuple(h0)]


def _rnn_args(g: np.random.Generator, m: RNN) -> list[Any]:
    x = g.standard_normal((B, T, m.input_size) if m.batch_first else (T, B, m.input_size))
    parts = 2 if m.cell == "lstm" else 1
    h0 = [0.5 * g.standard_normal(m.state_shape(B)) for _ in range(parts)]
    return [x, h0[0] if parts == 1 else tuple(h0)]


def _cell_args(g: np.random.Generator, m: Any) -> list[Any]:
    h = [0.5 * g.standard_normal((B, m.hidden_size)) for _ in range(2 if type(m) is LSTMCell else 1)]
    return [g.standard_normal((B, m.input_size)), h[0] if len(h) == 1 else tuple(h)]


# name -> (our module, its arguments from a Generator); every module `to_torch` supports
CASES: dict[str, tuple[Callable[[], Module], Callable[[np.random.Generator, Any], list[Any]]]] = {
    "linear": (lambda: Linear(IN, 3), lambda g, m: [g.standard_normal((2, 5, IN))]),
    "linear-no-bias": (lambda: Linear(IN, 3, bias=False), lambda g, m: [g.standard_normal((5, IN))]),
    "embedding": (lambda: Embedding(V, 3), lambda g, m: [g.integers(0, V, (4, 2))]),
    "layernorm": (lambda: LayerNorm(IN), lambda g, m: [g.standard_normal((3, IN))]),
    "layernorm-2d-no-affine": (
        lambda: LayerNorm((2, IN), elementwise_affine=False),
        lambda g, m: [g.standard_normal((3, 2, IN))],
    ),
    "layernorm-no-bias": (
        lambda: LayerNorm(IN, eps=1e-3, bias=False),
        lambda g, m: [g.standard_normal((3, IN))],
    ),
    "tanh": (Tanh, lambda g, m: [g.standard_normal((3, IN))]),
    "relu": (ReLU, lambda g, m: [g.standard_normal((3, IN))]),
    "sigmoid": (Sigmoid, lambda g, m: [g.standard_normal((3, IN))]),
    "dropout-eval": (lambda: Dropout(0.3).eval(), lambda g, m: [g.standard_normal((3, IN))]),
    "rnncell": (lambda: RNNCell(IN, H), _cell_args),
    "rnncell-relu-no-bias": (lambda: RNNCell(IN, H, bias=False, nonlinearity="relu"), _cell_args),
    "lstmcell": (lambda: LSTMCell(IN, H), _cell_args),
    "grucell": (lambda: GRUCell(IN, H), _cell_args),
    "sequential": (
        lambda: Sequential(
            Linear(IN, 6), Tanh(), LayerNorm(6), Dropout(0.5), Linear(6, 5), ReLU(), Sigmoid()
        ).eval(),
        lambda g, m: [g.standard_normal((3, IN))],
    ),
    "charrnn-seed": (lambda: CharRNN(V, H), _charrnn_args),
    "charrnn-seed-dropout-eval": (lambda: CharRNN(V, H, dropout=0.4).eval(), _charrnn_args),
    "charrnn-rnn-2": (lambda: CharRNN(V, H, num_layers=2), _charrnn_args),
    "charrnn-lstm-2": (lambda: CharRNN(V, H, cell="lstm", num_layers=2), _charrnn_args),
    "charrnn-gru": (lambda: CharRNN(V, H, cell="gru"), _charrnn_args),
}
RNN_OPTIONS = [
    dict(cell=c, num_layers=n, bidirectional=d, batch_first=f, bias=b)
    for c, n, d, f, b in itertools.product(
        ("rnn", "lstm", "gru"), (1, 2), (False, True), (False, True), (True, False)
    )
] + [dict(nonlinearity="relu", num_layers=2, bidirectional=True), dict(cell="gru", num_layers=3, dropout=0.5)]
for _o in RNN_OPTIONS:
    CASES["rnn-" + "-".join(f"{k}={v}" for k, v in _o.items())] = (
        lambda o=_o: RNN(IN, H, **o).eval(),
        _rnn_args,
    )


# --- running both and comparing ----------------------------------------------------------------
def _torch_state(torch: Any, ours: Module, state: Any) -> Any:
    """Our RNN's state (B, H) for one layer and direction is torch's (1, B, H)."""
    if not isinstance(ours, RNN) or state is None:
        return state
    shape = (ours.num_layers * ours.num_directions, B, H)
    return tuple(s.reshape(shape) for s in state) if isinstance(state, tuple) else state.reshape(shape)


def _flat(out: Any) -> list[Any]:
    """A module's outputs as a list of arrays or tensors (the loss, logits, states)."""
    if isinstance(out, (tuple, list)):
        return [x for o in out for x in _flat(o)]
    return [out]


def _run_ours(m: Module, args: list[Any], r: list[np.ndarray]) -> tuple[list[np.ndarray], list[Any]]:
    """Outputs, and gradients of sum(out_i * r_i) for each float input and each parameter."""
    leaves = [_leaf(Tensor, a) for a in args]
    out = m.loss(*leaves) if isinstance(m, CharRNN) else m(*leaves)
    outs = _flat(out)
    total = sum((o * rr).sum() for o, rr in zip(outs, r))
    total.backward()
    inputs = [t.grad for t in _flat(leaves) if isinstance(t, Tensor) and t.requires_grad]
    return [o.data for o in outs], inputs


def _leaf(make: Callable[..., Any], a: Any) -> Any:
    if isinstance(a, tuple):
        return tuple(_leaf(make, x) for x in a)
    if np.asarray(a).dtype.kind == "f":
        return make(np.array(a), requires_grad=True)
    return make(np.array(a)) if make is Tensor else make(a)


def _run_torch(torch: Any, tm: Any, ours: Module, args: list[Any], r: list[np.ndarray]) -> tuple[list, list]:
    def make(a: np.ndarray, requires_grad: bool = False) -> Any:
        return torch.tensor(a, requires_grad=requires_grad)

    leaves = [_leaf(make, a) for a in args]
    call = [leaves[0], _torch_state(torch, ours, leaves[1])] if isinstance(ours, RNN) else leaves
    out = tm.loss(*call) if isinstance(ours, CharRNN) else tm(*call)
    outs = [o.reshape(rr.shape) for o, rr in zip(_flat(out), r)]
    total = sum((o * torch.from_numpy(rr)).sum() for o, rr in zip(outs, r))
    total.backward()
    inputs = [t.grad.numpy() for t in _flat(leaves) if t.requires_grad]
    return [o.detach().numpy() for o in outs], inputs


def _agree(torch: Any, ours: Module, tm: Any, name: str, seed: int) -> float:
    """The largest difference between ours and tm: outputs, input and parameter gradients."""
    g = np.random.default_rng(seed)
    args = CASES[name][1](g, ours)
    with no_grad():
        shapes = [
            np.shape(o.data) for o in _flat(ours.loss(*args) if isinstance(ours, CharRNN) else ours(*args))
        ]
    r = [g.standard_normal(s) for s in shapes]
    ours.zero_grad()
    out_a, in_a = _run_ours(ours, args, r)
    out_b, in_b = _run_torch(torch, tm, ours, args, r)
    theirs = dict(tm.named_parameters())
    diffs = [np.abs(a - b).max() for a, b in zip(out_a + in_a, out_b + in_b)]
    for name, p in ours.named_parameters():
        diffs.append(np.abs(p.grad - theirs[torch_names(ours)[name]].grad.numpy()).max())
    assert len(out_a) == len(out_b) and len(in_a) == len(in_b)
    return float(max(diffs, default=0.0))


def _build(name: str, seed: int) -> Module:
    return _randomize(CASES[name][0](), seed)


# --- to_torch / from_torch ---------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(CASES))
def test_to_torch_agrees_outputs_and_gradients(torch: Any, name: str) -> None:
    ours = _build(name, seed=1)
    tm = to_torch(ours)
    assert all(p.dtype == torch.float64 for p in tm.parameters())
    assert tm.training == ours.training
    assert _agree(torch, ours, tm, name, seed=2) < TOL


@pytest.mark.parametrize("name", sorted(n for n in CASES if n != "charrnn-seed" and "seed" not in n))
def test_from_torch_agrees_outputs_and_gradients(torch: Any, name: str) -> None:
    """torch's own random weights (the plain cell's bias_hh nonzero too) come back exactly."""
    tm = to_torch(_build(name, seed=3))
    with torch.no_grad():
        g = torch.Generator().manual_seed(4)
        for p in tm.parameters():
            p.copy_(0.5 * torch.randn(p.shape, generator=g, dtype=torch.float64))
    ours = from_torch(tm)
    assert type(ours) is type(_build(name, seed=0))
    assert all(p.dtype == np.float64 for p in ours.parameters())
    assert _agree(torch, ours, tm, name, seed=5) < TOL


def test_from_torch_folds_what_torch_learned_into_the_seed_model(torch: Any) -> None:
    """The seed model's twin after PyTorch changed weight_ih and bias_hh: outputs equal, and
    the gradients are torch's through the fold embed = E @ W_ih^T, bias_h = b_ih + b_hh."""
    tm = to_torch(_build("charrnn-seed", seed=6))
    with torch.no_grad():
        for p in tm.parameters():
            p.add_(
                0.3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
            )
    ours = from_torch(tm)
    g = np.random.default_rng(8)
    ids, tgt, h0 = _charrnn_args(g, ours)
    loss, h = ours.loss(ids, tgt, h0)
    loss.backward()
    t_loss, t_h = tm.loss(torch.from_numpy(ids), torch.from_numpy(tgt), torch.from_numpy(h0))
    t_loss.backward()
    assert abs(loss.item() - t_loss.item()) < TOL and np.abs(h.data - t_h.numpy()).max() < TOL
    w_ih, emb = tm.rnn.weight_ih_l0, tm.embed.weight
    d_embed = ours.embed.weight.grad  # of E' = E @ W_ih^T
    assert np.abs(d_embed @ w_ih.detach().numpy() - emb.grad.numpy()).max() < TOL
    assert np.abs(d_embed.T @ emb.detach().numpy() - w_ih.grad.numpy()).max() < TOL
    for b in (tm.rnn.bias_ih_l0, tm.rnn.bias_hh_l0):
        assert np.abs(ours.bias_h.grad - b.grad.numpy()).max() < TOL


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_and_mode_are_kept_both_ways(torch: Any, dtype: Any) -> None:
    m = Sequential(Linear(3, 4, dtype=dtype), Dropout(0.2), CharRNN(5, 4, cell="gru", dtype=dtype).train())
    m[1].eval()
    tm = to_torch(m.eval())
    want = {np.float32: torch.float32, np.float64: torch.float64}[dtype]
    assert {p.dtype for p in tm.parameters()} == {want} and not tm.training
    back = from_torch(tm.train())
    assert {p.dtype for p in back.parameters()} == {np.dtype(dtype)} and back.training
    assert all(np.array_equal(a, b) for a, b in zip(m.state_dict().values(), back.state_dict().values()))


def test_containers_keep_their_names(torch: Any) -> None:
    m = ModuleDict(
        {"enc": Sequential(Linear(2, 3), Tanh()), "heads": ModuleList([Linear(3, 1), Linear(3, 2)])}
    )
    tm = to_torch(m)
    assert type(tm) is torch.nn.ModuleDict and type(tm["heads"]) is torch.nn.ModuleList
    assert sorted(tm.state_dict()) == sorted(m.state_dict())
    back = from_torch(tm)
    assert type(back) is ModuleDict and sorted(back.state_dict()) == sorted(m.state_dict())


def test_unsupported_modules_are_a_typeerror_naming_them(torch: Any) -> None:
    class MyLinear(Linear):  # a subclass may compute something else
        pass

    with pytest.raises(TypeError, match="to_torch: MyLinear is not supported"):
        to_torch(MyLinear(2, 3))
    with pytest.raises(TypeError, match="to_torch: MyLinear is not supported"):
        to_torch(Sequential(Tanh(), MyLinear(2, 3)))
    with pytest.raises(TypeError, match="from_torch: Conv1d is not supported"):
        from_torch(torch.nn.Sequential(torch.nn.Conv1d(2, 2, 3)))
    with pytest.raises(TypeError, match="from_torch: BatchNorm1d is not supported"):  # before its int buffer
        from_torch(torch.nn.ModuleList([torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2)]))
    with pytest.raises(TypeError, match="proj_size"):
        from_torch(torch.nn.LSTM(3, 4, proj_size=2))
    with pytest.raises(TypeError, match="padding_idx"):
        from_torch(torch.nn.Embedding(5, 3, padding_idx=0))
    with pytest.raises(TypeError, match="float16"):
        from_torch(torch.nn.Linear(2, 3).half())
    with pytest.raises(TypeError, match="expected a torch.nn.Module"):
        from_torch(Linear(2, 3))


# --- without torch -----------------------------------------------------------------------------
def test_missing_torch_is_an_importerror_saying_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # what `import torch` sees where it is not installed
    monkeypatch.setattr(interop, "_TWIN", [])  # TorchCharRNN not defined yet
    with pytest.raises(ImportError, match="pip install torch"):
        to_torch(Linear(2, 3))
    with pytest.raises(ImportError, match="pip install torch"):
        from tinygrad_rnn.interop import TorchCharRNN  # noqa: F401


def test_importing_interop_does_not_import_torch() -> None:
    code = "import sys, tinygrad_rnn.interop; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr


def _numpy_twin_logits(sd: dict[str, np.ndarray], ids: np.ndarray) -> np.ndarray:
    """torch's nn.RNN(H, H) equations in numpy over the twin's state dict: logits (T, B, V)."""
    h = np.zeros((ids.shape[1], sd["rnn.weight_hh_l0"].shape[0]))
    out = []
    for x in sd["embed.weight"][ids]:
        h = np.tanh(
            x @ sd["rnn.weight_ih_l0"].T
            + sd["rnn.bias_ih_l0"]
            + h @ sd["rnn.weight_hh_l0"].T
            + sd["rnn.bias_hh_l0"]
        )
        out.append(h @ sd["head.weight"].T + sd["head.bias"])
    return np.stack(out)


def test_seed_model_under_torchs_names_computes_the_same_in_numpy() -> None:
    """The notebook's model under the twin's names, run through torch's formula written in
    numpy; then other W_ih and b_hh (as PyTorch training leaves them) fold back exactly."""
    m = _randomize(CharRNN(V, H), seed=9)
    sd = torch_state_dict(m)
    assert sorted(sd) == sorted(
        ["embed.weight", "rnn.weight_ih_l0", "rnn.weight_hh_l0", "rnn.bias_ih_l0", "rnn.bias_hh_l0"]
        + ["head.weight", "head.bias"]
    )
    assert np.array_equal(sd["rnn.weight_ih_l0"], np.eye(H)) and not sd["rnn.bias_hh_l0"].any()
    ids = np.random.default_rng(10).integers(0, V, (T, B))
    assert np.abs(m(ids)[0].data - _numpy_twin_logits(sd, ids)).max() < TOL
    g = np.random.default_rng(11)
    sd["rnn.weight_ih_l0"] = g.standard_normal((H, H))
    sd["rnn.bias_hh_l0"] = g.standard_normal(H)
    back = CharRNN(V, H)
    back.load_state_dict(state_dict_from_torch(back, sd))
    assert np.abs(back(ids)[0].data - _numpy_twin_logits(sd, ids)).max() < TOL


def test_stack_names_are_torchs_and_round_trip_bit_for_bit() -> None:
    m = _randomize(CharRNN(V, H, cell="lstm", num_layers=2), seed=12)
    sd = torch_state_dict(m)
    layer = [f"rnn.{w}_l{k}" for k in (0, 1) for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    assert list(sd) == ["embed.weight", *layer, "head.weight", "head.bias"]
    assert sd["rnn.weight_ih_l0"].shape == (4 * H, H)
    back = CharRNN(V, H, cell="lstm", num_layers=2)
    back.load_state_dict(state_dict_from_torch(back, sd))
    assert all(np.array_equal(a, b) for a, b in zip(m.state_dict().values(), back.state_dict().values()))
    plain = _randomize(RNN(IN, H, num_layers=2, bidirectional=True), seed=13)
    names = torch_names(plain)
    assert names["bias_h_l1_reverse"] == "bias_ih_l1_reverse" and names["weight_ih_l0"] == "weight_ih_l0"
    sd = torch_state_dict(plain)
    sd["bias_hh_l0"] = np.ones(H)
    assert np.array_equal(state_dict_from_torch(plain, sd)["bias_h_l0"], plain.bias_h_l0.data + 1)


def test_wrong_names_are_a_valueerror_naming_them() -> None:
    m = CharRNN(V, H, cell="gru")
    sd = torch_state_dict(m)
    sd["rnn.weight_ih_l1"] = sd.pop("rnn.weight_ih_l0")
    with pytest.raises(
        ValueError, match=r"missing keys \['rnn.weight_ih_l0'\], unexpected keys \['rnn.weight_ih_l1'\]"
    ):
        state_dict_from_torch(m, sd)


# --- the way out, shown working ------------------------------------------------------------------
def _number(pattern: str, out: str) -> float:
    found = re.search(pattern, out, re.MULTILINE)
    assert found, (pattern, out)
    return float(found.group(1))


def test_outgrow_example_trains_in_ddp_and_comes_back(torch: Any, tmp_path: Path) -> None:
    """examples/outgrow_to_pytorch.py at tiny sizes: 2 PyTorch processes (gloo on 127.0.0.1)
    lower the loss, and the model brought back computes PyTorch's loss here to 1e-6."""
    pytest.importorskip("safetensors")
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    tiny = [
        "--steps",
        "40",
        "--torch-steps",
        "30",
        "--hidden",
        "12",
        "--eval-chars",
        "300",
        "--dir",
        str(tmp_path),
    ]
    done = subprocess.run(
        [sys.executable, str(root / "examples" / "outgrow_to_pytorch.py"), *tiny],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = done.stdout
    here = _number(r"^here: loss per char (\S+);", out)
    before = _number(r"pytorch: loss per char before (\S+),", out)
    after = _number(r"pytorch: loss per char before \S+, after (\S+)\n", out)
    back = _number(r"back here: loss per char (\S+) ", out)
    assert abs(before - here) < 1e-6  # the exported file, read by PyTorch
    assert after < before  # PyTorch's distributed training went on learning
    assert abs(back - after) < 1e-6  # and what it learned came back
    assert (tmp_path / "pytorch.safetensors").is_file()
    assert len(out.split("back here: a sample\n")[1].strip()) == 201


def test_readme_torch_blocks_run(torch: Any) -> None:
    """The README's ```py blocks need PyTorch (test_readme runs the ```python ones everywhere)."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```py\n(.*?)```", readme, re.S)
    assert blocks
    for block in blocks:
        namespace: dict[str, Any] = {}
        exec(compile(block, "README.md", "exec"), namespace)
        assert type(namespace["lstm"]) is torch.nn.LSTM and type(namespace["model"]).__name__ == "CharRNN"
