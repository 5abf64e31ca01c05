"""Does a refined reading of the last observed frame help a GAN-LSTM's first predicted frames? Prediction only.

The encoder reads the last frame ``x_J`` in one pass, ``z_J``; a few Adam steps of GAN inversion
from it (:func:`ganlstm.projection.refine`) give ``z_ref``, which G draws much closer to ``x_J``
(on simulator frames at 64 px: MSE 6.4 -> 1.9, ``benchmarks/reader_quality.py``). This script keeps
the model's trajectory ``z_k`` exactly as it is and draws the k-th frame from ``z_k + rho**(k-1) *
(z_ref - z_J)``, so the refinement's detail fades out along the horizon (rho = 0: the model as it
is). Beside it, ``rho 0.7 + pixel residual``: the same offset plus half of what G still misses of
``x_J``, halving each frame (the residual anchoring of ``--anchor-decay`` on the refined reading).
Windows: the first ``--context`` + ``--horizon`` frames of each sequence; the recorded context
check is off (on the simulator it changes no window)::

    python benchmarks/refine_offset.py --checkpoint checkpoints/gan_lstm.pt --data bench/val64_11
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from ganlstm.evaluation import read_common_frames
from ganlstm.metrics import MetricAccumulator
from ganlstm.pixel_range import to_model_range, to_unit_range
from ganlstm.projection import refine
from ganlstm.rollout import add_anchor, render_all, rollout_outputs
from ganlstm.train.forecaster import load_forecaster

HORIZONS = (1, 2, 3, 5, 10, 20, 30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", type=Path, required=True, help="a GAN-LSTM checkpoint")
    ap.add_argument("--data", type=Path, required=True, help="held-out sequences (never the collection you report)")
    ap.add_argument("--context", type=int, default=20)
    ap.add_argument("--horizon", type=int, default=30)
    ap.add_argument("--refine-steps", type=int, default=50)
    ap.add_argument("--rhos", default="0,0.5,0.7,0.9", help="comma-separated fades of the offset (0 = off)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, help="also write the per-horizon results as JSON here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    model, ckpt = load_forecaster(args.checkpoint, "cpu", context_check=False)
    if model.cfg.model != "gan_lstm":
        raise SystemExit(f"{args.checkpoint} is a {model.cfg.model} checkpoint; the refinement belongs to gan_lstm.")
    j, k = args.context, args.horizon
    sequences, _ = read_common_frames(args.data, {"m": model}, [ckpt], None)
    sequences = [s for _, s in sequences if len(s) >= j + k]
    if not sequences:
        raise SystemExit(f"no sequence of {args.data} has {j + k} frames; lower --context or --horizon.")
    frames = torch.from_numpy(np.stack([s[: j + k] for s in sequences])).float()  # (N, J+K, C, H, W) in [0, 1]
    rhos = [float(r) for r in args.rhos.split(",")]
    names = [f"rho {r:g}" for r in rhos] + ["rho 0.7 + pixel residual"]
    accs = {n: MetricAccumulator() for n in names}
    fade = torch.arange(k, dtype=torch.float32).view(1, k, 1)  # (1, K, 1): k - 1
    started = time.perf_counter()
    for b in range(0, len(frames), args.batch):
        context, future = frames[b : b + args.batch, :j], frames[b : b + args.batch, j:]  # (n, J, ...), (n, K, ...)
        x = to_model_range(context)
        with torch.inference_mode():
            z = rollout_outputs(model, x, k)  # (n, K, nz): the model's trajectory, untouched
            z_read = model.encode(x[:, -1])  # (n, nz)
        offset = (refine(model.generator, context[:, -1], z_read, args.refine_steps) - z_read)[:, None]  # (n, 1, nz)
        with torch.inference_mode():
            for r, name in zip(rhos, names):
                weight = r**fade if r > 0 else torch.zeros_like(fade)
                accs[name].update(to_unit_range(render_all(model, z + weight * offset)).clamp(0, 1), future)
            residual = x[:, -1] - model.render(z_read + offset[:, 0])  # (n, C, H, W): what G misses of x_J
            drawn = add_anchor(render_all(model, z + 0.7**fade * offset), residual, 0.5)  # (n, K, C, H, W)
            accs[names[-1]].update(to_unit_range(drawn).clamp(0, 1), future)
    print(f"{args.data}: {len(frames)} windows, j={j} k={k}, {args.refine_steps} refinement steps, "
          f"{time.perf_counter() - started:.0f} s")
    hs = [h for h in HORIZONS if h <= k]
    result = {}
    for metric in ("mse", "ssim", "sharpness"):
        print(f"\n{metric:26s}" + "".join(f"{'k' + str(h):>8s}" for h in hs) + f"{'mean':>8s}")
        for name, acc in accs.items():
            row, mean = acc.per_horizon()[metric], acc.summary()[metric]
            print(f"{name:26s}" + "".join(f"{float(row[h - 1]):8.3f}" for h in hs) + f"{mean:8.3f}")
            result.setdefault(name, {})[metric] = [float(v) for v in row]
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
