"""Decode an opened sequence's kept frames into one unscaled float32 (T, C, H, W) array.

Keep every ``interval``-th frame (skipped frames of a directory or array are never decoded),
convert channels (alpha dropped; ``channels=1`` takes the ITU-R BT.601 luma
0.299 R + 0.587 G + 0.114 B, as Pillow's "L" mode does; ``channels=3`` replicates gray),
resize to ``size`` x ``size`` in float32 (Pillow "F" mode, bilinear; Pillow widens the filter
when shrinking, so downscaling is antialiased, and a bilinear kernel never overshoots, so no
negative flux appears). NaN/Inf, mixed bit depths and (without ``size``) mixed frame sizes are refused;
with ``size``, a resize that does not keep the aspect ratio, or that unifies frames of mixed sizes, is
said in one :class:`~ganlstm.data.frame_files.ResizeWarning`.
:mod:`ganlstm.data.scaling` then maps the values to [0, 1].
"""
from __future__ import annotations

import itertools
import math
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from ..config import FrameOptions
from ..errors import GanlstmError
from .decode_guard import decode_guard
from .frame_files import ResizeWarning
from .lazy_frames import LazyFrames
from .limits import check_frame_count, check_read_bytes

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601, as Pillow's "L"
# Larger magnitudes overflow float32 once scaling subtracts the minimum (max - min must stay finite).
_FLOAT32_SAFE = float(np.finfo(np.float32).max) / 4


def decode_frames(frames: LazyFrames, path: Path, opts: FrameOptions) -> tuple[np.ndarray, np.dtype]:
    """Unscaled float32 (T, C, H, W) of the kept frames, and the frames' source dtype.

    The result's size is checked against the read's memory bound (:func:`~ganlstm.data.limits.check_read_bytes`)
    once the first kept frame shows its converted shape, before the others are decoded; with a known
    frame count the result is allocated once and filled, so no second copy is made.
    """
    kept = None
    if frames.count is not None:
        kept = math.ceil(frames.count / opts.interval)
        check_frame_count(kept, path, opts)
    # islice skips loaders without calling them: skipped frames are never decoded.
    stream = itertools.islice(frames.items, 0, None, opts.interval)
    out: list[np.ndarray] | np.ndarray = []
    n, first, first_label, dtype = 0, None, "", None
    native: list[tuple[int, int]] = []  # the frames' (H, W) as stored, the first three distinct ones
    while True:
        with decode_guard(path):
            item = next(stream, None)
        if item is None:
            break
        label, load = item
        with decode_guard(label):
            raw = np.asarray(load())
        check_frame_count(n + 1, path, opts)
        raw_dtype = raw.dtype.newbyteorder("=")
        if dtype is None:
            first_label, dtype = label, raw_dtype
        elif raw_dtype != dtype and (raw_dtype.kind in "uib" or dtype.kind in "uib"):
            # "fixed" scaling maps integers by their dtype's range, so one sequence needs one.
            raise GanlstmError(
                f"{label} is {raw_dtype} but {first_label} is {dtype}; a sequence needs one bit depth, so convert its frames alike."
            )
        _check_finite(raw, label)
        if len(native) < 3 and raw.shape[:2] not in native:
            native.append(raw.shape[:2])
        chw = _to_chw(raw, opts, label)
        if first is None:
            first = chw
            check_read_bytes((kept or 1) * chw.nbytes, path)
            if kept is not None:
                out = np.empty((kept, *chw.shape), np.float32)  # (T, C, H, W), filled frame by frame
        elif chw.shape != first.shape:
            raise GanlstmError(
                f"{label} is {_hw(chw)} but {first_label} is {_hw(first)}; pass --size (FrameOptions.size) to resize all frames alike."
            )
        elif kept is None:
            check_read_bytes((n + 1) * chw.nbytes, path)  # a video: its length shows as it decodes
        if kept is None:
            out.append(chw)
        elif n < kept:
            out[n] = chw
        else:
            raise GanlstmError(f"{path} holds more frames than its header promises ({kept} after --interval); re-export it.")
        n += 1
    if first is None:
        raise GanlstmError(f"{path} holds no frames; pass a sequence with at least one frame.")
    _say_resize(path, native, opts)
    if kept is None:
        return np.stack(out), dtype
    if n != kept:  # a reader that yielded fewer frames than its header promised
        raise GanlstmError(f"{path} holds {n} readable frames (after --interval) but its header promises {kept}; re-export it.")
    return out, dtype


def _say_resize(path: Path, native: list[tuple[int, int]], opts: FrameOptions) -> None:
    """One :class:`ResizeWarning` when ``size`` did more than scale: squashed the aspect ratio, or unified mixed sizes."""
    if opts.size is None:
        return
    s = opts.size
    if len(native) > 1:
        sizes = ", ".join(f"{w}x{h}" for h, w in native) + (", ..." if len(native) == 3 else "")
        warnings.warn(f"{path}: its frames differ in size ({sizes} px, W x H); each was resized to {s}x{s} px.", ResizeWarning, stacklevel=4)
    elif native[0][0] != native[0][1]:
        h, w = native[0]
        warnings.warn(f"{path}: frames are {w}x{h} px (W x H), resized to {s}x{s} px: the aspect ratio is not kept "
                      f"(crop or pad them to square first to keep it).", ResizeWarning, stacklevel=4)


def _hw(chw: np.ndarray) -> str:
    return f"{chw.shape[2]}x{chw.shape[1]}"


def _check_finite(raw: np.ndarray, label: str) -> None:
    if raw.dtype.kind not in "fc":
        return
    bad = int(raw.size - np.count_nonzero(np.isfinite(raw)))
    if bad:
        raise GanlstmError(
            f"{label} holds {bad} NaN/Inf value(s); replace them (e.g. numpy.nan_to_num) before reading the sequence."
        )
    peak = float(np.abs(raw).max()) if raw.size else 0.0
    if peak > _FLOAT32_SAFE:
        raise GanlstmError(
            f"{label} holds values up to {peak:.3g} in magnitude, beyond what float32 frames can scale ({_FLOAT32_SAFE:.2g}); "
            f"rescale it (e.g. divide by its maximum) before reading the sequence."
        )


def _to_chw(raw: np.ndarray, opts: FrameOptions, label: str) -> np.ndarray:
    """(H, W) or (H, W, C) with C in 1, 3, 4, any numeric dtype -> float32 (channels, H', W')."""
    if raw.ndim == 2:
        raw = raw[..., None]
    if raw.ndim != 3 or raw.shape[2] not in (1, 3, 4):
        raise GanlstmError(f"{label} has shape {raw.shape}, not an image; store frames as (H, W) or (H, W, C) with C in 1, 3, 4.")
    if raw.shape[2] == 1:
        gray = raw[..., 0].astype(np.float32)
        planes = [gray] if opts.channels == 1 else [gray] * 3
    else:  # RGB or RGBA: alpha dropped before the float copy, which is then a quarter smaller
        rgb = raw[..., :3].astype(np.float32)
        planes = [rgb @ _LUMA] if opts.channels == 1 else [rgb[..., 0], rgb[..., 1], rgb[..., 2]]
    if opts.size is not None:
        planes = [_resize(p, opts.size) for p in planes]
    return np.stack(planes)


def _resize(plane: np.ndarray, size: int) -> np.ndarray:
    if plane.shape == (size, size):
        return plane
    # Mode "F" keeps float32 end to end: 16-bit and HDR values are never squeezed into 8 bits.
    img = Image.fromarray(np.ascontiguousarray(plane, dtype=np.float32))
    return np.asarray(img.resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32)
