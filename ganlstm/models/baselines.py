"""Baseline forecasters that the GAN-prior model must beat, all speaking the Forecaster protocol.

Every baseline runs through the same rollout engine (:mod:`ganlstm.rollout`), is trained
by the same trainer (``ganlstm train-baseline --model NAME``) and is scored by the same
metrics, so a comparison differs only in the model.

* ``persistence``: predict that nothing moves (copy the last observed frame). On merger
  frames, where neighbouring frames are nearly identical, it scores a high SSIM: the
  original project's warning that SSIM alone flatters a model.
* ``linear``: extrapolate the last two frames pixel by pixel, ``2 x_t - x_{t-1}``, clipped
  to the valid range.
* ``convlstm``: the original project's "Simple ConvLSTM" (Shi et al., NeurIPS 2015): a
  stride-2 3x3 convolution in, stacked ConvLSTM cells at half resolution, a transposed
  convolution out. The project found the stride-2 variant much better at long rollouts.
* ``predrnn``: PredRNN (Wang et al., "PredRNN: Recurrent Neural Networks for Predictive
  Learning using Spatiotemporal LSTMs", NeurIPS 2017): stacked spatiotemporal LSTM cells
  whose memory ``M`` zig-zags up through the layers within a step and from the top layer
  at step t to the bottom layer at step t+1. As in the authors' code, frames are
  patch-reshaped (2x2 pixels -> channels) so the cells run at half resolution.

Both learned baselines predict the next frame as a **residual** on the frame they were fed,
``clamp(x_t + delta, -1, 1)``, with the output layer initialised to zero: an untrained model
is exactly ``persistence``, and the small training budgets we can afford on a CPU go into
learning motion rather than into learning the identity. This makes them stronger, not
weaker, baselines.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import ForecasterConfig
from ..errors import GanlstmError
from .base import Forecaster, register
from .convlstm import ConvLSTM


def _frame_or_last(frame: Tensor | None, last: Tensor | None, name: str) -> Tensor:
    """The input of a step: the given frame, or in closed loop the model's own last prediction."""
    if frame is not None:
        return frame
    if last is None:
        raise ValueError(f"{name}: the first step needs an observed frame (got None before any prediction)")
    return last


def _shared_width(cfg: ForecasterConfig, name: str) -> int:
    """The one width of a model whose memory M flows from layer to layer (PredRNN, MIM, E3D-LSTM)."""
    if len(set(cfg.hidden)) != 1:
        raise GanlstmError(f"{name} passes its memory M between layers, so every layer needs the same width (got hidden={tuple(cfg.hidden)}); pass equal sizes, e.g. 64,64.")
    return cfg.hidden[0]


def _half_grid(cfg: ForecasterConfig, name: str) -> int:
    if cfg.image_size % 2:
        raise GanlstmError(f"{name} halves the frame size, so image_size must be even (got {cfg.image_size}); resize frames with --size.")
    return cfg.image_size // 2


# ---------------------------------------------------------------- no training


@register("persistence")
class Persistence(Forecaster):
    """Predict the last frame again. State: the last frame (B, C, H, W)."""

    trainable = False

    def init_state(self, batch: int, device: torch.device) -> Tensor | None:
        return None

    def step(self, frame: Tensor | None, state: Tensor | None) -> tuple[Tensor, Tensor]:
        x = _frame_or_last(frame, state, "persistence")  # (B, C, H, W)
        return x, x


@register("linear")
class LinearExtrapolation(Forecaster):
    """Predict ``clamp(2 x_t - x_{t-1}, -1, 1)``; with one frame seen, it is persistence.

    State: ``(previous input, last prediction)``. In closed loop the prediction is the next
    input, so the rollout continues the same straight line (until clipping stops it).
    """

    trainable = False

    def init_state(self, batch: int, device: torch.device) -> tuple[Tensor | None, Tensor | None]:
        return None, None

    def step(self, frame: Tensor | None, state: tuple[Tensor | None, Tensor | None]) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        prev, last = state
        x = _frame_or_last(frame, last, "linear")  # (B, C, H, W)
        out = x if prev is None else (2.0 * x - prev).clamp(-1.0, 1.0)
        return out, (x, out)


# ---------------------------------------------------------------- Simple ConvLSTM


class StrideTwoRecurrent(Forecaster):
    """Stride-2 conv -> a stack of recurrent cells at (H/2, W/2) -> transposed conv -> residual on the input frame.

    The skeleton of ``convlstm``, ``convgru`` and ``trajgru``: a subclass names its stack
    (``stack_class``: any module with :class:`~ganlstm.models.convlstm.ConvLSTM`'s constructor,
    ``init_state`` and ``forward``) and the attribute the stack's weights live under in the
    state_dict (``stack_name``). State: ``(per-layer states, last prediction)``.
    """

    stack_class: type[nn.Module] = ConvLSTM
    stack_name: str = "lstm"

    def __init__(self, cfg: ForecasterConfig):
        super().__init__(cfg)
        self.grid = _half_grid(cfg, self.registry_name)
        hidden = list(cfg.hidden)
        self.encode = nn.Conv2d(cfg.channels, hidden[0], 3, stride=2, padding=1)  # (B, C, H, W) -> (B, hid0, H/2, W/2)
        setattr(self, self.stack_name, self.stack_class(hidden[0], hidden, cfg.kernel))
        self.decode = nn.ConvTranspose2d(hidden[-1], cfg.channels, 4, stride=2, padding=1)  # -> (B, C, H, W)
        nn.init.zeros_(self.decode.weight)  # untrained model == persistence (see module docstring)
        nn.init.zeros_(self.decode.bias)

    def init_state(self, batch: int, device: torch.device) -> tuple[list, Tensor | None]:
        return getattr(self, self.stack_name).init_state(batch, self.grid, self.grid, device), None

    def step(self, frame: Tensor | None, state: tuple[list, Tensor | None]):
        layers, last = state
        x = _frame_or_last(frame, last, self.registry_name)  # (B, C, H, W)
        top, layers = getattr(self, self.stack_name)(self.encode(x), layers)  # (B, hid[-1], H/2, W/2)
        out = (x + self.decode(top)).clamp(-1.0, 1.0)  # (B, C, H, W)
        return out, (layers, out)


