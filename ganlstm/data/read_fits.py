"""FITS through astropy (``pip install ganlstm[astro]``): a cube (T, H, W) (or (T, C, H, W)) as one
sequence, or a 2-D image as one frame of a frame directory.

A plain FITS cube is memory-mapped, so only the kept frames are read. A ``.fits.gz`` (and a cube
with BSCALE/BZERO, which astropy rescales whole) is materialised at once: its declared size counts
against the read's memory bound. For a ``.fits.gz`` the declaration is read from the headers with
plain Python (:func:`gz_image_declaration`) before astropy opens the file, which walks the whole
decompressed stream even to report a shape.
"""
from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np

from ..config import FrameOptions
from ..errors import GanlstmError
from .decode_guard import decode_guard
from .lazy_frames import LazyFrames
from .limits import check_pixels, read_byte_limit
from .read_array import check_array, open_array


def import_fits(path: Path) -> Any:
    try:
        from astropy.io import fits
    except ImportError:
        raise GanlstmError(f"reading or writing the FITS file {path} needs astropy; pip install ganlstm[astro].") from None
    return fits


def _image_hdu(hdul: Any, path: Path) -> Any:
    for hdu in itertools.islice(hdul, _MAX_HDUS):
        if hdu.is_image and hdu.header.get("NAXIS", 0) > 0:
            return hdu
    raise GanlstmError(f"{path} holds no image data in its first {_MAX_HDUS} HDUs (none with NAXIS > 0); "
                       f"write the frames into an image HDU.")


_BLOCK = 2880  # FITS record
_MAX_HEADER_BLOCKS = 64  # per header: 2,304 cards
_MAX_HDUS = 8  # walked to find the first image with data


