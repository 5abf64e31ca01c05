"""Settings a GAN-LSTM checkpoint records for prediction, chosen after training on validation windows.

The weights are never touched: each setter loads the file, checks the value as ``predict`` would
(another model, a value out of range), changes the model config and replaces the file atomically.
``predict``, ``evaluate``, ``benchmark`` and :class:`~ganlstm.predictor.Predictor` then use the
recorded values by default:

* ``anchor_decay``: residual anchoring (:meth:`ganlstm.models.gan_lstm.GanLstm.anchor`);
* ``motion_scale``: the scale of the predicted change from the last observed frame (1 = as
  predicted, 0 = copy-last-frame; :func:`ganlstm.rollout.scale_motion`);
* ``sample_spread``: the ensemble's latent nudge, ``predict --samples``' default (:mod:`ganlstm.ensemble`).
"""
from __future__ import annotations

from pathlib import Path

from ..checkpoint import atomic_save, load_checkpoint
from .forecaster import load_forecaster


def set_prediction_settings(path: str | Path, *, anchor_decay: float | None = None, motion_scale: float | None = None) -> None:
    """Record the anchor decay and/or the motion scale (None keeps the recorded one) in a GAN-LSTM checkpoint file."""
    ckpt = load_checkpoint(path, kind="forecaster")
    load_forecaster(ckpt, "cpu", anchor_decay=anchor_decay, motion_scale=motion_scale)  # refuses what predict would refuse
    path = Path(ckpt.pop("path"))
    ckpt["config"]["model"].update({k: float(v) for k, v in (("anchor_decay", anchor_decay), ("motion_scale", motion_scale))
                                    if v is not None})
    atomic_save(ckpt, path)


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
    ckpt = load_checkpoint(path, kind="forecaster")
    refuse_pixel_model(load_forecaster(ckpt, "cpu")[0])
    path = Path(ckpt.pop("path"))
    ckpt["config"]["model"]["sample_spread"] = float(spread)
    atomic_save(ckpt, path)
