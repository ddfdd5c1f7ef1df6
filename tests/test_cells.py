"""LSTM and GRU cells and stacked layers: PyTorch's equations and names, gradients, training, CLI."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pytest

from tinygrad_rnn import Tensor, gradcheck
from tinygrad_rnn import checkpoint as ckpt_io
from tinygrad_rnn.layers import RNN, CharRNN, GRUCell, LSTMCell, Module, RNNCell

TOL = {"rtol": 1e-10, "atol": 1e-10}


def _random_weights(m: Module, rng: np.random.Generator, scale: float = 0.5) -> dict[str, np.ndarray]:
    sd = {k: rng.standard_normal(v.shape) * scale for k, v in m.state_dict().items()}
    m.load_state_dict(sd)
    return sd


def _copy_into_torch(torch: Any, theirs: Any, sd: dict[str, np.ndarray]) -> None:
    """Our state_dict into a torch module, one to one by name (our plain cell's one bias: bias_ih)."""
    with torch.no_grad():
        for name, p in theirs.named_parameters():
            ours = name.replace("bias_ih", "bias_h") if name not in sd else name
            if ours in sd:
                p.copy_(torch.from_numpy(sd[ours]))
            else:
                assert name.startswith("bias_hh"), name
                p.zero_()


# --- against PyTorch ------------------------------------------------------------------------
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("layers", [1, 2])
def test_stack_matches_torch_outputs_and_every_gradient(torch: Any, cell: str, layers: int) -> None:
    steps, batch, n_in, hidden = 5, 3, 4, 6
    rng = np.random.default_rng(layers)
    rnn = RNN(n_in, hidden, cell=cell, num_layers=layers)
    theirs = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[cell](
        n_in, hidden, num_layers=layers, dtype=torch.float64
    )
    if cell != "rnn":  # PyTorch's names, one to one
        assert list(rnn.state_dict()) == list(theirs.state_dict())
    sd = _random_weights(rnn, rng)
    _copy_into_torch(torch, theirs, sd)
    parts = 2 if cell == "lstm" else 1
    x_np = rng.standard_normal((steps, batch, n_in))
    s0_np = [rng.standard_normal((layers, batch, hidden)) for _ in range(parts)]
    r_out = rng.standard_normal((steps, batch, hidden))
    r_s = [rng.standard_normal((layers, batch, hidden)) for _ in range(parts)]

    def ours(a: np.ndarray) -> np.ndarray:  # one layer: (B, H), without PyTorch's layer axis
        return a if layers > 1 else a[0]

    x = Tensor(x_np, requires_grad=True)
    s0 = [Tensor(ours(a), requires_grad=True) for a in s0_np]
    out, s = rnn(x, tuple(s0) if parts == 2 else s0[0])
    s_parts = s if parts == 2 else (s,)
    loss = (out * r_out).sum()
    for part, r in zip(s_parts, r_s):
        loss = loss + (part * ours(r)).sum()
    loss.backward()

    tx = torch.tensor(x_np, requires_grad=True)
    ts0 = [torch.tensor(a, requires_grad=True) for a in s0_np]
    tout, ts = theirs(tx, tuple(ts0) if parts == 2 else ts0[0])
    ts_parts = ts if parts == 2 else (ts,)
    tloss = (tout * torch.from_numpy(r_out)).sum()
    for part, r in zip(ts_parts, r_s):
        tloss = tloss + (part * torch.from_numpy(r)).sum()
    tloss.backward()

    np.testing.assert_allclose(out.data, tout.detach().numpy(), **TOL)
    for part, tpart in zip(s_parts, ts_parts):
        np.testing.assert_allclose(part.data, ours(tpart.detach().numpy()), **TOL)
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), **TOL)
    for a, t in zip(s0, ts0):
        np.testing.assert_allclose(a.grad, ours(t.grad.numpy()), **TOL)
    ours_params = dict(rnn.named_parameters())
    for name, p in theirs.named_parameters():
        if name.startswith("bias_hh") and cell == "rnn":
            continue  # our one bias's gradient is bias_ih's (the same as bias_hh's)
        np.testing.assert_allclose(
            ours_params[name.replace("bias_ih_", "bias_h_") if cell == "rnn" else name].grad,
            p.grad.numpy(),
            **TOL,
        )


