"""Readers of image files through Pillow: one frame per file (PNG, JPEG, TIFF, BMP at 8 or 16 bits,
float TIFF), and multi-frame files (an animated GIF, a multi-page TIFF, an animated PNG).

Every page of a TIFF and every frame of a GIF is checked against ``max_pixels`` from its header
before any pixel is decoded, and frame counts against ``max_frames`` after a bounded header walk
(see :mod:`ganlstm.data.limits`).
"""
from __future__ import annotations

import math
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

from ..config import FrameOptions
from ..errors import GanlstmError
from .decode_guard import decode_guard
from .frame_files import ANIMATION_EXTENSIONS, file_ext
from .lazy_frames import LazyFrames
from .limits import check_frame_count, check_pixels, gif_canvas_sizes, pil_page_sizes


def read_image_frame(path: Path, opts: FrameOptions) -> np.ndarray:
    """One frame of a frame directory from an image file (PNG, JPEG, TIFF, BMP) as (H, W) or (H, W, C)."""
    with Image.open(path) as im:
        check_pixels(im.height, im.width, path, opts)
        if getattr(im, "n_frames", 1) > 1:
            raise GanlstmError(
                f"{path} holds {im.n_frames} frames; a frame directory needs one image per file, so split it or pass the file alone."
            )
        return _pil_array(im)


def _pil_array(im: Image.Image) -> np.ndarray:
    """The current frame as (H, W) or (H, W, C), keeping 16-bit and float modes exact."""
    if im.mode in ("L", "I", "F", "RGB", "RGBA") or im.mode.startswith("I;16"):
        return np.asarray(im)
    if im.mode == "1":
        return np.asarray(im.convert("L"))
    # Palette (GIF), LA, CMYK, YCbCr, ...: go through RGBA so any transparency becomes a dropped alpha.
    return np.asarray(im.convert("RGBA"))


def pil_is_animated(path: Path) -> bool | None:
    """Whether an image file holds several frames, from its first headers (a TIFF's next-IFD link); None if unreadable."""
    try:
        with Image.open(path) as im:
            return bool(getattr(im, "is_animated", False))
    except Exception:  # noqa: BLE001 - classification only; the reader reports the real problem
        return None


def open_multiframe_image(path: Path, opts: FrameOptions) -> LazyFrames:
    with decode_guard(path):
        im = Image.open(path)  # lazy: the header gives size and frame count
    try:
        check_pixels(im.height, im.width, path, opts)
        if file_ext(path) == ".gif" and not _gif_has_trailer(path):
            raise GanlstmError(
                f"{path} is corrupt or truncated (it lacks the GIF end marker, so frames may be missing); re-export or re-download it."
            )
        with decode_guard(path):
            n = _checked_frame_count(im, path, opts)
        if n == 1 and file_ext(path) not in ANIMATION_EXTENSIONS:
            raise GanlstmError(f"{path} is a single image; pass the directory that holds all frames of the sequence.")
    except GanlstmError:
        im.close()
        raise
    items = ((f"frame {i} of {path}", partial(_pil_seek_array, im, i, path, opts)) for i in range(n))
    return LazyFrames(n, items, im.close)


def _checked_frame_count(im: Image.Image, path: Path, opts: FrameOptions) -> int:
    """Frames in an open image file, refused past ``max_frames`` or with any frame above ``max_pixels``.

    Pillow checks only frame 0's size, and a TIFF page or a GIF frame may be far larger. GIF frames
    and TIFF pages are walked from their headers (see :mod:`ganlstm.data.limits`), at most one frame
    more than ``max_frames`` allows, so a file claiming millions of frames is refused without
    walking them. APNG frames must lie inside the canvas and their count is in the header.
    """
    limit = opts.max_frames * opts.interval  # more frames than this keep more than max_frames
    if im.format == "GIF":
        sizes, word = gif_canvas_sizes(path, limit + 1), "frame"
    elif im.format == "TIFF":
        sizes, word = pil_page_sizes(im, limit + 1), "page"
    else:
        return int(getattr(im, "n_frames", 1))
    for i, (width, height) in enumerate(sizes[1:], start=1):
        check_pixels(height, width, f"{word} {i} of {path}", opts)
    check_frame_count(math.ceil(len(sizes) / opts.interval), path, opts)
    # Within the limit, Pillow's own count is the one decoding will follow.
    return int(getattr(im, "n_frames", 1)) if im.format == "GIF" else len(sizes)


def _gif_has_trailer(path: Path) -> bool:
    """Whether the file ends with the GIF trailer byte (0x3B), ignoring NUL padding.

    Pillow reads a GIF cut between two frames as a shorter animation without complaint;
    the missing trailer is what gives such a file away.
    """
    with decode_guard(path), open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - 64))
        return f.read().rstrip(b"\x00").endswith(b"\x3b")


def _pil_seek_array(im: Image.Image, index: int, path: Path, opts: FrameOptions) -> np.ndarray:
    im.seek(index)  # reads the frame's header (decoding only the frames before it, for a GIF)
    check_pixels(im.height, im.width, f"frame {index} of {path}", opts)  # its own size, before its pixels
    return _pil_array(im)
