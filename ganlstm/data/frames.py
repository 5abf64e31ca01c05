"""Read image sequences from disk into float32 (T, C, H, W) arrays in [0, 1]: what a sequence and a
collection are, and the one pipeline every frame goes through.

A *sequence* is one of:

- a directory of frames, one image per file (PNG, JPEG, TIFF, BMP at 8 or 16 bits,
  float TIFF, or 2-D FITS), ordered by natural sort so ``f2`` comes before ``f10``;
- a multi-frame image file: an animated GIF (or a multi-page TIFF / animated PNG);
- a video (MP4, MOV, AVI, MKV) read through imageio + imageio-ffmpeg (``pip install ganlstm[video]``);
- a NumPy ``.npy`` array, or an ``.npz`` holding a single array, shaped (T, H, W),
  (T, H, W, C) or (T, C, H, W) with C in {1, 3, 4};
- a FITS cube (T, H, W) (or (T, C, H, W)) read through astropy (``pip install ganlstm[astro]``).

A *collection* is a directory of sequences (sub-directories of frames and/or sequence files).

Every frame goes through one pipeline, driven by :class:`ganlstm.config.FrameOptions`:
the decoding of :mod:`ganlstm.data.decode` (interval, channels, size), then the intensity scaling
of :mod:`ganlstm.data.scaling` (``minmax``, ``fixed``, ``asinh``, ``log`` or ``none``). Each format
has its reader: :mod:`ganlstm.data.read_image` (Pillow), :mod:`~ganlstm.data.read_video`,
:mod:`~ganlstm.data.read_array` (NumPy) and :mod:`~ganlstm.data.read_fits`; the writers are in
:mod:`ganlstm.data.frame_writer`.

Bad input raises :class:`ganlstm.errors.GanlstmError` with one sentence naming the file and the
fix; decoder exceptions (Pillow, NumPy, astropy, ffmpeg) are wrapped, never leaked. Frame
dimensions are checked against ``max_pixels`` from headers before any pixel is decoded: every
page of a TIFF and every frame of a GIF, not only the first (see :mod:`ganlstm.data.limits`),
and frame counts against ``max_frames`` after walking at most ``max_frames * interval + 1``
frame headers.
"""
from __future__ import annotations

import warnings
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from ..config import FrameOptions
from ..errors import GanlstmError
from .decode import decode_frames
from .decode_guard import memory_guard
from .frame_files import (
    ANIMATION_EXTENSIONS, ARRAY_EXTENSIONS, FITS_EXTENSIONS, IMAGE_EXTENSIONS, OUTPUT_MARKER, SUPPORTED_EXTENSIONS, VIDEO_EXTENSIONS,
    ReaderWarning, SkippedOutputWarning, file_ext, is_ganlstm_output, raise_nothing_readable, require_exists, visible_entries,
)
from .lazy_frames import LazyFrames
from .read_array import open_npy, open_npz
from .read_fits import fits_ndim, open_fits_cube, read_fits_frame
from .read_image import open_multiframe_image, pil_is_animated, read_image_frame
from .read_video import open_video
from .scaling import SCALINGS, scale_frames


def read_sequence(path: str | Path, opts: FrameOptions | None = None) -> np.ndarray:
    """Read one sequence (frame directory, GIF, video, .npy/.npz, FITS) as float32 (T, C, H, W) in [0, 1]."""
    opts = opts or FrameOptions()
    _check_options(opts)
    path = Path(path)
    return _assemble(open_sequence(path, opts), path, opts)


def read_raw_sequence(path: str | Path, opts: FrameOptions | None = None) -> tuple[np.ndarray, np.dtype]:
    """One sequence as decoded, before scaling: raw float32 (T, C, H, W) and the dtype it was stored in."""
    opts = opts or FrameOptions()
    _check_options(opts)
    path = Path(path)
    frames = open_sequence(path, opts)
    with memory_guard(path):
        try:
            return decode_frames(frames, path, opts)
        finally:
            frames.close()


def read_collection(path: str | Path, opts: FrameOptions | None = None) -> list[tuple[str, np.ndarray]]:
    """Read every sequence under ``path`` as ``(name, array)`` pairs, natural-sorted by name.

    ``path`` is either one sequence (returned alone) or a directory whose entries are
    sequences: sub-directories of frames and/or GIF, video, NPY/NPZ and FITS-cube files.
    Names are the entries' file or directory names. Other files (notes, configs) are ignored, and
    folders ganlstm wrote outputs into (predictions, evaluations: they hold ``.ganlstm-output``) are
    skipped with one :class:`~ganlstm.data.frame_files.SkippedOutputWarning`.
    """
    opts = opts or FrameOptions()
    _check_options(opts)
    path = Path(path)
    require_exists(path)
    if not path.is_dir() or is_sequence_path(path):
        return [(path.name, read_sequence(path, opts))]
    entries = visible_entries(path)
    outputs = [p for p in entries if is_ganlstm_output(p)]
    if outputs:  # said once per read, naming them all
        warnings.warn(f"{path}: skipped {len(outputs)} folder(s) that ganlstm wrote outputs into, not data "
                      f"({', '.join(p.name for p in outputs)}; each holds {OUTPUT_MARKER}, delete it to read the folder as data)",
                      SkippedOutputWarning, stacklevel=2)
    entries = [p for p in entries if p not in outputs and is_sequence_path(p)]
    if not entries:
        raise_nothing_readable(path, what="sequences (sub-directories of frames or sequence files)")
    out, said = [], []
    for p in entries:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out.append((p.name, read_sequence(p, opts)))
        said += caught
    _say_once(said, path, len(entries))
    return out


