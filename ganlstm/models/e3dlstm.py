"""E3D-LSTM (Wang et al., "Eidetic 3D LSTM: A Model for Video Prediction and Beyond", ICLR 2019).

E3D-LSTM makes two changes to PredRNN's spatiotemporal LSTM (:mod:`.baselines`):

* **3D convolutions.** The input of a step is a short clip, not one frame: the state keeps
  the last ``tau`` (patch-reshaped) input frames, every state tensor has a temporal depth
  of ``tau``, (B, hid, tau, h, w), and every gate is a 3D convolution with a
  ``(tau, k, k)`` kernel.
* **The recall gate.** The forget gate on the temporal memory ``C`` is replaced by
  attention over the memories of previous steps (eq. 1 of the paper)::

      R = sigmoid(W_xr * X + W_hr * H_{t-1})
      RECALL = softmax(R . C_hist^T) . C_hist           # C_hist: C_{t-n}, ..., C_{t-1}
      C_t = I o G + LayerNorm(C_{t-1} + RECALL)

  so the model can read back a memory from many steps ago ("eidetic") instead of keeping
  only an exponentially decaying trace.

The spatiotemporal memory ``M`` keeps PredRNN's forget-gated update and its zig-zag (up
through the layers within a step, from the top layer at t to the bottom layer at t+1), and
``H = o * tanh(W_1x1 [C, M])``. As in PredRNN's code, frames are patch-reshaped
(:attr:`E3DLSTM.patch` x patch pixels -> channels).

Faithful: 3D-convolutional gates over a window of ``tau = 2`` frames (the paper's
Moving-MNIST setting), the recall gate with its self-attention and layer norm, the
ST-LSTM memory ``M`` and output, a ``(tau, 1, 1)`` convolution from the top hidden state
to the frame. Simplified or changed:

* the paper's 3D-CNN frame encoder and decoder are replaced by the patch reshape;
* the memory history is the last :attr:`E3DLSTM.history` (10) memories, not all of them,
  so a 1000-step rollout keeps a bounded state and a bounded cost per step;
* the attention logits are scaled by ``1/sqrt(hid)`` (as in Vaswani et al. 2017) so the
  softmax does not saturate at wide layers; the paper writes no scale;
* the temporal padding of the 3D convolutions is causal (``tau - 1`` zero slices before
  the clip), so slice j of a state depends on input slices <= j and the depth stays tau;
* the layer norm over (hid, tau, h, w) has a per-channel affine (``GroupNorm(1, hid)``),
  so no weight depends on the frame size;
* the output is a residual on the input frame with a zero-initialised output layer, so
  the untrained model is persistence (see :mod:`.baselines`); widths come from
  ``cfg.hidden`` (all equal, as ``M`` passes between layers), the kernel from ``cfg.kernel``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import ForecasterConfig
from ..errors import GanlstmError
from .base import Forecaster, register
from .baselines import _frame_or_last, _shared_width


class Eidetic3DLSTMCell(nn.Module):
    """One E3D-LSTM layer. States (B, hid, tau, h, w); the memory history (B, n, hid, tau, h, w)."""

    def __init__(self, in_channels: int, hidden: int, kernel: int, window: int):
        super().__init__()
        self.hidden = hidden
        self.window = window
        k3 = (window, kernel, kernel)
        pad = (0, kernel // 2, kernel // 2)  # time is padded causally in _conv
        self.conv_x = nn.Conv3d(in_channels, 7 * hidden, k3, padding=pad)  # i g r | i' g' f' | o
        self.conv_h = nn.Conv3d(hidden, 4 * hidden, k3, padding=pad, bias=False)  # i g r | o
        self.conv_m = nn.Conv3d(hidden, 3 * hidden, k3, padding=pad, bias=False)  # i' g' f'
        self.conv_o = nn.Conv3d(2 * hidden, hidden, k3, padding=pad, bias=False)  # W_co * C + W_mo * M
        self.conv_cm = nn.Conv3d(2 * hidden, hidden, 1, bias=False)  # the 1x1x1 fusion of [C, M]
        self.norm_c = nn.GroupNorm(1, hidden)  # LayerNorm over (hid, tau, h, w)
        with torch.no_grad():  # forget-gate bias 1 for M: remember by default
            self.conv_x.bias.zero_()
            self.conv_x.bias[5 * hidden : 6 * hidden].fill_(1.0)

    def _conv(self, conv: nn.Conv3d, x: Tensor) -> Tensor:
        """A 3D convolution whose output keeps the clip's depth: ``tau - 1`` zero slices are padded before it."""
        return conv(F.pad(x, (0, 0, 0, 0, self.window - 1, 0)))

    def recall(self, r: Tensor, history: Tensor) -> Tensor:
        """Attention of the recall gate r (B, hid, tau, h, w) over the stored memories (B, n, hid, tau, h, w)."""
        # Contiguous, channels in the last dimension: the fused CPU kernel needs a unit stride there (else it falls back to the explicit softmax).
        q = r.flatten(2).transpose(1, 2).unsqueeze(1).contiguous()  # (B, 1, tau*h*w, hid): one query per location of the clip
        kv = history.transpose(1, 2).flatten(2).transpose(1, 2).unsqueeze(1).contiguous()  # (B, 1, n*tau*h*w, hid): keys = values = memories
        # softmax(q kv^T / sqrt(hid)) kv, fused: the (tau*h*w) x (n*tau*h*w) weights are never stored. On one CPU thread
        # (32 px, hidden 16, batch 8) the explicit softmax made a training step 16.7 s, ~60x a PredRNN step.
        out = F.scaled_dot_product_attention(q, kv, kv, scale=1.0 / math.sqrt(r.shape[1]))  # (B, 1, tau*h*w, hid)
        return out.squeeze(1).transpose(1, 2).reshape(r.shape)  # (B, hid, tau, h, w)

    def forward(self, x: Tensor, h: Tensor, c: Tensor, m: Tensor, history: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """x (B, in, tau, h, w); h, c, m (B, hid, tau, h, w); history (B, n, hid, tau, h, w) -> new (h, c, m)."""
        xi, xg, xr, xi2, xg2, xf2, xo = self._conv(self.conv_x, x).chunk(7, dim=1)  # each (B, hid, tau, h, w)
        hi, hg, hr, ho = self._conv(self.conv_h, h).chunk(4, dim=1)
        mi, mg, mf = self._conv(self.conv_m, m).chunk(3, dim=1)
        r = torch.sigmoid(xr + hr)
        c = torch.sigmoid(xi + hi) * torch.tanh(xg + hg) + self.norm_c(c + self.recall(r, history))
        m = torch.sigmoid(xf2 + mf) * m + torch.sigmoid(xi2 + mi) * torch.tanh(xg2 + mg)
        cm = torch.cat([c, m], dim=1)  # (B, 2*hid, tau, h, w)
        o = torch.sigmoid(xo + ho + self._conv(self.conv_o, cm))
        h = o * torch.tanh(self.conv_cm(cm))
        return h, c, m


@register("e3dlstm")
class E3DLSTM(Forecaster):
    """Patch-reshape -> clip of the last tau inputs -> stacked E3D-LSTM, zig-zag M -> (tau,1,1) conv -> residual.

    State: ``(input clip (B, p*p*C, tau, h, w), h per layer, c per layer, memory history per
    layer, M leaving the top layer, last prediction)``.
    """

    patch = 2
    #: tau, the temporal depth of the input clip and of every state (the paper's Moving-MNIST value).
    window = 2
    #: how many past memories C the recall gate attends to.
    history = 10

    def __init__(self, cfg: ForecasterConfig):
        super().__init__(cfg)
        if cfg.image_size % self.patch:
            raise GanlstmError(f"e3dlstm reshapes {self.patch}x{self.patch} patches into channels, so image_size must be a multiple of {self.patch} (got {cfg.image_size}); resize frames with --size.")
        _shared_width(cfg, "e3dlstm")
        self.grid = cfg.image_size // self.patch
        self.hidden = cfg.hidden[0]
        patched = cfg.channels * self.patch**2
        ins = [patched] + [self.hidden] * (len(cfg.hidden) - 1)
        self.cells = nn.ModuleList(Eidetic3DLSTMCell(i, self.hidden, cfg.kernel, self.window) for i in ins)
        self.head = nn.Conv3d(self.hidden, patched, (self.window, 1, 1))  # (B, hid, tau, h, w) -> (B, p*p*C, 1, h, w)
        nn.init.zeros_(self.head.weight)  # untrained model == persistence (see module docstring)
        nn.init.zeros_(self.head.bias)

    def init_state(self, batch: int, device: torch.device):
        def z(channels: int) -> Tensor:
            return torch.zeros(batch, channels, self.window, self.grid, self.grid, device=device)

        layers = len(self.cells)
        clip = z(self.cfg.channels * self.patch**2)
        history = [z(self.hidden).unsqueeze(1) for _ in range(layers)]  # (B, 1, hid, tau, h, w): the initial C
        return clip, [z(self.hidden) for _ in range(layers)], [z(self.hidden) for _ in range(layers)], history, z(self.hidden), None

    def step(self, frame: Tensor | None, state):
        clip, hs, cs, hists, m, last = state
        x = _frame_or_last(frame, last, "e3dlstm")  # (B, C, H, W)
        patched = F.pixel_unshuffle(x, self.patch).unsqueeze(2)  # (B, p*p*C, 1, h, w)
        clip = torch.cat([clip[:, :, 1:], patched], dim=2)  # (B, p*p*C, tau, h, w): the last tau inputs
        inp = clip
        new_h, new_c, new_hist = [], [], []
        for cell, h, c, hist in zip(self.cells, hs, cs, hists):
            h, c, m = cell(inp, h, c, m, hist)  # m zig-zags: layer l-1 -> layer l, top at t -> bottom at t+1
            new_h.append(h)
            new_c.append(c)
            new_hist.append(torch.cat([hist, c.unsqueeze(1)], dim=1)[:, -self.history :])
            inp = h
        delta = F.pixel_shuffle(self.head(inp).squeeze(2), self.patch)  # (B, C, H, W)
        out = (x + delta).clamp(-1.0, 1.0)
        return out, (clip, new_h, new_c, new_hist, m, out)
