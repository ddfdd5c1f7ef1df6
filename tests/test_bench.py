"""Smoke test of the benchmark: tiny settings, every table and row present. Nothing is timed here."""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
from typing import Any, Iterator

import numpy as np
import pytest

from tinygrad_rnn import kernels
from tinygrad_rnn.reference import bptt

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))  # the harness lives outside the package
import contenders  # noqa: E402
import harness  # noqa: E402
import peers  # noqa: E402


def _has_torch() -> bool:
    return contenders.import_torch() is not None


def _numba_rows() -> list[str]:
    """The row of the compiled kernels: present where numba is importable."""
    return ["fused numba"] if contenders.import_numba() is not None else []


@pytest.fixture
def torch_threads() -> Iterator[None]:
    """The benchmark sets torch's thread count; give the other tests theirs back."""
    torch = contenders.import_torch()
    before = torch.get_num_threads() if torch is not None else None
    yield
    if torch is not None:
        torch.set_num_threads(before)


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    harness.add_arguments(parser)
    return parser.parse_args(list(argv))


def _sections(text: str) -> dict[str, list[str]]:
    """Heading -> the first cell of each table row under it (header and separator skipped)."""
    out: dict[str, list[str]] = {}
    for block in text.split("\n## ")[1:]:
        heading, _, body = block.partition("\n")
        rows = [line for line in body.splitlines() if line.startswith("|")]
        out[heading] = [r.split("|")[1].strip() for r in rows[2:]]
    return out


def test_quick_run_prints_every_table_with_all_rows(torch_threads: None) -> None:
    buf = io.StringIO()
    assert harness.run(_args("--quick", "--threads", "1"), out=buf) == 0
    sections = _sections(buf.getvalue())
    has_jax, has_hips = peers.import_jax() is not None, peers.import_autograd() is not None
    names = ["seed loop", "autograd", "fused", *_numba_rows()] + (["torch"] if _has_torch() else [])
    names += (["jax"] if has_jax else []) + (["hips autograd"] if has_hips else [])
    rnn_names = names.copy()
    for cell in ("lstm", "gru"):  # each cell's rows next to PyTorch's and JAX's
        names += [f"{cell} autograd", f"{cell} fused"] + ([f"torch {cell}"] if _has_torch() else [])
        names += [f"jax {cell}"] if has_jax else []
    mains = [h for h in sections if h.startswith(("seed config", "scale"))]
    assert len(mains) == 2
    for heading in mains:
        assert sections[heading] == names, heading
    scaling = [h for h in sections if h.startswith("ms/step as")]
    assert len(scaling) == 2
    for heading in scaling:
        header = next(line for line in buf.getvalue().split(f"## {heading}")[1].splitlines() if "|" in line)
        assert [c.strip() for c in header.split("|")[2:-1]] == rnn_names, heading
        assert sections[heading], heading
    memory = [h for h in sections if h.startswith(("peak memory", "live memory"))]
    assert [sections[h] for h in memory] == [
        ["seed loop", "autograd", "fused", "lstm fused"],
        ["seed loop", "autograd", "fused", *_numba_rows()],
    ]


def test_contenders_compute_the_same_first_loss() -> None:
    cfg = contenders.CONFIGS["seed"]
    losses = contenders.first_losses(contenders.make_contenders(cfg, use_torch=_has_torch()))
    rows = {"seed loop", "autograd", "fused", *_numba_rows()} | ({"torch"} if _has_torch() else set())
    assert set(losses) == rows
    np.testing.assert_allclose(list(losses.values()), losses["seed loop"], rtol=1e-9)


def test_fused_numba_row_turns_numba_on_for_its_own_steps_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """It trains as the fused row, with numba's kernels in its steps and numpy's in the others'."""
    pytest.importorskip("numba")
    seen: list[str] = []
    forward = kernels.charrnn_forward

    def spy(*args: Any) -> Any:
        seen.append(kernels.active())
        return forward(*args)

    monkeypatch.setattr(kernels, "charrnn_forward", spy)
    rows = {c.name: c for c in contenders.make_contenders(contenders.CONFIGS["seed"], use_torch=False)}
    compiled = [rows["fused numba"].step() for _ in range(3)]
    assert seen == ["numba"] * 3 and kernels.active() == "numpy"
    np.testing.assert_allclose(compiled, [rows["fused"].step() for _ in range(3)], rtol=1e-12)
    assert seen[3:] == ["numpy"] * 3


def test_without_numba_there_is_no_numba_row(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "numba", None)  # `import numba` now raises ImportError
    names = [c.name for c in contenders.make_contenders(contenders.CONFIGS["seed"], use_torch=False)]
    assert names == ["seed loop", "autograd", "fused"]


def test_lstm_and_gru_rows_compute_pytorchs_first_loss() -> None:
    cfg = contenders.CONFIGS["seed"]
    losses = contenders.first_losses(contenders.make_cell_contenders(cfg, use_torch=_has_torch()))
    torch_rows = {"torch lstm", "torch gru"} if _has_torch() else set()
    assert set(losses) == {"lstm autograd", "lstm fused", "gru autograd", "gru fused"} | torch_rows
    for cell in ("lstm", "gru"):
        np.testing.assert_allclose(losses[f"{cell} fused"], losses[f"{cell} autograd"], rtol=1e-12)
    for name in torch_rows:
        np.testing.assert_allclose(losses[name], losses[name.split()[1] + " autograd"], rtol=1e-10)
    assert (
        contenders.torch_twin("lstm autograd") == "torch lstm" and contenders.torch_twin("fused") == "torch"
    )