@pytest.mark.parametrize("cls", [LSTMCell, GRUCell])
def test_cell_matches_torch_cell(torch: Any, cls: type) -> None:
    batch, n_in, hidden = 3, 4, 5
    rng = np.random.default_rng(0)
    ours = cls(n_in, hidden)
    theirs = getattr(torch.nn, cls.__name__)(n_in, hidden, dtype=torch.float64)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    sd = _random_weights(ours, rng)
    _copy_into_torch(torch, theirs, sd)
    lstm = cls is LSTMCell
    x_np = rng.standard_normal((batch, n_in))
    s_np = [rng.standard_normal((batch, hidden)) for _ in range(2 if lstm else 1)]
    r = [rng.standard_normal((batch, hidden)) for _ in s_np]
    x, s = Tensor(x_np, requires_grad=True), [Tensor(a, requires_grad=True) for a in s_np]
    new = ours(x, tuple(s) if lstm else s[0])
    new = new if lstm else (new,)
    sum((n * ri).sum() for n, ri in zip(new, r)).backward()  # type: ignore[union-attr]
    tx, ts = torch.tensor(x_np, requires_grad=True), [torch.tensor(a, requires_grad=True) for a in s_np]
    tnew = theirs(tx, tuple(ts) if lstm else ts[0])
    tnew = tnew if lstm else (tnew,)
    sum((n * torch.from_numpy(ri)).sum() for n, ri in zip(tnew, r)).backward()
    for n, tn in zip(new, tnew):
        np.testing.assert_allclose(n.data, tn.detach().numpy(), **TOL)
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), **TOL)
    for a, t in zip(s, ts):
        np.testing.assert_allclose(a.grad, t.grad.numpy(), **TOL)
    ours_params = dict(ours.named_parameters())
    for name, p in theirs.named_parameters():
        np.testing.assert_allclose(ours_params[name].grad, p.grad.numpy(), **TOL)


def test_charrnn_stack_is_embedding_rnn_linear_of_torch(torch: Any) -> None:
    """CharRNN(cell="lstm", num_layers=2) is nn.Embedding -> nn.LSTM -> nn.Linear, weights one to one."""
    vocab, hidden, layers = 7, 5, 2
    ours = CharRNN(vocab, hidden, cell="lstm", num_layers=layers)
    sd = _random_weights(ours, np.random.default_rng(3))
    embed = torch.nn.Embedding(vocab, hidden, dtype=torch.float64)
    lstm = torch.nn.LSTM(hidden, hidden, num_layers=layers, dtype=torch.float64)
    head = torch.nn.Linear(hidden, vocab, dtype=torch.float64)
    theirs = {"embed": embed, "rnn": lstm, "head": head}
    want = [f"{prefix}.{k}" for prefix, m in theirs.items() for k in m.state_dict()]
    assert list(sd) == want
    for prefix, m in theirs.items():
        _copy_into_torch(torch, m, {k[len(prefix) + 1 :]: v for k, v in sd.items() if k.startswith(prefix)})
    ids = np.random.default_rng(4).integers(0, vocab, (6, 2))
    loss, (h, c) = ours.loss(ids[:-1], ids[1:])
    loss.backward()
    out, (th, tc) = lstm(embed(torch.from_numpy(ids[:-1])))
    tloss = torch.nn.functional.cross_entropy(
        head(out).reshape(-1, vocab), torch.from_numpy(ids[1:]).reshape(-1), reduction="sum"
    )
    (tloss / 2).backward()
    np.testing.assert_allclose(loss.item(), tloss.item() / 2, **TOL)
    np.testing.assert_allclose(h.data, th.detach().numpy(), **TOL)
    np.testing.assert_allclose(c.data, tc.detach().numpy(), **TOL)
    assert not h.requires_grad and not c.requires_grad  # detached for the next chunk
    grads = {f"{prefix}.{k}": p.grad.numpy() for prefix, m in theirs.items() for k, p in m.named_parameters()}
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad, grads[name], **TOL)


