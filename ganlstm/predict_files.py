"""``ganlstm predict``: a prediction written to a directory, with what was done to the frames said beside it.

:func:`predict_to_directory` reads the observed sequence as the checkpoint's model reads it (or with
the reading options given: ``--scaling``, ``--interval``), warns when the input's values lie outside
the range the model's scaling maps to [0, 1], predicts through :class:`~ganlstm.predictor.Predictor`
and writes PNG, NPY or FITS frames, ``prediction.gif``, ``prediction.json`` and, with the truth,
``metrics.json``. A FITS input written back as FITS keeps its units and its header (WCS included),
with a HISTORY card saying what ganlstm did (:mod:`ganlstm.data.fits_units`).
"""
from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .ensemble import check_samples, model_spread, refuse_pixel_model, sample_futures
from .ensemble_files import write_ensemble
from .errors import GanlstmError
from .predictor import GIF_MAX_FRAMES, STREAM_CHUNK, Predictor
from .resolution import OUTPUT_SIZES, ResolutionWarning, resize_frames
from .train.forecaster import save_comparison_gif

#: Share of an input's raw values outside the model's scaling range above which predict warns.
SATURATION_WARN = 0.01


def default_output_dir(frames: Path) -> Path:
    """Where ``predict`` writes without ``--out``: ``<frames>_predicted`` beside the input, outside any collection.

    When the input is one sequence of a collection (its folder holds other sequences), a folder
    beside it would sit inside that collection, and the next training run on the collection would
    read the predictions as data; the default is then ``<collection>_predicted/<name>``, beside the
    collection. (Predictions carry ``.ganlstm-output`` as well, so readers skip them wherever they are.)
    """
    from .data.frame_files import is_ganlstm_output, visible_entries
    from .data.frames import is_sequence_path

    frames = Path(frames).resolve()
    parent = frames.parent
    in_collection = parent.parent != parent and any(
        p != frames and not is_ganlstm_output(p) and is_sequence_path(p) for p in visible_entries(parent))
    if in_collection:
        return parent.parent / f"{parent.name}_predicted" / frames.stem
    return parent / f"{frames.stem}_predicted"


def _reading_options(predictor: Predictor, reading: dict[str, Any]):
    """The checkpoint's reading options with ``reading`` applied; a size or channel count the model cannot predict at is refused."""
    opts = predictor.frame_options
    for key, own in (("size", predictor.image_size), ("channels", predictor.channels)):
        if key in reading and reading[key] != own:
            hint = "--output-size native writes the frames at the input's size" if key == "size" else "colour is never invented or dropped silently"
            raise GanlstmError(f"--{key} {reading[key]}: this model predicts at {key} {own} only ({hint}); leave --{key} out.")
    return dataclasses.replace(opts, **{k: v for k, v in reading.items() if k not in ("size", "channels")})


def _clips(opts) -> bool:
    """Whether ``opts``' scaling can clip: a fixed range (fixed, none, or vmin/vmax); minmax and the stretches use the sequence's own."""
    return opts.scaling in ("fixed", "none") or opts.vmin is not None or opts.vmax is not None


def _saturation_warning(frames: Path, raw: np.ndarray, dtype: np.dtype, opts) -> str | None:
    """A sentence when more than SATURATION_WARN of the raw values ``raw`` (as the model reads them, before
    scaling) fall outside the range ``opts``' scaling maps to [0, 1]."""
    from .data.scaling import scaling_range

    lo, hi = scaling_range(raw, dtype, opts)
    outside = float(np.mean((raw < lo) | (raw > hi)))
    if outside <= SATURATION_WARN:
        return None
    return (f"{outside:.1%} of {frames.name}'s values lie outside [{lo:g}, {hi:g}], the range the model's '{opts.scaling}' scaling "
            f"maps to [0, 1] (the input spans [{float(raw.min()):g}, {float(raw.max()):g}]), so they are clipped; "
            f"pass --scaling minmax (or asinh/log for a high dynamic range) to read this input in its own range.")


