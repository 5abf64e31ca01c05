"""Stage two and the trainable baselines: train any registered forecaster on (context, target) windows.

``ganlstm train-encoder`` (the GAN-prior model, Xu et al. ICC 2019) and ``ganlstm
train-baseline --model NAME`` both call :func:`train_forecaster`. It is model-agnostic:
:class:`ForecastTask` asks the model for its ``training_loss`` (the GAN-prior model adds its
reconstruction, distillation and latent losses there) and optimises every parameter that
requires a gradient, which for the GAN-prior model excludes the frozen generator.
:func:`~ganlstm.train.loop.fit` does the rest (run directory, resume, logs, checkpoints,
NaN handling, DDP).

Scheduled sampling and the learning-rate schedule are in :mod:`.schedules`.

Sequences are split into train / val / test by sequence (never by window, which would
leak); the split is printed, written to ``split.json`` and stored in every checkpoint
(``extra["split"]``) so evaluation can use exactly the held-out test sequences.
After each epoch, :data:`VAL_WINDOWS` validation windows are rolled out closed-loop:
MSE and SSIM at horizons 1 and K go to ``metrics.csv`` (next to copy-last-frame's numbers on
the same windows), and ``samples/epoch_XXXX.gif`` shows truth | prediction | |error|.

Checkpoint config layout: ``{"model": ForecasterConfig, "data": FrameOptions,
"train": ForecastTrainConfig, "run": RunConfig}``; :func:`load_forecaster` rebuilds the model
from it alone.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..checkpoint import atomic_write_bytes, build_checked, load_checkpoint, load_state
from ..config import READER_WARMUP, ForecasterConfig, ForecastTrainConfig, FrameOptions, RunConfig, from_dict, to_dict
from ..device import autocast, configure_cpu, make_grad_scaler, resolve_device
from ..errors import GanlstmError
from ..metrics import MetricAccumulator
from ..models.base import Forecaster, build_forecaster
from .distributed import Dist
from .ema import ema_decay, update_ema
from .forecast_data import load_data, resolve_config, spread_windows
from .loop import fit
from .nonfinite import check_finite
from .reproducibility import enable_determinism, seed_everything
from .runs import open_run, resolve_resume, restore
from .schedules import sampling_probability, total_steps
from .task import FitState

VAL_WINDOWS = 32  # validation windows rolled out after every epoch (evenly spread over the val sequences)
GIF_SCALE_TO = 128  # sample GIFs are enlarged (nearest neighbour) to about this many pixels
GRAD_CLIP = 1.0  # global gradient-norm clip: recurrent rollouts occasionally spike early in training


# ---------------------------------------------------------------- configs & checkpoints


def saved_configs(ckpt: dict) -> tuple[ForecastTrainConfig, RunConfig]:
    """The training and run configs recorded in a forecaster checkpoint."""
    path = ckpt.get("path", "checkpoint")
    try:
        train, run = ckpt["config"]["train"], ckpt["config"]["run"]
    except (KeyError, TypeError):
        raise GanlstmError(f"{path} has no forecaster training config; pass a checkpoint written by `ganlstm train-encoder` or `train-baseline`.") from None
    return from_dict(ForecastTrainConfig, train, where=f"{path}: config.train"), from_dict(RunConfig, run, where=f"{path}: config.run")


def auto_reader_warmup(model: str, total: float) -> int:
    """The recipe's reader warm-up for a run of ``total`` steps: READER_WARMUP, at most 60 % of the run (gan_lstm only).

    The shipped GAN-LSTM warmed its reader up for 3000 of 5400 steps; a shorter run keeps that share.
    """
    if model != "gan_lstm":
        return 0
    return int(min(READER_WARMUP, 0.6 * total)) if math.isfinite(total) else READER_WARMUP


def load_forecaster(path_or_ckpt: str | Path | dict | None, device: str | torch.device = "auto", *,
                    anchor_decay: float | None = None, motion_scale: float | None = None,
                    context_check: bool | None = None) -> tuple[Forecaster, dict]:
    """A trained forecaster in eval mode on ``device``, and its checkpoint dict.

    ``path_or_ckpt`` is a checkpoint file, a run directory (its best.pt, else last.pt), or an
    already loaded checkpoint. A run trained with ``--ema`` gives its averaged weights
    (``models["forecaster_ema"]``). The architecture comes from the checkpoint's config; the
    reading options the model was trained with are ``ckpt["config"]["data"]`` (see
    :func:`frame_options_of`). ``anchor_decay`` replaces the checkpoint's (GAN-LSTM only; 0 turns
    residual anchoring off, see :meth:`ganlstm.models.gan_lstm.GanLstm.correction`); ``motion_scale`` the
    checkpoint's scale of the predicted change (GAN-LSTM only; 1 = as predicted, 0 = copy-last-frame);
    ``context_check`` whether both are chosen per sequence on its own context (:mod:`ganlstm.models.context_check`).
    """
    ckpt = path_or_ckpt if isinstance(path_or_ckpt, dict) else load_checkpoint(path_or_ckpt, kind="forecaster")
    path = ckpt.get("path", "checkpoint")
    if ckpt.get("kind") != "forecaster":
        raise GanlstmError(f"{path} is a {ckpt.get('kind')!r} checkpoint, not a forecaster; pass a file written by `ganlstm train-encoder` or `train-baseline`.")
    try:
        model_cfg = from_dict(ForecasterConfig, ckpt["config"]["model"], where=f"{path}: config.model")
    except (KeyError, TypeError):
        raise GanlstmError(f"{path} has no model config; pass a checkpoint written by `ganlstm train-encoder` or `train-baseline`.") from None
    if "forecaster" not in ckpt.get("models", {}):
        raise GanlstmError(f"{path} holds no forecaster weights; pass a checkpoint written by `ganlstm train-encoder` or `train-baseline`.")
    name = "forecaster_ema" if "forecaster_ema" in ckpt["models"] else "forecaster"
    model = build_checked(lambda: build_forecaster(model_cfg), ckpt["models"][name], name=name, path=path)
    load_state(model, ckpt["models"][name], name=name, path=path)
    for name, value in (("anchor_decay", anchor_decay), ("motion_scale", motion_scale), ("context_check", context_check)):
        if value is None:
            continue
        if not hasattr(model, f"set_{name}"):
            raise GanlstmError(f"{path} is a {model_cfg.model} checkpoint; {name} (--{name.replace('_', '-')}) applies to gan_lstm checkpoints only.")
        getattr(model, f"set_{name}")(value)
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    return model.to(dev).eval(), ckpt


def export_forecaster(src: str | Path, dst: str | Path, *, overwrite: bool = False) -> Path:
    """Write a prediction-only copy of a forecaster checkpoint: its config and the weights prediction uses.

    The averaged weights of an ``--ema`` run (else the raw ones) become the file's only weights; the
    optimiser state, the raw weights and the RNG are dropped, so the file is a fraction of the size
    (the shipped GAN-LSTM: 13.4 MB -> 3.7 MB) and predicts exactly as the original. It cannot be
    resumed (:func:`ganlstm.train.runs.restore` refuses it). The recorded test split is kept for
    ``evaluate --split test``.
    """
    from ..checkpoint import save_checkpoint

    model, ckpt = load_forecaster(src, "cpu")  # checks the file and that its weights fit its architecture
    dst = Path(dst)
    if dst.exists() and not overwrite:
        raise GanlstmError(f"{dst} already exists; pass --overwrite to replace it or choose another --out.")
    if dst.resolve() == Path(ckpt["path"]).resolve():
        raise GanlstmError(f"{dst} is the checkpoint being exported; write the export to another file.")
    dst.parent.mkdir(parents=True, exist_ok=True)
    extra = {"exported_from": str(ckpt["path"])}
    if "split" in ckpt.get("extra", {}):
        extra["split"] = ckpt["extra"]["split"]
    return save_checkpoint(dst, kind="forecaster", config=ckpt["config"], models={"forecaster": model},
                           step=ckpt["step"], epoch=ckpt["epoch"], extra=extra)


def frame_options_of(ckpt: dict) -> FrameOptions:
    """How the checkpoint's model reads frames (size, channels, interval, scaling)."""
    path = ckpt.get("path", "checkpoint")
    try:
        return from_dict(FrameOptions, ckpt["config"]["data"], where=f"{path}: config.data")
    except (KeyError, TypeError):
        raise GanlstmError(f"{path} records no frame-reading options; pass a checkpoint written by `ganlstm train-encoder` or `train-baseline`.") from None


