"""Issue 18, items 1 and 8: every page / frame of a multi-frame file is checked from its headers.

Pillow checks only the first frame of a file against its decompression-bomb limit, and counts
a GIF's frames by walking the whole file. A tiny first page must not let a huge later page be
decoded, and a GIF holding far more frames than ``max_frames`` must be refused after walking
at most ``max_frames + 1`` frame headers.
"""
from __future__ import annotations

import io
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import GifImagePlugin, Image

from ganlstm.config import FrameOptions
from ganlstm.data import read_image
from ganlstm.data.frames import read_sequence
from ganlstm.data.limits import gif_canvas_sizes
from ganlstm.errors import GanlstmError


@pytest.fixture
def decoded(monkeypatch) -> list[tuple[int, int]]:
    """The (width, height) of every frame the readers decode, recorded by wrapping read_image._pil_array."""
    seen: list[tuple[int, int]] = []
    real = read_image._pil_array

    def spy(im: Image.Image) -> np.ndarray:
        seen.append(im.size)
        return real(im)

    monkeypatch.setattr(read_image, "_pil_array", spy)
    return seen


def _gray(size: int, value: int = 0) -> Image.Image:
    return Image.fromarray(np.full((size, size), value, dtype=np.uint8))


def test_a_huge_second_tiff_page_is_refused_before_any_page_is_decoded(tmp_path, decoded):
    path = tmp_path / "two.tif"
    _gray(8).save(path, save_all=True, append_images=[_gray(300, 7)])
    with pytest.raises(GanlstmError, match=r"page 1 of .*two\.tif has 300x300 = 90000 pixels per frame, above "
                                           r"max_pixels=1000; raise FrameOptions\.max_pixels \(--max-pixels\)"):
        read_sequence(path, FrameOptions(max_pixels=1000))
    assert decoded == []  # refused from the page headers alone
    assert read_sequence(path, FrameOptions(max_pixels=300 * 300, size=8)).shape == (2, 1, 8, 8)


def _growing_gif(screen: int, later: int) -> bytes:
    """A GIF with a ``screen`` x ``screen`` first frame and a second frame descriptor claiming ``later`` x ``later``.

    Pillow grows the canvas to fit the second frame; its pixel data is a bare LZW clear + end code.
    """
    buf = io.BytesIO()
    _gray(screen).save(buf, format="GIF")
    first = buf.getvalue()
    assert first.endswith(b";")
    return first[:-1] + b"," + struct.pack("<HHHHB", 0, 0, later, later, 0) + b"\x02\x01\x2c\x00;"


def test_a_gif_frame_that_grows_the_canvas_is_refused_before_decoding(tmp_path, decoded):
    path = tmp_path / "grow.gif"
    path.write_bytes(_growing_gif(8, 300))
    with Image.open(path) as im:
        im.seek(1)
        assert im.size == (300, 300)  # what Pillow would decode frame 1 into
    with pytest.raises(GanlstmError, match=r"frame 1 of .*grow\.gif has 300x300 .*max_pixels=1000.*--max-pixels"):
        read_sequence(path, FrameOptions(max_pixels=1000))
    assert decoded == []


def test_every_decoded_frame_is_checked_after_its_seek(tmp_path, monkeypatch, decoded):
    # Even if the header walk missed a page, the size Pillow reports after seeking is checked before decoding.
    path = tmp_path / "two.tif"
    _gray(8).save(path, save_all=True, append_images=[_gray(300, 7)])
    monkeypatch.setattr(read_image, "pil_page_sizes", lambda im, limit: [(8, 8), (8, 8)])
    with pytest.raises(GanlstmError, match=r"frame 1 of .*two\.tif has 300x300 .*--max-pixels"):
        read_sequence(path, FrameOptions(max_pixels=1000))
    assert decoded == [(8, 8)]


@pytest.fixture
def gif_seeks(monkeypatch) -> list[int]:
    """Frame numbers Pillow's GIF reader seeks to (each call walks or decodes one frame)."""
    calls: list[int] = []
    real = GifImagePlugin.GifImageFile._seek

    def spy(self, frame, *args, **kwargs):
        calls.append(frame)
        return real(self, frame, *args, **kwargs)

    monkeypatch.setattr(GifImagePlugin.GifImageFile, "_seek", spy)
    return calls


