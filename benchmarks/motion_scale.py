"""The motion scale on finished ``ganlstm fit`` runs: chosen on validation, scored on the test windows.

For each fit directory this re-runs fit's choice (:func:`ganlstm.pipeline.choose_anchor`) on a copy
of its GAN-LSTM checkpoint twice: once over the anchor decays alone (the motion scale fixed at 1,
what fit did before the scale existed) and once over decays x scales (what fit does now). Both
choices, persistence and the ConvLSTM are then scored on the run's test windows (stride 1), the
numbers fit's report gives. Nothing in the fit directories is changed.

    python benchmarks/motion_scale.py bench/own/gif-seed0 bench/own/gif-seed1 ... --out bench/motion_scale.json
    python benchmarks/motion_scale.py --summary bench/motion_scale.json
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from ganlstm.config import FitConfig
from ganlstm.device import torch_threads
from ganlstm.evaluation import evaluate_models, trivial_baselines
from ganlstm.pipeline import choose_anchor
from ganlstm.report import held_out
from ganlstm.train.forecaster import load_forecaster


def fit_config(run: Path) -> FitConfig:
    settings = json.loads((run / "fit.json").read_text())["settings"]
    known = {f.name for f in dataclasses.fields(FitConfig)}
    return FitConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in settings.items() if k in known})


def best(stage_dir: Path) -> Path:
    return stage_dir / "best.pt" if (stage_dir / "best.pt").exists() else stage_dir / "last.pt"


def score_run(run: Path) -> dict:
    cfg = fit_config(run)
    state = json.loads((run / "fit.json").read_text())
    lstm, conv = (best(run / "stages" / Path(state["runs"][stage]).name) for stage in ("gan_lstm", "convlstm"))
    row = {"run": str(run), "context": cfg.context, "horizon": cfg.horizon}
    with tempfile.TemporaryDirectory() as tmp:
        chosen = {}
        for name, scales in (("decay only", (1.0,)), ("decay x scale", cfg.motion_scales)):
            copy = Path(tmp) / f"{len(chosen)}.pt"
            shutil.copy(lstm, copy)
            decay, scale, scores = choose_anchor(copy, dataclasses.replace(cfg, motion_scales=scales))
            chosen[name] = (copy, decay, scale, min(scores.values()))
        ckpt = load_forecaster(chosen["decay only"][0], "cpu")[1]
        test = [s for _, s in held_out(ckpt, "test")]
        models = {"persistence": trivial_baselines()["persistence"], "convlstm": load_forecaster(conv, "cpu")[0]}
        models.update({name: load_forecaster(c[0], "cpu")[0] for name, c in chosen.items()})
        result = evaluate_models(models, test, cfg.context, cfg.horizon, device="cpu", stride=1, scores=())
    p = result.per_horizon["persistence"]
    for name in models:
        ph = result.per_horizon[name]
        row[name] = {"mse": ph["mse"], "ssim": ph["ssim"], "mean_mse": float(np.mean(ph["mse"])), "mean_ssim": float(np.mean(ph["ssim"])),
                     "horizons_beating_persistence_mse": int(sum(a < b for a, b in zip(ph["mse"], p["mse"]))),
                     "horizons_beating_persistence_ssim": int(sum(a > b for a, b in zip(ph["ssim"], p["ssim"])))}
        if name in chosen:
            row[name].update(decay=chosen[name][1], scale=chosen[name][2], val_score=chosen[name][3])
    return row


def summary(rows: list[dict]) -> str:
    lines = ["| run | choice | decay | scale | val score | test mean MSE | test mean SSIM | horizons beating persistence (MSE / SSIM) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        k = r["horizon"]
        for name in ("decay only", "decay x scale", "convlstm", "persistence"):
            m = r[name]
            chosen = [f"{m['decay']:g}", f"{m['scale']:g}", f"{m['val_score']:.3f}"] if "val_score" in m else ["", "", ""]
            lines.append("| " + " | ".join([Path(r["run"]).name, name, *chosen, f"{m['mean_mse']:.4g}", f"{m['mean_ssim']:.4f}",
                                            f"{m['horizons_beating_persistence_mse']} / {m['horizons_beating_persistence_ssim']} of {k}"]) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="*", type=Path, help="finished `ganlstm fit` output directories")
    ap.add_argument("--out", type=Path, help="write the rows as JSON here")
    ap.add_argument("--summary", type=Path, help="only print the table of a JSON written by --out")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    if args.summary:
        print(summary(json.loads(args.summary.read_text())))
        return
    if not args.runs:
        sys.exit("pass at least one fit directory")
    rows = []
    with torch_threads(args.threads):
        for run in args.runs:
            rows.append(score_run(run))
            if args.out:
                args.out.write_text(json.dumps(rows, indent=1))
    print(summary(rows))


if __name__ == "__main__":
    main()
