"""Layers: the module system, small layers, recurrent cells and `RNN`, and `CharRNN`.

    module.py   Parameter, Module (registration, modes, state_dict, repr), ModuleList,
                ModuleDict, Sequential
    basic.py    Linear, Embedding, Dropout, LayerNorm, Tanh, ReLU, Sigmoid
    cells.py    RNNCell, LSTMCell, GRUCell, the recurrence that unrolls them, RNN
    charrnn.py  CharRNN (the seed's model, or an embedding -> RNN stack -> linear)

Weights follow PyTorch's layout (`Linear.weight` is (out, in)); sequences are time-major,
(T, B, ...). Initial weights are the seed's (normal * 0.01, zero biases), drawn from the
Generator (or int seed) passed as `rng`, so the same seed gives the same model.
"""

from tinygrad_rnn.creation import RNG
from tinygrad_rnn.layers.basic import Dropout, Embedding, LayerNorm, Linear, ReLU, Sigmoid, Tanh
from tinygrad_rnn.layers.cells import CELLS, RNN, GRUCell, LSTMCell, RNNCell, State, StateLike
from tinygrad_rnn.layers.charrnn import CharRNN
from tinygrad_rnn.layers.module import DType, Module, ModuleDict, ModuleList, Parameter, Sequential

__all__ = [
    "CELLS",
    "RNG",
    "RNN",
    "CharRNN",
    "DType",
    "Dropout",
    "Embedding",
    "GRUCell",
    "LSTMCell",
    "LayerNorm",
    "Linear",
    "Module",
    "ModuleDict",
    "ModuleList",
    "Parameter",
    "RNNCell",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "State",
    "StateLike",
    "Tanh",
]
