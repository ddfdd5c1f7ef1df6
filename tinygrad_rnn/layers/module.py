"""The module system: `Parameter`, `Module`, and the helpers every layer shares.

A `Module` registers every `Parameter` and sub-`Module` assigned to one of its attributes,
as PyTorch's does, so `parameters()`, `named_parameters()` (dotted names) and `state_dict()`
need no bookkeeping by the user.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping, Union

import numpy as np

from tinygrad_rnn.tensor import ArrayLike, Tensor

RNG = Union[np.random.Generator, int, None]
DType = Any  # np.float64 or np.float32


def _generator(rng: RNG) -> np.random.Generator:
    """The Generator itself, or a new one seeded with the int (fresh entropy for None)."""
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _check_sizes(who: str, **sizes: int) -> None:
    """Sizes of a layer must be positive integers; say which one is not."""
    for name, n in sizes.items():
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"{who}: {name} must be a positive integer, got {n!r}")


def _small_normal(rng: np.random.Generator, shape: tuple[int, ...], dtype: DType) -> np.ndarray:
    return (rng.standard_normal(shape) * 0.01).astype(dtype)  # the seed's init


class Parameter(Tensor):
    """A Tensor that a Module registers and an optimizer updates: it requires grad."""

    def __init__(self, data: ArrayLike, dtype: DType = None) -> None:
        super().__init__(data, requires_grad=True, dtype=dtype)


class Module:
    """Base class: assign Parameters and Modules as attributes; define `forward`."""

    _children: dict[str, Any]  # name -> Parameter or Module, in registration order

    def __init__(self) -> None:
        object.__setattr__(self, "_children", {})

    def __setattr__(self, name: str, value: Any) -> None:
        children = self.__dict__.get("_children")
        if children is None:
            raise AttributeError(f"{type(self).__name__}: call super().__init__() before assigning {name}")
        if isinstance(value, (Parameter, Module)):
            children[name] = value
        else:
            children.pop(name, None)
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        self._children.pop(name, None)
        object.__delattr__(self, name)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} has no forward")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """(dotted name, parameter) in registration order; a shared parameter appears once."""
        seen: set[int] = set()
        stack: list[tuple[str, Any]] = [(prefix, self)]
        while stack:  # depth first, in registration order
            path, obj = stack.pop()
            if isinstance(obj, Parameter):
                if id(obj) not in seen:
                    seen.add(id(obj))
                    yield path, obj
                continue
            dot = path + "." if path else ""
            stack.extend((dot + name, child) for name, child in reversed(obj._children.items()))

    def parameters(self) -> list[Parameter]:
        return [p for _, p in self.named_parameters()]

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    def state_dict(self) -> dict[str, np.ndarray]:
        """name -> a copy of the parameter's array."""
        return {name: p.data.copy() for name, p in self.named_parameters()}

    def load_state_dict(self, state: Mapping[str, ArrayLike]) -> None:
        """Copy arrays into the parameters (cast to each one's dtype); all names and shapes must match.

        Raises ValueError naming every missing or unexpected key and every wrong shape,
        before any parameter changes.
        """
        params = dict(self.named_parameters())
        missing = [k for k in params if k not in state]
        unexpected = [k for k in state if k not in params]
        if missing or unexpected:
            who = f"load_state_dict: {type(self).__name__}"
            raise ValueError(f"{who}: missing keys {missing}, unexpected keys {unexpected}")
        arrays = {k: np.asarray(v.data if isinstance(v, Tensor) else v) for k, v in state.items()}
        wrong = [
            f"{k}: expected {p.shape}, got {arrays[k].shape}"
            for k, p in params.items()
            if arrays[k].shape != p.shape
        ]
        if wrong:
            raise ValueError(f"load_state_dict: {type(self).__name__}: wrong shapes: {'; '.join(wrong)}")
        for k, p in params.items():
            p.data = np.array(arrays[k], dtype=p.dtype)


def _as_tensor(x: ArrayLike, dtype: DType) -> Tensor:
    """A Tensor passes as it is; an array or list becomes a constant of the model's dtype."""
    return x if isinstance(x, Tensor) else Tensor(x, dtype=dtype)