# --- without PyTorch: finite differences ----------------------------------------------------
def _with_params(m: Module, names: Sequence[str], tensors: Sequence[Tensor], *args: Any) -> Any:
    """m(*args) with its parameters `names` replaced by `tensors` (gradcheck's float64 copies)."""
    saved = {n: m.__dict__[n] for n in names}
    m.__dict__.update(zip(names, tensors))
    try:
        return m(*args)
    finally:
        m.__dict__.update(saved)


@pytest.mark.parametrize("cls", [LSTMCell, GRUCell])
def test_cell_gradcheck(cls: type) -> None:
    rng = np.random.default_rng(1)
    cell = cls(3, 4)
    names = list(_random_weights(cell, rng))
    parts = 2 if cls is LSTMCell else 1
    x = Tensor(rng.standard_normal((2, 3)), requires_grad=True)
    s = [Tensor(rng.standard_normal((2, 4)), requires_grad=True) for _ in range(parts)]
    params = [Tensor(p.data, requires_grad=True) for p in cell.parameters()]

    def fn(x: Tensor, *rest: Tensor) -> Tensor:
        state, ps = rest[:parts], rest[parts:]
        new = _with_params(cell, names, ps, x, tuple(state) if parts == 2 else state[0])
        return new[0] * new[1] if parts == 2 else new  # both h and c reach the output

    assert gradcheck(fn, [x, *s, *params])


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_two_layer_stack_gradcheck(cell: str) -> None:
    rng = np.random.default_rng(2)
    rnn = RNN(3, 4, cell=cell, num_layers=2)
    names = list(_random_weights(rnn, rng))
    parts = 2 if cell == "lstm" else 1
    x = Tensor(rng.standard_normal((4, 2, 3)), requires_grad=True)
    s = [Tensor(rng.standard_normal((2, 2, 4)), requires_grad=True) for _ in range(parts)]
    params = [Tensor(p.data, requires_grad=True) for p in rnn.parameters()]

    def fn(x: Tensor, *rest: Tensor) -> Tensor:
        state, ps = rest[:parts], rest[parts:]
        out, last = _with_params(rnn, names, ps, x, tuple(state) if parts == 2 else state[0])
        c = last[1] if parts == 2 else last
        return out.sum(axis=0) + (c[0] * c[1])  # the outputs and the last state of both layers

    assert gradcheck(fn, [x, *s, *params])


# --- layouts, defaults, errors --------------------------------------------------------------
def test_names_and_defaults() -> None:
    assert list(LSTMCell(3, 4).state_dict()) == ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]
    assert LSTMCell(3, 4).weight_ih.shape == (16, 3) and GRUCell(3, 4).weight_hh.shape == (12, 4)
    assert list(RNN(3, 4, cell="gru", num_layers=2).state_dict()) == [
        f"{w}_l{k}" for k in (0, 1) for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    ]
    assert list(RNN(3, 4, num_layers=2).state_dict()) == [
        f"{w}_l{k}" for k in (0, 1) for w in ("weight_ih", "weight_hh", "bias_h")
    ]
    # the defaults are unchanged: the seed's model and one plain layer
    assert list(CharRNN(5, 4).state_dict()) == [
        "embed.weight",
        "weight_hh",
        "bias_h",
        "head.weight",
        "head.bias",
    ]
    assert list(RNN(3, 4).state_dict()) == ["weight_ih_l0", "weight_hh_l0", "bias_h_l0"]
    # same seed, same model; the stack's first layer is drawn first
    a, b = RNN(3, 4, cell="lstm", num_layers=2, rng=0), RNN(3, 4, cell="lstm", num_layers=2, rng=0)
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=name)
    # a cell from zeros, and the unrolled RNN is the cell step by step
    rnn, cell = RNN(3, 4, cell="lstm", rng=1), LSTMCell(3, 4)
    _random_weights(rnn, np.random.default_rng(0))
    cell.load_state_dict({k[:-3]: v for k, v in rnn.state_dict().items()})
    x = np.random.default_rng(1).standard_normal((2, 5, 3))
    out, (h, c) = rnn(x)
    h1, c1 = cell(x[0])
    np.testing.assert_allclose(out.data[0], h1.data, rtol=1e-12)
    h2, c2 = cell(x[1], (h1, c1))
    np.testing.assert_allclose(h.data, h2.data, rtol=1e-12)
    np.testing.assert_allclose(c.data, c2.data, rtol=1e-12)
    assert isinstance(RNNCell(3, 4)(x[0]), Tensor)


