"""Learning-rate schedules with PyTorch's semantics (`torch.optim.lr_scheduler`).

    sched = StepLR(opt, step_size=1000, gamma=0.5)
    for _ in range(steps):
        ...; opt.step(); sched.step()

Construction records each group's `initial_lr` (kept if already there), makes `base_lrs`
from it and performs step 0, which sets the groups' lr; each `step()` then sets the lr of
epoch `last_epoch + 1`. The updates are PyTorch's own formulas (chained from the current
lr where PyTorch chains them), so the sequences agree step by step with torch's.
`state_dict()` holds numbers, lists of numbers and strings only, so `np.savez(f, **sd)`
writes it; `load_state_dict` restores the options too, as PyTorch's does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Callable, Sequence, Union

from tinygrad_rnn.optim.optimizer import Optimizer, check
from tinygrad_rnn.optim.state import plain


def _integer(who: str, name: str, value: Any, least: int) -> int:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= least
    check(who, ok, name, value, f"an integer >= {least}")
    return int(value)


def _number(who: str, name: str, value: Any, low: float, high: float = math.inf) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value <= high
    check(who, ok and math.isfinite(value), name, value, f"a number in [{low}, {high}]")
    return float(value)


class LRScheduler:
    """Base: `get_lr()` gives the lrs of epoch `last_epoch` (just incremented) from the current."""

    options: tuple[str, ...] = ()  # the constructor's arguments, saved in the state dict

    def __init__(self, optimizer: Optimizer) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__}: {type(optimizer).__name__} is not an Optimizer")
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs: list[float] = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = -1
        self.step()

    def get_lr(self) -> list[float]:
        raise NotImplementedError

    def step(self) -> None:
        """Advance one epoch (or step) and set every group's lr."""
        self.last_epoch += 1
        lrs = self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr
        self._last_lr = list(lrs)

    def get_last_lr(self) -> list[float]:
        """The lrs the last `step()` (or the construction) set, one per group."""
        return list(self._last_lr)

    def _lrs(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        """{"type", "last_epoch", "base_lrs", "last_lr", and the options}: numbers and strings."""
        options = {k: getattr(self, k) for k in self.options}
        return {
            "type": type(self).__name__,
            "last_epoch": self.last_epoch,
            "base_lrs": list(self.base_lrs),
            "last_lr": list(self._last_lr),
            **options,
        }

    def load_state_dict(self, sd: Mapping[str, Any]) -> None:
        """Restore `state_dict()` (or its .npz round trip); checked first, then all set at once."""
        who = f"{type(self).__name__}.load_state_dict"
        want = {"type", "last_epoch", "base_lrs", "last_lr", *self.options}
        if not isinstance(sd, Mapping) or set(sd) != want:
            keys = sorted(sd) if isinstance(sd, Mapping) else sd
            raise ValueError(f"{who}: expected the keys {sorted(want)}, got {keys!r}")
        values = {k: plain(v) for k, v in sd.items()}
        if values["type"] != type(self).__name__:
            raise ValueError(f"{who}: the state is of a {values['type']}, not a {type(self).__name__}")
        n = len(self.optimizer.param_groups)
        for key in ("base_lrs", "last_lr"):
            v = values[key]
            if not isinstance(v, list) or len(v) != n:
                raise ValueError(f"{who}: {key} must hold {n} numbers (one per group), got {v!r}")
            values[key] = [_number(who, f"{key}[{i}]", x, 0.0) for i, x in enumerate(v)]
        last_epoch = _integer(who, "last_epoch", values["last_epoch"], 0)
        options = self._check(who, **{k: values[k] for k in self.options})  # raises before any change
        self.last_epoch, self.base_lrs, self._last_lr = last_epoch, values["base_lrs"], values["last_lr"]
        for k, v in zip(self.options, options):
            setattr(self, k, v)

    @staticmethod
    def _check(who: str, **options: Any) -> tuple[Any, ...]:
        """The options, given by keyword, converted and checked, in the order of the class's
        `options` (a ValueError naming `who`, the constructor or load_state_dict, and the option)."""
        return ()


class StepLR(LRScheduler):
    """lr = base_lr * gamma ** (epoch // step_size): times gamma every step_size epochs."""

    options = ("step_size", "gamma")

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        self.step_size, self.gamma = self._check("StepLR", step_size=step_size, gamma=gamma)
        super().__init__(optimizer)

    @staticmethod
    def _check(who: str, **options: Any) -> tuple[int, float]:
        step_size, gamma = options["step_size"], options["gamma"]
        return _integer(who, "step_size", step_size, 1), _number(who, "gamma", gamma, 0.0)

    def get_lr(self) -> list[float]:
        if self.last_epoch == 0 or self.last_epoch % self.step_size:
            return self._lrs()
        return [lr * self.gamma for lr in self._lrs()]


class ExponentialLR(LRScheduler):
    """lr = base_lr * gamma ** epoch."""

    options = ("gamma",)

    def __init__(self, optimizer: Optimizer, gamma: float) -> None:
        (self.gamma,) = self._check("ExponentialLR", gamma=gamma)
        super().__init__(optimizer)

    @staticmethod
    def _check(who: str, **options: Any) -> tuple[float]:
        return (_number(who, "gamma", options["gamma"], 0.0),)

    def get_lr(self) -> list[float]:
        return self._lrs() if self.last_epoch == 0 else [lr * self.gamma for lr in self._lrs()]


class CosineAnnealingLR(LRScheduler):
    """lr = eta_min + (base_lr - eta_min) (1 + cos(pi epoch / T_max)) / 2, through PyTorch's recursion.

    Each step multiplies lr - eta_min by (1 + cos(pi e / T)) / (1 + cos(pi (e - 1) / T)), as
    torch's `step()` does; past T_max the cosine climbs back (no restarts are made).
    """

    options = ("T_max", "eta_min")

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0) -> None:
        self.T_max, self.eta_min = self._check("CosineAnnealingLR", T_max=T_max, eta_min=eta_min)
        super().__init__(optimizer)

    @staticmethod
    def _check(who: str, **options: Any) -> tuple[int, float]:
        T_max, eta_min = options["T_max"], options["eta_min"]
        return _integer(who, "T_max", T_max, 1), _number(who, "eta_min", eta_min, 0.0)

    def get_lr(self) -> list[float]:
        e, T, eta_min = self.last_epoch, self.T_max, self.eta_min
        if e == 0:
            return self._lrs()
        if (e - 1 - T) % (2 * T) == 0:  # the bottom, where the ratio below would be 0 / 0
            return [
                lr + (base - eta_min) * (1 - math.cos(math.pi / T)) / 2
                for lr, base in zip(self._lrs(), self.base_lrs)
            ]
        ratio = (1 + math.cos(math.pi * e / T)) / (1 + math.cos(math.pi * (e - 1) / T))
        return [ratio * (lr - eta_min) + eta_min for lr in self._lrs()]