def checkpoint_config(cfg: ForecastTrainConfig, run: RunConfig) -> dict:
    """The config every forecaster run writes to config.json and its checkpoints."""
    return {"model": to_dict(cfg.model), "data": to_dict(cfg.data), "train": to_dict(cfg), "run": to_dict(run)}


# ---------------------------------------------------------------- the task


class _Loss(nn.Module):
    """``forward`` = the model's ``training_loss``, so DDP sees a forward pass and syncs gradients."""

    def __init__(self, model: Forecaster):
        super().__init__()
        self.model = model

    def forward(self, context: Tensor, target: Tensor, **kwargs: Any) -> dict[str, Tensor]:
        return self.model.training_loss(context, target, **kwargs)


class ForecastTask:
    """One forecaster as a TrainTask: model ``forecaster``, optimiser ``forecaster`` (AdamW)."""

    kind = "forecaster"

    def __init__(self, cfg: ForecastTrainConfig, run: RunConfig, model: Forecaster, device: torch.device, dist_: Dist,
                 val: list[np.ndarray], total: float, steps_per_epoch: int):
        if cfg.reader_warmup is None:  # resolved once, when the run starts; config.json and checkpoints record the number
            cfg = dataclasses.replace(cfg, reader_warmup=auto_reader_warmup(cfg.model.model, total))
        self.cfg, self.run, self.device = cfg, run, device
        self.name = cfg.model.model
        self.config = checkpoint_config(cfg, run)
        if not getattr(model, "trainable", True):
            raise GanlstmError(f"{self.name} has no weights to train; evaluate it directly with `ganlstm evaluate`.")
        self.model = model.to(device)
        self.loss = dist_.prepare(_Loss(self.model), device)
        params = [p for p in self.model.parameters() if p.requires_grad]
        frozen = {id(p) for p in getattr(self.model, "generator", nn.Module()).parameters()}
        assert not frozen & {id(p) for p in params}, "the frozen generator must not be optimised"
        self.optimizers = {"forecaster": torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)}
        self.params = params
        self.scalers = {"forecaster": make_grad_scaler(device, run.amp)}
        self.models = {"forecaster": self.model}
        if not 0.0 <= cfg.ema < 1.0:
            raise GanlstmError(f"--ema {cfg.ema} must be in [0, 1) (0 keeps no average).")
        # An exponential moving average of the weights (Polyak averaging): what validation scores,
        # best.pt is chosen by, and load_forecaster returns.
        self.ema = copy.deepcopy(self.model).requires_grad_(False) if cfg.ema > 0 else None
        if self.ema is not None:
            self.models["forecaster_ema"] = self.ema
        self.total, self.steps_per_epoch = total, steps_per_epoch
        self.val = spread_windows(val, cfg.context, cfg.horizon, VAL_WINDOWS) if val else None
        self.persistence = _persistence_metrics(*self.val) if self.val else {}

    def train_step(self, batch: tuple[Tensor, Tensor], step: int) -> dict[str, Tensor]:
        """One optimiser step on windows: context (B, J, C, H, W), target (B, K, C, H, W) in [0, 1]."""
        context, target = (x.to(self.device, non_blocking=True).float() for x in batch)
        warmup = self.cfg.reader_warmup
        # Scheduled sampling runs its full course after the reader warm-up.
        p = sampling_probability(max(0, step - warmup), self.total - warmup, self.cfg.sampling_start, self.cfg.sampling_end)
        with autocast(self.device, self.run.amp):
            losses = self.loss(context, target, sampling_p=p, alpha=self.cfg.alpha, bright_weight=self.cfg.bright_weight,
                               gdl_weight=self.cfg.gdl_weight, recon_weight=self.cfg.recon_weight, reader_only=step < warmup)
        loss = losses["loss"].float()
        check_finite(self.name, loss)
        opt = self.optimizers["forecaster"]
        opt.zero_grad(set_to_none=True)
        scaler = self.scalers["forecaster"]
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        nn.utils.clip_grad_norm_(self.params, GRAD_CLIP)
        scaler.step(opt)
        scaler.update()
        if self.ema is not None:
            update_ema(self.ema, self.model, ema_decay(self.cfg.ema, step))
        return {**{k: v.detach().float() for k, v in losses.items()}, "sampling_p": torch.tensor(p)}

    def evaluate(self, epoch: int, step: int, run_dir: Path) -> dict[str, float]:
        """Closed-loop rollouts of the validation windows: MSE/SSIM at horizons 1 and K, a GIF; ``score`` = mean MSE."""
        from ..rollout import predict

        if self.val is None:
            return {}
        context, target = self.val
        acc = MetricAccumulator()
        first = None
        model = self.model if self.ema is None else self.ema
        for i in range(0, len(context), self.run.batch_size):
            pred = predict(model, context[i : i + self.run.batch_size], self.cfg.horizon, amp=self.run.amp)  # (b, K, C, H, W)
            acc.update(pred, target[i : i + self.run.batch_size])
            first = pred[0] if first is None else first
        name = f"epoch_{epoch:04d}" + ("" if step % self.steps_per_epoch == 0 else f"_step_{step:07d}")
        save_comparison_gif(context[0], target[0], first, run_dir / "samples" / f"{name}.gif")
        return {**_headline(acc, "val"), **self.persistence, "score": acc.summary()["mse"]}


