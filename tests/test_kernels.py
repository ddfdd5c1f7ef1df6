"""The optional compiled kernels (`tinygrad_rnn.kernels`): the numpy reference's numbers, and a switch.

With numba installed, every compiled loop equals `reference`'s function to 1e-12 in float64
(hypothesis over B, H, V, T, ones included) and closely in float32 (kept float32), and whole
training steps under `use("numba")` equal those under `use("numpy")`. Without numba (hidden
here as where it is not installed), `use("numba")` is a clear error and numpy still runs.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinygrad_rnn import Tensor, kernels, reference
from tinygrad_rnn.layers import RNN, CharRNN
from tinygrad_rnn.optim import Adagrad, clip_grad_value_

F64 = {"rtol": 1e-12, "atol": 1e-12}
F32 = {"rtol": 1e-5, "atol": 1e-5}  # atol times the largest |value| (sums cancel)
sizes = st.integers(1, 5)


needs_numba = pytest.mark.skipif(importlib.util.find_spec("numba") is None, reason="numba is not installed")


def _problem(batch: int, hidden: int, vocab: int, steps: int, seed: int, dtype: Any) -> dict[str, Any]:
    """Random char-RNN weights (large enough to saturate tanh in places), ids and a forward's results."""
    rng = np.random.default_rng(seed)

    def rand(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.8).astype(dtype)

    weights = [rand(vocab, hidden), rand(hidden, hidden), rand(hidden), rand(vocab, hidden), rand(vocab)]
    h0 = np.tanh(rand(batch, hidden))
    inputs, targets = rng.integers(0, vocab, (2, steps, batch))
    loss, hs, p = reference.charrnn_forward(*weights, h0, inputs, targets)
    return {
        "weights": weights,
        "h0": h0,
        "ids": (inputs, targets),
        "hs": hs,
        "p": p,
        "xh": rand(steps, batch, hidden),
        "dhs": rand(steps, batch, hidden),
        "dh_last": rand(batch, hidden),
    }


def _every_result(d: dict[str, Any], scale: float) -> list[Any]:
    """Each kernel's results on problem `d`, through `kernels` (whichever is active)."""
    embed, weight_hh, bias, head_weight, head_bias = d["weights"]
    inputs, targets = d["ids"]
    out = list(kernels.charrnn_forward(*d["weights"], d["h0"], inputs, targets))
    for dh_last in (None, d["dh_last"]):
        out += kernels.charrnn_backward(
            weight_hh, head_weight, inputs, targets, d["hs"], d["p"], scale, dh_last
        )
    out.append(kernels.rnn_forward(d["xh"], weight_hh, d["h0"]))
    out += kernels.rnn_backward(d["dhs"], d["hs"], weight_hh)
    return out


def _compare(d: dict[str, Any], scale: float, tol: dict[str, float]) -> None:
    with kernels.using("numpy"):
        want = _every_result(d, scale)
    with kernels.using("numba"):
        got = _every_result(d, scale)
    assert len(got) == len(want) == 19
    for i, (g, w) in enumerate(zip(got, want)):
        assert np.shape(g) == np.shape(w), i
        assert np.asarray(g).dtype == np.asarray(w).dtype, i
        atol = tol["atol"] * max(1.0, float(np.abs(w).max(initial=0.0)))
        np.testing.assert_allclose(g, w, rtol=tol["rtol"], atol=atol, err_msg=f"result {i}")


@needs_numba
@given(batch=sizes, hidden=sizes, vocab=sizes, steps=sizes, seed=st.integers(0, 2**16))
def test_compiled_kernels_are_the_reference_to_1e12_in_float64(
    batch: int, hidden: int, vocab: int, steps: int, seed: int
) -> None:
    _compare(_problem(batch, hidden, vocab, steps, seed, np.float64), 0.7, F64)


@needs_numba
@given(batch=sizes, hidden=st.integers(1, 40), vocab=sizes, steps=sizes, seed=st.integers(0, 2**16))
def test_compiled_kernels_keep_float32_and_agree(
    batch: int, hidden: int, vocab: int, steps: int, seed: int
) -> None:
    d = _problem(batch, hidden, vocab, steps, seed, np.float32)
    _compare(d, 1.0, F32)
    with kernels.using("numba"):
        arrays = [r for r in _every_result(d, 1.0) if isinstance(r, np.ndarray)]
    assert {a.dtype for a in arrays} == {np.dtype(np.float32)}


