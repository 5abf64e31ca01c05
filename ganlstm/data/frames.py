"""Read image sequences from disk into float32 (T, C, H, W) arrays in [0, 1], and write them back.

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
keep every ``interval``-th frame (skipped frames of a directory or array are never decoded),
convert channels (alpha dropped; ``channels=1`` takes the ITU-R BT.601 luma
0.299 R + 0.587 G + 0.114 B, as Pillow's "L" mode does; ``channels=3`` replicates gray),
resize to ``size`` x ``size`` in float32 (Pillow "F" mode, bilinear; Pillow widens the filter
when shrinking, so downscaling is antialiased, and a bilinear kernel never overshoots, so no
negative flux appears), then map values to [0, 1]:

``minmax``  (x - min) / (max - min) over the whole sequence (all frames and channels together,
            so relative brightness between frames is kept); a constant sequence maps to 0.
``fixed``   (x - vmin) / (vmax - vmin), clipped; vmin/vmax default to the integer dtype's range
            (8-bit / 255, 16-bit / 65535) and to [0, 1] for float data.
``asinh``   u = clip((x - lo) / (hi - lo), 0, 1);  y = asinh(u / s) / asinh(1 / s)
``log``     u as above;                             y = log(1 + u / s) / log(1 + 1 / s)
``none``    values must already lie in [0, 1].

For the two stretches, ``s = stretch`` is the softening as a fraction of the range [lo, hi]
(vmin/vmax if given, else the sequence's min/max): below ``s`` the map is nearly linear, above it
logarithmic, so a small ``s`` lifts faint tidal tails out of a bright galaxy core. They are the
asinh (Lupton, Gunn & Szalay 1999) and log stretches of ``astropy.visualization`` with a = s and
a = 1/s, and both send lo -> 0 and hi -> 1.

Bad input raises :class:`ganlstm.errors.GanlstmError` with one sentence naming the file and the
fix; decoder exceptions (Pillow, NumPy, astropy, ffmpeg) are wrapped, never leaked. Frame
dimensions are checked against ``max_pixels`` from headers before any pixel is decoded: every
page of a TIFF and every frame of a GIF, not only the first (see :mod:`ganlstm.data.limits`),
and frame counts against ``max_frames`` after walking at most ``max_frames * interval + 1``
frame headers.
"""
from __future__ import annotations

import io
import itertools
import math
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..checkpoint import atomic_write_bytes
from ..config import FrameOptions
from ..errors import GanlstmError
from .limits import gif_canvas_sizes, pil_page_sizes

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")  # one frame per file
FITS_EXTENSIONS = (".fits", ".fit", ".fts", ".fits.gz")  # a 2-D frame or a cube
ARRAY_EXTENSIONS = (".npy", ".npz")
ANIMATION_EXTENSIONS = (".gif",)
VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv")
SUPPORTED_EXTENSIONS = IMAGE_EXTENSIONS + FITS_EXTENSIONS + ARRAY_EXTENSIONS + ANIMATION_EXTENSIONS + VIDEO_EXTENSIONS
"""Every file extension the readers accept (lower case; matching ignores case)."""

WRITE_FORMATS = ("png", "png16", "npy", "fits")
SCALINGS = ("minmax", "fixed", "asinh", "log", "none")

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601, as Pillow's "L"
_NONE_TOLERANCE = 1e-6  # float rounding allowed outside [0, 1] under scaling="none"
# Larger magnitudes overflow float32 once scaling subtracts the minimum (max - min must stay finite).
_FLOAT32_SAFE = float(np.finfo(np.float32).max) / 4


# ----------------------------------------------------------------------------- public API


def read_sequence(path: str | Path, opts: FrameOptions | None = None) -> np.ndarray:
    """Read one sequence (frame directory, GIF, video, .npy/.npz, FITS) as float32 (T, C, H, W) in [0, 1]."""
    opts = opts or FrameOptions()
    _check_options(opts)
    path = Path(path)
    return _assemble(_open_sequence(path, opts), path, opts)


def read_collection(path: str | Path, opts: FrameOptions | None = None) -> list[tuple[str, np.ndarray]]:
    """Read every sequence under ``path`` as ``(name, array)`` pairs, natural-sorted by name.

    ``path`` is either one sequence (returned alone) or a directory whose entries are
    sequences: sub-directories of frames and/or GIF, video, NPY/NPZ and FITS-cube files.
    Names are the entries' file or directory names. Other files (notes, configs) are ignored.
    """
    opts = opts or FrameOptions()
    _check_options(opts)
    path = Path(path)
    _require_exists(path)
    if not path.is_dir() or is_sequence_path(path):
        return [(path.name, read_sequence(path, opts))]
    entries = [p for p in _visible_entries(path) if is_sequence_path(p)]
    if not entries:
        _raise_nothing_readable(path, what="sequences (sub-directories of frames or sequence files)")
    return [(p.name, read_sequence(p, opts)) for p in entries]


