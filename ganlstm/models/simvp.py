"""SimVP (Gao et al., "SimVP: Simpler yet Better Video Prediction", CVPR 2022), driven one frame at a time.

SimVP has no recurrence. It predicts a **block** of ``T_out`` frames from ``T_in`` frames in
one pass of three convolutional parts:

* a spatial **encoder** applied to every input frame: ``N_S`` conv-GroupNorm-LeakyReLU
  layers, every second one of stride 2 (``N_S = 4``: H/4 x W/4 feature maps of ``hid_S`` channels);
* a temporal **translator** over the features of all ``T_in`` frames stacked along the
  channels, (B, T_in*hid_S, h, w): a U-Net of ``N_T`` encoder-side and ``N_T`` decoder-side
  Inception modules (a 1x1 reduction to ``hid_T/2`` channels, then parallel group
  convolutions with kernels 3, 5, 7, 11 in 8 groups, summed), with skip connections;
* a spatial **decoder** per output frame, mirroring the encoder with transposed
  convolutions, fed at its last layer the first encoder layer's features of the matching
  input frame, then a 1x1 readout.

**The one-frame protocol.** The state holds a rolling buffer of the last ``T_in`` inputs
and a queue of frames already predicted. ``step`` pushes its input into the buffer and
serves the next queued frame; when the queue is empty it first predicts a new block from
the buffer. In closed loop the inputs are the model's own predictions, so the block after
the first is predicted from them and any horizon works. ``observe`` fills the buffer from
the context (the first frame repeated in front while fewer than ``T_in`` frames are seen)
and predicts the first block, so the first prediction always sees the whole context.

**What this means for teacher forcing.** A frame given to ``step`` (the truth, under
scheduled sampling) enters the buffer but does not change frames already queued: SimVP
forecasts a block at a time, so the truth can only condition the *next* block. Training at
a horizon <= ``T_out`` is therefore exactly SimVP's own objective (a whole block, no
teacher forcing) whatever ``sampling_p`` is; at longer horizons scheduled sampling decides,
per sample, whether each later block is predicted from true frames or from the model's own.
Feeding a prediction back explicitly equals ``step(None)``.

Faithful: the encoder, the Inception U-Net translator (``N_S = 4``, ``N_T = 8``, kernels
3/5/7/11, 8 groups), the decoder with its skip, ``T_in = T_out = 10``. Simplified or changed:
``hid_S, hid_T = cfg.hidden`` (the paper's Moving-MNIST setting is ``hidden=(64, 512)``);
the block is a residual on the last input frame, with a zero-initialised readout, so the
untrained model is persistence (see :mod:`.baselines`); groups fall back to 1 where the
channels do not divide by 8 (tiny widths).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..config import ForecasterConfig
from ..errors import GanlstmError
from .base import Forecaster, register
from .baselines import _frame_or_last

SimVPState = tuple[Tensor | None, Tensor | None, Tensor | None]  # (buffer (B, T_in, C, H, W), queue (B, q, C, H, W), last prediction)


def _conv_norm_act(c_in: int, c_out: int, stride: int, *, transpose: bool = False) -> nn.Sequential:
    """3x3 conv (stride 1 or 2; transposed to upsample) -> GroupNorm(2) -> LeakyReLU(0.2): SimVP's spatial layer."""
    if transpose and stride == 2:
        conv = nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=1)
    else:
        conv = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1)
    return nn.Sequential(conv, nn.GroupNorm(2 if c_out % 2 == 0 else 1, c_out), nn.LeakyReLU(0.2))


class Inception(nn.Module):
    """1x1 reduction, then group convolutions of several kernel sizes in parallel, each GroupNorm + LeakyReLU, summed."""

    def __init__(self, c_in: int, c_hid: int, c_out: int, kernels: tuple[int, ...] = (3, 5, 7, 11), groups: int = 8):
        super().__init__()
        if c_hid % groups or c_out % groups:
            groups = 1
        self.reduce = nn.Conv2d(c_in, c_hid, 1)
        self.branches = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c_hid, c_out, k, padding=k // 2, groups=groups), nn.GroupNorm(groups, c_out), nn.LeakyReLU(0.2))
            for k in kernels
        )

    def forward(self, x: Tensor) -> Tensor:
        z = self.reduce(x)  # (B, c_hid, h, w)
        return sum(branch(z) for branch in self.branches)  # (B, c_out, h, w)


