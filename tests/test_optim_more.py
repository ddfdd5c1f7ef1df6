"""Optimizer options, parameter groups, schedules, clipping norms, state files and misuse.

Every rule is checked twice: against an independent numpy transcription of its published
formula (so the suite holds without torch) and against torch.optim step by step to 1e-10.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from tinygrad_rnn import Tensor
from tinygrad_rnn.optim import (
    SGD,
    Adagrad,
    Adam,
    AdamW,
    Optimizer,
    RMSprop,
    clip_grad_norm_,
    clip_grad_value_,
    lr_scheduler,
    to_arrays,
)
from tinygrad_rnn.optim.lr_scheduler import (
    CosineAnnealingLR,
    ExponentialLR,
    LambdaLR,
    LinearLR,
    StepLR,
)

# --- a problem whose gradient is a fixed affine map of the parameters -----------------------
RNG = np.random.default_rng(11)
SHAPES = [(4, 3), (3,)]
N = sum(int(np.prod(s)) for s in SHAPES)
_A = RNG.standard_normal((N, N))
K = _A @ _A.T / N + 0.1 * np.eye(N)  # symmetric positive definite
C = RNG.standard_normal(N)
P0 = [RNG.standard_normal(s) for s in SHAPES]
STEPS = 30


def grads_of(arrays: list[np.ndarray]) -> list[np.ndarray]:
    """g = K p + c over all parameters flattened, back in each parameter's shape."""
    g = K @ np.concatenate([a.ravel() for a in arrays]) + C
    out, start = [], 0
    for s in SHAPES:
        n = int(np.prod(s))
        out.append(g[start : start + n].reshape(s))
        start += n
    return out


def leaves(arrays: list[np.ndarray]) -> list[Tensor]:
    return [Tensor(a.copy(), requires_grad=True) for a in arrays]


def run(opt: Optimizer, params: list[Tensor], steps: int = STEPS) -> None:
    for _ in range(steps):
        for p, g in zip(params, grads_of([p.data for p in params])):
            p.grad = g
        opt.step()


def torch_step(torch: Any, topt: Any, tparams: list[Any]) -> None:
    for tp, g in zip(tparams, grads_of([tp.detach().numpy() for tp in tparams])):
        tp.grad = torch.tensor(g)
    topt.step()


# --- the published formulas, transcribed in numpy (one parameter, one step) ------------------
def sgd_ref(p, g, s, t, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):  # type: ignore[no-untyped-def]
    g = g + weight_decay * p
    if momentum:
        s["b"] = g.copy() if t == 1 else momentum * s["b"] + (1 - dampening) * g
        g = g + momentum * s["b"] if nesterov else s["b"]
    return p - lr * g


def adam_ref(p, g, s, t, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, decoupled=False):  # type: ignore[no-untyped-def]
    b1, b2 = betas
    if decoupled:
        p = p * (1 - lr * weight_decay)
    else:
        g = g + weight_decay * p
    s["m"] = b1 * s.get("m", 0) + (1 - b1) * g
    s["v"] = b2 * s.get("v", 0) + (1 - b2) * g * g
    v = s["v"]
    if amsgrad:
        v = s["vmax"] = np.maximum(s.get("vmax", 0), s["v"])
    m_hat, v_hat = s["m"] / (1 - b1**t), v / (1 - b2**t)
    return p - lr * m_hat / (np.sqrt(v_hat) + eps)


def rmsprop_ref(p, g, s, t, lr, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False):  # type: ignore[no-untyped-def]
    g = g + weight_decay * p
    s["v"] = alpha * s.get("v", 0) + (1 - alpha) * g * g
    v = s["v"]
    if centered:
        s["a"] = alpha * s.get("a", 0) + (1 - alpha) * g
        v = v - s["a"] ** 2
    d = np.sqrt(v) + eps
    if momentum:
        s["b"] = momentum * s.get("b", 0) + g / d
        return p - lr * s["b"]
    return p - lr * g / d


def adagrad_ref(p, g, s, t, lr, lr_decay=0.0, weight_decay=0.0, eps=1e-8):  # type: ignore[no-untyped-def]
    g = g + weight_decay * p
    s["sum"] = s.get("sum", 0) + g * g
    return p - lr / (1 + (t - 1) * lr_decay) * g / np.sqrt(s["sum"] + eps)  # eps inside: the seed's