def is_sequence_path(path: str | Path) -> bool:
    """True if ``path`` is one sequence: a sequence file, or a directory holding frame files.

    A FITS file is a sequence when its image has 3 or more axes; a TIFF or PNG file when it
    holds several frames. Reading the answer touches headers only.
    """
    path = Path(path)
    if path.is_dir():
        files = [p for p in _visible_entries(path) if p.is_file()]
        if any(_ext(p) in IMAGE_EXTENSIONS for p in files):
            return True
        fits_files = [p for p in files if _ext(p) in FITS_EXTENSIONS]
        # One header decides: a frame directory holds 2-D images, a collection holds cubes.
        return bool(fits_files) and _fits_ndim(fits_files[0]) in (None, 2)
    if not path.is_file():
        return False
    ext = _ext(path)
    if ext in ARRAY_EXTENSIONS + ANIMATION_EXTENSIONS + VIDEO_EXTENSIONS:
        return True
    if ext in FITS_EXTENSIONS:
        return _fits_ndim(path) != 2
    if ext in IMAGE_EXTENSIONS:
        return _pil_is_animated(path) is not False
    return False


def require_frames(array: Any, n: int, name: str) -> None:
    """Raise unless ``array`` (anything with ``len``: (T, C, H, W)) has at least ``n`` frames."""
    if len(array) < n:
        raise GanlstmError(
            f"{name} has {len(array)} frames but context+horizon needs {n}; use a longer sequence, "
            f"a smaller --interval, or a shorter --context/--horizon."
        )


def natural_key(name: str) -> tuple[list, str]:
    """Sort key that orders digit runs by value: ``f2`` < ``f10`` (case-insensitive)."""
    # re.split with a capturing group alternates text, digits, text, ... so types line up.
    parts = re.split(r"(\d+)", name)
    return [int(p) if i % 2 else p.lower() for i, p in enumerate(parts)], name


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
    ``FRAME0`` = start_index in its header. Both read back with :func:`read_sequence`.
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


# ----------------------------------------------------------------------------- options and paths


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


def _ext(path: Path) -> str:
    name = path.name.lower()
    return ".fits.gz" if name.endswith(".fits.gz") else path.suffix.lower()


def _visible_entries(directory: Path) -> list[Path]:
    # Hidden entries include macOS "._frame.png" resource forks, which are not images.
    with _guard(directory):
        return sorted((p for p in directory.iterdir() if not p.name.startswith(".")), key=lambda p: natural_key(p.name))


def _require_exists(path: Path) -> None:
    if not path.exists():
        raise GanlstmError(f"{path} does not exist; check the path (a frame directory, GIF/MP4, .npy/.npz or FITS file).")


def _raise_nothing_readable(directory: Path, what: str) -> None:
    entries = _visible_entries(directory)
    if not entries:
        raise GanlstmError(f"{directory} is empty; put the frames of a sequence (or sequence files) in it.")
    found = sorted({_ext(p) or p.name for p in entries if p.is_file()})
    if any(p.is_dir() for p in entries):
        found.append("sub-directories")
    raise GanlstmError(
        f"{directory} holds no readable {what} (found {', '.join(found)}); "
        f"supported extensions are {', '.join(SUPPORTED_EXTENSIONS)}."
    )


@contextmanager
def _guard(source: Any) -> Iterator[None]:
    """Turn any decoder failure while reading ``source`` into a GanlstmError naming it."""
    try:
        yield
    except GanlstmError:
        raise
    except Image.DecompressionBombError as e:
        raise GanlstmError(f"{source} is too large for Pillow to decode safely ({e}); downsample it first.") from None
    except MemoryError:
        raise GanlstmError(f"ran out of memory reading {source}; lower --size or --max-frames, or raise --interval.") from None
    except Exception as e:  # noqa: BLE001 - readers promise GanlstmError only, whatever the decoder raises
        detail = str(e).strip().split("\n")[0][:160]
        raise GanlstmError(
            f"{source} is corrupt or unreadable ({type(e).__name__}: {detail}); re-export it or remove it."
        ) from e


