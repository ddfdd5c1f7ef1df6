"""Layers: the module system, small layers, recurrent cells and `RNN`, and `CharRNN`.

    module.py   Parameter, Module (registration, state_dict)
    basic.py    Linear, Embedding
    cells.py    RNNCell, LSTMCell, GRUCell, the recurrence that unrolls them, RNN
    charrnn.py  CharRNN (the seed's model, or an embedding -> RNN stack -> linear)

Weights follow PyTorch's layout (`Linear.weight` is (out, in)); sequences are time-major,
(T, B, ...). Initial weights are the seed's (normal * 0.01, zero biases), drawn from the
Generator (or int seed) passed as `rng`, so the same seed gives the same model.
"""

from tinygrad_rnn.layers.basic import Embedding, Linear
from tinygrad_rnn.layers.cells import CELLS, RNN, GRUCell, LSTMCell, RNNCell, State, StateLike
from tinygrad_rnn.layers.charrnn import CharRNN
from tinygrad_rnn.layers.module import RNG, DType, Module, Parameter

__all__ = [
    "CELLS",
    "RNG",
    "RNN",
    "CharRNN",
    "DType",
    "Embedding",
    "GRUCell",
    "LSTMCell",
    "Linear",
    "Module",
    "Parameter",
    "RNNCell",
    "State",
    "StateLike",
]
