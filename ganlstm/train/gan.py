"""Stage one: train the DCGAN prior on single frames (``ganlstm train-gan``).

:class:`GanTask` is one :class:`~ganlstm.train.task.TrainTask`: a discriminator step and a
generator step per batch, then an EMA update of the generator. :func:`~ganlstm.train.loop.fit`
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

Data are split by sequence, never by frame (:mod:`ganlstm.train.gan_data`), and the ``val_fraction``
sequences score the generator. After every epoch the EMA generator draws a fixed-z grid into
``samples/`` and a cheap proxy of the projection metric is logged to ``metrics.csv``:
:data:`PROXY_FRAMES` validation frames inverted with :data:`PROXY_STEPS` Adam steps from
:data:`PROXY_RESTARTS` starts. Its MSE is the ``score`` that selects ``best.pt``;
``ganlstm evaluate-gan`` (:mod:`ganlstm.train.gan_evaluation`) gives the full metric on the test sequences.
"""
from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from ..checkpoint import load_checkpoint
from ..config import GanTrainConfig, RunConfig, from_dict, to_dict
from ..device import autocast, configure_cpu, make_grad_scaler, resolve_device
from ..errors import GanlstmError
from ..losses import d_loss, g_loss, pixel_loss, r1_penalty
from ..models.augment import AdaptiveAugment, DiffAugment
from ..models.dcgan import build_discriminator, build_generator, gan_config_from_checkpoint, sample_latents
from ..models.encoder import FrameReader
from ..pixel_range import to_model_range, to_unit_range
from ..projection import projection_quality
from ..viz import save_grid
from .distributed import Dist
from .ema import ema_decay, update_ema
from .gan_data import DIVERSITY_FRAMES, load_gan_data, spread_frames
from .gan_health import GanHealth
from .loop import fit
from .nonfinite import check_finite
from .reproducibility import enable_determinism, seed_everything
from .runs import open_run, resolve_resume, restore
from .task import FitState

PROXY_FRAMES = 16  # validation frames inverted after every epoch
PROXY_STEPS = 100
PROXY_RESTARTS = 2
GRID_SAMPLES = 64  # fixed-z samples drawn after every epoch (8 x 8 grid)
PRE_ENCODER_DEFAULTS = {"recon_weight": 0.0, "ada_target": 0.0}  # what checkpoints that lack these keys trained with
ENCODER_LR = 1e-3  # Adam learning rate of the encoder beside G
RECON_ALPHA = 0.5  # the reconstruction term G(E(x)) ~ x is alpha*(1-SSIM) + (1-alpha)*MSE (the original project's 0.5)


