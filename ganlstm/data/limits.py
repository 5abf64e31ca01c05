"""The frame readers' ``max_frames`` / ``max_pixels`` guards, and the bounded header walks behind them.

Pillow checks only the first frame of a file against its decompression-bomb limit, and counts
the frames of a GIF by walking the whole file. These helpers read frame headers and nothing
else, and stop after ``limit`` frames, so :mod:`ganlstm.data.read_image` can refuse a file whose
later page is huge, or which holds too many frames, before any pixel of it is decoded:

* :func:`gif_canvas_sizes` walks a GIF's blocks the way Pillow's ``GifImageFile._seek`` does
  (image data is skipped sub-block by sub-block, never decompressed) and returns the canvas
  size Pillow decodes each frame into: the logical screen, grown by any frame that reaches
  past it;
* :func:`pil_page_sizes` seeks the pages of an open multi-page TIFF, which reads each page's
  tag directory (IFD) only.

:func:`check_pixels` and :func:`check_frame_count` are the guards themselves: one sentence naming
the file and the option to raise. :func:`check_read_bytes` bounds the working memory of a read
(:func:`read_byte_limit`, 2 GiB unless ``GANLSTM_MAX_READ_BYTES`` says otherwise): what the result
takes, plus what a compressed container must decompress whole, both from headers, so a 1 MB
``.npz`` or ``.fits.gz`` that expands to gigabytes is refused before it is decompressed.
"""
from __future__ import annotations

import struct
from pathlib import Path
from typing import Any, BinaryIO

from PIL import Image

from ..config import FrameOptions
from ..errors import GanlstmError

_GIF_MAGICS = (b"GIF87a", b"GIF89a")


def gif_canvas_sizes(path: Path, limit: int) -> list[tuple[int, int]]:
    """(width, height) of the canvas Pillow decodes each of the first ``limit`` frames of a GIF into.

    The list is shorter than ``limit`` only when the file holds fewer frames. Raises
    ``ValueError`` / ``struct.error`` / ``IndexError`` where Pillow would fail to parse the
    headers too (the caller wraps them into a GanlstmError naming the file).
    """
    with open(path, "rb") as f:
        head = f.read(13)
        if len(head) < 13 or head[:6] not in _GIF_MAGICS:
            raise ValueError("not a GIF file")
        width, height = struct.unpack_from("<HH", head, 6)
        if head[10] & 128:  # global colour table
            f.read(3 << ((head[10] & 7) + 1))
        sizes: list[tuple[int, int]] = []
        while len(sizes) < limit:
            if sizes:  # the previous frame's image data, up to its terminator
                while _sub_block(f):
                    pass
            extent = _next_gif_frame(f, first=not sizes)
            if extent is None:
                break
            width, height = max(width, extent[0]), max(height, extent[1])
            sizes.append((width, height))
    return sizes


def _sub_block(f: BinaryIO) -> bytes | None:
    """One length-prefixed GIF data sub-block (b"" at end of file), or None at a zero-length terminator.

    Pillow's ``GifImageFile.data``; its quirks (an empty extension swallows the next sub-block) are kept,
    so both count the same frames.
    """
    s = f.read(1)
    return f.read(s[0]) if s and s[0] else None


def _next_gif_frame(f: BinaryIO, first: bool) -> tuple[int, int] | None:
    """Skip extensions up to the next image descriptor; its right and bottom edges, or None at the end."""
    s = f.read(1)
    while True:
        if not s:
            s = f.read(1)
        if not s or s == b";":
            return None
        if s == b"!":
            label = f.read(1)[0]
            block = _sub_block(f)
            if label == 254:  # comment: its sub-blocks up to the terminator
                while block:
                    block = _sub_block(f)
                s = b""
                continue
            if label == 255 and first and block is not None and block.startswith(b"NETSCAPE2.0"):
                _sub_block(f)  # the loop-count sub-block
            while _sub_block(f):
                pass
        elif s == b",":
            d = f.read(9)
            x0, y0, w, h = struct.unpack_from("<HHHH", d)
            if d[8] & 128:  # local colour table
                f.read(3 << ((d[8] & 7) + 1))
            f.read(1)[0]  # LZW minimum code size; its data follows
            return x0 + w, y0 + h
        s = b""  # any other byte is skipped, as Pillow does


