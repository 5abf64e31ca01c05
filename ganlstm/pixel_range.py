"""The pixel-range conversion: frames are in [0, 1] at every public boundary and in [-1, 1] inside models."""
from __future__ import annotations

from torch import Tensor


def to_model_range(frames01: Tensor) -> Tensor:
    """[0, 1] (public boundary) -> [-1, 1] (inside models). The only place this conversion lives."""
    return frames01 * 2.0 - 1.0


def to_unit_range(frames: Tensor) -> Tensor:
    """[-1, 1] (inside models) -> [0, 1] (public boundary), clamped."""
    return ((frames + 1.0) * 0.5).clamp(0.0, 1.0)
