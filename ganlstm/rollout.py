"""The one rollout engine, shared by every model, for training and for prediction.

``rollout`` warms a :class:`~ganlstm.models.base.Forecaster` up on ``J`` context
frames, then takes ``K`` closed-loop steps, each fed the model's own previous
prediction (``step(None, state)``). During training, scheduled sampling
(Bengio et al., NeurIPS 2015) feeds the true frame instead with probability
``sampling_p``. Outputs go into a preallocated tensor and are rendered to frames in
batched calls at the end (:func:`render_all`), so the GAN-prior model decodes its
latents many at a time instead of once per step. There are no host
synchronisations inside the loop.

``predict`` is the public face: frames in [0, 1] in, frames in [0, 1] out, under
``inference_mode`` and the shared autocast context. ``iter_predict`` streams long
rollouts (k = 1000) in chunks so memory stays flat.

``model`` is any :class:`~ganlstm.models.base.Forecaster`, duck-typed: the engine calls only its
``observe``, ``step``, ``render`` and ``correction`` (and ``nn.Module``'s ``eval``/``train``), so it
imports nothing of :mod:`ganlstm.models.base`, which builds its default ``training_loss`` on it.
A model's state (``Any`` below) is its own pytree of tensors, threaded through ``step``.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from .device import autocast
from .pixel_range import to_model_range, to_unit_range


def _stream(
    model: nn.Module,
    context: Tensor,
    steps: int,
    teacher: Tensor | None,
    sampling_p: float,
    generator: torch.Generator | None,
    warm: tuple[Tensor, Any] | None = None,
) -> Iterator[tuple[Tensor, Tensor | None]]:
    """Yield ``(output, frame or None)`` for horizons 1 .. ``steps``; ``teacher[:, i]`` is the truth after the i-th.

    ``warm``: the ``(output, state)`` of :func:`warm_up` on ``context`` when the caller already has it.

    A model that ``draws_while_rolling`` (the GAN prior with pixel feedback) renders each output
    once, through ``frame_of``, and the same frame is both what the rollout returns and what the
    next closed-loop step reads back: one generator call per predicted frame. Other models render
    their outputs afterwards, many at a time (:func:`render_all`).
    """
    draw = getattr(model, "draws_while_rolling", False)
    out, state = warm if warm is not None else warm_up(model, context)
    for i in range(steps):
        frame = None
        if draw:
            frame, state = model.frame_of(out, state)  # (B, C, H, W), remembered in the state for the next step
        yield out, frame
        if i == steps - 1:
            return
        step_input = None  # closed loop: the model continues from its own prediction
        if teacher is not None and sampling_p > 0:
            truth = teacher[:, i]
            if sampling_p >= 1:
                step_input = truth
            else:
                coin = torch.rand(truth.shape[0], 1, 1, 1, device=truth.device, generator=generator)  # no host sync
                drawn = frame if frame is not None else model.render(out)
                step_input = torch.where(coin < sampling_p, truth, drawn.to(truth.dtype))
        out, state = model.step(step_input, state)


def warm_up(model: nn.Module, context: Tensor) -> tuple[Tensor, Any]:
    """Feed the context (B, J, C, H, W) in [-1, 1]; return the first prediction's output and the state."""
    if context.dim() != 5 or context.shape[1] < 1:
        raise ValueError(f"context must be (B, J>=1, C, H, W), got {tuple(context.shape)}")
    return model.observe(context)


def rollout(
    model: nn.Module,
    context: Tensor,
    horizon: int,
    *,
    teacher: Tensor | None = None,
    sampling_p: float = 0.0,
    generator: torch.Generator | None = None,
    warm: tuple[Tensor, Any] | None = None,
) -> Tensor:
    """Predict ``horizon`` frames after ``context``; both in [-1, 1], shapes (B, J, C, H, W) -> (B, K, C, H, W).

    ``teacher`` (B, K, C, H, W) holds the true future; with ``sampling_p`` > 0 each
    closed-loop input is the truth with that probability (per sample), else the prediction. Each
    output is drawn once: inside the loop when the model ``draws_while_rolling``, else in batches after it.
    """
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    outs, frames = [], []
    for out, frame in _stream(model, context, horizon, teacher, sampling_p, generator, warm):
        outs.append(out)
        frames.append(frame)
    if frames[0] is None:
        return render_all(model, torch.stack(outs, dim=1))  # (B, K, C, H, W)
    return torch.stack(frames, dim=1)  # (B, K, C, H, W)


def rollout_outputs(
    model: nn.Module,
    context: Tensor,
    horizon: int,
    *,
    teacher: Tensor | None = None,
    sampling_p: float = 0.0,
    generator: torch.Generator | None = None,
    warm: tuple[Tensor, Any] | None = None,
) -> Tensor:
    """:func:`rollout` before rendering: the model's native outputs (B, K, *out), e.g. latents for the GAN prior."""
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    return torch.stack([out for out, _ in _stream(model, context, horizon, teacher, sampling_p, generator, warm)], dim=1)


#: Frames per render call on CPU. The generator's activations for a whole rollout at once (64 x 30
#: latents at 64 px: 0.5 GB in its widest layer) fall out of the CPU caches; in chunks of 64 the
#: decode ran 11-18% faster than in one call (benchmarks/speed.py, docs/benchmarks.md). GPUs take one call.
RENDER_CHUNK = 64


