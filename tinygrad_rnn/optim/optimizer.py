"""The optimizer base: parameter groups, lazy per-parameter state, checked steps, state dicts.

    opt = Adam([{"params": encoder, "lr": 1e-3}, {"params": head}], lr=1e-2)
    opt.param_groups[1]["lr"]       # 0.01: a group takes every option it does not set

A rule is a subclass that passes its options to `Optimizer.__init__` as `defaults`, checks
their ranges in `check`, and writes `update` (one parameter, one step, reading its group's
options) and, if it keeps arrays, `init_state`. The base counts each parameter's steps in
`state["step"]` (1 on its first update) and skips parameters whose `grad` is None.

Updates are in place and keep the parameter's dtype. They are written `p.data -= step`:
assigning to `data` bumps the tensor's version, so a backward through a forward recorded
before the update raises instead of returning a wrong gradient.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from typing import Any, Iterable, Union

import numpy as np

from tinygrad_rnn.optim.state import from_arrays, plain
from tinygrad_rnn.tensor import Tensor

State = dict[str, Any]
Group = dict[str, Any]
Params = Union[Iterable[Tensor], Iterable[Mapping[str, Any]]]

# options that must be >= 0 wherever a rule has them (ranges beyond that: the rule's `check`)
NONNEGATIVE = ("lr", "momentum", "dampening", "weight_decay", "eps", "lr_decay", "initial_lr")


def check(who: str, ok: bool, name: str, value: Any, want: str) -> None:
    """ValueError `who: invalid name=value, must be want` unless `ok`."""
    if not ok:
        raise ValueError(f"{who}: invalid {name}={value!r}, must be {want}")


def param_list(params: Any, who: str) -> list[Tensor]:
    """`params` as a list of Tensors; TypeError naming the first that is not one."""
    if isinstance(params, Tensor):
        raise TypeError(f"{who}: params must be an iterable of Tensors, not a single Tensor")
    out = list(params)
    for i, p in enumerate(out):
        if not isinstance(p, Tensor):
            raise TypeError(f"{who}: parameter {i} is a {type(p).__name__}, not a Tensor")
    return out


def _option(who: str, name: str, value: Any, default: Any) -> Any:
    """`value` in the type of `default` (bool, str, tuple of floats or float); else ValueError."""
    value = plain(value)
    if isinstance(default, bool):
        check(who, isinstance(value, bool), name, value, "True or False")
        return value
    if isinstance(default, str):
        check(who, isinstance(value, str), name, value, "a string")
        return value
    if isinstance(default, tuple):
        ok = isinstance(value, (list, tuple)) and len(value) == len(default)
        check(who, ok, name, value, f"a sequence of {len(default)} numbers")
        return tuple(_option(who, f"{name}[{i}]", v, 0.0) for i, v in enumerate(value))
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    check(who, ok, name, value, "a finite number")
    return float(value)


def _extra(who: str, name: str, value: Any) -> Any:
    """A group entry that is no option of the rule (say `initial_lr`): a number, bool or string."""
    value = plain(value)
    ok = isinstance(value, (bool, str)) or (isinstance(value, (int, float)) and math.isfinite(value))
    check(who, ok, name, value, "a finite number, a bool or a string (so the state fits an .npz)")
    return value


class Optimizer:
    """Base class: holds parameter groups and per-parameter state; subclasses write `update`."""

    def __init__(self, params: Params, defaults: dict[str, Any]) -> None:
        who = type(self).__name__
        signature = inspect.signature(type(self).__init__).parameters  # gives each option's type
        kinds = {k: v.default for k, v in signature.items() if v.default is not inspect.Parameter.empty}
        self.defaults = {k: _option(who, k, v, kinds.get(k, v)) for k, v in defaults.items()}
        self._check_ranges(self.defaults, who)
        given = list(params) if not isinstance(params, Tensor) else params
        if isinstance(given, list) and given and all(isinstance(g, Mapping) for g in given):
            groups: list[Any] = given
        else:
            groups = [{"params": param_list(given, who)}]
        self.param_groups: list[Group] = []
        self.state: list[State] = []  # one per parameter, in the order of `params`
        for group in groups:
            self.add_param_group(group)
        if not self.params:
            raise ValueError(f"{who}: got an empty list of parameters")

    # --- what a subclass writes ------------------------------------------------------
    def check(self, group: Group, who: str) -> None:
        """ValueError unless the group's options are in range (>= 0 is checked by the base)."""

    def init_state(self, p: Tensor, group: Group) -> State:
        """The arrays of parameter `p` before its first step (zeros in p's dtype)."""
        return {}

    def update(self, p: Tensor, g: np.ndarray, state: State, group: Group) -> None:
        """Update `p` in place (`p.data -= ...`) from its gradient `g`, and `state` in place."""
        raise NotImplementedError

    # --- groups ----------------------------------------------------------------------
    @property
    def params(self) -> list[Tensor]:
        """Every parameter, group after group (the indices of `state` and `state_dict`)."""
        return [p for group in self.param_groups for p in group["params"]]

    def add_param_group(self, group: Mapping[str, Any]) -> None:
        """Add a group: {"params": tensors, option: value, ...}; unset options take the defaults."""
        who = f"{type(self).__name__}: param group {len(self.param_groups)}"
        if not isinstance(group, Mapping) or "params" not in group:
            raise TypeError(f"{who}: a group is a dict with a 'params' entry, not {group!r}")
        ps = group["params"]
        ps = [ps] if isinstance(ps, Tensor) else param_list(ps, who)
        seen = {id(p) for p in self.params}
        for i, p in enumerate(ps):
            if not p.requires_grad:
                raise ValueError(f"{who}: parameter {i} of shape {p.shape} does not require grad")
            if not p.is_leaf:
                raise ValueError(f"{who}: parameter {i} of shape {p.shape} is not a leaf tensor")
            if id(p) in seen:
                raise ValueError(f"{who}: parameter {i} of shape {p.shape} appears more than once")
            seen.add(id(p))
        self.param_groups.append(self._options(group, who) | {"params": ps})
        self.state.extend({} for _ in ps)

    def _options(self, group: Mapping[str, Any], who: str) -> Group:
        """The group's options (defaults filled in), converted and checked; params not included."""
        out = {k: _option(who, k, group.get(k, v), v) for k, v in self.defaults.items()}
        for k, v in group.items():
            if k not in out and k != "params":
                out[k] = _extra(who, k, v)
        self._check_ranges(out, who)
        return out

    def _check_ranges(self, options: Group, who: str) -> None:
        for k in NONNEGATIVE:
            if k in options:
                check(who, options[k] >= 0, k, options[k], ">= 0")
        self.check(options, who)

    # --- steps -----------------------------------------------------------------------
    def _work(self) -> list[tuple[Tensor, np.ndarray, State, Group]]:
        """(param, grad, state, group) of every parameter with a gradient, all checked first."""
        work, i = [], 0
        for group in self.param_groups:
            for p in group["params"]:
                g = p.grad
                if isinstance(g, np.generic):  # a numpy scalar for a 0-d parameter
                    g = np.asarray(g)
                if g is not None:
                    if not isinstance(g, np.ndarray) or g.shape != p.shape or g.dtype.kind != "f":
                        what = f"{g.dtype}{g.shape}" if isinstance(g, np.ndarray) else type(g).__name__
                        raise ValueError(
                            f"{type(self).__name__}.step: parameter {i} is {p.dtype}{p.shape} but its "
                            f"gradient is {what}; nothing was updated"
                        )
                    work.append((p, g, self.state[i], group))
                i += 1
        return work

    def step(self) -> None:
        """One update of every parameter that has a gradient (all gradients checked first)."""
        for p, g, state, group in self._work():
            if not state:
                state["step"] = 0
                state.update(self.init_state(p, group))
            state["step"] += 1
            self.update(p, g, state, group)

    def zero_grad(self) -> None:
        """Set every parameter's `grad` to None (the next backward starts afresh)."""
        for p in self.params:
            p.grad = None

    def __repr__(self) -> str:
        groups = [", ".join(f"{k}={v!r}" for k, v in g.items() if k != "params") for g in self.param_groups]
        if len(groups) == 1:
            return f"{type(self).__name__}({groups[0]})"
        return f"{type(self).__name__}(" + "; ".join(f"group {i}: {g}" for i, g in enumerate(groups)) + ")"

    # --- state dicts ---------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """A copy of the optimizer's state: arrays, numbers and strings only (PyTorch's layout).

        {"type": name, "state": {i: {"step": int, name: array}}, "param_groups": [{option:
        value, ..., "params": [i, ...]}]}, with i the parameter's index in `params`; a
        parameter that has not stepped has no "state" entry. `to_arrays` flattens it for
        `np.savez`; `load_state_dict` reads either form.
        """
        groups, start = [], 0
        for group in self.param_groups:
            n = len(group["params"])
            groups.append(
                {k: v for k, v in group.items() if k != "params"} | {"params": list(range(start, start + n))}
            )
            start += n
        state = {
            i: {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in s.items()}
            for i, s in enumerate(self.state)
            if s
        }
        return {"type": type(self).__name__, "state": state, "param_groups": groups}

    def load_state_dict(self, sd: Mapping[str, Any]) -> None:
        """Restore options and state from `state_dict()`, its `to_arrays` form, or an .npz of it.

        Everything is checked before anything changes (the type, the groups and their
        options, every state's keys, types, shapes and finiteness); ValueError names the key.
        """
        who = f"{type(self).__name__}.load_state_dict"
        if not isinstance(sd, Mapping):
            raise ValueError(f"{who}: expected a dict, got a {type(sd).__name__}")
        if any("/" in str(k) for k in sd):
            sd = {"state": {}} | from_arrays(sd)  # no state key: nothing had stepped
        elif "hyper" in sd:
            sd = _from_version_1(sd, self.defaults, who)
        unknown = sorted(set(sd) - {"type", "state", "param_groups"})
        if unknown:
            raise ValueError(f"{who}: unexpected keys {unknown}")
        kind = plain(_get(sd, "type", who))
        if kind != type(self).__name__:
            raise ValueError(f"{who}: the state is of a {kind}, not a {type(self).__name__}")
        groups = self._read_groups(_get(sd, "param_groups", who), who)
        states = self._read_states(_get(sd, "state", who), groups, who)
        for group, options in zip(self.param_groups, groups):
            params = group["params"]
            group.clear()
            group.update(options, params=params)
        self.state = states

    def _read_groups(self, saved: Any, who: str) -> list[Group]:
        if isinstance(saved, Mapping):  # from .npz keys: {"0": ..., "1": ...}
            saved = [saved[k] for k in sorted(saved, key=lambda k: int(k) if str(k).isdigit() else -1)]
        if not isinstance(saved, (list, tuple)) or len(saved) != len(self.param_groups):
            n = len(saved) if isinstance(saved, (list, tuple)) else saved
            raise ValueError(
                f"{who}: the state has {n} parameter groups, this optimizer {len(self.param_groups)}"
            )
        out, start = [], 0
        for j, (group, mine) in enumerate(zip(saved, self.param_groups)):
            where = f"{who}: param_groups[{j}]"
            if not isinstance(group, Mapping):
                raise ValueError(f"{where} is a {type(group).__name__}, not a dict")
            missing = sorted(set(self.defaults) - set(group))
            if missing:
                raise ValueError(f"{where} has no {', '.join(map(repr, missing))}")
            want = list(range(start, start + len(mine["params"])))
            got = plain(_get(group, "params", where))
            if (list(got) if isinstance(got, (list, tuple)) else got) != want:
                raise ValueError(
                    f"{where}['params'] is {got!r}; this optimizer's group {j} has "
                    f"{len(want)} parameters, {want}"
                )
            out.append(self._options(group, where))
            start += len(want)
        return out

    def _read_states(self, saved: Any, groups: list[Group], who: str) -> list[State]:
        if not isinstance(saved, Mapping):
            raise ValueError(f"{who}: 'state' is a {type(saved).__name__}, not a dict")
        params = self.params
        owner = [g for g, mine in zip(groups, self.param_groups) for _ in mine["params"]]
        states: list[State] = [{} for _ in params]
        for key, entry in saved.items():
            i = plain(key)
            i = int(i) if isinstance(i, str) and i.isdigit() else i
            if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < len(params):
                raise ValueError(f"{who}: state key {key!r} is not a parameter index below {len(params)}")
            states[i] = self._read_state(entry, params[i], owner[i], f"{who}: state[{i}]")
        return states

    def _read_state(self, saved: Any, p: Tensor, group: Group, where: str) -> State:
        template = {"step": 0, **self.init_state(p, group)}
        if not isinstance(saved, Mapping) or set(saved) != set(template):
            keys = sorted(saved) if isinstance(saved, Mapping) else saved
            raise ValueError(f"{where} has {keys!r}; expected the keys {sorted(template)}")
        state: State = {}
        for k, t in template.items():
            v = saved[k]
            if not isinstance(t, np.ndarray):
                n = plain(v)
                if not isinstance(n, int) or isinstance(n, bool) or n < 1:
                    raise ValueError(f"{where}[{k!r}] must be an integer >= 1, got {n!r}")
                state[k] = n
                continue
            a = np.asarray(v)
            if a.dtype.kind not in "iuf" or a.shape != t.shape:
                raise ValueError(
                    f"{where}[{k!r}] is {a.dtype}{a.shape}; the parameter needs {t.dtype}{t.shape}"
                )
            if not np.all(np.isfinite(a)):
                raise ValueError(f"{where}[{k!r}] contains NaN or infinity")
            state[k] = np.array(a, dtype=p.dtype)
        return state


def _get(d: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in d:
        raise ValueError(f"{where}: missing key {key!r}")
    return d[key]


def _from_version_1(sd: Mapping[str, Any], defaults: dict[str, Any], who: str) -> dict[str, Any]:
    """The state dict of tinygrad_rnn 0.1 (one group, "hyper" and "shapes") in today's layout.

    0.1 kept no step count for SGD, Adagrad and RMSprop; their rules then used none, so a
    saved state resumes with step 1 (it means "has stepped": SGD's momentum is kept).
    """
    hyper, shapes = dict(_get(sd, "hyper", who)), _get(sd, "shapes", who)
    states = {k: dict(v) for k, v in dict(sd.get("state", {})).items()}
    for s in states.values():
        s.setdefault("step", 1)
    group = defaults | hyper | {"params": list(range(len(shapes)))}  # options added since: defaults
    return {"type": _get(sd, "type", who), "state": states, "param_groups": [group]}
