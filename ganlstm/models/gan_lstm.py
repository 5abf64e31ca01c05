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

Dynamics cell (``ForecasterConfig.cell``, ``train-encoder --cell``): the stacked ConvLSTM of the
original method (``convlstm``), or a ConvGRU (``convgru``, :mod:`.convgru`), which keeps one state
per layer instead of two.

Settings that were measured and lost (a separate or frozen reader, refining the last reading by
inversion steps, training on the anchored frames, a loss on inverted future latents, extra weight
on the first horizons) were removed; their numbers are in docs/benchmarks.md.

Residual anchoring (``ForecasterConfig.anchor_decay``, ``--anchor-decay D``; prediction only): G
cannot draw the last observed frame exactly, and its error there, ``r = x_J - G(read(x_J))``, is
nearly its error one frame later. Adding ``D**(k-1) * r`` to the k-th predicted frame removes it
where it still applies. Horizon 1 becomes the observed frame moved by the predicted change,
``x_J + G(z_1) - G(read(x_J))``. Measured on the merger benchmark with the shipped checkpoint
(docs/benchmarks.md): D = 0.5, chosen on validation, took test horizon 1 from MSE 3.84 / SSIM 0.791
to 2.42 / 0.848, past persistence (2.57 / 0.838), improved horizon 2 and left 10-30 unchanged. Training never
sees it; validation, like ``predict``, scores the anchored frames.

Motion scale (``ForecasterConfig.motion_scale``, ``--motion-scale S``; prediction only): the k-th
frame is drawn from ``z_J + S * (z_k - z_J)``, the predicted latent change from the last frame's
reading ``z_J`` scaled, then anchored. ``S = 1`` is the model as trained; ``S = 0`` draws the last
frame's reading at every horizon (with decay 1: copy-last-frame exactly). Between them the motion
is slowed, and every frame is still one G draws, not a blend of two frames. ``fit`` chooses S with
the decay on its validation windows, so a model trained on a few hundred frames whose motion does
not help there falls back towards persistence by degrees instead of losing to it
(docs/benchmarks.md, "Your own frames"). Below 1 it costs one more decode per predicted frame.

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
from ..rollout import Correction
from .base import Forecaster, register
from .context_check import MIN_CONTEXT, choose_on_context
from .convgru import ConvGRU
from .convlstm import ConvLSTM, LayerState
from .dcgan import Generator, build_generator
from .encoder import FEATURE_SIZE, FrameEncoder, LatentHead, LatentLift

FEEDBACK_MODES = ("latent", "pixels")
CELLS = {"convlstm": ConvLSTM, "convgru": ConvGRU}  # the dynamics model between reading and drawing
READER_BATCH = 64  # frames per reader warm-up step, drawn from the batch's windows

