"""When one machine is not enough: train here, continue in PyTorch with DistributedDataParallel, come back.

    python examples/outgrow_to_pytorch.py                   # 300 steps here, 300 in 2 PyTorch processes
    python examples/outgrow_to_pytorch.py --cell lstm --layers 2 --hidden 32
    python examples/outgrow_to_pytorch.py --steps 40 --torch-steps 30 --hidden 12 --eval-chars 300   # tiny

1. Here: a char-RNN trained by `Trainer` (the notebook's run unless told otherwise).
2. Exported: a .safetensors file under PyTorch's names, config and vocabulary in its metadata.
3. PyTorch: two processes on this machine (`torch.multiprocessing.spawn`, the gloo backend on
   127.0.0.1 at a free port, a timeout on joining), each reading its own contiguous half of
   the text; `DistributedDataParallel` averages their gradients. The model is
   `TorchCharRNN` loaded with `safetensors.torch.load_file`, as a PyTorch user would. Rank 0
   measures the loss on the first --eval-chars characters before and after, and saves the
   result with `safetensors.torch.save_file` and `export.metadata`.
4. Here again: `export.load` of PyTorch's file, the same loss (it matches PyTorch's), a sample.

Needs torch and safetensors (`pip install 'tinygrad-rnn[torch,safetensors]'`). Every address
is a loopback one: nothing listens beyond this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

from tinygrad_rnn import export
from tinygrad_rnn.data import CharBatches, CharVocab
from tinygrad_rnn.train import TrainConfig, Trainer, training_text

WORLD = 2  # processes
LOOPBACK = "127.0.0.1"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--text", help="a UTF-8 text file (default: the built-in verse x100)")
    p.add_argument(
        "--cell", default="rnn", choices=("rnn", "lstm", "gru"), help="default rnn (the notebook's)"
    )
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--seq-len", type=int, default=25)
    p.add_argument("--steps", type=int, default=300, help="training steps here (Adagrad 0.1, the notebook's)")
    p.add_argument("--torch-steps", type=int, default=300, help="steps in each PyTorch process")
    p.add_argument("--batch", type=int, default=4, help="streams per PyTorch process")
    p.add_argument("--lr", type=float, default=3e-3, help="PyTorch's Adam learning rate")
    p.add_argument("--eval-chars", type=int, default=2000, help="characters the loss is measured on")
    p.add_argument("--dir", help="where the files go (default: a temporary directory)")
    return p.parse_args(argv)


def loss_per_char_here(model: Any, ids: np.ndarray) -> float:
    """Cross-entropy per character in nats over ids, one stream from a zero state."""
    model.eval()
    loss, _ = model.loss(ids[:-1], ids[1:])
    return float(loss.item()) / (len(ids) - 1)


def free_port() -> int:
    """A port no one listens on now, found by binding port 0 on the loopback address."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def loopback_interface() -> str:
    """The name of the loopback interface ('lo' on Linux, 'lo0' on macOS), for gloo."""
    return next((name for _, name in socket.if_nameindex() if name.startswith("lo")), "lo")


