"""Which files hold frames: the extensions the readers accept, natural sort order, the entries of a
directory that count (hidden ones do not, nor folders ganlstm wrote), and the one-sentence errors for
paths that hold none.

Every folder ganlstm writes predictions, evaluations, reports or demo outputs into carries the
marker file :data:`OUTPUT_MARKER` (:func:`mark_output`); a collection's reader skips such a folder
(:func:`is_ganlstm_output`), so a prediction written beside the data is never read back as data.
"""
from __future__ import annotations

import re
from pathlib import Path

from ..errors import GanlstmError
from .decode_guard import decode_guard

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")  # one frame per file
FITS_EXTENSIONS = (".fits", ".fit", ".fts", ".fits.gz")  # a 2-D frame or a cube
ARRAY_EXTENSIONS = (".npy", ".npz")
ANIMATION_EXTENSIONS = (".gif",)
VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv")
SUPPORTED_EXTENSIONS = IMAGE_EXTENSIONS + FITS_EXTENSIONS + ARRAY_EXTENSIONS + ANIMATION_EXTENSIONS + VIDEO_EXTENSIONS
"""Every file extension the readers accept (lower case; matching ignores case)."""


OUTPUT_MARKER = ".ganlstm-output"
"""The file that marks a folder ganlstm wrote outputs into (hidden, so it is never read as a frame)."""


class ReaderWarning(UserWarning):
    """A reader changed or dropped something the caller should know about (said once per read)."""


class ResizeWarning(ReaderWarning):
    """``size`` squashed non-square frames to square, or resized frames of mixed sizes alike."""


class SkippedOutputWarning(ReaderWarning):
    """A collection's reader skipped folders that ganlstm wrote (they hold :data:`OUTPUT_MARKER`)."""


def mark_output(directory: Path, what: str) -> None:
    """Mark ``directory`` as a ganlstm output folder (``what``: e.g. "predictions"), so readers skip it."""
    from ..checkpoint import atomic_write_bytes

    atomic_write_bytes(Path(directory) / OUTPUT_MARKER,
                       f"ganlstm wrote {what} here; collection readers skip this folder (delete this file to read it as data).\n".encode())


def is_ganlstm_output(path: Path) -> bool:
    """Whether ``path`` is a folder ganlstm wrote outputs into (see :func:`mark_output`)."""
    return path.is_dir() and (path / OUTPUT_MARKER).is_file()


def natural_key(name: str) -> tuple[list, str]:
    """Sort key that orders digit runs by value: ``f2`` < ``f10`` (case-insensitive)."""
    # re.split with a capturing group alternates text, digits, text, ... so types line up.
    parts = re.split(r"(\d+)", name)
    return [int(p) if i % 2 else p.lower() for i, p in enumerate(parts)], name


def file_ext(path: Path) -> str:
    name = path.name.lower()
    return ".fits.gz" if name.endswith(".fits.gz") else path.suffix.lower()


def visible_entries(directory: Path) -> list[Path]:
    # Hidden entries include macOS "._frame.png" resource forks, which are not images.
    with decode_guard(directory):
        return sorted((p for p in directory.iterdir() if not p.name.startswith(".")), key=lambda p: natural_key(p.name))


def require_exists(path: Path) -> None:
    if not path.exists():
        raise GanlstmError(f"{path} does not exist; check the path (a frame directory, GIF/MP4, .npy/.npz or FITS file).")


def raise_nothing_readable(directory: Path, what: str) -> None:
    entries = visible_entries(directory)
    if not entries:
        raise GanlstmError(f"{directory} is empty; put the frames of a sequence (or sequence files) in it.")
    found = sorted({file_ext(p) or p.name for p in entries if p.is_file()})
    if any(p.is_dir() for p in entries):
        found.append("sub-directories")
    raise GanlstmError(
        f"{directory} holds no readable {what} (found {', '.join(found)}); "
        f"supported extensions are {', '.join(SUPPORTED_EXTENSIONS)}."
    )
