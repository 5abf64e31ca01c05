"""Issue 18, items 7 and 12: compressed inputs cannot blow up memory, and no change to the frames is silent.

Item 7: an ``.npz`` member and a ``.fits.gz`` cube are decompressed whole, so a small file within
``max_pixels``/``max_frames`` could still expand to gigabytes. The read's working memory (the
float32 result plus what a container decompresses at once) is bounded (``GANLSTM_MAX_READ_BYTES``,
2 GiB by default), checked from the headers before anything is decompressed; numpy's
``_ArrayMemoryError`` anywhere in a read becomes a one-line GanlstmError.

Item 12: a resize that squashes non-square frames, one that unifies frames of mixed sizes, a
constant sequence mapped to 0, and a prediction warmed up on fewer frames than the model was
trained on are each said in one warning (mixed sizes without ``--size`` are refused, as before).
"""
from __future__ import annotations

import io
import json
import time
import tracemalloc
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ganlstm.config import FrameOptions
from ganlstm.data import decode
from ganlstm.data.frame_files import ReaderWarning, ResizeWarning
from ganlstm.data.frames import read_collection, read_sequence
from ganlstm.data.limits import MAX_READ_BYTES, READ_BYTES_ENV
from ganlstm.errors import GanlstmError
from reliability_helpers import fits_gz_bomb, npz_bomb

BOUND = 64 * 2**20  # a small read bound, so the bombs stay cheap to build


@pytest.fixture
def small_bound(monkeypatch):
    monkeypatch.setenv(READ_BYTES_ENV, str(BOUND))


def _refused_fast(path: Path, opts: FrameOptions | None = None) -> str:
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(GanlstmError) as e:
            read_sequence(path, opts)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - t0 < 3.0, "refusing a bomb took long: it was decompressed"
    assert peak < 8 * 2**20, f"refusing {path.name} allocated {peak / 2**20:.0f} MiB"
    return str(e.value)


@pytest.mark.parametrize("kind", ["npz", "fits.gz"])
def test_a_decompression_bomb_within_the_frame_limits_is_refused_before_decompressing(tmp_path, small_bound, kind):
    pytest.importorskip("astropy.io.fits")  # imported before memory is traced
    shape = (64, 512, 512)  # 16 MiB of uint8: 64 MiB as float32 frames, within max_pixels and max_frames
    path = npz_bomb(tmp_path / "b.npz", shape) if kind == "npz" else fits_gz_bomb(tmp_path / "b.fits.gz", shape[::-1])
    assert path.stat().st_size < 200_000
    message = _refused_fast(path)
    whole = 16 if kind == "npz" else 32  # a .fits.gz: its decompressed bytes and astropy's copy of the data
    assert message.startswith(f"{path} would take 64.0 MiB for the frames read + {whole}.0 MiB for its array decompressed whole, "
                              f"above the 64.0 MiB a read may use"), message
    assert READ_BYTES_ENV in message and "\n" not in message
    # Reading less fits the bound: the same file at --size 16 (only the decompressed array is large).
    assert read_sequence(path, FrameOptions(size=16)).shape == (64, 1, 16, 16)


def test_the_default_bound_refuses_the_issues_gigabyte_npz_from_its_header(tmp_path):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False, "shape": (250, 2048, 2048)})
    with zipfile.ZipFile(tmp_path / "b.npz", "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("frames.npy", header.getvalue() + bytes(4096))  # the header is all the check reads
    assert MAX_READ_BYTES == 2 * 2**30
    assert "3.91 GiB for the frames read + 0.98 GiB for its array decompressed whole, above the 2.00 GiB" in _refused_fast(tmp_path / "b.npz")


def test_frames_read_one_by_one_count_only_the_result(tmp_path, small_bound):
    frames = [Image.fromarray(np.full((512, 512), v, np.uint8)) for v in (0, 200)] * 40  # 80 pages, 80 MiB as float32
    frames[0].save(tmp_path / "pages.tif", save_all=True, append_images=frames[1:], compression="tiff_deflate")
    assert "would take 80.0 MiB for the frames read, above the 64.0 MiB" in _refused_fast(tmp_path / "pages.tif")
    assert read_sequence(tmp_path / "pages.tif", FrameOptions(size=64)).shape == (80, 1, 64, 64)


def test_a_bad_bound_setting_is_named(tmp_path, monkeypatch):
    np.save(tmp_path / "a.npy", np.random.default_rng(0).random((2, 4, 4)))
    monkeypatch.setenv(READ_BYTES_ENV, "lots")
    with pytest.raises(GanlstmError, match=rf"{READ_BYTES_ENV}='lots' is not a number of bytes"):
        read_sequence(tmp_path / "a.npy")


@pytest.mark.parametrize("where", ["_to_chw", "scale_frames"])
def test_numpy_running_out_of_memory_is_a_clear_error(tmp_path, monkeypatch, where):
    from numpy._core._exceptions import _ArrayMemoryError

    from ganlstm.data import frames as frames_module

    def out_of_memory(*args, **kwargs):
        raise _ArrayMemoryError((10**6, 10**6), np.dtype(np.float32))

    monkeypatch.setattr(decode if where == "_to_chw" else frames_module, where, out_of_memory)
    np.save(tmp_path / "a.npy", np.random.default_rng(0).random((2, 4, 4)))
    with pytest.raises(GanlstmError, match=r"ran out of memory reading .*a\.npy; read less \(lower --size"):
        read_sequence(tmp_path / "a.npy")


# ---------------------------------------------------------------- item 12


def _gray(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w), dtype=np.uint8)


