"""Settings a GAN-LSTM checkpoint records for prediction, chosen after training on validation windows.

The weights are never touched: each setter loads the file, checks the value as ``predict`` would
(another model, a value out of range), changes the model config and replaces the file atomically.
``predict``, ``evaluate``, ``benchmark`` and :class:`~ganlstm.predictor.Predictor` then use the
recorded values by default:

* ``anchor_decay``: residual anchoring (:meth:`ganlstm.models.gan_lstm.GanLstm.correction`);
* ``motion_scale``: the scale of the predicted latent change from the last frame's reading (1 = as
  predicted; :class:`ganlstm.rollout.Correction`);
* ``context_check``: both chosen per sequence on its own context (:mod:`ganlstm.models.context_check`);
* ``sample_spread``: the ensemble's latent nudge, ``predict --samples``' default (:mod:`ganlstm.ensemble`).
"""
from __future__ import annotations

from pathlib import Path

from ..checkpoint import atomic_save, load_checkpoint
from .forecaster import load_forecaster


def _rewrite(path: str | Path, updates: dict, check) -> None:
    """Load ``path``, ``check(ckpt)`` (refusing what predict would refuse), set ``updates`` in its model config, save it atomically."""
    ckpt = load_checkpoint(path, kind="forecaster")
    check(ckpt)
    path = Path(ckpt.pop("path"))
    ckpt["config"]["model"].update(updates)
    atomic_save(ckpt, path)


def set_prediction_settings(path: str | Path, *, anchor_decay: float | None = None, motion_scale: float | None = None,
                            context_check: bool | None = None) -> None:
    """Record the anchor decay, the motion scale and/or the context check (None keeps the recorded one) in a GAN-LSTM checkpoint file."""
    new = {"anchor_decay": anchor_decay, "motion_scale": motion_scale, "context_check": context_check}
    updates = {k: (bool(v) if k == "context_check" else float(v)) for k, v in new.items() if v is not None}
    _rewrite(path, updates, lambda ckpt: load_forecaster(ckpt, "cpu", **updates))


def set_anchor_decay(path: str | Path, decay: float) -> None:
    """Record residual anchoring ``decay`` (0 = off) in a GAN-LSTM checkpoint file."""
    set_prediction_settings(path, anchor_decay=decay)


def set_motion_scale(path: str | Path, scale: float) -> None:
    """Record the motion scale (1 = as predicted, 0 = copy-last-frame) in a GAN-LSTM checkpoint file."""
    set_prediction_settings(path, motion_scale=scale)


def set_sample_spread(path: str | Path, spread: float) -> None:
    """Record the ensemble's latent ``spread`` (``predict --samples``' default) in a GAN-LSTM checkpoint file."""
    from ..ensemble import check_spread, refuse_pixel_model

    check_spread(spread)
    _rewrite(path, {"sample_spread": float(spread)}, lambda ckpt: refuse_pixel_model(load_forecaster(ckpt, "cpu")[0]))