def test_fused_stack_of_plain_cells_equals_unfused() -> None:
    rng = np.random.default_rng(0)
    a, b = RNN(3, 4, num_layers=3), RNN(3, 4, fused=True, num_layers=3)
    b.load_state_dict(_random_weights(a, rng))
    x_np, h0 = rng.standard_normal((6, 2, 3)), rng.standard_normal((3, 2, 4))
    results = []
    for m in (a, b):
        x = Tensor(x_np, requires_grad=True)
        out, h = m(x, h0)
        ((out * out).sum() + h.sum()).backward()
        results.append([out.data, h.data, x.grad, *[p.grad for p in m.parameters()]])
    for u, v in zip(*results):
        np.testing.assert_allclose(v, u, rtol=1e-10, atol=1e-12)


def test_errors_are_clear() -> None:
    with pytest.raises(ValueError, match="fused=True has no op for nonlinearity='relu'"):
        RNN(3, 4, fused=True, nonlinearity="relu")
    with pytest.raises(ValueError, match="cell must be one of 'rnn', 'lstm', 'gru', not 'tcn'"):
        CharRNN(5, 4, cell="tcn")
    with pytest.raises(ValueError, match="num_layers must be a positive integer"):
        RNN(3, 4, num_layers=0)
    with pytest.raises(ValueError, match=r"the state must be a pair \(h0, c0\)"):
        RNN(3, 4, cell="lstm")(np.zeros((2, 1, 3)), np.zeros((1, 4)))
    with pytest.raises(ValueError, match=r"h0 must be \(2, 1, 4\), got \(1, 4\)"):
        RNN(3, 4, num_layers=2)(np.zeros((2, 1, 3)), np.zeros((1, 4)))
    with pytest.raises(ValueError, match="only the seed's model"):
        CharRNN(5, 4, cell="lstm").seed_params()
    m = CharRNN(5, 4, cell="lstm", num_layers=2)
    with pytest.raises(ValueError, match=r"must be \(2, 2, 3, 4\)"):
        m.state_from_array(np.zeros((2, 3, 4)), 3)


@pytest.mark.parametrize("cell,layers", [("lstm", 1), ("gru", 2), ("rnn", 2)])
def test_state_array_round_trip_and_sampling(cell: str, layers: int) -> None:
    m = CharRNN(6, 4, cell=cell, num_layers=layers, rng=0)
    _random_weights(m, np.random.default_rng(0), scale=1.0)
    _, state = m.loss([[1], [2], [3]], [[2], [3], [4]])
    arr = m.state_array(state)
    assert arr.shape == m.state_array_shape(1)
    back = m.state_from_array(arr, 1)
    logits_a, _ = m([[5]], state)
    logits_b, _ = m([[5]], back)
    np.testing.assert_array_equal(logits_a.data, logits_b.data)
    assert m.sample([1, 2], 12, rng=3) == m.sample([1, 2], 12, rng=3)
    assert m.sample([1], 5, temperature=0) == m.sample([1], 5, temperature=0)


# --- training and the command line ----------------------------------------------------------
def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tinygrad_rnn", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def _losses(path: Path) -> list[float]:
    with open(path, newline="") as f:
        return [float(row["nats_per_char"]) for row in csv.DictReader(f)]


