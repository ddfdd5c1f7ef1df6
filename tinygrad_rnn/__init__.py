"""tinygrad_rnn: a small tape-based autograd over numpy, built for recurrent networks.

The engine: `tensor` (Tensor and the Function plug-in API), `tape` (the record of ops and
backward as its reverse sweep), `grads` (how gradient contributions combine), the ops
(`ops`, `ops_elementwise`, `ops_axes`: tables of derivatives) and `gradcheck`; `creation`
and `functional` build on it. Layers, optimizers and the char-RNN are plain users of it.
"""

from tinygrad_rnn import ops_axes, ops_elementwise
from tinygrad_rnn.creation import arange, eye, full, ones, ones_like, rand, randn, zeros, zeros_like
from tinygrad_rnn.functional import grad, value_and_grad
from tinygrad_rnn.gradcheck import GradcheckError, gradcheck, numerical_gradient
from tinygrad_rnn.grads import IndexedGrad, ProductGrad, unbroadcast
from tinygrad_rnn.ops import addmm, chunk, concat, softmax_cross_entropy, stack, unbind
from tinygrad_rnn.ops_axes import (
    argmax,
    argmin,
    cumsum,
    flatten,
    flip,
    logsumexp,
    squeeze,
    std,
    unsqueeze,
    var,
)
from tinygrad_rnn.ops_elementwise import (
    clamp,
    clip,
    cos,
    gelu,
    leaky_relu,
    maximum,
    minimum,
    sign,
    sin,
    softplus,
    sqrt,
    where,
)
from tinygrad_rnn.tape import Tape, is_grad_enabled, no_grad
from tinygrad_rnn.tensor import Context, Function, Tensor

# PyTorch's names that are also Python builtins: tg.max(x) works, but they stay out of
# __all__ so that `from tinygrad_rnn import *` leaves Python's max, min, abs and pow alone
max, min = ops_axes.max, ops_axes.min
abs, pow = ops_elementwise.abs, ops_elementwise.pow

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
    # issue 13: constructors, more ops, functional gradients
    "arange",
    "argmax",
    "argmin",
    "clamp",
    "clip",
    "cos",
    "cumsum",
    "eye",
    "flatten",
    "flip",
    "full",
    "gelu",
    "grad",
    "leaky_relu",
    "logsumexp",
    "maximum",
    "minimum",
    "ones",
    "ones_like",
    "rand",
    "randn",
    "sign",
    "sin",
    "softplus",
    "sqrt",
    "squeeze",
    "std",
    "unsqueeze",
    "value_and_grad",
    "var",
    "where",
    "zeros",
    "zeros_like",
]
