"""The module system: `Parameter`, `Module`, the containers, and the helpers every layer shares.

A `Module` registers every `Parameter` and sub-`Module` assigned to one of its attributes,
as PyTorch's does, so `parameters()`, `named_parameters()` (dotted names) and `state_dict()`
need no bookkeeping by the user. Modules kept in a list or a dict go in a `ModuleList` or
`ModuleDict` (a plain list or dict of Modules is a TypeError: it would not be registered);
`Sequential` chains modules. `train()` / `eval()` set `training` on a module and all of
its sub-modules (only `Dropout` reads it here).

Every walk over the tree (parameters, modules, state_dict, train, repr) enters a module
once, so a module that holds a reference to itself or a parent does not loop forever.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Iterable, Iterator, Mapping, Optional, Union

import numpy as np
from typing_extensions import Self

from tinygrad_rnn.tensor import ArrayLike, Tensor

DType = Any  # np.float64 or np.float32


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


Child = Union["Module", Parameter]


class Module:
    """Base class: assign Parameters and Modules as attributes; define `forward`.

    `training` is True until `eval()` (or `train(False)`); it changes what `Dropout` does.
    """

    _children: dict[str, Child]  # name -> Parameter or Module, in registration order
    training: bool

    def __init__(self) -> None:
        object.__setattr__(self, "_children", {})
        object.__setattr__(self, "training", True)

    def __setattr__(self, name: str, value: Any) -> None:
        children = self.__dict__.get("_children")
        if children is None:
            raise AttributeError(f"{type(self).__name__}: call super().__init__() before assigning {name}")
        if isinstance(value, (Parameter, Module)):
            children[name] = value
        elif value is None or name not in children:
            _refuse_plain_container(self, name, value)
            children.pop(name, None)
        else:
            raise TypeError(_replace_message(self, name, children[name], value))
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        self._children.pop(name, None)
        object.__delattr__(self, name)

    def add_module(self, name: str, module: Module) -> None:
        """Register `module` as the attribute `name` (what containers use for their entries)."""
        if not isinstance(module, Module):
            raise TypeError(f"{type(self).__name__}: {type(module).__name__} is not a Module")
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(
                f"{type(self).__name__}: a module name must be a non-empty string without '.', got {name!r}"
            )
        if hasattr(self, name) and name not in self._children:
            raise KeyError(f"{type(self).__name__}: attribute {name!r} already exists")
        setattr(self, name, module)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} has no forward")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    # --- walking the tree --------------------------------------------------------------------
    def _walk(self, prefix: str = "", every_name: bool = False) -> Iterator[tuple[str, Child]]:
        """(dotted name, module or parameter), depth first in registration order, self first.

        A module is entered once; with every_name=True a module registered under several
        names is entered under each, and only a cycle (a reference to itself or a parent)
        is cut.
        """
        seen: set[int] = set()
        stack: list[tuple[str, Child, tuple[int, ...]]] = [(prefix, self, ())]
        while stack:
            path, obj, parents = stack.pop()
            if isinstance(obj, Module):
                if id(obj) in (parents if every_name else seen):
                    continue
                seen.add(id(obj))
                inner = (*parents, id(obj))
                dot = path + "." if path else ""
                stack.extend((dot + name, child, inner) for name, child in reversed(obj._children.items()))
            yield path, obj

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """(dotted name, module) for this module ("") and every sub-module, each once."""
        return ((name, m) for name, m in self._walk(prefix) if isinstance(m, Module))

    def modules(self) -> Iterator[Module]:
        return (m for _, m in self.named_modules())

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """(name, module) of the direct sub-modules, each once."""
        seen: set[int] = set()
        for name, child in self._children.items():
            if isinstance(child, Module) and id(child) not in seen:
                seen.add(id(child))
                yield name, child

    def children(self) -> Iterator[Module]:
        return (m for _, m in self.named_children())

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """(dotted name, parameter) in registration order; a shared parameter appears once."""
        seen: set[int] = set()
        for name, p in self._walk(prefix):
            if isinstance(p, Parameter) and id(p) not in seen:
                seen.add(id(p))
                yield name, p

    def parameters(self) -> list[Parameter]:
        return [p for _, p in self.named_parameters()]

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    def train(self, mode: bool = True) -> Self:
        """Set `training` on this module and every sub-module; returns self."""
        if not isinstance(mode, bool):
            raise ValueError(f"{type(self).__name__}.train: mode must be a bool, got {mode!r}")
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> Self:
        """`train(False)`: Dropout becomes the identity. Returns self."""
        return self.train(False)

    # --- state ---------------------------------------------------------------------------------
    def _state_params(self) -> dict[str, Parameter]:
        """Every name a parameter has in the state dict: a module under two names gives two."""
        return {name: p for name, p in self._walk(every_name=True) if isinstance(p, Parameter)}

    def state_dict(self) -> dict[str, np.ndarray]:
        """name -> a copy of the parameter's array; a module registered twice is listed under both names."""
        return {name: p.data.copy() for name, p in self._state_params().items()}

    def load_state_dict(self, state: Mapping[str, ArrayLike]) -> None:
        """Copy arrays into the parameters (cast to each one's dtype); all names and shapes must match.

        Everything is checked first (missing and unexpected keys, shapes, dtypes that cannot
        be cast to the parameter's kind), and a ValueError names each bad key; only then
        do the parameters change, all of them.
        """
        params = self._state_params()
        who = f"load_state_dict: {type(self).__name__}"
        missing = [k for k in params if k not in state]
        unexpected = [k for k in state if k not in params]
        if missing or unexpected:
            raise ValueError(f"{who}: missing keys {missing}, unexpected keys {unexpected}")
        arrays, wrong = {}, []
        for k, p in params.items():
            arrays[k], problem = _checked_array(state[k], p)
            if problem:
                wrong.append(f"{k}: {problem}")
        if wrong:
            raise ValueError(f"{who}: {'; '.join(wrong)}")
        for k, p in params.items():
            p.data = np.array(arrays[k], dtype=p.dtype)

    # --- repr ----------------------------------------------------------------------------------
    def extra_repr(self) -> str:
        """What goes between the parentheses of this module's line (sizes and options)."""
        return ""

    def __repr__(self) -> str:
        total = sum(p.size for p in self.parameters())
        return f"{self._tree(())}\nTotal params: {total:,}"

    def _tree(self, parents: tuple[int, ...]) -> str:
        """PyTorch's layout: `Name(extra)`, or one indented `(name): ...` line per entry."""
        name, extra = type(self).__name__, self.extra_repr()
        if id(self) in parents:
            return f"{name}(<cycle: a module that contains it>)"
        lines = []
        for key, child in self._children.items():
            if isinstance(child, Module):
                lines.append(f"({key}): " + child._tree((*parents, id(self))).replace("\n", "\n  "))
            elif not extra:  # a module with an extra_repr describes its own parameters
                lines.append(f"({key}): Parameter{child.shape}")
        if not lines:
            return f"{name}({extra})"
        return f"{name}(\n  " + "\n  ".join(([extra] if extra else []) + lines) + "\n)"