REFS: dict[str, Callable[..., np.ndarray]] = {
    "SGD": sgd_ref,
    "Adam": adam_ref,
    "AdamW": lambda *a, **kw: adam_ref(*a, **{"weight_decay": 1e-2, **kw}, decoupled=True),
    "RMSprop": rmsprop_ref,
    "Adagrad": adagrad_ref,
}
CLASSES: dict[str, type[Optimizer]] = {
    "SGD": SGD,
    "Adam": Adam,
    "AdamW": AdamW,
    "RMSprop": RMSprop,
    "Adagrad": Adagrad,
}

CASES = [
    ("SGD", {"lr": 0.05}),
    ("SGD", {"lr": 0.02, "momentum": 0.9}),
    ("SGD", {"lr": 0.02, "momentum": 0.9, "dampening": 0.3}),
    ("SGD", {"lr": 0.02, "momentum": 0.8, "nesterov": True}),
    ("SGD", {"lr": 0.05, "weight_decay": 0.1}),
    ("SGD", {"lr": 0.02, "momentum": 0.5, "dampening": 0.5, "weight_decay": 0.1}),
    ("Adam", {"lr": 0.05}),
    ("Adam", {"lr": 0.05, "amsgrad": True}),
    ("Adam", {"lr": 0.05, "weight_decay": 0.1}),
    ("Adam", {"lr": 0.03, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.05, "amsgrad": True}),
    ("AdamW", {"lr": 0.05}),
    ("AdamW", {"lr": 0.05, "weight_decay": 0.1, "amsgrad": True}),
    ("AdamW", {"lr": 0.05, "betas": (0.3, 0.9), "weight_decay": 0.0}),
    ("RMSprop", {"lr": 0.01}),
    ("RMSprop", {"lr": 0.01, "alpha": 0.9, "eps": 1e-6}),
    ("RMSprop", {"lr": 0.005, "momentum": 0.9}),
    ("RMSprop", {"lr": 0.01, "centered": True}),
    ("RMSprop", {"lr": 0.005, "centered": True, "momentum": 0.5, "weight_decay": 0.1}),
    ("Adagrad", {"lr": 0.1, "eps": 0.0}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.1, "eps": 0.0}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.05, "weight_decay": 0.1, "eps": 0.0}),
]
IDS = [f"{n}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for n, kw in CASES]


@pytest.mark.parametrize(("name", "kwargs"), CASES, ids=IDS)
def test_each_option_follows_the_published_formula(name: str, kwargs: dict[str, Any]) -> None:
    params = leaves(P0)
    run(CLASSES[name](params, **kwargs), params)
    ref, states = [a.copy() for a in P0], [{} for _ in P0]  # type: ignore[var-annotated]
    for t in range(1, STEPS + 1):
        ref = [REFS[name](p, g, s, t, **kwargs) for p, g, s in zip(ref, grads_of(ref), states)]
    for p, r in zip(params, ref):
        np.testing.assert_allclose(p.data, r, rtol=0, atol=1e-10)
    assert not np.allclose(ref[0], P0[0])  # it moved


def test_adagrads_eps_sits_inside_the_square_root() -> None:
    # the seed's rule, not PyTorch's (eps outside): with a large eps the two differ plainly
    p = Tensor(np.array([1.0]), requires_grad=True)
    p.grad = np.array([2.0])
    Adagrad([p], lr=1.0, eps=5.0).step()
    assert p.data[0] == 1.0 - 2.0 / 3.0  # sqrt(4 + 5) = 3; PyTorch: 2 / (2 + 5)


@pytest.mark.parametrize(("name", "kwargs"), CASES, ids=IDS)
def test_each_option_matches_torch_step_by_step(torch: Any, name: str, kwargs: dict[str, Any]) -> None:
    params = leaves(P0)
    opt = CLASSES[name](params, **kwargs)
    tparams = [torch.tensor(a.copy(), requires_grad=True) for a in P0]
    topt = getattr(torch.optim, name)(tparams, **kwargs)
    for _ in range(STEPS):
        run(opt, params, steps=1)
        torch_step(torch, topt, tparams)
        for p, tp in zip(params, tparams):
            np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=0, atol=1e-10)


# --- parameter groups ------------------------------------------------------------------------
def test_groups_take_their_own_options_and_the_defaults() -> None:
    a, b = leaves(P0)
    opt = Adam([{"params": [a], "lr": 0.1, "amsgrad": True}, {"params": b}], lr=0.01, weight_decay=0.1)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.01]
    assert [g["amsgrad"] for g in opt.param_groups] == [True, False]
    assert all(g["weight_decay"] == 0.1 and g["betas"] == (0.9, 0.999) for g in opt.param_groups)
    assert opt.param_groups[1]["params"] == [b] and opt.params == [a, b]
    assert opt.defaults["lr"] == 0.01


