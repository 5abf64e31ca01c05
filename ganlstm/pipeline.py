"""``ganlstm fit``: from a user's frames to a scored GAN-LSTM in one resumable command.

The stages stay the separate commands they are (``train-gan``, ``train-encoder``,
``train-baseline``, ``evaluate``); this module runs them in order on one wall-clock budget:

1. **inspect** the data: a collection is split by sequence; a single movie (GIF, MP4, FITS
   cube, frame folder) is cut in time, training on its start and testing on its continuation.
   Colour is kept when the frames are colour; every change of size or colour is said.
2. **stage one**: the prior, with an encoder beside G (G(E(x)) ~ x) and adaptive
   augmentation, the recipe measured best on small data (docs/benchmarks.md);
3. **stage two**: the GAN-LSTM, its reader starting from stage one's encoder;
4. **baseline**: the pixel ConvLSTM, same windows and losses;
5. **anchor**: residual anchoring's decay and the motion scale chosen on the validation windows (:func:`anchor_score`);
   **spread**: the ensemble spread of ``predict --samples`` calibrated on them (:func:`choose_sample_spread`);
6. **report**: every model, persistence and linear on the held-out windows; a per-horizon
   table, ``metrics.png``, ``comparison.gif``, and plain warnings where the GAN-LSTM loses to
   copy-last-frame or stage one failed.

Budget: each training stage gets a fixed share of ``--budget`` (:data:`BUDGET_SHARES`),
turned into a step count by timing a few steps of that stage (:func:`calibrate`), so a
resumed run trains to the same step counts. ``fit.json`` records the settings, the split of the
budget, the steps and every finished stage; running the same command again resumes.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .checkpoint import atomic_write_bytes
from .config import FitConfig, ForecasterConfig, ForecastTrainConfig, FrameOptions, GanConfig, GanTrainConfig, RunConfig, to_dict
from .errors import GanlstmError

STATE_FILE = "fit.json"
#: Settings that only change what the report scores, so a resumed fit may change them.
REPORT_ONLY = ("morphology",)
BUDGET_SHARES = {"gan": 0.35, "gan_lstm": 0.275, "convlstm": 0.275}  # the rest: calibration, anchor choice, evaluation; the baseline gets stage two's time
VAL_SHARE = 0.10  # of a stage's share kept for its validations
VALIDATIONS = 5  # per training stage
READER_WARMUP_SHARE = 0.2  # of stage two's steps train the reader alone (it starts from stage one's encoder)
PROBE_STEPS = 8
STAGE_ALPHA = 0.8  # stage two's pixel loss: alpha*(1-SSIM) + (1-alpha)*MSE (the shipped recipe)
GDL_WEIGHT = 6.0  # gradient-difference term of the shipped recipe
LATENT_CAP = 1.0
EMA = 0.999
MIN_STEPS = 10
FREEZE_D = 2  # with --init: D's first blocks kept (FreezeD); measured with 2 in benchmarks/stage_one.py


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- inspection


@dataclasses.dataclass
class DataPlan:
    """What fit reads and how it splits it."""

    opts: FrameOptions
    time_split: bool
    sequences: int
    frames: int
    native: tuple[int, int, int]  # (C, H, W) of the first frame as stored
    notes: list[str]


def inspect_data(cfg: FitConfig) -> DataPlan:
    """Read the data once at the working size; decide channels and the kind of split, and say what changes."""
    from .data.frames import is_sequence_path, read_collection
    from .resolution import native_shape

    path = Path(cfg.data)
    first_path = path if not path.is_dir() or is_sequence_path(path) else next(iter(sorted(p for p in path.iterdir() if not p.name.startswith("."))), path)
    opts = FrameOptions(size=cfg.size, channels=3, interval=cfg.interval, scaling=cfg.scaling)
    _, h, w = native_shape(first_path, opts)  # decodes the first frame only
    sequences = read_collection(cfg.data, opts)
    colour = any(float(np.abs(s[:, 0] - s[:, 1]).max()) > 1e-6 or float(np.abs(s[:, 1] - s[:, 2]).max()) > 1e-6 for _, s in sequences)
    channels = cfg.channels or (3 if colour else 1)
    notes = []
    if channels == 1 and colour:
        notes.append("the frames are colour but --channels 1 was asked for: converted to grayscale (ITU-R BT.601 luma)")
    if (h, w) != (cfg.size, cfg.size):
        change = "shrunk" if max(h, w) > cfg.size else "enlarged"
        aspect = "" if h == w else f" (their {w}:{h} aspect ratio is not kept)"
        notes.append(f"frames are {w}x{h} px, {change} to the model's {cfg.size}x{cfg.size}{aspect}; pass --size to choose another size")
    opts = dataclasses.replace(opts, channels=channels)
    total = sum(len(s) for _, s in sequences)
    _check_held_out(sequences, cfg)
    return DataPlan(opts=opts, time_split=len(sequences) == 1, sequences=len(sequences), frames=total,
                    native=(3 if colour else 1, h, w), notes=notes)


def _check_held_out(sequences: list, cfg: FitConfig) -> None:
    """Refuse, before any training, data whose validation or test part holds no (context + horizon) window."""
    from .data.windows import split_collection

    parts = split_collection(sequences, cfg.val_fraction, cfg.test_fraction, cfg.seed, time_split=len(sequences) == 1)
    need = cfg.context + cfg.horizon
    for part in ("val", "test"):
        longest = max((len(s) for _, s in parts[part]), default=0)
        if longest < need:
            what = "its continuation" if len(sequences) == 1 else f"the {len(parts[part])} held-out sequence(s)"
            raise GanlstmError(f"{cfg.data}: the {part} part ({what}) has at most {longest} frames but a window needs "
                               f"context + horizon = {need}; lower --context/--horizon, keep more frames (--interval 1), or add sequences.")


# ---------------------------------------------------------------- stage configs


def gan_config(cfg: FitConfig, plan: DataPlan) -> GanTrainConfig:
    model = GanConfig(image_size=cfg.size, channels=plan.opts.channels, nz=cfg.nz, ngf=cfg.width, ndf=cfg.width,
                      latent_grid=cfg.latent_grid, encoder=cfg.width if cfg.recon_weight else 0)
    return GanTrainConfig(model=model, data=plan.opts, data_path=str(cfg.data), recon_weight=cfg.recon_weight,
                          ada_target=cfg.ada_target, val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction,
                          time_split=plan.time_split, init=cfg.init, freeze_d=FREEZE_D if cfg.init else 0)


def forecast_config(cfg: FitConfig, plan: DataPlan, model: str, gan_checkpoint: str = "", reader_warmup: int = 0) -> ForecastTrainConfig:
    gan_lstm = model == "gan_lstm"
    fc = ForecasterConfig(model=model, hidden=(cfg.width, cfg.width), latent_cap=LATENT_CAP if gan_lstm else 0.0)
    return ForecastTrainConfig(model=fc, data=plan.opts, data_path=str(cfg.data), gan_checkpoint=gan_checkpoint,
                               context=cfg.context, horizon=cfg.horizon, alpha=STAGE_ALPHA, gdl_weight=GDL_WEIGHT, ema=EMA,
                               reader_warmup=reader_warmup if gan_lstm else 0, val_fraction=cfg.val_fraction,
                               test_fraction=cfg.test_fraction, time_split=plan.time_split)


def run_config(cfg: FitConfig, out: Path, steps: int, batch_size: int, *, progress: bool = True) -> RunConfig:
    return RunConfig(out=str(out), max_steps=steps, batch_size=batch_size, seed=cfg.seed, device=cfg.device, amp=cfg.amp,
                     threads=cfg.threads, val_every=max(1, steps // VALIDATIONS), progress=progress)


def _train(stage: str, train_cfg: Any, run: RunConfig, resume: str | None = None, on_start: Any = None) -> Path:
    if stage == "gan":
        from .train.gan import train_gan

        return train_gan(train_cfg, run, resume=resume, on_start=on_start)
    from .train.forecaster import train_forecaster

    return train_forecaster(train_cfg, run, resume=resume, on_start=on_start)


def calibrate(stage: str, train_cfg: Any, cfg: FitConfig, batch_size: int, warmup: int = 0) -> tuple[float, float]:
    """Seconds per training step of ``stage`` (reader-only steps, forecasting steps), timed on a throwaway run."""
    with tempfile.TemporaryDirectory() as tmp:
        steps = PROBE_STEPS + warmup
        run = dataclasses.replace(run_config(cfg, Path(tmp), steps, batch_size, progress=False), log_every=1, val_every=10**9)
        if warmup:
            train_cfg = dataclasses.replace(train_cfg, reader_warmup=warmup)
        run_dir = _train(stage, train_cfg, run)
        rows = _read_log(run_dir / "log.csv")
    # samples_per_s is cumulative since the first step: elapsed(k) = k * batch / rate(k).
    elapsed = {int(r["step"]): int(r["step"]) * batch_size / float(r["samples_per_s"]) for r in rows}
    t_first = (elapsed[warmup] - elapsed[1]) / max(warmup - 1, 1) if warmup > 1 else 0.0
    t_main = (elapsed[steps] - elapsed[warmup + 2]) / (steps - warmup - 2)
    return t_first, t_main


def _read_log(path: Path) -> list[dict]:
    import csv

    with open(path) as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------- state


class FitState:
    """``fit.json``: settings, budget split, calibrated steps and finished stages; rewritten after every stage."""

    def __init__(self, out: Path, cfg: FitConfig, overwrite: bool):
        self.path = out / STATE_FILE
        settings = to_dict(cfg)
        if self.path.exists() and not overwrite:
            saved = json.loads(self.path.read_text())
            # A setting added since that fit started took its default there.
            before = {**json.loads(json.dumps(to_dict(FitConfig()))), **saved.get("settings", {})}
            now = {k: v for k, v in json.loads(json.dumps(settings)).items() if k not in REPORT_ONLY}
            if {k: before.get(k) for k in now} != now:
                diff = sorted(k for k in now if before.get(k) != now[k])
                raise GanlstmError(f"{out} holds a fit with other settings ({', '.join(diff)} differ); run the same command to "
                                   f"resume it, choose another --out, or pass --overwrite to start over.")
            self.data = saved
            _say(f"resuming the fit in {out} (finished: {', '.join(saved['done']) or 'nothing yet'})")
        else:
            if out.exists() and any(out.iterdir()):
                if not overwrite:
                    raise GanlstmError(f"--out {out} is not empty and holds no fit; choose another --out or pass --overwrite.")
                shutil.rmtree(out)
            out.mkdir(parents=True, exist_ok=True)
            self.data = {"settings": settings, "budget_minutes": {k: round(v * cfg.budget, 2) for k, v in BUDGET_SHARES.items()},
                         "steps": {}, "runs": {}, "done": [], "seconds": {}}
            self.save()

    def save(self) -> None:
        atomic_write_bytes(self.path, (json.dumps(self.data, indent=2) + "\n").encode())

    def finish(self, stage: str, seconds: float, **facts: Any) -> None:
        self.data["done"].append(stage)
        self.data["seconds"][stage] = round(seconds, 1)
        self.data.update(facts)
        self.save()


# ---------------------------------------------------------------- the pipeline


def run_fit(cfg: FitConfig, *, overwrite: bool = False) -> dict[str, Any]:
    """Run (or resume) the whole pipeline into ``cfg.out``; returns the report's facts (see module docstring)."""
    if not cfg.data or not cfg.out:
        raise GanlstmError("fit needs --data (your frames) and --out (a directory for the runs and the report).")
    if cfg.budget <= 0:
        raise GanlstmError(f"--budget {cfg.budget} minutes is not positive; pass e.g. --budget 45m.")
    from .data.frame_files import ResizeWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResizeWarning)  # the plan's notes say what resizing does, once
        return _run_fit(cfg, overwrite)


