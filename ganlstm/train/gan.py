"""Stage one: train the DCGAN prior on single frames (``ganlstm train-gan``).

:class:`GanTask` is one :class:`~ganlstm.train.common.TrainTask`: a discriminator step and a
generator step per batch, then an EMA update of the generator. :func:`~ganlstm.train.common.fit`
does everything else (run directory, resume, logs, checkpoints, NaN handling, DDP).

Small-data stabilisers, each a field of :class:`~ganlstm.config.GanTrainConfig`:

* spectral normalisation in D (Miyato et al. 2018) -- ``model.spectral_norm``;
* DiffAugment on real and fake batches alike (Zhao et al. 2020) -- ``diffaug``;
* an exponential moving average of G's weights (Karras et al. 2018; Yazici et al. 2019), which
  is what stage two decodes with -- ``ema``;
* the hinge (Lim & Ye 2017) or non-saturating (Goodfellow et al. 2014) loss -- ``loss``;
* the R1 penalty on real images (Mescheder et al. 2018) -- ``r1``.

The defaults are the best combination measured by ``benchmarks/gan_flags.py`` (projection
SSIM on test sequences after equal short CPU budgets; see docs/benchmarks.md): the original
BatchNorm discriminator, the non-saturating loss and the EMA on; spectral norm, DiffAugment
and R1 off. Spectral norm and DiffAugment slowed convergence at those budgets; they are
meant for long runs where D overfits, which were not measured here.

Data are split by sequence, never by frame, exactly as stage two splits the same data with the
same seed: G trains on the train sequences only, the ``test_fraction`` sequences are never
touched (so stage two's test frames are new to the decoder too), and the ``val_fraction``
sequences score the generator. After every epoch the EMA generator draws a fixed-z grid into
``samples/`` and a cheap proxy of the projection metric is logged to ``metrics.csv``:
:data:`PROXY_FRAMES` validation frames inverted with :data:`PROXY_STEPS` Adam steps from
:data:`PROXY_RESTARTS` starts. Its MSE is the ``score`` that selects ``best.pt``;
``ganlstm evaluate-gan`` gives the full metric on the test sequences.
"""
from __future__ import annotations

import contextlib
import dataclasses
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from ..checkpoint import load_checkpoint
from ..config import FrameOptions, GanTrainConfig, RunConfig, from_dict, to_dict
from ..errors import GanlstmError
from ..losses import d_loss, g_loss, r1_penalty
from ..models.augment import DiffAugment
from ..models.base import to_model_range
from ..models.dcgan import build_discriminator, build_generator, gan_config_from_checkpoint, sample_latents
from ..projection import projection_quality
from ..viz import save_grid
from .common import (
    Dist, FitState, autocast, check_finite, configure_cpu, ema_decay, enable_determinism, fit, make_grad_scaler, resolve_device,
    resolve_resume, restore, seed_everything, start_run, update_ema,
)

PROXY_FRAMES = 16  # validation frames inverted after every epoch
PROXY_STEPS = 100
PROXY_RESTARTS = 2
GRID_SAMPLES = 64  # fixed-z samples drawn after every epoch (8 x 8 grid)


@dataclass
class GanData:
    """Frames for stage one: training frames and the validation sequences (name, (T, C, H, W))."""

    train: torch.utils.data.Dataset
    val: list[tuple[str, np.ndarray]]


def frame_options(cfg: GanTrainConfig) -> FrameOptions:
    """The reading options with size and channels fixed by the architecture."""
    return dataclasses.replace(cfg.data, size=cfg.model.image_size, channels=cfg.model.channels)


def split_sequences(sequences: list[tuple[str, np.ndarray]], cfg: GanTrainConfig, seed: int) -> dict[str, list[int]]:
    """Split by sequence into train / val / test indices, the same way stage two splits the same data."""
    from ..data.windows import split_by_sequence

    return split_by_sequence([name for name, _ in sequences], cfg.val_fraction, cfg.test_fraction, seed)