class Translator(nn.Module):
    """The temporal U-Net: ``depth`` Inception modules down, ``depth`` up, each up one fed the matching down one's output."""

    def __init__(self, c_in: int, c_hid: int, c_out: int, depth: int):
        super().__init__()
        mid = max(c_hid // 2, 1)
        self.down = nn.ModuleList(Inception(c_in if i == 0 else c_hid, mid, c_hid) for i in range(depth))
        self.up = nn.ModuleList(Inception(c_hid if i == 0 else 2 * c_hid, mid, c_out if i == depth - 1 else c_hid) for i in range(depth))

    def forward(self, x: Tensor) -> Tensor:
        """x (B, T_in*hid_S, h, w) -> (B, T_out*hid_S, h, w)."""
        skips = []
        for i, layer in enumerate(self.down):
            x = layer(x)
            if i < len(self.down) - 1:
                skips.append(x)
        x = self.up[0](x)
        for layer, skip in zip(self.up[1:], reversed(skips)):
            x = layer(torch.cat([x, skip], dim=1))
        return x


@register("simvp")
class SimVP(Forecaster):
    """Encoder -> Inception U-Net over time-stacked features -> decoder: a block of T_out frames from T_in, served one per step.

    State: ``(buffer of the last T_in inputs (B, T_in, C, H, W), queue of predicted frames
    (B, q, C, H, W) or None, last prediction)``.
    """

    t_in = 10
    t_out = 10
    #: N_S, spatial layers in the encoder (and decoder); every second one halves the size.
    spatial_layers = 4
    #: N_T, Inception modules on each side of the translator's U-Net.
    temporal_layers = 8

    def __init__(self, cfg: ForecasterConfig):
        super().__init__(cfg)
        if len(cfg.hidden) != 2:
            raise GanlstmError(f"simvp reads hidden as (spatial width, temporal width), got hidden={tuple(cfg.hidden)}; pass two sizes, e.g. 64,512.")
        if self.t_in != self.t_out:
            raise GanlstmError(f"simvp's decoder pairs output frame j with input frame j, so t_in must equal t_out (got {self.t_in} and {self.t_out}).")
        strides = [1, 2] * (self.spatial_layers // 2) + [1] * (self.spatial_layers % 2)
        scale = 2 ** strides.count(2)
        if cfg.image_size % scale:
            raise GanlstmError(f"simvp's encoder divides the frame size by {scale}, so image_size must be a multiple of {scale} (got {cfg.image_size}); resize frames with --size.")
        hid_s, hid_t = cfg.hidden
        self.hid_s = hid_s
        self.encoder = nn.ModuleList(_conv_norm_act(cfg.channels if i == 0 else hid_s, hid_s, s) for i, s in enumerate(strides))
        self.translator = Translator(self.t_in * hid_s, hid_t, self.t_out * hid_s, self.temporal_layers)
        up = list(reversed(strides))
        self.decoder = nn.ModuleList(_conv_norm_act(hid_s, hid_s, s, transpose=True) for s in up[:-1])
        self.decoder.append(_conv_norm_act(2 * hid_s, hid_s, up[-1], transpose=True))  # + the first encoder layer's features
        self.readout = nn.Conv2d(hid_s, cfg.channels, 1)
        nn.init.zeros_(self.readout.weight)  # untrained model == persistence (see module docstring)
        nn.init.zeros_(self.readout.bias)

    def predict_block(self, buffer: Tensor) -> Tensor:
        """buffer (B, T_in, C, H, W) in [-1, 1] -> the next T_out frames (B, T_out, C, H, W), a residual on the last input."""
        B, T, C, H, W = buffer.shape
        x = buffer.reshape(B * T, C, H, W)
        x = skip = self.encoder[0](x)  # (B*T_in, hid_S, H, W)
        for layer in self.encoder[1:]:
            x = layer(x)  # -> (B*T_in, hid_S, H/4, W/4)
        _, hid, h, w = x.shape
        z = self.translator(x.reshape(B, T * hid, h, w)).reshape(B * self.t_out, hid, h, w)  # (B*T_out, hid_S, h, w)
        for layer in self.decoder[:-1]:
            z = layer(z)
        z = self.decoder[-1](torch.cat([z, skip], dim=1))  # (B*T_out, hid_S, H, W)
        delta = self.readout(z).reshape(B, self.t_out, C, H, W)
        return (buffer[:, -1:] + delta).clamp(-1.0, 1.0)

    def init_state(self, batch: int, device: torch.device) -> SimVPState:
        return None, None, None

    def observe(self, context: Tensor) -> tuple[Tensor, SimVPState]:
        """Fill the buffer from the context (B, J, C, H, W), padding with its first frame, and predict the first block."""
        J = context.shape[1]
        if J < self.t_in:
            buffer = torch.cat([context[:, :1].expand(-1, self.t_in - J, -1, -1, -1), context], dim=1)
        else:
            buffer = context[:, -self.t_in :]
        return self._serve(buffer, None)

    def step(self, frame: Tensor | None, state: SimVPState) -> tuple[Tensor, SimVPState]:
        buffer, queue, last = state
        x = _frame_or_last(frame, last, "simvp")  # (B, C, H, W)
        if buffer is None:  # the first frame seen: repeat it to fill the buffer
            buffer = x.unsqueeze(1).expand(-1, self.t_in, -1, -1, -1)
        else:
            buffer = torch.cat([buffer[:, 1:], x.unsqueeze(1)], dim=1)  # (B, T_in, C, H, W)
        return self._serve(buffer, queue)

    def _serve(self, buffer: Tensor, queue: Tensor | None) -> tuple[Tensor, SimVPState]:
        if queue is None:
            queue = self.predict_block(buffer)  # (B, T_out, C, H, W)
        out = queue[:, 0]
        rest = queue[:, 1:] if queue.shape[1] > 1 else None
        return out, (buffer, rest, out)
