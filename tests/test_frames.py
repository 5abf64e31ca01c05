"""Frame I/O: every reader and writer round-trips, every option acts, every bad input is one clear GanlstmError."""
from __future__ import annotations

import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ganlstm.config import FrameOptions
from ganlstm.data.frame_files import SUPPORTED_EXTENSIONS, natural_key
from ganlstm.data.frame_writer import write_frames
from ganlstm.data.frames import (
    is_sequence_path,
    read_collection,
    read_sequence,
    require_frames,
)
from ganlstm.errors import GanlstmError

try:
    from astropy.io import fits
except ImportError:  # the FITS tests skip themselves; every other reader is still tested
    fits = None
needs_fits = pytest.mark.skipif(fits is None, reason="needs astropy (pip install 'ganlstm[astro]')")

FIXED = FrameOptions(scaling="fixed")
T, H, W = 5, 16, 16


def ramp(t: int = T, h: int = H, w: int = W, seed: int = 0) -> np.ndarray:
    """Distinct random frames (t, h, w) in [0, 1]; each frame differs so GIF writers keep them all."""
    return np.random.default_rng(seed).random((t, h, w), dtype=np.float32)


def save_dir(frames: np.ndarray, d: Path, ext: str = ".png", names: list[str] | None = None) -> Path:
    """Write (T, H, W[, C]) integer frames as images with Pillow (independently of write_frames)."""
    d.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        Image.fromarray(f).save(d / (names[i] if names else f"frame_{i:03d}{ext}"))
    return d


def to_u8(x: np.ndarray) -> np.ndarray:
    return np.rint(x * 255).astype(np.uint8)


# ----------------------------------------------------------------------------- readers


@pytest.mark.parametrize("ext", [".png", ".tif", ".bmp"])
def test_8bit_frame_dir_is_exact_under_fixed_scaling(tmp_path, ext):
    u8 = to_u8(ramp())
    x = read_sequence(save_dir(u8, tmp_path / "seq", ext), FIXED)
    assert x.shape == (T, 1, H, W) and x.dtype == np.float32
    np.testing.assert_allclose(x[:, 0], u8 / 255.0, atol=1e-6)


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_16bit_frames_keep_their_precision(tmp_path, ext):
    u16 = (ramp() * 65535).astype(np.uint16)
    x = read_sequence(save_dir(u16, tmp_path / "seq", ext), FIXED)
    np.testing.assert_allclose(x[:, 0], u16 / 65535.0, atol=1e-6)
    assert len(np.unique(x)) > 256  # would collapse if anything went through 8 bits


def test_float_tiff_frames(tmp_path):
    f = ramp()
    x = read_sequence(save_dir(f, tmp_path / "seq", ".tif"), FrameOptions(scaling="none"))
    np.testing.assert_allclose(x[:, 0], f, atol=1e-7)


def test_jpeg_roughly(tmp_path):
    smooth = np.tile(np.linspace(0, 1, W, dtype=np.float32), (T, H, 1))
    x = read_sequence(save_dir(to_u8(smooth), tmp_path / "seq", ".jpg"), FIXED)
    assert x.shape == (T, 1, H, W)
    assert np.abs(x[:, 0] - smooth).max() < 0.05


def test_natural_sort_orders_by_number(tmp_path):
    names = [f"f{i}.png" for i in range(12)]
    frames = np.stack([np.full((4, 4), i * 20, np.uint8) for i in range(12)])
    x = read_sequence(save_dir(frames, tmp_path / "seq", names=names), FIXED)
    np.testing.assert_allclose(x[:, 0, 0, 0] * 255, np.arange(12) * 20, atol=1e-4)
    assert sorted(["f10", "F2", "f1"], key=natural_key) == ["f1", "F2", "f10"]


def test_hidden_and_foreign_files_in_a_frame_dir_are_ignored(tmp_path):
    d = save_dir(to_u8(ramp()), tmp_path / "seq")
    (d / "._frame_000.png").write_bytes(b"macOS resource fork, not a PNG")
    (d / "notes.txt").write_text("run parameters")
    assert read_sequence(d, FIXED).shape == (T, 1, H, W)


