"""What changes with the step in stage two and the baselines: scheduled sampling.

A pure function of the step, so a resumed run follows the same schedule as one that never stopped.

Scheduled sampling (Bengio et al., NeurIPS 2015): the probability of feeding the true frame instead of
the model's own prediction decays linearly from ``sampling_start`` to ``sampling_end`` over the run.

The learning rate stays constant: a cosine decay to 5 % of it over the steps after the reader
warm-up was measured at 64 px and lost for both the GAN-LSTM and the ConvLSTM (docs/benchmarks.md,
"64 px"), so it was removed.
"""
from __future__ import annotations

import math

from ..config import RunConfig


def sampling_probability(step: int, total: float, start: float, end: float) -> float:
    """Scheduled sampling: P(feed the truth) at ``step``, linear from ``start`` (step 0) to ``end`` (last step)."""
    if math.isinf(total) or total <= 1:
        return end if total <= 1 else start
    return start + (end - start) * min(1.0, step / (total - 1))


def total_steps(run: RunConfig, steps_per_epoch: int) -> float:
    """The step count :func:`~ganlstm.train.loop.fit` will run to (the schedules' horizon)."""
    epochs = run.epochs if run.epochs is not None else (None if run.max_steps else 10)
    return min(run.max_steps if run.max_steps is not None else math.inf, (epochs or math.inf) * steps_per_epoch)