# (per-layer state at 8x8: (h, c) for the ConvLSTM, h for the ConvGRU; latent of the latest step (B, nz);
#  G's drawing of that latent (B, C, S, S) when the rollout already made it (pixel feedback), else None)
GanLstmState = tuple[list[LayerState | Tensor], Tensor | None, Tensor | None]


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
        if cfg.cell not in CELLS:
            raise GanlstmError(f"unknown cell {cfg.cell!r} for gan_lstm; use one of {', '.join(CELLS)}.")
        self.set_anchor_decay(cfg.anchor_decay)
        self.set_motion_scale(cfg.motion_scale)
        self.set_context_check(cfg.context_check)
        self.encoder = FrameEncoder(cfg.channels, cfg.image_size, hidden[0])  # (B, C, S, S) -> (B, hid0, 8, 8)
        self.read = LatentHead(hidden[0], nz)  # observed frame's features -> its latent
        self.lstm = CELLS[cfg.cell](hidden[0], hidden, cfg.kernel)  # the dynamics at 8x8 (name kept for checkpoints)
        self.head = LatentHead(hidden[-1], nz)  # top hidden -> latent increment
        nn.init.zeros_(self.head.net[-1].weight)  # untrained model == latent persistence (see module docstring)
        nn.init.zeros_(self.head.net[-1].bias)
        self.lift = LatentLift(nz, hidden[0]) if cfg.feedback == "latent" else None
        self.latent_noise = 0.0  # std of the nudge added to each predicted latent; > 0 only while sampling futures
        self.noise_generator: torch.Generator | None = None
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

        own = {f"{part}.{k}": tuple(v.shape) for part, m in (("encoder", self.encoder), ("read", self.read))
               for k, v in m.state_dict().items()}
        if {k: tuple(getattr(v, "shape", ())) for k, v in state.items()} != own:
            return False
        load_state(self.encoder, {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}, name="E.encoder", path=path)
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

    def reader_parameters(self) -> list[nn.Parameter]:
        """The frame reader: its encoder and ``read`` (what the reader warm-up trains)."""
        return [*self.encoder.parameters(), *self.read.parameters()]

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Everything but the generator: what the stage-two optimiser holds."""
        return [p for name, p in self.named_parameters() if not name.startswith("generator.")]

    # ------------------------------------------------------------ protocol

    def init_state(self, batch: int, device: torch.device) -> GanLstmState:
        dtype = self.generator.net[0].weight.dtype
        return self.lstm.init_state(batch, FEATURE_SIZE, FEATURE_SIZE, device, dtype), None, None

    @property
    def draws_while_rolling(self) -> bool:
        """Pixel feedback reads each prediction back through G anyway: the rollout keeps that drawing (one decode per frame)."""
        return self.lift is None

    def frame_of(self, z: Tensor, state: GanLstmState) -> tuple[Tensor, GanLstmState]:
        """G's frame (B, C, S, S) for the latest output ``z`` (B, nz), and the state that remembers it for the next step."""
        frame = self.generator(z)
        return frame, (state[0], state[1], frame)

    def step(self, frame: Tensor | None, state: GanLstmState) -> tuple[Tensor, GanLstmState]:
        """frame (B, C, S, S) in [-1, 1], or None to continue from the last prediction -> next latent (B, nz)."""
        layers, z_last, drawn = state
        if frame is not None:
            feat = self.encoder(frame)  # (B, F, 8, 8)
            z_in = self.read(feat)  # (B, nz): a fresh reading
        elif z_last is None:
            raise ValueError("gan_lstm: the first step needs an observed frame (got None before any prediction)")
        else:
            z_in = z_last  # (B, nz)
            if self.lift is not None:
                feat = self.lift(z_in)  # (B, F, 8, 8)
            else:  # pixel feedback: read back G's drawing of the last prediction (drawn once, by frame_of)
                feat = self.encoder(drawn if drawn is not None else self.generator(z_in))
        top, layers = self.lstm(feat, layers)  # (B, hid[-1], 8, 8)
        dz = self.head(top)  # (B, nz)
        if self.latent_noise:  # an ensemble member (ganlstm.ensemble): a random nudge of every predicted latent
            dz = dz + self.latent_noise * torch.randn(dz.shape, device=dz.device, dtype=dz.dtype, generator=self.noise_generator)
        z_next = self.cap(z_in + dz)  # (B, nz)
        return z_next, (layers, z_next, None)

    def set_anchor_decay(self, decay: float) -> None:
        """Turn residual anchoring on (0 < decay <= 1) or off (0); see :meth:`anchor`."""
        if not 0 <= decay <= 1:
            raise GanlstmError(f"anchor_decay={decay} must be in [0, 1] (0 turns it off).")
        self.anchor_decay = float(decay)
        self.cfg = dataclasses.replace(self.cfg, anchor_decay=float(decay))

    def set_motion_scale(self, scale: float) -> None:
        """Scale the predicted latent change from the last frame's reading by ``scale`` in prediction (1 = as predicted)."""
        if not 0 <= scale <= 1:
            raise GanlstmError(f"motion_scale={scale} must be in [0, 1] (1 = as predicted, 0 = the last frame's reading).")
        self.motion_scale = float(scale)
        self.cfg = dataclasses.replace(self.cfg, motion_scale=float(scale))

    def set_context_check(self, on: bool) -> None:
        """Choose the decay and the motion scale per sequence on its own context (True) or use the recorded ones."""
        self.context_check = bool(on)
        self.cfg = dataclasses.replace(self.cfg, context_check=bool(on))

    def correction(self, context: Tensor) -> Correction | None:
        """Residual anchoring and the motion scale for predictions from ``context`` (B, J, C, H, W) in [-1, 1]; None when both are off.

        The recorded ``anchor_decay`` and ``motion_scale``, or with ``context_check`` the pair chosen per
        sequence on its own frames (:mod:`.context_check`). The residual is the last observed frame's
        reading error ``x_J - G(read(x_J))``; the k-th frame gets ``decay**(k-1)`` of it, so with no
        predicted change horizon 1 is ``x_J`` itself.
        """
        b = context.shape[0]
        if self.context_check and context.shape[1] >= MIN_CONTEXT:
            decay, scale, _, warm = choose_on_context(self, context, (self.anchor_decay, self.motion_scale))  # (B,), (B,)
            anchored, scaled = bool((decay > 0).any()), bool((scale != 1).any())  # the check's one host sync
        else:
            decay = torch.full((b,), self.anchor_decay, device=context.device)
            scale = torch.full((b,), self.motion_scale, device=context.device)
            anchored, scaled, warm = self.anchor_decay > 0, self.motion_scale != 1, None
        if not (anchored or scaled or warm is not None):
            return None
        last = context[:, -1]  # (B, C, S, S)
        origin = self.encode(last) if anchored or scaled else None  # (B, nz)
        residual = (last - self.generator(origin).to(last.dtype)).detach() if anchored else None
        return Correction(decay=decay, scale=scale, residual=residual, origin=origin.detach() if scaled else None,
                          warm=warm)

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
        return self.read(self.encoder(frames))

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
        reader_only: bool = False,
        gdl_weight: float = 0.0,
        **_: Any,
    ) -> dict[str, Tensor]:
        """Losses for windows in [0, 1]: context (B, J, C, H, W), target (B, K, C, H, W); ``loss`` is optimised.

        ``reader_only`` (the reader warm-up): only ``G(read(E(x))) ~ x`` on :data:`READER_BATCH`
        single frames of the windows, the amortised inversion that every forecast starts from.
        """
        from ..rollout import rollout

        if reader_only:
            return self.reader_loss(torch.cat([context, target], 1).flatten(0, 1), alpha=alpha, bright_weight=bright_weight)

        # (B, K, C, H, W) in [-1, 1]: each latent drawn once
        pred = rollout(self, to_model_range(context), target.shape[1], teacher=to_model_range(target), sampling_p=sampling_p)
        pixel = rollout_pixel_loss(to_unit_range(pred), target, alpha=alpha, bright_weight=bright_weight, gdl_weight=gdl_weight)
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
        losses["loss"] = total
        return losses