class LambdaLR(LRScheduler):
    """lr = base_lr * lr_lambda(epoch); one function for all groups or a list, one per group.

    The functions are not part of the state dict: give them again to the constructor.
    """

    def __init__(
        self, optimizer: Optimizer, lr_lambda: Union[Callable[[int], float], Sequence[Callable[[int], float]]]
    ) -> None:
        n = len(optimizer.param_groups)
        fns: list[Any] = list(lr_lambda) if isinstance(lr_lambda, (list, tuple)) else [lr_lambda] * n
        if len(fns) != n or not all(callable(f) for f in fns):
            raise ValueError(
                f"LambdaLR: lr_lambda must be a function or a list of {n} functions, got {lr_lambda!r}"
            )
        self.lr_lambdas: list[Callable[[int], float]] = fns
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        return [base * f(self.last_epoch) for f, base in zip(self.lr_lambdas, self.base_lrs)]


class LinearLR(LRScheduler):
    """lr = base_lr * (start + (end - start) min(epoch, total_iters) / total_iters), by torch's chain."""

    options = ("start_factor", "end_factor", "total_iters")

    def __init__(
        self,
        optimizer: Optimizer,
        start_factor: float = 1.0 / 3,
        end_factor: float = 1.0,
        total_iters: int = 5,
    ) -> None:
        self.start_factor, self.end_factor, self.total_iters = self._check(
            "LinearLR", start_factor=start_factor, end_factor=end_factor, total_iters=total_iters
        )
        super().__init__(optimizer)

    @staticmethod
    def _check(who: str, **options: Any) -> tuple[float, float, int]:
        start = _number(who, "start_factor", options["start_factor"], 0.0, 1.0)
        check(who, start > 0, "start_factor", start, "in (0, 1]")
        end = _number(who, "end_factor", options["end_factor"], 0.0, 1.0)
        return start, end, _integer(who, "total_iters", options["total_iters"], 1)

    def get_lr(self) -> list[float]:
        e, start, end = self.last_epoch, self.start_factor, self.end_factor
        if e == 0:
            return [lr * start for lr in self._lrs()]
        if e > self.total_iters:
            return self._lrs()
        factor = 1.0 + (end - start) / (self.total_iters * start + (e - 1) * (end - start))
        return [lr * factor for lr in self._lrs()]