# --- in each PyTorch process --------------------------------------------------------------
def torch_worker(rank: int, port: int, args: argparse.Namespace, text: str, weights: str, out: str) -> None:
    """One of the WORLD processes: DDP training on its own half of the text; rank 0 saves."""
    import torch
    import torch.distributed as dist
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file
    from torch.nn.parallel import DistributedDataParallel

    from tinygrad_rnn.interop import TorchCharRNN

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR=LOOPBACK, MASTER_PORT=str(port))
    os.environ.setdefault("GLOO_SOCKET_IFNAME", loopback_interface())
    dist.init_process_group("gloo", rank=rank, world_size=WORLD, timeout=timedelta(seconds=60))
    try:
        with safe_open(weights, framework="pt") as f:
            config, vocab = json.loads(f.metadata()["config"]), CharVocab(json.loads(f.metadata()["vocab"]))
        state = load_file(weights)
        model = TorchCharRNN(len(vocab), config["hidden_size"], config["cell"], config["num_layers"])
        model = model.to(next(iter(state.values())).dtype)
        model.load_state_dict(state)
        ids = vocab.encode(text)
        eval_ids = torch.from_numpy(ids[: args.eval_chars])
        before = torch_loss_per_char(model, eval_ids)
        shard = ids[rank * len(ids) // WORLD : (rank + 1) * len(ids) // WORLD]  # contiguous, its own
        ddp = DistributedDataParallel(model)
        started = time.perf_counter()
        train_ddp(torch, ddp, CharBatches(shard, args.seq_len, args.batch), args)
        seconds = time.perf_counter() - started
        if rank == 0:
            after = torch_loss_per_char(model, eval_ids)
            save_file(
                {k: v.contiguous() for k, v in model.state_dict().items()}, out, export.metadata(model, vocab)
            )
            result = {"before": before, "after": after, "seconds": seconds}
            Path(out + ".json").write_text(json.dumps(result), encoding="utf-8")
        dist.barrier()
    finally:
        dist.destroy_process_group()


def torch_loss_per_char(model: Any, ids: Any) -> float:
    import torch

    model.eval()
    with torch.no_grad():
        loss, _ = model.loss(ids[:-1], ids[1:])
    model.train()
    return float(loss.item()) / (len(ids) - 1)


def train_ddp(torch: Any, ddp: Any, batches: CharBatches, args: argparse.Namespace) -> None:
    """Truncated BPTT as here: the state carried between chunks, detached; Adam, values clipped at 5."""
    opt = torch.optim.Adam(ddp.parameters(), lr=args.lr)
    loss_of = ddp.module.cross_entropy
    h = None
    for _ in range(args.torch_steps):
        chunk = batches.next()
        if chunk.reset:
            h = None
        logits, h = ddp(torch.from_numpy(chunk.inputs), h)
        loss = loss_of(logits, torch.from_numpy(chunk.targets))
        opt.zero_grad()
        loss.backward()  # DDP averages the gradients of both processes here
        torch.nn.utils.clip_grad_value_(ddp.parameters(), 5.0)
        opt.step()
        h = tuple(s.detach() for s in h) if isinstance(h, tuple) else h.detach()


# --- the three stages -----------------------------------------------------------------------
def train_here(args: argparse.Namespace, text: str, weights: str) -> tuple[float, float]:
    """Train here and export; returns (seconds, the loss per character after)."""
    config = TrainConfig(
        text=args.text, hidden=args.hidden, cell=args.cell, layers=args.layers, seq_len=args.seq_len
    )
    trainer = Trainer(config, text, out=weights[: -len(".safetensors")] + ".npz")
    started = time.perf_counter()
    for _ in range(args.steps):
        trainer.step()
    seconds = time.perf_counter() - started
    export.save(weights, trainer.model, trainer.vocab, trainer.meta())
    return seconds, loss_per_char_here(trainer.model, trainer.vocab.encode(text[: args.eval_chars]))


def main(argv: list[str] | None = None) -> int:
    import torch.multiprocessing as mp

    args = parse_args(argv)
    text = training_text(args.text)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.dir or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        weights, out = str(folder / "here.safetensors"), str(folder / "pytorch.safetensors")
        seconds, here = train_here(args, text, weights)
        model_name = f"{args.cell} x{args.layers}, hidden {args.hidden}"
        print(f"here: {args.steps} steps of a {model_name} in {seconds:.1f} s")
        print(f"here: loss per char {here!r}; exported to {weights}")
        started = time.perf_counter()
        mp.spawn(torch_worker, args=(free_port(), args, text, weights, out), nprocs=WORLD, join=True)
        result = json.loads(Path(out + ".json").read_text(encoding="utf-8"))
        seconds = time.perf_counter() - started
        steps = f"{WORLD} processes x {args.torch_steps} steps"
        print(f"pytorch: DDP, {steps}, {seconds:.1f} s ({result['seconds']:.1f} s of them training)")
        print(f"pytorch: loss per char before {result['before']!r}, after {result['after']!r}")
        model, vocab, _ = export.load(out)
        back = loss_per_char_here(model, vocab.encode(text[: args.eval_chars]))
        print(
            f"back here: loss per char {back!r} (|difference| to PyTorch's {abs(back - result['after']):.2e})"
        )
        ids = model.sample(vocab.encode(text[0]), 200, temperature=0.8, rng=0)
        print(f"back here: a sample\n{text[0] + vocab.decode(ids)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
