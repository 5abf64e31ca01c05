"""The motion scale: the GAN-LSTM's predicted latent change from the last frame's reading, scaled in prediction."""
from __future__ import annotations

import dataclasses

import pytest
import torch
from forecast_helpers import assert_recorded, generator, model_config, trained_checkpoint

from ganlstm import GanlstmError, Predictor
from ganlstm.config import ForecasterConfig
from ganlstm.models.base import build_forecaster
from ganlstm.rollout import iter_predict, predict, rollout_outputs
from ganlstm.train.forecaster import load_forecaster


def _moving(scale: float = 1.0, decay: float = 0.0):
    """A 16 px pixel-feedback GAN-LSTM whose head is not zero, so that its latents move."""
    torch.manual_seed(0)
    model = build_forecaster(dataclasses.replace(model_config("pixels"), motion_scale=scale, anchor_decay=decay))
    model.load_generator(generator()).eval()
    with torch.no_grad():
        model.head.net[-1].weight.normal_(0, 0.5)
    return model


def _context() -> torch.Tensor:
    return torch.rand(3, 4, 1, 16, 16, generator=torch.Generator().manual_seed(1))  # (B, J, C, H, W) in [0, 1]


def test_frames_are_drawn_from_the_scaled_latent_change():
    full, half = _moving(1.0), _moving(0.5)
    half.load_state_dict(full.state_dict())
    context = _context()
    with torch.inference_mode():
        x = context * 2 - 1
        z = rollout_outputs(full, x, 5)  # (3, 5, nz): the trajectory is the model's as trained
        origin = full.encode(x[:, -1])[:, None]  # (3, 1, nz)
        want = (full.generator((origin + 0.5 * (z - origin)).flatten(0, 1)).unflatten(0, (3, 5)) + 1) / 2
    got = predict(half, context, 5)  # (3, 5, 1, 16, 16)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    assert (got - predict(full, context, 5)).abs().max() > 1e-4  # it changed something (the random G draws faint frames)
    # streamed in chunks, the same frames
    torch.testing.assert_close(torch.cat(list(iter_predict(half, context, 5, chunk=2)), dim=1), got, atol=1e-6, rtol=0)


def test_scale_zero_with_decay_one_is_copy_last_frame_and_with_less_decay_relaxes_to_the_reading():
    context = _context()
    persistence = predict(_moving(0.0, 1.0), context, 4)
    torch.testing.assert_close(persistence, context[:, -1:].expand(-1, 4, -1, -1, -1), atol=1e-5, rtol=0)
    relaxed = predict(_moving(0.0, 0.5), context, 4)
    model = _moving()
    with torch.inference_mode():
        drawn = (model.generator(model.encode(context[:, -1] * 2 - 1)) + 1) / 2  # (3, 1, 16, 16)
    residual = context[:, -1] - drawn
    for k in range(4):
        torch.testing.assert_close(relaxed[:, k], (drawn + 0.5**k * residual).clamp(0, 1), atol=1e-5, rtol=0)


def test_motion_scale_is_checked_and_gan_lstm_only(tmp_path):
    for bad in (-0.1, 1.5):
        with pytest.raises(GanlstmError, match=r"motion_scale=.* must be in \[0, 1\]"):
            _moving(bad)
    ckpt = trained_checkpoint(tmp_path, model=ForecasterConfig(model="convlstm", hidden=(4,)))
    with pytest.raises(GanlstmError, match="applies to gan_lstm checkpoints only"):
        load_forecaster(ckpt, "cpu", motion_scale=0.5)


def test_motion_scale_is_recorded_in_a_checkpoint_and_can_be_overridden(tmp_path):
    from ganlstm.train.prediction_settings import set_motion_scale, set_prediction_settings

    ckpt = trained_checkpoint(tmp_path)
    weights = torch.load(ckpt, weights_only=True)["models"]
    assert load_forecaster(ckpt, "cpu")[0].motion_scale == 1
    set_motion_scale(ckpt, 0.25)
    assert_recorded(ckpt, weights, "motion_scale", 0.25)
    assert Predictor.from_checkpoint(ckpt, device="cpu").model.motion_scale == 0.25
    assert Predictor.from_checkpoint(ckpt, device="cpu", motion_scale=1).model.cfg.motion_scale == 1
    set_prediction_settings(ckpt, anchor_decay=0.8)  # the other setting is kept
    model = load_forecaster(ckpt, "cpu")[0]
    assert (model.anchor_decay, model.motion_scale) == (0.8, 0.25)
    with pytest.raises(GanlstmError, match="must be in"):
        set_motion_scale(ckpt, 2)


