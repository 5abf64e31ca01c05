"""What a training stage is to the loop: a :class:`TrainTask`, and the :class:`FitState` the loop keeps."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor, nn


class TrainTask(Protocol):
    """A training stage, as :func:`~ganlstm.train.loop.fit` drives it."""

    kind: str  # checkpoint kind: "gan" | "forecaster"
    name: str  # run-directory suffix, e.g. "gan", "gan_lstm", "convlstm"
    config: dict  # the full resolved config, written to config.json and every checkpoint
    models: dict[str, nn.Module]  # everything saved/restored (unwrapped automatically)
    optimizers: dict[str, torch.optim.Optimizer]
    scalers: dict[str, torch.amp.GradScaler]  # fp16 loss scales, saved/restored with the optimisers (empty when disabled)

    def train_step(self, batch: Any, step: int) -> dict[str, Tensor]:
        """One optimisation step on ``batch``; returns detached scalar losses for logging."""

    def evaluate(self, epoch: int, step: int, run_dir: Path) -> dict[str, float]:
        """Rank 0 only, under no_grad: write samples, return metrics; ``score`` (lower=better) picks best.pt."""


@dataclass
class FitState:
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    best_score: float = math.inf
    extra: dict = field(default_factory=dict)