def render_all(model: nn.Module, outs: Tensor) -> Tensor:
    """(B, K, *out) -> (B, K, C, H, W): batched renders (the GAN-prior model decodes many latents per generator call)."""
    flat = outs.flatten(0, 1)  # (B*K, *out)
    if flat.device.type == "cpu" and flat.shape[0] > RENDER_CHUNK:
        frames = torch.cat([model.render(part) for part in flat.split(RENDER_CHUNK)])
    else:
        frames = model.render(flat)
    return frames.unflatten(0, outs.shape[:2])  # (B, K, C, H, W)


@dataclass
class Correction:
    """What a model asks :func:`iter_predict` to do to its predicted frames, per sequence (prediction only).

    ``scale`` (B,): outputs are rendered from ``origin + scale * (out - origin)``, ``origin`` (B, *out)
    being the last frame's reading (None when every scale is 1). ``residual`` (B, C, H, W): added to
    the k-th frame times ``decay**(k-1)``, ``decay`` (B,) (``residual`` None when every decay is 0, which is off).
    """

    decay: Tensor
    scale: Tensor
    residual: Tensor | None = None
    origin: Tensor | None = None
    warm: tuple[Tensor, Any] | None = None  # the warm-up on the whole context, when computing the correction made it

    def scaled(self, outs: Tensor) -> Tensor:
        """Outputs (B, n, *out) -> the latents to render, the predicted change from ``origin`` scaled."""
        origin = self.origin.unsqueeze(1)  # (B, 1, *out)
        scale = self.scale.to(outs.dtype).view(-1, *[1] * (outs.dim() - 1))  # (B, 1, ...)
        return origin + scale * (outs - origin)


def add_anchor(frames: Tensor, residual: Tensor, decay: float | Tensor, *, start: int = 0) -> Tensor:
    """Frames (B, n, C, H, W) at horizons start+1 .. start+n, plus ``decay**(k-1) * residual`` (B, C, H, W) each.

    ``decay`` is one number or one per sequence (B,); a decay of 0 adds nothing, at horizon 1 too.
    """
    k = torch.arange(start, start + frames.shape[1], device=frames.device, dtype=frames.dtype).view(1, -1)  # (1, n)
    d = torch.as_tensor(decay, device=frames.device, dtype=frames.dtype).reshape(-1, 1)  # (B or 1, 1)
    weight = torch.where(d > 0, d.clamp_min(1e-30) ** k, torch.zeros_like(d * k))  # (B or 1, n)
    return (frames + weight[..., None, None, None] * residual.to(frames.dtype).unsqueeze(1)).clamp(-1.0, 1.0)


def _as_batch(frames01: Tensor) -> Tensor:
    if frames01.dim() == 4:
        return frames01.unsqueeze(0)
    if frames01.dim() != 5:
        raise ValueError(f"frames must be (T, C, H, W) or (B, T, C, H, W), got {tuple(frames01.shape)}")
    return frames01


def model_device(model: nn.Module) -> torch.device:
    """The device a model's weights live on (CPU for weightless baselines)."""
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


def iter_predict(model: nn.Module, frames01: Tensor, steps: int, *, chunk: int = 100, amp: str = "no") -> Iterator[Tensor]:
    """Stream a prediction: yields CPU chunks (B, <=chunk, C, H, W) in [0, 1] until ``steps`` frames are out.

    Memory stays flat in ``steps``: only one chunk of outputs is held on the device.
    """
    device = model_device(model)
    x = to_model_range(_as_batch(frames01).to(device, torch.float32))
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), autocast(device, amp):
            fix = model.correction(x) if hasattr(model, "correction") else None  # Correction or None
            stream = _stream(model, x, steps, None, 0.0, None, fix.warm if fix is not None else None)
            done = 0
            while done < steps:
                n = min(chunk, steps - done)
                outs, drawn = zip(*(next(stream) for _ in range(n)))
                if fix is not None and fix.origin is not None:  # the predicted change scaled: one more decode per frame
                    frames = render_all(model, fix.scaled(torch.stack(outs, dim=1))).float()  # (B, n, C, H, W)
                elif drawn[0] is None:
                    frames = render_all(model, torch.stack(outs, dim=1)).float()  # (B, n, C, H, W)
                else:
                    frames = torch.stack(drawn, dim=1).float()  # drawn inside the loop, once each
                if fix is not None and fix.residual is not None:
                    frames = add_anchor(frames, fix.residual, fix.decay, start=done)
                done += n
                yield to_unit_range(frames).cpu()
    finally:
        model.train(was_training)


def predict(model: nn.Module, frames01: Tensor, steps: int, *, amp: str = "no") -> Tensor:
    """Predict ``steps`` frames after ``frames01`` ((T, C, H, W) or (B, T, C, H, W) in [0, 1]); same rank out, on CPU."""
    squeeze = frames01.dim() == 4
    pred = torch.cat(list(iter_predict(model, frames01, steps, chunk=steps, amp=amp)), dim=1)
    return pred[0] if squeeze else pred
