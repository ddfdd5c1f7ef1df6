"""The benchmark's JAX and HIPS autograd peers compute the same step; absent packages are skipped.

Nothing is timed here.
"""

from __future__ import annotations

import io
import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))  # the harness lives outside the package
import contenders  # noqa: E402
import harness  # noqa: E402
import peers  # noqa: E402

SEED = contenders.CONFIGS["seed"]  # float64: the peers must agree to 1e-10

needs_jax = pytest.mark.skipif(peers.import_jax() is None, reason="jax is not installed")
needs_hips = pytest.mark.skipif(peers.import_autograd() is None, reason="HIPS autograd is not installed")


def _seed_loop_losses(steps: int) -> list[float]:
    seed_loop = contenders.make_contenders(SEED, use_torch=False)[0]
    return [seed_loop.step() for _ in range(steps)]


@needs_jax
def test_jax_trains_as_the_seed_loop() -> None:
    """Three steps: the same losses, so the same gradients, clip, Adagrad and carried state."""
    step = peers.JaxStep(SEED, contenders._chunks(SEED, 0))
    np.testing.assert_allclose([step.step() for _ in range(3)], _seed_loop_losses(3), rtol=1e-10)


@needs_hips
def test_hips_autograd_trains_as_the_seed_loop() -> None:
    step = peers.HipsStep(SEED, contenders._chunks(SEED, 0))
    np.testing.assert_allclose([step.step() for _ in range(3)], _seed_loop_losses(3), rtol=1e-10)


@needs_jax
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_jax_cells_train_as_the_engines(cell: str) -> None:
    engine = next(
        c for c in contenders.make_cell_contenders(SEED, use_torch=False) if c.name == f"{cell} autograd"
    )
    jax_step = peers.make_cell_peers(SEED, cell)[0]
    assert jax_step.name == f"jax {cell}"
    np.testing.assert_allclose(
        [jax_step.step() for _ in range(3)], [engine.step() for _ in range(3)], rtol=1e-10
    )


def test_float32_peers_are_float32() -> None:
    """No silent upcast: a float32 config trains float32 weights in every peer."""
    cfg = contenders.QUICK_SCALE
    for step in peers.make_peers(cfg) + peers.make_cell_peers(cfg, "gru"):
        step.step()
        weights = step.w.values() if isinstance(step.w, dict) else step.w
        assert {np.dtype(w.dtype) for w in weights} == {np.dtype(np.float32)}, step.name


def test_absent_packages_are_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    """With jax and autograd not importable, the peers are left out and the tables still print."""
    monkeypatch.setitem(sys.modules, "jax", None)  # `import jax` now raises ImportError
    monkeypatch.setitem(sys.modules, "autograd", None)
    assert peers.import_jax() is None and peers.import_autograd() is None
    assert peers.make_peers(SEED) == [] and peers.make_cell_peers(SEED, "lstm") == []
    buf = io.StringIO()
    argv = ["--quick", "--no-torch", "--no-scaling", "--no-memory", "--configs", "seed"]
    parser = harness.argparse.ArgumentParser()
    harness.add_arguments(parser)
    assert harness.run(parser.parse_args(argv), out=buf) == 0
    text = buf.getvalue()
    assert "| fused " in text and "| jax" not in text and "| hips autograd" not in text
    assert "jax not used, HIPS autograd not used" in text
