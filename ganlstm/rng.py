"""Every RNG the training loop touches (torch, CUDA, NumPy, Python), captured as tensors and primitives and restored.

A checkpoint holds :func:`rng_state`'s result, so a resumed run draws the same numbers as an
uninterrupted one. :func:`set_rng_state` checks a state before any generator changes
(:mod:`ganlstm.checkpoint_checks`), and leaves them all as they were when one refuses it.
"""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from .checkpoint import error_name
from .checkpoint_checks import check_rng_state, malformed, numpy_state


def rng_state() -> dict:
    """Every RNG the training loop touches, as tensors and primitives."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": _python_rng_to_primitives(random.getstate()),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict, path: str | Path = "checkpoint") -> None:
    """Restore what :func:`rng_state` captured; a malformed state is refused before any generator changes.

    ``path`` names the file in the error. A generator that still refuses a checked state leaves all of
    them as they were.
    """
    check_rng_state(state, path)
    missing = [k for k in ("torch", "numpy", "python") if k not in state]
    if missing:
        raise malformed(path, f"its rng has no {', '.join(missing)} state")
    before = rng_state()
    try:
        torch.set_rng_state(state["torch"])
        np.random.set_state(numpy_state(state["numpy"]))
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
    except (TypeError, ValueError, RuntimeError, OverflowError, IndexError) as e:
        set_rng_state(before)
        raise malformed(path, f"its rng state was refused: {error_name(e)}") from None


def _python_rng_to_primitives(s: tuple) -> list:
    version, internal, gauss = s
    return [version, list(internal), gauss]