def test_rgb_to_gray_is_bt601_luma_and_alpha_is_dropped(tmp_path):
    rgba = np.random.default_rng(1).integers(0, 256, (T, H, W, 4), dtype=np.uint8)
    d = save_dir(rgba, tmp_path / "seq")
    rgb = read_sequence(d, FrameOptions(scaling="fixed", channels=3))
    np.testing.assert_allclose(rgb, np.moveaxis(rgba[..., :3], -1, 1) / 255.0, atol=1e-6)
    gray = read_sequence(d, FIXED)
    luma = (rgba[..., :3].astype(np.float64) @ [0.299, 0.587, 0.114]) / 255.0
    np.testing.assert_allclose(gray[:, 0], luma, atol=1e-5)


def test_gray_replicates_to_rgb(tmp_path):
    x = read_sequence(save_dir(to_u8(ramp()), tmp_path / "seq"), FrameOptions(scaling="fixed", channels=3))
    assert x.shape == (T, 3, H, W)
    assert np.array_equal(x[:, 0], x[:, 1]) and np.array_equal(x[:, 0], x[:, 2])


def test_animated_gif(tmp_path):
    u8 = to_u8(ramp())
    p = tmp_path / "seq.gif"
    imgs = [Image.fromarray(f) for f in u8]
    imgs[0].save(p, save_all=True, append_images=imgs[1:], duration=50, loop=0)
    x = read_sequence(p, FIXED)
    assert x.shape == (T, 1, H, W)
    np.testing.assert_allclose(x[:, 0], u8 / 255.0, atol=1e-5)


def test_multipage_tiff_is_a_sequence(tmp_path):
    u16 = (ramp() * 65535).astype(np.uint16)
    p = tmp_path / "stack.tif"
    imgs = [Image.fromarray(f) for f in u16]
    imgs[0].save(p, save_all=True, append_images=imgs[1:])
    assert is_sequence_path(p)
    np.testing.assert_allclose(read_sequence(p, FIXED)[:, 0], u16 / 65535.0, atol=1e-6)


@pytest.mark.parametrize("ext", [".mp4", ".mov", ".avi", ".mkv"])
def test_video(tmp_path, ext):
    iio = pytest.importorskip("imageio.v2")
    pytest.importorskip("imageio_ffmpeg")
    # Flat frames of distinct brightness survive lossy coding well enough to compare.
    levels = np.linspace(0.2, 0.8, 6, dtype=np.float32)
    frames = [np.full((32, 32, 3), to_u8(v), np.uint8) for v in levels]
    p = tmp_path / f"clip{ext}"
    iio.mimwrite(p, frames, fps=5, format="FFMPEG")
    x = read_sequence(p, FIXED)
    assert x.shape == (6, 1, 32, 32)
    np.testing.assert_allclose(x.mean(axis=(1, 2, 3)), levels, atol=0.03)
    assert read_sequence(p, FrameOptions(scaling="fixed", interval=2)).shape[0] == 3


