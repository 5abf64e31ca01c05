"""A FITS cube in, a FITS cube out in the same units: predictions written back as the input was.

Models work on frames in [0, 1]; an astronomer's cube is in physical units (counts, surface
brightness) with a header that places it on the sky (WCS). :func:`physical_units` records how
the input was scaled (the raw range [lo, hi] its scaling mapped to [0, 1], the scaling itself)
and its header; :func:`write_fits_in_units` inverts the scaling
(:func:`ganlstm.data.scaling.unscale_frames`) and writes the predicted frames with that header,
its data keywords (BITPIX, NAXISn, BZERO/BSCALE) replaced by the float32 array's, and a HISTORY
card saying what ganlstm did. Values the scaling clipped on the way in cannot come back.
"""
from __future__ import annotations

import dataclasses
import io
from pathlib import Path
from typing import Any

import numpy as np

from ..checkpoint import atomic_write_bytes
from ..config import FrameOptions
from ..errors import GanlstmError
from .decode_guard import decode_guard
from .frame_files import FITS_EXTENSIONS, file_ext
from .read_fits import _image_hdu, import_fits

# Keywords that describe the stored array, not the data's meaning: astropy writes them afresh.
_DATA_KEYWORDS = ("BITPIX", "BZERO", "BSCALE", "BLANK", "EXTEND", "SIMPLE", "XTENSION", "PCOUNT", "GCOUNT", "CHECKSUM", "DATASUM")


@dataclasses.dataclass
class PhysicalUnits:
    """How a FITS input's raw values became [0, 1]: ``[lo, hi]`` under ``opts.scaling``, and its header."""

    lo: float
    hi: float
    opts: FrameOptions
    header: Any  # astropy.io.fits.Header
    source: Path


def is_fits_file(path: str | Path) -> bool:
    """True when ``path`` is one FITS file (a cube or a frame), not a directory."""
    path = Path(path)
    return not path.is_dir() and file_ext(path) in FITS_EXTENSIONS


def physical_units(path: str | Path, opts: FrameOptions, raw: np.ndarray, dtype: np.dtype) -> PhysicalUnits:
    """The units of the FITS file at ``path``: its header, and the range [lo, hi] that ``opts`` scaled to [0, 1].

    ``raw`` (T, C, H, W) and ``dtype`` are the file as ``opts`` decodes it, before scaling
    (:func:`ganlstm.data.frames.read_raw_sequence`): the values the model's scaling saw.
    """
    from .scaling import scaling_range

    path = Path(path)
    fits = import_fits(path)
    with decode_guard(path), fits.open(path, memmap=False, lazy_load_hdus=True) as hdul:
        header = _image_hdu(hdul, path).header.copy()
    lo, hi = scaling_range(raw, dtype, opts)
    return PhysicalUnits(lo=lo, hi=hi, opts=opts, header=header, source=path)


def write_fits_in_units(frames01: np.ndarray, out_dir: str | Path, first: int, units: PhysicalUnits, *,
                        overwrite: bool = False, history: str = "") -> Path:
    """Write frames (T, C, H, W) in [0, 1] as one FITS cube in the input's units and header; returns the path."""
    from .scaling import unscale_frames

    x = np.asarray(frames01, dtype=np.float32)
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise GanlstmError(f"frames to write have shape {x.shape}; pass a (T, C, H, W) array with C = 1 or 3.")
    data = unscale_frames(np.clip(x, 0.0, 1.0), units.lo, units.hi, units.opts)
    data = data[:, 0] if data.shape[1] == 1 else data  # (T, H, W) for gray, as the input cube
    last = first + len(x) - 1
    path = Path(out_dir) / f"frame_{first:04d}-{last:04d}.fits"
    if path.exists() and not overwrite:
        raise GanlstmError(f"{path} already exists; pass --overwrite (overwrite=True) to replace it.")
    fits = import_fits(path)
    header = units.header.copy()
    for key in _DATA_KEYWORDS:
        header.remove(key, ignore_missing=True, remove_all=True)
    hdu = fits.PrimaryHDU(data, header=header)
    hdu.header["FRAME0"] = (first, "index of the first predicted frame in the input's numbering")
    hdu.header["HISTORY"] = history or "ganlstm predict"
    hdu.header["HISTORY"] = (f"values mapped back from [0, 1] with scaling '{units.opts.scaling}' over "
                             f"[{units.lo:g}, {units.hi:g}] of {units.source.name}")
    buf = io.BytesIO()
    hdu.writeto(buf, output_verify="silentfix")
    atomic_write_bytes(path, buf.getvalue())
    return path
