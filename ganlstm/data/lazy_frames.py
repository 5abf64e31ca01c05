"""What every reader returns: a sequence opened (headers read, sizes checked) but not yet decoded."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np


@dataclass
class LazyFrames:
    """A sequence opened but not decoded: ``count`` frames (None if unknown) and lazy loaders."""

    count: int | None
    items: Iterator[tuple[str, Callable[[], np.ndarray]]]  # (label for messages, load -> (H, W[, C]))
    close: Callable[[], None] = lambda: None  # releases the open file once decoding ends
