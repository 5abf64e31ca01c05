"""Guards of the training loop: a NaN/Inf batch or loss is found before it can reach the weights, and weights
or gradients that run away (a learning rate far too high) are found before they reach a checkpoint."""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn


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


#: A trained weight or gradient beyond this magnitude means training ran away (a learning rate far too high):
#: initialised weights are O(1), and normalised networks train to O(10).
RUNAWAY_LIMIT = 1e6
#: Steps between the loop's runaway checks; every checkpoint write is checked as well.
RUNAWAY_EVERY = 10


def runaway(models: dict[str, nn.Module], *, grads: bool = True) -> str | None:
    """What ran away -- "the weights of G reached 3.2e+07", "the gradients of D became NaN/Inf" -- or None.

    One fused max-abs reduction per model over its parameters (and their gradients, with ``grads``),
    so a check costs a fraction of a training step. fp16 runs pass ``grads=False``: their loss
    scaler expects inf gradients now and then, and skips those steps itself.
    """
    for name, model in models.items():
        params = [p for p in model.parameters() if p.is_floating_point()]
        for what, tensors in (("weights", params), ("gradients", [p.grad for p in params if p.grad is not None] if grads else [])):
            peak = _max_abs(tensors)
            if peak is None:
                continue
            if not math.isfinite(peak):
                return f"the {what} of {name} became NaN/Inf"
            if peak > RUNAWAY_LIMIT:
                return f"the {what} of {name} reached {peak:.2g} in magnitude (above {RUNAWAY_LIMIT:.0e})"
    return None


def _max_abs(tensors: list[Tensor]) -> float | None:
    tensors = [t.detach() for t in tensors if t.numel()]
    if not tensors:
        return None
    norms = torch._foreach_norm(tensors, float("inf")) if hasattr(torch, "_foreach_norm") else [t.abs().max() for t in tensors]
    return float(torch.stack([n.float() for n in norms]).max())  # one host sync
