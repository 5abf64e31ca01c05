"""The shipped GAN-LSTM's forecasts on the Gini–M20 plane, and the astronomer's errors, beside persistence.

Simulates held-out mergers (seed 12345: training used seed 1, the benchmark's test split seed 2),
observes the first 20 frames of each and predicts the next 30 with the shipped checkpoint
(:meth:`ganlstm.Predictor.from_checkpoint`), then

* writes ``docs/demo/gini_m20.png``: truth vs prediction at horizons 10 and 30
  (:func:`ganlstm.morphology_plot.plot_gini_m20`);
* prints the mean errors of :class:`ganlstm.astro_scores.AstroAccumulator` for the GAN-LSTM and
  for persistence (the last observed frame repeated), the floor any forecaster must beat.

Usage (about 15 s on one CPU core)::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/gini_m20_plot.py
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from ganlstm import Predictor
from ganlstm.astro_scores import ASTRO_METRICS, AstroAccumulator
from ganlstm.data.simulate import simulate_arrays
from ganlstm.morphology import morphology
from ganlstm.morphology_plot import plot_gini_m20

ROOT = Path(__file__).resolve().parent.parent
CONTEXT, HORIZON = 20, 30
PLOTTED = (10, 30)  # horizons drawn, 1-based


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sequences", type=int, default=12)
    ap.add_argument("--seed", type=int, default=12345)
    ap.add_argument("--checkpoint", type=Path, help="a GAN-LSTM checkpoint (default: the shipped one, 64 px)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "demo" / "gini_m20.png")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    predictor = Predictor.from_checkpoint(args.checkpoint, device="cpu")
    args.size = predictor.image_size  # the frames are simulated at the size the checkpoint reads

    t0 = time.perf_counter()
    seqs, _ = simulate_arrays(args.sequences, CONTEXT + HORIZON, args.size, args.seed)
    frames = np.stack(seqs)  # (B, T, 1, S, S)
    truth = frames[:, CONTEXT:]  # (B, K, 1, S, S)
    pred = predictor.predict(frames[:, :CONTEXT], HORIZON)  # (B, K, 1, S, S)
    persistence = np.repeat(frames[:, CONTEXT - 1 : CONTEXT], HORIZON, axis=1)  # (B, K, 1, S, S)
    t_pred = time.perf_counter() - t0

    t1 = time.perf_counter()
    scores = {}
    for name, forecast in (("gan_lstm", pred), ("persistence", persistence)):
        acc = AstroAccumulator()
        acc.update(forecast, truth)
        scores[name] = (acc.per_horizon(), acc.summary())
    t_score = time.perf_counter() - t1

    stats = {k: (morphology(pred[:, k - 1]), morphology(truth[:, k - 1])) for k in PLOTTED}
    plot_gini_m20([stats[k][0] for k in PLOTTED], [stats[k][1] for k in PLOTTED], args.out,
                  titles=[f"horizon {k}" for k in PLOTTED], overwrite=True,
                  title=f"shipped GAN-LSTM, {args.sequences} held-out mergers, {CONTEXT} observed -> {HORIZON} predicted")

    cols = list(ASTRO_METRICS) + ["coalescence_err", "flux_acf_err"]
    print(f"{args.sequences} mergers x {HORIZON} horizons at {args.size} px (seed {args.seed}); "
          f"simulate+predict {t_pred:.1f} s, scoring {t_score:.1f} s for {2 * truth.shape[0] * HORIZON * 2} frames")
    print(f"{'model':<12} {'horizon':>7} " + " ".join(f"{c:>17}" for c in cols))
    for name, (per_h, summary) in scores.items():
        for k in PLOTTED:
            print(f"{name:<12} {k:>7} " + " ".join(f"{per_h[c][k - 1]:>17.4f}" if c in per_h else f"{'':>17}" for c in cols))
        print(f"{name:<12} {'mean':>7} " + " ".join(f"{summary[c]:>17.4f}" for c in cols))
    n = scores["gan_lstm"][1]["coalescence_count"]
    print(f"coalescence_err averages the {n:.0f} mergers whose true nuclei coalesce inside the predicted window.")
    merger_true = np.mean([stats[k][1]["merger"].mean() for k in PLOTTED])
    size = args.out.stat().st_size
    print(f"wrote {args.out} ({size / 1024:.0f} KB); plotted true frames above the Lotz line: {merger_true:.0%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
