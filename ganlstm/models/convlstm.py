"""Convolutional LSTM (Shi et al., NeurIPS 2015), as a reusable cell and a stack.

The cell replaces the LSTM's matrix products with convolutions so the hidden state
keeps its spatial layout. Following OpenSTL's split, the cell knows nothing about
frames or rollouts: models compose it (the GAN-prior forecaster over encoder
features, the pixel-space baseline over stride-2 features).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

LayerState = tuple[Tensor, Tensor]  # (h, c), each (B, hid, H, W)


class ConvLSTMCell(nn.Module):
    """One ConvLSTM layer: gates from a single convolution over ``[x, h]``."""

    def __init__(self, in_channels: int, hidden: int, kernel: int = 3):
        super().__init__()
        self.hidden = hidden
        self.gates = nn.Conv2d(in_channels + hidden, 4 * hidden, kernel, padding=kernel // 2)
        with torch.no_grad():  # forget-gate bias 1: remember by default (Jozefowicz et al., 2015)
            self.gates.bias.zero_()
            self.gates.bias[hidden : 2 * hidden].fill_(1.0)

    def init_state(self, batch: int, height: int, width: int, device: torch.device, dtype: torch.dtype = torch.float32) -> LayerState:
        z = torch.zeros(batch, self.hidden, height, width, device=device, dtype=dtype)
        return z, z.clone()

    def forward(self, x: Tensor, state: LayerState) -> LayerState:
        h, c = state  # (B, hid, H, W) each
        i, f, g, o = self.gates(torch.cat([x, h], dim=1)).chunk(4, dim=1)  # gates: (B, 4*hid, H, W)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c


class ConvLSTM(nn.Module):
    """A stack of ConvLSTM cells; layer ``l`` reads layer ``l-1``'s hidden state."""

    def __init__(self, in_channels: int, hidden: tuple[int, ...] | list[int], kernel: int = 3):
        super().__init__()
        hidden = list(hidden)
        ins = [in_channels] + hidden[:-1]
        self.cells = nn.ModuleList(ConvLSTMCell(i, h, kernel) for i, h in zip(ins, hidden))
        self.out_channels = hidden[-1]

    def init_state(self, batch: int, height: int, width: int, device: torch.device, dtype: torch.dtype = torch.float32) -> list[LayerState]:
        return [cell.init_state(batch, height, width, device, dtype) for cell in self.cells]

    def forward(self, x: Tensor, state: list[LayerState]) -> tuple[Tensor, list[LayerState]]:
        """x (B, in, H, W) -> top hidden (B, hidden[-1], H, W) and the new per-layer states."""
        new = []
        for cell, s in zip(self.cells, state):
            h, c = cell(x, s)
            new.append((h, c))
            x = h
        return x, new
