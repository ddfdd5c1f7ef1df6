"""The seed notebook, framework-style: learn to recite "Hope is the thing with feathers".

Same run as the notebook (the verse x100, hidden 64, sequence 25, Adagrad lr 0.1, gradients
clipped to [-5, 5], 10000 steps), with the model, optimizer and data as framework parts.
`tinygrad-rnn train` is this loop plus checkpoints, resume, logging and a progress bar.

Run: python examples/hope.py [steps]
"""

import sys

import numpy as np

from tinygrad_rnn.data import CharBatches, CharVocab, default_text
from tinygrad_rnn.layers import CharRNN
from tinygrad_rnn.optim import Adagrad, clip_grad_value_

steps = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
text = default_text()  # the verse, repeated 100 times
vocab = CharVocab.from_text(text)  # sorted characters: the same ids in every process
batches = CharBatches(vocab.encode(text), seq_len=25)  # the seed's data pointer
rng = np.random.default_rng(0)

# fused=False builds the loss from the engine's ops (a tape shows every step's addmm and tanh);
# fused=True runs the same math as one op, about twice as fast, as `tinygrad-rnn train` does
model = CharRNN(len(vocab), hidden_size=64, fused=False, rng=rng)  # the seed's Wxh, Whh, Why, bh, by
optimizer = Adagrad(model.parameters(), lr=0.1)  # m += g*g; p -= lr * g / sqrt(m + 1e-8)

h = None  # the hidden state carried from chunk to chunk
for step in range(steps):
    chunk = batches.next()  # inputs, targets (25, 1); targets are one character ahead
    if chunk.reset:  # back at the start of the text: start from a zero state
        h = None
    loss, h = model.loss(chunk.inputs, chunk.targets, h)  # forward; h comes back detached
    optimizer.zero_grad()
    loss.backward()  # backpropagation through time, by the tape
    clip_grad_value_(model.parameters(), 5.0)
    optimizer.step()
    if step % 1000 == 0:
        ids = model.sample(chunk.inputs[0], 150, rng=rng)  # primed with the chunk's first character
        print(f"step {step}, loss {loss.item():.4f}\n----\n{vocab.decode(ids)}\n----")

print("\n--- Final Generation ---")
print("H" + vocab.decode(model.sample(vocab.encode("H"), 200, rng=rng)))
