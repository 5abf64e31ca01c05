"""The report ``ganlstm fit`` ends with: where the GAN-LSTM wins, where it loses, and why one should believe it.

:func:`write_report` scores the prior (projection SSIM of held-out frames, and the one-pass
reading of stage one's encoder), then every model plus persistence and linear on the same
held-out windows, and writes into ``<out>/report/``:

* ``table.txt`` and ``report.md``: the per-horizon table, the budget split, the warnings;
* ``metrics.csv``, ``metrics.json``, ``metrics.png`` (see :func:`ganlstm.results.write_metrics`);
* ``comparison.gif``: truth | GAN-LSTM | ConvLSTM | persistence on held-out windows;
* ``report.json``: every number above, for scripts (``benchmarks/own_data.py`` reads it).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch

from .checkpoint import atomic_write_bytes, load_checkpoint
from .config import FitConfig

GIF_WINDOWS = 3  # held-out windows shown in comparison.gif
PROJECTION = {"frames": 32, "steps": 100, "restarts": 2}  # a cheaper evaluate-gan than its defaults; same method


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def held_out(checkpoint: Path | dict, part: str = "test"):
    """The (name, (T, C, H, W)) sequences of ``part`` that a forecaster checkpoint's run held out (a path or a loaded checkpoint)."""
    from .data.frames import read_collection
    from .data.windows import split_collection
    from .train.forecaster import frame_options_of, saved_configs

    ckpt = checkpoint if isinstance(checkpoint, dict) else load_checkpoint(checkpoint, kind="forecaster")
    cfg, run = saved_configs(ckpt)
    sequences = read_collection(cfg.data_path, frame_options_of(ckpt))
    return split_collection(sequences, cfg.val_fraction, cfg.test_fraction, run.resolved_split_seed, time_split=cfg.time_split)[part]


def prior_quality(gan_ckpt: Path) -> dict[str, float]:
    """Projection SSIM/MSE of the test frames through the prior, and its encoder's one-pass reading when it has one."""
    from .train.gan_evaluation import evaluate_gan

    q = evaluate_gan(gan_ckpt, device="cpu", **PROJECTION)
    out = {"projection_ssim": q["ssim"], "projection_mse": q["mse"], "projection_sharpness": q["sharpness"]}
    if "reader_ssim" in q:
        out.update(encoder_ssim=q["reader_ssim"], encoder_mse=q["reader_mse"])
    return out


def write_report(out: Path, cfg: FitConfig, state: dict, gan_ckpt: Path, lstm_ckpt: Path, conv_ckpt: Path) -> dict[str, Any]:
    """Score everything on the held-out windows and write ``out/report/``; returns report.json's content."""
    from .evaluation import evaluate_models, persistence_warnings, trivial_baselines
    from .results import format_astro_table, format_table, write_metrics
    from .train.forecaster import load_forecaster
    from .train.gan_health import read_health

    report_dir = out / "report"
    report_dir.mkdir(parents=True, exist_ok=True)
    _say("report: scoring the prior and every model on the held-out frames")
    prior = prior_quality(gan_ckpt)
    test = held_out(lstm_ckpt)
    models = {**trivial_baselines(), "gan_lstm": load_forecaster(lstm_ckpt, "cpu")[0], "convlstm": load_forecaster(conv_ckpt, "cpu")[0]}
    result = evaluate_models(models, [s for _, s in test], cfg.context, cfg.horizon, device="cpu", stride=1,
                             scores=("diversity", "morphology") if cfg.morphology else ("diversity",))
    result.info = {"data": cfg.data, "split": "test", "sequence_names": [n for n, _ in test],
                   "checkpoints": {"gan": str(gan_ckpt), "gan_lstm": str(lstm_ckpt), "convlstm": str(conv_ckpt)}}
    paths = write_metrics(result, report_dir, overwrite=True, title=f"{Path(cfg.data).name}: held-out windows")
    table = format_table(result) + ("\n\n" + format_astro_table(result) if cfg.morphology else "")
    atomic_write_bytes(report_dir / "table.txt", (table + "\n").encode())
    gif = _comparison(models, test, cfg, report_dir / "comparison.gif")
    health = read_health(Path(gan_ckpt).parent)
    warnings = [f"warning: stage one recorded {len(health)} diagnosis(es) in {Path(gan_ckpt).parent / 'health.txt'}; the last: {health[-1]}"] if health else []
    warnings += persistence_warnings(result)
    facts = {"data": cfg.data, "prior": prior, "anchor": state.get("anchor"), "spread": state.get("spread"), "budget_minutes": state["budget_minutes"],
             "steps": state["steps"], "seconds": state["seconds"], "data_plan": state.get("data_plan"),
             "per_horizon": result.per_horizon, "mean": result.mean, "windows": result.windows, "warnings": warnings,
             "files": {k: str(v) for k, v in {**paths, "comparison.gif": gif, "table.txt": report_dir / "table.txt"}.items()}}
    atomic_write_bytes(report_dir / "report.json", (json.dumps(facts, indent=2) + "\n").encode())
    atomic_write_bytes(report_dir / "report.md", _markdown(facts, table).encode())
    return facts