LAYOUTS = {
    "thw": lambda a: a[..., 0],
    "thwc": lambda a: a,
    "tchw": lambda a: np.moveaxis(a, -1, 1),
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("ext", [".npy", ".npz"])
def test_arrays_in_every_layout(tmp_path, layout, ext):
    rgb = np.random.default_rng(2).random((T, H, W, 3), dtype=np.float32)
    stored = LAYOUTS[layout](rgb)
    p = tmp_path / f"seq{ext}"
    np.save(p, stored) if ext == ".npy" else np.savez_compressed(p, frames=stored)
    x = read_sequence(p, FrameOptions(scaling="none", channels=3))
    expect = np.moveaxis(rgb, -1, 1)[:, :1].repeat(3, 1) if layout == "thw" else np.moveaxis(rgb, -1, 1)
    np.testing.assert_allclose(x, expect, atol=1e-7)


@pytest.mark.parametrize("dtype,peak", [(np.uint8, 255), (np.uint16, 65535), (np.int16, None), (np.float64, 1.0)])
def test_array_dtypes_map_by_their_range_under_fixed(tmp_path, dtype, peak):
    raw = (ramp() * (peak or 1000)).astype(dtype)
    np.save(tmp_path / "a.npy", raw)
    x = read_sequence(tmp_path / "a.npy", FIXED)
    if dtype is np.int16:  # signed: the full [-32768, 32767] range
        expect = (raw.astype(np.float64) + 32768) / 65535
    else:
        expect = raw / peak
    np.testing.assert_allclose(x[:, 0], expect, atol=1e-6)


@needs_fits
def test_fits_cube_and_fits_frame_dir(tmp_path):
    cube = (ramp() * 1e4).astype(np.float32)  # counts, not [0, 1]
    fits.PrimaryHDU(cube).writeto(tmp_path / "cube.fits")
    fits.PrimaryHDU(cube).writeto(tmp_path / "cube.fits.gz")  # astropy gzips by extension
    d = tmp_path / "frames"
    d.mkdir()
    for i in (0, 1, 2, 3, 10):  # natural sort must put 10 last
        fits.PrimaryHDU(cube[min(i, 4)]).writeto(d / f"snap_{i}.fits")
    opts = FrameOptions(scaling="fixed", vmin=0, vmax=1e4)
    np.testing.assert_allclose(read_sequence(tmp_path / "cube.fits", opts)[:, 0], cube / 1e4, atol=1e-6)
    np.testing.assert_allclose(read_sequence(tmp_path / "cube.fits.gz", opts)[:, 0], cube / 1e4, atol=1e-6)
    np.testing.assert_allclose(read_sequence(d, opts)[:, 0], cube / 1e4, atol=1e-6)
    assert is_sequence_path(tmp_path / "cube.fits") and is_sequence_path(d)
    assert not is_sequence_path(d / "snap_0.fits")


@needs_fits
def test_fits_16bit_unsigned_uses_bzero(tmp_path):
    u16 = (ramp() * 65535).astype(np.uint16)
    fits.PrimaryHDU(u16).writeto(tmp_path / "u16.fits")  # BITPIX=16, BZERO=32768
    np.testing.assert_allclose(read_sequence(tmp_path / "u16.fits", FIXED)[:, 0], u16 / 65535, atol=1e-6)


# ----------------------------------------------------------------------------- options


def test_resize_is_antialiased_and_float_preserving(tmp_path):
    checker = np.indices((32, 32)).sum(0) % 2  # Nyquist pattern: aliasing would keep 0/1 contrast
    tiny = (checker * 1e-6 + np.linspace(0, 1e-6, 32)[None]).astype(np.float32)
    np.save(tmp_path / "a.npy", np.stack([tiny] * 3))
    x = read_sequence(tmp_path / "a.npy", FrameOptions(size=8))
    assert x.shape == (3, 1, 8, 8)
    assert x[0].std() < 0.35  # averaged, not sampled
    assert len(np.unique(x[0])) > 8 and np.ptp(x) == pytest.approx(1.0)  # fine values survive 1e-6 scale


def test_resize_makes_mixed_sizes_uniform(tmp_path):
    d = tmp_path / "seq"
    d.mkdir()
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(d / "a1.png")
    Image.fromarray(np.full((24, 20), 255, np.uint8)).save(d / "a2.png")
    x = read_sequence(d, FrameOptions(scaling="fixed", size=12))
    assert x.shape == (2, 1, 12, 12)
    assert x[0].max() == 0 and x[1].min() == pytest.approx(1.0)


def test_interval_keeps_every_nth_frame(tmp_path):
    seq = np.arange(7, dtype=np.float32)[:, None, None].repeat(4, 1).repeat(4, 2) / 10
    np.save(tmp_path / "a.npy", seq)
    x = read_sequence(tmp_path / "a.npy", FrameOptions(scaling="none", interval=3))
    np.testing.assert_allclose(x[:, 0, 0, 0], [0.0, 0.3, 0.6])


def test_minmax_is_per_sequence(tmp_path):
    raw = ramp() * 300 - 50
    np.save(tmp_path / "a.npy", raw)
    x = read_sequence(tmp_path / "a.npy")
    np.testing.assert_allclose(x[:, 0], (raw - raw.min()) / np.ptp(raw), atol=1e-6)
    np.save(tmp_path / "flat.npy", np.full((3, 4, 4), 7.0))
    assert read_sequence(tmp_path / "flat.npy").max() == 0.0


def test_fixed_with_vmin_vmax_clips(tmp_path):
    np.save(tmp_path / "a.npy", np.array([[[0.0, 50.0, 100.0, 200.0]]] * 2))
    x = read_sequence(tmp_path / "a.npy", FrameOptions(scaling="fixed", vmin=50, vmax=150))
    np.testing.assert_allclose(x[0, 0, 0], [0.0, 0.0, 0.5, 1.0])


@pytest.mark.parametrize("mode", ["asinh", "log"])
def test_stretches_follow_the_documented_formula(tmp_path, mode):
    raw = ramp() ** 4 * 1e5  # high dynamic range: most pixels faint
    np.save(tmp_path / "a.npy", raw)
    s = 0.05
    x = read_sequence(tmp_path / "a.npy", FrameOptions(scaling=mode, stretch=s))
    u = (raw - raw.min()) / np.ptp(raw)
    expect = np.arcsinh(u / s) / np.arcsinh(1 / s) if mode == "asinh" else np.log1p(u / s) / np.log1p(1 / s)
    np.testing.assert_allclose(x[:, 0], expect, atol=1e-5)
    assert np.median(x) > 2 * np.median(u)  # faint structure lifted
    pinned = read_sequence(tmp_path / "a.npy", FrameOptions(scaling=mode, stretch=s, vmin=0, vmax=2e5))
    assert pinned.max() < 1.0  # vmin/vmax pin the range instead of the data's max
    with pytest.raises(GanlstmError, match=rf"the {mode} scaling range \[1e\+06, .*\] is empty; set --vmin below --vmax"):
        read_sequence(tmp_path / "a.npy", FrameOptions(scaling=mode, vmin=1e6))


def test_scaling_none_accepts_unit_range_and_refuses_others(tmp_path):
    np.save(tmp_path / "ok.npy", ramp())
    np.testing.assert_allclose(read_sequence(tmp_path / "ok.npy", FrameOptions(scaling="none"))[:, 0], ramp())
    np.save(tmp_path / "bad.npy", ramp() * 2)
    with pytest.raises(GanlstmError, match=r"bad\.npy.*\[0, 1\].*--scaling"):
        read_sequence(tmp_path / "bad.npy", FrameOptions(scaling="none"))


@pytest.mark.parametrize(
    "opts,words",
    [
        (FrameOptions(channels=2), "channels"),
        (FrameOptions(interval=0), "interval"),
        (FrameOptions(scaling="sqrt"), "minmax, fixed, asinh, log, none"),
        (FrameOptions(vmin=0.0), "vmin/vmax only apply"),
        (FrameOptions(scaling="fixed", vmin=2.0, vmax=1.0), "below vmax"),
        (FrameOptions(scaling="asinh", stretch=0.0), "stretch"),
        (FrameOptions(size=0), "--size"),
    ],
)
def test_bad_options_are_named(tmp_path, opts, words):
    np.save(tmp_path / "a.npy", ramp())
    with pytest.raises(GanlstmError, match=words.replace("(", r"\(")):
        read_sequence(tmp_path / "a.npy", opts)


# ----------------------------------------------------------------------------- collections


@needs_fits
def test_read_collection_mixes_dirs_and_files_in_natural_order(tmp_path):
    root = tmp_path / "runs"
    save_dir(to_u8(ramp(seed=1)), root / "merger10")
    save_dir(to_u8(ramp(seed=2)), root / "merger2")
    np.save(root / "merger3.npy", ramp(seed=3))
    fits.PrimaryHDU(ramp(seed=4)).writeto(root / "merger4.fits")
    imgs = [Image.fromarray(f) for f in to_u8(ramp(seed=5))]
    imgs[0].save(root / "merger5.gif", save_all=True, append_images=imgs[1:])
    (root / "README.txt").write_text("not a sequence")
    (root / "empty").mkdir()
    got = read_collection(root, FIXED)
    assert [n for n, _ in got] == ["merger2", "merger3.npy", "merger4.fits", "merger5.gif", "merger10"]
    assert all(a.shape == (T, 1, H, W) for _, a in got)
    np.testing.assert_allclose(got[1][1][:, 0], ramp(seed=3))


def test_read_collection_of_one_sequence(tmp_path):
    d = save_dir(to_u8(ramp()), tmp_path / "only")
    [(name, x)] = read_collection(d, FIXED)
    assert name == "only" and x.shape == (T, 1, H, W)


@needs_fits
def test_collection_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(GanlstmError, match="empty"):
        read_collection(tmp_path / "empty")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.txt").write_text("x")
    with pytest.raises(GanlstmError, match=r"junk holds no readable sequences.*\.txt.*\.png"):
        read_collection(tmp_path / "junk")
    save_dir(to_u8(ramp()), tmp_path / "coll" / "s1")
    fits.PrimaryHDU(ramp()).writeto(tmp_path / "coll" / "s2.fits")  # a cube: not a frame
    with pytest.raises(GanlstmError, match="coll is a collection of sequences.*read_collection"):
        read_sequence(tmp_path / "coll")


# ----------------------------------------------------------------------------- writers


@pytest.mark.parametrize(
    "fmt,channels,atol",
    [
        ("png", 1, 0.5 / 255 + 1e-6),
        ("png", 3, 0.5 / 255 + 1e-6),
        ("png16", 1, 0.5 / 65535 + 1e-6),  # 16-bit RGB is refused: see test_write_errors
        ("npy", 1, 0),
        ("npy", 3, 0),
        pytest.param("fits", 1, 0, marks=needs_fits),
        pytest.param("fits", 3, 0, marks=needs_fits),
    ],
)
def test_write_then_read_round_trips(tmp_path, fmt, channels, atol):
    x = np.random.default_rng(3).random((T, channels, H, W), dtype=np.float32)
    paths = write_frames(x, tmp_path / "out", fmt=fmt)
    assert all(p.is_file() for p in paths)
    src = tmp_path / "out" if fmt.startswith("png") else paths[0]
    y = read_sequence(src, FrameOptions(scaling="fixed", channels=channels))
    np.testing.assert_allclose(y, x, atol=atol)


@needs_fits
def test_write_accepts_torch_and_numbers_files(tmp_path):
    torch = pytest.importorskip("torch")
    x = torch.rand(3, 1, 8, 8)
    paths = write_frames(x, tmp_path, start_index=9998, prefix="pred_")
    assert [p.name for p in paths] == ["pred_09998.png", "pred_09999.png", "pred_10000.png"]  # one width, so names sort
    [npy] = write_frames(x, tmp_path, fmt="npy", start_index=20)
    assert npy.name == "frame_0020-0022.npy"
    [f] = write_frames(x, tmp_path, fmt="fits", start_index=20)
    assert fits.getheader(f)["FRAME0"] == 20
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temp files


def test_write_refuses_to_overwrite(tmp_path):
    x = np.zeros((2, 1, 4, 4), np.float32)
    write_frames(x, tmp_path)
    before = (tmp_path / "frame_0001.png").read_bytes()
    with pytest.raises(GanlstmError, match=r"frame_0000\.png already exists.*--overwrite"):
        write_frames(np.ones_like(x), tmp_path)
    assert (tmp_path / "frame_0001.png").read_bytes() == before  # nothing half-written
    write_frames(np.ones_like(x), tmp_path, overwrite=True)
    assert read_sequence(tmp_path, FIXED).min() == 1.0


def _two_nans() -> np.ndarray:
    x = np.zeros((2, 1, 4, 4))
    x[1, 0, 0, :2] = [np.nan, np.inf]
    return x


@pytest.mark.parametrize(
    "frames,fmt,words",
    [
        (np.zeros((2, 3, 4, 4)), "png16", "grayscale only"),
        (_two_nans(), "png", "hold 2 NaN/Inf"),
        (np.zeros((2, 4, 4)), "png", r"\(T, C, H, W\)"),
        (np.zeros((2, 1, 4, 4)), "jpg", "png, png16, npy, fits"),
        (np.zeros((2, 1, 4, 4)), "png", "start_index=-1"),
    ],
)
def test_write_errors(tmp_path, frames, fmt, words):
    with pytest.raises(GanlstmError, match=words):
        write_frames(frames, tmp_path, fmt=fmt, start_index=-1 if "start_index" in words else 0)
    assert not list(tmp_path.iterdir())


# ----------------------------------------------------------------------------- errors


def test_missing_path(tmp_path):
    with pytest.raises(GanlstmError, match=r"nope does not exist; check the path"):
        read_sequence(tmp_path / "nope")


def test_empty_dir_and_dir_without_frames(tmp_path):
    (tmp_path / "e").mkdir()
    with pytest.raises(GanlstmError, match=r"e is empty"):
        read_sequence(tmp_path / "e")
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "log.csv").write_text("1,2")
    with pytest.raises(GanlstmError, match=r"t holds no readable frames \(found \.csv\); supported extensions are .*\.png.*\.fits"):
        read_sequence(tmp_path / "t")


