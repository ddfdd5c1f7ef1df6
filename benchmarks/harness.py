"""Benchmarks: training steps of one char-RNN, timed side by side in one process (the harness).

    python benchmarks/bench_rnn.py            # the full run (a few minutes)
    python benchmarks/bench_rnn.py --quick    # tiny settings: checks that everything runs

The contenders (the seed's loop, autograd, fused, PyTorch; LSTM and GRU rows) are in
`contenders.py`, the optional peers JAX and HIPS autograd in `peers.py`; this file times
them and prints the tables.

In the main tables, "time vs torch" and "time vs jax" compare each LSTM/GRU row with its
own cell's PyTorch and JAX rows.

Timing interleaves the contenders round-robin (the starting contender rotates every round)
and reports medians over rounds. Peak memory is what tracemalloc sees during one step
beyond what was allocated before it; torch's allocator is invisible to tracemalloc, so its
memory is "n/a". Model FLOPs per step are 6*T*B*H*(H+V) (forward, and backward through the
recurrence and the output layer; elementwise work and the seed's one-hot products are not
counted), 6*T*B*(2*G*H*H + H*V) for a cell with G gates (input and recurrent matmuls),
compared with a large numpy matmul of the same dtype.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import os
import pstats
import statistics
import sys
import time
import tracemalloc
from dataclasses import replace
from typing import Any, Callable, Optional, Sequence

import numpy as np
from contenders import (
    CELL_CONTENDER_NAMES,
    CONFIGS,
    CONTENDER_NAMES,
    QUICK_SCALE,
    Config,
    Contender,
    cell_of,
    first_losses,
    import_torch,
    make_cell_contenders,
    make_contenders,
    numpy_threads,
    torch_twin,
)
from peers import CELL_PEER_NAMES, PEER_NAMES, import_autograd, import_jax, make_cell_peers, make_peers

from tinygrad_rnn.argtypes import nonnegative_int, positive_int  # the command line's own number checks

CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def interleaved(
    contenders: Sequence[Contender], steps: int, rounds: int, warmup: int, clock: str = "wall"
) -> dict[str, list[float]]:
    """Seconds per step of each contender in every round; the contenders take turns.

    clock "wall" times elapsed seconds; "cpu" the CPU seconds of this process (all its
    threads), which time spent waiting for a core that other tenants hold does not inflate.
    """
    now = CLOCKS[clock]
    for c in contenders:
        for _ in range(warmup):
            c.step()
    times: dict[str, list[float]] = {c.name: [] for c in contenders}
    n = len(contenders)
    gc.collect()
    gc.freeze()  # the garbage collector stays on, but no longer walks torch's many objects
    for r in range(rounds):
        for c in [*contenders[r % n :], *contenders[: r % n]]:
            t0 = now()
            for _ in range(steps):
                c.step()
            times[c.name].append((now() - t0) / steps)
    return times


def peak_bytes(step: Callable[[], Any]) -> int:
    """Peak bytes tracemalloc sees during one call of `step`, beyond what was live before it."""
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        step()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def matmul_gflops(dtype: Any, n: int = 1024, repeat: int = 5, clock: str = "wall") -> float:
    """GFLOP/s of an (n, n) @ (n, n) numpy matmul: the machine's practical peak for `dtype`."""
    now = CLOCKS[clock]
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n)).astype(dtype), rng.standard_normal((n, n)).astype(dtype)
    out = a @ b
    best = []
    for _ in range(repeat):
        t0 = now()
        np.matmul(a, b, out=out)
        best.append(now() - t0)
    return 2.0 * n**3 / statistics.median(best) / 1e9


# --- reports ----------------------------------------------------------------------------------
def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown pipe table, padded to read well in a terminal too."""
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), sep, *[line(r) for r in rows]])


def paired_ratio(times: dict[str, list[float]], chars: dict[str, int], a: str, b: str) -> Optional[float]:
    """Time per character of `a` relative to `b`: the median over rounds of each round's ratio.

    The rounds interleave the contenders, so the two times of a round were taken seconds
    apart and a drift in the machine's speed (other tenants of a shared host) cancels out.
    None if either contender did not run.
    """
    if a not in times or b not in times:
        return None
    return statistics.median((ta / chars[a]) / (tb / chars[b]) for ta, tb in zip(times[a], times[b]))


def _ratio(r: Optional[float]) -> str:
    return "-" if r is None else f"{r:.2f}x"


def _mib(n: Optional[int]) -> str:
    return "n/a" if n is None else f"{n / 2**20:.3f}"


def all_contenders(cfg: Config, args: argparse.Namespace, cells: bool = True) -> list[Contender]:
    """Every contender of `cfg` (the LSTM and GRU rows too if `cells`), each cell's rows together."""
    use_torch, peers = not args.no_torch, not args.no_peers
    out = make_contenders(cfg, use_torch, args.seed) + (make_peers(cfg, args.seed) if peers else [])
    if cells:
        rows = make_cell_contenders(cfg, use_torch, args.seed)
        for cell in ("lstm", "gru"):
            out += [c for c in rows if cell_of(c.name) == cell]
            out += make_cell_peers(cfg, cell, args.seed) if peers else []
    return out


