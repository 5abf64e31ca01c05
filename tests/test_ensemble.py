"""Sampled futures (`predict --samples N`, `Predictor.predict(samples=N)`) and their calibration scores."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from forecast_helpers import GAN, trained_checkpoint

from ganlstm import GanlstmError, Predictor
from ganlstm.calibration import CalibrationAccumulator, calibrate, crps_ensemble
from ganlstm.cli import main
from ganlstm.config import ForecasterConfig
from ganlstm.ensemble import ensemble_stats, sample_futures


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("ensemble")
    ckpt = trained_checkpoint(root, model=ForecasterConfig(model="gan_lstm", image_size=16, channels=1, hidden=(8, 8),
                                                           feedback="pixels", gan=GAN))
    p = Predictor.from_checkpoint(ckpt, device="cpu")
    seq = p.read(root / "data" / "seq_0001")  # (14, 1, 16, 16)
    return root, ckpt, p, seq


def test_samples_differ_and_their_mean_has_the_forecast_shape(setup):
    _, _, p, seq = setup
    forecast = p.predict(seq[:6], 5)  # (5, 1, 16, 16)
    members = p.predict(seq[:6], 5, samples=4, spread=0.5)
    assert members.shape == (4, *forecast.shape) and members.dtype == np.float32
    assert members.mean(0).shape == forecast.shape
    assert np.abs(members[0] - members[1]).max() > 1e-5  # different futures
    assert np.all((members >= 0) & (members <= 1))
    np.testing.assert_array_equal(members, p.predict(seq[:6], 5, samples=4, spread=0.5))  # the seed repeats the draw
    assert np.abs(members - p.predict(seq[:6], 5, samples=4, spread=0.5, seed=1)).max() > 1e-5
    # sampling leaves the model deterministic afterwards
    np.testing.assert_array_equal(p.predict(seq[:6], 5), forecast)
    assert p.model.latent_noise == 0.0 and p.model.noise_generator is None


def test_one_sample_is_the_forecast_and_has_zero_spread(setup):
    _, _, p, seq = setup
    one = p.predict(seq[:6], 4, samples=1, spread=0.5)
    np.testing.assert_array_equal(one[0], p.predict(seq[:6], 4))
    _, spread = ensemble_stats(torch.from_numpy(one))
    assert float(spread.abs().max()) == 0.0


def test_batched_members_match_one_sequence_at_a_time(setup):
    _, _, p, seq = setup
    x = torch.from_numpy(np.stack([seq[:6], seq[2:8]]))  # (2, 6, 1, 16, 16)
    both = sample_futures(p.model, x, 3, 3, spread=0.3, seed=5)
    assert both.shape == (3, 2, 3, 1, 16, 16)
    assert torch.isfinite(both).all()


def test_pixel_models_and_bad_values_are_refused(setup, tmp_path):
    _, _, p, seq = setup
    with pytest.raises(GanlstmError, match="samples=0 is invalid"):
        p.predict(seq[:6], 3, samples=0)
    with pytest.raises(GanlstmError, match="spread=-1 is invalid"):
        p.predict(seq[:6], 3, samples=2, spread=-1)
    conv = Predictor.from_checkpoint(trained_checkpoint(tmp_path, model=ForecasterConfig(model="convlstm", hidden=(4,))), device="cpu")
    with pytest.raises(GanlstmError, match="need a GAN-prior checkpoint.*'convlstm'"):
        conv.predict(seq[:6], 3, samples=3)
    assert conv.predict(seq[:6], 3, samples=1).shape == (1, 3, 1, 16, 16)  # one sample is just the forecast


def test_crps_matches_its_definition():
    g = torch.Generator().manual_seed(0)
    members, truth = torch.rand(5, 3, 4, generator=g), torch.rand(3, 4, generator=g)
    brute = (members - truth).abs().mean(0) - (members[:, None] - members[None]).abs().mean((0, 1)) / 2
    torch.testing.assert_close(crps_ensemble(members, truth), brute.float(), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(crps_ensemble(members[:1], truth), (members[0] - truth).abs())  # one member: the absolute error
    assert float(crps_ensemble(truth.expand(4, 3, 4), truth).abs().max()) < 1e-7  # a perfect ensemble scores 0


def test_spread_skill_is_one_for_a_calibrated_ensemble_and_small_for_an_overconfident_one():
    g = torch.Generator().manual_seed(1)
    centre = torch.rand(2, 3, 1, 32, 32, generator=g)  # (B, K, C, H, W)
    truth = centre + 0.1 * torch.randn(centre.shape, generator=g)
    calibrated = centre + 0.1 * torch.randn((8, *centre.shape), generator=g)  # truth and members from one distribution
    per = calibrate(calibrated, truth)
    assert len(per["spread_skill"]) == 3
    assert all(0.9 < r < 1.1 for r in per["spread_skill"])
    tight = centre + 0.01 * torch.randn((8, *centre.shape), generator=g)
    assert max(calibrate(tight, truth)["spread_skill"]) < 0.2
    acc = CalibrationAccumulator()
    acc.update(calibrated, truth)
    acc.update(calibrated, truth)  # the same batch twice: same table
    assert acc.per_horizon()["crps"] == pytest.approx(per["crps"])
    assert per["crps"][0] < per["mae_pixel"][0]  # a calibrated ensemble beats its own mean as a point forecast


def test_cli_predict_samples_writes_members_spread_and_calibration(setup, tmp_path, capsys):
    root, ckpt, p, seq = setup
    from ganlstm.data.frame_writer import write_frames

    observed, future = tmp_path / "observed", tmp_path / "future"
    write_frames(seq[:8], observed)
    write_frames(seq[8:], future, start_index=8)
    out = tmp_path / "pred"
    main_args = ["predict", "--frames", str(observed), "--steps", "4", "--checkpoint", str(ckpt), "--out", str(out),
                 "--device", "cpu", "--truth", str(future), "--samples", "3", "--spread", "0.4"]
    main(main_args)
    names = {f.name for f in out.iterdir()}
    assert {"spread.npy", "spread.gif", "spread.png", "ensemble.json", "samples", "metrics.json", "frame_0008.png"} <= names
    assert sorted(f.name for f in (out / "samples").iterdir()) == ["sample_000", "sample_001", "sample_002"]
    assert len(list((out / "samples" / "sample_000").glob("frame_*.png"))) == 4
    spread = np.load(out / "spread.npy")
    assert spread.shape == (4, 1, 16, 16) and spread.max() > 0
    record = json.loads((out / "ensemble.json").read_text())
    assert record["members"] == 3 and record["latent_spread"] == 0.4
    assert len(record["calibration"]["spread_skill"]) == 4 and all(np.isfinite(record["calibration"]["crps"]))
    text = capsys.readouterr().out
    assert "the mean of 3 sampled futures" in text and "spread-skill" in text
    with pytest.raises(SystemExit) as e:  # nothing is overwritten without --overwrite
        main(main_args)
    assert e.value.code == 2


def test_cli_predict_samples_refuses_a_pixel_model(tmp_path, capsys):
    ckpt = trained_checkpoint(tmp_path, model=ForecasterConfig(model="convlstm", hidden=(4,)))
    with pytest.raises(SystemExit) as e:
        main(["predict", "--frames", str(tmp_path / "data" / "seq_0000"), "--steps", "2", "--checkpoint", str(ckpt),
              "--out", str(tmp_path / "p"), "--samples", "2", "--device", "cpu"])
    assert e.value.code == 2
    assert "need a GAN-prior checkpoint" in capsys.readouterr().err


def test_the_recorded_spread_is_the_default_and_the_choice_rule(setup, tmp_path):
    import shutil

    from ganlstm.calibration import calibrate_spread, choose_spread
    from ganlstm.ensemble import DEFAULT_SPREAD, model_spread
    from ganlstm.train.prediction_settings import set_sample_spread

    root, ckpt, p, seq = setup
    assert model_spread(p.model) == DEFAULT_SPREAD  # nothing recorded
    copy = tmp_path / "ckpt.pt"
    shutil.copy(ckpt, copy)
    set_sample_spread(copy, 0.35)
    q = Predictor.from_checkpoint(copy, device="cpu")
    assert model_spread(q.model) == 0.35
    np.testing.assert_array_equal(q.predict(seq[:6], 3, samples=3), q.predict(seq[:6], 3, samples=3, spread=0.35))
    with pytest.raises(GanlstmError, match="spread=11"):
        set_sample_spread(copy, 11)
    # the sharpest calibrated spread: in-band rows compete on CRPS, else the ratio nearest 1
    assert choose_spread([(0.3, 0.5, 0.01), (0.7, 0.9, 0.03), (1.0, 1.1, 0.02)]) == 1.0
    assert choose_spread([(0.3, 0.5, 0.01), (0.7, 0.7, 0.03), (1.0, 1.6, 0.02)]) == 0.7
    x = torch.from_numpy(np.stack([seq[:6], seq[4:10]]))
    chosen, rows = calibrate_spread(p.model, x, torch.from_numpy(np.stack([seq[6:9], seq[10:13]])), spreads=(0.1, 1.0), members=3)
    assert chosen in (0.1, 1.0) and [r["spread"] for r in rows] == [0.1, 1.0]
    assert rows[1]["spread_skill"] > rows[0]["spread_skill"]  # more nudge, more spread
