"""Readers of NumPy arrays: a ``.npy`` array, or an ``.npz`` holding a single array, shaped (T, H, W),
(T, H, W, C) or (T, C, H, W) with C in {1, 3, 4}. Shapes and dtypes come from the headers; the data
are loaded (memory-mapped for ``.npy``) only once decoding starts. :func:`open_array` also serves
FITS cubes (:mod:`ganlstm.data.read_fits`). An ``.npz`` member is decompressed whole, so its
declared size (from its .npy header) counts against the read's memory bound before it is.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from ..config import FrameOptions
from ..errors import GanlstmError
from .decode_guard import decode_guard
from .lazy_frames import LazyFrames
from .limits import check_frame_count, check_pixels, check_read_bytes, output_bytes


def _array_layout(shape: tuple[int, ...], source: Any) -> str:
    """'thw', 'thwc' or 'tchw' for a (T, ...) array, or an error naming what is accepted."""
    if len(shape) == 3:
        return "thw"
    if len(shape) == 4:
        # (T, C, H, W) wins a tie: it is what ganlstm and torch write.
        if shape[1] in (1, 3, 4):
            return "tchw"
        if shape[3] in (1, 3, 4):
            return "thwc"
    raise GanlstmError(
        f"{source} has shape {tuple(shape)}; store a sequence as (T, H, W), (T, H, W, C) or (T, C, H, W) with C in 1, 3, 4."
    )


def _layout_hw(shape: tuple[int, ...], layout: str) -> tuple[int, int]:
    return (shape[2], shape[3]) if layout == "tchw" else (shape[1], shape[2])


def _array_frame(array: Any, index: int, layout: str) -> np.ndarray:
    frame = np.asarray(array[index])
    return np.moveaxis(frame, 0, -1) if layout == "tchw" else frame


def _read_npy_header(f: Any) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from an open .npy stream, without reading the data."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
    else:
        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
    return tuple(shape), np.dtype(dtype)


def _check_numeric(dtype: np.dtype, source: Any) -> None:
    if dtype.kind not in "biuf":
        raise GanlstmError(f"{source} has dtype {dtype}, not real numbers; save a numeric array (e.g. float32 or uint8).")


def check_array(path: Path, opts: FrameOptions, shape: tuple[int, ...], *, decompressed: int = 0) -> str:
    """Check a (T, ...) array's header against every limit before any of it is read; returns its layout.

    ``decompressed``: the bytes its loader allocates at once (an .npz member, a compressed or scaled
    FITS cube; 0 for a memory-mapped array). With the result's size it must fit the read's memory
    bound (:func:`~ganlstm.data.limits.check_read_bytes`).
    """
    layout = _array_layout(shape, path)
    height, width = _layout_hw(shape, layout)
    check_pixels(height, width, path, opts)
    check_frame_count(-(-shape[0] // opts.interval), path, opts)
    check_read_bytes(output_bytes(shape[0], opts, height, width), path, decompressed=decompressed)
    return layout


def open_array(
    path: Path,
    opts: FrameOptions,
    shape: tuple[int, ...],
    load: Callable[[], Any],
    close: Callable[[], None] = lambda: None,
    *,
    decompressed: int = 0,
) -> LazyFrames:
    """Frames of a (T, ...) array whose shape came from a header; ``load`` runs only once decoding starts.

    ``decompressed``: the bytes ``load`` allocates at once (see :func:`check_array`).
    """
    layout = check_array(path, opts, shape, decompressed=decompressed)

    def items() -> Iterator[tuple[str, Callable[[], np.ndarray]]]:
        array = load()  # after decode_frames's frame-count check, so an oversized array is never loaded
        for i in range(shape[0]):
            yield f"frame {i} of {path}", partial(_array_frame, array, i, layout)

    return LazyFrames(shape[0], items(), close)


def open_npy(path: Path, opts: FrameOptions) -> LazyFrames:
    with decode_guard(path), open(path, "rb") as f:
        shape, dtype = _read_npy_header(f)
    _check_numeric(dtype, path)
    # mmap: only the kept frames are paged in.
    return open_array(path, opts, shape, partial(np.load, path, mmap_mode="r", allow_pickle=False))


def open_npz(path: Path, opts: FrameOptions) -> LazyFrames:
    import zipfile

    with decode_guard(path), zipfile.ZipFile(path) as zf:
        members = [n for n in zf.namelist() if n.endswith(".npy")]
        if len(members) != 1:
            keys = ", ".join(n[: -len(".npy")] for n in members) or "none"
            raise GanlstmError(f"{path} holds {len(members)} arrays (keys: {keys}); keep exactly one array per .npz (or use np.save).")
        with zf.open(members[0]) as f:
            shape, dtype = _read_npy_header(f)
    _check_numeric(dtype, path)
    key = members[0][: -len(".npy")]

    def load() -> np.ndarray:
        with np.load(path, allow_pickle=False) as z:
            return z[key]

    # np.load decompresses the member whole: its declared size counts against the read's memory bound.
    return open_array(path, opts, shape, load, decompressed=math.prod(shape) * dtype.itemsize)
