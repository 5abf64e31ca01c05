"""``ganlstm predict --samples N``: an ensemble's members, spread map and spread animation written beside the mean.

The predicted frames of ``--out`` are then the ensemble mean; this module adds:

* ``samples/sample_000/`` .. : each member's frames, in the prediction's format and numbering;
* ``spread.npy``: the per-pixel standard deviation of the members, float32 (K, C, H, W), in the
  frames' [0, 1] units;
* ``spread.gif``: the mean beside its spread at every horizon (the spread scaled by its largest
  value over the whole forecast, so frames compare, and that scale is said in ``ensemble.json``);
* ``spread.png``: the same two rows at up to eight horizons, for a report;
* ``ensemble.json``: members, latent spread, seed, the spread's scale and, with the truth, the
  calibration per horizon (:mod:`ganlstm.calibration`).
"""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

#: Horizons shown in spread.png (evenly spaced, the last always included).
PNG_HORIZONS = 8


def _shown(k: int) -> list[int]:
    return sorted({round(i * (k - 1) / max(PNG_HORIZONS - 1, 1)) for i in range(min(PNG_HORIZONS, k))})


def write_ensemble(out: Path, members: Tensor, *, fmt: str, first: int, interval: int, spread: float, seed: int,
                   truth: Tensor | None, overwrite: bool, resize: Any = None) -> dict[str, Any]:
    """Write members (N, K, C, H, W) in [0, 1] (at the model's size) as the files above; returns the ensemble.json record.

    ``resize`` maps (K, C, S, S) frames to the written size (``--output-size native``), or None.
    ``truth`` (K, C, H, W) at the written size adds the calibration table.
    """
    from .calibration import calibrate
    from .checkpoint import write_new_bytes
    from .data.frame_writer import write_frames, write_numbered
    from .ensemble import ensemble_stats
    from .viz import save_gif, save_grid

    written = torch.stack([resize(m) for m in members]) if resize is not None else members  # (N, K, C, H, W)
    mean, std = ensemble_stats(written)  # (K, C, H, W) each
    for i, member in enumerate(written):
        folder = out / "samples" / f"sample_{i:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        if fmt in ("png", "png16"):
            write_numbered(member, folder, fmt, first, interval, overwrite=overwrite)
        else:
            write_frames(member, folder, fmt, first, overwrite=overwrite)
    target = out / "spread.npy"
    buf = io.BytesIO()
    np.save(buf, std.numpy().astype(np.float32))
    write_new_bytes(target, buf.getvalue(), overwrite)
    scale = float(std.max()) or 1.0
    shown_std = (std.mean(1, keepdim=True) / scale).clamp(0, 1)  # (K, 1, H, W): one map, channels averaged
    shown_mean = mean if mean.shape[1] in (1, 3) else mean[:, :1]
    if shown_mean.shape[1] == 3:
        shown_std = shown_std.expand(-1, 3, -1, -1)
    up = max(1, 128 // mean.shape[-1])
    save_gif([shown_mean, shown_std], out / "spread.gif", fps=5, scale=up, overwrite=overwrite)
    idx = _shown(len(mean))
    save_grid(torch.cat([shown_mean[idx], shown_std[idx]]), out / "spread.png", nrow=len(idx), scale=up, overwrite=overwrite)
    record: dict[str, Any] = {"members": len(members), "latent_spread": spread, "seed": seed,
                              "spread_scale": scale, "mean_spread": float(std.mean()),
                              "samples": str(out / "samples"), "spread": str(target),
                              "units": "the members and the spread are in the model's [0, 1] units (the mean follows --format)"}
    if truth is not None:
        record["calibration"] = {"horizon": list(range(1, len(mean) + 1)), **calibrate(written[:, None], truth[None].float())}
    write_new_bytes(out / "ensemble.json", (json.dumps(record, indent=2) + "\n").encode(), overwrite)
    return record


__all__ = ["write_ensemble"]
