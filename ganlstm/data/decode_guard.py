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
        raise GanlstmError(_out_of_memory(source)) from None
    except Exception as e:  # noqa: BLE001 - readers promise GanlstmError only, whatever the decoder raises
        detail = str(e).strip().split("\n")[0][:160]
        raise GanlstmError(
            f"{source} is corrupt or unreadable ({type(e).__name__}: {detail}); re-export it or remove it."
        ) from e


@contextmanager
def memory_guard(source: Any) -> Iterator[None]:
    """numpy's MemoryError (``_ArrayMemoryError``) while converting or stacking frames, as a GanlstmError naming ``source``."""
    try:
        yield
    except MemoryError:
        raise GanlstmError(_out_of_memory(source)) from None


def _out_of_memory(source: Any) -> str:
    return (f"ran out of memory reading {source}; read less (lower --size or --max-frames, or raise --interval), "
            f"or lower GANLSTM_MAX_READ_BYTES so that reads this large are refused before they start.")
