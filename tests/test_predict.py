"""Predictor (every input form, encode/decode/interpolate) and `ganlstm predict` (files, GIF, metrics, refusals)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from forecast_helpers import trained_checkpoint
from PIL import Image

import ganlstm.predictor as predictor_module
from ganlstm import GanlstmError, Predictor
from ganlstm.cli import main
from ganlstm.config import FrameOptions
from ganlstm.data.frames import read_sequence


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    ckpt = trained_checkpoint(root)
    return root, ckpt, Predictor.from_checkpoint(ckpt, device="cpu")


def test_every_input_form(setup):
    root, _, p = setup
    seq_dir = root / "data" / "seq_0000"
    frames = p.read(seq_dir)[:6]  # (6, 1, 16, 16) as training read it
    expected = p.predict(frames, 4)
    assert expected.shape == (4, 1, 16, 16) and expected.dtype == np.float32
    assert 0 <= expected.min() and expected.max() <= 1
    np.testing.assert_allclose(p.predict(torch.from_numpy(frames), 4), expected, atol=1e-6)
    np.testing.assert_allclose(p.predict(frames[:, 0], 4), expected[:, 0], atol=1e-6)  # (T, H, W)
    batch = np.stack([frames, frames[::-1].copy()])  # (2, 6, 1, 16, 16)
    out = p.predict(batch, 4)
    assert out.shape == (2, 4, 1, 16, 16)
    np.testing.assert_allclose(out[0], expected, atol=1e-5)
    # A path and PIL images go through the training reader, so they give the same frames.
    full = p.predict(seq_dir, 4)
    assert full.shape == (4, 1, 16, 16)
    np.testing.assert_allclose(full, p.predict(p.read(seq_dir), 4), atol=1e-6)
    images = [Image.open(f) for f in sorted(seq_dir.glob("frame_*.png"))]
    np.testing.assert_allclose(p.predict(images, 4), full, atol=1e-6)
    # The context defaults to the training context: older frames do not matter.
    np.testing.assert_allclose(p.predict(frames[-p.context :], 4), expected, atol=1e-6)
    assert not np.array_equal(p.predict(frames, 4, context=6), expected)


def test_bad_inputs(setup):
    _, _, p = setup
    with pytest.raises(GanlstmError, match="the model reads 1x16x16"):
        p.predict(np.zeros((3, 1, 32, 32), np.float32), 2)
    with pytest.raises(GanlstmError, match=r"in \[0, 1\]"):
        p.predict(np.full((3, 16, 16), 2.0, np.float32), 2)
    with pytest.raises(GanlstmError, match="not a sequence"):
        p.predict(np.zeros((16, 16)), 2)
    with pytest.raises(GanlstmError, match="cannot read frames"):
        p.predict({"a": 1}, 2)
    with pytest.raises(GanlstmError, match="steps=0"):
        p.predict(np.zeros((3, 16, 16), np.float32), 0)


def test_encode_decode_interpolate(setup):
    root, _, p = setup
    frames = p.read(root / "data" / "seq_0001")[:5]
    z = p.encode(frames)
    assert z.shape == (5, 8)
    assert p.encode(frames[None]).shape == (1, 5, 8)
    decoded = p.decode(z)
    assert decoded.shape == (5, 1, 16, 16) and 0 <= decoded.min() and decoded.max() <= 1
    assert p.decode(z[0]).shape == (1, 16, 16)
    walk = p.interpolate(z[0], z[-1], 6)
    assert walk.shape == (6, 1, 16, 16)
    np.testing.assert_allclose(walk[0], decoded[0], atol=1e-5)
    np.testing.assert_allclose(walk[-1], decoded[-1], atol=1e-5)
    with pytest.raises(GanlstmError, match="takes 8"):
        p.decode(np.zeros((2, 5)))
    refined = p.encode(frames, refine_steps=20)  # inversion steps from the encoder's latents: a closer reading
    assert refined.shape == (5, 8)
    assert ((p.decode(refined) - frames.reshape(decoded.shape)) ** 2).mean() < ((decoded - frames.reshape(decoded.shape)) ** 2).mean()
    with pytest.raises(GanlstmError, match="refine_steps=-1"):
        p.encode(frames, refine_steps=-1)


def test_encode_needs_a_gan_prior_checkpoint(tmp_path):
    from ganlstm.config import ForecasterConfig

    p = Predictor.from_checkpoint(trained_checkpoint(tmp_path, model=ForecasterConfig(model="convlstm", hidden=(4,))), device="cpu")
    assert p.predict(np.zeros((3, 16, 16), np.float32), 2).shape == (2, 16, 16)
    with pytest.raises(GanlstmError, match="need a GAN-prior checkpoint"):
        p.encode(np.zeros((3, 16, 16), np.float32))


def test_default_checkpoint_message(monkeypatch, tmp_path):
    monkeypatch.setattr(predictor_module, "DEFAULT_CHECKPOINT", tmp_path / "missing.pt")
    with pytest.raises(GanlstmError, match="pass --checkpoint"):
        Predictor.from_checkpoint()


def _cli(*args):
    with pytest.raises(SystemExit) as e:
        main(list(args))
    return e.value.code


def test_cli_predict_with_and_without_truth(setup, tmp_path, capsys):
    root, ckpt, p = setup
    seq = p.read(root / "data" / "seq_0002")  # 14 frames
    observed, future = tmp_path / "observed", tmp_path / "future"
    from ganlstm.data.frame_writer import write_frames

    write_frames(seq[:8], observed)
    write_frames(seq[8:], future, start_index=8)
    out = tmp_path / "pred"
    main(["predict", "--frames", str(observed), "--steps", "3", "--checkpoint", str(ckpt), "--out", str(out), "--device", "cpu"])
    # .ganlstm-output marks the folder as ganlstm's, so collection readers never take it for data
    assert sorted(f.name for f in out.iterdir()) == [".ganlstm-output", "frame_0008.png", "frame_0009.png", "frame_0010.png", "prediction.gif"]
    written = read_sequence(out, FrameOptions(scaling="fixed"))  # 8-bit values / 255, no stretch
    np.testing.assert_allclose(written, p.predict(p.read(observed), 3), atol=0.5 / 255 + 1e-6)
    assert Image.open(out / "prediction.gif").size == (128, 128)  # one panel, enlarged 8x
    assert "wrote 3 predicted frames" in capsys.readouterr().out

    out2 = tmp_path / "pred_truth"
    main(["predict", "--frames", str(observed), "--steps", "3", "--checkpoint", str(ckpt), "--out", str(out2),
          "--truth", str(future), "--format", "npy", "--amp", "no"])
    assert sorted(f.name for f in out2.iterdir()) == [".ganlstm-output", "frame_0008-0010.npy", "metrics.json", "prediction.gif"]
    metrics = json.loads((out2 / "metrics.json").read_text())
    assert metrics["horizon"] == [1, 2, 3]
    for name in ("mse", "mae", "psnr", "ssim", "sharpness"):
        assert len(metrics[name]) == 3 and name in metrics["mean"]
    gif = Image.open(out2 / "prediction.gif")
    assert gif.size[0] > 3 * gif.size[1] - 1  # three panels side by side: truth | prediction | |error|
    assert "vs --truth" in capsys.readouterr().out

    # Refusals: a non-empty output directory, the input's directory, too short a truth.
    assert _cli("predict", "--frames", str(observed), "--steps", "3", "--checkpoint", str(ckpt), "--out", str(out)) == 2
    assert "not an empty directory" in capsys.readouterr().err
    assert _cli("predict", "--frames", str(observed), "--steps", "3", "--checkpoint", str(ckpt), "--out", str(observed)) == 2
    assert "is the input's directory" in capsys.readouterr().err
    before = (out / "frame_0008.png").read_bytes()
    main(["predict", "--frames", str(observed), "--steps", "3", "--checkpoint", str(ckpt), "--out", str(out), "--overwrite",
          "--format", "png16"])
    assert (out / "frame_0008.png").read_bytes() != before  # replaced (16-bit now)
    assert _cli("predict", "--frames", str(observed), "--steps", "9", "--checkpoint", str(ckpt), "--out", str(tmp_path / "x"),
                "--truth", str(future)) == 2
    assert "has 6 frames" in capsys.readouterr().err
    # The reader's memory guards: the checkpoint's by default, --max-pixels / --max-frames to change them.
    assert _cli("predict", "--frames", str(observed), "--steps", "1", "--checkpoint", str(ckpt), "--out", str(tmp_path / "y"),
                "--max-pixels", "255") == 2
    assert "256 pixels per frame, above max_pixels=255" in capsys.readouterr().err
    assert _cli("predict", "--frames", str(observed), "--steps", "1", "--checkpoint", str(ckpt), "--out", str(tmp_path / "y"),
                "--max-frames", "7") == 2
    assert "more than max_frames=7 frames" in capsys.readouterr().err
    main(["predict", "--frames", str(observed), "--steps", "1", "--checkpoint", str(ckpt), "--out", str(tmp_path / "y"), "--max-frames", "8"])


def test_cli_predict_anchor_decay_overrides_the_checkpoint(setup, tmp_path):
    root, ckpt, p = setup
    observed = root / "data" / "seq_0002"
    outs = {}
    for decay in ("0", "0.8"):
        out = tmp_path / f"pred_{decay}"
        main(["predict", "--frames", str(observed), "--steps", "3", "--checkpoint", str(ckpt), "--out", str(out), "--format", "npy",
              "--anchor-decay", decay])
        outs[decay] = np.load(out / "frame_0014-0016.npy")
    expected = Predictor.from_checkpoint(ckpt, device="cpu", anchor_decay=0.8).predict(p.read(observed), 3)
    np.testing.assert_allclose(outs["0.8"], expected, atol=1e-6)
    assert np.abs(outs["0.8"] - outs["0"]).max() > 1e-3


def test_export_writes_a_small_prediction_only_copy(tmp_path, capsys):
    from forecast_helpers import gan_checkpoint, run_config, simulated, train_config

    from ganlstm.train.forecaster import train_forecaster

    src = trained_checkpoint(tmp_path / "a", ema=0.9)  # an --ema run: the export must keep the averaged weights
    out = tmp_path / "small.pt"
    main(["export", "--checkpoint", str(src), "--out", str(out)])
    assert "wrote" in capsys.readouterr().out
    raw = torch.load(out, weights_only=True)
    assert set(raw["models"]) == {"forecaster"} and raw["optimizers"] == {} and raw["rng"] == {}
    full = torch.load(src, weights_only=True)
    assert raw["extra"]["split"] == full["extra"]["split"]  # evaluate --split test still works
    kept = raw["models"]["forecaster"]
    assert all(torch.equal(v, full["models"]["forecaster_ema"][k]) for k, v in kept.items())
    assert not all(torch.equal(v, full["models"]["forecaster"][k]) for k, v in kept.items())  # not the raw weights
    assert out.stat().st_size < 0.6 * src.stat().st_size
    frames = np.random.default_rng(0).random((4, 16, 16), dtype=np.float32)
    np.testing.assert_array_equal(Predictor.from_checkpoint(out, device="cpu").predict(frames, 3),
                                  Predictor.from_checkpoint(src, device="cpu").predict(frames, 3))
    # Refusals: an existing --out, and resuming from the export (it has no optimiser state or RNG).
    assert _cli("export", "--checkpoint", str(src), "--out", str(out)) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    with pytest.raises(GanlstmError, match="prediction-only export"):
        cfg = train_config(simulated(tmp_path / "data"), gan_checkpoint(tmp_path / "gan.pt"), ema=0.9)
        train_forecaster(cfg, run_config(tmp_path / "runs", max_steps=4), resume=str(out))