def _run_fit(cfg: FitConfig, overwrite: bool) -> dict[str, Any]:
    from .device import torch_threads

    out = Path(cfg.out)
    plan = inspect_data(cfg)  # before anything is written: bad data leaves nothing behind
    state = FitState(out, cfg, overwrite)
    kind = "one movie, split in time" if plan.time_split else f"{plan.sequences} sequences, split by sequence"
    _say(f"data: {cfg.data}: {kind}, {plan.frames} frames (after --interval), {plan.native[0]}x{plan.native[1]}x{plan.native[2]} as stored, "
         f"read as {plan.opts.channels}x{cfg.size}x{cfg.size}")
    for note in plan.notes:
        _say(f"note: {note}")
    state.data.update(data_plan={"time_split": plan.time_split, "sequences": plan.sequences, "frames": plan.frames,
                                 "native_chw": list(plan.native), "channels": plan.opts.channels, "notes": plan.notes})
    state.save()
    stages = out / "stages"
    with torch_threads(cfg.threads):
        gan_dir = _stage(state, "gan", gan_config(cfg, plan), cfg, stages, cfg.gan_batch_size)
        gan_ckpt = _best(gan_dir)
        lstm_cfg = forecast_config(cfg, plan, "gan_lstm", gan_checkpoint=str(gan_ckpt))
        lstm_dir = _stage(state, "gan_lstm", lstm_cfg, cfg, stages, cfg.batch_size)
        conv_dir = _stage(state, "convlstm", forecast_config(cfg, plan, "convlstm"), cfg, stages, cfg.batch_size)
        if "anchor" not in state.data["done"]:
            t0 = time.perf_counter()
            decay, scale, scores = choose_anchor(_best(lstm_dir), cfg)
            state.finish("anchor", time.perf_counter() - t0, anchor={"decay": decay, "motion_scale": scale, "val_score": scores})
        if "spread" not in state.data["done"]:
            t0 = time.perf_counter()
            spread, rows = choose_sample_spread(_best(lstm_dir), cfg)
            state.finish("spread", time.perf_counter() - t0, spread={"spread": spread, "val": rows})
        from .report import write_report

        return write_report(out, cfg, state.data, gan_ckpt, _best(lstm_dir), _best(conv_dir))