# ---------------------------------------------------------------- the context check


def test_context_check_predicts_a_static_sequence_as_persistence_where_the_recorded_settings_do_not():
    """A random G cannot draw the frames: on a static context copy-last-frame is exact, and the check finds it."""
    from ganlstm.models import context_check

    model = _moving()
    frame = torch.rand(2, 1, 1, 16, 16, generator=torch.Generator().manual_seed(5))
    context = frame.expand(-1, 8, -1, -1, -1).contiguous()  # (2, 8, 1, 16, 16): nothing moves
    recorded = predict(model, context, 3)
    assert (recorded - frame).abs().mean() > 0.05  # the model's own frames are far off
    model.set_context_check(True)
    checked = predict(model, context, 3)
    torch.testing.assert_close(checked, frame.expand(-1, 3, -1, -1, -1), atol=1e-5, rtol=0)
    decay, scale, scores, _ = context_check.choose_on_context(model, context * 2 - 1, (0.0, 1.0))
    assert decay.tolist() == [1.0, 1.0] and scale.tolist() == [0.0, 0.0] and scores.shape[0] == 2


def test_context_check_keeps_the_recorded_pair_unless_another_wins_by_the_margin(monkeypatch):
    from ganlstm.models import context_check

    model = _moving(0.5, 0.8)
    frame = torch.rand(2, 1, 1, 16, 16, generator=torch.Generator().manual_seed(5))
    context = frame.expand(-1, 8, -1, -1, -1).contiguous() * 2 - 1
    monkeypatch.setattr(context_check, "MARGIN", 1e9)
    decay, scale, scores, _ = context_check.choose_on_context(model, context, (0.8, 0.5))
    assert decay.tolist() == pytest.approx([0.8, 0.8]) and scale.tolist() == [0.5, 0.5]
    decay, scale, _, _ = context_check.choose_on_context(model, context, (0.7, 0.5))  # any recorded pair
    assert decay.tolist() == pytest.approx([0.7, 0.7]) and scores.shape[1] == 6  # the recorded pair and the 5 fallbacks
    monkeypatch.setattr(context_check, "MARGIN", 0.0)
    decay, scale, scores, _ = context_check.choose_on_context(model, context, (0.8, 0.5))
    assert decay.tolist() == [1.0, 1.0] and scale.tolist() == [0.0, 0.0]  # static: copy-last-frame wins


def test_context_check_needs_four_context_frames_else_keeps_the_recorded_settings():
    model = _moving()
    context = _context()[:, :3]  # (3, 3, 1, 16, 16)
    plain = predict(model, context, 2)
    model.set_context_check(True)
    torch.testing.assert_close(predict(model, context, 2), plain, atol=1e-6, rtol=0)


def test_context_check_is_recorded_and_predict_takes_the_flag(tmp_path):
    from ganlstm.cli import main
    from ganlstm.train.prediction_settings import set_prediction_settings

    ckpt = trained_checkpoint(tmp_path)
    assert load_forecaster(ckpt, "cpu")[0].correction(_context() * 2 - 1) is None  # nothing on: no extra decode
    set_prediction_settings(ckpt, context_check=True)
    assert torch.load(ckpt, weights_only=True)["config"]["model"]["context_check"] is True
    assert Predictor.from_checkpoint(ckpt, device="cpu").model.context_check
    assert not Predictor.from_checkpoint(ckpt, device="cpu", context_check=False).model.context_check
    frames = tmp_path / "frames.npy"
    import numpy as np

    np.save(frames, np.random.default_rng(0).random((6, 16, 16), dtype=np.float32))
    for flag in ("--context-check", "--no-context-check"):
        out = tmp_path / f"pred{flag}"
        main(["predict", "--frames", str(frames), "--steps", "2", "--checkpoint", str(ckpt), "--out", str(out), flag, "--device", "cpu"])
        assert len(list(out.glob("*.png"))) == 2


