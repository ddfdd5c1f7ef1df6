"""Sizes checked before anything is allocated: a model's parameter count, the memory of one
training step, the machine's memory.

    param_count(65, 256, cell="lstm", num_layers=2)     # CharRNN's numbers, without building it
    step_bytes(65, 256, "lstm", 2, batch=32, seq_len=64, itemsize=4)   # about one step's memory

`train.check_memory` refuses a run whose step would not fit in `physical_memory()`, and
`checkpoint.load` bounds what an archive may declare by the same count, so a crafted file
cannot make either allocate gigabytes before it is rejected.
"""

from __future__ import annotations

import math
import os

from tinygrad_rnn.layers import CELLS

# when the operating system does not say (no sysconf): a documented, generous guess
FALLBACK_MEMORY = 16 * 2**30
# the most state arrays an optimizer keeps per parameter (Adam's exp_avg and exp_avg_sq)
OPTIMIZER_SLOTS = 2


def physical_memory() -> int:
    """Bytes of RAM (os.sysconf's pages x page size), or FALLBACK_MEMORY where unknown."""
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return FALLBACK_MEMORY
    return pages * size if pages > 0 and size > 0 else FALLBACK_MEMORY


def param_count(vocab_size: int, hidden_size: int, cell: str = "rnn", num_layers: int = 1) -> int:
    """The number of parameters of `CharRNN(vocab_size, hidden_size, cell=, num_layers=)`.

    embed (V, H) and head (V, H) + (V,); the seed's body (H, H) + (H,), or a stack of
    `num_layers` cells of (H, H) inputs with PyTorch's weights and biases.
    """
    v, h = vocab_size, hidden_size
    outer = 2 * v * h + v
    if cell == "rnn" and num_layers == 1:
        return outer + h * h + h
    layer = sum(math.prod(shape) for _, shape in CELLS[cell].param_shapes(h, h))
    return outer + num_layers * layer


def step_bytes(
    vocab_size: int, hidden_size: int, cell: str, num_layers: int, batch: int, seq_len: int, itemsize: int
) -> int:
    """About the memory one training step needs, in bytes (a slight under-estimate).

    Parameters and their gradients, OPTIMIZER_SLOTS arrays of optimizer state each, and the
    activations a backward keeps for (T, B): embeddings, per layer the gates' inputs and
    outputs and the states, and the logits, their softmax and its gradient.
    """
    params = param_count(vocab_size, hidden_size, cell, num_layers)
    gates, h = CELLS[cell].gates, hidden_size
    per_position = h + num_layers * h * (3 * gates + 2) + 3 * vocab_size
    return itemsize * ((2 + OPTIMIZER_SLOTS) * params + batch * seq_len * per_position)


def show_bytes(n: float) -> str:
    """n bytes for people: '812.3 MB', '80.0 GB', '1.2 TB'."""
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000:
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    return f"{n:.1f} TB"