def _best(run_dir: Path) -> Path:
    return run_dir / "best.pt" if (run_dir / "best.pt").exists() else run_dir / "last.pt"


def _stage(state: FitState, stage: str, train_cfg: Any, cfg: FitConfig, stages: Path, batch_size: int) -> Path:
    """Train one stage to its calibrated step count, resuming its run if one was started; returns its run directory."""
    runs = state.data["runs"]
    if stage in state.data["done"]:
        return Path(runs[stage])
    t0 = time.perf_counter()
    if stage not in state.data["steps"]:
        _say(f"{stage}: timing a few steps to fit its {state.data['budget_minutes'][stage]:g} minutes")
        state.data["steps"][stage] = _steps_for(stage, train_cfg, cfg, batch_size, state.data["budget_minutes"][stage] * 60)
        state.save()
    steps = state.data["steps"][stage]
    if stage == "gan_lstm":
        train_cfg = dataclasses.replace(train_cfg, reader_warmup=int(READER_WARMUP_SHARE * steps))
    run = run_config(cfg, stages, steps, batch_size)
    resume = runs.get(stage) if runs.get(stage) and (Path(runs[stage]) / "last.pt").exists() else None
    _say(f"{stage}: {steps} steps of batch {batch_size}" + (f", resuming {resume}" if resume else ""))

    def record(run_dir: Path) -> None:  # as soon as the run exists, so that an interruption can resume it
        runs[stage] = str(run_dir)
        state.save()

    run_dir = _train(stage, train_cfg, run, resume=resume, on_start=record)
    state.finish(stage, time.perf_counter() - t0)
    return run_dir