@needs_numba
@pytest.mark.parametrize("bad", [-1, 4])
def test_compiled_loss_refuses_ids_outside_the_vocabulary(bad: int) -> None:
    """The loops do not check their indices: the kernels check the ids first (IndexError, as numpy's)."""
    d = _problem(1, 3, 4, 2, 0, np.float64)
    inputs, targets = d["ids"]
    for which in ("inputs", "targets"):
        ids = {"inputs": inputs.copy(), "targets": targets.copy()}
        ids[which][1, 0] = bad
        with kernels.using("numba"):
            with pytest.raises(IndexError, match="outside"):
                kernels.charrnn_forward(*d["weights"], d["h0"], ids["inputs"], ids["targets"])
            with pytest.raises(IndexError, match="outside"):
                kernels.charrnn_backward(
                    d["weights"][1], d["weights"][3], ids["inputs"], ids["targets"], d["hs"], d["p"]
                )


@needs_numba
def test_large_logits_stay_finite() -> None:
    """Logits of +-1e3 (log-sum-exp shifted): a finite loss and gradients, as numpy's."""
    d = _problem(2, 3, 4, 3, 0, np.float64)
    d["weights"][3] *= 1e3  # head_weight
    with kernels.using("numba"):
        loss, hs, p = kernels.charrnn_forward(*d["weights"], d["h0"], *d["ids"])
        grads = kernels.charrnn_backward(d["weights"][1], d["weights"][3], *d["ids"], hs, p)
    want_loss, _, want_p = reference.charrnn_forward(*d["weights"], d["h0"], *d["ids"])
    assert loss == pytest.approx(want_loss, rel=1e-12) and loss > 100
    np.testing.assert_allclose(p, want_p, **F64)
    assert all(np.isfinite(g).all() for g in grads)


@needs_numba
def test_compiled_tanh_is_numpys_to_a_few_ulp() -> None:
    """The loops' tanh (one exp for |x| >= 1/2) against np.tanh, edges included."""
    with kernels.using("numba"):  # compiles the loops
        tanh = kernels._compiled["_tanh"]
    x = np.concatenate(
        [np.linspace(-25, 25, 4001), np.geomspace(1e-300, 30, 400), [0.5, np.nextafter(0.5, 0)]]
    )
    x = np.concatenate([x, -x, [np.inf, -np.inf]])
    got = np.array([tanh(v) for v in x])
    want = np.tanh(x)
    assert np.all(np.abs(got - want) <= 4 * np.spacing(np.abs(want)))
    assert np.isnan(tanh(np.nan)) and np.signbit(tanh(-0.0))
    assert tanh(np.float32(0.75)) == pytest.approx(np.tanh(0.75), rel=1e-7)  # float32 in


def _train(name: str, steps: int = 4) -> tuple[list[float], dict[str, np.ndarray]]:
    """`steps` training steps of the seed's setup (B=2 here) on one chunk under kernels `name`."""
    model = CharRNN(11, 16, fused=True, rng=3)
    params = model.parameters()
    opt = Adagrad(params, lr=0.1)
    chunk = np.random.default_rng(4).integers(0, 11, (9, 2))
    losses, h = [], None
    with kernels.using(name):
        for _ in range(steps):
            opt.zero_grad()
            loss, h = model.loss(chunk[:-1], chunk[1:], h)
            loss.backward()
            clip_grad_value_(params, 5.0)
            opt.step()
            losses.append(loss.item())
    return losses, model.state_dict()


@needs_numba
def test_training_steps_under_numba_equal_numpys() -> None:
    losses, state = _train("numba")
    want_losses, want_state = _train("numpy")
    np.testing.assert_allclose(losses, want_losses, **F64)
    assert losses[-1] < losses[0]  # it learns
    for k in want_state:
        np.testing.assert_allclose(state[k], want_state[k], **F64, err_msg=k)


@needs_numba
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_compiled_adagrad_update_is_numpys(dtype: Any) -> None:
    """sum_sq += g*g and param -= lr g / sqrt(sum_sq + eps), in place, for C-ordered arrays
    (compiled), a transposed gradient, and F-ordered ones (numpy's path)."""
    rng = np.random.default_rng(6)
    g, p0 = rng.standard_normal((2, 5, 7)).astype(dtype)
    for grad, order in [(g, "C"), (np.ascontiguousarray(g.T).T, "C"), (g, "F")]:
        got = {}
        for name in ("numpy", "numba"):
            param, sums = np.array(p0, order=order), np.array(np.abs(g), order=order)
            with kernels.using(name):
                assert kernels.adagrad_update(param, grad, sums, 0.1, 1e-8) is param
            got[name] = (param, sums)
        assert got["numba"][0].dtype == dtype
        tol = F64 if dtype == np.float64 else F32
        for a, b in zip(got["numba"], got["numpy"]):
            np.testing.assert_allclose(a, b, **tol)
        np.testing.assert_allclose(
            got["numpy"][0], p0 - 0.1 * g / np.sqrt(np.abs(g) + g * g + 1e-8), rtol=1e-6
        )


