"""Optimizers: the seed's Adagrad exactly, PyTorch's SGD/Adam/RMSprop to 1e-10, state round trips."""

from __future__ import annotations

import importlib.util
import io
import math
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

import tinygrad_rnn as tg
from tinygrad_rnn import Tensor
from tinygrad_rnn.data import CharBatches, CharVocab, default_text
from tinygrad_rnn.layers import CharRNN
from tinygrad_rnn.optim import (
    SGD,
    Adagrad,
    Adam,
    Optimizer,
    RMSprop,
    clip_grad_norm_,
    clip_grad_value_,
    to_arrays,
)
from tinygrad_rnn.reference import bptt

# --- two small problems, written with engine ops only -----------------------------------

DATA = np.random.default_rng(1)
X = DATA.standard_normal((8, 4))
Y = DATA.standard_normal((8, 3))
T, B, D, H, C = 5, 2, 4, 6, 4
XS = DATA.standard_normal((T, B, D))
TARGETS = DATA.integers(0, C, size=(T, B))


def quad_init(dtype: Any = np.float64) -> list[np.ndarray]:
    rng = np.random.default_rng(2)
    return [rng.standard_normal((4, 3)).astype(dtype), rng.standard_normal(3).astype(dtype)]


def quad_loss(params: list[Tensor]) -> Tensor:
    """0.5 * ||X W + b - Y||^2"""
    w, b = params
    return ((Tensor(X, dtype=w.dtype) @ w + b - Y) ** 2).sum() * 0.5


def rnn_init(dtype: Any = np.float64) -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    shapes = [(D, H), (H, H), (H,), (H, C), (C,)]
    return [(0.5 * rng.standard_normal(s)).astype(dtype) for s in shapes]


def rnn_loss(params: list[Tensor]) -> Tensor:
    """h_t = tanh(x_t Wxh + h_{t-1} Whh + bh); logits_t = h_t Why + by; summed cross-entropy."""
    wxh, whh, bh, why, by = params
    h = Tensor(np.zeros((B, H), dtype=wxh.dtype))
    logits = []
    for t in range(T):
        h = (Tensor(XS[t], dtype=wxh.dtype) @ wxh + h @ whh + bh).tanh()
        logits.append(h @ why + by)
    return tg.softmax_cross_entropy(tg.stack(logits), TARGETS)


PROBLEMS = {"quadratic": (quad_init, quad_loss), "rnn": (rnn_init, rnn_loss)}


def leaves(arrays: list[np.ndarray]) -> list[Tensor]:
    return [Tensor(a.copy(), requires_grad=True) for a in arrays]


def train(
    params: list[Tensor], opt: Optimizer, loss_fn: Callable[[list[Tensor]], Tensor], steps: int
) -> list[float]:
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn(params)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


# --- Adagrad: the seed's loop, exactly -------------------------------------------------


def quad_grads(w: np.ndarray, b: np.ndarray) -> list[np.ndarray]:
    r = X @ w + b - Y
    return [X.T @ r, r.sum(axis=0)]


def test_adagrad_equals_seed_loop_exactly() -> None:
    # the seed: clip each gradient to [-5, 5], then mem += d*d; param += -lr*d/sqrt(mem+1e-8)
    seed_params = [10 * a for a in quad_init()]  # large enough that clipping bites
    mems = [np.zeros_like(a) for a in seed_params]
    params = leaves(seed_params)
    opt = Adagrad(params, lr=0.1)
    clipped = 0
    for _ in range(50):
        dparams = quad_grads(*seed_params)
        clipped += sum(int((np.abs(d) > 5).sum()) for d in dparams)
        for p, d in zip(params, dparams):
            p.grad = d.copy()
        for dparam in dparams:
            np.clip(dparam, -5, 5, out=dparam)
        for param, dparam, mem in zip(seed_params, dparams, mems):
            mem += dparam * dparam
            param += -0.1 * dparam / np.sqrt(mem + 1e-8)
        clip_grad_value_(params, 5.0)
        opt.step()
    assert clipped > 0
    for p, a, mem, state in zip(params, seed_params, mems, opt.state):
        np.testing.assert_array_equal(p.data, a)
        np.testing.assert_array_equal(state["sum"], mem)


def test_adagrad_through_backward_matches_seed_loop() -> None:
    seed_params = quad_init()
    mems = [np.zeros_like(a) for a in seed_params]
    params = leaves(seed_params)
    train(params, Adagrad(params, lr=0.1), quad_loss, 50)
    for _ in range(50):
        for param, dparam, mem in zip(seed_params, quad_grads(*seed_params), mems):
            mem += dparam * dparam
            param += -0.1 * dparam / np.sqrt(mem + 1e-8)
    for p, a in zip(params, seed_params):
        np.testing.assert_allclose(p.data, a, rtol=0, atol=1e-12)