def _say_once(caught: list[warnings.WarningMessage], path: Path, sequences: int) -> None:
    """Re-raise what reading a collection's sequences warned: each kind of ReaderWarning once, with a count."""
    by_kind: dict[type, list[str]] = {}
    for w in caught:
        if issubclass(w.category, ReaderWarning):
            by_kind.setdefault(w.category, []).append(str(w.message))
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
    for kind, messages in by_kind.items():
        text = messages[0] if len(messages) == 1 else (
            f"{path}: {len(messages)} of its {sequences} sequences were read with a change like this one: {messages[0]}")
        warnings.warn(text, kind, stacklevel=3)


def is_sequence_path(path: str | Path) -> bool:
    """True if ``path`` is one sequence: a sequence file, or a directory holding frame files.

    A FITS file is a sequence when its image has 3 or more axes; a TIFF or PNG file when it
    holds several frames. Reading the answer touches headers only.
    """
    path = Path(path)
    if path.is_dir():
        files = [p for p in visible_entries(path) if p.is_file()]
        if any(file_ext(p) in IMAGE_EXTENSIONS for p in files):
            return True
        fits_files = [p for p in files if file_ext(p) in FITS_EXTENSIONS]
        # One header decides: a frame directory holds 2-D images, a collection holds cubes.
        return bool(fits_files) and fits_ndim(fits_files[0]) in (None, 2)
    if not path.is_file():
        return False
    ext = file_ext(path)
    if ext in ARRAY_EXTENSIONS + ANIMATION_EXTENSIONS + VIDEO_EXTENSIONS:
        return True
    if ext in FITS_EXTENSIONS:
        return fits_ndim(path) != 2
    if ext in IMAGE_EXTENSIONS:
        return pil_is_animated(path) is not False
    return False


def require_frames(array: Any, n: int, name: str) -> None:
    """Raise unless ``array`` (anything with ``len``: (T, C, H, W)) has at least ``n`` frames."""
    if len(array) < n:
        raise GanlstmError(
            f"{name} has {len(array)} frames but context+horizon needs {n}; use a longer sequence, "
            f"a smaller --interval, or a shorter --context/--horizon."
        )


def _check_options(opts: FrameOptions) -> None:
    def bad(option: str, value: Any, need: str) -> GanlstmError:
        return GanlstmError(f"frame option {option}={value!r} is invalid; {need}.")

    if opts.size is not None and (not isinstance(opts.size, int) or opts.size < 1):
        raise bad("size", opts.size, "use a positive integer (e.g. --size 64) or leave it unset")
    if opts.channels not in (1, 3):
        raise bad("channels", opts.channels, "use 1 (grayscale) or 3 (RGB)")
    if not isinstance(opts.interval, int) or opts.interval < 1:
        raise bad("interval", opts.interval, "use a positive integer (1 keeps every frame)")
    if opts.scaling not in SCALINGS:
        raise bad("scaling", opts.scaling, f"use one of {', '.join(SCALINGS)}")
    if opts.scaling in ("minmax", "none") and (opts.vmin is not None or opts.vmax is not None):
        raise bad("scaling", opts.scaling, "vmin/vmax only apply to scaling fixed, asinh or log; drop them or change --scaling")
    if opts.vmin is not None and opts.vmax is not None and not opts.vmin < opts.vmax:
        raise bad("vmin", opts.vmin, f"it must be below vmax={opts.vmax!r}")
    if not opts.stretch > 0:
        raise bad("stretch", opts.stretch, "use a positive softening such as 0.1")
    if opts.max_frames < 1 or opts.max_pixels < 1:
        raise bad("max_frames/max_pixels", (opts.max_frames, opts.max_pixels), "use positive limits")


def _assemble(frames: LazyFrames, path: Path, opts: FrameOptions) -> np.ndarray:
    """Decode the kept frames one by one into (T, C, H, W) float32 and scale them to [0, 1]."""
    with memory_guard(path):  # converting, stacking and scaling allocate outside the decoders' guard
        try:
            x, dtype = decode_frames(frames, path, opts)
        finally:
            frames.close()
        return scale_frames(x, dtype, opts, path)


def open_sequence(path: Path, opts: FrameOptions) -> LazyFrames:
    """Open one sequence without decoding a pixel, through the reader its path calls for."""
    require_exists(path)
    if path.is_dir():
        return _open_frame_dir(path, opts)
    ext = file_ext(path)
    if ext in IMAGE_EXTENSIONS + ANIMATION_EXTENSIONS:
        return open_multiframe_image(path, opts)
    if ext in VIDEO_EXTENSIONS:
        return open_video(path, opts)
    if ext == ".npy":
        return open_npy(path, opts)
    if ext == ".npz":
        return open_npz(path, opts)
    if ext in FITS_EXTENSIONS:
        return open_fits_cube(path, opts)
    raise GanlstmError(
        f"{path} has an unsupported extension {ext or '(none)'!r}; "
        f"supported are {', '.join(SUPPORTED_EXTENSIONS)} (or a directory of frames)."
    )


def _open_frame_dir(path: Path, opts: FrameOptions) -> LazyFrames:
    entries = visible_entries(path)
    if not is_sequence_path(path):
        if any(is_sequence_path(p) for p in entries):
            raise GanlstmError(
                f"{path} is a collection of sequences, not one sequence; pass one of its entries or read it with read_collection."
            )
        raise_nothing_readable(path, what="frames")
    files = [p for p in entries if p.is_file() and file_ext(p) in IMAGE_EXTENSIONS + FITS_EXTENSIONS]
    items = ((str(f), partial(_read_frame_file, f, opts)) for f in files)
    return LazyFrames(len(files), items)


def _read_frame_file(path: Path, opts: FrameOptions) -> np.ndarray:
    if file_ext(path) in FITS_EXTENSIONS:
        return read_fits_frame(path, opts)
    return read_image_frame(path, opts)
