"""Ensembles of plausible futures: the GAN prior's uncertainty, drawn in the generator's latent space.

A GAN-LSTM forecast is a path of generator latents ``z_1 .. z_K``. An ensemble member adds a
random nudge ``spread * eps`` (``eps ~ N(0, I)``, drawn afresh at every horizon) to each predicted
latent increment, inside the closed loop, before the latent cap:

    z_{k+1} = cap(z_k + head(h_k) + spread * eps_k)

The first predicted latent is nudged as well, so the reading of the last observed frame is
uncertain too. Because the loop feeds each member its own frames back, nudges compound: the
members agree at horizon 1 and fan out with the horizon, as the error of the forecast does, and
every member is drawn by the generator, so each is a sharp, plausible frame rather than a blur.
The mean of the members is the ensemble forecast and their per-pixel standard deviation its
spread (:mod:`ganlstm.calibration` scores both). One sample is the deterministic forecast itself.

``spread`` is in latent units (the generator's latents have an RMS of about 1). The default,
:data:`DEFAULT_SPREAD` = 0.7, was chosen on simulated mergers of three validation seeds (never the
benchmark's test seed) as the sharpest calibrated spread: of the spreads whose spread-skill ratio
lay in [0.8, 1.2], the one with the lowest CRPS (Gneiting et al. 2007). On three test seeds its
ensemble CRPS was 0.027-0.030 per pixel against 0.032-0.033 for the deterministic forecast's MAE;
it is under-dispersed at horizons 1-10 (spread-skill 0.55-0.76) and calibrated at 15-30 (0.8-1.15).
``benchmarks/calibration.py`` and docs/benchmarks.md ("Uncertainty") hold the numbers. ``ganlstm fit``
chooses the spread by the same rule on its own validation windows and records it in the checkpoint
(``ForecasterConfig.sample_spread``), which then is the default (:func:`model_spread`).

Only models with a latent to nudge sample (``gan_lstm``); a pixel-space model is refused in one
sentence rather than given noise that means nothing.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from .errors import GanlstmError

#: The latent nudge per horizon, chosen for a spread-skill ratio near 1 (benchmarks/calibration.py).
DEFAULT_SPREAD = 0.7
#: Members rolled out per batch on the CPU: (members x sequences) rows at a time.
MEMBER_BATCH = 64


def can_sample(model: nn.Module) -> bool:
    """Whether ``model`` draws futures in a latent space (the GAN prior), so :func:`sample_futures` applies."""
    return hasattr(model, "latent_noise")


def check_samples(samples: int) -> None:
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise GanlstmError(f"samples={samples!r} is invalid; draw at least 1 future (1 is the forecast itself).")


def check_spread(spread: float) -> None:
    if not isinstance(spread, (int, float)) or isinstance(spread, bool) or not 0 <= float(spread) <= 10:
        raise GanlstmError(f"spread={spread!r} is invalid; pass a latent nudge in [0, 10] (the default is {DEFAULT_SPREAD}).")


def refuse_pixel_model(model: nn.Module) -> None:
    if not can_sample(model):
        name = getattr(getattr(model, "cfg", None), "model", type(model).__name__)
        raise GanlstmError(f"samples > 1 need a GAN-prior checkpoint (gan_lstm), whose futures are drawn in the generator's "
                           f"latent space, but this one holds {name!r}; pass a gan_lstm checkpoint or leave samples at 1.")


@contextmanager
def latent_sampling(model: nn.Module, spread: float, seed: int) -> Iterator[None]:
    """Within the block, every predicted latent of ``model`` is nudged by ``spread * N(0, I)``, from a generator seeded ``seed``."""
    from .rollout import model_device

    device = model_device(model)
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed))
    before = model.latent_noise, model.noise_generator
    model.latent_noise, model.noise_generator = float(spread), gen
    try:
        yield
    finally:
        model.latent_noise, model.noise_generator = before


def model_spread(model: nn.Module) -> float:
    """The spread ``model``'s checkpoint records (``ForecasterConfig.sample_spread``, set by ``fit``), else :data:`DEFAULT_SPREAD`."""
    return float(getattr(getattr(model, "cfg", None), "sample_spread", 0.0) or DEFAULT_SPREAD)


def sample_futures(model: nn.Module, frames01: Tensor, steps: int, samples: int, *, spread: float | None = None,
                   seed: int = 0, amp: str = "no") -> Tensor:
    """``samples`` futures of ``steps`` frames after ``frames01`` (B, T, C, H, W) in [0, 1]: (N, B, K, C, H, W) in [0, 1], on CPU.

    Members are rolled out together, :data:`MEMBER_BATCH` rows (member x sequence) per batch, each
    from its own noise; the same ``seed`` draws the same ensemble. ``samples=1`` is the forecast.
    ``spread`` None takes :func:`model_spread`.
    """
    from .rollout import predict

    check_samples(samples)
    spread = model_spread(model) if spread is None else spread
    check_spread(spread)
    if frames01.dim() != 5:
        raise ValueError(f"frames01 must be (B, T, C, H, W), got {tuple(frames01.shape)}")
    if samples == 1:
        return predict(model, frames01, steps, amp=amp).unsqueeze(0)
    refuse_pixel_model(model)
    b = frames01.shape[0]
    rows = frames01.unsqueeze(0).expand(samples, *frames01.shape).flatten(0, 1)  # (N*B, T, C, H, W), member-major
    per = max(1, MEMBER_BATCH // b) * b  # whole members per batch
    with latent_sampling(model, spread, seed):
        out = torch.cat([predict(model, part, steps, amp=amp) for part in rows.split(per)])  # (N*B, K, C, H, W)
    return out.unflatten(0, (samples, b))


def ensemble_stats(samples: Tensor) -> tuple[Tensor, Tensor]:
    """Members (N, ...) -> their mean and per-element standard deviation (population, 0 for N = 1), each (...)."""
    return samples.mean(0), samples.std(0, correction=0)


__all__ = ["DEFAULT_SPREAD", "can_sample", "model_spread", "sample_futures", "ensemble_stats", "latent_sampling"]