def test_unknown_extension_lists_supported(tmp_path):
    (tmp_path / "a.xyz").write_text("?")
    with pytest.raises(GanlstmError, match=r"a\.xyz has an unsupported extension '\.xyz'") as e:
        read_sequence(tmp_path / "a.xyz")
    assert all(ext in str(e.value) for ext in SUPPORTED_EXTENSIONS)


def test_single_image_file_points_to_its_directory(tmp_path):
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "one.png")
    with pytest.raises(GanlstmError, match="one.png is a single image; pass the directory"):
        read_sequence(tmp_path / "one.png")


def _two_frame_dir(d: Path, first: np.ndarray, second: np.ndarray) -> Path:
    d.mkdir()
    Image.fromarray(first).save(d / "a1.png")
    Image.fromarray(second).save(d / "a2.png")
    return d


@pytest.mark.parametrize(
    "second,words",
    [
        (np.zeros((8, 16), np.uint8), r"a2\.png is 16x8 but .*a1\.png is 16x16; pass --size"),
        (np.zeros((16, 16), np.uint16), r"a2\.png is uint16 but .*a1\.png is uint8; .*convert"),
    ],
)
def test_frames_must_agree_in_size_and_bit_depth(tmp_path, second, words):
    d = _two_frame_dir(tmp_path / "seq", np.zeros((16, 16), np.uint8), second)
    with pytest.raises(GanlstmError, match=words):
        read_sequence(d, FIXED)


