"""Write float (T, C, H, W) frames in [0, 1] back to disk: 8- or 16-bit PNGs, one NPY or one FITS file;
:func:`ganlstm.data.frames.read_sequence` reads every one of them back."""
from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..checkpoint import atomic_write_bytes
from ..errors import GanlstmError
from .read_fits import import_fits

WRITE_FORMATS = ("png", "png16", "npy", "fits")


def write_frames(
    frames: Any,
    out_dir: str | Path,
    fmt: str = "png",
    start_index: int = 0,
    prefix: str = "frame_",
    overwrite: bool = False,
) -> list[Path]:
    """Write float (T, C, H, W) frames in [0, 1] (NumPy or torch; C = 1 or 3) under ``out_dir``.

    ``png`` writes one 8-bit PNG per frame and ``png16`` one 16-bit PNG per frame (grayscale
    only: Pillow cannot write 16-bit RGB), named ``{prefix}{index}.png`` with indices from
    ``start_index`` zero-padded to at least 4 digits. ``npy`` and ``fits`` write the whole
    sequence as one float32 file named ``{prefix}{first}-{last}.npy|.fits``: the NPY holds
    (T, C, H, W); the FITS primary HDU holds (T, H, W) for gray or (T, C, H, W) for RGB, with
    ``FRAME0`` = start_index in its header. Both read back with :func:`~ganlstm.data.frames.read_sequence`.
    Values are clipped to [0, 1]; NaN/Inf are refused. Every file is written through a temp
    file and ``os.replace``; an existing file is refused unless ``overwrite=True``.
    """
    if fmt not in WRITE_FORMATS:
        raise GanlstmError(f"unknown frame format {fmt!r}; use one of {', '.join(WRITE_FORMATS)}.")
    if not isinstance(start_index, int) or start_index < 0:
        raise GanlstmError(f"start_index={start_index!r} is invalid; frame numbers start at a non-negative integer.")
    x = _frames_to_write(frames, fmt)
    t = x.shape[0]
    width = max(4, len(str(start_index + t - 1)))
    out_dir = Path(out_dir)
    if fmt in ("png", "png16"):
        paths = [out_dir / f"{prefix}{start_index + i:0{width}d}.png" for i in range(t)]
    else:
        ext = ".npy" if fmt == "npy" else ".fits"
        paths = [out_dir / f"{prefix}{start_index:0{width}d}-{start_index + t - 1:0{width}d}{ext}"]
    if not overwrite:
        for p in paths:
            if p.exists():
                raise GanlstmError(f"{p} already exists; pass --overwrite (overwrite=True) to replace it.")
    if fmt == "png":
        blobs: Iterator[bytes] = (_encode_png(frame, np.uint8) for frame in x)
    elif fmt == "png16":
        blobs = (_encode_png(frame, np.uint16) for frame in x)
    elif fmt == "npy":
        blobs = iter([_encode_npy(x)])
    else:
        blobs = iter([_encode_fits(x, start_index, paths[0])])
    for p, data in zip(paths, blobs):
        atomic_write_bytes(p, data)
    return paths


def write_numbered(frames: Any, out_dir: str | Path, fmt: str, first: int, interval: int, *, overwrite: bool = False) -> list[Path]:
    """One PNG per frame (T, C, H, W), numbered ``first``, ``first + interval``, ...: predictions in their input's numbering."""
    return [p for i in range(len(frames)) for p in write_frames(frames[i : i + 1], out_dir, fmt, first + i * interval, overwrite=overwrite)]


def _frames_to_write(frames: Any, fmt: str) -> np.ndarray:
    if hasattr(frames, "detach"):  # a torch tensor, without importing torch here
        frames = frames.detach().cpu().numpy()
    x = np.asarray(frames, dtype=np.float32)
    if x.ndim != 4 or x.shape[1] not in (1, 3) or x.shape[0] == 0:
        raise GanlstmError(f"frames to write have shape {x.shape}; pass a non-empty (T, C, H, W) array with C = 1 or 3.")
    if fmt == "png16" and x.shape[1] != 1:
        raise GanlstmError(
            "16-bit PNG output is grayscale only (Pillow cannot write 16-bit RGB); write RGB frames with fmt 'png', 'npy' or 'fits'."
        )
    bad = int(x.size - np.count_nonzero(np.isfinite(x)))
    if bad:
        raise GanlstmError(f"frames to write hold {bad} NaN/Inf value(s); fix the model output (or nan_to_num it) first.")
    return np.clip(x, 0.0, 1.0)


def _encode_png(frame: np.ndarray, dtype: type) -> bytes:
    """One (C, H, W) frame in [0, 1] as PNG bytes at the bit depth of ``dtype`` (uint8 or uint16)."""
    q = np.rint(frame * np.iinfo(dtype).max).astype(dtype)
    buf = io.BytesIO()
    Image.fromarray(q[0] if q.shape[0] == 1 else np.moveaxis(q, 0, -1)).save(buf, format="PNG")
    return buf.getvalue()


def _encode_npy(x: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, x)
    return buf.getvalue()


def _encode_fits(x: np.ndarray, start_index: int, path: Path) -> bytes:
    fits = import_fits(path)
    hdu = fits.PrimaryHDU(x[:, 0] if x.shape[1] == 1 else x)
    hdu.header["FRAME0"] = (start_index, "index of the first frame")
    hdu.header["COMMENT"] = "ganlstm frames, float32 in [0, 1]"
    buf = io.BytesIO()
    hdu.writeto(buf)
    return buf.getvalue()
