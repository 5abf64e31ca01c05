"""The GAN-prior forecaster: encoder + stacked ConvLSTM into the latent space of a frozen DCGAN generator.

Xu et al., "Satellite Image Prediction Relying on GAN and LSTM Neural Networks" (IEEE ICC
2019): stage one trains a DCGAN on single frames; stage two trains an encoder and a ConvLSTM
to predict, from the observed frames, the generator latent of each next frame, and the
frozen generator renders it. Predictions therefore always look like frames the generator
can draw (sharp), at the price that they can be no better than the generator's best
reconstruction of the truth.

One step (shapes for a 64 px frame, F = hidden[0])::

    frame (B, C, 64, 64) --FrameEncoder--> feat (B, F, 8, 8) --read--> z_in (B, nz)
    closed loop (frame=None): z_in = previous prediction; feat = lift(z_in)       (feedback="latent")
                                                          or encoder(G(z_in))     (feedback="pixels")
    feat --ConvLSTM--> h (B, hid[-1], 8, 8) --head--> dz (B, nz);  z_next = z_in + dz

Predicting an increment over the current latent makes the untrained model "latent
persistence" (G's reconstruction of the last frame), as the pixel baselines start from
pixel persistence; training then spends its budget on motion.

Feedback of a prediction (``ForecasterConfig.feedback``):

* ``"pixels"`` (default): decode ``G(z)`` and re-encode it every closed-loop step: exactly what
  scheduled sampling feeds back during training, at one generator call per step.
* ``"latent"``: a small learned :class:`~ganlstm.models.encoder.LatentLift` maps the predicted z
  straight to encoder features, with no decode/re-encode per step. It is trained to reproduce
  what the encoder sees on the generator's rendering, ``lift(z) ~ encoder(G(z))``, on the
  encoder's own readings of observed frames (a distillation loss, ``lift``).

Measured on simulated 32 px mergers (600 steps each, hidden (32, 32), a 1400-step DCGAN with
ngf 32; 126 held-out test windows, j = k = 10), pixel feedback was more accurate, with a mean
MSE over horizons 1-10 of 7.63 against 8.76 and an SSIM of 0.531 against 0.512, while the
latent rollout took 0.73x the time (one run each). Hence the default; ``latent`` is the faster
choice when decoding dominates a step.

Losses (:meth:`GanLstm.training_loss`): the pixel loss through the generator,
``alpha*(1-SSIM) + (1-alpha)*MSE``; a reconstruction loss ``G(read(E(x))) ~ x`` on the last
observed frame (keeps the encoder's reading faithful: the closed loop starts from it); the
distillation loss above; and an optional latent loss against latents of the true future
frames found by inversion (:func:`ganlstm.projection.project`).

Latent cap (``ForecasterConfig.latent_cap``, ``train-encoder --latent-cap R``): G learned only
latents drawn from N(0, I), whose RMS is ~1. Unconstrained, closed-loop predictions drift out of
that shell (measured: RMS 0.95 at horizon 1, 1.59 at horizon 20, with single entries past 5) and
G answers with grid artefacts. Each predicted latent whose RMS exceeds R is scaled back onto it;
the direction, which carries the frame's content, is kept. The same step runs in training and
prediction, so the ConvLSTM learns within the cap.

Reader warm-up (``ForecastTrainConfig.reader_warmup``, ``train-encoder --reader-warmup N``):
every prediction starts from ``read(E(x))``, the encoder's reading of the last observed frame,
so a reader that inverts G badly caps every horizon. The first N training steps therefore train
only ``encoder`` and ``read``, on single frames, to reproduce them through G (amortised GAN
inversion); the ConvLSTM then learns motion from a faithful reading. Measured on the merger
benchmark (docs/benchmarks.md), with a spatial-latent generator whose projection SSIM is 0.88:
after a 3000-step warm-up the reader reproduced held-out frames with MSE 2.15 / SSIM 0.86
(persistence one frame ahead: 2.90 / 0.82), while without the warm-up the forecaster's
horizon-1 SSIM stayed near 0.7.

After the warm-up the forecast loss trades reading quality for motion (measured: a reading MSE
of 2.15 after the warm-up, 3.42 after the forecasting phase, on held-out frames). Two switches
address it: ``freeze_reader`` keeps the reader fixed after the warm-up, and ``separate_reader``
gives the reading its own encoder, so that a frozen reader does not also freeze the ConvLSTM's
input features.

Refined reading (``ForecasterConfig.refine_steps``, ``train-encoder --refine-steps N``): the
encoder reads a frame in one pass, which G can reproduce only so well; N Adam steps on
``||G(z) - x||^2`` from the encoder's latent (encoder-initialised GAN inversion, Zhu et al.,
"In-Domain GAN Inversion", ECCV 2020; :func:`ganlstm.projection.refine`) read it much closer.
Only the last observed frame is refined, in :meth:`GanLstm.observe`. The difference, offset =
refined - encoder latent, is a constant added to what is drawn: the k-th predicted latent is
``cap(z_k + refine_decay**(k-1) * offset)``, while the trajectory z_k itself, what the ConvLSTM
feeds back, runs on the encoder's readings as without refinement. Training does the same.
Measured on the merger benchmark (docs/benchmarks.md): starting the trajectory itself from the
refined latent read horizon 1 better but carried the last frame's details into every later
frame, far worse from horizon 5 on. Cost: N generator forward+backward passes per rollout, once,
however long the rollout.

Residual anchoring (``ForecasterConfig.anchor_decay``, ``--anchor-decay D``; prediction only): G
cannot draw the last observed frame exactly, and its error there, ``r = x_J - G(read(x_J))``, is
nearly its error one frame later. Adding ``D**(k-1) * r`` to the k-th predicted frame removes it
where it still applies. Horizon 1 becomes the observed frame moved by the predicted change,
``x_J + G(z_1) - G(read(x_J))``. Measured on the merger benchmark with the shipped checkpoint
(docs/benchmarks.md): D = 0.5, chosen on validation, took test horizon 1 from MSE 3.84 / SSIM 0.791
to 2.42 / 0.848, past persistence (2.57 / 0.838), improved horizon 2 and left 10-30 unchanged. Training sees
it only with ``anchor_loss`` (measured worse); validation, like ``predict``, scores the anchored frames.

The generator is a submodule, so its weights are in this model's ``state_dict`` and one
checkpoint suffices for prediction; it is frozen (``requires_grad_(False)``) and stays in
eval mode whatever ``train()`` is asked, so its BatchNorm statistics never move.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import ForecasterConfig
from ..errors import GanlstmError
from ..losses import pixel_loss, rollout_pixel_loss
from ..pixel_range import to_model_range, to_unit_range
from .base import Forecaster, register
from .convlstm import ConvLSTM, LayerState
from .dcgan import Generator, build_generator
from .encoder import FEATURE_SIZE, FrameEncoder, LatentHead, LatentLift

FEEDBACK_MODES = ("latent", "pixels")
# Latent loss: Adam steps / restarts of the inversion of each batch's true future frames.
# Few steps, one restart: the targets only need to be better latents than the model's, and
# inversion runs on every batch (it costs about PROJECT_STEPS generator forward+backward passes).
PROJECT_STEPS = 30
PROJECT_RESTARTS = 1
PROJECT_LR = 0.05
READER_BATCH = 64  # frames per reader warm-up step, drawn from the batch's windows

# (per-layer (h, c) at 8x8, latent of the latest step (B, nz), what refinement adds to the next output (B, nz) or None)
GanLstmState = tuple[list[LayerState], Tensor | None, Tensor | None]


@register("gan_lstm")
class GanLstm(Forecaster):
    """Encoder + ConvLSTM predicting generator latents; ``step`` returns z (B, nz), ``render`` is the frozen G."""

    def __init__(self, cfg: ForecasterConfig):
        super().__init__(cfg)
        if cfg.gan is None:
            raise GanlstmError("the gan_lstm model needs the generator's architecture (ForecasterConfig.gan); train it with `ganlstm train-encoder --gan GAN_CKPT`.")
        if cfg.feedback not in FEEDBACK_MODES:
            raise GanlstmError(f"unknown feedback {cfg.feedback!r} for gan_lstm; use one of {', '.join(FEEDBACK_MODES)}.")
        if (cfg.gan.image_size, cfg.gan.channels) != (cfg.image_size, cfg.channels):
            raise GanlstmError(
                f"the forecaster reads {cfg.channels}x{cfg.image_size}px frames but the generator draws "
                f"{cfg.gan.channels}x{cfg.gan.image_size}px; read frames at the generator's size and channels."
            )
        hidden = list(cfg.hidden)
        nz = cfg.gan.nz
        self.nz = nz
        self.feedback = cfg.feedback
        if cfg.latent_cap < 0:
            raise GanlstmError(f"latent_cap={cfg.latent_cap} must be >= 0 (0 turns the cap off).")
        self.latent_cap = cfg.latent_cap
        if cfg.refine_steps < 0 or cfg.refine_lr <= 0 or not 0 <= cfg.refine_decay <= 1:
            raise GanlstmError(f"refine_steps={cfg.refine_steps} must be >= 0, refine_lr={cfg.refine_lr} > 0 and "
                               f"refine_decay={cfg.refine_decay} in [0, 1].")
        self.refine_steps, self.refine_lr, self.refine_decay = cfg.refine_steps, cfg.refine_lr, cfg.refine_decay
        self.set_anchor_decay(cfg.anchor_decay)
        self.encoder = FrameEncoder(cfg.channels, cfg.image_size, hidden[0])  # (B, C, S, S) -> (B, hid0, 8, 8)
        self.read = LatentHead(hidden[0], nz)  # observed frame's features -> its latent
        # Optionally the reading gets an encoder of its own (the ConvLSTM keeps self.encoder).
        self.reader_encoder = FrameEncoder(cfg.channels, cfg.image_size, hidden[0]) if cfg.separate_reader else None
        self.lstm = ConvLSTM(hidden[0], hidden, cfg.kernel)
        self.head = LatentHead(hidden[-1], nz)  # top hidden -> latent increment
        nn.init.zeros_(self.head.net[-1].weight)  # untrained model == latent persistence (see module docstring)
        nn.init.zeros_(self.head.net[-1].bias)
        self.lift = LatentLift(nz, hidden[0]) if cfg.feedback == "latent" else None
        # channels_last: the batched decode of a rollout ran ~10% faster on CPU in this layout (benchmarks/speed.py).
        self.generator = build_generator(cfg.gan).eval().requires_grad_(False).to(memory_format=torch.channels_last)

    # ------------------------------------------------------------ frozen generator

    def train(self, mode: bool = True) -> GanLstm:
        """Set train/eval mode for the trainable parts; the generator always stays in eval mode."""
        super().train(mode)
        self.generator.eval()
        return self

    def load_generator(self, generator: Generator) -> GanLstm:
        """Copy a trained generator's weights (and BatchNorm statistics) into the embedded frozen one."""
        if (generator.nz, generator.image_size, generator.channels) != (self.nz, self.cfg.image_size, self.cfg.channels):
            raise GanlstmError("the generator does not match the forecaster's config (nz, image size, channels); build the config from the same GAN checkpoint.")
        self.generator.load_state_dict(generator.state_dict())
        return self

    def load_reader(self, state: dict, path: str = "checkpoint") -> bool:
        """Start the frame reader (encoder + read) from stage one's encoder E (a FrameReader state_dict).

        Returns False, changing nothing, when E's width differs from the reader's (``hidden[0]``).
        """
        from ..checkpoint import load_state

        own = {f"{part}.{k}": tuple(v.shape) for part, m in (("encoder", self.reading_encoder), ("read", self.read))
               for k, v in m.state_dict().items()}
        if {k: tuple(getattr(v, "shape", ())) for k, v in state.items()} != own:
            return False
        load_state(self.reading_encoder, {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}, name="E.encoder", path=path)
        load_state(self.read, {k[len("read."):]: v for k, v in state.items() if k.startswith("read.")}, name="E.read", path=path)
        return True

    def reader_loss(self, frames: Tensor, *, alpha: float = 0.5, bright_weight: float = 0.0) -> dict[str, Tensor]:
        """``G(read(E(x))) ~ x`` on up to :data:`READER_BATCH` random frames of ``frames`` (N, C, H, W) in [0, 1]."""
        x = frames[torch.randperm(len(frames), device=frames.device)[:READER_BATCH]]  # (n, C, H, W)
        recon = self.generator(self.encode(to_model_range(x)))  # (n, C, H, W) in [-1, 1]
        loss = pixel_loss(to_unit_range(recon), x, alpha=alpha, bright_weight=bright_weight)
        # DDP wants every trainable parameter in the graph; the idle ones get exactly zero gradient (no Adam movement).
        reading = {id(p) for p in self.reader_parameters()}
        idle = sum(p.sum() for p in self.parameters() if p.requires_grad and id(p) not in reading)
        return {"recon": loss, "loss": loss + 0.0 * idle}

    @property
    def reading_encoder(self) -> FrameEncoder:
        """The encoder whose features ``read`` turns into latents: ``reader_encoder`` if separate, else the shared one."""
        return self.encoder if self.reader_encoder is None else self.reader_encoder

    def reader_parameters(self) -> list[nn.Parameter]:
        """The frame reader: its encoder and ``read`` (what the reader warm-up trains)."""
        return [*self.reading_encoder.parameters(), *self.read.parameters()]

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Everything but the generator: what the stage-two optimiser holds."""
        return [p for name, p in self.named_parameters() if not name.startswith("generator.")]

    # ------------------------------------------------------------ protocol

    def init_state(self, batch: int, device: torch.device) -> GanLstmState:
        dtype = self.generator.net[0].weight.dtype
        return self.lstm.init_state(batch, FEATURE_SIZE, FEATURE_SIZE, device, dtype), None, None

    def step(self, frame: Tensor | None, state: GanLstmState) -> tuple[Tensor, GanLstmState]:
        """frame (B, C, S, S) in [-1, 1], or None to continue from the last prediction -> next latent (B, nz)."""
        return self._advance(frame, state, refine=False)

    def observe(self, context: Tensor) -> tuple[Tensor, GanLstmState]:
        """Feed the context (B, J, C, H, W); the reading of its last frame is refined (``refine_steps``) before the forecast."""
        _, state = super().observe(context[:, :-1])  # every frame but the last, as step() reads them
        return self._advance(context[:, -1], state, refine=True)

    def _advance(self, frame: Tensor | None, state: GanLstmState, *, refine: bool) -> tuple[Tensor, GanLstmState]:
        layers, z_last, offset = state
        if frame is not None:
            feat = self.encoder(frame)  # (B, F, 8, 8)
            z_in = self.read(feat if self.reader_encoder is None else self.reader_encoder(frame))  # (B, nz)
            # A fresh reading; for the last observed frame, what inversion steps add to it (constant, (B, nz)).
            offset = self.refine(frame, z_in) - z_in.detach() if refine and self.refine_steps else None
        elif z_last is None:
            raise ValueError("gan_lstm: the first step needs an observed frame (got None before any prediction)")
        else:
            z_in = z_last  # (B, nz)
            feat = self.lift(z_in) if self.lift is not None else self.encoder(self.generator(z_in))  # (B, F, 8, 8)
        top, layers = self.lstm(feat, layers)  # (B, hid[-1], 8, 8)
        z_next = self.cap(z_in + self.head(top))  # (B, nz): the trajectory, on the encoder's readings
        if offset is None:
            return z_next, (layers, z_next, None)
        # What is drawn: the trajectory plus what is left of the refinement (refine_decay per step).
        return self.cap(z_next + offset), (layers, z_next, self.refine_decay * offset)

    def refine(self, frame: Tensor, z: Tensor) -> Tensor:
        """The reading z (B, nz) of frame (B, C, S, S) in [-1, 1] after ``refine_steps`` inversion steps (detached)."""
        from ..projection import refine

        return refine(self.generator, to_unit_range(frame), z, self.refine_steps, self.refine_lr)

    def set_anchor_decay(self, decay: float) -> None:
        """Turn residual anchoring on (0 < decay <= 1) or off (0); see :meth:`anchor`."""
        if not 0 <= decay <= 1:
            raise GanlstmError(f"anchor_decay={decay} must be in [0, 1] (0 turns it off).")
        if decay and self.refine_steps:
            raise GanlstmError("anchor_decay and refine_steps both correct the reading of the last observed frame; use one of them.")
        self.anchor_decay = float(decay)
        self.cfg = dataclasses.replace(self.cfg, anchor_decay=float(decay))

    def anchor(self, context: Tensor) -> tuple[Tensor, float] | None:
        """The last observed frame's reading error ``x_J - G(read(x_J))`` (B, C, S, S) and ``anchor_decay``; None when off.

        The k-th predicted frame gets ``anchor_decay**(k-1)`` of it (:func:`ganlstm.rollout.iter_predict`),
        so horizon 1 is ``x_J + G(z_1) - G(read(x_J))``: the observed frame moved by the predicted change.
        """
        if not self.anchor_decay:
            return None
        last = context[:, -1]  # (B, C, S, S) in [-1, 1]
        return (last - self.generator(self.encode(last)).to(last.dtype)).detach(), self.anchor_decay

    def cap(self, z: Tensor) -> Tensor:
        """Scale each latent (B, nz) whose RMS exceeds ``latent_cap`` back onto that radius (identity when off)."""
        if not self.latent_cap:
            return z
        rms = z.pow(2).mean(1, keepdim=True).sqrt()  # (B, 1)
        return z * torch.clamp(self.latent_cap / rms.clamp_min(1e-12), max=1.0)

    def render(self, out: Tensor) -> Tensor:
        """Latents (N, nz) -> frames (N, C, S, S) in [-1, 1] through the frozen generator."""
        return self.generator(out)

    # ------------------------------------------------------------ latents

    def encode(self, frames: Tensor) -> Tensor:
        """The encoder's reading of frames (N, C, S, S) in [-1, 1]: latents (N, nz) with G(z) ~ frame."""
        return self.read(self.reading_encoder(frames))

    # ------------------------------------------------------------ training

    def training_loss(
        self,
        context: Tensor,
        target: Tensor,
        *,
        sampling_p: float,
        alpha: float = 0.5,
        bright_weight: float = 0.0,
        recon_weight: float = 0.0,
        latent_weight: float = 0.0,
        reader_only: bool = False,
        early_weight: float = 0.0,
        gdl_weight: float = 0.0,
        anchor_loss: bool = False,
        **_: Any,
    ) -> dict[str, Tensor]:
        """Losses for windows in [0, 1]: context (B, J, C, H, W), target (B, K, C, H, W); ``loss`` is optimised.

        ``reader_only`` (the reader warm-up): only ``G(read(E(x))) ~ x`` on :data:`READER_BATCH`
        single frames of the windows, the amortised inversion that every forecast starts from.
        ``anchor_loss``: the pixel loss scores the frames with residual anchoring added, as
        prediction returns them (needs ``anchor_decay`` > 0).
        """
        from ..rollout import add_anchor, render_all, rollout_outputs

        if reader_only:
            return self.reader_loss(torch.cat([context, target], 1).flatten(0, 1), alpha=alpha, bright_weight=bright_weight)

        pred_z = rollout_outputs(self, to_model_range(context), target.shape[1], teacher=to_model_range(target), sampling_p=sampling_p)  # (B, K, nz)
        pred = render_all(self, pred_z)  # (B, K, C, H, W) in [-1, 1]: one generator call
        if anchor_loss:
            anchor = self.anchor(to_model_range(context))
            if anchor is None:
                raise GanlstmError("anchor_loss needs residual anchoring: pass --anchor-decay D (0 < D <= 1) with --anchor-loss.")
            pred = add_anchor(pred, *anchor)
        pixel = rollout_pixel_loss(to_unit_range(pred), target, alpha=alpha, bright_weight=bright_weight, early_weight=early_weight,
                                   gdl_weight=gdl_weight)
        losses = {"pixel": pixel}
        total = pixel

        if recon_weight > 0 or self.lift is not None:
            last = context[:, -1]  # (B, C, H, W): the frame the closed loop starts from
            z_read = self.encode(to_model_range(last))  # (B, nz)
            recon = self.generator(z_read)  # (B, C, H, W) in [-1, 1]
        if recon_weight > 0:
            losses["recon"] = pixel_loss(to_unit_range(recon), last, alpha=alpha, bright_weight=bright_weight)
            total = total + recon_weight * losses["recon"]
        if self.lift is not None:
            with torch.no_grad():
                seen = self.encoder(recon)  # (B, F, 8, 8): what pixel feedback would feed back
            losses["lift"] = F.mse_loss(self.lift(z_read.detach()), seen)
            total = total + losses["lift"]
        if latent_weight > 0:
            from ..projection import project

            z_true, _ = project(self.generator, target.flatten(0, 1).detach(), PROJECT_STEPS, PROJECT_RESTARTS, PROJECT_LR)
            losses["latent"] = F.mse_loss(pred_z.flatten(0, 1), z_true.to(pred_z.dtype))
            total = total + latent_weight * losses["latent"]
        losses["loss"] = total
        return losses
