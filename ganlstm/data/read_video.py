"""The video reader (MP4, MOV, AVI, MKV) through imageio + imageio-ffmpeg (``pip install ganlstm[video]``)."""
from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np

from ..config import FrameOptions
from ..errors import GanlstmError
from .decode_guard import decode_guard
from .lazy_frames import LazyFrames
from .limits import check_pixels


def open_video(path: Path, opts: FrameOptions) -> LazyFrames:
    try:
        import imageio.v2 as iio
        import imageio_ffmpeg  # noqa: F401 - imageio's FFMPEG plugin needs it
    except ImportError:
        raise GanlstmError(f"reading the video {path} needs imageio and imageio-ffmpeg; pip install ganlstm[video].") from None
    with decode_guard(path):
        reader = iio.get_reader(path, format="FFMPEG")
        width, height = reader.get_meta_data()["size"]
    try:
        check_pixels(height, width, path, opts)
    except GanlstmError:
        reader.close()
        raise

    # A video decodes sequentially, so every frame is decoded; interval only drops them.
    items = ((f"frame {i} of {path}", partial(np.asarray, frame)) for i, frame in enumerate(reader))
    return LazyFrames(None, items, reader.close)
