"""The context check (``predict --context-check``) against a GAN-LSTM's recorded settings, on any frames.

Scores one GAN-LSTM checkpoint twice on the same windows, with its recorded anchor decay and
motion scale, and with both chosen per sequence on its own context
(:mod:`ganlstm.models.context_check`), next to persistence. Prints the per-horizon MSE, SSIM and
sharpness, the diversity at the last horizon, and how often each (D, S) pair was chosen::

    python benchmarks/context_check.py --checkpoint checkpoints/gan_lstm.pt \\
        --data ../shared/data/galaxy_collision/Galaxy_Collision.gif --context 20 --horizon 30 --stride 10
    python benchmarks/context_check.py --checkpoint checkpoints/gan_lstm.pt --data bench/val64_11 --context 20 --horizon 30
    python benchmarks/context_check.py --checkpoint bench/own/gif-seed0/stages/001-gan_lstm/best.pt \
        --data ../shared/data/galaxy_collision/Galaxy_Collision.gif --split test --context 10 --horizon 10 --stride 1
"""
from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path

import torch

from ganlstm.checkpoint import load_checkpoint
from ganlstm.data.windows import WindowDataset
from ganlstm.evaluation import evaluate_models, read_common_frames, trivial_baselines
from ganlstm.models import context_check
from ganlstm.models.context_check import choose_on_context
from ganlstm.pixel_range import to_model_range
from ganlstm.train.forecaster import load_forecaster

HORIZONS = (1, 2, 5, 10, 20, 30)


@torch.no_grad()
def chosen_pairs(model, sequences, context: int, horizon: int, stride: int) -> collections.Counter:
    windows = WindowDataset(sequences, context, horizon, stride)
    counts: collections.Counter = collections.Counter()
    for i in range(0, len(windows), 16):
        ctx = torch.stack([windows[t][0] for t in range(i, min(i + 16, len(windows)))])  # (b, J, C, H, W) in [0, 1]
        decay, scale, _, _ = choose_on_context(model, to_model_range(ctx), (model.anchor_decay, model.motion_scale))
        counts.update(f"D={d:g},S={s:g}" for d, s in zip(decay.tolist(), scale.tolist()))
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", type=Path, required=True)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--context", type=int, default=20)
    ap.add_argument("--horizon", type=int, default=30)
    ap.add_argument("--stride", type=int, help="frames between window starts (default: --horizon)")
    ap.add_argument("--split", choices=("all", "test"), default="all",
                    help="test: only the sequences (or a movie's continuation) the checkpoint's run held out for testing, as fit's report")
    ap.add_argument("--margin", type=float, default=context_check.MARGIN, help="the check's margin (ganlstm.models.context_check.MARGIN)")
    ap.add_argument("--gif", type=Path, help="also write truth | recorded | context check | copy-last-frame on --gif-windows here")
    ap.add_argument("--gif-windows", default="0,10", help="comma-separated window indices for --gif")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, help="also write the results as JSON here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    context_check.MARGIN = args.margin

    ckpt = load_checkpoint(args.checkpoint, kind="forecaster")
    models = {"recorded": load_forecaster(ckpt, "cpu", context_check=False)[0],
              "context check": load_forecaster(ckpt, "cpu", context_check=True)[0]}
    if args.split == "test":
        from ganlstm.report import held_out

        seqs = [s for _, s in held_out(ckpt, "test")]
    else:
        seqs = [s for _, s in read_common_frames(args.data, models, [ckpt], None)[0]]
    stride = args.stride or args.horizon
    models.update(persistence=trivial_baselines()["persistence"])
    result = evaluate_models(models, seqs, args.context, args.horizon, device="cpu", stride=stride, progress=True)
    counts = chosen_pairs(models["context check"], seqs, args.context, args.horizon, stride)

    hs = [h for h in HORIZONS if h <= args.horizon]
    print(f"{args.data} ({args.split}): {len(seqs)} sequences, {result.windows} windows, j={args.context} k={args.horizon}")
    for metric in ("mse", "ssim", "sharpness", "diversity"):
        rows = {n: result.per_horizon[n].get(metric) for n in models}
        if not all(rows.values()):
            continue
        print(f"\n{metric:14s}" + "".join(f"{'k' + str(h):>9s}" for h in hs) + f"{'mean':>9s}")
        for name, row in rows.items():
            print(f"{name:14s}" + "".join(f"{row[h - 1]:9.4g}" for h in hs) + f"{sum(row) / len(row):9.4g}")
    print("\nchosen per window: " + ", ".join(f"{k}: {v}" for k, v in counts.most_common()))
    if args.out:
        args.out.write_text(json.dumps({"result": result.to_dict(), "chosen": dict(counts)}, indent=1) + "\n")
    if args.gif:
        write_gif(args.gif, models, WindowDataset(seqs, args.context, args.horizon, stride), [int(i) for i in args.gif_windows.split(",")])


def write_gif(path: Path, models: dict, windows: WindowDataset, picked: list[int]) -> None:
    """The comparison GIF of ``ganlstm demo`` for the picked windows: truth | each model (persistence last)."""
    from ganlstm.demo import comparison_frames, save_comparison_gif
    from ganlstm.rollout import predict

    context, truth = (torch.stack(x) for x in zip(*[windows[i] for i in picked]))  # (n, J, C, H, W), (n, K, C, H, W)
    preds = {name: predict(model, context, truth.shape[1]) for name, model in models.items()}
    save_comparison_gif(comparison_frames(context, truth, preds), path)
    print(f"wrote {path} ({path.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