def test_adagrad_on_the_seeds_char_rnn_follows_the_seed_loop() -> None:
    # the seed's train loop (hand-written BPTT, clip, Adagrad) against CharRNN + optim
    text = default_text()
    ids = CharVocab.from_text(text).encode(text)
    rng = np.random.default_rng(4)
    hidden, vocab = 16, int(ids.max()) + 1
    p = {
        "Wxh": rng.standard_normal((hidden, vocab)) * 0.01,
        "Whh": rng.standard_normal((hidden, hidden)) * 0.01,
        "Why": rng.standard_normal((vocab, hidden)) * 0.01,
        "bh": np.zeros((hidden, 1)),
        "by": np.zeros((vocab, 1)),
    }
    model = CharRNN.from_seed_params(p)
    opt = Adagrad(model.parameters(), lr=0.1)
    mem = {k: np.zeros_like(v) for k, v in p.items()}
    h_prev, h = np.zeros((hidden, 1)), None
    batches = CharBatches(ids, 25)
    for _ in range(50):
        chunk = batches.next()
        inputs, targets = chunk.inputs[:, 0].tolist(), chunk.targets[:, 0].tolist()
        seed_loss, grads, h_prev = bptt(p, inputs, targets, h_prev)
        for k in p:
            np.clip(grads[k], -5, 5, out=grads[k])
            mem[k] += grads[k] * grads[k]
            p[k] += -0.1 * grads[k] / np.sqrt(mem[k] + 1e-8)

        loss, h = model.loss(chunk.inputs, chunk.targets, h)
        opt.zero_grad()
        loss.backward()
        clip_grad_value_(model.parameters(), 5.0)
        opt.step()
        assert abs(loss.item() - seed_loss) < 1e-9
    assert seed_loss < 0.5 * 25 * np.log(vocab)  # it learned something
    for k, v in model.seed_params().items():
        np.testing.assert_allclose(v, p[k], rtol=0, atol=1e-10)


# --- PyTorch's SGD, Adam, RMSprop to 1e-10 ---------------------------------------------

TORCH_CASES = [
    ("SGD", {"lr": 0.01}),
    ("SGD", {"lr": 0.01, "momentum": 0.9}),
    ("SGD", {"lr": 0.01, "momentum": 0.9, "nesterov": True}),
    ("SGD", {"lr": 0.01, "weight_decay": 0.1}),
    ("SGD", {"lr": 0.01, "momentum": 0.5, "nesterov": True, "weight_decay": 0.1}),
    ("Adam", {"lr": 0.05}),
    ("Adam", {"lr": 0.02, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.1}),
    ("RMSprop", {"lr": 0.01}),
    ("RMSprop", {"lr": 0.002, "alpha": 0.9, "eps": 1e-6}),
]


def torch_loss(problem: str, params: list[Any]) -> Any:
    import torch

    if problem == "quadratic":
        w, b = params
        return ((torch.from_numpy(X) @ w + b - torch.from_numpy(Y)) ** 2).sum() * 0.5
    wxh, whh, bh, why, by = params
    h = torch.zeros((B, H), dtype=torch.float64)
    logits = []
    for t in range(T):
        h = torch.tanh(torch.from_numpy(XS[t]) @ wxh + h @ whh + bh)
        logits.append(h @ why + by)
    return torch.nn.functional.cross_entropy(
        torch.stack(logits).reshape(-1, C), torch.from_numpy(TARGETS).reshape(-1), reduction="sum"
    )


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
@pytest.mark.parametrize(("name", "kwargs"), TORCH_CASES)
def test_matches_torch_optim(torch: Any, problem: str, name: str, kwargs: dict[str, Any]) -> None:
    init, loss_fn = PROBLEMS[problem]
    params = leaves(init())
    opt = {"SGD": SGD, "Adam": Adam, "RMSprop": RMSprop}[name](params, **kwargs)
    tparams = [torch.tensor(a, requires_grad=True) for a in init()]
    topt = getattr(torch.optim, name)(tparams, **kwargs)
    losses = train(params, opt, loss_fn, 50)
    tlosses = []
    for _ in range(50):
        topt.zero_grad()
        loss = torch_loss(problem, tparams)
        loss.backward()
        topt.step()
        tlosses.append(loss.item())
    assert losses[-1] < losses[0]
    np.testing.assert_allclose(losses, tlosses, rtol=0, atol=1e-10)
    for p, tp in zip(params, tparams):
        np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=0, atol=1e-10)


