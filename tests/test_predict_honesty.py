"""Resolution and colour are honest: a prediction says how it converted the frames, and can give them back at their size."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from forecast_helpers import SIZE, trained_checkpoint
from PIL import Image

from ganlstm import Predictor
from ganlstm.cli import cli
from ganlstm.predict_files import predict_to_directory
from ganlstm.resolution import ResolutionWarning, resize_frames

T = 6  # observed frames per input sequence


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """A tiny 1-channel 16 px forecaster checkpoint (two training steps)."""
    return trained_checkpoint(tmp_path_factory.mktemp("honesty"))


def frame_dir(root, h: int, w: int, mode: str = "rgb"):
    """T PNG frames (H, W): ``rgb`` colour, ``gray`` 8-bit L, ``rgbgray`` gray stored as RGB (R == G == B)."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    for t in range(T):
        rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)  # (H, W, 3)
        gray = rgb[..., 0]
        image = {"rgb": rgb, "gray": gray, "rgbgray": np.repeat(gray[..., None], 3, axis=2)}[mode]
        Image.fromarray(image).save(root / f"frame_{t:04d}.png")
    return root


def resolution_warnings(record) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, ResolutionWarning)]


def test_rgb_input_to_a_grayscale_model_warns_naming_conversion_and_resize(ckpt, tmp_path):
    rgb = frame_dir(tmp_path / "rgb", 24, 24)
    p = Predictor.from_checkpoint(ckpt, device="cpu")
    with pytest.warns(ResolutionWarning) as record:
        x = p.read(rgb)
    assert x.shape == (T, 1, SIZE, SIZE)  # still predicted at the model's shape
    (message,) = resolution_warnings(record)
    assert "frames are 3x24x24 (RGB), the model reads 1x16x16 (grayscale)" in message
    assert "converted RGB to grayscale (ITU-R BT.601 luma)" in message and "resized 24 -> 16 px" in message
    with pytest.warns(ResolutionWarning) as record:
        predict_to_directory(rgb, 2, checkpoint=ckpt, out=tmp_path / "out", device="cpu")
    (message,) = resolution_warnings(record)  # one message, not one per read
    assert "RGB to grayscale" in message and "24 -> 16 px" in message and "--output-size native" in message


def test_matching_input_gives_no_warning_and_no_record(ckpt, tmp_path):
    for mode in ("gray", "rgbgray"):  # gray stored as RGB loses nothing in a grayscale model
        frames = frame_dir(tmp_path / mode, SIZE, SIZE, mode)
        with warnings.catch_warnings():
            warnings.simplefilter("error", ResolutionWarning)
            Predictor.from_checkpoint(ckpt, device="cpu").read(frames)
            result = predict_to_directory(frames, 2, checkpoint=ckpt, out=tmp_path / f"out_{mode}", device="cpu",
                                          output_size="native")
        assert result["prediction"] is None and not (tmp_path / f"out_{mode}" / "prediction.json").exists()
        assert [Image.open(f).size for f in result["frames"]] == [(SIZE, SIZE)] * 2


def test_output_size_native_writes_frames_at_the_input_size(ckpt, tmp_path):
    rgb = frame_dir(tmp_path / "rgb", 24, 20)  # H x W = 24 x 20: not square
    truth = frame_dir(tmp_path / "truth", 24, 20)
    with pytest.warns(ResolutionWarning):
        native = predict_to_directory(rgb, 3, checkpoint=ckpt, out=tmp_path / "native", device="cpu", output_size="native")
        model = predict_to_directory(rgb, 3, checkpoint=ckpt, out=tmp_path / "model", device="cpu", fmt="npy")
    images = [Image.open(f) for f in native["frames"]]
    assert [(im.size, im.mode) for im in images] == [((20, 24), "L")] * 3  # PIL size is (W, H); colour is not invented
    expected = resize_frames(torch.from_numpy(np.load(model["frames"][0])), (24, 20)).numpy()  # (3, 1, 24, 20)
    written = np.stack([np.asarray(im, np.float32)[None] / 255 for im in images])
    np.testing.assert_allclose(written, expected, atol=0.5 / 255 + 1e-6)
    with pytest.warns(ResolutionWarning):
        scored = predict_to_directory(rgb, 3, checkpoint=ckpt, out=tmp_path / "truth_out", truth=truth, device="cpu",
                                      output_size="native")
    metrics = json.loads((tmp_path / "truth_out" / "metrics.json").read_text())
    assert metrics["output_size"] == [24, 20] and metrics["model_size"] == [SIZE, SIZE]
    assert scored["metrics"]["output_size"] == [24, 20]


def test_prediction_json_records_shapes_and_conversions(ckpt, tmp_path):
    rgb = frame_dir(tmp_path / "rgb", 24, 24)
    with pytest.warns(ResolutionWarning) as record:
        predict_to_directory(rgb, 2, checkpoint=ckpt, out=tmp_path / "model", device="cpu")
        predict_to_directory(rgb, 2, checkpoint=ckpt, out=tmp_path / "native", device="cpu", output_size="native")
    assert "stay grayscale" in resolution_warnings(record)[1]  # the native message says colour is not restored
    model = json.loads((tmp_path / "model" / "prediction.json").read_text())
    assert model["input_shape"] == [3, 24, 24] and model["model_shape"] == [1, SIZE, SIZE]
    assert model["output_shape"] == [1, SIZE, SIZE] and model["output_size"] == "model"
    assert model["conversions"] == ["converted RGB to grayscale (ITU-R BT.601 luma)", "resized 24 -> 16 px"]
    native = json.loads((tmp_path / "native" / "prediction.json").read_text())
    assert native["output_shape"] == [1, 24, 24] and native["conversions"][:2] == model["conversions"]
    assert any("back 16 -> 24 px" in c for c in native["conversions"])
    assert any("RGB cannot be restored" in c for c in native["conversions"])


def test_cli_predict_prints_the_message_on_stderr(ckpt, tmp_path):
    rgb = frame_dir(tmp_path / "rgb", 24, 24)
    args = ["predict", "--frames", str(rgb), "--steps", "2", "--checkpoint", str(ckpt), "--device", "cpu"]
    result = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert result.stderr.count("warning: frames are 3x24x24 (RGB), the model reads 1x16x16 (grayscale)") == 1
    assert "converted RGB to grayscale" in result.stderr and "pass --output-size native" in result.stderr
    assert "wrote 2 predicted frames" in result.stdout
    result = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "native"), "--output-size", "native"])
    assert result.exit_code == 0, result.output
    assert "resized back to 24 px" in result.stderr
    assert all(Image.open(f).size == (24, 24) for f in (tmp_path / "native").glob("frame_*.png"))
