"""Benchmark the char-RNN training step: the seed's loop, autograd, fused and PyTorch, side by side.

    python benchmarks/bench_rnn.py            # the full run; see benchmarks/README.md
    python benchmarks/bench_rnn.py --quick    # tiny settings, seconds
    python benchmarks/bench_rnn.py --help

The logic lives in `tinygrad_rnn.bench` (also `tinygrad-rnn bench`); this is its runner.
"""

from __future__ import annotations

import os
import sys

try:
    from tinygrad_rnn.bench import main
except ImportError:  # a checkout that is not installed: import the package next to this folder
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from tinygrad_rnn.bench import main

if __name__ == "__main__":
    sys.exit(main())