def _steps_for(stage: str, train_cfg: Any, cfg: FitConfig, batch_size: int, seconds: float) -> int:
    train_seconds = seconds * (1 - VAL_SHARE)
    if stage == "gan_lstm":
        t_reader, t_forecast = calibrate(stage, train_cfg, cfg, batch_size, warmup=4)
        per_step = READER_WARMUP_SHARE * t_reader + (1 - READER_WARMUP_SHARE) * t_forecast
    else:
        per_step = calibrate(stage, train_cfg, cfg, batch_size)[1]
    steps = int(train_seconds / max(per_step, 1e-6))
    return max(MIN_STEPS, steps - steps % VALIDATIONS)  # whole validation intervals: the last validation scores the last step


def anchor_score(result: Any, name: str) -> float:
    """Lower is better: MSE and (1 - SSIM) relative to persistence on the same windows, averaged over horizons, summed.

    Both metrics count equally: MSE alone favours blur, and blur is what copies of the last frame avoid.
    """
    ours, base = result.per_horizon[name], result.per_horizon["persistence"]
    mse = np.mean([a / max(b, 1e-12) for a, b in zip(ours["mse"], base["mse"])])
    dssim = np.mean([(1 - a) / max(1 - b, 1e-12) for a, b in zip(ours["ssim"], base["ssim"])])
    return float(mse + dssim)


