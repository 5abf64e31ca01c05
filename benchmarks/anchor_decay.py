"""Choose a GAN-LSTM checkpoint's residual anchoring (``--anchor-decay``) and motion scale on held-out sequences.

Scores the checkpoint with each decay D of a grid (the k-th predicted frame adds D**(k-1) of the
last observed frame's reading error; 0 = off), next to persistence, on the same windows, and names
the D with the lowest mean MSE over the horizons, the criterion of stage two's validation; it also
prints ``fit``'s score (relative MSE + relative 1-SSIM, 2 = persistence). ``--scales`` adds a grid of
motion scales S (``--motion-scale``; 1 = as predicted), each with every D. Choose on
validation sequences, never on the test collection you report::

    python benchmarks/anchor_decay.py --checkpoint runs/shipped/encoder/000-gan_lstm/best.pt \\
        --data runs/shipped/data/train --split val --context 10 --horizon 20
    python benchmarks/anchor_decay.py --checkpoint checkpoints/gan_lstm_32.pt \\
        --data runs/shipped/benchmark/data/test --context 20 --horizon 30 --decays 0,0.5   # then report on test

``--split val`` keeps the validation sequences the checkpoint records (``extra["split"]``, as
``evaluate --split test`` uses its test sequences); ``all`` scores every sequence of ``--data``.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from ganlstm.checkpoint import load_checkpoint
from ganlstm.evaluation import evaluate_models, read_common_frames, trivial_baselines
from ganlstm.pipeline import anchor_score
from ganlstm.train.forecaster import load_forecaster

HORIZONS = (1, 2, 3, 5, 10, 20, 30)


def validation_names(ckpt: dict) -> set[str]:
    names = ckpt.get("extra", {}).get("split", {}).get("val")
    if not names:
        raise SystemExit(f"{ckpt['path']} records no validation sequences; use --split all with data the model never saw.")
    return set(names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True, help="a GAN-LSTM checkpoint or run directory")
    parser.add_argument("--data", type=Path, required=True, help="the collection to score on")
    parser.add_argument("--split", choices=("val", "all"), default="all")
    parser.add_argument("--context", type=int, default=10)
    parser.add_argument("--horizon", type=int, default=20)
    parser.add_argument("--decays", default="0,0.3,0.4,0.5,0.6,0.7,0.8", help="comma-separated grid of D in [0, 1]")
    parser.add_argument("--scales", default="1", help="comma-separated grid of motion scales S in [0, 1] (1 = as predicted)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, help="also write the per-horizon results as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    ckpt = load_checkpoint(args.checkpoint, kind="forecaster")  # read once; one model per decay from it
    grid = [(float(d), float(sc)) for sc in args.scales.split(",") for d in args.decays.split(",")]
    models = {(f"D={d:g}" if sc == 1 else f"D={d:g},S={sc:g}"): load_forecaster(ckpt, "cpu", anchor_decay=d, motion_scale=sc)[0]
              for d, sc in grid}
    sequences, _ = read_common_frames(args.data, models, [ckpt], None)
    if args.split == "val":
        names = validation_names(ckpt)
        sequences = [(n, s) for n, s in sequences if n in names]
    models.update(trivial_baselines())
    result = evaluate_models(models, [s for _, s in sequences], args.context, args.horizon, device="cpu", progress=True)

    hs = [h for h in HORIZONS if h <= args.horizon]
    print(f"{len(sequences)} sequences, {result.windows} windows, j={args.context} k={args.horizon}")
    for metric in ("mse", "ssim", "sharpness"):
        print(f"\n{metric:10s}" + "".join(f"{'k' + str(h):>8s}" for h in hs) + f"{'mean':>8s}")
        for name in models:
            row = result.per_horizon[name][metric]
            print(f"{name:10s}" + "".join(f"{row[h - 1]:8.3f}" for h in hs) + f"{result.mean[name][metric]:8.3f}")
    print("\nfit's score (relative MSE + relative 1-SSIM, 2 = persistence): "
          + ", ".join(f"{n}: {anchor_score(result, n):.3f}" for n in models if n.startswith("D=")))
    best = min((n for n in models if n.startswith("D=")), key=lambda n: result.mean[n]["mse"])
    off = f"; off: {result.mean['D=0']['mse']:.3f}" if "D=0" in models else ""
    print(f"lowest mean MSE: {best} ({result.mean[best]['mse']:.3f}{off})")
    if args.out:
        args.out.write_text(json.dumps(result.to_dict(), indent=2) + "\n")


if __name__ == "__main__":
    main()