def pil_page_sizes(im: Image.Image, limit: int) -> list[tuple[int, int]]:
    """(width, height) of the first ``limit`` pages of an open multi-page image whose seek reads headers only (TIFF).

    Leaves ``im`` on page 0.
    """
    sizes: list[tuple[int, int]] = []
    try:
        while len(sizes) < limit:
            try:
                im.seek(len(sizes))
            except EOFError:
                break
            sizes.append(im.size)
    finally:
        im.seek(0)
    return sizes


def check_pixels(height: int, width: int, source: Any, opts: FrameOptions) -> None:
    if height < 1 or width < 1:
        raise GanlstmError(f"{source} has empty {width}x{height} frames; re-export it with at least one pixel per frame.")
    if height * width > opts.max_pixels:
        raise GanlstmError(
            f"{source} has {width}x{height} = {height * width} pixels per frame, above max_pixels={opts.max_pixels}; "
            f"raise FrameOptions.max_pixels (--max-pixels) or downsample the frames first."
        )


def check_frame_count(kept: int, source: Any, opts: FrameOptions) -> None:
    if kept > opts.max_frames:
        raise GanlstmError(
            f"{source} has more than max_frames={opts.max_frames} frames (after interval={opts.interval}); "
            f"raise FrameOptions.max_frames (--max-frames) or keep fewer frames with --interval."
        )


#: The default bound on the working memory of one sequence read (:func:`read_byte_limit`): the float32
#: (T, C, H, W) result plus any array a container must decompress whole (an .npz member, a .fits.gz cube).
MAX_READ_BYTES = 2 * 2**30
#: Environment variable that replaces :data:`MAX_READ_BYTES` (bytes), e.g. ``GANLSTM_MAX_READ_BYTES=8e9``.
READ_BYTES_ENV = "GANLSTM_MAX_READ_BYTES"


def read_byte_limit() -> int:
    """The working-memory bound of a read: ``$GANLSTM_MAX_READ_BYTES`` if set, else :data:`MAX_READ_BYTES`."""
    import os

    text = os.environ.get(READ_BYTES_ENV, "").strip()
    if not text:
        return MAX_READ_BYTES
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 1 <= value < 2**63:
        raise GanlstmError(f"{READ_BYTES_ENV}={text!r} is not a number of bytes; set it to e.g. 8e9, or unset it.")
    return int(value)


def output_bytes(frames: int, opts: FrameOptions, height: int, width: int) -> int:
    """Bytes of the float32 (kept, C, H', W') array that ``frames`` frames of H x W read into."""
    kept = -(-frames // opts.interval)
    h, w = (opts.size, opts.size) if opts.size is not None else (height, width)
    return kept * opts.channels * h * w * 4


def check_read_bytes(result: int, source: Any, *, decompressed: int = 0) -> None:
    """Refuse a read whose result (``result`` bytes) plus a whole decompressed array exceeds :func:`read_byte_limit`.

    Called from headers, before anything is decompressed or decoded.
    """
    limit = read_byte_limit()
    if result + decompressed <= limit:
        return
    parts = f"{_gib(result)} for the frames read"
    if decompressed:
        parts += f" + {_gib(decompressed)} for its array decompressed whole"
    raise GanlstmError(
        f"{source} would take {parts}, above the {_gib(limit)} a read may use; read less (--size, --interval or "
        f"--max-frames; an .npz or .fits.gz can be saved as .npy or plain FITS, which are read frame by frame) or raise "
        f"the bound with {READ_BYTES_ENV}=BYTES."
    )


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**27 else f"{n / 2**20:.1f} MiB"