def test_each_group_is_the_optimizer_of_its_own_parameters() -> None:
    # independent of torch: two groups step exactly as two optimizers with those options
    params = leaves(P0)
    opt = RMSprop([{"params": params[:1], "lr": 0.02, "momentum": 0.9}, {"params": params[1:]}], lr=0.005)
    alone = leaves(P0)
    first, second = RMSprop(alone[:1], lr=0.02, momentum=0.9), RMSprop(alone[1:], lr=0.005)
    for _ in range(STEPS):
        for ps, o in ((params, opt), (alone, None)):
            for p, g in zip(ps, grads_of([p.data for p in ps])):
                p.grad = g
            if o is not None:
                o.step()
        first.step()
        second.step()
    for p, q in zip(params, alone):
        np.testing.assert_array_equal(p.data, q.data)


def test_groups_with_different_lrs_match_torch(torch: Any) -> None:
    params = leaves(P0)
    opt = SGD(
        [{"params": params[:1], "lr": 0.05, "nesterov": True}, {"params": params[1:]}], lr=0.01, momentum=0.9
    )
    tparams = [torch.tensor(a.copy(), requires_grad=True) for a in P0]
    groups = [{"params": tparams[:1], "lr": 0.05, "nesterov": True}, {"params": tparams[1:]}]
    topt = torch.optim.SGD(groups, lr=0.01, momentum=0.9)
    run(opt, params)
    for _ in range(STEPS):
        torch_step(torch, topt, tparams)
    for p, tp in zip(params, tparams):
        np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=0, atol=1e-10)


def test_add_param_group() -> None:
    a, b = leaves(P0)
    opt = AdamW([a], lr=0.1)
    opt.add_param_group({"params": b, "lr": 0.5})  # a single Tensor in a group is fine, as torch
    assert opt.params == [a, b] and opt.param_groups[1]["lr"] == 0.5
    assert opt.param_groups[1]["weight_decay"] == 0.01
    assert len(opt.state) == 2
    with pytest.raises(
        ValueError, match="param group 2: parameter 0 of shape \\(4, 3\\) appears more than once"
    ):
        opt.add_param_group({"params": [a]})
    with pytest.raises(ValueError, match="param group 2: invalid lr=-1.0"):
        opt.add_param_group({"params": [Tensor(np.zeros(2), requires_grad=True)], "lr": -1.0})
    with pytest.raises(TypeError, match="'params' entry"):
        opt.add_param_group({"lr": 0.1})
    assert len(opt.param_groups) == 2  # the failed additions left nothing behind


def test_a_parameter_in_two_groups_is_an_error() -> None:
    a, b = leaves(P0)
    with pytest.raises(
        ValueError, match="param group 1: parameter 1 of shape \\(4, 3\\) appears more than once"
    ):
        SGD([{"params": [a]}, {"params": [b, a]}], lr=0.1)


