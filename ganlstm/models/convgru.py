"""Convolutional GRU, as a reusable cell and a stack, and the pixel-space ``convgru`` forecaster.

The ConvGRU (Ballas et al., "Delving Deeper into Convolutional Networks for Learning Video
Representations", ICLR 2016) is the GRU with its matrix products replaced by convolutions;
Shi et al. ("Deep Learning for Precipitation Nowcasting: A Benchmark and a New Model",
NeurIPS 2017) use it as the baseline that TrajGRU (:mod:`.trajgru`) improves on. It keeps
one state tensor per layer instead of the ConvLSTM's two, for about three quarters of the
ConvLSTM's weights.

:class:`ConvGRU` mirrors :class:`~ganlstm.models.convlstm.ConvLSTM` (same constructor, same
``init_state`` and ``forward``), so it can stand in as the dynamics cell of the GAN-prior
model; its layer state is just ``h``. The models that hold these states treat them as
opaque, so nothing else has to change.

``convgru`` is built exactly like ``convlstm`` (:class:`~ganlstm.models.baselines.SimpleConvLSTM`):
a stride-2 convolution in, the stacked cells at half resolution, a transposed convolution
out, and a residual on the input frame with a zero-initialised output layer, so the
untrained model is persistence. Faithful: the gates and the update
``h = (1 - z) h + z tanh(W x + U (r h))`` of Ballas et al. (eq. 5); simplified: the
frame encoder/decoder are the project's single stride-2 layers, not the papers' networks.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import register
from .baselines import StrideTwoRecurrent


class ConvGRUCell(nn.Module):
    """One ConvGRU layer: update and reset gates from one convolution over ``[x, h]``, the candidate from ``[x, r*h]``."""

    def __init__(self, in_channels: int, hidden: int, kernel: int = 3):
        super().__init__()
        self.hidden = hidden
        pad = kernel // 2
        self.gates = nn.Conv2d(in_channels + hidden, 2 * hidden, kernel, padding=pad)  # z | r
        self.candidate = nn.Conv2d(in_channels + hidden, hidden, kernel, padding=pad)

    def init_state(self, batch: int, height: int, width: int, device: torch.device, dtype: torch.dtype = torch.float32) -> Tensor:
        return torch.zeros(batch, self.hidden, height, width, device=device, dtype=dtype)

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        """x (B, in, H, W), h (B, hid, H, W) -> new h (B, hid, H, W)."""
        z, r = torch.sigmoid(self.gates(torch.cat([x, h], dim=1))).chunk(2, dim=1)  # each (B, hid, H, W)
        cand = torch.tanh(self.candidate(torch.cat([x, r * h], dim=1)))  # (B, hid, H, W)
        return (1.0 - z) * h + z * cand


class ConvGRU(nn.Module):
    """A stack of ConvGRU cells; layer ``l`` reads layer ``l-1``'s hidden state. Interface of :class:`ConvLSTM`.

    ``cell`` is the layer class: any cell whose state is one tensor ``h`` (TrajGRU's stack sets its own).
    """

    cell: type[nn.Module] = ConvGRUCell

    def __init__(self, in_channels: int, hidden: tuple[int, ...] | list[int], kernel: int = 3):
        super().__init__()
        hidden = list(hidden)
        ins = [in_channels] + hidden[:-1]
        self.cells = nn.ModuleList(self.cell(i, h, kernel) for i, h in zip(ins, hidden))
        self.out_channels = hidden[-1]

    def init_state(self, batch: int, height: int, width: int, device: torch.device, dtype: torch.dtype = torch.float32) -> list[Tensor]:
        return [cell.init_state(batch, height, width, device, dtype) for cell in self.cells]

    def forward(self, x: Tensor, state: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        """x (B, in, H, W) -> top hidden (B, hidden[-1], H, W) and the new per-layer states."""
        new = []
        for cell, h in zip(self.cells, state):
            x = cell(x, h)
            new.append(x)
        return x, new


@register("convgru")
class ConvGRUForecaster(StrideTwoRecurrent):
    """Stride-2 conv -> stacked ConvGRU at (H/2, W/2) -> transposed conv -> residual on the input frame.

    State: ``(per-layer h, last prediction)``.
    """

    stack_class = ConvGRU
    stack_name = "gru"