def _refuse_plain_container(m: Module, name: str, value: Any) -> None:
    """A list, tuple or dict holding Modules would not be registered: point to the container."""
    kind = ""
    if isinstance(value, (list, tuple)) and any(isinstance(v, Module) for v in value):
        kind = "ModuleList"
    elif isinstance(value, dict) and any(isinstance(v, Module) for v in value.values()):
        kind = "ModuleDict"
    if kind:
        raise TypeError(
            f"{type(m).__name__}.{name}: a plain {type(value).__name__} of Modules is not registered "
            f"(their parameters would be missed by parameters(), state_dict() and the optimizer); "
            f"use {kind}(...)"
        )


def _replace_message(m: Module, name: str, old: Child, value: Any) -> str:
    """Why a registered parameter or module cannot become a plain value, and what to do instead."""
    who = f"{type(m).__name__}.{name}"
    if isinstance(old, Parameter):
        return (
            f"cannot assign a {type(value).__name__} to {who}, a registered Parameter (it would drop out "
            f"of parameters(), state_dict() and the optimizer): assign a Parameter "
            f"({name} = Parameter(array)), or change its values with .data ({name}.data = array)"
        )
    return (
        f"cannot assign a {type(value).__name__} to {who}, a registered sub-module: a Module or None expected"
    )


def _checked_array(value: Any, p: Parameter) -> tuple[Any, str]:
    """(the value as an array, "" or what is wrong with it for parameter p)."""
    try:
        a = np.asarray(value.data if isinstance(value, Tensor) else value)
    except (ValueError, TypeError) as e:
        return None, f"not an array ({e})"
    if a.shape != p.shape:
        return a, f"expected {p.shape}, got {a.shape}"
    if not np.can_cast(a.dtype, p.dtype, casting="same_kind"):
        return a, f"cannot cast {a.dtype} to the parameter's {p.dtype}"
    return a, ""