def _check_pixels(height: int, width: int, source: Any, opts: FrameOptions) -> None:
    if height < 1 or width < 1:
        raise GanlstmError(f"{source} has empty {width}x{height} frames; re-export it with at least one pixel per frame.")
    if height * width > opts.max_pixels:
        raise GanlstmError(
            f"{source} has {width}x{height} = {height * width} pixels per frame, above max_pixels={opts.max_pixels}; "
            f"raise FrameOptions.max_pixels (--max-pixels) or downsample the frames first."
        )


def _check_frame_count(kept: int, source: Any, opts: FrameOptions) -> None:
    if kept > opts.max_frames:
        raise GanlstmError(
            f"{source} has more than max_frames={opts.max_frames} frames (after interval={opts.interval}); "
            f"raise FrameOptions.max_frames (--max-frames) or keep fewer frames with --interval."
        )


# ----------------------------------------------------------------------------- assembling


@dataclass
class _Frames:
    """A sequence opened but not decoded: ``count`` frames (None if unknown) and lazy loaders."""

    count: int | None
    items: Iterator[tuple[str, Callable[[], np.ndarray]]]  # (label for messages, load -> (H, W[, C]))
    close: Callable[[], None] = lambda: None  # releases the open file once decoding ends


def _assemble(frames: _Frames, path: Path, opts: FrameOptions) -> np.ndarray:
    """Decode the kept frames one by one into (T, C, H, W) float32 and scale them to [0, 1]."""
    try:
        x, dtype = _decode(frames, path, opts)
    finally:
        frames.close()
    return _scale(x, dtype, opts, path)


def _decode(frames: _Frames, path: Path, opts: FrameOptions) -> tuple[np.ndarray, np.dtype]:
    """Unscaled float32 (T, C, H, W) of the kept frames, and the frames' source dtype."""
    if frames.count is not None:
        _check_frame_count(math.ceil(frames.count / opts.interval), path, opts)
    # islice skips loaders without calling them: skipped frames are never decoded.
    stream = itertools.islice(frames.items, 0, None, opts.interval)
    out: list[np.ndarray] = []
    first_label, dtype = "", None
    while True:
        with _guard(path):
            item = next(stream, None)
        if item is None:
            break
        label, load = item
        with _guard(label):
            raw = np.asarray(load())
        _check_frame_count(len(out) + 1, path, opts)
        raw_dtype = raw.dtype.newbyteorder("=")
        if dtype is None:
            first_label, dtype = label, raw_dtype
        elif raw_dtype != dtype and (raw_dtype.kind in "uib" or dtype.kind in "uib"):
            # "fixed" scaling maps integers by their dtype's range, so one sequence needs one.
            raise GanlstmError(
                f"{label} is {raw_dtype} but {first_label} is {dtype}; a sequence needs one bit depth, so convert its frames alike."
            )
        _check_finite(raw, label)
        chw = _to_chw(raw, opts, label)
        if out and chw.shape != out[0].shape:
            raise GanlstmError(
                f"{label} is {_hw(chw)} but {first_label} is {_hw(out[0])}; pass --size (FrameOptions.size) to resize all frames alike."
            )
        out.append(chw)
    if not out:
        raise GanlstmError(f"{path} holds no frames; pass a sequence with at least one frame.")
    return np.stack(out), dtype


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
    x = raw.astype(np.float32)
    if x.shape[2] == 1:
        gray = x[..., 0]
        planes = [gray] if opts.channels == 1 else [gray] * 3
    else:  # RGB or RGBA: alpha dropped
        rgb = x[..., :3]
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


def _dtype_range(dtype: np.dtype) -> tuple[float, float]:
    """What "fixed" maps to [0, 1] by default: an integer type's full range, else [0, 1] (float, bool)."""
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        return float(info.min), float(info.max)
    return 0.0, 1.0


def _scale(x: np.ndarray, dtype: np.dtype, opts: FrameOptions, path: Path) -> np.ndarray:
    """Map raw float32 (T, C, H, W) values to [0, 1] in place, per ``opts.scaling``."""
    if opts.scaling == "none":
        lo, hi = float(x.min()), float(x.max())
        if lo < -_NONE_TOLERANCE or hi > 1 + _NONE_TOLERANCE:
            raise GanlstmError(
                f"{path} has values in [{lo:g}, {hi:g}] but scaling='none' needs [0, 1]; use --scaling minmax, fixed, asinh or log."
            )
        return np.clip(x, 0.0, 1.0, out=x)
    # fixed: the dtype's range; minmax, asinh, log: the sequence's own. vmin/vmax override either end.
    dlo, dhi = _dtype_range(dtype) if opts.scaling == "fixed" else (float(x.min()), float(x.max()))
    lo = dlo if opts.vmin is None else float(opts.vmin)
    hi = dhi if opts.vmax is None else float(opts.vmax)
    if not lo < hi:
        if opts.vmin is None and opts.vmax is None:  # a constant sequence carries no contrast
            return np.zeros_like(x)
        raise GanlstmError(f"{path}: the {opts.scaling} scaling range [{lo:g}, {hi:g}] is empty; set --vmin below --vmax.")
    x -= lo
    x /= hi - lo
    np.clip(x, 0.0, 1.0, out=x)
    s = float(opts.stretch)
    if opts.scaling == "asinh":
        x /= s
        np.arcsinh(x, out=x)
        x /= np.arcsinh(1.0 / s)
    elif opts.scaling == "log":
        x /= s
        np.log1p(x, out=x)
        x /= np.log1p(1.0 / s)
    return np.clip(x, 0.0, 1.0, out=x)  # float rounding of the stretches can leave 1 + 1e-7


