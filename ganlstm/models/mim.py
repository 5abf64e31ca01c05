"""MIM (Wang et al., "Memory In Memory: A Predictive Neural Network for Learning Higher-Order
Non-Stationarity from Spatiotemporal Dynamics", CVPR 2019).

A PredRNN (:mod:`.baselines`) whose higher layers replace the forget gate of the temporal
memory ``C`` with two cascaded recurrent modules, so that ``C`` can follow dynamics whose
statistics change over time:

* **MIM-N** (non-stationary), state ``N``: an LSTM fed the *difference* of the hidden
  states of the layer below between consecutive steps, ``H^{l-1}_t - H^{l-1}_{t-1}``.
  Differencing turns a trend into a (nearly) stationary signal; its output is ``D``.
* **MIM-S** (stationary), state ``S``: an LSTM fed ``D`` and ``C_{t-1}``; its output
  ``T`` is what survives of the old memory, ``C_t = T + i * g`` (instead of ``f * C_{t-1} + i * g``).

The first layer is a plain ST-LSTM (:class:`~ganlstm.models.baselines.SpatioTemporalLSTMCell`),
since it has no layer below to difference. The spatiotemporal memory ``M`` zig-zags as in
PredRNN, and ``H = o * tanh(W_1x1 [C, M])``. Frames are patch-reshaped like PredRNN's
(:attr:`MIM.patch` x patch pixels -> channels).

Faithful: the MIM block's gates, the MIM-N gates over the difference and ``N_{t-1}``
(eq. 5), the MIM-S gates over ``D`` and ``C_{t-1}`` (eq. 6), the cascade replacing the
forget gate, the ST-LSTM first layer, the zig-zag memory. Simplified or changed:

* each MIM-N reads the difference of the hidden states of its own layer below, as the
  paper's figure draws it (the authors' code feeds higher MIM-Ns the lower MIM-N's output);
* the output-gate peepholes on ``N_t`` and ``S_t`` are per-channel Hadamard products, as in
  the authors' code, not convolutions;
* at the first step the previous hidden state of the layer below is the zero initial state,
  so the difference is ``H^{l-1}_0`` itself;
* the output is a residual on the input frame with a zero-initialised output layer, so the
  untrained model is persistence (see :mod:`.baselines`); widths come from ``cfg.hidden``
  (all equal, as ``M`` passes between layers), the kernel from ``cfg.kernel``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import ForecasterConfig
from ..errors import GanlstmError
from .base import Forecaster, register
from .baselines import SpatioTemporalLSTMCell, _frame_or_last, _shared_width


class _GatedMemory(nn.Module):
    """The LSTM shared by MIM-N and MIM-S: gates from an input and a conditioning state, a cell, a peephole output gate.

    ``forward(u, v, cell) -> (output, new cell)``: ``i, f, g`` from convolutions of ``u`` and
    ``v``; ``o`` from ``u`` (and ``v`` when ``v_to_output``) plus a peephole on the new cell.
    """

    def __init__(self, hidden: int, kernel: int, v_to_output: bool):
        super().__init__()
        pad = kernel // 2
        self.hidden = hidden
        self.conv_u = nn.Conv2d(hidden, 4 * hidden, kernel, padding=pad)  # i f g o
        self.conv_v = nn.Conv2d(hidden, (4 if v_to_output else 3) * hidden, kernel, padding=pad, bias=False)  # i f g (o)
        self.peephole = nn.Parameter(torch.zeros(hidden, 1, 1))  # W_o o cell_t
        with torch.no_grad():  # forget-gate bias 1: remember by default
            self.conv_u.bias.zero_()
            self.conv_u.bias[hidden : 2 * hidden].fill_(1.0)

    def forward(self, u: Tensor, v: Tensor, cell: Tensor) -> tuple[Tensor, Tensor]:
        """u, v, cell (B, hid, h, w) -> (output, new cell), each (B, hid, h, w)."""
        ui, uf, ug, uo = self.conv_u(u).chunk(4, dim=1)
        vi, vf, vg, *vo = self.conv_v(v).split(self.hidden, dim=1)  # vo: [W_vo * v] for MIM-S, [] for MIM-N
        cell = torch.sigmoid(uf + vf) * cell + torch.sigmoid(ui + vi) * torch.tanh(ug + vg)
        o = uo + self.peephole * cell + sum(vo)
        return torch.sigmoid(o) * torch.tanh(cell), cell


class MIMN(_GatedMemory):
    """MIM-N (eq. 5): ``D_t, N_t = MIM-N(H^{l-1}_t - H^{l-1}_{t-1}, N_{t-1})``; its gates read the difference and ``N_{t-1}``."""

    def __init__(self, hidden: int, kernel: int):
        super().__init__(hidden, kernel, v_to_output=False)

    def forward(self, diff: Tensor, n: Tensor) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        return super().forward(diff, n, n)


class MIMS(_GatedMemory):
    """MIM-S (eq. 6): ``T_t, S_t = MIM-S(D_t, C_{t-1}, S_{t-1})``; its gates read ``D_t`` and ``C_{t-1}``."""

    def __init__(self, hidden: int, kernel: int):
        super().__init__(hidden, kernel, v_to_output=True)


class MIMBlock(nn.Module):
    """A MIM layer: an ST-LSTM whose forget gate on ``C`` is replaced by the MIM-N -> MIM-S cascade."""

    def __init__(self, hidden: int, kernel: int):
        super().__init__()
        pad = kernel // 2
        self.conv_x = nn.Conv2d(hidden, 6 * hidden, kernel, padding=pad)  # i g | i' f' g' | o
        self.conv_h = nn.Conv2d(hidden, 3 * hidden, kernel, padding=pad, bias=False)  # i g | o
        self.conv_m = nn.Conv2d(hidden, 3 * hidden, kernel, padding=pad, bias=False)  # i' f' g'
        self.conv_o = nn.Conv2d(2 * hidden, hidden, kernel, padding=pad, bias=False)  # W_co * C + W_mo * M
        self.conv_cm = nn.Conv2d(2 * hidden, hidden, 1, bias=False)  # the 1x1 fusion of [C, M]
        self.mim_n = MIMN(hidden, kernel)
        self.mim_s = MIMS(hidden, kernel)
        with torch.no_grad():  # forget-gate bias 1 for M: remember by default
            self.conv_x.bias.zero_()
            self.conv_x.bias[3 * hidden : 4 * hidden].fill_(1.0)

    def forward(self, x: Tensor, diff: Tensor, h: Tensor, c: Tensor, m: Tensor, n: Tensor, s: Tensor):
        """x = H^{l-1}_t, diff = H^{l-1}_t - H^{l-1}_{t-1}; all (B, hid, h, w) -> new (h, c, m, n, s)."""
        xi, xg, xi2, xf2, xg2, xo = self.conv_x(x).chunk(6, dim=1)  # each (B, hid, h, w)
        hi, hg, ho = self.conv_h(h).chunk(3, dim=1)
        mi, mf, mg = self.conv_m(m).chunk(3, dim=1)
        d, n = self.mim_n(diff, n)  # non-stationary part of the dynamics
        t, s = self.mim_s(d, c, s)  # what is kept of C_{t-1}: replaces f * C_{t-1}
        c = t + torch.sigmoid(xi + hi) * torch.tanh(xg + hg)
        m = torch.sigmoid(xf2 + mf) * m + torch.sigmoid(xi2 + mi) * torch.tanh(xg2 + mg)
        cm = torch.cat([c, m], dim=1)  # (B, 2*hid, h, w)
        o = torch.sigmoid(xo + ho + self.conv_o(cm))
        h = o * torch.tanh(self.conv_cm(cm))
        return h, c, m, n, s


@register("mim")
class MIM(Forecaster):
    """Patch-reshape -> ST-LSTM, then MIM blocks, with zig-zag memory -> 1x1 conv -> un-reshape -> residual.

    State: ``(h per layer, c per layer, N per MIM layer, S per MIM layer, M leaving the top
    layer, last prediction)``. The hidden states at t-1 are those the differences are taken from.
    """

    patch = 2

    def __init__(self, cfg: ForecasterConfig):
        super().__init__(cfg)
        if cfg.image_size % self.patch:
            raise GanlstmError(f"mim reshapes {self.patch}x{self.patch} patches into channels, so image_size must be a multiple of {self.patch} (got {cfg.image_size}); resize frames with --size.")
        _shared_width(cfg, "mim")
        if len(cfg.hidden) < 2:
            raise GanlstmError(f"mim needs at least two layers (an ST-LSTM, then MIM blocks; got hidden={tuple(cfg.hidden)}); pass e.g. 64,64, or use predrnn for one layer.")
        self.grid = cfg.image_size // self.patch
        self.hidden = cfg.hidden[0]
        patched = cfg.channels * self.patch**2
        self.first = SpatioTemporalLSTMCell(patched, self.hidden, cfg.kernel)
        self.blocks = nn.ModuleList(MIMBlock(self.hidden, cfg.kernel) for _ in cfg.hidden[1:])
        self.head = nn.Conv2d(self.hidden, patched, 1)  # (B, hid, h, w) -> (B, p*p*C, h, w)
        nn.init.zeros_(self.head.weight)  # untrained model == persistence (see module docstring)
        nn.init.zeros_(self.head.bias)

    def init_state(self, batch: int, device: torch.device):
        def z() -> Tensor:
            return torch.zeros(batch, self.hidden, self.grid, self.grid, device=device)

        layers, blocks = len(self.blocks) + 1, len(self.blocks)
        return [z() for _ in range(layers)], [z() for _ in range(layers)], [z() for _ in range(blocks)], [z() for _ in range(blocks)], z(), None

    def step(self, frame: Tensor | None, state):
        hs, cs, ns, ss, m, last = state
        x = _frame_or_last(frame, last, "mim")  # (B, C, H, W)
        h, c, m = self.first(F.pixel_unshuffle(x, self.patch), hs[0], cs[0], m)  # (B, hid, H/p, W/p) each
        new_h, new_c, new_n, new_s = [h], [c], [], []
        for k, block in enumerate(self.blocks, start=1):
            below = new_h[k - 1]  # H^{k-1}_t; hs[k - 1] is H^{k-1}_{t-1}
            h, c, m, n, s = block(below, below - hs[k - 1], hs[k], cs[k], m, ns[k - 1], ss[k - 1])  # m zig-zags upwards
            new_h.append(h)
            new_c.append(c)
            new_n.append(n)
            new_s.append(s)
        delta = F.pixel_shuffle(self.head(h), self.patch)  # (B, C, H, W)
        out = (x + delta).clamp(-1.0, 1.0)
        return out, (new_h, new_c, new_n, new_s, m, out)
