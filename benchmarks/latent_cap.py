"""Does capping the RMS of predicted latents help a GAN-LSTM checkpoint? Validation rollouts per cap.

Closed-loop GAN-LSTM rollouts can drift out of the region of latent space the generator was
trained on (N(0, I), RMS ~1), where it draws grid artefacts. ``ForecasterConfig.latent_cap``
scales every predicted latent back to a maximum RMS. This script takes one trained checkpoint,
sets the cap to each value given (the weights stay the same), and rolls out the validation
windows of the checkpoint's own split, printing the mean MSE/SSIM and those at horizons 1 and K,
plus the RMS of the predicted latents at horizon K. It uses only the validation sequences,
so it can choose a cap without touching any test data.

Usage (the numbers in docs/benchmarks.md)::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/latent_cap.py --checkpoint runs/001-gan_lstm/best.pt --caps 0,1.2,1.0,0.9
"""
from __future__ import annotations

import argparse

import torch

from ganlstm.data.frames import read_collection
from ganlstm.metrics import MetricAccumulator
from ganlstm.pixel_range import to_model_range
from ganlstm.rollout import predict, rollout_outputs
from ganlstm.train.forecast_data import spread_windows
from ganlstm.train.forecaster import frame_options_of, load_forecaster, saved_configs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", required=True, help="a train-encoder checkpoint (gan_lstm)")
    ap.add_argument("--caps", default="0,1.2,1.0,0.9", help="comma-separated RMS caps; 0 = no cap")
    ap.add_argument("--windows", type=int, default=32, help="validation windows, evenly spread")
    args = ap.parse_args()

    model, ckpt = load_forecaster(args.checkpoint, "cpu")
    if model.cfg.model != "gan_lstm":
        raise SystemExit(f"{args.checkpoint} is a {model.cfg.model} checkpoint; the cap belongs to gan_lstm.")
    train, _ = saved_configs(ckpt)
    val_names = set(ckpt["extra"]["split"]["val"])
    sequences = [s for name, s in read_collection(train.data_path, frame_options_of(ckpt)) if name in val_names]
    context, target = spread_windows(sequences, train.context, train.horizon, args.windows)
    k = target.shape[1]
    print(f"{len(context)} validation windows, {train.context} -> {k} frames; checkpoint trained with cap {model.cfg.latent_cap}")
    print(f"{'cap':>5} {'MSE':>7} {'SSIM':>6} {'MSE h1':>7} {'SSIM h1':>7} {f'MSE h{k}':>8} {f'SSIM h{k}':>8} {f'RMS z h{k}':>9}")
    for cap in (float(c) for c in args.caps.split(",")):
        model.latent_cap = cap
        acc = MetricAccumulator()
        with torch.no_grad():
            acc.update(predict(model, context, k), target)
            z = rollout_outputs(model, to_model_range(context), k)  # (N, K, nz)
        ph, mean = acc.per_horizon(), acc.summary()
        rms = z[:, -1].pow(2).mean(-1).sqrt().mean().item()
        print(f"{cap:5.2f} {mean['mse']:7.2f} {mean['ssim']:6.3f} {ph['mse'][0]:7.2f} {ph['ssim'][0]:7.3f} "
              f"{ph['mse'][-1]:8.2f} {ph['ssim'][-1]:8.3f} {rms:9.2f}")


if __name__ == "__main__":
    main()