# --- bad hyperparameters: ValueError at construction, per group too ------------------------
P = [Tensor(np.zeros(2), requires_grad=True)]
BAD: list[tuple[Callable[[], object], str]] = [
    (lambda: SGD(P, lr=0.1, dampening=-0.1), "dampening=-0.1"),
    (lambda: SGD(P, lr=0.1, dampening=1.5), "dampening=1.5"),
    (lambda: SGD(P, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), "nesterov"),
    (lambda: SGD(P, lr="0.1"), "lr='0.1', must be a finite number"),  # type: ignore[arg-type]
    (lambda: SGD(P, lr=0.1, nesterov=1), "nesterov=1, must be True or False"),  # type: ignore[arg-type]
    (lambda: SGD(P, lr=math.inf), "lr=inf"),
    (lambda: Adam(P, amsgrad="yes"), "amsgrad"),  # type: ignore[arg-type]
    (lambda: Adam(P, eps=float("nan")), "eps=nan"),
    (lambda: AdamW(P, betas=(0.9, 1.0)), r"betas\[1\]=1.0"),
    (lambda: AdamW(P, weight_decay=-0.01), "weight_decay"),
    (lambda: RMSprop(P, momentum=-0.9), "momentum=-0.9"),
    (lambda: RMSprop(P, centered=None), "centered"),  # type: ignore[arg-type]
    (lambda: RMSprop(P, weight_decay=-1.0), "weight_decay"),
    (lambda: Adagrad(P, lr_decay=-0.1), "lr_decay=-0.1"),
    (lambda: Adagrad(P, weight_decay=-0.1), "weight_decay"),
    (lambda: Adam([{"params": P, "lr": -1.0}]), "Adam: param group 0: invalid lr=-1.0"),
    (lambda: Adam([{"params": P, "lr": 1.0}], lr=-1.0), "Adam: invalid lr=-1.0"),  # the defaults too
    (
        lambda: SGD([{"params": P, "momentum": 0.0, "nesterov": True}], momentum=0.9),
        "param group 0: invalid nesterov",
    ),
    (lambda: Adam([{"params": P, "name": [1, 2]}]), "param group 0: invalid name"),
    (lambda: clip_grad_norm_(P, 1.0, norm_type=0.0), "norm_type"),
    (lambda: clip_grad_norm_(P, 1.0, norm_type=-2.0), "norm_type"),
    (lambda: StepLR(SGD(P), step_size=0), "step_size=0"),
    (lambda: StepLR(SGD(P), step_size=2.5), "step_size"),  # type: ignore[arg-type]
    (lambda: ExponentialLR(SGD(P), gamma=-0.5), "gamma"),
    (lambda: CosineAnnealingLR(SGD(P), T_max=0), "T_max"),
    (lambda: CosineAnnealingLR(SGD(P), T_max=10, eta_min=-1.0), "eta_min"),
    (lambda: LinearLR(SGD(P), start_factor=0.0), "start_factor"),
    (lambda: LinearLR(SGD(P), end_factor=1.5), "end_factor"),
    (lambda: LinearLR(SGD(P), total_iters=0), "total_iters"),
    (lambda: LambdaLR(SGD(P), [lambda e: 1.0, lambda e: 1.0]), "a list of 1 functions"),
]


