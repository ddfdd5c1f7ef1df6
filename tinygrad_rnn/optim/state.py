"""State dicts as flat arrays: what `np.savez` writes and `np.load(..., allow_pickle=False)` reads.

    np.savez("opt.npz", **to_arrays(opt.state_dict()))
    with np.load("opt.npz", allow_pickle=False) as z:
        opt.load_state_dict(z)                  # load_state_dict reads the flat form too

A nested key becomes a path ("state/0/exp_avg", "param_groups/1/lr"); a list of numbers
becomes one array (betas, params), a list of dicts one path per item.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


def plain(value: Any) -> Any:
    """A value back from an .npz (a 0-d or 1-d array, a numpy scalar) as a Python value."""
    if isinstance(value, (np.ndarray, np.generic)):
        return value.tolist() if isinstance(value, np.ndarray) and value.ndim else value.item()
    return value


def _is_number(v: Any) -> bool:
    return isinstance(v, (bool, int, float, np.generic)) and not isinstance(v, (np.str_, np.bytes_))


def to_arrays(tree: Mapping[str, Any], prefix: str = "") -> dict[str, np.ndarray]:
    """Nested dicts and lists of arrays, numbers and strings as {"a/0/b": array}, no object arrays."""
    out: dict[str, np.ndarray] = {}
    for key, v in tree.items():
        name = f"{prefix}{key}"
        if "/" in str(key):
            raise ValueError(f"to_arrays: key {name!r} contains '/', the path separator")
        if isinstance(v, Mapping):
            out.update(to_arrays(v, f"{name}/"))
        elif isinstance(v, (list, tuple)) and not all(_is_number(x) for x in v):
            out.update(to_arrays({str(i): x for i, x in enumerate(v)}, f"{name}/"))
        else:
            a = np.asarray(v, dtype=np.int64 if isinstance(v, (list, tuple)) and not v else None)
            if a.dtype.kind not in "biufU":
                raise ValueError(
                    f"to_arrays: {name!r} is a {type(v).__name__}, not an array, number or string"
                )
            out[name] = a.copy()
    return out


def from_arrays(flat: Mapping[str, Any]) -> dict[str, Any]:
    """The nested dicts of `to_arrays`' paths (lists come back as dicts keyed "0", "1", ...)."""
    out: dict[str, Any] = {}
    for key in flat:
        *path, last = str(key).split("/")
        node = out
        for part in path:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"from_arrays: {key!r} lies under a key that holds an array")
        node[last] = flat[key]
    return out
