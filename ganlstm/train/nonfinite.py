"""NaN/Inf guards of the training loop: a bad batch or loss is found before it can reach the weights."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


class NonFiniteLoss(Exception):
    """A NaN/Inf in a batch or a loss, found before any forward pass or optimiser step could use it."""

    def __init__(self, what: str):
        super().__init__(what)
        self.what = what  # e.g. "the D loss became NaN/Inf"


def check_finite(name: str, loss: Tensor) -> None:
    """Call before ``optimizer.step()``: a NaN/Inf loss must never reach the weights."""
    if not bool(torch.isfinite(loss.detach()).all()):  # one host sync per step; training only
        raise NonFiniteLoss(f"the {name} loss became NaN/Inf")


def check_batch_finite(batch: Any) -> None:
    """Refuse a batch holding NaN/Inf before the forward pass: BatchNorm would fold it into its running statistics."""
    tensors = [batch] if torch.is_tensor(batch) else [t for t in batch if torch.is_tensor(t)] if isinstance(batch, (list, tuple)) else []
    if any(t.is_floating_point() and not bool(torch.isfinite(t).all()) for t in tensors):
        raise NonFiniteLoss("the input batch holds NaN/Inf values")
