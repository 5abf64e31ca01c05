"""One guard around every decoder call of the frame readers: whatever Pillow, NumPy, astropy or ffmpeg
raise while reading a file becomes a :class:`ganlstm.errors.GanlstmError` naming the file and the fix."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from PIL import Image

from ..errors import GanlstmError


@contextmanager
def decode_guard(source: Any) -> Iterator[None]:
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