def choose_anchor(checkpoint: Path, cfg: FitConfig) -> tuple[float, float, dict[str, float]]:
    """The anchor decay and motion scale with the best :func:`anchor_score` on the validation windows; recorded in the checkpoint.

    Every decay of ``cfg.anchor_decays`` is scored with every scale of ``cfg.motion_scales``. Scale 0
    with decay 1 is copy-last-frame exactly (score 2), so the choice never scores worse than
    persistence on validation; scale 0 with a smaller decay relaxes the last frame towards G's
    reading of it, which drops what G cannot draw.
    Returns ``(decay, scale, scores)``, the scores keyed ``"decay/scale"``.
    """
    from .checkpoint import load_checkpoint
    from .evaluation import evaluate_models, trivial_baselines
    from .report import held_out
    from .train.forecaster import load_forecaster
    from .train.prediction_settings import set_prediction_settings

    ckpt = load_checkpoint(checkpoint, kind="forecaster")
    val = held_out(ckpt, "val")
    grid = [(d, s) for s in sorted(cfg.motion_scales, reverse=True) for d in cfg.anchor_decays]  # ties go to the larger scale
    pairs = {f"{d:g}/{s:g}": (float(d), float(s)) for d, s in grid}
    models = {name: load_forecaster(ckpt, "cpu", anchor_decay=d, motion_scale=s)[0] for name, (d, s) in pairs.items()}
    result = evaluate_models({"persistence": trivial_baselines()["persistence"], **models}, [s for _, s in val],
                             cfg.context, cfg.horizon, device="cpu", stride=1, scores=())
    scores = {name: round(anchor_score(result, name), 4) for name in models}
    decay, scale = pairs[min(scores, key=scores.get)]
    set_prediction_settings(checkpoint, anchor_decay=decay, motion_scale=scale)
    shown = ", ".join(f"{k}: {v:.3f}" for k, v in sorted(scores.items(), key=lambda kv: kv[1])[:5])
    _say(f"anchor: decay {decay:g}, motion scale {scale:g} (validation score, relative MSE + relative 1-SSIM, 2 = persistence; "
         f"best of {len(scores)} decay/scale pairs: {shown})")
    if scale == 0:
        _say("anchor: the GAN-LSTM's predicted motion did not help on the validation windows, so it draws the last frame's "
             "reading at every horizon (motion scale 0); a longer --budget or more frames may help")
    return decay, scale, scores


def choose_sample_spread(checkpoint: Path, cfg: FitConfig) -> tuple[float, list[dict[str, float]]]:
    """The ensemble spread (``predict --samples``) calibrated on the validation windows; recorded in the checkpoint.

    :func:`ganlstm.calibration.calibrate_spread`: the sharpest spread whose spread-skill ratio lies in [0.8, 1.2].
    """
    from .calibration import calibrate_spread
    from .checkpoint import load_checkpoint
    from .data.windows import WindowDataset
    from .report import held_out
    from .train.forecaster import load_forecaster
    from .train.prediction_settings import set_sample_spread

    import torch

    ckpt = load_checkpoint(checkpoint, kind="forecaster")
    windows = WindowDataset([s for _, s in held_out(ckpt, "val")], cfg.context, cfg.horizon, 1)
    if len(windows) == 0:
        _say("spread: no validation window to calibrate on; predict --samples keeps the default spread")
        return 0.0, []
    take = [windows[i] for i in range(0, len(windows), max(1, len(windows) // SPREAD_WINDOWS))][:SPREAD_WINDOWS]
    context, target = (torch.stack(x) for x in zip(*take))  # (N, J, C, H, W), (N, K, C, H, W)
    spread, rows = calibrate_spread(load_forecaster(ckpt, "cpu")[0], context, target, seed=cfg.seed)
    set_sample_spread(checkpoint, spread)
    _say(f"spread: {spread:g} for predict --samples (validation spread-skill / CRPS: "
         + ", ".join(f"{r['spread']:g}: {r['spread_skill']:.2f} / {r['crps']:.4f}" for r in rows) + ")")
    return spread, rows


#: Validation windows the ensemble spread is calibrated on (evenly spaced over the split).
SPREAD_WINDOWS = 32


__all__ = ["run_fit", "inspect_data", "choose_anchor", "choose_sample_spread", "calibrate", "BUDGET_SHARES", "STATE_FILE"]
