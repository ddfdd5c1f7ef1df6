"""tinygrad_rnn: a small tape-based autograd over numpy, built for recurrent networks.

The engine is five files: `tensor` (Tensor and the Function plug-in API), `tape` (the
record of ops and backward as its reverse sweep), `grads` (how gradient contributions
combine, and the optional cheaper gradient forms), `ops` (the built-in ops, a table of
derivatives) and `gradcheck`. Layers, optimizers and the char-RNN are plain users of it.
"""

from tinygrad_rnn.gradcheck import GradcheckError, gradcheck, numerical_gradient
from tinygrad_rnn.grads import IndexedGrad, ProductGrad, unbroadcast
from tinygrad_rnn.ops import addmm, chunk, concat, softmax_cross_entropy, stack, unbind
from tinygrad_rnn.tape import Tape, is_grad_enabled, no_grad
from tinygrad_rnn.tensor import Context, Function, Tensor

__version__ = "0.1.0"

__all__ = [
    "Context",
    "addmm",
    "Function",
    "GradcheckError",
    "IndexedGrad",
    "ProductGrad",
    "Tape",
    "Tensor",
    "chunk",
    "concat",
    "gradcheck",
    "is_grad_enabled",
    "no_grad",
    "numerical_gradient",
    "softmax_cross_entropy",
    "stack",
    "unbind",
    "unbroadcast",
]