def load_gan_data(cfg: GanTrainConfig, seed: int) -> GanData:
    """Read ``cfg.data_path`` and split it by sequence: training frames and the validation sequences.

    The test sequences are set aside untouched (see ``GanTrainConfig.test_fraction``).
    """
    from ..data.frames import read_collection
    from ..data.windows import FrameDataset

    if not cfg.data_path:
        raise GanlstmError("no training data given; pass --data DIR (frames, sequences, or `ganlstm simulate` output).")
    sequences = read_collection(cfg.data_path, frame_options(cfg))
    split = split_sequences(sequences, cfg, seed)
    train = [sequences[i][1] for i in split["train"]]
    return GanData(train=FrameDataset(train), val=[sequences[i] for i in split["val"]])


def spread_frames(sequences: list[tuple[str, np.ndarray]], n: int) -> np.ndarray:
    """``n`` frames (n, C, H, W) evenly spaced over all frames of ``sequences`` (fewer if there are fewer)."""
    if not sequences:
        raise GanlstmError("there are no held-out frames to measure the generator on; add sequences or raise --val-fraction / --test-fraction.")
    frames = np.concatenate([s for _, s in sequences])  # (sum T, C, H, W)
    idx = np.unique(np.linspace(0, len(frames) - 1, min(n, len(frames))).round().astype(int))
    return frames[idx]