def test_lstm_learns_the_verse_faster_than_the_rnn_and_samples_from_its_checkpoint(tmp_path: Path) -> None:
    """Seed defaults (Adagrad lr 0.1, clip 5, hidden 64, seq-len 25, seed 0), 200 steps each.

    Loss per character (nats, float64): the RNN's last 50 steps average ~1, the LSTM's ~0.05
    (with PyTorch's init, the training program's default for the LSTM; ~0.04 with the notebook's).
    """
    steps = "200"
    for name, extra in (("rnn", []), ("lstm", ["--cell", "lstm"])):
        r = cli("train", *extra, "--steps", steps, "--sample-every", "0", "--out", f"{name}.npz",
                "--log", f"{name}.csv", cwd=tmp_path)  # fmt: skip
        assert r.returncode == 0, r.stderr
    rnn, lstm = _losses(tmp_path / "rnn.csv"), _losses(tmp_path / "lstm.csv")
    assert len(rnn) == len(lstm) == 200
    assert np.mean(lstm[-50:]) < 0.5 * np.mean(rnn[-50:])
    ck = ckpt_io.load(tmp_path / "lstm.npz")
    assert ck.config["cell"] == "lstm" and ck.config["num_layers"] == 1
    assert ck.hidden is not None and ck.hidden.shape == (2, 1, 64)  # (h, c)
    r = cli(
        "sample", "--model", "lstm.npz", "--prime", "Hope", "-n", "60", "--temperature", "0", cwd=tmp_path
    )
    assert r.returncode == 0, r.stderr
    text = r.stdout.rstrip("\n")
    assert text.startswith("Hope") and len(text) == 64


def test_stack_checkpoint_records_the_architecture_and_resumes_exactly(tmp_path: Path) -> None:
    common = ["--hidden", "8", "--seq-len", "6", "--sample-every", "0", "--batch", "2"]
    arch = ["--cell", "gru", "--layers", "2"]
    r = cli("train", *arch, *common, "--steps", "6", "--out", "once.npz", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = cli("train", *arch, *common, "--steps", "3", "--out", "twice.npz", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = cli("train", "--resume", "twice.npz", "--steps", "3", "--sample-every", "0", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "gru x2" in r.stdout
    once, twice = ckpt_io.load(tmp_path / "once.npz"), ckpt_io.load(tmp_path / "twice.npz")
    assert once.config["cell"] == "gru" and once.config["num_layers"] == 2 and twice.step == 6
    assert once.hidden is not None and once.hidden.shape == (2, 2, 8)  # (layers, B, H)
    for k, v in once.params.items():
        np.testing.assert_array_equal(twice.params[k], v, err_msg=k)
    np.testing.assert_array_equal(twice.hidden, once.hidden)
    r = cli("sample", "--model", "once.npz", "-n", "20", cwd=tmp_path)
    assert r.returncode == 0 and len(r.stdout.rstrip("\n")) == 21, r.stderr
    # the architecture comes from the checkpoint: a different one given with --resume is an error
    r = cli("train", "--resume", "once.npz", "--cell", "lstm", "--steps", "1", cwd=tmp_path)
    assert r.returncode == 2 and "--cell lstm differs from the checkpoint's gru" in r.stderr


def test_old_checkpoint_without_architecture_loads_as_the_seeds_rnn(tmp_path: Path) -> None:
    common = ["--hidden", "8", "--seq-len", "6", "--sample-every", "0"]
    r = cli("train", *common, "--steps", "4", "--out", "old.npz", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    ck = ckpt_io.load(tmp_path / "old.npz")
    assert ck.config.pop("cell") == "rnn" and ck.config.pop("num_layers") == 1
    ckpt_io.save(tmp_path / "old.npz", ck)  # as written before LSTM/GRU existed
    r = cli("sample", "--model", "old.npz", "-n", "10", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = cli("train", "--resume", "old.npz", "--steps", "2", "--sample-every", "0", cwd=tmp_path)
    assert r.returncode == 0 and "rnn x1" in r.stdout, r.stderr
    assert ckpt_io.load(tmp_path / "old.npz").config["cell"] == "rnn"


@pytest.mark.parametrize("arch", [["--cell", "lstm", "--layers", "2"], ["--cell", "rnn", "--layers", "2"]])
def test_gradcheck_subcommand_for_stacks(tmp_path: Path, arch: list[str]) -> None:
    r = cli("gradcheck", *arch, "--hidden", "3", "--seq-len", "3", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "all gradients agree" in r.stdout and "rnn.weight_hh_l1" in r.stdout
    assert "and the fused op" in r.stdout  # every cell's fused layers against autograd