def jax_twin(name: str) -> str:
    """The JAX row a contender's time is compared with: its own cell's."""
    cell = cell_of(name)
    return "jax" if cell == "rnn" else f"jax {cell}"


def main_table(cfg: Config, args: argparse.Namespace, out: Any) -> None:
    """Time the contenders on `cfg` and print ms/step, chars/s, peak memory, ratios, GFLOP/s."""
    contenders = all_contenders(cfg, args)
    losses = first_losses(contenders)
    times = interleaved(contenders, args.steps, args.rounds, args.warmup, args.clock)
    peak = matmul_gflops(cfg.dtype, n=args.matmul_n, clock=args.clock)
    med = {name: statistics.median(t) for name, t in times.items()}
    chars = {c.name: c.chars for c in contenders}
    rows = []
    for c in contenders:
        mem = None if c.name.startswith(("torch", "jax")) else peak_bytes(c.step)
        ts = times[c.name]
        cell = cell_of(c.name)
        flops = cfg.flops if cell == "rnn" else cfg.cell_flops(cell)
        gflops = flops * (c.chars / (cfg.seq_len * cfg.batch)) / med[c.name] / 1e9
        rows.append(
            [
                c.name,
                f"{c.chars}",
                f"{med[c.name] * 1e3:.3f}",
                f"{min(ts) * 1e3:.3f}-{max(ts) * 1e3:.3f}",
                f"{c.chars / med[c.name]:,.0f}",
                _mib(mem),
                _ratio(paired_ratio(times, chars, c.name, "seed loop")),
                _ratio(paired_ratio(times, chars, c.name, torch_twin(c.name))),
                _ratio(paired_ratio(times, chars, c.name, jax_twin(c.name))),
                f"{gflops:.2f} ({100 * gflops / peak:.1f}%)",
            ]
        )
    header = [
        "contender",
        "chars/step",
        "ms/step",
        "range",
        "chars/s",
        "peak MiB",
        "time vs seed",
        "time vs torch",
        "time vs jax",
        "GFLOP/s (% of matmul)",
    ]
    print(f"\n## {cfg.name} config ({cfg.describe()})\n", file=out)
    print(_table(header, rows), file=out)
    families = {"rnn": [k for k in CONTENDER_NAMES + PEER_NAMES if k != "seed loop" or cfg.batch == 1]}
    cell_names = CELL_CONTENDER_NAMES + CELL_PEER_NAMES
    families.update({cell: [k for k in cell_names if cell in k] for cell in ("lstm", "gru")})
    spread = 0.0
    for names in families.values():
        same = [losses[k] for k in names if k in losses]
        spread = max(spread, (max(same) - min(same)) / max(abs(min(same)), 1e-30))
    print(
        f"\n{args.clock} clock, median of {args.rounds} rounds x {args.steps} steps; 'time vs' = time "
        "per character relative to that row's in the same round, median over rounds (< 1 is faster); numpy "
        f"{np.dtype(cfg.dtype).name} matmul "
        f"{args.matmul_n}^2: {peak:.1f} GFLOP/s; first-step losses agree to {spread:.1e} (relative; "
        "within each cell's rows)",
        file=out,
    )


def scaling_table(base: Config, axis: str, values: Sequence[int], args: argparse.Namespace, out: Any) -> None:
    """ms/step of every contender as one dimension (seq_len or hidden) of `base` grows."""
    rows, names = [], None
    for v in values:
        cfg = replace(base, seq_len=v) if axis == "seq_len" else replace(base, hidden=v)
        contenders = all_contenders(cfg, args, cells=False)
        names = [c.name for c in contenders]
        times = interleaved(contenders, args.scaling_steps, args.rounds, args.warmup, args.clock)
        rows.append([str(v)] + [f"{statistics.median(times[n]) * 1e3:.3f}" for n in names])
    label = {"seq_len": "T", "hidden": "H"}[axis]
    print(f"\n## ms/step as {label} grows ({base.describe().replace(f'{label}=', f'{label}*=')})\n", file=out)
    print(_table([label, *(names or [])], rows), file=out)