# ----------------------------------------------------------------------------- readers


def _open_sequence(path: Path, opts: FrameOptions) -> _Frames:
    _require_exists(path)
    if path.is_dir():
        return _open_frame_dir(path, opts)
    ext = _ext(path)
    if ext in IMAGE_EXTENSIONS + ANIMATION_EXTENSIONS:
        return _open_multiframe_image(path, opts)
    if ext in VIDEO_EXTENSIONS:
        return _open_video(path, opts)
    if ext == ".npy":
        return _open_npy(path, opts)
    if ext == ".npz":
        return _open_npz(path, opts)
    if ext in FITS_EXTENSIONS:
        return _open_fits_cube(path, opts)
    raise GanlstmError(
        f"{path} has an unsupported extension {ext or '(none)'!r}; "
        f"supported are {', '.join(SUPPORTED_EXTENSIONS)} (or a directory of frames)."
    )


def _open_frame_dir(path: Path, opts: FrameOptions) -> _Frames:
    entries = _visible_entries(path)
    if not is_sequence_path(path):
        if any(is_sequence_path(p) for p in entries):
            raise GanlstmError(
                f"{path} is a collection of sequences, not one sequence; pass one of its entries or read it with read_collection."
            )
        _raise_nothing_readable(path, what="frames")
    files = [p for p in entries if p.is_file() and _ext(p) in IMAGE_EXTENSIONS + FITS_EXTENSIONS]
    items = ((str(f), partial(_read_frame_file, f, opts)) for f in files)
    return _Frames(len(files), items)


def _read_frame_file(path: Path, opts: FrameOptions) -> np.ndarray:
    if _ext(path) in FITS_EXTENSIONS:
        return _read_fits_frame(path, opts)
    with Image.open(path) as im:
        _check_pixels(im.height, im.width, path, opts)
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


def _pil_is_animated(path: Path) -> bool | None:
    """Whether an image file holds several frames, from its first headers (a TIFF's next-IFD link); None if unreadable."""
    try:
        with Image.open(path) as im:
            return bool(getattr(im, "is_animated", False))
    except Exception:  # noqa: BLE001 - classification only; the reader reports the real problem
        return None


def _open_multiframe_image(path: Path, opts: FrameOptions) -> _Frames:
    with _guard(path):
        im = Image.open(path)  # lazy: the header gives size and frame count
    try:
        _check_pixels(im.height, im.width, path, opts)
        if _ext(path) == ".gif" and not _gif_has_trailer(path):
            raise GanlstmError(
                f"{path} is corrupt or truncated (it lacks the GIF end marker, so frames may be missing); re-export or re-download it."
            )
        with _guard(path):
            n = _checked_frame_count(im, path, opts)
        if n == 1 and _ext(path) not in ANIMATION_EXTENSIONS:
            raise GanlstmError(f"{path} is a single image; pass the directory that holds all frames of the sequence.")
    except GanlstmError:
        im.close()
        raise
    items = ((f"frame {i} of {path}", partial(_pil_seek_array, im, i, path, opts)) for i in range(n))
    return _Frames(n, items, im.close)


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
        _check_pixels(height, width, f"{word} {i} of {path}", opts)
    _check_frame_count(math.ceil(len(sizes) / opts.interval), path, opts)
    # Within the limit, Pillow's own count is the one decoding will follow.
    return int(getattr(im, "n_frames", 1)) if im.format == "GIF" else len(sizes)


def _gif_has_trailer(path: Path) -> bool:
    """Whether the file ends with the GIF trailer byte (0x3B), ignoring NUL padding.

    Pillow reads a GIF cut between two frames as a shorter animation without complaint;
    the missing trailer is what gives such a file away.
    """
    with _guard(path), open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - 64))
        return f.read().rstrip(b"\x00").endswith(b"\x3b")


