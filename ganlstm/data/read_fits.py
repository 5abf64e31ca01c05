"""FITS through astropy (``pip install ganlstm[astro]``): a cube (T, H, W) (or (T, C, H, W)) as one
sequence, or a 2-D image as one frame of a frame directory."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..config import FrameOptions
from ..errors import GanlstmError
from .decode_guard import decode_guard
from .lazy_frames import LazyFrames
from .limits import check_pixels
from .read_array import open_array


def import_fits(path: Path) -> Any:
    try:
        from astropy.io import fits
    except ImportError:
        raise GanlstmError(f"reading or writing the FITS file {path} needs astropy; pip install ganlstm[astro].") from None
    return fits


def _image_hdu(hdul: Any, path: Path) -> Any:
    for hdu in hdul:
        if hdu.is_image and hdu.header.get("NAXIS", 0) > 0:
            return hdu
    raise GanlstmError(f"{path} holds no image data (no HDU with NAXIS > 0); write the frames into an image HDU.")


def fits_ndim(path: Path) -> int | None:
    """Axes of the first image HDU, ignoring length-1 axes; None if the header cannot be read."""
    try:
        fits = import_fits(path)
        with fits.open(path) as hdul:
            return sum(1 for n in _image_hdu(hdul, path).shape if n > 1)
    except Exception:  # noqa: BLE001 - classification only; the reader reports the real problem
        return None


def open_fits_cube(path: Path, opts: FrameOptions) -> LazyFrames:
    fits = import_fits(path)
    with decode_guard(path):
        hdul = fits.open(path)
    try:
        with decode_guard(path):
            hdu = _image_hdu(hdul, path)
            shape = tuple(hdu.shape)  # from the header; no data read yet
        if len(shape) == 2:
            raise GanlstmError(f"{path} is a single 2-D frame; pass the directory that holds all frames, or a (T, H, W) cube.")
        return open_array(path, opts, shape, lambda: hdu.data, hdul.close)
    except GanlstmError:
        hdul.close()
        raise


def read_fits_frame(path: Path, opts: FrameOptions) -> np.ndarray:
    fits = import_fits(path)
    with fits.open(path) as hdul:
        hdu = _image_hdu(hdul, path)
        shape = tuple(n for n in hdu.shape if n > 1) or (1, 1)
        if len(shape) != 2:
            raise GanlstmError(
                f"{path} holds a {tuple(hdu.shape)} array, not one 2-D frame; a FITS frame directory needs one 2-D image per file."
            )
        check_pixels(shape[0], shape[1], path, opts)
        return np.array(hdu.data).reshape(shape)
