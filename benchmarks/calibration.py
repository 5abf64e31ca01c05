"""Uncertainty of the GAN-LSTM's ensembles: choose the latent spread on validation mergers, score it on test ones.

Ensembles of ``--members`` futures (:mod:`ganlstm.ensemble`) of the shipped GAN-LSTM, j = 20 -> k = 30,
one window per simulated merger (50 frames, 32 px). Step one picks the spread on the VALIDATION seeds
(the benchmark's test seed is never used for the choice), after Gneiting et al. (JRSS-B 2007): the
sharpest calibrated ensemble, i.e. among the spreads whose spread-skill ratio (geometric mean over
horizons 1-30 and seeds) lies in [0.8, 1.2], the one with the lowest CRPS (nearest 1 if none does). Step two scores that spread on the test seeds per horizon:
spread-skill, and the ensemble's CRPS beside the per-pixel MAE of the deterministic forecasts of the
GAN-LSTM, the shipped ConvLSTM and copy-last-frame (a point forecast's CRPS is its MAE).

    python benchmarks/calibration.py [--members 16] [--sequences 40] [--val-seeds 11,12,13] [--test-seeds 2,21,22]

Prints markdown tables (docs/benchmarks.md, "Uncertainty").
"""
from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

from ganlstm.calibration import CalibrationAccumulator, choose_spread
from ganlstm.data.simulate import simulate_arrays
from ganlstm.ensemble import sample_futures
from ganlstm.models.baselines import Persistence
from ganlstm.rollout import predict
from ganlstm.train.forecaster import load_forecaster

HORIZONS_SHOWN = (1, 2, 5, 10, 15, 20, 25, 30)


def windows(seed: int, sequences: int, size: int, j: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    seqs, _ = simulate_arrays(sequences, j + k, size, seed)
    x = torch.from_numpy(np.stack(seqs))  # (B, j+k, 1, S, S) in [0, 1]
    return x[:, :j], x[:, j:]


def score(model, ctx, tgt, members: int, spread: float, seed: int) -> CalibrationAccumulator:
    acc = CalibrationAccumulator()
    acc.update(sample_futures(model, ctx, tgt.shape[1], members, spread=spread, seed=seed), tgt)
    return acc


def mae_pixel(model, ctx, tgt) -> list[float]:
    pred = predict(model, ctx, tgt.shape[1])  # (B, K, C, H, W)
    return [float(v) for v in (pred - tgt).abs().mean(dim=(0, 2, 3, 4))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="checkpoints/gan_lstm_32.pt")
    ap.add_argument("--baseline", default="checkpoints/convlstm_32.pt")
    ap.add_argument("--members", type=int, default=16)
    ap.add_argument("--sequences", type=int, default=40)
    ap.add_argument("--spreads", default="0.3,0.5,0.6,0.7,0.8,1.0,1.2")
    ap.add_argument("--val-seeds", default="11,12,13")
    ap.add_argument("--test-seeds", default="2,21,22")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    model, _ = load_forecaster(args.checkpoint, "cpu")
    size, j, k = model.cfg.image_size, 20, 30
    t0 = time.perf_counter()
    val = {s: windows(s, args.sequences, size, j, k) for s in map(int, args.val_seeds.split(","))}
    spreads = [float(s) for s in args.spreads.split(",")]
    print(f"{args.checkpoint}, {args.members} members, {args.sequences} mergers per seed, j={j} -> k={k}, {size} px\n")
    print("Validation: spread-skill (geometric mean over horizons 1-30) per seed\n")
    print("| spread | " + " | ".join(f"seed {s}" for s in val) + " | mean of log | CRPS (mean) |")
    print("|---:|" + "---:|" * (len(val) + 2))
    rows = []
    for spread in spreads:
        accs = [score(model, *val[s], args.members, spread, seed=s) for s in val]
        ratios = [a.summary()["spread_skill"] for a in accs]
        gap = abs(sum(math.log(r) for r in ratios) / len(ratios))
        crps = sum(a.summary()["crps"] for a in accs) / len(accs)
        print(f"| {spread:g} | " + " | ".join(f"{r:.3f}" for r in ratios) + f" | {gap:.3f} | {crps:.5f} |")
        rows.append((spread, math.exp(sum(math.log(r) for r in ratios) / len(ratios)), crps))
    best = choose_spread(rows)
    print(f"\nChosen on validation: spread {best:g}\n")
    baseline, _ = load_forecaster(args.baseline, "cpu")
    persistence = Persistence(model.cfg)
    for seed in map(int, args.test_seeds.split(",")):
        ctx, tgt = windows(seed, args.sequences, size, j, k)
        per = score(model, ctx, tgt, args.members, best, seed=seed + 1000).per_horizon()
        det = {"GAN-LSTM": mae_pixel(model, ctx, tgt), "ConvLSTM": mae_pixel(baseline, ctx, tgt),
               "copy-last-frame": mae_pixel(persistence, ctx, tgt)}
        print(f"Test seed {seed} (spread {best:g}, {args.members} members)\n")
        print("| horizon | spread-skill | ensemble CRPS | ensemble-mean MAE | GAN-LSTM MAE | ConvLSTM MAE | copy-last-frame MAE |")
        print("|---:|---:|---:|---:|---:|---:|---:|")
        for h in HORIZONS_SHOWN:
            i = h - 1
            print(f"| {h} | {per['spread_skill'][i]:.2f} | {per['crps'][i]:.4f} | {per['mae_pixel'][i]:.4f} | "
                  + " | ".join(f"{det[m][i]:.4f}" for m in det) + " |")
        geo = math.exp(sum(math.log(r) for r in per["spread_skill"]) / k)
        print(f"| mean 1-30 | {geo:.2f} | {np.mean(per['crps']):.4f} | {np.mean(per['mae_pixel']):.4f} | "
              + " | ".join(f"{np.mean(det[m]):.4f}" for m in det) + " |\n")
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
