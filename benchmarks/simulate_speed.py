"""Speed of the built-in merger simulator against its budget.

The target: 100 sequences x 60 frames at 64 x 64 in under 120 s on a 2-core laptop-class
CPU, so the demo and the benchmark can make their data on the spot. Prints the wall time,
the time per sequence and the ratio to the budget (< 1 means within budget)::

    python benchmarks/simulate_speed.py                # the target workload, 1 process
    python benchmarks/simulate_speed.py --workers 2    # one process per core
"""
from __future__ import annotations

import argparse
import os
import time

from ganlstm.data.simulate import simulate_arrays

BUDGET_S = 120.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=100)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=1, help="report the fastest of this many runs")
    args = parser.parse_args()

    times, cpu = [], []
    for _ in range(args.repeats):
        start, cpu_start = time.perf_counter(), _cpu_seconds()
        simulate_arrays(args.sequences, args.frames, args.size, args.seed, workers=args.workers)
        times.append(time.perf_counter() - start)
        cpu.append(_cpu_seconds() - cpu_start)
    best = min(times)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"simulate {args.sequences} x {args.frames} frames at {args.size}x{args.size}, workers={args.workers}: "
        f"{best:.1f} s (runs: {', '.join(f'{t:.1f}' for t in times)}), {best / args.sequences:.3f} s/sequence, "
        f"ratio to the {BUDGET_S:.0f} s budget {best / BUDGET_S:.2f}; CPU time {min(cpu):.1f} s "
        f"(1-min load average {load:.2f}, {os.cpu_count()} CPUs)"
    )


def _cpu_seconds() -> float:
    """User + system time of this process and its finished children (the pool's workers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


if __name__ == "__main__":
    main()