# --- containers ---------------------------------------------------------------------------------
class _IndexedModules(Module):
    """Modules kept in order and reached by position (the base of ModuleList and Sequential)."""

    def __len__(self) -> int:
        return len(self._children)

    def __iter__(self) -> Iterator[Module]:
        return iter(list(self._children.values()))  # type: ignore[arg-type]  # only Modules

    def _position(self, idx: int) -> int:
        n = len(self)
        if not isinstance(idx, (int, np.integer)):
            raise TypeError(
                f"{type(self).__name__}: indices must be integers or slices, not {type(idx).__name__}"
            )
        if not -n <= idx < n:
            raise IndexError(f"{type(self).__name__}: index {idx} is out of range for {n} modules")
        return int(idx) % n

    def __getitem__(self, idx: Union[int, slice]) -> Any:
        if isinstance(idx, slice):
            return ModuleList(list(self)[idx])
        return list(self)[self._position(idx)]

    def __setitem__(self, idx: int, module: Module) -> None:
        self.add_module(list(self._children)[self._position(idx)], module)

    def __delitem__(self, idx: Union[int, slice]) -> None:
        mods = list(self)
        del mods[idx if isinstance(idx, slice) else self._position(idx)]
        self._renumber(mods)

    def _renumber(self, mods: list[Module]) -> None:
        """Entries become mods, named "0", "1", ... (PyTorch renumbers after a delete or insert)."""
        for name in list(self._children):
            delattr(self, name)
        for i, m in enumerate(mods):
            self.add_module(str(i), m)

    def append(self, module: Module) -> Self:
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules: Iterable[Module]) -> Self:
        for m in modules:
            self.append(m)
        return self

    def insert(self, index: int, module: Module) -> None:
        if not isinstance(module, Module):
            raise TypeError(f"{type(self).__name__}.insert: {type(module).__name__} is not a Module")
        mods = list(self)
        mods.insert(index, module)
        self._renumber(mods)


class ModuleList(_IndexedModules):
    """A list of modules, registered as "0", "1", ...: indexing, len, iteration, append, extend, insert."""

    def __init__(self, modules: Optional[Iterable[Module]] = None) -> None:
        super().__init__()
        self.extend(modules or [])


class Sequential(_IndexedModules):
    """Modules called in order, each on the previous one's output: Sequential(*modules) or
    Sequential(OrderedDict(name=module, ...)); indexed like a ModuleList."""

    def __init__(self, *modules: Any) -> None:
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, m in modules[0].items():
                self.add_module(name, m)
        else:
            self.extend(modules)

    def __getitem__(self, idx: Union[int, slice]) -> Any:
        if isinstance(idx, slice):  # keeps the names, as PyTorch's
            return Sequential(OrderedDict(list(self._children.items())[idx]))
        return super().__getitem__(idx)

    def forward(self, x: Any) -> Any:
        for m in self:
            x = m(x)
        return x


class ModuleDict(Module):
    """A dict of modules, registered under their keys: [key], len, iteration over keys, `in`,
    keys(), items(), values(), update(), pop()."""

    def __init__(
        self, modules: Union[Mapping[str, Module], Iterable[tuple[str, Module]], None] = None
    ) -> None:
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Module:
        return self._children[key]  # type: ignore[return-value]  # only Modules

    def __setitem__(self, key: str, module: Module) -> None:
        self.add_module(key, module)

    def __delitem__(self, key: str) -> None:
        if key not in self._children:
            raise KeyError(key)
        delattr(self, key)

    def __len__(self) -> int:
        return len(self._children)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._children))

    def __contains__(self, key: object) -> bool:
        return key in self._children

    def keys(self) -> list[str]:
        return list(self._children)

    def items(self) -> list[tuple[str, Module]]:
        return [(k, self[k]) for k in self._children]

    def values(self) -> list[Module]:
        return [self[k] for k in self._children]

    def update(self, modules: Union[Mapping[str, Module], Iterable[tuple[str, Module]]]) -> None:
        pairs = modules.items() if isinstance(modules, Mapping) else modules
        for key, m in pairs:
            self[key] = m

    def pop(self, key: str) -> Module:
        m = self[key]
        del self[key]
        return m


def _as_tensor(x: ArrayLike, dtype: DType) -> Tensor:
    """A Tensor passes as it is; an array or list becomes a constant of the model's dtype."""
    return x if isinstance(x, Tensor) else Tensor(x, dtype=dtype)