def test_a_gif_with_too_many_frames_is_refused_after_a_bounded_walk(tmp_path, gif_seeks, monkeypatch):
    path = tmp_path / "many.gif"
    pixels = np.zeros((300, 4, 4), dtype=np.uint8)
    pixels[:, 0, 0] = np.arange(300) // 2  # 0, 0, 1, 1, ..., 149
    pixels[1::2, 3, 3] = 255  # odd frames differ from their even neighbours (Pillow merges repeated frames)
    images = [Image.fromarray(f) for f in pixels]
    images[0].save(path, save_all=True, append_images=images[1:])
    walked: list[int] = []
    real_walk = gif_canvas_sizes
    monkeypatch.setattr(read_image, "gif_canvas_sizes", lambda p, limit: walked.append(limit) or real_walk(p, limit))
    with pytest.raises(GanlstmError, match=r"many\.gif has more than max_frames=50 frames \(after interval=1\); "
                                           r"raise FrameOptions\.max_frames \(--max-frames\)"):
        read_sequence(path, FrameOptions(max_frames=50))
    assert max(gif_seeks) == 0, "Pillow walked the GIF's frames to count them before refusing it"
    assert walked == [51]  # the header walk stopped one frame past the limit
    gif_seeks.clear()
    x = read_sequence(path, FrameOptions(max_frames=50, interval=6))  # 300 frames, every 6th kept: exactly 50
    assert x.shape == (50, 1, 4, 4)
    assert np.allclose(x[:, 0, 0, 0] * 147, np.arange(0, 150, 3))  # frames 0, 6, ..., 294 (values 0..147), in order


def test_a_tiff_with_too_many_pages_is_refused_after_a_bounded_walk(tmp_path, monkeypatch):
    path = tmp_path / "many.tif"
    images = [_gray(4, i) for i in range(40)]
    images[0].save(path, save_all=True, append_images=images[1:])
    with pytest.raises(GanlstmError, match=r"many\.tif has more than max_frames=9 frames.*--max-frames"):
        read_sequence(path, FrameOptions(max_frames=9))
    assert read_sequence(path, FrameOptions(max_frames=10, interval=4)).shape == (10, 1, 4, 4)


def _gif_variants() -> st.SearchStrategy[bytes]:
    """Valid GIFs (comments, loop blocks, 1-4 frames), then a few bytes changed, inserted or deleted."""

    @st.composite
    def build(draw) -> bytes:
        t, h, w = draw(st.integers(1, 4)), draw(st.integers(1, 9)), draw(st.integers(1, 9))
        seed = draw(st.integers(0, 2**16))
        rng = np.random.default_rng(seed)
        images = [Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8)) for _ in range(t)]
        extra = {}
        if draw(st.booleans()):
            extra["comment"] = b"merger"
        if draw(st.booleans()):
            extra["loop"] = 0
        buf = io.BytesIO()
        images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], **extra)
        data = bytearray(buf.getvalue())
        for op, where, value in draw(st.lists(st.tuples(st.integers(0, 2), st.floats(0, 1, exclude_max=True),
                                                        st.integers(0, 255)), max_size=3)):
            i = int(where * len(data))
            if op == 0:
                data[i] = value
            elif op == 1:
                data[i:i] = bytes([value])
            else:
                del data[i]
        return bytes(data)

    return build()


@settings(max_examples=150, deadline=2000, derandomize=True)
@given(data=_gif_variants())
def test_the_gif_header_walk_counts_the_frames_pillow_counts(data):
    # The walk bounds the work only if it agrees with Pillow, whose count decoding follows.
    import tempfile

    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = Path(tmp) / "g.gif"
        path.write_bytes(data)
        try:
            with Image.open(path) as im:
                n = im.n_frames
        except Exception:  # noqa: BLE001 - Pillow cannot read it; the reader refuses it (test_fuzz_readers)
            return
        try:
            walked = gif_canvas_sizes(path, 10**6)
        except Exception:  # noqa: BLE001
            pytest.fail(f"Pillow reads {n} frames but the header walk failed")
        assert len(walked) == n
        assert len(gif_canvas_sizes(path, 1)) == 1