def _pil_seek_array(im: Image.Image, index: int, path: Path, opts: FrameOptions) -> np.ndarray:
    im.seek(index)  # reads the frame's header (decoding only the frames before it, for a GIF)
    _check_pixels(im.height, im.width, f"frame {index} of {path}", opts)  # its own size, before its pixels
    return _pil_array(im)


def _open_video(path: Path, opts: FrameOptions) -> _Frames:
    try:
        import imageio.v2 as iio
        import imageio_ffmpeg  # noqa: F401 - imageio's FFMPEG plugin needs it
    except ImportError:
        raise GanlstmError(f"reading the video {path} needs imageio and imageio-ffmpeg; pip install ganlstm[video].") from None
    with _guard(path):
        reader = iio.get_reader(path, format="FFMPEG")
        width, height = reader.get_meta_data()["size"]
    try:
        _check_pixels(height, width, path, opts)
    except GanlstmError:
        reader.close()
        raise

    # A video decodes sequentially, so every frame is decoded; interval only drops them.
    items = ((f"frame {i} of {path}", partial(np.asarray, frame)) for i, frame in enumerate(reader))
    return _Frames(None, items, reader.close)


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


def _open_array(
    path: Path,
    opts: FrameOptions,
    shape: tuple[int, ...],
    load: Callable[[], Any],
    close: Callable[[], None] = lambda: None,
) -> _Frames:
    """Frames of a (T, ...) array whose shape came from a header; ``load`` runs only once decoding starts."""
    layout = _array_layout(shape, path)
    _check_pixels(*_layout_hw(shape, layout), path, opts)

    def items() -> Iterator[tuple[str, Callable[[], np.ndarray]]]:
        array = load()  # after _decode's frame-count check, so an oversized array is never loaded
        for i in range(shape[0]):
            yield f"frame {i} of {path}", partial(_array_frame, array, i, layout)

    return _Frames(shape[0], items(), close)


def _open_npy(path: Path, opts: FrameOptions) -> _Frames:
    with _guard(path), open(path, "rb") as f:
        shape, dtype = _read_npy_header(f)
    _check_numeric(dtype, path)
    # mmap: only the kept frames are paged in.
    return _open_array(path, opts, shape, partial(np.load, path, mmap_mode="r", allow_pickle=False))


def _open_npz(path: Path, opts: FrameOptions) -> _Frames:
    import zipfile

    with _guard(path), zipfile.ZipFile(path) as zf:
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

    return _open_array(path, opts, shape, load)


def _import_fits(path: Path) -> Any:
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


def _fits_ndim(path: Path) -> int | None:
    """Axes of the first image HDU, ignoring length-1 axes; None if the header cannot be read."""
    try:
        fits = _import_fits(path)
        with fits.open(path) as hdul:
            return sum(1 for n in _image_hdu(hdul, path).shape if n > 1)
    except Exception:  # noqa: BLE001 - classification only; the reader reports the real problem
        return None


def _open_fits_cube(path: Path, opts: FrameOptions) -> _Frames:
    fits = _import_fits(path)
    with _guard(path):
        hdul = fits.open(path)
    try:
        with _guard(path):
            hdu = _image_hdu(hdul, path)
            shape = tuple(hdu.shape)  # from the header; no data read yet
        if len(shape) == 2:
            raise GanlstmError(f"{path} is a single 2-D frame; pass the directory that holds all frames, or a (T, H, W) cube.")
        return _open_array(path, opts, shape, lambda: hdu.data, hdul.close)
    except GanlstmError:
        hdul.close()
        raise


def _read_fits_frame(path: Path, opts: FrameOptions) -> np.ndarray:
    fits = _import_fits(path)
    with fits.open(path) as hdul:
        hdu = _image_hdu(hdul, path)
        shape = tuple(n for n in hdu.shape if n > 1) or (1, 1)
        if len(shape) != 2:
            raise GanlstmError(
                f"{path} holds a {tuple(hdu.shape)} array, not one 2-D frame; a FITS frame directory needs one 2-D image per file."
            )
        _check_pixels(shape[0], shape[1], path, opts)
        return np.array(hdu.data).reshape(shape)


# ----------------------------------------------------------------------------- writers


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
    fits = _import_fits(path)
    hdu = fits.PrimaryHDU(x[:, 0] if x.shape[1] == 1 else x)
    hdu.header["FRAME0"] = (start_index, "index of the first frame")
    hdu.header["COMMENT"] = "ganlstm frames, float32 in [0, 1]"
    buf = io.BytesIO()
    hdu.writeto(buf)
    return buf.getvalue()
