"""Gradient reports (`tinygrad-rnn gradcheck`): every path to the char-RNN's gradients, compared.

`run_gradcheck` puts the notebook's model through four paths (autograd, the fused op, the
seed's hand-written BPTT, central finite differences); `run_stack_gradcheck` checks any
cell and depth against finite differences (and the fused layers against autograd). Both
print one row per parameter and return 0 if all agree, else 1.
"""

from __future__ import annotations

import math
import sys
from typing import IO, Any

import numpy as np

from tinygrad_rnn.data import CharVocab, default_text
from tinygrad_rnn.gradcheck import agrees, numerical_gradient
from tinygrad_rnn.layers import CharRNN
from tinygrad_rnn.reference import bptt, charrnn_forward
from tinygrad_rnn.tape import no_grad
from tinygrad_rnn.tensor import Tensor


def _loss_of(p: dict[str, np.ndarray], inputs: np.ndarray, targets: np.ndarray, h0: np.ndarray) -> float:
    """The loss for the seed's arrays p, through the reference's batched numpy forward."""
    loss, _, _ = charrnn_forward(
        p["Wxh"].T, p["Whh"], p["bh"][:, 0], p["Why"], p["by"][:, 0], h0, inputs, targets
    )
    return float(loss)


def _three_paths(
    p: dict[str, np.ndarray], inputs: np.ndarray, targets: np.ndarray, h0: np.ndarray
) -> tuple[dict[str, float], dict[str, dict[str, np.ndarray]]]:
    """Loss and gradients of the seed's arrays p by the reference BPTT, autograd and the fused op.

    inputs, targets int (T, B), h0 (B, H); the reference runs per batch column and averages.
    Returns {path: loss} and {path: {name: gradient in the seed's shape}}.
    """
    batch = inputs.shape[1]
    ref_grads = {k: np.zeros_like(v) for k, v in p.items()}
    ref_loss = 0.0
    for b in range(batch):
        loss_b, g_b, _ = bptt(p, list(inputs[:, b]), list(targets[:, b]), h0[b][:, None])
        ref_loss += loss_b / batch
        for k in p:
            ref_grads[k] += g_b[k] / batch

    results: dict[str, dict[str, np.ndarray]] = {"reference": ref_grads}
    losses = {"reference": ref_loss}
    for name, fused in (("autograd", False), ("fused", True)):
        model = CharRNN.from_seed_params(p, fused=fused)
        loss, _ = model.loss(inputs, targets, Tensor(h0))
        loss.backward()
        results[name] = model.seed_grads()
        losses[name] = float(loss.item())
    return losses, results


def run_gradcheck(hidden: int, seq_len: int, batch: int, seed: int, out: IO[str] = sys.stdout) -> int:
    """Print a per-parameter table of the largest gradient differences; 0 if all agree, else 1.

    Four gradients of one loss: autograd (composed ops), the fused op, the seed's hand-written
    BPTT (`reference.bptt`, per batch column, averaged) and central finite differences of the
    loss (eps 1e-6, float64, through the reference's batched forward). Autograd and fused must
    match the reference to 1e-9 relative; finite differences to atol 1e-5 + rtol 1e-3
    elementwise (as `tg.gradcheck`). The losses of all paths must agree too.
    """
    vocab = CharVocab.from_text(default_text())
    V, H = len(vocab), hidden
    rng = np.random.default_rng(seed)
    # weights larger than the seed's 0.01 init so that every path carries real signal
    p = {
        "Wxh": rng.standard_normal((H, V)) * 0.3,
        "Whh": rng.standard_normal((H, H)) * 0.3 / math.sqrt(H),
        "Why": rng.standard_normal((V, H)) * 0.3,
        "bh": rng.standard_normal((H, 1)) * 0.1,
        "by": rng.standard_normal((V, 1)) * 0.1,
    }
    inputs = rng.integers(0, V, size=(seq_len, batch))
    targets = rng.integers(0, V, size=(seq_len, batch))
    h0 = np.tanh(rng.standard_normal((batch, H)))

    losses, results = _three_paths(p, inputs, targets, h0)
    ref_loss, ref_grads = losses["reference"], results["reference"]
    fd = {k: numerical_gradient(lambda: _loss_of(p, inputs, targets, h0), arr) for k, arr in p.items()}

    print(
        f"gradcheck: vocabulary {V}, hidden {H}, seq-len {seq_len}, batch {batch}, seed {seed}, float64",
        file=out,
    )
    print(
        "loss: " + ", ".join(f"{k} {v:.12f}" for k, v in losses.items()),
        file=out,
    )
    columns = ("|autograd-ref|", 16), ("|fused-ref|", 14), ("|fd-ref|", 12), ("|fd-autograd|", 15)
    header = f"{'parameter':<10}{'shape':<12}" + "".join(f"{c:>{w}}" for c, w in columns) + "  ok"
    print(header, file=out)
    all_ok = all(_exact_enough(abs(v - ref_loss), ref_loss) for v in losses.values())
    for k in p:
        ref = ref_grads[k]
        d_auto = float(np.abs(results["autograd"][k] - ref).max())
        d_fused = float(np.abs(results["fused"][k] - ref).max())
        d_fd = float(np.abs(fd[k] - ref).max())
        d_fd_auto = float(np.abs(fd[k] - results["autograd"][k]).max())
        fd_ok = bool(np.all(agrees(ref, fd[k])))
        ok = _exact_enough(d_auto, ref) and _exact_enough(d_fused, ref) and fd_ok
        all_ok &= ok
        print(
            f"{k:<10}{str(ref.shape):<12}{d_auto:>16.2e}{d_fused:>14.2e}{d_fd:>12.2e}{d_fd_auto:>15.2e}  "
            f"{'yes' if ok else 'NO'}",
            file=out,
        )
    return _verdict(all_ok, out)