def gz_image_declaration(path: Path) -> tuple[tuple[int, ...], int, bool] | None:
    """``(shape, BITPIX, scaled)`` of the first image HDU with data in a ``.fits.gz``, read from its headers.

    ``shape`` is in numpy order (NAXISn, ..., NAXIS1). Only header blocks (and the data of HDUs before
    that image, up to the read's memory bound) are decompressed. None when the headers cannot be
    parsed this way; astropy then reports the problem.
    """
    import gzip
    import zlib

    try:
        with gzip.open(path, "rb") as f:
            skipped = 0
            for index in range(_MAX_HDUS):
                cards = _header_cards(f)
                if cards is None:
                    return None
                naxis = int(cards.get("NAXIS", 0))
                shape = tuple(int(cards[f"NAXIS{i}"]) for i in range(naxis, 0, -1))
                bitpix = int(cards["BITPIX"])
                image = index == 0 or str(cards.get("XTENSION", "")).strip("' ").upper() == "IMAGE"
                if naxis > 0 and image:
                    scaled = float(cards.get("BSCALE", 1)) != 1 or float(cards.get("BZERO", 0)) != 0
                    return shape, bitpix, scaled
                size = abs(bitpix) // 8 * int(cards.get("GCOUNT", 1)) * (int(cards.get("PCOUNT", 0)) + (math.prod(shape) if naxis else 0))
                skipped += -(-size // _BLOCK) * _BLOCK
                if skipped > read_byte_limit():
                    return None
                f.seek(f.tell() + -(-size // _BLOCK) * _BLOCK)
    except (OSError, EOFError, ValueError, KeyError, OverflowError, zlib.error):  # damaged: astropy reports it
        return None
    return None


def _header_cards(f: Any) -> dict[str, str] | None:
    """The KEYWORD -> value cards of the next header, up to END; None if it is not one."""
    cards: dict[str, str] = {}
    for _ in range(_MAX_HEADER_BLOCKS):
        block = f.read(_BLOCK)
        if len(block) < _BLOCK:
            return None
        for i in range(0, _BLOCK, 80):
            card = block[i : i + 80].decode("ascii", "replace")
            key = card[:8].strip()
            if key == "END":
                return cards
            if card[8:10] == "= ":
                cards.setdefault(key, card[10:].split("/")[0].strip())
    return None


def _declared_bytes(shape: tuple[int, ...], bitpix: int, *, compressed: bool, scaled: bool) -> int:
    """What a cube takes at once besides the frames read: a .fits.gz's decompressed bytes and astropy's copy of
    its data (see :func:`_open`), plus a float64 copy if astropy rescales it (BSCALE/BZERO)."""
    n = math.prod(shape)
    return (2 * n * abs(bitpix) // 8 if compressed else 0) + (n * 8 if scaled else 0)


def _is_gz(path: Path) -> bool:
    return path.name.lower().endswith(".gz")


def _open(fits: Any, path: Path) -> Any:
    """astropy's HDU list of ``path``. A .fits.gz is decompressed here first, within the read's memory bound:
    astropy walks a gzip stream to its end even to report a shape, and loops for ever on some damaged ones."""
    if not _is_gz(path):
        return fits.open(path)
    import gzip
    import io

    limit, raw = read_byte_limit(), io.BytesIO()  # written chunk by chunk: BytesIO(bytes) would copy it all once more
    with decode_guard(path), gzip.open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            raw.write(chunk)
            if raw.tell() > limit:
                raise GanlstmError(f"{path} decompresses to more than {limit / 2**30:.2f} GiB, the bound of a read; save it "
                                   f"as plain FITS (read frame by frame) or raise the bound with GANLSTM_MAX_READ_BYTES=BYTES.")
    raw.seek(0)
    return fits.open(raw)


def fits_ndim(path: Path) -> int | None:
    """Axes of the first image HDU, ignoring length-1 axes; None if the header cannot be read."""
    if _is_gz(path):  # from the headers alone; a damaged stream is left to the reader to report
        declared = gz_image_declaration(path)
        return None if declared is None else sum(1 for n in declared[0] if n > 1)
    try:
        fits = import_fits(path)
        with fits.open(path) as hdul:
            return sum(1 for n in _image_hdu(hdul, path).shape if n > 1)
    except Exception:  # noqa: BLE001 - classification only; the reader reports the real problem
        return None


def _precheck_gz(path: Path, opts: FrameOptions, cube: bool) -> None:
    """Refuse a .fits.gz whose declared image breaks a limit, before astropy decompresses anything."""
    declared = gz_image_declaration(path) if _is_gz(path) else None
    if declared is None:
        return
    shape, bitpix, scaled = declared
    dims = tuple(n for n in shape if n > 1) or (1, 1)
    if len(dims) >= 2:
        check_pixels(dims[-2], dims[-1], path, opts)
    if cube and len(shape) >= 3:
        check_array(path, opts, shape, decompressed=_declared_bytes(shape, bitpix, compressed=True, scaled=scaled))


def open_fits_cube(path: Path, opts: FrameOptions) -> LazyFrames:
    fits = import_fits(path)
    _precheck_gz(path, opts, cube=True)
    with decode_guard(path):
        hdul = _open(fits, path)
    try:
        with decode_guard(path):
            hdu = _image_hdu(hdul, path)
            shape = tuple(hdu.shape)  # from the header; no data read yet
            header = hdu.header
            scaled = float(header.get("BSCALE", 1)) != 1 or float(header.get("BZERO", 0)) != 0
            decompressed = _declared_bytes(shape, int(header.get("BITPIX", 8)), compressed=_is_gz(path), scaled=scaled)
        if len(shape) == 2:
            raise GanlstmError(f"{path} is a single 2-D frame; pass the directory that holds all frames, or a (T, H, W) cube.")
        return open_array(path, opts, shape, lambda: hdu.data, hdul.close, decompressed=decompressed)
    except GanlstmError:
        hdul.close()
        raise


def read_fits_frame(path: Path, opts: FrameOptions) -> np.ndarray:
    fits = import_fits(path)
    _precheck_gz(path, opts, cube=False)
    with _open(fits, path) as hdul:
        hdu = _image_hdu(hdul, path)
        shape = tuple(n for n in hdu.shape if n > 1) or (1, 1)
        if len(shape) != 2:
            raise GanlstmError(
                f"{path} holds a {tuple(hdu.shape)} array, not one 2-D frame; a FITS frame directory needs one 2-D image per file."
            )
        check_pixels(shape[0], shape[1], path, opts)
        return np.array(hdu.data).reshape(shape)