@needs_fits
def test_frame_files_must_hold_one_frame(tmp_path):
    d = save_dir(to_u8(ramp()), tmp_path / "png")
    imgs = [Image.fromarray(f) for f in to_u8(ramp())]
    imgs[0].save(d / "frame_999.tif", save_all=True, append_images=imgs[1:])
    with pytest.raises(GanlstmError, match=r"frame_999\.tif holds 5 frames; a frame directory needs one image per file"):
        read_sequence(d)
    f = tmp_path / "fits"
    f.mkdir()
    fits.PrimaryHDU(ramp()[0]).writeto(f / "s1.fits")
    fits.PrimaryHDU(ramp()).writeto(f / "s2.fits")
    with pytest.raises(GanlstmError, match=r"s2\.fits holds a \(5, 16, 16\) array, not one 2-D frame"):
        read_sequence(f)


def _corrupt(path: Path) -> None:
    if path.suffix == ".npz":
        np.savez(path, a=np.zeros((2, 4, 4)))
    elif path.suffix == ".fits":
        fits.PrimaryHDU(np.zeros((2, 4, 4), np.float32)).writeto(path)
    elif path.suffix == ".gif":
        imgs = [Image.fromarray(np.full((8, 8), v, np.uint8)) for v in (0, 99)]
        imgs[0].save(path, save_all=True, append_images=imgs[1:])
    else:
        np.save(path, np.zeros((2, 4, 4)))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # truncated mid-file


