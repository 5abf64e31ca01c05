"""Stage-one training: one step moves G and D, EMA, checkpoints, bit-identical resume, the four CLI commands."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganlstm import GanlstmError
from ganlstm.checkpoint import load_checkpoint, save_checkpoint
from ganlstm.cli import main
from ganlstm.config import FrameOptions, GanConfig, GanTrainConfig, RunConfig
from ganlstm.models.dcgan import load_generator, sample_latents
from ganlstm.train import gan as gan_train
from ganlstm.train.distributed import Dist
from ganlstm.train.gan import GanTask, train_gan
from ganlstm.train.gan_evaluation import evaluate_gan

TINY = GanConfig(image_size=16, channels=1, nz=8, ngf=4, ndf=4, latent_grid=1)


@pytest.fixture(autouse=True)
def cheap_proxy(monkeypatch):
    # The per-epoch projection score is exercised, just with fewer Adam steps than in real runs.
    monkeypatch.setattr(gan_train, "PROXY_STEPS", 5)


@pytest.fixture
def data_dir(tmp_path) -> Path:
    """Five 8-frame sequences of a drifting Gaussian blob, 16x16, as .npy files (3 train, 1 val, 1 test)."""
    d = tmp_path / "data"
    d.mkdir()
    yy, xx = np.mgrid[0:16, 0:16]
    rng = np.random.default_rng(0)
    for s in range(5):
        x0, y0, vx = rng.uniform(4, 12), rng.uniform(4, 12), rng.uniform(-0.5, 0.5)
        seq = [np.exp(-((xx - x0 - vx * t) ** 2 + (yy - y0) ** 2) / 6.0) for t in range(8)]
        np.save(d / f"seq{s}.npy", np.stack(seq).astype(np.float32))  # (T, H, W)
    return d


def _cfgs(data_dir: Path, tmp_path: Path, **run) -> tuple[GanTrainConfig, RunConfig]:
    cfg = GanTrainConfig(model=TINY, data=FrameOptions(size=16), data_path=str(data_dir), val_fraction=0.2, test_fraction=0.2)
    defaults = dict(out=str(tmp_path / "runs"), batch_size=8, seed=3, device="cpu", progress=False, log_every=1)
    return cfg, RunConfig(**(defaults | run))


def _task(cfg: GanTrainConfig, run: RunConfig) -> GanTask:
    torch.manual_seed(0)
    return GanTask(cfg, run, torch.device("cpu"), Dist(), [], steps_per_epoch=3)


def _states(models: dict) -> dict:
    return {name: {k: v.clone() for k, v in m.state_dict().items()} for name, m in models.items()}


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_one_step_changes_G_and_D_and_ema_lags(data_dir, tmp_path):
    cfg, run = _cfgs(data_dir, tmp_path)
    task = _task(cfg, run)
    before = _states(task.models)
    losses = task.train_step(torch.rand(8, 1, 16, 16), step=0)
    assert {"d_loss", "g_loss", "d_real", "d_fake"} <= set(losses)
    assert all(torch.isfinite(v) for v in losses.values())
    after = _states(task.models)
    assert not _same(before["G"], after["G"]) and not _same(before["D"], after["D"])
    assert not _same(after["G_ema"], after["G"])  # the average lags behind G
    assert not _same(after["G_ema"], before["G_ema"])  # ... but does move
    assert not any(p.requires_grad for p in task.G_ema.parameters())


@pytest.mark.parametrize("opts", [
    dict(loss="ns", r1=1.0, diffaug="", ema=0.0, spectral_norm=False),
    dict(loss="hinge", r1=0.5, diffaug="cutout", ada_target=0.0, ema=0.99, spectral_norm=True),
])
def test_every_stabiliser_combination_trains(data_dir, tmp_path, opts):
    import dataclasses

    cfg, run = _cfgs(data_dir, tmp_path)
    model = dataclasses.replace(TINY, spectral_norm=opts.pop("spectral_norm"))
    task = _task(dataclasses.replace(cfg, model=model, **opts), run)
    losses = task.train_step(torch.rand(8, 1, 16, 16), step=0)
    assert all(torch.isfinite(v) for v in losses.values())
    assert ("r1" in losses) == (task.cfg.r1 > 0)
    if task.cfg.ema == 0:  # EMA off: the decoder is exactly G
        assert _same(task.G_ema.state_dict(), task.G_raw.state_dict())


def test_bad_stabiliser_settings_are_clear_errors(data_dir, tmp_path):
    import dataclasses

    cfg, run = _cfgs(data_dir, tmp_path)
    for bad, match in [(dict(loss="wgan"), "unknown GAN loss"), (dict(ema=1.0), "must be in"), (dict(r1=-1.0), "must be >= 0")]:
        with pytest.raises(GanlstmError, match=match):
            _task(dataclasses.replace(cfg, **bad), run)


def test_checkpoint_round_trip_gives_identical_samples(data_dir, tmp_path):
    cfg, run = _cfgs(data_dir, tmp_path)
    task = _task(cfg, run)
    for step in range(2):
        task.train_step(torch.rand(8, 1, 16, 16), step)
    path = save_checkpoint(tmp_path / "c.pt", kind="gan", config=task.config, models=task.models)
    z = sample_latents(6, TINY.nz, seed=1)
    with torch.no_grad():
        expected = task.G_ema.eval().render(z)
    assert torch.equal(load_generator(path).render(z), expected)


def test_resume_n_then_m_equals_n_plus_m(data_dir, tmp_path):
    # 3 train sequences x 8 frames / batch 8 = 3 steps per epoch: the resume happens mid-epoch
    # (after step 2, right after an end-of-run evaluation) and the run then crosses epoch boundaries.
    cfg, run = _cfgs(data_dir, tmp_path / "a", max_steps=2)
    first = train_gan(cfg, run)
    assert (first / "config.json").is_file() and (first / "samples" / "epoch_0000_step_0000002.png").is_file()
    _, run_more = _cfgs(data_dir, tmp_path / "a", max_steps=7)
    assert train_gan(cfg, run_more, resume="last") == first
    _, run_all = _cfgs(data_dir, tmp_path / "b", max_steps=7)
    whole = train_gan(cfg, run_all)
    a, b = load_checkpoint(first / "last.pt"), load_checkpoint(whole / "last.pt")
    assert a["step"] == b["step"] == 7
    for name in ("G", "G_ema", "D"):
        assert _same(a["models"][name], b["models"][name]), name
    assert (whole / "samples" / "epoch_0002.png").is_file() and (whole / "best.pt").is_file()
    metrics = (whole / "metrics.csv").read_text().splitlines()
    assert metrics[0].startswith("step,epoch,proj_ssim") and len(metrics) == 4  # epochs 1, 2 and the final step


def test_epoch_budget_writes_one_grid_and_score_per_epoch(data_dir, tmp_path):
    cfg, run = _cfgs(data_dir, tmp_path, epochs=2)
    run_dir = train_gan(cfg, run)
    assert sorted(p.name for p in (run_dir / "samples").iterdir()) == ["epoch_0001.png", "epoch_0002.png"]
    rows = (run_dir / "metrics.csv").read_text().splitlines()[1:]
    assert [r.split(",")[:2] for r in rows] == [["3", "1"], ["6", "2"]]
    ckpt = load_checkpoint(run_dir / "last.pt")
    assert (ckpt["step"], ckpt["epoch"], ckpt["extra"]["batch_in_epoch"]) == (6, 2, 0)


def _cli(*args: str) -> int:
    try:
        main(list(args))
    except SystemExit as e:
        return e.code or 0
    return 0


def test_cli_help_lists_every_option(capsys):
    for cmd in ("train-gan", "sample", "interpolate", "evaluate-gan"):
        assert _cli(cmd, "--help") == 0
    out = capsys.readouterr().out
    for flag in ("--resume", "--amp", "--no-spectral-norm", "--latent-grid", "--diffaug", "--points", "--restarts", "--split", "--overwrite"):
        assert flag in out


def test_cli_train_sample_interpolate_evaluate(data_dir, tmp_path, capsys):
    runs = tmp_path / "runs"
    common = ["--data", str(data_dir), "--size", "16", "--nz", "32", "--latent-grid", "4", "--ngf", "4", "--ndf", "4",
              "--batch-size", "4", "--out", str(runs), "--device", "cpu", "--val-fraction", "0.2", "--test-fraction", "0.2"]
    code = _cli("train-gan", *common, "--max-steps", "2", "--seed", "1", "--split-seed", "5", "--channels", "1", "--interval", "2",
                "--scaling", "minmax", "--amp", "bf16", "--loss", "hinge", "--r1", "1", "--diffaug", "translation", "--ada-target", "0",
                "--ema", "0.5", "--lr-g", "1e-3", "--lr-d", "1e-3", "--save-every", "1", "--skip-nonfinite",
                "--deterministic", "--num-workers", "0", "--threads", "1", "--max-frames", "99", "--spectral-norm")
    torch.use_deterministic_algorithms(False)
    assert code == 0, capsys.readouterr().err
    run_dir = runs / "000-gan"
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["train"]["loss"] == "hinge" and saved["train"]["model"]["spectral_norm"] is True
    assert saved["train"]["model"]["latent_grid"] == 4 and load_generator(run_dir / "last.pt").net[0].in_channels == 2
    assert saved["train"]["data"]["interval"] == 2 and saved["run"]["deterministic"] is True
    assert saved["run"]["split_seed"] == 5 and saved["run"]["seed"] == 1 and saved["run"]["threads"] == 1
    assert saved["train"]["data"]["max_frames"] == 99
    assert load_checkpoint(run_dir / "last.pt")["step"] == 2

    # --resume reads the settings from the checkpoint, so changing them is refused.
    assert _cli("train-gan", "--resume", "last", "--out", str(runs), "--loss", "ns") == 2
    assert _cli("train-gan", "--resume", "last", "--out", str(runs), "--split-seed", "1") == 2
    assert "cannot change on --resume" in capsys.readouterr().err
    assert _cli("train-gan", "--resume", str(run_dir), "--max-steps", "3", "--device", "cpu") == 0
    assert load_checkpoint(run_dir / "last.pt")["step"] == 3

    grid = tmp_path / "grid.png"
    assert _cli("sample", "--checkpoint", str(run_dir), "--n", "6", "--out", str(grid), "--seed", "2") == 0
    first = np.asarray(Image.open(grid))
    assert _cli("sample", "--checkpoint", str(run_dir), "--n", "6", "--out", str(grid)) == 2  # no silent overwrite
    assert _cli("sample", "--checkpoint", str(run_dir), "--n", "6", "--out", str(grid), "--seed", "2", "--overwrite") == 0
    assert np.array_equal(first, np.asarray(Image.open(grid)))  # same seed, same picture

    walk = tmp_path / "walk.gif"
    assert _cli("interpolate", "--checkpoint", str(run_dir / "last.pt"), "--steps", "6", "--points", "3",
                "--out", str(walk), "--fps", "5", "--seed", "1") == 0
    assert Image.open(walk).n_frames == 6
    assert _cli("interpolate", "--checkpoint", str(run_dir), "--steps", "6", "--out", str(walk)) == 2

    report = tmp_path / "eval.json"
    assert _cli("evaluate-gan", "--checkpoint", str(run_dir), "--frames", "3", "--steps", "2", "--restarts", "1",
                "--lr", "0.1", "--seed", "0", "--device", "cpu", "--out", str(report)) == 0
    result = json.loads(report.read_text())
    assert result["frames"] == 3 and result["split"] == "test" and 0 <= result["hist_distance"] <= 1
    assert "projection SSIM" in capsys.readouterr().out
    assert _cli("evaluate-gan", "--checkpoint", str(run_dir), "--data", str(data_dir), "--split", "all", "--frames", "2",
                "--steps", "1", "--restarts", "1", "--out", str(report), "--overwrite") == 0
    assert json.loads(report.read_text())["sequences"] == [f"seq{i}.npy" for i in range(5)]


def test_corrupt_or_foreign_checkpoints_are_clear_errors(data_dir, tmp_path, capsys):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"PK\x03\x04 definitely not a checkpoint")
    foreign = save_checkpoint(tmp_path / "f.pt", kind="forecaster", config={}, models={"net": torch.nn.Linear(2, 2)})
    for ckpt, message in ((corrupt, "corrupt or truncated"), (foreign, "'forecaster' checkpoint")):
        for cmd in (["sample", "--out", str(tmp_path / "s.png")], ["interpolate", "--out", str(tmp_path / "w.gif")],
                    ["evaluate-gan", "--data", str(data_dir), "--out", str(tmp_path / "e.json")]):
            assert _cli(*cmd, "--checkpoint", str(ckpt)) == 2
            err = capsys.readouterr().err
            assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    with pytest.raises(GanlstmError, match="'forecaster' checkpoint"):
        evaluate_gan(foreign)