def _headline(acc: MetricAccumulator, prefix: str) -> dict[str, float]:
    ph, mean = acc.per_horizon(), acc.summary()
    k = len(ph["mse"])
    return {
        f"{prefix}_mse_h1": float(ph["mse"][0]), f"{prefix}_mse_h{k}": float(ph["mse"][-1]), f"{prefix}_mse": mean["mse"],
        f"{prefix}_ssim_h1": float(ph["ssim"][0]), f"{prefix}_ssim_h{k}": float(ph["ssim"][-1]), f"{prefix}_ssim": mean["ssim"],
    }


def _persistence_metrics(context: Tensor, target: Tensor) -> dict[str, float]:
    """Copy-last-frame on the same windows: the reference every forecaster must beat."""
    acc = MetricAccumulator()
    acc.update(context[:, -1:].expand_as(target), target)
    mean = acc.summary()
    return {"persistence_mse": mean["mse"], "persistence_ssim": mean["ssim"]}


def save_comparison_gif(context: Tensor, truth: Tensor, pred: Tensor | None, path: Path, *, overwrite: bool = True) -> Path:
    """GIF of observed-then-future frames: truth | prediction | |error| (context frames show the truth in all panels).

    context (J, C, H, W), truth and pred (K, C, H, W), all in [0, 1]; ``truth=None`` shows the
    observed frames followed by the prediction alone.
    """
    from ..viz import save_gif

    scale = max(1, GIF_SCALE_TO // context.shape[-1])
    pred_seq = torch.cat([context, pred.cpu()])  # (J+K, C, H, W)
    if truth is None:
        return save_gif(pred_seq, path, fps=5, scale=scale, overwrite=overwrite)
    truth_seq = torch.cat([context, truth.cpu()])
    return save_gif([truth_seq, pred_seq, (truth_seq - pred_seq).abs()], path, fps=5, scale=scale, overwrite=overwrite)


# ---------------------------------------------------------------- entry point


def _say(msg: str, enabled: bool) -> None:
    if enabled:
        print(msg, file=sys.stderr, flush=True)


def train_forecaster(cfg: ForecastTrainConfig, run: RunConfig, resume: str | None = None, *,
                     on_start: Callable[[Path], None] | None = None) -> Path:
    """Train the forecaster named by ``cfg.model.model``; returns the run directory.

    The run directory (``<run.out>/<n>-<model>/``) holds config.json, split.json, log.csv,
    metrics.csv, samples/epoch_XXXX.gif, last.pt and best.pt (lowest validation MSE).
    ``resume`` is a checkpoint, a run directory or ``"last"``: weights, optimiser, step and
    RNG are restored and training continues to ``run.epochs`` / ``run.max_steps`` (totals, not
    increments); the architecture, training options, seed and batch size come from the checkpoint.
    ``on_start`` is called with a new run's directory as soon as it exists (``fit`` records it there).
    """
    if run.compile:
        raise GanlstmError("training forecasters does not support compile=True yet; leave it off.")
    if cfg.reader_warmup and cfg.model.model != "gan_lstm":
        raise GanlstmError(f"--reader-warmup is for the gan_lstm model (it inverts the generator); {cfg.model.model} has no reader.")
    device = resolve_device(run.device)
    dist_ = Dist.from_env(device)
    device = dist_.device(device)
    if device.type == "cpu":
        configure_cpu()
    if run.deterministic:
        enable_determinism()
    ckpt = None
    if resume:
        ckpt_path = resolve_resume(resume, run.out, cfg.model.model)
        ckpt = load_checkpoint(ckpt_path, kind="forecaster")
        cfg, saved = saved_configs(ckpt)  # already resolved when the run started
        run = dataclasses.replace(run, seed=saved.seed, split_seed=saved.split_seed, batch_size=saved.batch_size)
        gan_ckpt = None  # the generator's weights are in the checkpoint
    else:
        cfg, gan_ckpt = resolve_config(cfg)
    cfg, data = load_data(cfg, run.resolved_split_seed)  # before any directory is created: bad data leaves nothing behind
    talk = run.progress and dist_.is_main
    _say(f"sequences: {len(data.split['train'])} train, {len(data.split['val'])} val ({', '.join(data.split['val']) or '-'}), "
         f"{len(data.split['test'])} test ({', '.join(data.split['test']) or '-'}); {len(data.train)} training windows", talk)
    if not data.val:
        warnings.warn("no validation sequence is long enough (or val_fraction=0): no validation metrics and no best.pt", stacklevel=2)
    seed_everything(run.seed)
    # On resume the checkpoint's config names the architecture: its weights must fit it before it is allocated.
    model = build_forecaster(cfg.model) if ckpt is None else build_checked(
        lambda: build_forecaster(cfg.model), ckpt["models"].get("forecaster"), name="forecaster", path=ckpt["path"])
    if gan_ckpt is not None:
        from ..models.dcgan import load_generator

        model.load_generator(load_generator(gan_ckpt))
        reader = gan_ckpt["models"].get("E")
        if reader is not None and not model.load_reader(reader, path=str(gan_ckpt["path"])):
            warnings.warn(f"{gan_ckpt['path']}'s encoder has another width than --hidden's first layer ({cfg.model.hidden[0]}); "
                          f"the reader starts untrained. Pass --hidden {gan_ckpt['config']['train']['model']['encoder']},... to start from it.", stacklevel=2)
        elif reader is not None:
            _say(f"reader: starts from {gan_ckpt['path']}'s encoder", talk)
    steps_per_epoch = max(1, len(data.train) // dist_.world_size // run.batch_size)
    total = total_steps(run, steps_per_epoch)
    task = ForecastTask(cfg, run, model, device, dist_, data.val, total, steps_per_epoch)
    if cfg.reader_warmup is None and task.cfg.reader_warmup:  # the recipe's warm-up, resolved by the task for this run
        _say(f"reader warm-up: the first {task.cfg.reader_warmup} of {total} steps train the reader alone", talk)
    state = restore(task, ckpt) if ckpt is not None else FitState()  # first: a refused file leaves no run directory behind
    run_dir = open_run(task.name, run, task.config, dist_, resume_from=ckpt_path if ckpt is not None else None, on_start=on_start)
    if dist_.is_main and not (run_dir / "split.json").exists():  # a new run, or a resume in a new run directory
        atomic_write_bytes(run_dir / "split.json", (json.dumps(data.split, indent=2) + "\n").encode())
    state.extra["split"] = data.split
    if dist_.rank:
        torch.manual_seed(run.seed * 1_000_003 + dist_.rank * 7919 + state.step)  # ranks draw different coins
    fit(task, data.train, run, dist_=dist_, run_dir=run_dir, state=state)
    return run_dir


__all__ = [
    "ForecastTask", "train_forecaster", "load_forecaster", "saved_configs", "frame_options_of",
    "checkpoint_config", "sampling_probability", "save_comparison_gif",
]
