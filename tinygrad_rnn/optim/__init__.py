"""Optimizers, gradient clipping and learning-rate schedules: plain users of the engine.

    opt = Adagrad(model.parameters(), lr=0.1)      # or SGD, Adam, AdamW, RMSprop
    loss.backward(); clip_grad_value_(model.parameters(), 5.0); opt.step(); opt.zero_grad()

    opt = AdamW([{"params": body, "lr": 1e-3}, {"params": head}], lr=1e-2)   # groups, as torch
    sched = lr_scheduler.CosineAnnealingLR(opt, T_max=1000)                  # sched.step() per step

`optimizer` holds the base class (groups, state, checked steps, state dicts), `rules` the
update rules with their formulas, `clip` the clipping functions, `lr_scheduler` the
schedules and `state` the flat-array form of a state dict for `np.savez`.
"""

from tinygrad_rnn.optim import lr_scheduler
from tinygrad_rnn.optim.clip import clip_grad_norm_, clip_grad_value_
from tinygrad_rnn.optim.optimizer import Optimizer
from tinygrad_rnn.optim.rules import SGD, Adagrad, Adam, AdamW, RMSprop
from tinygrad_rnn.optim.state import from_arrays, to_arrays

__all__ = [
    "SGD",
    "Adagrad",
    "Adam",
    "AdamW",
    "Optimizer",
    "RMSprop",
    "clip_grad_norm_",
    "clip_grad_value_",
    "from_arrays",
    "lr_scheduler",
    "to_arrays",
]
