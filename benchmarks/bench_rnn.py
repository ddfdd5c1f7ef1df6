"""Benchmark the char-RNN training step: the seed's loop, autograd, fused, PyTorch, JAX, HIPS autograd.

    python benchmarks/bench_rnn.py            # the full run; see benchmarks/README.md
    python benchmarks/bench_rnn.py --quick    # tiny settings, seconds
    python benchmarks/bench_rnn.py --help

The harness is `harness.py` (timing and tables), `contenders.py` (the training steps) and
`peers.py` (JAX, HIPS autograd) next to this file; `tinygrad-rnn bench` runs the same from a source checkout.
"""

from __future__ import annotations

import sys
from pathlib import Path

try:
    import tinygrad_rnn  # noqa: F401
except ImportError:  # a checkout that is not installed: import the package next to this folder
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # harness, contenders

from harness import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