def _check_output_dir(out: Path, frames: Path, overwrite: bool) -> None:
    """Refuse the input's own directory and any non-empty directory unless ``overwrite``."""
    if overwrite:
        return
    source_dir = frames if frames.is_dir() else frames.parent
    if out.exists() and out.resolve() == source_dir.resolve():
        raise GanlstmError(f"--out {out} is the input's directory; choose another --out or pass --overwrite.")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise GanlstmError(f"--out {out} is not an empty directory; choose another --out or pass --overwrite.")


def _write_json(target: Path, data: dict[str, Any], overwrite: bool) -> None:
    """Write ``data`` as indented JSON through a temp file, refusing an existing file unless ``overwrite``."""
    from .checkpoint import write_new_bytes

    write_new_bytes(target, (json.dumps(data, indent=2) + "\n").encode(), overwrite)


def predict_to_directory(
    frames: str | Path,
    steps: int,
    *,
    checkpoint: str | Path | None = None,
    out: str | Path | None = None,
    truth: str | Path | None = None,
    fmt: str = "png",
    overwrite: bool = False,
    device: str = "auto",
    amp: str = "no",
    limits: dict[str, int] | None = None,
    anchor_decay: float | None = None,
    motion_scale: float | None = None,
    context_check: bool | None = None,
    output_size: str = "model",
    reading: dict[str, Any] | None = None,
    samples: int = 1,
    spread: float | None = None,
    seed: int = 0,
    morphology: bool = False,
    compile: bool = False,
) -> dict[str, Any]:
    """Predict ``steps`` frames after the sequence at ``frames`` and write them to ``out``.

    Writes the predicted frames numbered after the input (in the input's numbering: with a
    training ``interval`` of n, each predicted frame is n input frames after the previous),
    ``prediction.gif`` (observed then predicted, at the model's size; with ``truth``: truth |
    prediction | |error|) and, with ``truth`` (the sequence that really followed), ``metrics.json``
    with per-horizon MSE/MAE/PSNR/SSIM/sharpness of the written frames, and their ``output_size``
    and ``model_size`` [H, W]. ``out`` defaults to :func:`default_output_dir` (beside the input, outside
    its collection) and is marked as a ganlstm output folder, which collection readers skip.
    The model predicts at its own size and channels; when the input's native ones differ, one
    :class:`~ganlstm.resolution.ResolutionWarning` names the conversions and ``prediction.json``
    records the shapes (C, H, W) and conversions. ``output_size="native"`` resizes the predicted
    frames back (bilinear, float32) to the input's H x W; colour is never invented, so a grayscale
    model's frames stay grayscale. PNG frames are written as the rollout streams out
    (:data:`STREAM_CHUNK` at a time), so a long rollout's memory stays flat; the GIF shows at most
    :data:`GIF_MAX_FRAMES` predicted frames, evenly spaced. ``limits`` (``max_frames``/``max_pixels``)
    replaces the checkpoint's reading guards; ``anchor_decay`` the checkpoint's residual anchoring;
    ``motion_scale`` its scale of the predicted latent change; ``context_check`` whether both are chosen on the input.
    Returns ``{"out", "frames", "gif", "metrics", "prediction"}`` (``metrics`` None without truth,
    ``prediction`` the prediction.json record, None when nothing was converted). ``reading``
    replaces the checkpoint's reading options (``scaling``, ``interval``; ``size`` and ``channels``
    must be the model's own). ``samples`` > 1 draws that many futures (:mod:`ganlstm.ensemble`): the
    frames written are then their mean, and :func:`ganlstm.ensemble_files.write_ensemble` adds the
    members, the spread map and ``ensemble.json`` (``result["ensemble"]``). ``morphology`` (with the truth)
    adds the astronomer's scores to ``metrics.json`` (:mod:`ganlstm.astro_scores`). ``compile`` compiles the
    rollout steps (CUDA graphs on a GPU; on CPU, where one sequence measured no faster, it runs eagerly; :mod:`ganlstm.compiled`); ``result["compile"]`` says what was done.
    """
    from .data.frame_files import ReaderWarning, ResizeWarning, mark_output
    from .data.fits_units import is_fits_file, physical_units, write_fits_in_units
    from .data.frame_writer import write_frames, write_numbered
    from .data.frames import read_raw_sequence, read_sequence
    from .metrics import MetricAccumulator
    from .rollout import iter_predict

    if output_size not in OUTPUT_SIZES:
        raise GanlstmError(f"output_size={output_size!r} is invalid; use one of {', '.join(OUTPUT_SIZES)}.")
    frames = Path(frames)
    out = Path(out) if out is not None else default_output_dir(frames)
    _check_output_dir(out, frames, overwrite)  # before any work, so a refusal is instant
    check_samples(samples)
    if morphology and truth is None:
        raise GanlstmError("--morphology scores the prediction against the frames that really followed; pass --truth too.")
    predictor = Predictor.from_checkpoint(checkpoint, device=device, amp=amp, anchor_decay=anchor_decay,
                                           motion_scale=motion_scale, context_check=context_check, compile=compile)
    if samples > 1:
        refuse_pixel_model(predictor.model)
    if limits:
        predictor.frame_options = dataclasses.replace(predictor.frame_options, **limits)
    if reading:
        predictor.frame_options = _reading_options(predictor, reading)
    fits_back = fmt == "fits" and is_fits_file(frames)  # a FITS input goes back in its own units
    raw = None  # the input before scaling, as the model reads it: read once, for the clipping check and the FITS units
    if _clips(predictor.frame_options) or fits_back:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ReaderWarning)  # the model's own read below says them
            raw = read_raw_sequence(frames, predictor.frame_options)
    saturated = _saturation_warning(frames, *raw, predictor.frame_options) if _clips(predictor.frame_options) else None
    if saturated:
        warnings.warn(saturated, ResolutionWarning, stacklevel=2)
    observed, report = predictor._read_reported(frames)  # (T, C, S, S) as the model reads it
    message = report.message(output_size)
    if message:  # one message, never silently
        warnings.warn(message, ResolutionWarning, stacklevel=2)
    short = predictor.short_context(len(observed)) if len(observed) < predictor.context else None
    if short:
        warnings.warn(short, ResolutionWarning, stacklevel=2)
    out_hw = report.output_hw(output_size)  # (H, W) of the written frames
    native = out_hw != tuple(observed.shape[-2:])
    future = scored = None
    if truth is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResizeWarning)  # read as the frames are, whose conversions were said
            future = read_sequence(truth, predictor.frame_options)  # (K', C, S, S), for the GIF
        if len(future) < steps:
            raise GanlstmError(f"--truth {truth} has {len(future)} frames (after --interval) but {steps} are predicted; pass a longer truth or fewer --steps.")
        future = future[:steps]
        scored = torch.from_numpy(future)  # the truth the written frames are scored against: (K, C, H, W)
        if native:
            scored = torch.from_numpy(read_sequence(truth, dataclasses.replace(predictor.frame_options, size=None))[:steps])
            if tuple(scored.shape[-2:]) != out_hw:
                raise GanlstmError(f"--truth {truth} is {scored.shape[-2]}x{scored.shape[-1]} (H x W) but --frames are "
                                   f"{out_hw[0]}x{out_hw[1]}; with --output-size native give the truth the input's size.")
    out.mkdir(parents=True, exist_ok=True)
    mark_output(out, "predictions")  # readers of a collection skip this folder, wherever it is
    interval = predictor.frame_options.interval
    first = len(observed) * interval  # input frames 0, n, 2n, ... were read; the next is at len * n
    png = fmt in ("png", "png16")
    keep_all = future is not None or not png  # metrics and the one-file formats (npy, fits) need every frame
    every = -(-steps // GIF_MAX_FRAMES)  # the GIF shows every n-th predicted frame
    kept, gif_pred, paths, done = [], [], [], 0
    context = torch.from_numpy(observed[-predictor.context :])  # (J, C, H, W), as Predictor.predict warms up
    members = None  # (N, K, C, S, S): the ensemble, whose mean is written as the prediction
    if samples > 1:
        spread = model_spread(predictor.model) if spread is None else spread
        members = sample_futures(predictor.model, context[None], steps, samples, seed=seed, amp=predictor.amp,
                                 spread=spread)[:, 0]
        mean = members.mean(0, keepdim=True)  # (1, K, C, S, S)
        stream = (mean[:, i : i + STREAM_CHUNK] for i in range(0, steps, STREAM_CHUNK))
    else:
        stream = iter_predict(predictor.model, context, steps, chunk=STREAM_CHUNK, amp=predictor.amp)
    for chunk in stream:
        chunk = chunk[0]  # (n, C, S, S) in [0, 1], on CPU
        written = resize_frames(chunk, out_hw) if native else chunk  # (n, C, H, W)
        if png:  # one file per frame, numbered in the input's numbering
            paths += write_numbered(written, out, fmt, first + done * interval, interval, overwrite=overwrite)
        if keep_all:
            kept.append(written)
        gif_pred.append(chunk[(-done) % every :: every].clone())  # frames 0, every, 2*every, ...; a copy frees the chunk
        done += len(chunk)
    pred = torch.cat(kept) if keep_all else None  # (K, C, H, W)
    if not png:
        if fits_back:  # written back in the input's units, with its header
            units = physical_units(frames, predictor.frame_options, *raw)
            paths = [write_fits_in_units(pred.numpy(), out, first, units, overwrite=overwrite,
                                         history=f"ganlstm predict: {steps} frames after {frames.name} from {predictor.checkpoint.get('path')}")]
        else:
            paths = write_frames(pred, out, fmt, first, overwrite=overwrite)
    gif = save_comparison_gif(context, None if future is None else torch.from_numpy(future[::every]), torch.cat(gif_pred),
                              out / "prediction.gif", overwrite=overwrite)
    ensemble = None
    if members is not None:
        ensemble = write_ensemble(out, members, fmt="npy" if fits_back else fmt, first=first, interval=interval, seed=seed,
                                  spread=spread, truth=scored, overwrite=overwrite,
                                  resize=(lambda x: resize_frames(x, out_hw)) if native else None)
    metrics = None
    if scored is not None:
        acc = MetricAccumulator()
        acc.update(pred[None], scored[None])
        per_horizon = {m: [float(v) for v in values] for m, values in acc.per_horizon().items()}
        metrics = {"horizon": list(range(1, steps + 1)), **per_horizon, "mean": acc.summary(),
                   "checkpoint": str(predictor.checkpoint.get("path")), "frames": str(frames), "truth": str(truth),
                   "context": min(predictor.context, len(observed)),
                   "output_size": list(out_hw), "model_size": list(report.model_shape[1:])}
        if morphology:
            from .astro_scores import AstroAccumulator

            astro = AstroAccumulator()
            astro.update(pred[None], scored[None])
            metrics["morphology"] = {**astro.per_horizon(), "mean": astro.summary()}
        _write_json(out / "metrics.json", metrics, overwrite)
    record = report.record(output_size)
    if short:
        record["conversions"].append(f"warmed up on {len(observed)} observed frame(s), fewer than the {predictor.context} "
                                     f"the model was trained on")
    prediction = None
    if record["conversions"]:  # what was done to the frames, beside them
        prediction = {"frames": str(frames), "checkpoint": str(predictor.checkpoint.get("path")), **record}
        _write_json(out / "prediction.json", prediction, overwrite)
    return {"out": out, "frames": paths, "gif": gif, "metrics": metrics, "prediction": prediction, "ensemble": ensemble,
            "compile": predictor.compile_note}


__all__ = ["predict_to_directory", "default_output_dir"]
