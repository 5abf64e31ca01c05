"""Stage one for small data: the encoder beside G, adaptive augmentation, --init with FreezeD, the failure detector, --val-every."""
from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from ganlstm import GanlstmError
from ganlstm.checkpoint import load_checkpoint
from ganlstm.cli import main
from ganlstm.config import FrameOptions, GanConfig, GanTrainConfig, RunConfig
from ganlstm.models.augment import ADA_INTERVAL, AdaptiveAugment
from ganlstm.train import gan_health
from ganlstm.train.gan import train_gan
from ganlstm.train.gan_health import GanHealth, diversity_ratio, read_health
from test_train_gan import cheap_proxy, data_dir  # noqa: F401 - the same tiny blob collection and cheap projection proxy

TINY = GanConfig(image_size=16, channels=1, nz=16, ngf=4, ndf=4, latent_grid=4, encoder=8)


def _cfgs(data_dir: Path, tmp_path: Path, model: GanConfig = TINY, run: dict | None = None, **train) -> tuple[GanTrainConfig, RunConfig]:
    cfg = GanTrainConfig(model=model, data=FrameOptions(size=16), data_path=str(data_dir), val_fraction=0.2, test_fraction=0.2,
                         **({"recon_weight": 1.0} | train))
    defaults = dict(out=str(tmp_path / "runs"), batch_size=8, seed=3, device="cpu", progress=False, log_every=1, max_steps=6)
    return cfg, RunConfig(**(defaults | (run or {})))