def memory_checks(args: argparse.Namespace, out: Any) -> None:
    """Peak memory of one step against T (linear?), and live memory over a long run (flat?)."""
    base = replace(CONFIGS["seed"], seq_len=args.memory_t[0])
    rows = []
    for name in ("seed loop", "autograd", "fused", "lstm fused"):
        peaks = []
        for t in args.memory_t:
            cfg = replace(base, seq_len=t)
            every = make_contenders(cfg, False, args.seed) + make_cell_contenders(cfg, False, args.seed)
            c = next(c for c in every if c.name == name)
            c.step()
            peaks.append(peak_bytes(c.step))
        t_vals = np.array(args.memory_t, float)
        slope, icept = np.polyfit(t_vals, peaks, 1)
        resid = max(abs(p - (slope * t + icept)) for p, t in zip(peaks, t_vals)) / max(peaks)
        rows.append([name, *[_mib(p) for p in peaks], f"{slope / 1024:.2f}", f"{100 * resid:.1f}%"])
    ts = [f"T={t} MiB" for t in args.memory_t]
    print(f"\n## peak memory of one step against T ({base.describe().replace('T=', 'T*=')})\n", file=out)
    print(_table(["contender", *ts, "KiB per extra char", "max deviation from linear"], rows), file=out)

    rows = []
    for c in make_contenders(CONFIGS["seed"], False, args.seed):
        warm = max(1, args.memory_steps // 100)
        gc.collect()
        tracemalloc.start()
        try:
            for _ in range(warm):
                c.step()
            gc.collect()
            after_warm = tracemalloc.get_traced_memory()[0]
            high = after_warm
            for i in range(args.memory_steps - warm):
                c.step()
                if i % 100 == 0:
                    high = max(high, tracemalloc.get_traced_memory()[0])
            gc.collect()
            end = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        rows.append(
            [
                c.name,
                f"{after_warm / 1024:.1f}",
                f"{max(high, end) / 1024:.1f}",
                f"{end / 1024:.1f}",
                f"{(end - after_warm) / 1024:+.1f}",
            ]
        )
    print(f"\n## live memory over {args.memory_steps} training steps (seed config)\n", file=out)
    header = [
        "contender",
        f"after {max(1, args.memory_steps // 100)} steps KiB",
        "highest KiB",
        "at the end KiB",
        "growth KiB",
    ]
    print(_table(header, rows), file=out)


def profile(name: str, cfg: Config, args: argparse.Namespace, out: Any, top: int = 25) -> None:
    """cProfile `args.steps` steps of one contender and print the top functions by own time."""
    args.no_torch, args.no_peers = not name.startswith("torch"), name not in PEER_NAMES + CELL_PEER_NAMES
    c = next((c for c in all_contenders(cfg, args) if c.name == name), None)
    if c is None:
        raise SystemExit(f"bench: no contender {name!r} (is its package installed?)")
    for _ in range(args.warmup):
        c.step()
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(args.steps):
        c.step()
    prof.disable()
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf)
    calls = sum(v[1] for v in stats.stats.values())  # type: ignore[attr-defined]
    stats.sort_stats("tottime").print_stats(top)
    print(
        f"\n## profile of {name} on the {cfg.name} config: {calls / args.steps:.0f} calls per step\n",
        file=out,
    )
    print(buf.getvalue(), file=out)


def _version(package: str) -> str:
    """An installed distribution's version (HIPS autograd has no __version__)."""
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "installed"


def machine(out: Any, use_torch: bool, use_peers: bool) -> None:
    """What the numbers were measured on."""
    import platform

    torch = import_torch() if use_torch else None
    jax = import_jax() if use_peers else None
    autograd = import_autograd() if use_peers else None

    versions = f"python {platform.python_version()}, numpy {np.__version__}"
    versions += f", torch {torch.__version__ if torch else 'not used'}"
    versions += f", jax {jax.__version__ if jax else 'not used'}"
    hips = _version("autograd") if autograd else "not used"
    versions += f", HIPS autograd {hips}"
    print("# tinygrad_rnn benchmark\n", file=out)
    print(f"- {versions}", file=out)
    print(f"- {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}", file=out)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    print(f"- load average at the start: {load} (a busy machine makes every number noisy)", file=out)
    threads = f"numpy's BLAS may use {numpy_threads()}"
    if torch is not None:
        threads = f"torch.set_num_threads({torch.get_num_threads()}); {threads}"
    if jax is not None:
        threads += f"; XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}"
    print(f"- threads: {threads} (set OPENBLAS_NUM_THREADS or --threads to change)", file=out)


