"""What each forecaster costs: parameters, GFLOP per predicted frame, and frames per second measured here.

:func:`measure_costs` takes named forecasters (trained or not, the weightless baselines
included) and returns a :class:`ModelCost` each:

* ``params``: trainable parameters. For the GAN-prior model that is everything but the frozen
  generator, whose parameters are counted separately in ``frozen_params`` (0 for the others);
* ``gflop_per_frame``: :func:`ganlstm.flops.count_flops` (multiply-add = 2) of one rollout of
  ``horizon`` frames after ``context``, context steps included, per predicted frame;
* ``frames_per_second``: predicted frames per second of :func:`ganlstm.rollout.predict` (warm-up,
  closed loop, decode, conversion, copy to the CPU) at a fixed batch, on the models' device and
  torch's current threads. Each model is first run once untimed, then the models are timed in
  turn, ``rounds`` times over (interleaved, so load from other jobs slows all of them alike);
  the figure is the median round. ``seconds`` keeps every round.

:func:`format_costs` writes them as a table, optionally beside an evaluation's MSE and SSIM.
``ganlstm benchmark`` measures them once per run, at its frame size and its training windows'
context and horizon (j=10 -> k=10), at its batch size, on its device and threads.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from .flops import count_flops
from .rollout import model_device, predict

COST_BATCH = 8  # windows per timed rollout
COST_ROUNDS = 3  # timed rollouts per model (the median is reported)


@dataclass
class ModelCost:
    """Size and speed of one forecaster at one (size, context, horizon); see the module docstring."""

    params: int
    frozen_params: int
    gflop_per_frame: float
    frames_per_second: float
    batch: int
    seconds: list[float] = field(default_factory=list)  # wall time of each timed round (batch x horizon frames)


def param_counts(model: nn.Module) -> tuple[int, int]:
    """(trainable, frozen) parameter counts; the GAN-prior model's ``trainable_parameters`` excludes its generator."""
    total = sum(p.numel() for p in model.parameters())
    if hasattr(model, "trainable_parameters"):
        trainable = sum(p.numel() for p in model.trainable_parameters())
    else:
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total - trainable


def measure_costs(models: Mapping[str, nn.Module], *, size: int, channels: int = 1, context: int = 10, horizon: int = 10,
                  batch: int = COST_BATCH, rounds: int = COST_ROUNDS, seed: int = 0) -> dict[str, ModelCost]:
    """Parameters, GFLOP per predicted frame and median predicted frames/s of every model (see the module docstring).

    Frames are random in [0, 1], (batch, context, channels, size, size): the cost of these
    models does not depend on the pixel values. Models are left in eval mode.
    """
    if rounds < 1 or batch < 1:
        raise ValueError(f"rounds={rounds} and batch={batch} must be positive")
    frames = torch.rand(batch, context, channels, size, size, generator=torch.Generator().manual_seed(seed))
    out: dict[str, ModelCost] = {}
    for name, model in models.items():
        model.eval()
        trainable, frozen = param_counts(model)
        one = (frames[:1] * 2 - 1).to(model_device(model))  # count_flops takes [-1, 1]
        out[name] = ModelCost(params=trainable, frozen_params=frozen, gflop_per_frame=count_flops(model, one, horizon),
                              frames_per_second=0.0, batch=batch)
        predict(model, frames, horizon)  # untimed: allocations, oneDNN's kernel choice
    for _ in range(rounds):
        for name, model in models.items():
            t0 = time.perf_counter()
            predict(model, frames, horizon)  # returns on the CPU: a GPU rollout has finished
            out[name].seconds.append(time.perf_counter() - t0)
    for cost in out.values():
        cost.frames_per_second = batch * horizon / max(statistics.median(cost.seconds), 1e-9)
    return out


def _count(n: int) -> str:
    return "0" if n == 0 else f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.1f}k" if n >= 1e3 else str(n)


def _rate(v: float) -> str:
    return f"{v:.3g}" if v < 1000 else f"{v:.0f}"


def format_costs(costs: Mapping[str, ModelCost], evaluation=None, *, horizons: Sequence[int] | None = None,
                 markdown: bool = False) -> str:
    """One row per model: parameters (frozen ones apart), GFLOP per predicted frame, frames/s, and, given an
    :class:`~ganlstm.evaluation.Evaluation`, its MSE and SSIM at ``horizons`` (default 1, K/2, K) and the mean."""
    from .results import table_horizons

    head = ["model", "params", "frozen params", "GFLOP/frame", "frames/s"]
    hs: list[int] = []
    if evaluation is not None:
        hs = table_horizons(evaluation.horizon, horizons)
        head += [f"{m} {c}" for m in ("MSE", "SSIM") for c in [*(f"k={h}" for h in hs), "mean"]]
    rows = []
    for name, c in costs.items():
        row = [name, _count(c.params), _count(c.frozen_params) if c.frozen_params else "-", f"{c.gflop_per_frame:.3g}",
               _rate(c.frames_per_second)]
        if evaluation is not None:
            for metric in ("mse", "ssim"):
                if name in evaluation.per_horizon:
                    vals = evaluation.per_horizon[name][metric]
                    row += [f"{vals[h - 1]:.4g}" for h in hs] + [f"{evaluation.mean[name][metric]:.4g}"]
                else:
                    row += ["-"] * (len(hs) + 1)
        rows.append(row)
    first = next(iter(costs.values()), ModelCost(0, 0, 0.0, 0.0, COST_BATCH, [0.0] * COST_ROUNDS))
    caption = (f"params: trainable; GFLOP per predicted frame (multiply-add = 2, context steps included); "
               f"frames/s: predicted frames per second at batch {first.batch}, median of {len(first.seconds)} interleaved rounds")
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|---|" + "--:|" * (len(head) - 1)]
        return caption + "\n\n" + "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    fmt = [f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths)]
    return caption + "\n" + "\n".join("  ".join(f.format(x) for f, x in zip(fmt, r)).rstrip() for r in [head, *rows])
