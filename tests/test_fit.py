"""``ganlstm fit``: end to end on a tiny collection and a tiny movie, resume, refusals, honest notes and warnings."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ganlstm import GanlstmError
from ganlstm.cli import main
from ganlstm.commands.fit import parse_budget
from ganlstm.config import FitConfig
from ganlstm.evaluation import Evaluation, persistence_warnings
from ganlstm import pipeline
from ganlstm.train import gan as gan_train

REPORT = ("report.md", "report.json", "table.txt", "metrics.csv", "metrics.json", "metrics.png", "comparison.gif")


@pytest.fixture(autouse=True)
def cheap(monkeypatch):
    monkeypatch.setattr(gan_train, "PROXY_STEPS", 5)
    monkeypatch.setattr("ganlstm.report.PROJECTION", {"frames": 4, "steps": 5, "restarts": 1})


def _blobs(t: int, size: int, rng: np.random.Generator, colour: bool) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    x0, y0, vx = rng.uniform(4, size - 4), rng.uniform(4, size - 4), rng.uniform(-0.6, 0.6)
    seq = np.stack([np.exp(-((xx - x0 - vx * k) ** 2 + (yy - y0) ** 2) / 8.0) for k in range(t)]).astype(np.float32)  # (T, H, W)
    return np.stack([seq, 0.5 * seq, seq[:, ::-1]], axis=-1) if colour else seq  # (T, H, W, 3) or (T, H, W)


@pytest.fixture
def collection(tmp_path) -> Path:
    d = tmp_path / "frames"
    d.mkdir()
    rng = np.random.default_rng(0)
    for s in range(5):
        np.save(d / f"seq{s}.npy", _blobs(12, 16, rng, colour=False))
    return d


@pytest.fixture
def movie(tmp_path) -> Path:
    path = tmp_path / "movie.npy"
    np.save(path, _blobs(40, 24, np.random.default_rng(1), colour=True))  # one colour movie, 24 px
    return path


def _cfg(data: Path, out: Path, **kw) -> FitConfig:
    tiny = dict(budget=0.01, size=16, context=3, horizon=2, nz=16, width=8, gan_batch_size=8, batch_size=2,
                val_fraction=0.2, test_fraction=0.2, anchor_decays=(0.0, 1.0), device="cpu", threads=1)
    return FitConfig(data=str(data), out=str(out), **(tiny | kw))


def test_fit_end_to_end_on_a_collection(collection, tmp_path):
    facts = pipeline.run_fit(_cfg(collection, tmp_path / "fit"))
    report = tmp_path / "fit" / "report"
    assert all((report / name).exists() for name in REPORT)
    state = json.loads((tmp_path / "fit" / "fit.json").read_text())
    assert state["done"] == ["gan", "gan_lstm", "convlstm", "anchor", "spread"]
    assert set(state["budget_minutes"]) == {"gan", "gan_lstm", "convlstm"} and all(v >= pipeline.MIN_STEPS for v in state["steps"].values())
    assert {"gan_lstm", "convlstm", "persistence", "linear"} <= set(facts["per_horizon"])
    assert facts["anchor"]["decay"] in (0.0, 1.0) and facts["data_plan"]["time_split"] is False
    # decay and motion scale were chosen together; scale 0 with decay 1 is copy-last-frame, which scores 2 exactly
    anchor = facts["anchor"]
    assert facts["anchor"]["motion_scale"] in (0.0, 0.25, 0.5, 0.75, 1.0) and len(anchor["val_score"]) == 10
    assert anchor["val_score"]["1/0"] == pytest.approx(2.0, abs=1e-3)
    assert anchor["val_score"][f"{anchor['decay']:g}/{anchor['motion_scale']:g}"] == min(anchor["val_score"].values()) <= 2.0 + 1e-3
    assert 0 <= facts["prior"]["projection_ssim"] <= 1 and "encoder_ssim" in facts["prior"]
    assert "copy-last-frame" in (report / "report.md").read_text()
    # the ensemble spread was calibrated on validation and recorded in the GAN-LSTM checkpoint, predict --samples' default
    from ganlstm.calibration import SPREAD_GRID
    from ganlstm.ensemble import model_spread
    from ganlstm.train.forecaster import load_forecaster

    spread = facts["spread"]["spread"]
    assert spread in SPREAD_GRID and [r["spread"] for r in facts["spread"]["val"]] == list(SPREAD_GRID)
    best = next((tmp_path / "fit" / "stages").glob("*-gan_lstm")) / "best.pt"
    assert model_spread(load_forecaster(best, "cpu")[0]) == spread
    assert "latent spread" in (report / "report.md").read_text()


def test_fit_on_a_single_colour_movie_splits_it_in_time_and_says_what_changed(movie, tmp_path):
    facts = pipeline.run_fit(_cfg(movie, tmp_path / "fit"))
    plan = facts["data_plan"]
    assert plan["time_split"] and plan["channels"] == 3 and plan["native_chw"] == [3, 24, 24]
    assert any("24x24" in n and "16x16" in n for n in plan["notes"])  # the resize is said, not silent
    split = json.loads(next((tmp_path / "fit" / "stages").glob("*-gan_lstm/split.json")).read_text())
    assert split == {"train": ["movie.npy@train"], "val": ["movie.npy@val"], "test": ["movie.npy@test"]}
    assert json.loads((tmp_path / "fit" / "report" / "metrics.json").read_text())["info"]["sequence_names"] == ["movie.npy@test"]


def test_fit_gray_request_on_colour_frames_is_said(movie, tmp_path):
    plan = pipeline.inspect_data(_cfg(movie, tmp_path / "fit", channels=1))
    assert plan.opts.channels == 1 and any("grayscale" in n for n in plan.notes)


def test_fit_resumes_an_interrupted_stage(collection, tmp_path, monkeypatch):
    from ganlstm.train.forecaster import ForecastTask

    cfg = _cfg(collection, tmp_path / "fit")
    step = ForecastTask.train_step
    calls = {"n": 0}

    def interrupted(self, batch, i):
        if self.name == "gan_lstm" and not self.run.out.startswith("/tmp/tmp") and i == 6:
            raise KeyboardInterrupt
        calls["n"] += 1
        return step(self, batch, i)

    monkeypatch.setattr(pipeline, "VALIDATIONS", 10**6)  # val_every = 1: last.pt after every step
    monkeypatch.setattr(ForecastTask, "train_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        pipeline.run_fit(cfg)
    state = json.loads((tmp_path / "fit" / "fit.json").read_text())
    assert state["done"] == ["gan"] and "gan_lstm" in state["runs"]
    gan_log = (Path(state["runs"]["gan"]) / "log.csv").read_text()
    monkeypatch.setattr(ForecastTask, "train_step", step)
    facts = pipeline.run_fit(cfg)
    state = json.loads((tmp_path / "fit" / "fit.json").read_text())
    assert state["done"] == ["gan", "gan_lstm", "convlstm", "anchor", "spread"] and facts["windows"] > 0
    assert (Path(state["runs"]["gan"]) / "log.csv").read_text() == gan_log  # stage one was not trained again
    lstm_steps = [int(line.split(",")[0]) for line in (Path(state["runs"]["gan_lstm"]) / "log.csv").read_text().splitlines()[1:]]
    assert lstm_steps == sorted(set(lstm_steps)) and lstm_steps[-1] == state["steps"]["gan_lstm"]  # resumed, not restarted


def test_fit_refuses_other_settings_and_foreign_directories(collection, tmp_path):
    pipeline.run_fit(_cfg(collection, tmp_path / "fit"))
    with pytest.raises(GanlstmError, match="horizon differ"):
        pipeline.run_fit(_cfg(collection, tmp_path / "fit", horizon=3))
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    with pytest.raises(GanlstmError, match="holds no fit"):
        pipeline.run_fit(_cfg(collection, foreign))
    assert (foreign / "keep.txt").read_text() == "mine"


def test_fit_cli_runs_and_prints_the_report(collection, tmp_path, capsys):
    out = tmp_path / "fit"
    main(["fit", "--data", str(collection), "--out", str(out), "--budget", "1s", "--size", "16", "--context", "3",
          "--horizon", "2", "--threads", "1", "--device", "cpu"])
    captured = capsys.readouterr()
    assert "gan_lstm" in captured.out and "report:" in captured.out
    assert (out / "report" / "comparison.gif").exists()


def test_fit_cli_bad_budget_exits_2(collection, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["fit", "--data", str(collection), "--out", str(tmp_path / "x"), "--budget", "soon"])
    assert e.value.code == 2 and "45m" in capsys.readouterr().err


def test_parse_budget():
    assert parse_budget("45m") == 45 and parse_budget("1.5h") == 90 and parse_budget("90s") == 1.5 and parse_budget("20") == 20


def _evaluation(ours: list[float], ssim: list[float]) -> Evaluation:
    ev = Evaluation(context=3, horizon=len(ours), windows=1, sequences=1)
    ev.per_horizon = {"persistence": {"mse": [2.0] * len(ours), "ssim": [0.8] * len(ours)}, "gan_lstm": {"mse": ours, "ssim": ssim}}
    return ev


def test_loses_to_persistence_warning_names_the_horizons():
    lines = persistence_warnings(_evaluation([1.0, 3.0, 3.0, 1.0, 5.0], [0.9, 0.9, 0.7, 0.9, 0.9]))
    assert len(lines) == 1
    assert "MSE at horizons 2-3, 5 of 5" in lines[0] and "SSIM at horizon 3 of 5" in lines[0]
    assert persistence_warnings(_evaluation([1.0, 1.0], [0.9, 0.9])) == []


def test_evaluate_cli_warns_when_a_model_loses_to_persistence(tmp_path, capsys):
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from forecast_helpers import trained_checkpoint

    ckpt = trained_checkpoint(tmp_path)  # two training steps: it cannot beat copy-last-frame
    main(["evaluate", "--checkpoint", str(ckpt), "--data", str(tmp_path / "data"), "--context", "3", "--horizon", "2",
          "--out", str(tmp_path / "eval"), "--split", "all", "--device", "cpu"])
    err = capsys.readouterr().err
    assert "gan_lstm loses to copy-last-frame" in err and "MSE at horizon" in err


def test_time_split_flags_train_and_evaluate_on_the_continuation(movie, tmp_path, capsys):
    runs = tmp_path / "runs"
    main(["train-baseline", "--model", "convlstm", "--data", str(movie), "--size", "16", "--channels", "3", "--time-split",
          "--val-fraction", "0.2", "--test-fraction", "0.2", "--context", "3", "--horizon", "2", "--hidden", "4,4", "--max-steps", "2", "--batch-size", "2", "--out", str(runs),
          "--device", "cpu"])
    run_dir = next(runs.glob("*-convlstm"))
    assert json.loads((run_dir / "split.json").read_text())["test"] == ["movie.npy@test"]
    main(["evaluate", "--checkpoint", str(run_dir), "--data", str(movie), "--context", "3", "--horizon", "2",
          "--out", str(tmp_path / "eval"), "--device", "cpu"])
    info = json.loads((tmp_path / "eval" / "metrics.json").read_text())["info"]
    assert info["split"] == "test" and info["sequence_names"] == ["movie.npy@test"]


def test_fit_refuses_held_out_parts_too_short_before_training(collection, tmp_path):
    with pytest.raises(GanlstmError, match="context \\+ horizon = 13"):
        pipeline.run_fit(_cfg(collection, tmp_path / "fit", context=10, horizon=3))
    assert not (tmp_path / "fit").exists()


def test_fit_init_fine_tunes_a_prior(collection, tmp_path):
    from ganlstm.checkpoint import load_checkpoint

    pipeline.run_fit(_cfg(collection, tmp_path / "a"))
    gan = json.loads((tmp_path / "a" / "fit.json").read_text())["runs"]["gan"]
    pipeline.run_fit(_cfg(collection, tmp_path / "b", init=str(Path(gan) / "best.pt")))
    tuned = json.loads((tmp_path / "b" / "fit.json").read_text())["runs"]["gan"]
    cfg = load_checkpoint(Path(tuned) / "last.pt", kind="gan")["config"]["train"]
    assert cfg["init"].endswith("best.pt") and cfg["freeze_d"] == pipeline.FREEZE_D