def _exact_enough(diff: float, ref: Any) -> bool:
    """Two exact gradients (autograd, fused, reference) agree to 1e-9 relative to ref's size."""
    return diff <= 1e-9 * (1 + float(np.abs(ref).max()))


def _verdict(all_ok: bool, out: Any) -> int:
    print("all gradients agree" if all_ok else "GRADIENTS DISAGREE", file=out)
    return 0 if all_ok else 1


def run_stack_gradcheck(
    cell: str, layers: int, hidden: int, seq_len: int, batch: int, seed: int, out: IO[str] = sys.stdout
) -> int:
    """Autograd against finite differences for any CharRNN (no reference BPTT beyond the seed's).

    The loss of CharRNN(cell=..., num_layers=...) from a random state; every parameter's
    gradient must match central finite differences (eps 1e-6, float64) to atol 1e-5 +
    rtol 1e-3 elementwise, and the fused layers (fused=True, the same weights) must match
    autograd to 1e-9 relative. Prints one row per parameter; returns 0 if all agree, else 1.
    """
    vocab = CharVocab.from_text(default_text())
    rng = np.random.default_rng(seed)
    model = CharRNN(len(vocab), hidden, cell=cell, num_layers=layers, rng=rng)
    for name, p in model.named_parameters():  # larger than the 0.01 init: every path carries signal
        p.data = rng.standard_normal(p.shape) * (0.3 / math.sqrt(hidden) if "rnn.weight" in name else 0.3)
    inputs = rng.integers(0, len(vocab), size=(seq_len, batch))
    targets = rng.integers(0, len(vocab), size=(seq_len, batch))
    h0_array = np.tanh(rng.standard_normal(model.state_array_shape(batch)))

    def loss_of(m: CharRNN) -> Tensor:
        loss, _ = m.loss(inputs, targets, m.state_from_array(h0_array, batch))
        return loss

    model.zero_grad()
    loss = loss_of(model)
    loss.backward()
    auto = {name: np.array(p.grad) for name, p in model.named_parameters()}
    fused = CharRNN(len(vocab), hidden, fused=True, cell=cell, num_layers=layers, rng=0)  # weights next
    fused.load_state_dict(model.state_dict())
    loss_of(fused).backward()
    fused_grads = {name: np.array(p.grad) for name, p in fused.named_parameters()}

    print(
        f"gradcheck: {cell} x{layers}, vocabulary {len(vocab)}, hidden {hidden}, seq-len {seq_len}, "
        f"batch {batch}, seed {seed}, float64; autograd vs finite differences and the fused op",
        file=out,
    )
    print(f"loss: {float(loss.item()):.12f}", file=out)
    print(f"{'parameter':<18}{'shape':<12}{'|fd-autograd|':>15}{'|fused-autograd|':>18}  ok", file=out)
    all_ok = True
    with no_grad():
        for name, p in model.named_parameters():
            fd = numerical_gradient(lambda: float(loss_of(model).item()), p.data)
            a = auto[name]
            d_fused = float(np.abs(fused_grads[name] - a).max())
            ok = bool(np.all(agrees(a, fd))) and _exact_enough(d_fused, a)
            all_ok &= ok
            print(
                f"{name:<18}{str(p.shape):<12}{float(np.abs(fd - a).max()):>15.2e}{d_fused:>18.2e}  "
                f"{'yes' if ok else 'NO'}",
                file=out,
            )
    return _verdict(all_ok, out)