def _rows(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def test_encoder_trains_beside_g_and_is_checkpointed(data_dir, tmp_path):
    run_dir = train_gan(*_cfgs(data_dir, tmp_path, run={"max_steps": 12}))
    ckpt = load_checkpoint(run_dir / "last.pt", kind="gan")
    assert "E" in ckpt["models"]
    log = _rows(run_dir / "log.csv")
    assert float(log[-1]["recon"]) < float(log[0]["recon"])  # G(E(x)) gets closer to x
    metrics = _rows(run_dir / "metrics.csv")
    assert {"reader_ssim", "reader_mse", "d_accuracy", "diversity"} <= set(metrics[-1])


def test_recon_weight_without_an_encoder_is_refused(data_dir, tmp_path):
    with pytest.raises(GanlstmError, match="--encoder"):
        train_gan(*_cfgs(data_dir, tmp_path, model=replace(TINY, encoder=0)))


def test_reader_of_stage_two_starts_from_stage_one_encoder(data_dir, tmp_path):
    from ganlstm.config import ForecasterConfig
    from ganlstm.models.base import build_forecaster

    run_dir = train_gan(*_cfgs(data_dir, tmp_path))
    E = load_checkpoint(run_dir / "last.pt", kind="gan")["models"]["E"]
    model = build_forecaster(ForecasterConfig(model="gan_lstm", image_size=16, channels=1, hidden=(8, 8), gan=TINY))
    assert model.load_reader(E)
    assert torch.equal(model.read.net[-1].weight, E["read.net.3.weight"])
    wide = build_forecaster(ForecasterConfig(model="gan_lstm", image_size=16, channels=1, hidden=(12, 12), gan=TINY))
    before = wide.read.net[-1].weight.clone()
    assert not wide.load_reader(E) and torch.equal(wide.read.net[-1].weight, before)  # another width: left untouched


def test_ada_probability_rises_when_d_is_confident_and_resumes():
    ada = AdaptiveAugment(0.6)
    for _ in range(ADA_INTERVAL * 3):
        ada.observe(torch.full((32,), 5.0))  # D sure every real frame is real: r_t = 1 > 0.6
    p = float(ada.p)
    assert p > 0
    for _ in range(ADA_INTERVAL):
        ada.observe(torch.full((32,), -5.0))  # r_t = -1 < 0.6
    assert float(ada.p) < p
    again = AdaptiveAugment(0.6)
    again.load_state_dict(ada.state_dict())
    assert float(again.p) == float(ada.p)
    x = torch.rand(4, 1, 16, 16) * 2 - 1
    assert torch.equal(AdaptiveAugment(0.6)(x), x)  # p = 0: the identity
    ada.p.fill_(1.0)
    assert not torch.equal(ada(x), x) and ada(x).shape == x.shape


def test_ada_run_logs_p_and_resume_continues_it(data_dir, tmp_path):
    cfg, run = _cfgs(data_dir, tmp_path, ada_target=0.6, run={"max_steps": 8})
    run_dir = train_gan(cfg, run)
    p = load_checkpoint(run_dir / "last.pt", kind="gan")["models"]["ada"]["p"]
    assert "ada_p" in _rows(run_dir / "log.csv")[-1]
    train_gan(cfg, replace(run, max_steps=12), resume=str(run_dir))
    steps = load_checkpoint(run_dir / "last.pt", kind="gan")["models"]["ada"]["steps"]
    assert int(steps) == 12 and p.dim() == 0


def test_ada_and_diffaugment_together_are_refused(data_dir, tmp_path):
    with pytest.raises(GanlstmError, match="one of them"):
        train_gan(*_cfgs(data_dir, tmp_path, ada_target=0.6, diffaug="translation"))


def test_init_fine_tunes_with_frozen_discriminator_blocks(data_dir, tmp_path):
    prior = train_gan(*_cfgs(data_dir, tmp_path))
    src = load_checkpoint(prior / "last.pt", kind="gan")["models"]["D"]
    cfg, run = _cfgs(data_dir, tmp_path, init=str(prior / "last.pt"), freeze_d=1, model=replace(TINY, nz=32))
    tuned = train_gan(cfg, run)
    ckpt = load_checkpoint(tuned / "last.pt", kind="gan")
    assert ckpt["config"]["train"]["model"]["nz"] == TINY.nz  # the architecture comes from --init, not from flags
    d = ckpt["models"]["D"]
    assert torch.equal(d["net.0.weight"], src["net.0.weight"])  # FreezeD: the first block did not move
    assert not torch.equal(d["net.2.weight"], src["net.2.weight"])  # the rest fine-tuned


def test_init_with_another_frame_size_is_refused(data_dir, tmp_path):
    prior = train_gan(*_cfgs(data_dir, tmp_path))
    cfg, run = _cfgs(data_dir, tmp_path, init=str(prior / "last.pt"), model=replace(TINY, image_size=32))
    with pytest.raises(GanlstmError, match="--size 16"):
        train_gan(cfg, run)


def test_collapse_detector_fires_on_a_run_built_to_collapse(data_dir, tmp_path, monkeypatch, capsys):
    from ganlstm.models import dcgan

    monkeypatch.setattr(gan_health, "WARMUP_STEPS", 0)
    # Built to collapse: G's latent is multiplied by 0, so every latent draws the same frame.
    forward = dcgan.Generator.forward
    monkeypatch.setattr(dcgan.Generator, "forward", lambda self, z: forward(self, 0 * z))
    cfg, run = _cfgs(data_dir, tmp_path, run={"max_steps": 12, "val_every": 6})
    run_dir = train_gan(cfg, run)
    notes = read_health(run_dir)
    assert len(notes) == 2 and all("collapsed" in n for n in notes)  # both validations recorded it ...
    assert capsys.readouterr().err.count("collapsed") == 1  # ... and it was said once
    assert float(_rows(run_dir / "metrics.csv")[-1]["diversity"]) == 0.0


def test_no_diagnosis_before_the_warm_up(data_dir, tmp_path):
    # An untrained DCGAN draws near-constant frames by design (N(0, 0.02) weights): that is not a collapse.
    run_dir = train_gan(*_cfgs(data_dir, tmp_path, run={"max_steps": 12, "val_every": 6}))
    assert float(_rows(run_dir / "metrics.csv")[-1]["diversity"]) < gan_health.COLLAPSE_RATIO
    assert read_health(run_dir) == []


def _observe(health: GanHealth, real_logits, fake_logits, g_loss) -> None:
    health.observe_d(real_logits, fake_logits)
    health.observe_g(g_loss)


def test_discriminator_win_is_diagnosed(tmp_path):
    health = GanHealth(torch.device("cpu"))
    for _ in range(gan_health.MIN_WINDOW - 1):
        _observe(health, torch.full((8,), 4.0), torch.full((8,), -4.0), torch.tensor(4.0))
    health.check(490, None, None, tmp_path)
    assert read_health(tmp_path) == []  # too short a window to judge
    for _ in range(gan_health.MIN_WINDOW):
        _observe(health, torch.full((8,), 4.0), torch.full((8,), -4.0), torch.tensor(4.0))
    out = health.check(500, None, None, tmp_path)
    assert out["d_accuracy"] == 1.0
    assert "discriminator wins" in read_health(tmp_path)[0] and "--ada-target" in read_health(tmp_path)[0]
    adaptive = GanHealth(torch.device("cpu"), reconstructs=True, adaptive=True)
    assert "--ada-target" not in adaptive.fix_d_wins and "--recon-weight" not in adaptive.fix_d_wins and "--init" in adaptive.fix_d_wins
    for _ in range(gan_health.MIN_WINDOW):
        _observe(health, torch.full((8,), 0.5), torch.full((8,), 0.5), torch.tensor(0.7))
    health.check(510, None, None, tmp_path)
    assert len(read_health(tmp_path)) == 1  # a balanced window adds nothing


def test_diversity_ratio():
    real = torch.rand(16, 1, 8, 8)
    assert diversity_ratio(real[:1].expand(16, -1, -1, -1), real) == 0.0
    assert diversity_ratio(real, real) == pytest.approx(1.0)


def test_val_every_bounds_validation(data_dir, tmp_path):
    cfg, run = _cfgs(data_dir, tmp_path, run={"max_steps": 10, "val_every": 4})
    run_dir = train_gan(cfg, run)
    assert [int(r["step"]) for r in _rows(run_dir / "metrics.csv")] == [4, 8, 10]


def test_cli_flags_reach_the_config(data_dir, tmp_path):
    with pytest.raises(SystemExit) as e:
        main(["train-gan", "--data", str(data_dir), "--size", "16", "--nz", "16", "--latent-grid", "4", "--ngf", "4", "--ndf", "4",
              "--encoder", "8", "--recon-weight", "0.5", "--ada-target", "0.6", "--max-steps", "3", "--batch-size", "8",
              "--val-every", "3", "--out", str(tmp_path / "runs"), "--device", "cpu"])
        raise SystemExit(0)
    assert e.value.code in (0, None)
    ckpt = load_checkpoint(next((tmp_path / "runs").glob("*-gan")) / "last.pt", kind="gan")
    t = ckpt["config"]["train"]
    assert (t["recon_weight"], t["ada_target"], t["model"]["encoder"], ckpt["config"]["run"]["val_every"]) == (0.5, 0.6, 8, 3)


def test_train_encoder_takes_the_encoder_width_when_hidden_is_not_given(data_dir, tmp_path, capsys):
    run_dir = train_gan(*_cfgs(data_dir, tmp_path))
    main(["train-encoder", "--gan", str(run_dir), "--data", str(data_dir), "--context", "3", "--horizon", "2", "--max-steps", "2",
          "--batch-size", "2", "--out", str(tmp_path / "s2"), "--device", "cpu", "--val-fraction", "0.2", "--test-fraction", "0.2"])
    ckpt = load_checkpoint(next((tmp_path / "s2").glob("*-gan_lstm")) / "last.pt", kind="forecaster")
    assert tuple(ckpt["config"]["model"]["hidden"]) == (8, 8)  # TINY's encoder width, not the default 64
    assert "--hidden 8,8" in capsys.readouterr().err
