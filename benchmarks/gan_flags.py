"""Which small-data stabilisers help stage one? Projection quality of the DCGAN prior per flag combination.

Trains one generator per combination of the ``train-gan`` stabiliser flags for the same
number of steps on the same simulated mergers (same seed, same data order), then measures
each EMA decoder with :func:`ganlstm.train.gan_evaluation.evaluate_gan` on the test sequences, which
no run trains on or selects on. Projection SSIM is the ceiling of any stage-two forecast, so
it is the number to compare; the histogram distance says whether the sky level and
brightness of generated frames match the data.

Usage (the numbers in docs/benchmarks.md)::

    ganlstm simulate --out outputs/gan/merger40x50 --sequences 40 --frames 50 --size 64 --seed 0
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/gan_flags.py --data outputs/gan/merger40x50 --steps 600 --out outputs/gan_flags

Equal step budgets (not equal time) keep the comparison fair on a shared, busy CPU; wall
time is reported for information only.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

from ganlstm.config import FrameOptions, GanConfig, GanTrainConfig, RunConfig
from ganlstm.train.gan import train_gan
from ganlstm.train.gan_evaluation import evaluate_gan

# name -> (GanConfig overrides, GanTrainConfig overrides)
COMBOS: dict[str, tuple[dict, dict]] = {
    "dcgan (BN-D, ns)": (dict(spectral_norm=False), dict(loss="ns", diffaug="", ema=0.0)),
    "dcgan + ema": (dict(spectral_norm=False), dict(loss="ns", diffaug="", ema=0.999)),
    "dcgan + diffaug + ema": (dict(spectral_norm=False), dict(loss="ns", diffaug="translation,cutout,brightness", ema=0.999)),
    "dcgan + hinge + diffaug + ema": (dict(spectral_norm=False), dict(loss="hinge", diffaug="translation,cutout,brightness", ema=0.999)),
    "sn + hinge": ({}, dict(loss="hinge", diffaug="", ema=0.0)),
    "sn + hinge + ema": ({}, dict(loss="hinge", diffaug="", ema=0.999)),
    "sn + hinge + diffaug": ({}, dict(loss="hinge", diffaug="translation,cutout,brightness", ema=0.0)),
    "sn + hinge + diffaug + ema": ({}, dict(loss="hinge", diffaug="translation,cutout,brightness", ema=0.999)),
    "sn + ns + diffaug + ema": ({}, dict(loss="ns", diffaug="translation,cutout,brightness", ema=0.999)),
    "sn + hinge + diffaug + ema + r1": ({}, dict(loss="hinge", diffaug="translation,cutout,brightness", ema=0.999, r1=1.0)),
}


def simulated_data(out: Path, sequences: int, frames: int, seed: int) -> Path:
    """Write (once) ``sequences`` simulated mergers of ``frames`` frames at 64 px as .npy; train-gan resizes them."""
    import numpy as np

    from ganlstm.data.simulate import simulate_arrays

    data = out / f"merger_{sequences}x{frames}_seed{seed}"
    if not data.exists():
        arrays, _ = simulate_arrays(sequences, frames, 64, seed)
        data.mkdir(parents=True)
        for i, a in enumerate(arrays):
            np.save(data / f"seq_{i:04d}.npy", a)  # (T, 1, 64, 64) in [0, 1]
    return data


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, help="Frames to train on (default: simulate --sequences x --frames mergers).")
    p.add_argument("--sequences", type=int, default=40)
    p.add_argument("--frames", type=int, default=50)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--ngf", type=int, default=32, help="G and D base width (32 keeps a CPU run short).")
    p.add_argument("--steps", type=int, default=600, help="Training steps per combination.")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--eval-frames", type=int, default=32)
    p.add_argument("--eval-steps", type=int, default=150)
    p.add_argument("--eval-restarts", type=int, default=3)
    p.add_argument("--only", nargs="*", help="Run only these combination names.")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, default=Path("outputs/gan_flags"))
    args = p.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    data = args.data or simulated_data(args.out, args.sequences, args.frames, args.seed)
    results_path = args.out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    for name, (model_kw, train_kw) in COMBOS.items():
        if args.only and name not in args.only:
            continue
        model = dataclasses.replace(GanConfig(image_size=args.size, ngf=args.ngf, ndf=args.ngf), **model_kw)
        cfg = GanTrainConfig(model=model, data=FrameOptions(size=args.size), data_path=str(data), **train_kw)
        run = RunConfig(out=str(args.out / "runs"), max_steps=args.steps, batch_size=args.batch_size, seed=args.seed,
                        device=args.device, progress=False)
        t0 = time.perf_counter()
        run_dir = train_gan(cfg, run)
        train_s = time.perf_counter() - t0
        q = evaluate_gan(run_dir / "last.pt", frames=args.eval_frames, steps=args.eval_steps, restarts=args.eval_restarts,
                         split="test", device=args.device)
        results[name] = {k: q[k] for k in ("ssim", "mse", "mse_pixel", "psnr", "hist_distance", "frames")} | {
            "run": str(run_dir), "steps": args.steps, "train_s": round(train_s, 1)}
        results_path.write_text(json.dumps(results, indent=2) + "\n")  # after each combo: a partial run still reports
        print(f"{name:34s} SSIM {q['ssim']:.4f}  MSE {q['mse']:7.3f}  hist {q['hist_distance']:.4f}  ({train_s:.0f} s)", flush=True)

    print("\n| flags | projection SSIM | MSE (per frame) | histogram distance | train time |")
    print("|---|---|---|---|---|")
    for name, r in sorted(results.items(), key=lambda kv: -kv[1]["ssim"]):
        print(f"| {name} | {r['ssim']:.4f} | {r['mse']:.3f} | {r['hist_distance']:.4f} | {r['train_s']:.0f} s |")


if __name__ == "__main__":
    main()