@needs_numba
def test_fused_rnn_layer_under_numba_equals_numpys() -> None:
    """RNN(fused=True) runs `fused.RNNRecurrence`: the same outputs and gradients either way."""
    rng = np.random.default_rng(5)
    x, h0, proj = rng.standard_normal((6, 3, 4)), rng.standard_normal((3, 5)), rng.standard_normal((6, 3, 5))
    results = {}
    for name in ("numpy", "numba"):
        layer = RNN(4, 5, fused=True, rng=1)
        x_t, h_t = Tensor(x, requires_grad=True), Tensor(h0, requires_grad=True)
        with kernels.using(name):
            out, last = layer(x_t, h_t)
            ((out * proj).sum() + last.sum()).backward()
        results[name] = [out.data, last.data, x_t.grad, h_t.grad, *[p.grad for p in layer.parameters()]]
    for got, want in zip(results["numba"], results["numpy"]):
        np.testing.assert_allclose(got, want, **F64)


@needs_numba
def test_numpy_runs_above_the_size_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    """Up to COMPILED_MAX_STATE (B*H) the compiled loops run (the reference is not called); above, numpy's."""
    d = _problem(2, 3, 4, 3, 1, np.float64)

    def refuse(*args: Any) -> None:
        raise AssertionError("the reference ran")

    with kernels.using("numba"):
        monkeypatch.setattr(reference, "rnn_forward", refuse)
        h = kernels.rnn_forward(d["xh"], d["weights"][1], d["h0"])
        monkeypatch.undo()
        monkeypatch.setattr(kernels, "COMPILED_MAX_STATE", 2 * 3 - 1)  # B*H is 6
        assert np.array_equal(
            kernels.rnn_forward(d["xh"], d["weights"][1], d["h0"]),
            reference.rnn_forward(d["xh"], d["weights"][1], d["h0"]),
        )
    np.testing.assert_allclose(h, reference.rnn_forward(d["xh"], d["weights"][1], d["h0"]), **F64)


@needs_numba
def test_switch_returns_and_restores_the_previous_choice() -> None:
    assert kernels.active() == "numpy"  # the default
    assert kernels.use("numba") == "numpy" and kernels.active() == "numba"
    assert kernels.use("numpy") == "numba" and kernels.active() == "numpy"
    with pytest.raises(KeyError):
        with kernels.using("numba"):
            assert kernels.active() == "numba"
            with kernels.using("numpy"):
                assert kernels.active() == "numpy"
            assert kernels.active() == "numba"
            raise KeyError("boom")
    assert kernels.active() == "numpy"


def test_unknown_kernels_are_a_value_error_that_changes_nothing() -> None:
    with pytest.raises(ValueError, match="numpy, numba.*'cuda'"):
        kernels.use("cuda")
    assert kernels.active() == "numpy"


def test_without_numba_use_says_how_to_install_and_numpy_still_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "numba", None)  # what `import numba` sees where it is not installed
    monkeypatch.setattr(kernels, "_compiled", {})  # as in a process that never compiled
    with pytest.raises(RuntimeError, match=r'pip install "tinygrad-rnn\[compiled\]"'):
        kernels.use("numba")
    with pytest.raises(RuntimeError, match="numba is not installed"):
        with kernels.using("numba"):
            pass
    assert kernels.active() == "numpy"
    model = CharRNN(5, 4, fused=True, rng=0)
    inputs, targets = np.array([[0], [1], [2]]), np.array([[1], [2], [3]])
    loss, _ = model.loss(inputs, targets)
    sd = model.state_dict()
    weights = [sd["embed.weight"], sd["weight_hh"], sd["bias_h"], sd["head.weight"], sd["head.bias"]]
    want, _, _ = reference.charrnn_forward(*weights, np.zeros((1, 4)), inputs, targets)
    assert loss.item() == want


def test_import_does_not_import_numba() -> None:
    code = (
        "import sys, tinygrad_rnn, tinygrad_rnn.layers, tinygrad_rnn.kernels; print('numba' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_compiles_without_a_writable_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where numba finds nowhere to write its cache, the loops are compiled in the process."""
    numba = pytest.importorskip("numba")
    monkeypatch.setattr(numba.config, "CACHE_LOCATOR_CLASSES", "IPythonCacheLocator")  # none applies
    monkeypatch.setattr(kernels, "_compiled", {})
    d = _problem(1, 2, 3, 2, 2, np.float64)
    with kernels.using("numba"):
        h = kernels.rnn_forward(d["xh"], d["weights"][1], d["h0"])
    assert kernels._compiled["_rnn_forward_loops"]._cache.__class__.__name__ == "NullCache"
    np.testing.assert_allclose(h, reference.rnn_forward(d["xh"], d["weights"][1], d["h0"]), **F64)
