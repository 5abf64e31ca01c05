"""TrajGRU (Shi et al., "Deep Learning for Precipitation Nowcasting: A Benchmark and a New
Model", NeurIPS 2017), as a reusable cell and a stack, and the pixel-space ``trajgru`` forecaster.

A ConvGRU (:mod:`.convgru`) connects each location of ``h_{t-1}`` to a fixed neighbourhood
of the next state. TrajGRU learns the connections instead: a small flow-generating network
``gamma(x_t, h_{t-1})`` outputs ``L`` displacement fields, ``h_{t-1}`` is warped along each
(bilinear sampling, :func:`torch.nn.functional.grid_sample`), and the GRU gates read the
``L`` warped states through 1x1 convolutions (eq. 3 of the paper)::

    U, V = gamma(x_t, h_{t-1})                       # L fields of (dx, dy)
    z = sigmoid(W_xz * x + sum_l W_hz^l * warp(h, U_l, V_l))
    r = sigmoid(W_xr * x + sum_l W_hr^l * warp(h, U_l, V_l))
    h' = leaky_relu(W_xh * x + r o sum_l W_hh^l * warp(h, U_l, V_l))
    h_t = (1 - z) o h' + z o h_{t-1}

Faithful: the flow network (one hidden 5x5 convolutional layer of 32 channels over ``x`` and
``h``, a 5x5 convolution to ``2L`` channels), the warping, the gates, the leaky-ReLU (slope
0.2) candidate, ``L = 5`` links (:attr:`TrajGRUCell.links`). The flow output layer starts at
zero, so an untrained cell warps by zero: it begins as a ConvGRU whose recurrent kernel is 1x1.
Simplified: the paper's encoder-forecaster network with down- and up-sampling between
layers is replaced by the project's ``convlstm`` skeleton (stride-2 convolution in, stacked
cells at half resolution, transposed convolution out, residual on the input frame with a
zero-initialised output layer, so the untrained model is persistence); widths come from
``cfg.hidden``, the input kernel from ``cfg.kernel``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import register
from .baselines import StrideTwoRecurrent
from .convgru import ConvGRU


def warp(h: Tensor, flow: Tensor) -> Tensor:
    """Bilinearly sample ``h`` (N, C, H, W) at each location displaced by ``flow`` (N, 2, H, W) = (dx, dy) in pixels."""
    _, _, height, width = h.shape
    ys = torch.linspace(-1.0, 1.0, height, device=h.device, dtype=h.dtype)
    xs = torch.linspace(-1.0, 1.0, width, device=h.device, dtype=h.dtype)
    base_y, base_x = torch.meshgrid(ys, xs, indexing="ij")  # (H, W) each
    # pixels -> normalised coordinates (align_corners=True: -1 and 1 are the corner pixels' centres)
    gx = base_x + flow[:, 0] * (2.0 / max(width - 1, 1))  # (N, H, W)
    gy = base_y + flow[:, 1] * (2.0 / max(height - 1, 1))
    grid = torch.stack([gx, gy], dim=-1)  # (N, H, W, 2)
    return F.grid_sample(h, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


class TrajGRUCell(nn.Module):
    """One TrajGRU layer; its state is ``h`` (B, hid, H, W)."""

    #: L, the number of learned links (warp fields) per location.
    links: int = 5
    flow_hidden: int = 32
    flow_kernel: int = 5

    def __init__(self, in_channels: int, hidden: int, kernel: int = 3):
        super().__init__()
        self.hidden = hidden
        L, fk = self.links, self.flow_kernel
        self.input = nn.Conv2d(in_channels, 3 * hidden, kernel, padding=kernel // 2)  # W_xz | W_xr | W_xh
        # gamma: one hidden layer over x and h, then 2L displacement channels
        self.flow_x = nn.Conv2d(in_channels, self.flow_hidden, fk, padding=fk // 2)
        self.flow_h = nn.Conv2d(hidden, self.flow_hidden, fk, padding=fk // 2, bias=False)
        self.flow_out = nn.Conv2d(self.flow_hidden, 2 * L, fk, padding=fk // 2)
        nn.init.zeros_(self.flow_out.weight)  # start from zero flow: every link reads the location itself
        nn.init.zeros_(self.flow_out.bias)
        self.links_proj = nn.Conv2d(L * hidden, 3 * hidden, 1, bias=False)  # sum_l W^l * warp_l, as one 1x1 conv

    def init_state(self, batch: int, height: int, width: int, device: torch.device, dtype: torch.dtype = torch.float32) -> Tensor:
        return torch.zeros(batch, self.hidden, height, width, device=device, dtype=dtype)

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        """x (B, in, H, W), h (B, hid, H, W) -> new h (B, hid, H, W)."""
        B, hid, H, W = h.shape
        L = self.links
        flows = self.flow_out(F.leaky_relu(self.flow_x(x) + self.flow_h(h), 0.2))  # (B, 2L, H, W)
        flows = flows.reshape(B * L, 2, H, W)
        h_rep = h.unsqueeze(1).expand(B, L, hid, H, W).reshape(B * L, hid, H, W)
        warped = warp(h_rep, flows).reshape(B, L * hid, H, W)  # the L warped copies of h_{t-1}
        xz, xr, xh = self.input(x).chunk(3, dim=1)  # each (B, hid, H, W)
        hz, hr, hh = self.links_proj(warped).chunk(3, dim=1)
        z = torch.sigmoid(xz + hz)
        r = torch.sigmoid(xr + hr)
        cand = F.leaky_relu(xh + r * hh, 0.2)
        return (1.0 - z) * cand + z * h


class TrajGRU(ConvGRU):
    """A stack of TrajGRU cells with the interface of :class:`~ganlstm.models.convlstm.ConvLSTM`."""

    cell = TrajGRUCell


@register("trajgru")
class TrajGRUForecaster(StrideTwoRecurrent):
    """Stride-2 conv -> stacked TrajGRU at (H/2, W/2) -> transposed conv -> residual on the input frame.

    State: ``(per-layer h, last prediction)``.
    """

    stack_class = TrajGRU
    stack_name = "gru"
