"""Merger phases from the shipped GAN-LSTM's latents against the simulator's true phases, on three fresh seeds, beside the time-only baseline.

    python benchmarks/phases_demo.py                 # 40 sequences x 50 frames at the checkpoint's size, seeds 101, 202, 303
    python benchmarks/phases_demo.py --sequences 8   # quicker

For each seed it simulates mergers (quantised to 8 bits as ``ganlstm simulate`` writes them, so
the encoder sees the pixels it was trained on), labels every frame as :func:`ganlstm.phases.phases` does
(k = 4, k-means seed 0: the library defaults, not tuned here) and scores the labels against
:func:`ganlstm.phases.true_phases` by the adjusted Rand index over all frames. Beside it:

* time-only: phases by the quartiles of t / (T - 1), which knows nothing of the frames. It is the
  scale: the latent carries phase information only in so far as it beats this;
* smoothed: the latent labels after the width-3 majority filter in time;
* pixels: the same clustering of the frames' pixels instead of their latents (does the encoder help?);
* agreement: the fraction of frames whose predicted phase name is the true one.

It also prints how long each true phase lasts (the mean fraction of frames), and writes
``docs/demo/phases.png``: the strips of the first 8 sequences of the first seed, true phases beneath.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from ganlstm import Predictor
from ganlstm.data.simulate import simulate_arrays
from ganlstm.phase_plot import plot_phase_strips
from ganlstm.phases import PHASES, adjusted_rand_index, encode_sequences, label_phases, time_phases, true_phases

ROOT = Path(__file__).resolve().parents[1]


def score(pred: list[np.ndarray], truth: list[np.ndarray]) -> tuple[float, float]:
    """(ARI, agreement) over all frames of all sequences."""
    p, t = np.concatenate(pred), np.concatenate(truth)
    return adjusted_rand_index(p, t), float(np.mean(p == t))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sequences", type=int, default=40)
    ap.add_argument("--frames", type=int, default=50)
    ap.add_argument("--checkpoint", type=Path, help="a GAN-LSTM checkpoint (default: the shipped one, 64 px)")
    ap.add_argument("--seeds", default="101,202,303")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--figure", type=Path, default=ROOT / "docs" / "demo" / "phases.png")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    predictor = Predictor.from_checkpoint(args.checkpoint, device="cpu")
    args.size = predictor.image_size  # the frames are simulated at the size the checkpoint reads
    rows, figure_done = [], False
    for seed in (int(s) for s in args.seeds.split(",")):
        start = time.perf_counter()
        arrays, params = simulate_arrays(args.sequences, args.frames, args.size, seed)
        seqs = [np.round(a * 255.0) / 255.0 for a in arrays]  # (T, 1, S, S), the 8-bit PNG values
        truth = [true_phases(p, len(a)) for p, a in zip(params, seqs)]
        z = encode_sequences(predictor, seqs)  # each (T, nz)
        raw, names = label_phases(z, k=4, seed=0, smooth=False)
        smooth = label_phases(z, k=4, seed=0, smooth=True)[0]
        pixels = label_phases([a.reshape(len(a), -1) for a in seqs], k=4, seed=0)[0]
        base = [time_phases(len(a), 4) for a in seqs]
        row = dict(seed=seed, latent=score(raw, truth), smoothed=score(smooth, truth), pixels=score(pixels, truth), time=score(base, truth),
                   share=np.bincount(np.concatenate(truth), minlength=4) / sum(map(len, truth)), seconds=time.perf_counter() - start)
        rows.append(row)
        if not figure_done:
            n = min(8, len(seqs))
            plot_phase_strips(raw[:n], names, args.figure, true=truth[:n], titles=[f"seed {seed} #{i}" for i in range(n)],
                              true_names=PHASES, overwrite=True)
            figure_done = True
    print(f"\n{args.sequences} sequences x {args.frames} frames at {args.size} px per seed; shipped GAN-LSTM latents, k = 4")
    print(f"{'seed':>6} | {'ARI latent':>10} {'smoothed':>9} {'pixels':>7} {'time-only':>9} | {'agree latent':>12} {'time-only':>9} | true share of frames "
          f"({', '.join(PHASES)})")
    for r in rows:
        print(f"{r['seed']:>6} | {r['latent'][0]:>10.3f} {r['smoothed'][0]:>9.3f} {r['pixels'][0]:>7.3f} {r['time'][0]:>9.3f} | {r['latent'][1]:>12.3f} "
              f"{r['time'][1]:>9.3f} | {' '.join(f'{s:.2f}' for s in r['share'])}   ({r['seconds']:.0f} s)")
    mean = {key: np.mean([r[key][0] for r in rows]) for key in ("latent", "smoothed", "pixels", "time")}
    agree = {key: np.mean([r[key][1] for r in rows]) for key in ("latent", "time")}
    print(f"{'mean':>6} | {mean['latent']:>10.3f} {mean['smoothed']:>9.3f} {mean['pixels']:>7.3f} {mean['time']:>9.3f} | {agree['latent']:>12.3f} {agree['time']:>9.3f} |")
    print(f"wrote {args.figure} ({args.figure.stat().st_size / 1e3:.0f} KB)")


if __name__ == "__main__":
    main()
