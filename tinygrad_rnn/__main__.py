"""`python -m tinygrad_rnn ...` is the `tinygrad-rnn` command."""

import sys

from tinygrad_rnn.cli import main

if __name__ == "__main__":
    sys.exit(main())