def test_seed_loop_is_the_seeds_step() -> None:
    """One step of the benchmark's seed loop = reference BPTT, clip at 5, the seed's Adagrad."""
    cfg = contenders.CONFIGS["seed"]
    seed_loop = contenders.make_contenders(cfg, use_torch=False)[0]
    p = {k: seed_loop.p[k].copy() for k in ("Wxh", "Whh", "Why", "bh", "by")}
    inputs, targets = seed_loop.data[0]
    loss, grads, h = bptt(p, inputs, targets, np.zeros((cfg.hidden, 1)))
    assert seed_loop.step() == pytest.approx(loss, rel=1e-12)
    for k, g in grads.items():
        g = np.clip(g, -5, 5)
        np.testing.assert_allclose(seed_loop.p[k], p[k] - 0.1 * g / np.sqrt(g * g + 1e-8), atol=1e-14)
    np.testing.assert_allclose(seed_loop.h_prev, h, atol=1e-14)


def test_runner_script_runs() -> None:
    script = os.path.join(ROOT, "benchmarks", "bench_rnn.py")
    argv = ["--quick", "--no-torch", "--no-peers", "--no-scaling", "--no-memory", "--configs", "seed"]
    done = subprocess.run([sys.executable, script, *argv], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert _sections(done.stdout)["seed config (B=1, H=64, V=22, T=25, float64)"] == [
        "seed loop",
        "autograd",
        "fused",
        *_numba_rows(),
        "lstm autograd",
        "lstm fused",
        "gru autograd",
        "gru fused",
    ]


def test_bad_option_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as e:
        harness.main(["--configs", "nope"])
    assert e.value.code == 2


def test_cli_bench_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    from tinygrad_rnn import cli

    argv = [
        "bench",
        "--quick",
        "--no-torch",
        "--no-peers",
        "--no-scaling",
        "--no-memory",
        "--configs",
        "seed",
    ]
    assert cli.main(argv) == 0
    assert "| fused" in capsys.readouterr().out


def test_cli_bench_bad_option_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from tinygrad_rnn import cli

    with pytest.raises(SystemExit) as e:
        cli.main(["bench", "--configs", "nope"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().split("\n")
    assert len(err) == 1 and err[0].startswith("tinygrad-rnn bench: error: argument --configs")


def test_cli_bench_without_the_checkout_says_where_to_run_it(
    tmp_path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tinygrad_rnn import cli

    monkeypatch.setattr(cli, "BENCHMARKS", tmp_path / "benchmarks")  # an installed package: none
    assert cli.main(["bench", "--quick"]) == 2
    err = capsys.readouterr().err.strip().split("\n")
    assert len(err) == 1 and "run `python benchmarks/bench_rnn.py` from a source checkout" in err[0]


def test_cli_bench_without_pyproject_next_to_the_package_is_refused(
    tmp_path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A benchmarks/harness.py next to an installed package (no pyproject.toml) is not run."""
    from tinygrad_rnn import cli

    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "harness.py").write_text("raise SystemExit('must not run')\n")
    monkeypatch.setattr(cli, "BENCHMARKS", tmp_path / "benchmarks")
    assert cli.main(["bench", "--quick"]) == 2
    err = capsys.readouterr().err.strip().split("\n")
    assert len(err) == 1 and "from a source checkout" in err[0]


def test_cli_bench_loads_the_harness_by_path_leaving_sys_path_alone() -> None:
    code = (
        "import sys; from tinygrad_rnn import cli; before = list(sys.path)\n"
        "try: cli.main(['bench', '--configs', 'nope'])\n"
        "except SystemExit as e: print(e.code, sys.path == before, 'harness' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": ROOT}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert r.stdout.split() == ["2", "True", "False"], r.stdout + r.stderr


def test_importing_the_cli_leaves_the_harness_profilers_and_torch_alone() -> None:
    code = "import sys, tinygrad_rnn.cli; print(' '.join(sorted(set(sys.argv[1:]) & set(sys.modules))))"
    heavy = ["harness", "contenders", "cProfile", "pstats", "tracemalloc", "torch", "numba"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", code, *heavy], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


def test_ratios_pair_the_rounds_so_a_slow_round_cancels_out() -> None:
    times = {"a": [2.0, 4.0, 100.0], "b": [1.0, 2.0, 40.0], "c": [1.0]}
    chars = {"a": 10, "b": 10, "c": 5}
    assert harness.paired_ratio(times, chars, "a", "b") == 2.0  # per-round ratios 2, 2, 2.5
    assert harness.paired_ratio(times, chars, "b", "a") == 0.5
    assert harness.paired_ratio(times, chars, "c", "a") == pytest.approx(1.0)  # per character: 0.2 / 0.2
    assert harness.paired_ratio(times, chars, "a", "torch") is None


def test_cpu_clock_option_runs_and_says_so() -> None:
    buf = io.StringIO()
    argv = ["--quick", "--no-torch", "--no-peers", "--no-scaling", "--no-memory", "--configs", "seed"]
    assert harness.run(_args(*argv, "--clock", "cpu"), out=buf) == 0
    assert "cpu clock, median of 2 rounds" in buf.getvalue()