def test_squashing_non_square_frames_to_square_is_said(tmp_path):
    np.save(tmp_path / "wide.npy", np.stack([_gray(12, 24, i) for i in range(3)]))
    with pytest.warns(ResizeWarning, match=r"wide\.npy: frames are 24x12 px \(W x H\), resized to 16x16 px: the aspect ratio is not kept"):
        assert read_sequence(tmp_path / "wide.npy", FrameOptions(size=16)).shape == (3, 1, 16, 16)
    np.save(tmp_path / "square.npy", np.stack([_gray(24, 24, i) for i in range(3)]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a square resize changes nothing but the scale: nothing to say
        read_sequence(tmp_path / "square.npy", FrameOptions(size=16))


def test_mixed_frame_sizes_are_refused_without_size_and_said_with_it(tmp_path):
    seq = tmp_path / "seq"
    seq.mkdir()
    for i, (h, w) in enumerate([(16, 16), (16, 16), (20, 20)]):
        Image.fromarray(_gray(h, w, i)).save(seq / f"f{i}.png")
    with pytest.raises(GanlstmError, match=r"f2\.png is 20x20 but .*f0\.png is 16x16; pass --size"):
        read_sequence(seq)
    with pytest.warns(ResizeWarning, match=r"seq: its frames differ in size \(16x16, 20x20 px, W x H\); each was resized to 16x16 px"):
        read_sequence(seq, FrameOptions(size=16))


def test_a_collection_says_each_kind_of_change_once(tmp_path):
    for i in range(3):
        np.save(tmp_path / f"wide{i}.npy", np.stack([_gray(12, 24, i + t) for t in range(3)]))
    np.save(tmp_path / "flat.npy", np.full((3, 8, 8), 7.0))
    with pytest.warns(ReaderWarning) as caught:
        read_collection(tmp_path, FrameOptions(size=8))
    resized, constant = (str(w.message) for w in sorted(caught, key=lambda w: w.category is not ResizeWarning))
    assert len(caught) == 2, [str(w.message) for w in caught]
    assert "3 of its 4 sequences were read with a change like this one" in resized and "aspect ratio is not kept" in resized
    assert "flat.npy is constant (every value is 7): minmax scaling maps it to 0" in constant


def test_a_constant_sequence_is_said_not_silently_blackened(tmp_path):
    np.save(tmp_path / "flat.npy", np.full((3, 4, 4), 7.0))
    with pytest.warns(ReaderWarning, match=r"flat\.npy is constant .* pass --scaling fixed to keep the level"):
        assert read_sequence(tmp_path / "flat.npy").max() == 0.0


def test_predict_from_fewer_frames_than_the_training_context_says_so(tmp_path, capsys):
    from reliability_helpers import CONTEXT, SIZE, cli, tiny_runs

    runs = tiny_runs(tmp_path / "r")
    two = tmp_path / "two.npy"
    np.save(two, np.stack([_gray(SIZE, SIZE, i) for i in range(CONTEXT - 1)]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code, err = cli(["predict", "--frames", two, "--steps", 2, "--checkpoint", runs["encoder"], "--device", "cpu",
                         "--out", tmp_path / "p"], capsys)
    assert code == 0, err
    assert (f"warning: the sequence has {CONTEXT - 1} observed frame(s) (after --interval) but the model was trained to warm up "
            f"on {CONTEXT}: it warms up on {CONTEXT - 1}") in err, err
    record = json.loads((tmp_path / "p" / "prediction.json").read_text())
    assert f"warmed up on {CONTEXT - 1} observed frame(s), fewer than the {CONTEXT} the model was trained on" in record["conversions"]
