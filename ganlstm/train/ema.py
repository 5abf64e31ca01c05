"""The exponential moving average of a model's weights (Polyak averaging), with a warm-up."""
from __future__ import annotations

import torch
from torch import nn

# EMA warm-up: the decay used at step t is min(ema, (1 + t) / (10 + t)), so the average
# does not drag the random initial weights through the first few thousand steps.
EMA_WARMUP = 10


def ema_decay(ema: float, step: int) -> float:
    """The EMA decay to use after optimiser step ``step``: ``ema``, lower during the warm-up."""
    return min(ema, (1 + step) / (EMA_WARMUP + step))


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """``ema <- decay * ema + (1 - decay) * model`` for parameters; buffers (BatchNorm statistics) are copied."""
    for pe, p in zip(ema.parameters(), model.parameters()):
        pe.lerp_(p.detach(), 1.0 - decay)
    for be, b in zip(ema.buffers(), model.buffers()):
        be.copy_(b)