@pytest.mark.parametrize(("name", "kwargs"), TORCH_CASES + [("RMSprop", {"lr": 0.005, "alpha": 0.9})])
def test_same_gradients_give_torchs_update_to_rounding(torch: Any, name: str, kwargs: dict[str, Any]) -> None:
    # the arithmetic alone: near a minimum RMSprop's g/sqrt(v) amplifies 1e-15 gradient
    # differences into 1e-5 after 50 steps, so independent runs there would not agree
    params = leaves(quad_init())
    opt = {"SGD": SGD, "Adam": Adam, "RMSprop": RMSprop}[name](params, **kwargs)
    tparams = [torch.tensor(a, requires_grad=True) for a in quad_init()]
    topt = getattr(torch.optim, name)(tparams, **kwargs)
    for _ in range(50):
        topt.zero_grad()
        torch_loss("quadratic", tparams).backward()
        for p, tp in zip(params, tparams):
            p.grad = tp.grad.numpy().copy()
        opt.step()
        topt.step()
    for p, tp in zip(params, tparams):
        np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=0, atol=1e-14)


# --- state_dict: a resumed run is the uninterrupted run --------------------------------

FACTORIES: dict[str, Callable[[list[Tensor]], Optimizer]] = {
    "SGD": lambda ps: SGD(ps, lr=0.05, momentum=0.9, nesterov=True),
    "Adagrad": lambda ps: Adagrad(ps, lr=0.1),
    "Adam": lambda ps: Adam(ps, lr=0.01),
    "RMSprop": lambda ps: RMSprop(ps, lr=0.01),
}