class GanTask:
    """Stage one as a TrainTask: models ``G`` (trained), ``G_ema`` (the decoder) and ``D``."""

    kind = "gan"
    name = "gan"

    def __init__(self, cfg: GanTrainConfig, run: RunConfig, device: torch.device, dist_: Dist,
                 val: list[tuple[str, np.ndarray]], steps_per_epoch: int, reference: np.ndarray | None = None):
        self.cfg, self.run, self.device = cfg, run, device
        self.config = {"train": to_dict(cfg), "run": to_dict(run)}
        if cfg.loss not in ("hinge", "ns"):
            raise GanlstmError(f"unknown GAN loss {cfg.loss!r}; use --loss hinge or --loss ns.")
        if not 0.0 <= cfg.ema < 1.0:
            raise GanlstmError(f"--ema {cfg.ema} must be in [0, 1) (0 disables the average: G_ema = G).")
        if cfg.r1 < 0:
            raise GanlstmError(f"--r1 {cfg.r1} must be >= 0 (0 disables the penalty).")
        if cfg.recon_weight < 0 or (cfg.recon_weight and not cfg.model.encoder):
            raise GanlstmError(f"--recon-weight {cfg.recon_weight} needs an encoder beside G: pass --encoder 32 (its width), "
                               f"or --recon-weight 0 for the plain DCGAN.")
        if cfg.ada_target and cfg.diffaug:
            raise GanlstmError("--ada-target and --diffaug both augment D's input; use one of them (--ada-target 0 --diffaug OPS for DiffAugment).")
        self.ada = AdaptiveAugment(cfg.ada_target).to(device) if cfg.ada_target else None
        self.augment = self.ada if self.ada is not None else DiffAugment(cfg.diffaug)
        g = build_generator(cfg.model)
        self.G_ema = build_generator(cfg.model).to(device).requires_grad_(False)
        self.G_ema.load_state_dict(g.state_dict())
        self.G = dist_.prepare(g, device)
        self.G_raw = self.G.module if isinstance(self.G, nn.parallel.DistributedDataParallel) else self.G  # for the EMA
        # D runs twice before each backward (reals, fakes) and is never used in eval mode: its BatchNorm
        # running statistics are never read, so each rank keeps its own (see Dist.prepare).
        d = build_discriminator(cfg.model)
        freeze_discriminator(d, cfg.freeze_d)
        self.D = dist_.prepare(d, device, broadcast_buffers=False)
        self.models = {"G": self.G, "G_ema": self.G_ema, "D": self.D}
        self.E = None
        if cfg.model.encoder:  # a frame reader beside G: G(E(x)) ~ x
            m = cfg.model
            self.E = dist_.prepare(FrameReader(m.channels, m.image_size, m.encoder, m.nz), device)
            self.models["E"] = self.E
        if self.ada is not None:
            self.models["ada"] = self.ada  # its p is a buffer: checkpoints carry it, resume continues it
        betas = (cfg.beta1, cfg.beta2)
        e_params = list(self.E.parameters()) if self.E is not None else []
        self.optimizers = {
            # E is a plain regressor: Adam's usual betas and stage two's learning rate, not the GAN's (beta1 0.5, 2e-4),
            # which left its readings near-constant for hundreds of steps (docs/benchmarks.md).
            "G": torch.optim.Adam([{"params": list(self.G.parameters())},
                                   {"params": e_params, "lr": ENCODER_LR, "betas": (0.9, 0.999)}], lr=cfg.lr_g, betas=betas),
            "D": torch.optim.Adam([p for p in self.D.parameters() if p.requires_grad], lr=cfg.lr_d, betas=betas),
        }
        # One scaler per loss: an overflow in D's backward must not skip G's step, or vice versa.
        self.scalers = {k: make_grad_scaler(device, run.amp) for k in ("G", "D")}
        self.g_params = [*self.G.parameters(), *e_params]
        self.health = GanHealth(device, reconstructs=self.E is not None, adaptive=self.ada is not None)
        self.fixed_z = sample_latents(GRID_SAMPLES, cfg.model.nz, run.seed, device)  # the same grid every epoch
        self.proxy_frames = spread_frames(val, PROXY_FRAMES) if val else None
        self.reference = None if reference is None else torch.from_numpy(reference)
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
        b = real.shape[0]
        z = torch.randn(b, self.cfg.model.nz, device=self.device)
        z_read = None
        with self._precision():
            if self.E is None:
                fake = self.G(z)  # (B, C, S, S); one G forward serves both steps
            else:
                z_read = self.E(real)  # (B, nz)
                both = self.G(torch.cat([z, z_read]))  # (2B, C, S, S): samples and reconstructions share BatchNorm statistics
                fake = both[:b]
        out = self.d_step(real, fake.detach())
        out.update(self.g_step(fake, real, None if z_read is None else both[b:], z_read))
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
        self.health.observe_d(real_logits.detach(), fake_logits.detach())
        if self.ada is not None:
            self.ada.observe(real_logits.detach())
            out["ada_p"] = self.ada.p.detach().clone()
        if use_r1:
            penalty = r1_penalty(real_logits, real)
            loss = loss + 0.5 * self.cfg.r1 * penalty  # gamma/2 * ||grad||^2, Mescheder et al.'s convention
            out["r1"] = penalty.detach()
        self._step("D", loss)
        return out

    def g_step(self, fake: Tensor, real: Tensor | None = None, recon: Tensor | None = None,
               z_read: Tensor | None = None) -> dict[str, Tensor]:
        """Update G (and E) through D's verdict on the (augmented) generated frames; D's weights get no gradient.

        With an encoder, ``recon`` = G(E(real)) (B, C, S, S) must reproduce ``real``, and the readings
        ``z_read`` (B, nz) are pulled towards the N(0, I) moments G samples from, so that stage two's
        reader starts inside the region G draws well.
        """
        no_sync = self.D.no_sync() if isinstance(self.D, nn.parallel.DistributedDataParallel) else contextlib.nullcontext()
        with no_sync, self._precision():
            adv = g_loss(self.D(self.augment(fake)).float(), self.cfg.loss)
        out = {"g_loss": adv.detach()}
        loss = adv
        if recon is not None:
            rec = pixel_loss(to_unit_range(recon.float()), to_unit_range(real), alpha=RECON_ALPHA)
            z = z_read.float()
            moments = z.mean(0).pow(2).mean() + (z.var(0) - 1).pow(2).mean()
            loss = loss + self.cfg.recon_weight * rec + moments
            out.update(recon=rec.detach(), latent_moments=moments.detach())
        self._step("G", loss, inputs=self.g_params)
        self.health.observe_g(adv)
        return out

    def evaluate(self, epoch: int, step: int, run_dir: Path) -> dict[str, float]:
        """Write the fixed-z grid of G_ema; return the projection proxy on validation frames (``score`` = its MSE)."""
        G = self.G_ema
        name = f"epoch_{epoch:04d}" + ("" if step % self.steps_per_epoch == 0 else f"_step_{step:07d}")
        scale = max(1, 64 // G.image_size)
        samples = G.render(self.fixed_z)  # (64, C, S, S) in [0, 1]
        save_grid(samples, run_dir / "samples" / f"{name}.png", nrow=8, scale=scale, overwrite=True)
        real = None if self.proxy_frames is None else torch.from_numpy(self.proxy_frames).to(self.device)  # (N, C, S, S)
        # Collapse is a property of the G being trained: the average G_ema lags it by ~1/(1 - ema) steps.
        drawn = self.G_raw.render(self.fixed_z[:DIVERSITY_FRAMES])  # (N, C, S, S)
        redrawn = None
        if self.E is not None and self.reference is not None:
            redrawn = to_unit_range(self.G_raw(_unwrap(self.E)(to_model_range(self.reference.to(self.device))))).cpu()
        health = self.health.check(step, drawn.cpu(), self.reference, run_dir, redrawn)
        if self.proxy_frames is None:
            return health
        starts = None if self.E is None else _unwrap(self.E)(to_model_range(real))  # (N, nz)
        q = projection_quality(G, self.proxy_frames, steps=PROXY_STEPS, restarts=PROXY_RESTARTS, seed=0, starts=starts)
        out = {"proj_ssim": q["ssim"], "proj_mse": q["mse"], "hist_distance": q["hist_distance"], **health}
        if self.E is not None:
            out.update(reader_quality(G, self.E, real))
        return {**out, "score": q["mse"]}


def freeze_discriminator(D: nn.Module, blocks: int) -> None:
    """FreezeD (Mo, Cho & Shin 2020): fix the first ``blocks`` convolutions of D (and their BatchNorm) when fine-tuning."""
    if blocks < 0:
        raise GanlstmError(f"--freeze-d {blocks} must be >= 0 (0 trains all of D).")
    convs = [i for i, m in enumerate(D.net) if isinstance(m, nn.Conv2d)]
    if blocks >= len(convs):
        raise GanlstmError(f"--freeze-d {blocks} would freeze all {len(convs)} convolutions of D; pass at most {len(convs) - 1}.")
    if blocks:
        D.net[: convs[blocks]].requires_grad_(False)


def init_architecture(cfg: GanTrainConfig, init: dict) -> GanTrainConfig:
    """``cfg`` with the architecture of the checkpoint it fine-tunes (``--init``); size and channels must agree."""
    model = gan_config_from_checkpoint(init)
    if (model.image_size, model.channels) != (cfg.model.image_size, cfg.model.channels):
        raise GanlstmError(f"--init {init['path']} draws {model.channels}x{model.image_size}px frames but {cfg.model.channels}x"
                           f"{cfg.model.image_size}px were asked for; pass --size {model.image_size} --channels {model.channels}, "
                           f"or train from scratch without --init.")
    encoder = cfg.model.encoder if "E" not in init["models"] else model.encoder
    return dataclasses.replace(cfg, model=dataclasses.replace(model, encoder=encoder))


def load_init(task: GanTask, init: dict) -> None:
    """Start G, G_ema, D (and E, when the checkpoint has one) from ``init``'s weights; optimisers start fresh."""
    from ..checkpoint import load_state

    for name in ("G", "G_ema", "D", "E"):
        module = task.models.get(name)
        if module is not None and name in init["models"]:
            load_state(_unwrap(module), init["models"][name], name=name, path=init["path"])


@torch.no_grad()
def reader_quality(G: nn.Module, E: nn.Module, frames: Tensor) -> dict[str, float]:
    """MSE (per-frame sum) and SSIM of G(E(x)) against held-out frames (N, C, S, S) in [0, 1]: one pass, no inversion."""
    from ..metrics import MetricAccumulator

    recon = to_unit_range(G(_unwrap(E)(to_model_range(frames))))  # (N, C, S, S)
    acc = MetricAccumulator()
    acc.update(recon[:, None].cpu(), frames[:, None].cpu())
    mean = acc.summary()
    return {"reader_mse": mean["mse"], "reader_ssim": mean["ssim"]}


def _unwrap(module: nn.Module) -> nn.Module:
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module


def load_reader(ckpt: dict) -> nn.Module | None:
    """Stage one's encoder E (frames in [-1, 1] -> latents) in eval mode, or None when the checkpoint has none."""
    from ..checkpoint import build_checked, load_state

    if "E" not in ckpt["models"]:
        return None
    m = gan_config_from_checkpoint(ckpt)
    path = ckpt.get("path", "checkpoint")
    E = build_checked(lambda: FrameReader(m.channels, m.image_size, m.encoder, m.nz), ckpt["models"]["E"], name="E", path=path)
    load_state(E, ckpt["models"]["E"], name="E", path=path)
    return E.eval().requires_grad_(False)


def check_weights_fit(cfg: GanTrainConfig, ckpt: dict) -> None:
    """Refuse, before anything is allocated, a checkpoint (resumed or ``--init``) whose G, G_ema, D or E weights do not fit ``cfg``'s architecture."""
    from ..checkpoint import check_fits

    m = cfg.model
    builders = {"G": lambda: build_generator(m), "G_ema": lambda: build_generator(m), "D": lambda: build_discriminator(m),
                "E": lambda: FrameReader(m.channels, m.image_size, m.encoder, m.nz)}
    for name, build in builders.items():
        if name in ckpt["models"] and (name != "E" or m.encoder):
            check_fits(build, ckpt["models"][name], name=name, path=ckpt.get("path", "checkpoint"))


def saved_configs(ckpt: dict) -> tuple[GanTrainConfig, RunConfig]:
    """The training and run configs recorded in a stage-one checkpoint."""
    path = ckpt.get("path", "checkpoint")
    try:
        train, run = ckpt["config"]["train"], ckpt["config"]["run"]
    except (KeyError, TypeError):
        raise GanlstmError(f"{path} has no stage-one training config; pass a checkpoint written by `ganlstm train-gan`.") from None
    model = gan_config_from_checkpoint(ckpt)  # the architecture section, with its own clear error
    if isinstance(train, dict):  # runs from before these options existed trained without them
        train = {**PRE_ENCODER_DEFAULTS, **train, "model": dataclasses.asdict(model)}
    return from_dict(GanTrainConfig, train, where=f"{path}: config.train"), from_dict(RunConfig, run, where=f"{path}: config.run")


def train_gan(cfg: GanTrainConfig, run: RunConfig, resume: str | None = None, *,
              on_start: Callable[[Path], None] | None = None) -> Path:
    """Train the DCGAN prior; returns the run directory (``config.json``, ``log.csv``, ``samples/``, ``last.pt``, ``best.pt``).

    ``resume`` is a checkpoint, a run directory or ``"last"``: weights, optimisers, EMA, step
    and RNG are restored and training continues to ``run.epochs`` / ``run.max_steps`` (totals,
    not increments). The architecture and training options are then read from the checkpoint.
    ``on_start`` is called with a new run's directory as soon as it exists (``fit`` records it there).
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
    init = None
    if cfg.init and ckpt is None:
        init = load_checkpoint(cfg.init, kind=GanTask.kind)
        cfg = init_architecture(cfg, init)
    data = load_gan_data(cfg, run.resolved_split_seed)  # before any directory is created: bad data leaves nothing behind
    if not data.val:
        warnings.warn("no validation sequences (too few sequences or val_fraction=0): no projection score and no best.pt", stacklevel=2)
    seed_everything(run.seed)
    steps_per_epoch = max(1, len(data.train) // dist_.world_size // run.batch_size)
    if ckpt is not None or init is not None:  # before the task allocates the architecture the checkpoint's config names
        check_weights_fit(cfg, ckpt if ckpt is not None else init)
    task = GanTask(cfg, run, device, dist_, data.val, steps_per_epoch, data.reference)
    if ckpt is not None:
        state = restore(task, ckpt)
    else:
        state = FitState()
        if init is not None:
            load_init(task, init)
    # After the checkpoint's state is checked and restored: a refused file leaves no run directory behind.
    run_dir = open_run(GanTask.name, run, task.config, dist_, resume_from=ckpt_path if ckpt is not None else None, on_start=on_start)
    if dist_.rank:
        # Ranks draw different noise (restore() gave every rank rank 0's RNG).
        torch.manual_seed(run.seed * 1_000_003 + dist_.rank * 7919 + state.step)
    fit(task, data.train, run, dist_=dist_, run_dir=run_dir, state=state, collate=_collate)
    return run_dir


def _collate(items: list) -> Tensor:
    return torch.stack([torch.as_tensor(np.asarray(x)) for x in items])  # (B, C, S, S)


__all__ = ["GanTask", "train_gan", "saved_configs", "reader_quality", "load_reader"]