@register("convlstm")
class SimpleConvLSTM(StrideTwoRecurrent):
    """The original project's Simple ConvLSTM: the stride-2 skeleton around stacked ConvLSTM cells.

    State: ``(per-layer (h, c), last prediction)``.
    """

    stack_class = ConvLSTM
    stack_name = "lstm"


# ---------------------------------------------------------------- PredRNN


class SpatioTemporalLSTMCell(nn.Module):
    """PredRNN's ST-LSTM cell (Wang et al. 2017, eq. 3).

    Two memories: the temporal ``C`` (from this layer at t-1, gated by ``H``) and the
    spatiotemporal ``M`` (from the layer below at t, gated by ``M`` itself). The output
    gate sees both, and ``H = o * tanh(W_1x1 [C, M])``.
    """

    def __init__(self, in_channels: int, hidden: int, kernel: int):
        super().__init__()
        self.hidden = hidden
        pad = kernel // 2
        self.conv_x = nn.Conv2d(in_channels, 7 * hidden, kernel, padding=pad)  # i f g | i' f' g' | o
        self.conv_h = nn.Conv2d(hidden, 4 * hidden, kernel, padding=pad, bias=False)  # i f g | o
        self.conv_m = nn.Conv2d(hidden, 3 * hidden, kernel, padding=pad, bias=False)  # i' f' g'
        self.conv_o = nn.Conv2d(2 * hidden, hidden, kernel, padding=pad, bias=False)  # W_co * C + W_mo * M
        self.conv_cm = nn.Conv2d(2 * hidden, hidden, 1, bias=False)  # the 1x1 fusion of [C, M]
        with torch.no_grad():  # forget-gate biases 1 for both memories: remember by default
            self.conv_x.bias.zero_()
            self.conv_x.bias[hidden : 2 * hidden].fill_(1.0)
            self.conv_x.bias[4 * hidden : 5 * hidden].fill_(1.0)

    def forward(self, x: Tensor, h: Tensor, c: Tensor, m: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """x (B, in, h, w); h, c, m (B, hid, h, w) -> new (h, c, m)."""
        xi, xf, xg, xi2, xf2, xg2, xo = self.conv_x(x).chunk(7, dim=1)  # each (B, hid, h, w)
        hi, hf, hg, ho = self.conv_h(h).chunk(4, dim=1)
        mi, mf, mg = self.conv_m(m).chunk(3, dim=1)
        c = torch.sigmoid(xf + hf) * c + torch.sigmoid(xi + hi) * torch.tanh(xg + hg)
        m = torch.sigmoid(xf2 + mf) * m + torch.sigmoid(xi2 + mi) * torch.tanh(xg2 + mg)
        cm = torch.cat([c, m], dim=1)  # (B, 2*hid, h, w)
        o = torch.sigmoid(xo + ho + self.conv_o(cm))
        h = o * torch.tanh(self.conv_cm(cm))
        return h, c, m


@register("predrnn")
class PredRNN(Forecaster):
    """Patch-reshape 2x2 -> stacked ST-LSTM with zig-zag memory -> 1x1 conv -> un-reshape -> residual.

    State: ``(h per layer, c per layer, M leaving the top layer, last prediction)``.
    All layers share one width, because ``M`` flows from each layer into the next.
    """

    patch = 2

    def __init__(self, cfg: ForecasterConfig):
        super().__init__(cfg)
        self.grid = _half_grid(cfg, "predrnn")
        self.hidden = _shared_width(cfg, "predrnn")
        patched = cfg.channels * self.patch**2
        ins = [patched] + [self.hidden] * (len(cfg.hidden) - 1)
        self.cells = nn.ModuleList(SpatioTemporalLSTMCell(i, self.hidden, cfg.kernel) for i in ins)
        self.head = nn.Conv2d(self.hidden, patched, 1)  # (B, hid, H/2, W/2) -> (B, 4C, H/2, W/2)
        nn.init.zeros_(self.head.weight)  # untrained model == persistence (see module docstring)
        nn.init.zeros_(self.head.bias)

    def init_state(self, batch: int, device: torch.device):
        def z() -> Tensor:
            return torch.zeros(batch, self.hidden, self.grid, self.grid, device=device)

        layers = len(self.cells)
        return [z() for _ in range(layers)], [z() for _ in range(layers)], z(), None

    def step(self, frame: Tensor | None, state):
        hs, cs, m, last = state
        x = _frame_or_last(frame, last, "predrnn")  # (B, C, H, W)
        inp = F.pixel_unshuffle(x, self.patch)  # (B, 4C, H/2, W/2)
        new_h, new_c = [], []
        for cell, h, c in zip(self.cells, hs, cs):
            h, c, m = cell(inp, h, c, m)  # m zig-zags: layer l-1 -> layer l, top at t -> bottom at t+1
            new_h.append(h)
            new_c.append(c)
            inp = h
        delta = F.pixel_shuffle(self.head(inp), self.patch)  # (B, C, H, W)
        out = (x + delta).clamp(-1.0, 1.0)
        return out, (new_h, new_c, m, out)
