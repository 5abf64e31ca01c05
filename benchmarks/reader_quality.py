"""How faithfully does a GAN-LSTM checkpoint read the frames it is given? The horizon-0 ceiling.

Every GAN-LSTM forecast starts from ``read(E(x))``, the encoder's latent for the last observed
frame (and, scored beside it, that reading refined by ``--refine-steps`` inversion steps), so ``G(read(E(x)))`` against ``x`` bounds what the model can do one step ahead. This
script scores that reading (SSIM as scikit-image computes it, MSE summed per frame, sharpness) on frames
spread evenly over a collection, next to the generator's optimised projection (the best any
reader could do, :func:`ganlstm.projection.projection_quality`) and, for scale, persistence one
step ahead on the same frames. ``generator_samples_sharpness`` compares the mean gradient of 512
random samples G(z), z ~ N(0, I), with the frames': whether blur comes from G or from fitting it.

Usage (the numbers in docs/benchmarks.md)::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/reader_quality.py --checkpoint checkpoints/gan_lstm_32.pt \\
        --data runs/shipped/benchmark/data/test --frames 64
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from ganlstm.data.frames import read_collection
from ganlstm.metrics import MetricAccumulator, gradient_magnitude
from ganlstm.pixel_range import to_model_range, to_unit_range
from ganlstm.projection import projection_quality, refine
from ganlstm.train.forecaster import frame_options_of, load_forecaster


def spread_pairs(sequences: list[np.ndarray], n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` (frame, next frame) pairs evenly spread over the sequences: two (n, C, H, W) arrays."""
    pairs = [(s[t], s[t + 1]) for s in sequences for t in range(len(s) - 1)]
    idx = np.unique(np.linspace(0, len(pairs) - 1, min(n, len(pairs))).round().astype(int))
    return np.stack([pairs[i][0] for i in idx]), np.stack([pairs[i][1] for i in idx])


def score(pred: torch.Tensor, truth: torch.Tensor) -> dict[str, float]:
    acc = MetricAccumulator()
    acc.update(pred[:, None], truth[:, None])  # one "horizon"
    mean = acc.summary()
    return {"ssim": mean["ssim"], "mse": mean["mse"], "sharpness": mean["sharpness"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", required=True, help="a train-encoder checkpoint (gan_lstm)")
    ap.add_argument("--data", required=True, help="a collection of sequences (e.g. the benchmark's test collection)")
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--steps", type=int, default=200, help="Adam steps of the optimised projection")
    ap.add_argument("--restarts", type=int, default=4)
    ap.add_argument("--refine-steps", type=int, default=50, help="inversion steps from the encoder's reading")
    args = ap.parse_args()

    model, ckpt = load_forecaster(args.checkpoint, "cpu")
    if model.cfg.model != "gan_lstm":
        raise SystemExit(f"{args.checkpoint} is a {model.cfg.model} checkpoint; the reader belongs to gan_lstm.")
    sequences = [s for _, s in read_collection(args.data, frame_options_of(ckpt))]
    now, nxt = (torch.from_numpy(a) for a in spread_pairs(sequences, args.frames))
    with torch.no_grad():
        z = model.encode(to_model_range(now))  # (n, nz)
        reading = to_unit_range(model.render(z)).clamp(0, 1)
    refine_steps = args.refine_steps
    refined = to_unit_range(model.render(refine(model.generator, now, z, refine_steps))).clamp(0, 1)
    projection = projection_quality(model.generator, now.numpy(), steps=args.steps, restarts=args.restarts, seed=0)
    with torch.no_grad():  # is G blurry by itself? Its random samples' gradient energy against the frames'
        samples = to_unit_range(model.render(torch.randn(512, z.shape[1], generator=torch.Generator().manual_seed(0)))).clamp(0, 1)
    sample_sharpness = float(gradient_magnitude(samples).mean() / gradient_magnitude(now).mean())
    result = {
        "frames": len(now),
        "reader": score(reading, now),
        f"reader_refined_{refine_steps}_steps": score(refined, now),
        "projection": {"ssim": projection["ssim"], "mse": projection["mse"]},
        "persistence_next_frame": score(now, nxt),
        "generator_samples_sharpness": sample_sharpness,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