@pytest.mark.filterwarnings("ignore:File may have been truncated")
@pytest.mark.parametrize("name", ["a.npy", "a.npz", pytest.param("a.fits", marks=needs_fits), "a.gif", "a.mp4", "a.png"])
def test_corrupt_files_name_the_file(tmp_path, name):
    p = tmp_path / name
    if p.suffix in (".mp4", ".png"):
        p.write_bytes(b"\x00garbage" * 10)
    else:
        _corrupt(p)
    target = p if p.suffix != ".png" else tmp_path
    with pytest.raises(GanlstmError, match=rf"{name}.*(corrupt|unreadable)"):
        read_sequence(target)


def test_corrupt_frame_in_a_directory_names_that_frame(tmp_path):
    d = save_dir(to_u8(ramp()), tmp_path / "seq")
    (d / "frame_002.png").write_bytes((d / "frame_002.png").read_bytes()[:40])
    with pytest.raises(GanlstmError, match=r"frame_002\.png is corrupt or unreadable.*re-export it"):
        read_sequence(d)


def test_nan_values_are_counted_and_located(tmp_path):
    a = ramp()
    a[3, :2, :3] = np.nan
    a[3, 5, 5] = np.inf
    np.save(tmp_path / "a.npy", a)
    with pytest.raises(GanlstmError, match=r"frame 3 of .*a\.npy holds 7 NaN/Inf value\(s\); replace them"):
        read_sequence(tmp_path / "a.npy")