@pytest.mark.parametrize(("make", "message"), BAD)
def test_bad_hyperparameters_are_rejected(make: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_a_scheduler_needs_an_optimizer() -> None:
    with pytest.raises(TypeError, match="list is not an Optimizer"):
        StepLR(P, step_size=1)  # type: ignore[arg-type]


# --- schedules -------------------------------------------------------------------------------
LRS = [0.1, 0.02]
SCHEDULES: dict[str, tuple[Callable[[Optimizer], Any], Callable[[float, int], float]]] = {
    "StepLR": (lambda o: StepLR(o, step_size=3, gamma=0.5), lambda b, e: b * 0.5 ** (e // 3)),
    "ExponentialLR": (lambda o: ExponentialLR(o, gamma=0.9), lambda b, e: b * 0.9**e),
    "CosineAnnealingLR": (
        lambda o: CosineAnnealingLR(o, T_max=10, eta_min=0.001),
        lambda b, e: 0.001 + (b - 0.001) * (1 + math.cos(math.pi * e / 10)) / 2,
    ),
    "LambdaLR": (lambda o: LambdaLR(o, lambda e: 1 / (1 + e)), lambda b, e: b / (1 + e)),
    "LinearLR": (
        lambda o: LinearLR(o, start_factor=0.25, end_factor=0.75, total_iters=8),
        lambda b, e: b * (0.25 + 0.5 * min(e, 8) / 8),
    ),
    "LinearLR-defaults": (lambda o: LinearLR(o), lambda b, e: b * (1 / 3 + (2 / 3) * min(e, 5) / 5)),
}
EPOCHS = 35  # past T_max = 10 three times: the cosine goes down, up and down again


def two_groups() -> SGD:
    a, b = leaves(P0)
    return SGD([{"params": [a], "lr": LRS[0]}, {"params": [b], "lr": LRS[1]}], momentum=0.9)


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_schedules_follow_their_closed_forms(name: str) -> None:
    make, closed = SCHEDULES[name]
    opt = two_groups()
    sched = make(opt)
    for e in range(EPOCHS):
        assert sched.last_epoch == e
        want = [closed(b, e) for b in LRS]
        np.testing.assert_allclose(sched.get_last_lr(), want, rtol=1e-12, atol=1e-15)
        assert [g["lr"] for g in opt.param_groups] == sched.get_last_lr()
        sched.step()
    assert [g["initial_lr"] for g in opt.param_groups] == LRS and sched.base_lrs == LRS


TORCH_SCHEDULES = {
    "StepLR": ("StepLR", {"step_size": 3, "gamma": 0.5}),
    "ExponentialLR": ("ExponentialLR", {"gamma": 0.9}),
    "CosineAnnealingLR": ("CosineAnnealingLR", {"T_max": 10, "eta_min": 0.001}),
    "LambdaLR": ("LambdaLR", {"lr_lambda": lambda e: 1 / (1 + e)}),
    "LinearLR": ("LinearLR", {"start_factor": 0.25, "end_factor": 0.75, "total_iters": 8}),
    "LinearLR-defaults": ("LinearLR", {}),
}


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_schedules_match_torch_step_by_step(torch: Any, name: str) -> None:
    import warnings

    sched = SCHEDULES[name][0](two_groups())
    cls, kwargs = TORCH_SCHEDULES[name]
    tparams = [torch.zeros(2, requires_grad=True), torch.zeros(3, requires_grad=True)]
    topt = torch.optim.SGD([{"params": [tparams[0]], "lr": LRS[0]}, {"params": [tparams[1]], "lr": LRS[1]}])
    tsched = getattr(torch.optim.lr_scheduler, cls)(topt, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns when no optimizer step came first
        for _ in range(EPOCHS):
            assert sched.last_epoch == tsched.last_epoch
            np.testing.assert_allclose(sched.get_last_lr(), tsched.get_last_lr(), rtol=0, atol=1e-10)
            sched.step()
            tsched.step()


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_schedule_state_goes_through_an_npz_and_continues(tmp_path: Path, name: str) -> None:
    make = SCHEDULES[name][0]
    opt = two_groups()
    sched = make(opt)
    for _ in range(7):
        sched.step()
    np.savez(tmp_path / "s.npz", **sched.state_dict())  # numbers, lists and strings: no pickle
    np.savez(tmp_path / "o.npz", **to_arrays(opt.state_dict()))
    more = []
    for _ in range(10):
        sched.step()
        more.append(sched.get_last_lr())

    opt2 = two_groups()
    sched2 = make(opt2)  # construct first (it sets the lrs of epoch 0), then load, as in torch
    with np.load(tmp_path / "o.npz", allow_pickle=False) as z:
        opt2.load_state_dict(z)
    with np.load(tmp_path / "s.npz", allow_pickle=False) as z:
        sched2.load_state_dict(z)
    assert sched2.last_epoch == 7
    for want in more:
        sched2.step()
        assert sched2.get_last_lr() == want  # bit for bit


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_schedule_state_goes_through_json_exactly(name: str) -> None:
    # a checkpoint may keep it among its JSON values (numbers, lists, strings)
    make = SCHEDULES[name][0]
    opt, opt2 = two_groups(), two_groups()
    sched = make(opt)
    for _ in range(4):
        sched.step()
    sched2 = make(opt2)
    opt2.load_state_dict(opt.state_dict())  # the chained schedules go on from the groups' lr
    sched2.load_state_dict(json.loads(json.dumps(sched.state_dict())))
    for _ in range(12):
        sched.step()
        sched2.step()
        assert sched2.get_last_lr() == sched.get_last_lr()


def test_lambda_lr_state_holds_no_function() -> None:
    sched = LambdaLR(two_groups(), [lambda e: 0.5**e, lambda e: 1.0])
    sd = sched.state_dict()
    assert all(isinstance(v, (int, float, str, list)) for v in sd.values())
    assert not any(callable(v) for v in sd.values())


def test_scheduler_load_state_dict_checks_first() -> None:
    sched = StepLR(two_groups(), step_size=2)
    sched.step()
    before = sched.state_dict()
    bad: list[tuple[dict[str, Any], str]] = [
        ({k: v for k, v in before.items() if k != "gamma"}, "expected the keys"),
        (before | {"last_epoch": -1}, "last_epoch=-1"),
        (before | {"last_epoch": "3"}, "last_epoch='3'"),
        (before | {"base_lrs": [0.1]}, "base_lrs must hold 2 numbers"),
        (before | {"last_lr": [0.1, float("nan")]}, r"last_lr\[1\]=nan"),
        (before | {"step_size": 0}, "step_size=0"),
        (before | {"type": "ExponentialLR"}, "state is of a ExponentialLR, not a StepLR"),
    ]
    for sd, message in bad:
        with pytest.raises(ValueError, match=message):
            sched.load_state_dict(sd)
        assert sched.state_dict() == before


def test_lr_scheduler_is_importable_as_a_module() -> None:
    assert lr_scheduler.StepLR is StepLR and lr_scheduler.LRScheduler is not None


# --- state dicts through a real .npz file ------------------------------------------------------
FACTORIES: dict[str, Callable[[list[Tensor]], Optimizer]] = {
    "SGD": lambda ps: SGD(
        [{"params": ps[:1], "lr": 0.01}, {"params": ps[1:]}], lr=0.02, momentum=0.9, dampening=0.1
    ),
    "Adam": lambda ps: Adam(ps, lr=0.05, amsgrad=True, weight_decay=0.1),
    "AdamW": lambda ps: AdamW([{"params": ps[:1]}, {"params": ps[1:], "weight_decay": 0.0}], lr=0.05),
    "RMSprop": lambda ps: RMSprop(ps, lr=0.01, momentum=0.5, centered=True),
    "Adagrad": lambda ps: Adagrad(ps, lr=0.1, lr_decay=0.01),
}


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_state_dict_through_an_npz_file_then_continuing_equals_not_stopping(
    tmp_path: Path, name: str
) -> None:
    params = leaves(P0)
    opt = FACTORIES[name](params)
    sched = CosineAnnealingLR(opt, T_max=15)
    for _ in range(10):
        run(opt, params, steps=1)
        sched.step()
    path = tmp_path / "opt.npz"
    np.savez(path, **to_arrays(opt.state_dict()), **{f"sched/{k}": v for k, v in sched.state_dict().items()})
    saved, saved_repr = [p.data.copy() for p in params], repr(opt)
    for _ in range(10):
        run(opt, params, steps=1)
        sched.step()

    resumed = leaves(saved)
    opt2 = FACTORIES[name](resumed)
    sched2 = CosineAnnealingLR(opt2, T_max=15)
    with np.load(path, allow_pickle=False) as z:
        opt2.load_state_dict({k: z[k] for k in z.files if not k.startswith("sched/")})
        sched2.load_state_dict({k[len("sched/") :]: z[k] for k in z.files if k.startswith("sched/")})
    assert repr(opt2) == saved_repr
    for _ in range(10):
        run(opt2, resumed, steps=1)
        sched2.step()
    for p, q in zip(params, resumed):
        np.testing.assert_array_equal(p.data, q.data)


def test_a_state_dict_holds_only_arrays_numbers_and_strings() -> None:
    params = leaves(P0)
    opt = FACTORIES["AdamW"](params)
    run(opt, params, steps=2)

    def leaves_of(x: Any) -> list[Any]:
        if isinstance(x, dict):
            return [y for v in x.values() for y in leaves_of(v)]
        if isinstance(x, (list, tuple)):
            return [y for v in x for y in leaves_of(v)]
        return [x]

    assert all(isinstance(v, (np.ndarray, int, float, bool, str)) for v in leaves_of(opt.state_dict()))
    assert all(a.dtype != object for a in to_arrays(opt.state_dict()).values())


def test_state_dict_of_version_0_1_still_loads() -> None:
    # the layout of tinygrad_rnn 0.1 (one group, "hyper", "shapes"), as old checkpoints hold it
    params = leaves(P0)
    opt = SGD(params, lr=0.05, momentum=0.9)
    run(opt, params, steps=3)
    old = {
        "type": "SGD",
        "hyper": {"lr": 0.05, "momentum": 0.9, "nesterov": False, "weight_decay": 0.0},
        "shapes": {str(i): np.array(p.shape) for i, p in enumerate(params)},
        "state": {str(i): {"momentum_buffer": s["momentum_buffer"].copy()} for i, s in enumerate(opt.state)},
    }
    resumed = leaves([p.data for p in params])
    opt2 = SGD(resumed, lr=1.0)
    opt2.load_state_dict(old)
    run(opt, params, steps=3)
    run(opt2, resumed, steps=3)
    for p, q in zip(params, resumed):
        np.testing.assert_array_equal(p.data, q.data)


# --- misuse: load_state_dict validates everything first, then changes all or nothing ---------
def _stepped_adam() -> tuple[Adam, dict[str, Any]]:
    params = leaves(P0)
    opt = Adam([{"params": params[:1]}, {"params": params[1:], "lr": 0.01}], lr=0.05)
    run(opt, params, steps=2)
    return opt, opt.state_dict()


def _corrupt(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    sd = _stepped_adam()[1]
    change(sd)
    return sd


BAD_STATES: list[tuple[Callable[[dict[str, Any]], None], str]] = [
    (lambda sd: sd.pop("param_groups"), "missing key 'param_groups'"),
    (lambda sd: sd.pop("type"), "missing key 'type'"),
    (lambda sd: sd.update(extra=1), r"unexpected keys \['extra'\]"),
    (lambda sd: sd["param_groups"].pop(), "the state has 1 parameter groups, this optimizer 2"),
    (lambda sd: sd["param_groups"][1].pop("eps"), r"param_groups\[1\] has no 'eps'"),
    (lambda sd: sd["param_groups"][1].update(lr="fast"), r"param_groups\[1\]: invalid lr='fast'"),
    (lambda sd: sd["param_groups"][0].update(lr=-0.1), r"param_groups\[0\]: invalid lr=-0.1"),
    (lambda sd: sd["param_groups"][0].update(amsgrad=1), r"param_groups\[0\]: invalid amsgrad=1"),
    (lambda sd: sd["param_groups"][0].update(params=[1]), r"param_groups\[0\]\['params'\] is \[1\]"),
    (lambda sd: sd["state"][0].update(step="2"), r"state\[0\]\['step'\] must be an integer >= 1, got '2'"),
    (lambda sd: sd["state"][0].update(step=-1), r"state\[0\]\['step'\] must be an integer >= 1, got -1"),
    (lambda sd: sd["state"][1].update(step=2.0), r"state\[1\]\['step'\] must be an integer"),
    (lambda sd: sd["state"][1]["exp_avg"].__setitem__(0, np.nan), r"state\[1\]\['exp_avg'\] contains NaN"),
    (lambda sd: sd["state"][0].update(exp_avg=np.zeros(3)), r"state\[0\]\['exp_avg'\] is float64\(3,\)"),
    (lambda sd: sd["state"][0].update(exp_avg=np.array(["a"])), r"state\[0\]\['exp_avg'\] is <U1"),
    (lambda sd: sd["state"][0].pop("exp_avg_sq"), r"state\[0\] has \['exp_avg', 'step'\]"),
    (lambda sd: sd["state"].update({5: {}}), "state key 5 is not a parameter index below 2"),
    (lambda sd: sd.update(state=[1, 2]), "'state' is a list, not a dict"),
]


@pytest.mark.parametrize(("change", "message"), BAD_STATES)
def test_load_state_dict_names_the_bad_key_and_changes_nothing(
    change: Callable[[dict[str, Any]], None], message: str
) -> None:
    opt, before = _stepped_adam()
    with pytest.raises(ValueError, match=message):
        opt.load_state_dict(_corrupt(change))
    after = opt.state_dict()
    assert after["param_groups"] == before["param_groups"]
    for i, s in before["state"].items():
        assert after["state"][i]["step"] == s["step"]
        np.testing.assert_array_equal(after["state"][i]["exp_avg"], s["exp_avg"])


def test_load_state_dict_refuses_a_non_dict() -> None:
    with pytest.raises(ValueError, match="expected a dict, got a list"):
        _stepped_adam()[0].load_state_dict([])  # type: ignore[arg-type]


# --- misuse: a gradient of the wrong shape or kind is refused before any update -------------
@pytest.mark.parametrize(
    ("grad", "message"),
    [
        (np.ones(1), r"parameter 1 is float64\(3,\) but its gradient is float64\(1,\)"),
        (np.ones((1, 3)), r"parameter 1 is float64\(3,\) but its gradient is float64\(1, 3\)"),
        (np.ones(3, dtype=np.int64), r"parameter 1 is float64\(3,\) but its gradient is int64\(3,\)"),
        (np.ones(3, dtype=complex), "gradient is complex128"),
        ([1.0, 2.0, 3.0], "gradient is list"),
    ],
)
def test_step_refuses_a_gradient_of_the_wrong_shape_or_kind(grad: Any, message: str) -> None:
    params = leaves(P0)
    opt = Adam(params, lr=0.1)
    params[0].grad = np.ones((4, 3))  # fine, but must stay unapplied
    params[1].grad = grad
    with pytest.raises(ValueError, match=message):
        opt.step()
    for p, a in zip(params, P0):
        np.testing.assert_array_equal(p.data, a)
    assert opt.state == [{}, {}]


def test_float32_gradient_of_a_float64_parameter_is_fine() -> None:
    p = Tensor(np.ones(3), requires_grad=True)
    p.grad = np.ones(3, dtype=np.float32)
    SGD([p], lr=0.5).step()
    np.testing.assert_array_equal(p.data, np.full(3, 0.5))


# --- clipping ----------------------------------------------------------------------------------
def _norm_ref(grads: list[np.ndarray], p: float) -> float:
    flat = np.concatenate([g.ravel() for g in grads])
    return float(np.max(np.abs(flat))) if p == math.inf else float(np.sum(np.abs(flat) ** p) ** (1 / p))


@pytest.mark.parametrize("norm_type", [1.0, 2.0, 3.0, 0.5, math.inf])
def test_clip_grad_norm_any_p(norm_type: float) -> None:
    rng = np.random.default_rng(7)
    grads = [rng.standard_normal((3, 4)), rng.standard_normal(5)]
    params = leaves([np.zeros_like(g) for g in grads]) + [Tensor(np.zeros(2), requires_grad=True)]  # no grad
    for p, g in zip(params, grads):
        p.grad = g.copy()
    total = clip_grad_norm_(params, 0.5, norm_type=norm_type)
    want = _norm_ref(grads, norm_type)  # the norm of all elements: the same as the norm of the norms
    assert total == pytest.approx(want, rel=1e-12)
    for p, g in zip(params, grads):
        np.testing.assert_allclose(p.grad, g * 0.5 / (want + 1e-6), rtol=1e-12)
    assert params[2].grad is None
    assert _norm_ref([p.grad for p in params[:2]], norm_type) == pytest.approx(0.5, rel=1e-5)


@pytest.mark.parametrize("norm_type", [1.0, 2.0, 3.0, 0.5, math.inf])
def test_clip_grad_norm_matches_torch(torch: Any, norm_type: float) -> None:
    rng = np.random.default_rng(8)
    grads = [rng.standard_normal((3, 4)), rng.standard_normal(5)]
    params = leaves([np.zeros_like(g) for g in grads])
    tparams = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
    for p, tp, g in zip(params, tparams, grads):
        p.grad, tp.grad = g.copy(), torch.tensor(g)
    total = clip_grad_norm_(params, 0.7, norm_type=norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(tparams, 0.7, norm_type=norm_type)
    assert isinstance(total, float) and abs(total - ttotal.item()) < 1e-12
    for p, tp in zip(params, tparams):
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=0, atol=1e-14)


def test_clipping_accepts_a_single_tensor() -> None:
    p = Tensor(np.zeros(2), requires_grad=True)
    p.grad = np.array([3.0, -4.0])
    assert clip_grad_norm_(p, 1.0) == 5.0
    np.testing.assert_allclose(p.grad, [3.0 / (5.0 + 1e-6), -4.0 / (5.0 + 1e-6)], rtol=1e-15)
    p.grad = np.array([3.0, -4.0])
    clip_grad_value_(p, 2.0)
    np.testing.assert_array_equal(p.grad, [2.0, -2.0])
    q = Tensor(np.zeros(2), requires_grad=True)
    assert clip_grad_norm_(q, 1.0) == 0.0  # no gradient: nothing to clip
    clip_grad_value_(q, 1.0)
    assert q.grad is None


# --- a user's own rule: the same API the built-in rules use -----------------------------------
class SignMomentum(Optimizer):
    """b = beta b + g;  p -= lr sign(b)."""

    def __init__(self, params: Any, lr: float = 0.01, beta: float = 0.9, mode: str = "sign") -> None:
        super().__init__(params, dict(lr=lr, beta=beta, mode=mode))

    def check(self, group: dict[str, Any], who: str) -> None:
        if not 0 <= group["beta"] < 1:
            raise ValueError(f"{who}: invalid beta={group['beta']!r}, must be in [0, 1)")

    def init_state(self, p: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        return {"buf": np.zeros_like(p.data)}

    def update(self, p: Tensor, g: np.ndarray, state: dict[str, Any], group: dict[str, Any]) -> None:
        state["buf"] = group["beta"] * state["buf"] + g
        p.data -= group["lr"] * np.sign(state["buf"])


def test_a_users_rule_gets_groups_checks_and_state_dicts(tmp_path: Path) -> None:
    params = leaves(P0)
    opt = SignMomentum([{"params": params[:1], "beta": 0.5}, {"params": params[1:]}], lr=0.1)
    assert [g["beta"] for g in opt.param_groups] == [0.5, 0.9] and opt.param_groups[1]["mode"] == "sign"
    with pytest.raises(ValueError, match="param group 0: invalid beta=1.5"):
        SignMomentum([{"params": leaves(P0), "beta": 1.5}])
    run(opt, params, steps=3)
    np.savez(tmp_path / "o.npz", **to_arrays(opt.state_dict()))
    resumed = leaves([p.data for p in params])
    opt2 = SignMomentum([{"params": resumed[:1]}, {"params": resumed[1:]}])  # same groups, as torch
    with np.load(tmp_path / "o.npz", allow_pickle=False) as z:
        opt2.load_state_dict(z)
    assert repr(opt2) == repr(opt) and opt2.state[0]["step"] == 3
    run(opt, params, steps=3)
    run(opt2, resumed, steps=3)
    for p, q in zip(params, resumed):
        np.testing.assert_array_equal(p.data, q.data)
