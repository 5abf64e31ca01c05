"""Fast layout on against off (ganlstm/models/fast_layout.py): paired rounds in one process, the order alternated each round.

    OMP_NUM_THREADS=1 python benchmarks/fast_layout_pairs.py                           # 64 px, batches 1, 8, 16
    OMP_NUM_THREADS=1 python benchmarks/fast_layout_pairs.py --plan 2:25,4:25 --min-batch 2 --size 32

For each model (speed.py's cases: the shipped recipe's widths, random weights) and batch it times
``predict`` (10 observed -> ``--horizon`` predicted) with the rewrites on and off, and prints the
median, geometric mean and interquartile range of the per-round ratios off / on (> 1: the fast
layout is faster). ``--min-batch`` overrides MIN_BATCH, the batch from which the rewrites apply.
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed import forecaster  # noqa: E402

import ganlstm.rollout as engine  # noqa: E402
from ganlstm.device import configure_cpu  # noqa: E402
from ganlstm.models import fast_layout  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--plan", default="1:25,8:15,16:15", help="BATCH:ROUNDS,...")
    ap.add_argument("--models", default="gan_lstm/pixels,gan_lstm/latent")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--horizon", type=int, default=30)
    ap.add_argument("--min-batch", type=int, default=fast_layout.MIN_BATCH)
    args = ap.parse_args()
    torch.set_num_threads(1)
    configure_cpu()
    fast_layout.MIN_BATCH = args.min_batch
    print(f"MIN_BATCH={args.min_batch} size={args.size} 10 -> {args.horizon}, load {os.getloadavg()[0]:.2f}", flush=True)
    models = {n: forecaster(n, args.size, (64, 64), torch.device("cpu")) for n in args.models.split(",")}
    for batch, rounds in (tuple(map(int, p.split(":"))) for p in args.plan.split(",")):
        x = torch.rand(batch, 10, 1, args.size, args.size)  # (B, J, C, S, S)
        for name, model in models.items():
            def run(on: bool) -> float:
                fast_layout.ENABLED = on
                t = time.perf_counter()
                engine.predict(model, x, args.horizon)
                return time.perf_counter() - t

            run(True), run(False)  # warm-up
            ratios = []
            for r in range(rounds):
                t = {on: run(on) for on in ((False, True) if r % 2 else (True, False))}
                ratios.append(t[False] / t[True])
            q = statistics.quantiles(ratios, n=4)
            gm = math.exp(statistics.mean(math.log(r) for r in ratios))
            print(f"{name} B={batch}: speed-up median {statistics.median(ratios):.3f} geomean {gm:.3f} "
                  f"IQR {q[0]:.2f}-{q[2]:.2f} ({rounds} rounds, load {os.getloadavg()[0]:.2f})", flush=True)
    fast_layout.ENABLED = True


if __name__ == "__main__":
    main()