class GanTask:
    """Stage one as a TrainTask: models ``G`` (trained), ``G_ema`` (the decoder) and ``D``."""

    kind = "gan"
    name = "gan"

    def __init__(self, cfg: GanTrainConfig, run: RunConfig, device: torch.device, dist_: Dist,
                 val: list[tuple[str, np.ndarray]], steps_per_epoch: int):
        self.cfg, self.run, self.device = cfg, run, device
        self.config = {"train": to_dict(cfg), "run": to_dict(run)}
        if cfg.loss not in ("hinge", "ns"):
            raise GanlstmError(f"unknown GAN loss {cfg.loss!r}; use --loss hinge or --loss ns.")
        if not 0.0 <= cfg.ema < 1.0:
            raise GanlstmError(f"--ema {cfg.ema} must be in [0, 1) (0 disables the average: G_ema = G).")
        if cfg.r1 < 0:
            raise GanlstmError(f"--r1 {cfg.r1} must be >= 0 (0 disables the penalty).")
        self.augment = DiffAugment(cfg.diffaug)
        g = build_generator(cfg.model)
        self.G_ema = build_generator(cfg.model).to(device).requires_grad_(False)
        self.G_ema.load_state_dict(g.state_dict())
        self.G = dist_.prepare(g, device)
        self.G_raw = self.G.module if isinstance(self.G, nn.parallel.DistributedDataParallel) else self.G  # for the EMA
        # D runs twice before each backward (reals, fakes) and is never used in eval mode: its BatchNorm
        # running statistics are never read, so each rank keeps its own (see Dist.prepare).
        self.D = dist_.prepare(build_discriminator(cfg.model), device, broadcast_buffers=False)
        self.models = {"G": self.G, "G_ema": self.G_ema, "D": self.D}
        betas = (cfg.beta1, cfg.beta2)
        self.optimizers = {
            "G": torch.optim.Adam(self.G.parameters(), lr=cfg.lr_g, betas=betas),
            "D": torch.optim.Adam(self.D.parameters(), lr=cfg.lr_d, betas=betas),
        }
        # One scaler per loss: an overflow in D's backward must not skip G's step, or vice versa.
        self.scalers = {k: make_grad_scaler(device, run.amp) for k in ("G", "D")}
        self.g_params = list(self.G.parameters())
        self.fixed_z = sample_latents(GRID_SAMPLES, cfg.model.nz, run.seed, device)  # the same grid every epoch
        self.proxy_frames = spread_frames(val, PROXY_FRAMES) if val else None
        self.steps_per_epoch = steps_per_epoch

    def _precision(self) -> contextlib.AbstractContextManager:
        return autocast(self.device, self.run.amp)

    def _step(self, name: str, loss: Tensor, inputs: list[Tensor] | None = None) -> None:
        check_finite(name, loss)
        opt, scaler = self.optimizers[name], self.scalers[name]
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward(inputs=inputs)
        scaler.step(opt)
        scaler.update()

    def train_step(self, batch: Tensor, step: int) -> dict[str, Tensor]:
        """One D step and one G step on a batch of frames (B, C, S, S) in [0, 1]."""
        real = to_model_range(batch.to(self.device, non_blocking=True).float())  # (B, C, S, S) in [-1, 1]
        z = torch.randn(real.shape[0], self.cfg.model.nz, device=self.device)
        with self._precision():
            fake = self.G(z)  # (B, C, S, S); one G forward serves both steps
        out = self.d_step(real, fake.detach())
        out.update(self.g_step(fake))
        update_ema(self.G_ema, self.G_raw, ema_decay(self.cfg.ema, step))
        return out

    def d_step(self, real: Tensor, fake: Tensor) -> dict[str, Tensor]:
        """Update D on real vs generated frames (both augmented); R1 on the un-augmented reals."""
        use_r1 = self.cfg.r1 > 0
        real = real.detach().requires_grad_(use_r1)
        with self._precision():
            # Separate forwards, as in DCGAN: a BatchNorm discriminator must see all-fake batches here
            # exactly as it does in the G step, or the statistics it normalises with differ between the two.
            real_logits = self.D(self.augment(real)).float()  # (B,)
            fake_logits = self.D(self.augment(fake)).float()  # (B,)
            loss = d_loss(real_logits, fake_logits, self.cfg.loss)
        out = {"d_loss": loss.detach(), "d_real": real_logits.detach().mean(), "d_fake": fake_logits.detach().mean()}
        if use_r1:
            penalty = r1_penalty(real_logits, real)
            loss = loss + 0.5 * self.cfg.r1 * penalty  # gamma/2 * ||grad||^2, Mescheder et al.'s convention
            out["r1"] = penalty.detach()
        self._step("D", loss)
        return out

    def g_step(self, fake: Tensor) -> dict[str, Tensor]:
        """Update G through D's verdict on the (augmented) generated frames; D's weights get no gradient."""
        no_sync = self.D.no_sync() if isinstance(self.D, nn.parallel.DistributedDataParallel) else contextlib.nullcontext()
        with no_sync, self._precision():
            loss = g_loss(self.D(self.augment(fake)).float(), self.cfg.loss)
        self._step("G", loss, inputs=self.g_params)
        return {"g_loss": loss.detach()}

    def evaluate(self, epoch: int, step: int, run_dir: Path) -> dict[str, float]:
        """Write the fixed-z grid of G_ema; return the projection proxy on validation frames (``score`` = its MSE)."""
        G = self.G_ema
        name = f"epoch_{epoch:04d}" + ("" if step % self.steps_per_epoch == 0 else f"_step_{step:07d}")
        scale = max(1, 64 // G.image_size)
        save_grid(G.render(self.fixed_z), run_dir / "samples" / f"{name}.png", nrow=8, scale=scale, overwrite=True)
        if self.proxy_frames is None:
            return {}
        q = projection_quality(G, self.proxy_frames, steps=PROXY_STEPS, restarts=PROXY_RESTARTS, seed=0)
        return {"proj_ssim": q["ssim"], "proj_mse": q["mse"], "hist_distance": q["hist_distance"], "score": q["mse"]}


def saved_configs(ckpt: dict) -> tuple[GanTrainConfig, RunConfig]:
    """The training and run configs recorded in a stage-one checkpoint."""
    path = ckpt.get("path", "checkpoint")
    try:
        train, run = ckpt["config"]["train"], ckpt["config"]["run"]
    except (KeyError, TypeError):
        raise GanlstmError(f"{path} has no stage-one training config; pass a checkpoint written by `ganlstm train-gan`.") from None
    gan_config_from_checkpoint(ckpt)  # the architecture section, with its own clear error
    return from_dict(GanTrainConfig, train, where=f"{path}: config.train"), from_dict(RunConfig, run, where=f"{path}: config.run")


def train_gan(cfg: GanTrainConfig, run: RunConfig, resume: str | None = None) -> Path:
    """Train the DCGAN prior; returns the run directory (``config.json``, ``log.csv``, ``samples/``, ``last.pt``, ``best.pt``).

    ``resume`` is a checkpoint, a run directory or ``"last"``: weights, optimisers, EMA, step
    and RNG are restored and training continues to ``run.epochs`` / ``run.max_steps`` (totals,
    not increments). The architecture and training options are then read from the checkpoint.
    """
    if run.compile:
        raise GanlstmError("train-gan does not support compile=True yet; leave it off.")
    device = resolve_device(run.device)
    dist_ = Dist.from_env(device)
    device = dist_.device(device)
    if device.type == "cpu":
        configure_cpu()
    if run.deterministic:
        enable_determinism()
    ckpt = None
    if resume:
        ckpt_path = resolve_resume(resume, run.out, GanTask.name)
        ckpt = load_checkpoint(ckpt_path, kind=GanTask.kind)
        # Architecture and training options come from the checkpoint; so do the seed and batch size,
        # because the data order is a function of (seed, epoch, batch size). Budget and device come from `run`.
        cfg, saved = saved_configs(ckpt)
        run = dataclasses.replace(run, seed=saved.seed, split_seed=saved.split_seed, batch_size=saved.batch_size)
    data = load_gan_data(cfg, run.resolved_split_seed)  # before any directory is created: bad data leaves nothing behind
    if not data.val:
        warnings.warn("no validation sequences (too few sequences or val_fraction=0): no projection score and no best.pt", stacklevel=2)
    seed_everything(run.seed)
    steps_per_epoch = max(1, len(data.train) // dist_.world_size // run.batch_size)
    task = GanTask(cfg, run, device, dist_, data.val, steps_per_epoch)
    if ckpt is not None:
        run_dir = ckpt_path.parent
        state = restore(task, ckpt)
    else:
        run_dir = start_run(GanTask.name, GanTask.kind, run, None, task.config)[0] if dist_.is_main else None
        run_dir = Path(dist_.broadcast(str(run_dir) if run_dir else None))
        state = FitState()
    if dist_.rank:
        # Ranks draw different noise (restore() gave every rank rank 0's RNG).
        torch.manual_seed(run.seed * 1_000_003 + dist_.rank * 7919 + state.step)
    fit(task, data.train, run, dist_=dist_, run_dir=run_dir, state=state, collate=_collate)
    return run_dir


def _collate(items: list) -> Tensor:
    return torch.stack([torch.as_tensor(np.asarray(x)) for x in items])  # (B, C, S, S)


# ---------------------------------------------------------------- evaluation


SPLITS = ("test", "val", "all")


def evaluate_gan(checkpoint: str | Path, data_path: str | Path | None = None, *, frames: int = 64, steps: int = 200,
                 restarts: int = 4, lr: float = 0.05, split: str = "test", seed: int = 0,
                 device: str = "auto") -> dict:
    """Projection SSIM/MSE and intensity-histogram distance of a checkpoint's EMA generator.

    Frames are read from ``data_path`` (default: the training data recorded in the
    checkpoint) with the checkpoint's reading options, and split as training split them.
    ``split="test"`` (default) uses sequences training never saw and did not select
    ``best.pt`` on; ``"val"`` the sequences behind the per-epoch score; ``"all"`` every
    sequence (for a data set the GAN never saw).
    """
    from ..data.frames import read_collection
    from ..models.dcgan import load_generator

    if split not in SPLITS:
        raise GanlstmError(f"unknown split {split!r}; use {', '.join(SPLITS)}.")
    ckpt = load_checkpoint(checkpoint, kind="gan")
    cfg, run = saved_configs(ckpt)
    dev = resolve_device(device)
    G = load_generator(ckpt).to(dev)
    data_path = data_path or cfg.data_path
    sequences = read_collection(data_path, frame_options(cfg))
    if split != "all":
        chosen = [sequences[i] for i in split_sequences(sequences, cfg, run.resolved_split_seed)[split]]
        if not chosen:
            raise GanlstmError(f"{data_path}: the {split} split is empty ({len(sequences)} sequences); use --split all or another split.")
        sequences = chosen
    x = spread_frames(sequences, frames)
    result = projection_quality(G, x, steps=steps, restarts=restarts, lr=lr, seed=seed)
    result.update(checkpoint=ckpt["path"], data=str(data_path), split=split, sequences=[n for n, _ in sequences],
                  steps=steps, restarts=restarts, lr=lr, seed=seed, step=ckpt["step"])
    return result


__all__ = ["GanTask", "GanData", "train_gan", "evaluate_gan", "load_gan_data", "update_ema", "spread_frames", "saved_configs"]
