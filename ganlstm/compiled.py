"""``compile_for_prediction``: torch.compile of a forecaster's per-step work for prediction (CUDA graphs on a GPU).

The rollout engine (:mod:`ganlstm.rollout`) calls a model's ``step`` once per frame (through
``observe`` for the context) and, for a model that ``draws_while_rolling`` (the GAN-LSTM with pixel
feedback), ``frame_of``, the generator's drawing of each prediction. Those two are compiled, as
instance attributes over the class's methods, so that the weights, ``state_dict`` and every other
method stay as they were; the batched decode at the end (``render``) and the anchor stay eager,
being few calls on large batches whose shapes change with ``steps``.

* **CUDA**: ``mode="reduce-overhead"``, which replays a step's kernels as one CUDA graph. A graph
  reuses its output memory at its next replay while the engine keeps each step's state for the
  next, so every call is marked as a new step (``torch.compiler.cudagraph_mark_step_begin``) and
  its outputs are copied out of the graph's pool: no prediction aliases another. On an H100 this
  sped batch-1 rollouts 2.2-4.1x (docs/benchmarks.md, benchmarks/speed.py ``--compile-mode reduce-overhead``).
* **CPU**: the default mode, for batches of :data:`CPU_MIN_BATCH` or more only. Compiled against
  eager, interleaved, on one thread (``benchmarks/speed.py --threads 1 --only shipped --compile
  --repeats 7``, three runs; the shipped gan_lstm.pt and convlstm.pt and the shipped GAN-LSTM's
  architecture at 64 px), batch 16 ran 1.09-1.26x faster in 8 of 9 cases (0.97x once, median
  1.14x), while batch 1 ran 0.83-1.17x (median 0.97x): no gain. Smaller batches run eagerly, and so
  never pay the compilation (here 45-90 s at the first call of a new batch size with a cold cache,
  3-15 s once inductor's on-disk cache holds the kernels).
* elsewhere (MPS): eager.

Compiled steps run only where nothing needs their gradients or random draws: with autograd on, or
while an ensemble nudges latents (``latent_noise``), the eager method runs. When compilation fails
(no C compiler, an unsupported operation, a dynamo error), at ``torch.compile`` or at the first
call, the model falls back to eager for good with one :class:`CompileWarning` sentence, and the
call is answered eagerly; an error that eager raises too is raised as it is. Results match eager
to float tolerance (measured: 1.3e-6 on CPU in [0, 1] units; tests/test_compiled.py checks 1e-4).
"""
from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_leaves, tree_map

#: On CPU, batches smaller than this run eagerly under ``compile=True`` (measured no faster at batch 1; see the module docstring).
CPU_MIN_BATCH = 16
CPU_DECISION = (f"on CPU the rollout steps are compiled for batches of {CPU_MIN_BATCH} or more (median 1.14x faster at batch 16, "
                f"benchmarks/speed.py --only shipped --compile) and smaller batches, such as predict's one sequence, run "
                f"eagerly (batch 1 measured no faster)")


class CompileWarning(UserWarning):
    """torch.compile failed, and prediction runs eagerly instead (same results, no speed-up)."""


def compile_for_prediction(model: nn.Module, device: torch.device | str) -> tuple[nn.Module, str]:
    """``model`` with its per-step work compiled for ``device`` (in place), and one sentence saying what was done."""
    kind = torch.device(device).type
    if kind == "cuda":
        parts = compile_parts(model, "reduce-overhead")
        return model, (f"compiled {' and '.join(parts)} with CUDA graphs (torch.compile mode reduce-overhead)"
                       if parts else "torch.compile failed, so the model runs eagerly")
    if kind == "cpu":
        parts = compile_parts(model, "default", min_batch=CPU_MIN_BATCH)
        return model, CPU_DECISION if parts else "torch.compile failed, so the model runs eagerly"
    return model, f"torch.compile is not used on {kind}, so the model runs eagerly"


def compile_parts(model: nn.Module, mode: str = "default", *, min_batch: int = 1) -> list[str]:
    """Compile the model's ``step`` (and ``frame_of`` when it draws while rolling) in ``mode``; the names compiled.

    ``mode="reduce-overhead"`` captures CUDA graphs and copies every output out of the graph's memory.
    Calls on fewer than ``min_batch`` sequences run eagerly. Returns [] (after one
    :class:`CompileWarning`) when ``torch.compile`` itself refuses.
    """
    names = ["step"] + (["frame_of"] if getattr(model, "draws_while_rolling", False) else [])
    try:
        compiled = {name: torch.compile(_eager(model, name), dynamic=False, mode=mode) for name in names}
    except Exception as e:  # noqa: BLE001 - any refusal means: run eagerly
        _fall_back(model, e)
        return []
    for name, fn in compiled.items():
        setattr(model, name, _guarded(model, name, fn, graphs=mode == "reduce-overhead", min_batch=min_batch))
    return names


def _guarded(model: nn.Module, name: str, fn: Callable, *, graphs: bool, min_batch: int) -> Callable:
    """``fn`` (the compiled ``model.<name>``), answered eagerly when it cannot or must not run."""
    eager = _eager(model, name)

    def call(*args: Any, **kwargs: Any) -> Any:
        if torch.is_grad_enabled() or getattr(model, "latent_noise", 0.0) or _batch(args) < min_batch:
            return eager(*args, **kwargs)  # training, an ensemble's random draws or a small batch on CPU
        try:
            if graphs:
                torch.compiler.cudagraph_mark_step_begin()  # the previous step's outputs were copied out below
            out = fn(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - see below
            result = eager(*args, **kwargs)  # an error of the model itself is raised here, as without compile
            _fall_back(model, e)
            return result
        return tree_map(lambda v: v.clone() if isinstance(v, torch.Tensor) else v, out) if graphs else out

    call.__wrapped__ = fn  # type: ignore[attr-defined]
    return call


def _batch(args: tuple) -> int:
    """The batch of a step's arguments: the leading size of their first tensor (frame, or the state's first)."""
    leaf = next((v for v in tree_leaves(args) if isinstance(v, torch.Tensor)), None)
    return leaf.shape[0] if leaf is not None and leaf.dim() else 0


def _eager(model: nn.Module, name: str) -> Callable:
    """The class's own ``model.<name>``, whatever an earlier compile set on the instance."""
    return getattr(type(model), name).__get__(model)


def _fall_back(model: nn.Module, error: Exception) -> None:
    """Restore the eager methods and say so, once per model, in one sentence."""
    for name in ("step", "frame_of"):
        model.__dict__.pop(name, None)
    detail = (str(error).strip().splitlines() or [""])[0][:200]
    warnings.warn(f"torch.compile failed here ({type(error).__name__}{': ' + detail if detail else ''}), so prediction "
                  f"runs eagerly (same results, no speed-up).", CompileWarning, stacklevel=3)


__all__ = ["compile_for_prediction", "compile_parts", "CompileWarning", "CPU_DECISION", "CPU_MIN_BATCH"]
