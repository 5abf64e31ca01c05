"""Reproducible training: seeding, ``--deterministic``, DataLoader worker seeds, and blocks that leave
every RNG as they found it (evaluation and sampling never change training)."""
from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator

import numpy as np
import torch

from ..rng import rng_state, set_rng_state


def enable_determinism() -> None:
    """``--deterministic``: ``torch.use_deterministic_algorithms(True)``, and a fixed cuBLAS workspace.

    cuBLAS is deterministic only with a fixed workspace, read from ``CUBLAS_WORKSPACE_CONFIG`` when
    it starts; without one every CUDA matmul raises in this mode. It is set here unless the user set
    it, so it must run before the process's first CUDA matmul (the trainers call it before building models).
    """
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def worker_init_fn(worker_id: int) -> None:
    """DataLoader workers inherit a distinct, reproducible seed from torch's per-worker seed."""
    s = torch.initial_seed() % 2**32
    np.random.seed(s)
    random.seed(s)


@contextlib.contextmanager
def preserved_rng() -> Iterator[None]:
    """Run a block (evaluation, sampling) without changing any RNG the training loop depends on."""
    state = rng_state()
    try:
        yield
    finally:
        set_rng_state(state)
