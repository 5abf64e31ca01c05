"""Property-based fuzzing of the frame readers (issue 8, "bad files").

Every input below -- random bytes behind every supported extension, valid files cut short,
headers that claim zero-sized or gigapixel frames, arrays of every dtype holding NaN/Inf or
values at the edge of float range -- must end in one of two ways:

* a :class:`GanlstmError` (never another exception type, which the CLI would print as a
  traceback), or
* a float32 (T, C, H, W) array, finite and in [0, 1], holding *every* frame of the input
  (a reader that silently drops the frames it could not decode loses data).

Each example has a hypothesis ``deadline`` and every read a hard time bound (:func:`time_bound`, an
interval timer that stops a runaway decode mid-way and fails the case), header-only files must be
refused before their pixels are allocated (checked with ``tracemalloc``), decompression bombs within
``max_pixels``/``max_frames`` must be refused or read within the read's memory bound, and the module
has a hard pytest timeout. Examples are derandomized so CI sees the same cases every run.
"""
from __future__ import annotations

import io
import struct
import tracemalloc
import warnings
import zlib
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from ganlstm.config import FrameOptions
from ganlstm.data.frames import read_collection, read_sequence
from ganlstm.errors import GanlstmError
from reliability_helpers import time_bound

fits = pytest.importorskip("astropy.io.fits")

pytestmark = [
    pytest.mark.timeout(120),  # a hang anywhere fails the module instead of stalling CI
    pytest.mark.filterwarnings("ignore::Warning"),  # astropy/Pillow warn about the damage we inflict on purpose
]