def test_predict_samples_says_when_a_zero_motion_scale_makes_every_member_the_same(tmp_path, capsys):
    import numpy as np

    from ganlstm.cli import main
    from ganlstm.train.prediction_settings import set_motion_scale

    ckpt = trained_checkpoint(tmp_path)
    set_motion_scale(ckpt, 0.0)
    frames = tmp_path / "frames.npy"
    np.save(frames, np.random.default_rng(0).random((6, 16, 16), dtype=np.float32))
    main(["predict", "--frames", str(frames), "--steps", "2", "--checkpoint", str(ckpt), "--out", str(tmp_path / "p"),
          "--samples", "3", "--device", "cpu"])
    assert "every sampled future is the same" in capsys.readouterr().err


def test_fit_report_says_when_no_spread_was_calibrated():
    from ganlstm.report import _markdown

    facts = {"data": "d", "prior": {"projection_ssim": 0.9}, "data_plan": {}, "budget_minutes": {}, "steps": {}, "seconds": {},
             "anchor": {"decay": 0.9, "motion_scale": 0.0, "val_score": {"0.9/0": 1.7, "1/0": 2.0}}, "warnings": [],
             "spread": {"spread": 0.7, "val": [{"spread": s, "spread_skill": 0.3, "crps": 0.01} for s in (0.3, 0.7)]}}
    text = _markdown(facts, "table")
    assert "no spread reached a validation spread-skill in [0.8, 1.2]" in text
    assert "motion scale 0" in text and "did not help on validation" in text
    facts["spread"]["val"][1]["spread_skill"] = 0.9
    assert "the sharpest whose validation spread-skill lies in [0.8, 1.2]" in _markdown(facts, "table")


@pytest.mark.parametrize("feedback", ["pixels", "latent"])
def test_context_check_that_keeps_the_recorded_pair_predicts_exactly_as_without_it(feedback, monkeypatch):
    """The prediction continues the check's own warm-up on the first J - 5 frames: it must be the plain warm-up's."""
    from ganlstm.models import context_check

    torch.manual_seed(0)
    model = build_forecaster(dataclasses.replace(model_config(feedback), anchor_decay=0.5)).load_generator(generator()).eval()
    with torch.no_grad():
        model.head.net[-1].weight.normal_(0, 0.5)
    context = _context().repeat(1, 3, 1, 1, 1)  # (3, 12, 1, 16, 16)
    plain = predict(model, context, 6)
    monkeypatch.setattr(context_check, "MARGIN", 1e9)  # never leave the recorded pair
    model.set_context_check(True)
    torch.testing.assert_close(predict(model, context, 6), plain, atol=1e-6, rtol=0)
    torch.testing.assert_close(torch.cat(list(iter_predict(model, context, 6, chunk=4)), dim=1), plain, atol=1e-6, rtol=0)


def test_an_ensemble_is_checked_without_its_noise_and_draws_the_unchecked_members(monkeypatch):
    """Every member of a sequence shares one check, made without the members' latent noise, and their noise is unchanged."""
    from ganlstm.ensemble import sample_futures
    from ganlstm.models import context_check

    model = _moving(1.0, 0.5)
    context = _context().repeat(1, 3, 1, 1, 1)  # (3, 12, 1, 16, 16)
    plain = sample_futures(model, context, 4, 5, spread=0.7, seed=3)  # (5, 3, 4, 1, 16, 16)
    monkeypatch.setattr(context_check, "MARGIN", 1e9)
    model.set_context_check(True)
    torch.testing.assert_close(sample_futures(model, context, 4, 5, spread=0.7, seed=3), plain, atol=1e-6, rtol=0)
    seen = []
    real = context_check.choose_on_context
    monkeypatch.setattr("ganlstm.models.gan_lstm.choose_on_context", lambda *a: seen.append(real(*a)) or seen[-1])
    monkeypatch.setattr(context_check, "MARGIN", 0.0)
    sample_futures(model, context, 4, 5, spread=0.7, seed=3)
    decay = seen[0][0].view(5, 3)  # member-major rows: every member of a sequence decided alike
    assert (decay == decay[:1]).all() and seen[0][3] is None