def _comparison(models, test, cfg: FitConfig, path: Path) -> Path:
    from .data.windows import WindowDataset
    from .demo import comparison_frames, save_comparison_gif
    from .rollout import predict

    windows = WindowDataset([s for _, s in test], cfg.context, cfg.horizon, cfg.horizon)
    idx = sorted({round(i * (len(windows) - 1) / max(GIF_WINDOWS - 1, 1)) for i in range(min(GIF_WINDOWS, len(windows)))})
    context, truth = (torch.stack(x) for x in zip(*(windows[i] for i in idx)))  # (N, J, C, H, W), (N, K, C, H, W)
    shown = {name: models[name] for name in ("gan_lstm", "convlstm", "persistence")}
    preds = {name: predict(m, context, cfg.horizon) for name, m in shown.items()}
    return save_comparison_gif(comparison_frames(context, truth, preds), path)


def _markdown(facts: dict, table: str) -> str:
    prior, plan = facts["prior"], facts["data_plan"] or {}
    lines = [f"# ganlstm fit: {facts['data']}", ""]
    split = "one movie, split in time (train on its start, test on its continuation)" if plan.get("time_split") else \
        f"{plan.get('sequences')} sequences, split by sequence"
    lines += [f"- data: {split}; {plan.get('frames')} frames; stored as {'x'.join(map(str, plan.get('native_chw', [])))}, "
              f"read as {plan.get('channels')} channel(s)", *[f"- note: {n}" for n in plan.get("notes", [])]]
    lines += ["- budget (minutes): " + ", ".join(f"{k} {v:g}" for k, v in facts["budget_minutes"].items())
              + "; steps: " + ", ".join(f"{k} {v}" for k, v in facts["steps"].items())
              + "; seconds spent: " + ", ".join(f"{k} {v:g}" for k, v in facts["seconds"].items())]
    lines += [f"- prior: projection SSIM {prior['projection_ssim']:.3f} on held-out frames"
              + (f"; its encoder's one-pass reading SSIM {prior['encoder_ssim']:.3f}" if "encoder_ssim" in prior else "")]
    if facts.get("anchor"):
        a = facts["anchor"]
        best = sorted(a["val_score"].items(), key=lambda kv: kv[1])[:5]
        lines += [f"- residual anchoring decay {a['decay']:g} and motion scale {a.get('motion_scale', 1.0):g} (1 = the predicted latent "
                  f"change as drawn, 0 = none), chosen together on validation (relative MSE + relative 1-SSIM against "
                  f"persistence, 2 = persistence; the best decay/scale pairs: " + ", ".join(f"{k}: {v:.3f}" for k, v in best) + ")"]
        if a.get("motion_scale", 1.0) == 0:
            lines += ["- **the GAN-LSTM's motion did not help on validation**, so it draws the last frame's reading at every "
                      "horizon: train longer (`--budget`) or on more frames"]
    if facts.get("spread") and facts["spread"].get("val"):
        from .calibration import CALIBRATED_BAND

        rows, (lo, hi) = facts["spread"]["val"], CALIBRATED_BAND
        how = (f"the sharpest whose validation spread-skill lies in [{lo:g}, {hi:g}]" if any(lo <= r["spread_skill"] <= hi for r in rows)
               else f"no spread reached a validation spread-skill in [{lo:g}, {hi:g}], so the one nearest 1")
        lines += [f"- ensembles (`predict --samples N`): latent spread {facts['spread']['spread']:g}, {how} (spread: spread-skill / CRPS: "
                  + ", ".join(f"{r['spread']:g}: {r['spread_skill']:.2f} / {r['crps']:.4f}" for r in rows) + ")"]
    lines += ["", "```", table, "```", "", "![comparison](comparison.gif)", "", "![metrics](metrics.png)", ""]
    lines += facts["warnings"] or ["No warnings: the GAN-LSTM beats copy-last-frame in MSE and SSIM at every horizon here."]
    return "\n".join(lines) + "\n"
