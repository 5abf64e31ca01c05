"""The Forecaster protocol every model speaks, and the model registry.

Protocol (frames in [-1, 1] inside models)::

    state = model.init_state(batch, device)
    out, state = model.step(frame, state)   # frame (B, C, H, W), or None = "continue from your own prediction"
    frames = model.render(outs)             # (N, *out) -> (N, C, H, W); identity for pixel-space models
    fix = model.correction(context)         # optional: a rollout.Correction of the predicted frames (or None)

``step`` returns the model's native output for the next frame: pixels for pixel-space
models, a generator latent for the GAN-prior model. ``render`` turns outputs into
frames, so the rollout engine can decode a whole rollout in one batched call, and it
never needs to know which kind of model it is driving. The engine (:mod:`ganlstm.rollout`) drives
any object with these methods; it imports nothing of this module. The pixel-range conversion is
:mod:`ganlstm.pixel_range`.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from ..config import ForecasterConfig
from ..errors import GanlstmError
from ..losses import rollout_pixel_loss
from ..pixel_range import to_model_range, to_unit_range
from ..rollout import rollout

State = Any  # a model-specific pytree of tensors


class Forecaster(nn.Module):
    """Base class: subclasses implement ``init_state`` and ``step``; pixel models inherit ``render``."""

    #: False for models with no weights (persistence, linear): nothing to train or save.
    trainable: bool = True

    def __init__(self, cfg: ForecasterConfig):
        super().__init__()
        self.cfg = cfg

    def init_state(self, batch: int, device: torch.device) -> State:
        raise NotImplementedError

    def step(self, frame: Tensor | None, state: State) -> tuple[Tensor, State]:
        raise NotImplementedError

    def render(self, out: Tensor) -> Tensor:
        """Outputs (N, ...) -> frames (N, C, H, W) in [-1, 1]."""
        return out

    #: True when the model draws each output inside the rollout (``frame_of``) and reads that drawing back;
    #: the engine then keeps those frames instead of rendering the outputs again at the end.
    draws_while_rolling: bool = False

    def frame_of(self, out: Tensor, state: State) -> tuple[Tensor, State]:
        """The frame (B, C, H, W) of the latest output, and the state (which may keep it for the next step)."""
        return self.render(out), state

    def observe(self, context: Tensor) -> tuple[Tensor, State]:
        """Feed the context (B, J, C, H, W) in [-1, 1] a frame at a time; return the first prediction and the state.

        Models that treat the last observed frame specially (the GAN prior refines its reading)
        override this; :func:`ganlstm.rollout.warm_up` always goes through it.
        """
        state = self.init_state(context.shape[0], context.device)
        out = None
        for t in range(context.shape[1]):
            out, state = self.step(context[:, t], state)
        return out, state

    def correction(self, context: Tensor) -> Any:
        """A per-sequence :class:`ganlstm.rollout.Correction` of predictions from the context (B, J, C, H, W) in [-1, 1], or None (the default).

        The GAN prior uses it for residual anchoring and the motion scale (prediction only, not training).
        """
        return None

    def training_loss(self, context: Tensor, target: Tensor, *, sampling_p: float, alpha: float = 0.5,
                      bright_weight: float = 0.0, gdl_weight: float = 0.0, **_: Any) -> dict[str, Tensor]:
        """Loss for one batch of windows in [0, 1]: context (B, J, C, H, W), target (B, K, C, H, W).

        The default rolls out with scheduled sampling and applies the original
        project's ``alpha*(1-SSIM) + (1-alpha)*MSE``. ``loss`` is what is optimised.
        """
        pred = rollout(self, to_model_range(context), target.shape[1], teacher=to_model_range(target), sampling_p=sampling_p)
        loss = rollout_pixel_loss(to_unit_range(pred), target, alpha=alpha, bright_weight=bright_weight,
                                  gdl_weight=gdl_weight)
        return {"loss": loss}


# ---------------------------------------------------------------- registry

FORECASTERS: dict[str, Callable[[ForecasterConfig], Forecaster]] = {}


def register(name: str) -> Callable:
    """Class decorator: make a Forecaster buildable by name (``--model NAME``, checkpoint configs)."""

    def deco(cls):
        FORECASTERS[name] = cls
        cls.registry_name = name
        return cls

    return deco


def build_forecaster(cfg: ForecasterConfig) -> Forecaster:
    """Instantiate the architecture named by ``cfg.model`` (weights untrained)."""
    _import_builtin_models()
    if cfg.model not in FORECASTERS:
        raise GanlstmError(f"unknown model {cfg.model!r}; choose one of {', '.join(sorted(FORECASTERS))}.")
    return FORECASTERS[cfg.model](cfg)


def _import_builtin_models() -> None:
    # Importing registers them; done lazily so that `ganlstm.models.base` stays light.
    import importlib

    for mod in ("gan_lstm", "baselines", "convgru", "trajgru", "e3dlstm", "mim", "simvp"):
        try:
            importlib.import_module(f"ganlstm.models.{mod}")
        except ModuleNotFoundError as e:
            if e.name != f"ganlstm.models.{mod}":
                raise
