"""Where and how computation runs: the device (``auto`` = cuda, mps, cpu), the one autocast
context for train, eval and predict, fp16 loss scaling, and CPU settings (denormals, threads).

Imports nothing of ganlstm but its errors, so every layer (models, rollout, training, evaluation)
may use it.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from .errors import GanlstmError


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; anything else is passed to ``torch.device``."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise GanlstmError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps.") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise GanlstmError(f"device {name!r} was requested but CUDA is not available here; use --device cpu or auto.")
    return device


def autocast(device: torch.device, amp: str = "no") -> contextlib.AbstractContextManager:
    """The one precision context for train, eval and predict: bf16/fp16 on GPU, off on CPU."""
    if amp not in ("no", "bf16", "fp16"):
        raise GanlstmError(f"unknown --amp {amp!r}; use no, bf16 or fp16.")
    if amp == "no" or device.type != "cuda":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


def make_grad_scaler(device: torch.device, amp: str) -> torch.amp.GradScaler:
    """fp16 needs loss scaling; bf16 and fp32 do not (the scaler is then a no-op)."""
    return torch.amp.GradScaler("cuda", enabled=(amp == "fp16" and device.type == "cuda"))


def configure_cpu() -> None:
    """Flush denormal floats to zero: recurrent nets on CPU otherwise slow down 3x (see docs)."""
    torch.set_flush_denormal(True)


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """torch's CPU threads set to ``n`` inside the block (None: unchanged), and restored after it.

    On a shared or small machine fewer threads are often faster: OpenMP threads spin-wait when
    another job holds a core (docs/benchmarks.md measured 5-30x slower steps with 2 threads
    beside other jobs on 2 cores).
    """
    if n is not None and n < 1:
        raise GanlstmError(f"threads={n} is invalid; pass a positive number of CPU threads.")
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