# Per-example time bound: generous for a loaded 2-core CI box, far below any hang.
FUZZ = settings(max_examples=60, deadline=3000, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
SMALL = settings(FUZZ, max_examples=30)
# A header-only file must be refused without allocating its claimed pixels.
MAX_PEAK_BYTES = 32 * 2**20

FRAME_EXTENSIONS = (".png", ".jpg", ".tif", ".bmp", ".fits")  # one frame per file: read as a directory
SEQUENCE_EXTENSIONS = (".gif", ".tif", ".npy", ".npz", ".fits", ".fits.gz")  # one file holds the sequence
MAGICS = (b"\x89PNG\r\n\x1a\n", b"GIF89a", b"GIF87a", b"\x93NUMPY\x01\x00", b"PK\x03\x04", b"II*\x00", b"MM\x00*",
          b"BM", b"\xff\xd8\xff", b"SIMPLE  =                    T", b"\x1f\x8b")


# Hard bound on one read, on top of hypothesis's deadline (which only judges an example after it returns).
CASE_SECONDS = 10.0


# ---------------------------------------------------------------- helpers


def outcome(target: Path, opts: FrameOptions | None = None, *, collection: bool = False) -> np.ndarray | GanlstmError:
    """Read ``target`` within :data:`CASE_SECONDS`; return the array or the GanlstmError. Any other exception fails the test."""
    with warnings.catch_warnings(), time_bound(CASE_SECONDS):
        warnings.simplefilter("ignore")
        try:
            if collection:
                return np.concatenate([a for _, a in read_collection(target, opts)])
            return read_sequence(target, opts)
        except GanlstmError as e:
            assert str(e).strip(), "a GanlstmError must say what is wrong"
            return e


def assert_valid_frames(x: np.ndarray, frames: int | None = None) -> None:
    """The reader contract: float32 (T, C, H, W), finite, in [0, 1]; with ``frames``, all of them."""
    assert x.dtype == np.float32 and x.ndim == 4 and x.shape[1] in (1, 3), x.shape
    assert min(x.shape) >= 1
    assert np.isfinite(x).all(), "the reader returned NaN/Inf"
    assert x.min() >= 0.0 and x.max() <= 1.0
    if frames is not None:
        assert len(x) == frames, f"read {len(x)} of {frames} frames without an error: frames were silently dropped"


def place(tmp: Path, ext: str, data: bytes) -> Path:
    """Write ``data`` as a file with ``ext``; one-frame formats go in a directory, which is what gets read."""
    if ext in FRAME_EXTENSIONS and ext != ".tif":
        folder = tmp / "frames"
        folder.mkdir()
        (folder / f"frame_0000{ext}").write_bytes(data)
        return folder
    path = tmp / f"seq{ext}"
    path.write_bytes(data)
    return path


def encode(kind: str, frames: np.ndarray) -> bytes:
    """A valid file of ``kind`` holding ``frames`` (T, H, W) uint8."""
    buf = io.BytesIO()
    images = [Image.fromarray(f) for f in frames]
    if kind == "gif":
        images[0].save(buf, format="GIF", save_all=True, append_images=images[1:])
    elif kind == "tif":
        images[0].save(buf, format="TIFF", save_all=True, append_images=images[1:])
    elif kind == "png":
        images[0].save(buf, format="PNG")
    elif kind == "npy":
        np.save(buf, frames.astype(np.float32))
    elif kind == "npz":
        np.savez(buf, frames=frames)
    elif kind == "fits":
        fits.PrimaryHDU(frames.astype(np.float32)).writeto(buf)
    return buf.getvalue()


def refused_without_allocating(target: Path, opts: FrameOptions | None = None) -> GanlstmError:
    tracemalloc.start()
    try:
        result = outcome(target, opts)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(result, GanlstmError), f"{target.name}: a header-only file was read as {getattr(result, 'shape', result)}"
    assert peak < MAX_PEAK_BYTES, f"{target.name}: refusing it allocated {peak / 2**20:.0f} MiB"
    return result


# ---------------------------------------------------------------- random bytes


garbage = st.one_of(
    st.binary(max_size=1024),
    st.tuples(st.sampled_from(MAGICS), st.binary(max_size=1024)).map(lambda t: t[0] + t[1]),  # get past the magic check
)


@FUZZ
@given(ext=st.sampled_from(sorted(set(FRAME_EXTENSIONS + SEQUENCE_EXTENSIONS))), data=garbage)
def test_random_bytes_are_refused(ext, data):
    with TemporaryDirectory() as tmp:
        target = place(Path(tmp), ext, data)
        assert isinstance(outcome(target), GanlstmError)
        assert isinstance(outcome(Path(tmp), collection=True), GanlstmError)  # the same file found inside a collection


def test_random_bytes_as_video_are_refused(tmp_path):
    # One case per container: each costs an ffmpeg process, so this is not a hypothesis loop.
    rng = np.random.default_rng(0)
    for ext in (".mp4", ".avi"):
        path = tmp_path / f"v{ext}"
        path.write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
        assert isinstance(outcome(path), GanlstmError)


# ---------------------------------------------------------------- truncated files


@FUZZ
@given(
    kind=st.sampled_from(["gif", "tif", "png", "npy", "npz", "fits"]),
    frames=hnp.arrays(np.uint8, st.tuples(st.integers(1, 4), st.integers(1, 12), st.integers(1, 12))),
    cut=st.floats(0.0, 1.0, exclude_max=True),
)
@example(kind="gif", frames=np.arange(3 * 64, dtype=np.uint8).reshape(3, 8, 8), cut=0.34)  # cut between frames 1 and 2
def test_truncated_files_are_refused_or_read_whole(kind, frames, cut):
    if kind == "png":
        frames = frames[:1]
    data = encode(kind, frames)
    with TemporaryDirectory() as tmp:
        target = place(Path(tmp), f".{kind}", data[: int(cut * len(data))])
        result = outcome(target)
        if not isinstance(result, GanlstmError):  # only the padding/trailer was cut: every frame must be there
            assert_valid_frames(result, frames=len(frames))
            assert result.shape[2:] == frames.shape[1:]


# ---------------------------------------------------------------- headers: zero-sized and huge


def png_header(width: int, height: int) -> bytes:
    """A PNG claiming ``width`` x ``height`` 8-bit gray pixels, with empty image data."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", b"") + chunk(b"IEND", b""))


def gif_header(width: int, height: int, frames: int) -> bytes:
    """A GIF whose screen and ``frames`` image descriptors claim ``width`` x ``height``, with no pixel data."""
    head = b"GIF89a" + struct.pack("<HHBBB", width, height, 0, 0, 0)
    desc = b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x00"  # LZW min size 2, no sub-blocks
    return head + desc * frames + b"\x3b"


def npy_header(shape: tuple[int, ...], descr: str = "<f4") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def fits_header(shape_fits_order: tuple[int, ...]) -> bytes:
    """A FITS primary header (NAXIS1 fastest) claiming float32 data of that shape, without the data."""
    cards = ["SIMPLE  =                    T", "BITPIX  =                  -32", f"NAXIS   = {len(shape_fits_order):>20}"]
    cards += [f"NAXIS{i + 1:<3}= {n:>20}" for i, n in enumerate(shape_fits_order)]
    cards.append("END")
    block = "".join(c.ljust(80) for c in cards)
    return block.ljust(2880 * (len(block) // 2880 + 1)).encode("ascii")


dims = st.one_of(st.just(0), st.integers(1, 8), st.integers(5_000, 2**31 - 1))  # empty, ordinary, absurd


@FUZZ
@given(w=dims, h=dims)
def test_png_headers_with_empty_or_huge_frames_are_refused(w, h):
    with TemporaryDirectory() as tmp:
        refused_without_allocating(place(Path(tmp), ".png", png_header(w, h)), FrameOptions(max_pixels=4096 * 4096))


@SMALL
@given(w=st.one_of(st.just(0), st.integers(1, 65535)), h=st.one_of(st.just(0), st.integers(1, 65535)), t=st.integers(1, 3))
def test_gif_headers_without_pixel_data_are_refused(w, h, t):
    with TemporaryDirectory() as tmp:
        refused_without_allocating(place(Path(tmp), ".gif", gif_header(w, h, t)))


@FUZZ
@given(shape=st.lists(st.one_of(st.just(0), st.integers(1, 6), st.integers(10**5, 10**12)), min_size=0, max_size=5).map(tuple),
       descr=st.sampled_from(["<f4", "<f8", "|u1", "<u2", ">i4", "|b1", "<c8", "<U4", "|O", "<M8[s]", "|V3"]))
def test_npy_headers_of_any_shape_and_dtype_without_data_are_refused(shape, descr):
    with TemporaryDirectory() as tmp:
        refused_without_allocating(place(Path(tmp), ".npy", npy_header(shape, descr)))


@SMALL
@given(shape=st.lists(st.one_of(st.just(0), st.integers(1, 6), st.integers(10**5, 10**9)), min_size=0, max_size=4).map(tuple))
def test_fits_headers_without_data_are_refused(shape):
    with TemporaryDirectory() as tmp:
        refused_without_allocating(place(Path(tmp), ".fits", fits_header(shape)))


def test_limits_are_configurable_and_named_in_the_refusal(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((6, 8, 8), np.float32))
    assert read_sequence(tmp_path / "a.npy").shape == (6, 1, 8, 8)  # defaults: 100000 frames of 4096 x 4096
    with pytest.raises(GanlstmError, match=r"max_pixels=63.*raise FrameOptions\.max_pixels"):
        read_sequence(tmp_path / "a.npy", FrameOptions(max_pixels=63))
    with pytest.raises(GanlstmError, match=r"max_frames=5.*raise FrameOptions\.max_frames"):
        read_sequence(tmp_path / "a.npy", FrameOptions(max_frames=5))
    assert read_sequence(tmp_path / "a.npy", FrameOptions(max_frames=6, max_pixels=64)).shape == (6, 1, 8, 8)


# ---------------------------------------------------------------- dtypes, NaN/Inf, extreme values


real_dtypes = st.sampled_from([np.uint8, np.uint16, np.int16, np.int32, np.int64, np.uint64, np.float16, np.float32,
                               np.float64, np.bool_]).map(np.dtype)
other_dtypes = st.sampled_from(["c8", "U3", "M8[s]"]).map(np.dtype)


@FUZZ
@given(array=hnp.arrays(st.one_of(real_dtypes, other_dtypes), hnp.array_shapes(min_dims=1, max_dims=5, min_side=0, max_side=5)),
       ext=st.sampled_from([".npy", ".npz"]))
@example(array=np.zeros((2, 0, 4), np.uint8), ext=".npy")  # frames of zero pixels
@example(array=np.array([[[0.0, 1e300]]]), ext=".npy")  # finite in float64, inf once cast to float32
@example(array=np.array([[[-3e38, 3e38]]], np.float32), ext=".npz")  # finite, but max - min overflows float32
def test_arrays_of_any_dtype_shape_and_values(array, ext):
    with TemporaryDirectory() as tmp:
        path = Path(tmp) / f"seq{ext}"
        (np.save if ext == ".npy" else np.savez)(path, array)
        result = outcome(path)
    is_real = array.dtype.kind in "biuf"
    finite = not is_real or array.dtype.kind != "f" or bool(np.isfinite(array).all())
    if not (is_real and finite):
        assert isinstance(result, GanlstmError), f"{array.dtype} with non-finite={not finite} was accepted"
    elif array.ndim == 3 and min(array.shape) >= 1 and (array.dtype.kind != "f" or np.abs(array).max() < 1e30):
        assert not isinstance(result, GanlstmError), f"a plain (T, H, W) {array.dtype} array was refused: {result}"
    if not isinstance(result, GanlstmError):
        assert_valid_frames(result, frames=array.shape[0])


@pytest.mark.parametrize("container", ["fits", "tiff-frames", "npy"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_pixels_are_refused_in_every_float_container(tmp_path, container, bad):
    x = np.random.default_rng(0).random((3, 6, 6)).astype(np.float32)
    x[1, 2, 3] = bad
    if container == "fits":
        fits.PrimaryHDU(x).writeto(tmp_path / "c.fits")
        target = tmp_path / "c.fits"
    elif container == "npy":
        np.save(tmp_path / "c.npy", x)
        target = tmp_path / "c.npy"
    else:
        target = tmp_path / "frames"
        target.mkdir()
        for t, frame in enumerate(x):
            Image.fromarray(frame, mode="F").save(target / f"f{t}.tif")
    with pytest.raises(GanlstmError, match=r"NaN/Inf"):
        read_sequence(target)


# ---------------------------------------------------------------- multi-page files, decompression bombs


@SMALL
@given(kind=st.sampled_from(["tif", "gif"]), sides=st.lists(st.tuples(st.integers(1, 40), st.integers(1, 40)), min_size=2, max_size=4),
       size=st.sampled_from([None, 8]))
@example(kind="tif", sides=[(8, 8), (30, 20)], size=None)  # a second page of another size
def test_multi_page_files_with_unequal_pages_are_refused_or_read_whole(kind, sides, size):
    frames = [np.random.default_rng(i).integers(0, 256, hw, dtype=np.uint8) for i, hw in enumerate(sides)]
    images = [Image.fromarray(f) for f in frames]
    with TemporaryDirectory() as tmp:
        path = Path(tmp) / f"pages.{kind}"
        images[0].save(path, save_all=True, append_images=images[1:])
        result = outcome(path, FrameOptions(size=size))
    if kind == "tif" and size is None and len(set(sides)) > 1:
        assert isinstance(result, GanlstmError) and "pass --size" in str(result), result  # never squashed silently
    if not isinstance(result, GanlstmError):
        assert_valid_frames(result, frames=len(sides))


BOMB_BOUND = 32 * 2**20  # the read bound the bombs run under (GANLSTM_MAX_READ_BYTES), so they stay cheap to build


def bomb(kind: str, frames: int, side: int, folder: Path) -> Path:
    """``frames`` frames of ``side`` x ``side`` zeros, compressed as ``kind``: tiny files that expand within max_pixels."""
    from reliability_helpers import fits_gz_bomb, npz_bomb

    if kind == "npz":
        return npz_bomb(folder / "b.npz", (frames, side, side))
    if kind == "fits.gz":
        return fits_gz_bomb(folder / "b.fits.gz", (side, side, frames))
    images = []
    for i in range(frames):  # blank but for one pixel, so that no encoder merges identical frames
        im = Image.new("L", (side, side))
        im.putpixel((i % side, 0), 255)
        images.append(im)
    if kind == "png":  # a frame directory of blank PNGs
        (folder / "frames").mkdir()
        for i, im in enumerate(images):
            im.save(folder / "frames" / f"f{i:03d}.png")
        return folder / "frames"
    path = folder / f"b.{kind}"
    extra = {"compression": "tiff_deflate"} if kind == "tif" else {}
    images[0].save(path, save_all=True, append_images=images[1:], **extra)
    return path


@settings(FUZZ, max_examples=24, deadline=None)  # time_bound() bounds each read; building a bomb takes its own time
@given(kind=st.sampled_from(["npz", "fits.gz", "png", "tif", "gif"]), frames=st.integers(1, 64),
       side=st.sampled_from([64, 256, 512, 1024, 2048]), size=st.sampled_from([None, 16]))
@example(kind="npz", frames=64, side=1024, size=None)  # 64 MiB of zeros in ~64 KB, 256 MiB as float32
@example(kind="fits.gz", frames=40, side=1024, size=16)  # small result, but the cube is decompressed whole
def test_decompression_bombs_within_the_limits_are_refused_or_read_within_the_bound(kind, frames, side, size):
    from unittest import mock

    if kind in ("png", "gif", "tif"):
        frames = min(frames, 6 if side >= 1024 else 16)  # Pillow encodes every frame: keep building cheap
    with mock.patch.dict("os.environ", {"GANLSTM_MAX_READ_BYTES": str(BOMB_BOUND)}), TemporaryDirectory() as tmp:
        target = bomb(kind, frames, side, Path(tmp))
        tracemalloc.start()
        try:
            result = outcome(target, FrameOptions(size=size))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    # The bound covers the result and a whole decompressed array; one frame's conversion temporaries come on top
    # (RGBA -> float32 -> gray: at most ~40 bytes a pixel, bounded by max_pixels).
    assert peak < 2 * BOMB_BOUND + 40 * side * side, f"{kind} of {frames} x {side}^2: the read peaked at {peak / 2**20:.0f} MiB"
    if not isinstance(result, GanlstmError):
        assert_valid_frames(result, frames=frames)