def npz_round_trip(sd: dict[str, Any]) -> dict[str, np.ndarray]:
    buf = io.BytesIO()
    np.savez(buf, **to_arrays(sd))
    buf.seek(0)
    with np.load(buf, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


@pytest.mark.parametrize("via_npz", [False, True])
@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_state_dict_resume_equals_uninterrupted_run(name: str, via_npz: bool) -> None:
    make = FACTORIES[name]
    params = leaves(rnn_init())
    opt = make(params)
    train(params, opt, rnn_loss, 10)
    saved_params = [p.data.copy() for p in params]
    sd = opt.state_dict()
    train(params, opt, rnn_loss, 10)  # must not change `sd`: it is a copy

    resumed = leaves(saved_params)
    opt2 = make(resumed)
    opt2.param_groups[0]["lr"] = 123.0  # restored from the state
    opt2.load_state_dict(npz_round_trip(sd) if via_npz else sd)
    assert repr(opt2) == repr(opt)
    train(resumed, opt2, rnn_loss, 10)
    for p, q in zip(params, resumed):
        np.testing.assert_array_equal(p.data, q.data)

    fresh = leaves(saved_params)  # without the state the run differs (momentum, memories)
    train(fresh, make(fresh), rnn_loss, 10)
    assert not np.array_equal(fresh[0].data, params[0].data)


def test_state_dict_contents_and_lazy_state() -> None:
    a = Tensor(np.ones((2, 3)), requires_grad=True)
    b = Tensor(np.ones(4), requires_grad=True)
    opt = Adam([a, b], lr=0.1, betas=(0.8, 0.9))
    assert opt.state == [{}, {}]
    a.grad = np.ones((2, 3))  # b has no grad: skipped, no state, unchanged
    opt.step()
    np.testing.assert_array_equal(b.data, np.ones(4))
    assert opt.state[1] == {}
    assert not np.array_equal(a.data, np.ones((2, 3)))
    sd = opt.state_dict()
    assert sd["type"] == "Adam"
    options = {"lr": 0.1, "betas": (0.8, 0.9), "eps": 1e-8, "weight_decay": 0.0, "amsgrad": False}
    assert sd["param_groups"] == [options | {"params": [0, 1]}]
    assert sorted(sd["state"]) == [0] and sd["state"][0]["step"] == 1
    assert sd["state"][0]["exp_avg"].shape == (2, 3)
    flat = to_arrays(sd)
    assert all(v.dtype != object for v in flat.values())


def test_load_state_dict_rejects_mismatches_without_changing_state() -> None:
    params = leaves(quad_init())
    opt = Adam(params, lr=0.05)
    train(params, opt, quad_loss, 3)
    sd = opt.state_dict()
    with pytest.raises(ValueError, match=r"param_groups\[0\]\['params'\] is \[0, 1\]; .* has 1 parameters"):
        Adam(leaves(quad_init()[:1])).load_state_dict(sd)
    other = Adam(leaves([np.zeros((3, 4)), np.zeros(3)]), lr=0.3)
    with pytest.raises(
        ValueError, match=r"state\[0\]\['exp_avg'\] is float64\(4, 3\); the parameter needs float64\(3, 4\)"
    ):
        other.load_state_dict(sd)
    with pytest.raises(ValueError, match="state is of a Adam, not a RMSprop"):
        RMSprop(leaves(quad_init())).load_state_dict(sd)
    bad = opt.state_dict()
    bad["param_groups"][0]["betas"] = [0.9, 1.5]
    target = Adam(leaves(quad_init()), lr=0.3)
    with pytest.raises(ValueError, match="betas"):
        target.load_state_dict(bad)
    bad = opt.state_dict()
    del bad["state"][1]["exp_avg_sq"]
    with pytest.raises(ValueError, match=r"state\[1\] has \['exp_avg', 'step'\]"):
        target.load_state_dict(bad)
    assert target.param_groups[0]["lr"] == 0.3 and target.state == [{}, {}]


# --- swapping: one line changes, every optimizer trains ---------------------------------

SWAPS: dict[str, Callable[[list[Tensor]], Optimizer]] = {
    "SGD": lambda ps: SGD(ps, lr=0.02),
    "SGD-momentum": lambda ps: SGD(ps, lr=0.01, momentum=0.9),
    "Adagrad": lambda ps: Adagrad(ps, lr=0.1),
    "Adam": lambda ps: Adam(ps, lr=0.02),
    "RMSprop": lambda ps: RMSprop(ps, lr=0.01),
}


@pytest.mark.parametrize("name", sorted(SWAPS))
def test_swapping_optimizers_each_lowers_the_loss(name: str) -> None:
    params = leaves(rnn_init())
    opt = SWAPS[name](params)  # the one line that changes
    losses = []
    for _ in range(60):
        loss = rnn_loss(params)
        opt.zero_grad()
        loss.backward()
        clip_grad_value_(params, 5.0)
        opt.step()
        losses.append(loss.item())
    assert all(math.isfinite(x) for x in losses)
    assert losses[-1] < 0.6 * losses[0]


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_float32_updates_in_place_and_keep_dtype(name: str) -> None:
    params = leaves(rnn_init(np.float32))
    arrays = [p.data for p in params]
    opt = FACTORIES[name](params)
    losses = train(params, opt, rnn_loss, 20)
    assert losses[-1] < losses[0]
    for p, a in zip(params, arrays):
        assert p.data is a and p.dtype == np.float32
    for state in opt.state:
        assert all(v.dtype == np.float32 for v in state.values() if isinstance(v, np.ndarray))


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_step_between_forward_and_backward_is_caught(name: str) -> None:
    params = leaves(rnn_init())
    opt = FACTORIES[name](params)
    rnn_loss(params).backward()
    loss = rnn_loss(params)
    opt.step()  # changes the weights the recorded forward saved
    with pytest.raises(RuntimeError, match="modified in place"):
        loss.backward()


# --- bad arguments ----------------------------------------------------------------------

P = [Tensor(np.zeros(2), requires_grad=True)]
BAD: list[tuple[Callable[[], object], str]] = [
    (lambda: SGD(P, lr=-0.1), "lr=-0.1"),
    (lambda: SGD(P, lr=float("nan")), "lr=nan"),
    (lambda: SGD(P, lr=0.1, momentum=-0.5), "momentum=-0.5"),
    (lambda: SGD(P, lr=0.1, nesterov=True), "nesterov"),
    (lambda: SGD(P, lr=0.1, weight_decay=-1.0), "weight_decay"),
    (lambda: Adagrad(P, lr=-1.0), "lr"),
    (lambda: Adagrad(P, eps=-1e-8), "eps"),
    (lambda: Adam(P, lr=-1e-3), "lr"),
    (lambda: Adam(P, betas=(1.0, 0.999)), r"betas\[0\]"),
    (lambda: Adam(P, betas=(0.9, -0.1)), r"betas\[1\]"),
    (lambda: Adam(P, betas=(0.9,)), "betas"),  # type: ignore[arg-type]
    (lambda: Adam(P, eps=-1.0), "eps"),
    (lambda: Adam(P, weight_decay=-0.1), "weight_decay"),
    (lambda: RMSprop(P, lr=-0.01), "lr"),
    (lambda: RMSprop(P, alpha=1.5), "alpha"),
    (lambda: RMSprop(P, eps=-1.0), "eps"),
    (lambda: clip_grad_value_(P, -1.0), "clip"),
    (lambda: clip_grad_norm_(P, -1.0), "max_norm"),
]


@pytest.mark.parametrize(("make", "message"), BAD)
def test_bad_hyperparameters_are_rejected(make: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_bad_parameters_are_rejected() -> None:
    p = Tensor(np.zeros(3), requires_grad=True)
    with pytest.raises(ValueError, match="empty"):
        SGD([], lr=0.1)
    with pytest.raises(ValueError, match=r"parameter 1 of shape \(2,\) does not require grad"):
        Adam([p, Tensor(np.zeros(2))])
    with pytest.raises(ValueError, match="not a leaf"):
        Adam([p * 2])
    with pytest.raises(ValueError, match="more than once"):
        Adam([p, p])
    with pytest.raises(TypeError, match="not a single Tensor"):
        Adam(p)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="parameter 0 is a ndarray"):
        Adam([np.zeros(3)])  # type: ignore[list-item]
    assert isinstance(Adam(iter([p])), Adam)  # any iterable, e.g. a generator


# --- zero_grad and clipping -------------------------------------------------------------


def test_zero_grad_sets_none() -> None:
    params = leaves(quad_init())
    opt = SGD(params, lr=0.1)
    quad_loss(params).backward()
    assert all(p.grad is not None for p in params)
    opt.zero_grad()
    assert all(p.grad is None for p in params)
    opt.step()  # nothing to do
    np.testing.assert_array_equal(params[0].data, quad_init()[0])


def test_clip_grad_value_clips_in_place_and_skips_none() -> None:
    a = Tensor(np.zeros(4), requires_grad=True)
    b = Tensor(np.zeros(()), requires_grad=True)
    c = Tensor(np.zeros(2), requires_grad=True)
    a.grad = np.array([-7.0, -2.0, 3.0, 9.0])
    b.grad = np.array(-6.0)
    grad = a.grad
    clip_grad_value_([a, b, c], 5.0)
    assert a.grad is grad
    np.testing.assert_array_equal(a.grad, [-5.0, -2.0, 3.0, 5.0])
    assert b.grad.shape == () and b.grad == -5.0 and c.grad is None


def test_clip_grad_norm_returns_norm_before_and_scales() -> None:
    a = Tensor(np.zeros(2), requires_grad=True)
    b = Tensor(np.zeros(()), requires_grad=True)
    c = Tensor(np.zeros(2), requires_grad=True)
    a.grad, b.grad = np.array([3.0, 0.0]), np.array(4.0)
    assert clip_grad_norm_([a, b, c], 10.0) == 5.0  # below: unchanged
    np.testing.assert_array_equal(a.grad, [3.0, 0.0])
    assert clip_grad_norm_([a, b, c], 1.0) == 5.0
    scale = 1.0 / (5.0 + 1e-6)  # PyTorch's
    np.testing.assert_allclose(a.grad, [3.0 * scale, 0.0], rtol=1e-15)
    np.testing.assert_allclose(b.grad, 4.0 * scale, rtol=1e-15)
    assert c.grad is None


def test_swap_optimizers_example_runs() -> None:
    path = Path(__file__).resolve().parents[1] / "examples" / "swap_optimizers.py"
    spec = importlib.util.spec_from_file_location("swap_optimizers", path)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    for make in example.OPTIMIZERS.values():
        losses = example.train(make, steps=4, hidden=8)
        assert len(losses) == 4 and all(math.isfinite(x) for x in losses)
    assert example.window_means([1.0, 2.0, 3.0, 4.0, 5.0], 2) == [1.5, 3.5, 5.0]


def test_state_dict_through_a_checkpoint_file(tmp_path: Path) -> None:
    from tinygrad_rnn import checkpoint

    params = leaves(rnn_init())
    opt = SGD(params, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)
    train(params, opt, rnn_loss, 5)
    names = [str(i) for i in range(len(params))]
    path = tmp_path / "ck.npz"
    vocab = CharVocab("abc")
    checkpoint.save(
        path,
        checkpoint.Checkpoint({n: p.data for n, p in zip(names, params)}, vocab, optimizer=opt.state_dict()),
    )
    train(params, opt, rnn_loss, 5)

    ck = checkpoint.load(path)
    resumed = leaves([ck.params[n] for n in names])
    opt2 = SGD(resumed, lr=0.5)
    assert ck.optimizer is not None
    opt2.load_state_dict(ck.optimizer)
    assert repr(opt2) == repr(opt)
    train(resumed, opt2, rnn_loss, 5)
    for p, q in zip(params, resumed):
        np.testing.assert_array_equal(p.data, q.data)