def test_array_shape_dtype_and_npz_keys(tmp_path):
    np.save(tmp_path / "flat.npy", np.zeros((4, 4)))
    with pytest.raises(GanlstmError, match=r"flat\.npy has shape \(4, 4\); store a sequence as \(T, H, W\)"):
        read_sequence(tmp_path / "flat.npy")
    np.save(tmp_path / "c.npy", np.zeros((2, 4, 4), np.complex64))
    with pytest.raises(GanlstmError, match=r"c\.npy has dtype complex64"):
        read_sequence(tmp_path / "c.npy")
    np.save(tmp_path / "o.npy", np.array([None, 1], dtype=object))
    with pytest.raises(GanlstmError, match=r"o\.npy has dtype object"):
        read_sequence(tmp_path / "o.npy")
    np.savez(tmp_path / "two.npz", frames=np.zeros((2, 4, 4)), masks=np.zeros((2, 4, 4)))
    with pytest.raises(GanlstmError, match=r"two\.npz holds 2 arrays \(keys: frames, masks\); keep exactly one"):
        read_sequence(tmp_path / "two.npz")


@needs_fits
def test_limits_are_checked_from_headers(tmp_path):
    # A header claiming 100000 x 100000 frames over a few bytes of data: refused before any decode.
    with open(tmp_path / "huge.npy", "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (3, 100000, 100000)})
    with pytest.raises(GanlstmError, match=r"huge\.npy has 100000x100000 = 10000000000 pixels.*max_pixels=16777216.*--max-pixels"):
        read_sequence(tmp_path / "huge.npy")
    d = tmp_path / "png"
    d.mkdir()
    (d / "big.png").write_bytes(_png_header_only(5000, 5000))
    with pytest.raises(GanlstmError, match=r"big\.png has 5000x5000 = 25000000 pixels.*max_pixels"):
        read_sequence(d)
    (d / "big.png").write_bytes(_png_header_only(100000, 100000))  # past Pillow's own bomb guard
    with pytest.raises(GanlstmError, match=r"big\.png is too large for Pillow to decode safely"):
        read_sequence(d)
    np.save(tmp_path / "long.npy", np.zeros((10, 2, 2), np.float32))
    with pytest.raises(GanlstmError, match=r"long\.npy has more than max_frames=4 frames \(after interval=2\).*--max-frames"):
        read_sequence(tmp_path / "long.npy", FrameOptions(max_frames=4, interval=2))
    assert read_sequence(tmp_path / "long.npy", FrameOptions(max_frames=5, interval=2)).shape[0] == 5
    fits.PrimaryHDU(np.zeros((2, 8, 8), np.float32)).writeto(tmp_path / "c.fits")
    with pytest.raises(GanlstmError, match=r"c\.fits has 8x8 = 64 pixels.*max_pixels=63"):
        read_sequence(tmp_path / "c.fits", FrameOptions(max_pixels=63))


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG claiming ``width`` x ``height`` 8-bit gray pixels whose image data is empty."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"") + chunk(b"IEND", b"")


@needs_fits
def test_missing_optional_dependencies_say_what_to_install(tmp_path, monkeypatch):
    fits.PrimaryHDU(np.zeros((2, 4, 4), np.float32)).writeto(tmp_path / "c.fits")
    (tmp_path / "v.mp4").write_bytes(b"x")
    monkeypatch.setitem(sys.modules, "astropy.io", None)
    monkeypatch.setitem(sys.modules, "imageio.v2", None)
    with pytest.raises(GanlstmError, match=r"c\.fits needs astropy; pip install ganlstm\[astro\]"):
        read_sequence(tmp_path / "c.fits")
    with pytest.raises(GanlstmError, match=r"v\.mp4 needs imageio and imageio-ffmpeg; pip install ganlstm\[video\]"):
        read_sequence(tmp_path / "v.mp4")
    with pytest.raises(GanlstmError, match=r"pip install ganlstm\[astro\]"):
        write_frames(np.zeros((1, 1, 4, 4)), tmp_path / "out", fmt="fits")


def test_require_frames():
    require_frames(np.zeros((30, 1, 4, 4)), 30, "run1")
    with pytest.raises(GanlstmError, match=r"^run1 has 12 frames but context\+horizon needs 50; "):
        require_frames(np.zeros((12, 1, 4, 4)), 50, "run1")
