"""The context check: the GAN-LSTM decides per sequence, from that sequence's own frames, whether to trust its motion.

A checkpoint trained on one kind of frame (the shipped ones: the built-in simulator) can meet
frames its generator cannot draw; it then loses to copy-last-frame by a wide margin
(docs/benchmarks.md, "The shipped default on a real simulation movie"). With
``ForecasterConfig.context_check`` (``predict --context-check``) the model first forecasts the last
``HELD`` observed frames from the ones before them, with its recorded anchor decay and motion
scale, and with each fallback: motion scale 0 (the last frame's reading at every horizon) with
every decay of :data:`ganlstm.config.ANCHOR_DECAYS`. Decay 1 is copy-last-frame exactly; below 1
the last frame relaxes towards G's drawing of it. Each is scored there by ``fit``'s relative MSE
+ relative 1-SSIM against persistence (:func:`relative_scores`; 2 = persistence), and a sequence
leaves the recorded settings only for a fallback that scores better by :data:`MARGIN`.

The check costs ``HELD`` closed-loop steps (with a motion scale below 1, a second decode of each)
and the scores; its observation of the first J - ``HELD`` frames is the prediction's own warm-up.
It needs a context of at least :data:`MIN_CONTEXT` frames (fewer keep the recorded settings).
The margin was chosen on the simulator's validation collections (docs/benchmarks.md, "The context
check"): the smallest measured at which no simulator window left the recorded settings.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..config import ANCHOR_DECAYS
from ..losses import ssim
from ..pixel_range import to_unit_range
from ..rollout import add_anchor, rollout, rollout_outputs, warm_up

HELD = 5  # observed frames forecast from the earlier ones (at most half the context)
#: A sequence leaves the recorded settings only for a pair that scores at least this much better on its
#: held frames (the score is 2 for persistence): five frames are little evidence, and the recorded pair was chosen on many.
MARGIN = 0.6
MIN_CONTEXT = 4  # two frames to observe, two to check
_EPS = 1e-6  # keeps the ratios finite when persistence is exact (a static context)


def frame_errors(pred01: Tensor, truth01: Tensor) -> tuple[Tensor, Tensor]:
    """Per frame: summed squared error and 1 - SSIM, each (B, n), for frames (B, n, C, H, W) in [0, 1]."""
    b, n = pred01.shape[:2]
    dssim = 1 - ssim(pred01.flatten(0, 1), truth01.flatten(0, 1), reduction="none").view(b, n)
    return (pred01 - truth01).pow(2).flatten(2).sum(-1), dssim


def relative_scores(pred01: Tensor, truth01: Tensor, base: tuple[Tensor, Tensor]) -> Tensor:
    """Per sequence: mean over horizons of MSE / persistence's MSE plus (1 - SSIM) / persistence's; -> (B,).

    ``base`` is persistence's :func:`frame_errors` on the same frames.
    """
    mse, dssim = frame_errors(pred01, truth01)
    return ((mse + _EPS) / (base[0] + _EPS)).mean(1) + ((dssim + _EPS) / (base[1] + _EPS)).mean(1)


@torch.no_grad()
def choose_on_context(model: nn.Module, context: Tensor, recorded: tuple[float, float]) -> tuple[Tensor, Tensor, Tensor, tuple | None]:
    """Per sequence of ``context`` (B, J, C, H, W) in [-1, 1]: the decay (B,), the scale (B,), the scores (B, pairs) and the warm-up.

    The pairs are the ``recorded`` (decay, scale) first, then (D, 0) for every D of :data:`ANCHOR_DECAYS`.
    The warm-up, ``(output, state)`` after observing the whole context, continues the check's own
    observation of its first J - HELD frames, so a prediction that follows need not observe them again
    (None while an ensemble is drawn: its members' warm-up draws their noise).
    """
    j = context.shape[1]
    held = min(HELD, j // 2)
    seen, truth = context[:, : j - held], context[:, j - held :]  # (B, J-h, C, H, W), (B, h, C, H, W)
    last = seen[:, -1]  # (B, C, H, W)
    origin = model.encode(last)  # (B, nz)
    reading = model.generator(origin).to(last.dtype)  # (B, C, H, W)
    residual = last - reading
    decay, scale = float(recorded[0]), float(recorded[1])
    # An ensemble's members (latent noise on) are checked without their noise, so each sequence's members share one
    # decision and draw the same noise as unchecked members would.
    noise, model.latent_noise = getattr(model, "latent_noise", 0.0), 0.0
    try:
        half = warm_up(model, seen)  # (output, state) after J - h frames
        if scale == 1.0:
            drawn = rollout(model, seen, held, warm=half).to(last.dtype)  # (B, h, C, H, W): with pixel feedback, the loop's frames
        else:
            outs = rollout_outputs(model, seen, held, warm=half)  # (B, h, nz)
            z = origin.unsqueeze(1) + scale * (outs - origin.unsqueeze(1))  # (B, h, nz)
            drawn = model.generator(z.flatten(0, 1)).unflatten(0, z.shape[:2]).to(last.dtype)  # (B, h, C, H, W)
    finally:
        model.latent_noise = noise
    pairs = [(decay, scale), *((d, 0.0) for d in ANCHOR_DECAYS)]
    candidates = [add_anchor(drawn, residual, decay) if decay else drawn]
    still = reading.unsqueeze(1).expand_as(truth)  # (B, h, C, H, W): scale 0 draws the reading at every horizon
    candidates += [add_anchor(still, residual, d) if d else still for d in ANCHOR_DECAYS]
    truth01 = to_unit_range(truth).float()
    base = frame_errors(to_unit_range(last).float().unsqueeze(1).expand_as(truth01), truth01)  # persistence's, once
    scores = torch.stack([relative_scores(to_unit_range(f).float(), truth01, base) for f in candidates], 1)  # (B, pairs)
    best = scores[:, 1:].argmin(1) + 1  # (B,): the best fallback
    best = torch.where(scores.gather(1, best[:, None])[:, 0] < scores[:, 0] - MARGIN, best, torch.zeros_like(best))
    table = torch.tensor(pairs, dtype=torch.float32, device=context.device)  # (pairs, 2)
    if noise:  # the members' warm-up draws noise at every observed frame: they make their own
        return table[best, 0], table[best, 1], scores, None
    out, state = half
    for t in range(held):  # the rest of the context, observed as warm_up would: the same steps in the same order
        out, state = model.step(context[:, j - held + t], state)
    return table[best, 0], table[best, 1], scores, (out, state)