def _csv_ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) <= 0:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _configs(text: str) -> list[str]:
    names = [v.strip() for v in text.split(",") if v.strip()]
    bad = [n for n in names if n not in CONFIGS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"configs are {', '.join(CONFIGS)}; got {text!r}")
    return names


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The benchmark's options (shared by benchmarks/bench_rnn.py and `tinygrad-rnn bench`)."""
    p.add_argument(
        "--quick", action="store_true", help="tiny settings: a few steps, small scaling and memory runs"
    )
    p.add_argument("--configs", type=_configs, default=["seed", "scale"], help="comma-separated: seed,scale")
    p.add_argument("--steps", type=positive_int, help="steps per contender per round (default 20)")
    p.add_argument(
        "--rounds", type=positive_int, help="rounds of interleaved timing; medians are reported (default 15)"
    )
    p.add_argument("--warmup", type=nonnegative_int, help="untimed steps per contender first (default 5)")
    p.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="wall",
        help="wall: elapsed time (default); cpu: this process's CPU time, steadier on a busy machine",
    )
    p.add_argument(
        "--seq-lens", type=_csv_ints, help="T values of the scaling table (default 25,50,100,200,400)"
    )
    p.add_argument(
        "--hiddens", type=_csv_ints, help="H values of the scaling table (default 32,64,128,256,512)"
    )
    p.add_argument("--no-scaling", action="store_true", help="skip the T and H scaling tables")
    p.add_argument(
        "--memory-t", type=_csv_ints, help="T values of the peak-memory check (default 250,500,1000)"
    )
    p.add_argument(
        "--memory-steps", type=positive_int, help="steps of the long-run memory check (default 10000)"
    )
    p.add_argument("--no-memory", action="store_true", help="skip the memory checks")
    p.add_argument("--no-torch", action="store_true", help="leave PyTorch out even when installed")
    p.add_argument(
        "--no-peers", action="store_true", help="leave JAX and HIPS autograd out even when installed"
    )
    p.add_argument(
        "--threads",
        type=positive_int,
        help="torch.set_num_threads (default: the threads numpy's BLAS may use)",
    )
    p.add_argument("--matmul-n", type=positive_int, help="size of the reference numpy matmul (default 1024)")
    p.add_argument(
        "--profile",
        choices=CONTENDER_NAMES + CELL_CONTENDER_NAMES + PEER_NAMES + CELL_PEER_NAMES,
        help="cProfile one contender on the first config instead",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and data (default 0)")


def _defaults(args: argparse.Namespace) -> None:
    quick = args.quick
    for name, full, small in [
        ("steps", 20, 2),
        ("rounds", 15, 2),
        ("warmup", 5, 1),
        ("seq_lens", [25, 50, 100, 200, 400], [5, 10]),
        ("hiddens", [32, 64, 128, 256, 512], [8, 16]),
        ("memory_t", [250, 500, 1000], [10, 20, 40]),
        ("memory_steps", 10000, 20),
        ("matmul_n", 1024, 128),
    ]:
        if getattr(args, name) is None:
            setattr(args, name, small if quick else full)
    args.scaling_steps = max(1, args.steps // 2)


def run(args: argparse.Namespace, out: Any = None) -> int:
    """Run the benchmark described by parsed `args`; print Markdown to `out` (stdout)."""
    out = out or sys.stdout
    _defaults(args)
    torch = None if args.no_torch else import_torch()
    if torch is not None:
        torch.set_num_threads(args.threads or numpy_threads())
    machine(out, torch is not None, not args.no_peers)
    if args.profile:
        profile(args.profile, CONFIGS[args.configs[0]], args, out)
        return 0
    for name in args.configs:
        main_table(QUICK_SCALE if args.quick and name == "scale" else CONFIGS[name], args, out)
        out.flush()
    if not args.no_scaling:
        scaling_table(CONFIGS["seed"], "seq_len", args.seq_lens, args, out)
        scaling_table(CONFIGS["seed"], "hidden", args.hiddens, args, out)
    if not args.no_memory:
        memory_checks(args, out)
    gc.unfreeze()
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """`python benchmarks/bench_rnn.py [options]`; returns the exit code."""
    parser = argparse.ArgumentParser(prog="bench_rnn", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))
