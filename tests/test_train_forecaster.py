"""train_forecaster / train-encoder / train-baseline: run directory, validation, resume, CLI flags."""
from __future__ import annotations

import csv
import json
import math

import pytest
import torch
from forecast_helpers import gan_checkpoint, run_config, simulated, train_config

from ganlstm import GanlstmError
from ganlstm.checkpoint import load_checkpoint
from ganlstm.cli import main
from ganlstm.config import ForecasterConfig
from ganlstm.train.forecaster import load_forecaster, sampling_probability, train_forecaster


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("forecast")
    return simulated(root / "data"), gan_checkpoint(root / "gan.pt")


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_run_directory_validation_and_split(tmp_path, inputs):
    data, gan = inputs
    run_dir = train_forecaster(train_config(data, gan), run_config(tmp_path))
    for name in ("config.json", "split.json", "log.csv", "metrics.csv", "last.pt", "best.pt"):
        assert (run_dir / name).is_file(), name
    assert [p.name for p in (run_dir / "samples").iterdir()] == ["epoch_0000_step_0000002.gif"]
    split = json.loads((run_dir / "split.json").read_text())
    assert sorted(sum(split.values(), [])) == [f"seq_{i:04d}" for i in range(5)]
    assert len(split["val"]) == 1 and len(split["test"]) == 1
    ckpt = load_checkpoint(run_dir / "best.pt", kind="forecaster")
    assert ckpt["extra"]["split"] == split
    assert set(ckpt["config"]) == {"model", "data", "train", "run"}
    assert ckpt["config"]["data"]["size"] == 16 and ckpt["config"]["model"]["gan"]["nz"] == 8
    row = _rows(run_dir / "metrics.csv")[-1]
    for key in ("val_mse_h1", "val_mse_h2", "val_ssim_h1", "val_ssim_h2", "persistence_mse", "persistence_ssim", "score"):
        assert math.isfinite(float(row[key])), key
    assert float(row["score"]) == pytest.approx(float(row["val_mse"]))
    model, _ = load_forecaster(run_dir, device="cpu")
    assert model.cfg.model == "gan_lstm" and not model.training


def test_resume_n_plus_m_equals_n_plus_m(tmp_path, inputs):
    data, gan = inputs
    cfg = train_config(data, gan, sampling_start=0.5, sampling_end=0.5)  # constant: coins drawn every step
    straight = train_forecaster(cfg, run_config(tmp_path / "a", max_steps=4, save_every=2))
    first = train_forecaster(cfg, run_config(tmp_path / "b", max_steps=2))
    resumed = train_forecaster(cfg, run_config(tmp_path / "b", max_steps=4), resume=str(first))
    assert resumed == first
    a = load_checkpoint(straight / "last.pt")["models"]["forecaster"]
    b = load_checkpoint(resumed / "last.pt")["models"]["forecaster"]
    assert load_checkpoint(resumed / "last.pt")["step"] == 4
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_weight_average_is_saved_resumed_and_loaded(tmp_path, inputs):
    data, gan = inputs
    cfg = train_config(data, gan, ema=0.9, sampling_start=0.5, sampling_end=0.5)  # a schedule that does not depend on the run length
    straight = train_forecaster(cfg, run_config(tmp_path / "a", max_steps=4))
    first = train_forecaster(cfg, run_config(tmp_path / "b", max_steps=2))
    resumed = train_forecaster(cfg, run_config(tmp_path / "b", max_steps=4), resume=str(first))
    a, b = (load_checkpoint(d / "last.pt")["models"] for d in (straight, resumed))
    for key in a["forecaster_ema"]:
        assert torch.equal(a["forecaster_ema"][key], b["forecaster_ema"][key]), key  # resume continues the average exactly
    trained = [k for k in a["forecaster"] if not k.startswith("generator.")]
    assert any(not torch.equal(a["forecaster"][k], a["forecaster_ema"][k]) for k in trained)
    model, _ = load_forecaster(straight / "last.pt", device="cpu")  # prediction uses the average
    assert all(torch.equal(v, a["forecaster_ema"][k]) for k, v in model.state_dict().items())
    with pytest.raises(GanlstmError, match="--ema 1.0 must be in"):
        train_forecaster(train_config(data, gan, ema=1.0), run_config(tmp_path / "c"))


def test_baseline_trains_through_the_same_loop(tmp_path, inputs):
    data, _ = inputs
    cfg = train_config(data, "", model=ForecasterConfig(model="convlstm", hidden=(4,)))
    run_dir = train_forecaster(cfg, run_config(tmp_path))
    model, ckpt = load_forecaster(run_dir / "last.pt", device="cpu")
    assert model.cfg.model == "convlstm" and model.cfg.image_size == 16
    with pytest.raises(GanlstmError, match="no weights to train"):
        train_forecaster(train_config(data, "", model=ForecasterConfig(model="persistence")), run_config(tmp_path))
    with pytest.raises(GanlstmError, match="needs a trained generator"):
        train_forecaster(train_config(data, ""), run_config(tmp_path))
    with pytest.raises(GanlstmError, match="differs from the generator"):
        train_forecaster(train_config(data, gan_checkpoint(tmp_path / "g.pt"), data=type(cfg.data)(size=32)), run_config(tmp_path))


def test_split_seed_fixes_the_split_while_seed_varies_the_weights(tmp_path, inputs):
    data, gan = inputs
    cfg = train_config(data, "", model=ForecasterConfig(model="convlstm", hidden=(4,)), val_fraction=0.4, test_fraction=0.2)
    runs = {}
    for seed, split_seed in ((0, None), (1, 0), (1, None), (2, 1)):
        runs[seed, split_seed] = train_forecaster(cfg, run_config(tmp_path / f"{seed}_{split_seed}", seed=seed, split_seed=split_seed))
    split = {k: json.loads((d / "split.json").read_text()) for k, d in runs.items()}
    assert split[1, 0] == split[0, None] and split[2, 1] == split[1, None]
    assert split[0, None] != split[1, None]  # these seeds split the five sequences differently, so the check above can fail
    w = {k: load_checkpoint(d / "last.pt")["models"]["forecaster"] for k, d in runs.items()}
    assert not all(torch.equal(w[0, None][n], w[1, 0][n]) for n in w[0, None])
    assert json.loads((runs[1, 0] / "config.json").read_text())["run"]["split_seed"] == 0


def test_threads_are_set_for_training_and_restored():
    from ganlstm.config import RunConfig
    from ganlstm.device import torch_threads

    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), torch_threads(1):
        raise RuntimeError("a failed run restores them too")
    assert torch.get_num_threads() == before
    with pytest.raises(GanlstmError, match="threads=0 is invalid"):
        RunConfig(threads=0)


def test_sampling_schedule():
    assert sampling_probability(0, 11, 1.0, 0.0) == 1.0
    assert sampling_probability(5, 11, 1.0, 0.0) == pytest.approx(0.5)
    assert sampling_probability(10, 11, 1.0, 0.0) == 0.0
    assert sampling_probability(50, 11, 0.8, 0.2) == pytest.approx(0.2)


def _cli(*args):
    with pytest.raises(SystemExit) as e:
        main(list(args))
    return e.value.code


def test_cli_train_encoder_and_baseline_flags(tmp_path, inputs, capsys):
    data, gan = inputs
    out = tmp_path / "runs"
    common = ["--data", str(data), "--context", "3", "--horizon", "2", "--stride", "2", "--hidden", "6,6", "--kernel", "3",
              "--alpha", "0.3", "--bright-weight", "1", "--gdl-weight", "0.25", "--ema", "0.5", "--sampling-start", "0.9", "--sampling-end", "0.1", "--lr", "2e-3",
              "--weight-decay", "1e-4", "--val-fraction", "0.2", "--test-fraction", "0.2", "--interval", "1",
              "--max-steps", "2", "--batch-size", "2", "--out", str(out), "--seed", "3", "--split-seed", "4", "--device", "cpu", "--amp", "no",
              "--save-every", "1", "--skip-nonfinite", "--num-workers", "0", "--threads", "1", "--max-frames", "500", "--max-pixels", "4096"]
    threads = torch.get_num_threads()
    main(["train-encoder", "--gan", str(gan), "--size", "16", "--feedback", "pixels", "--recon-weight", "0.2",
          "--reader-warmup", "1", "--latent-cap", "1.5", "--cell", "convgru", *common])
    run_dir = out / "000-gan_lstm"
    train = json.loads((run_dir / "config.json").read_text())["train"]
    assert train["model"]["hidden"] == [6, 6] and train["model"]["feedback"] == "pixels"
    assert (train["recon_weight"], train["alpha"], train["bright_weight"]) == (0.2, 0.3, 1.0)
    assert train["gdl_weight"] == 0.25 and train["ema"] == 0.5
    assert train["reader_warmup"] == 1 and train["model"]["latent_cap"] == 1.5 and train["model"]["cell"] == "convgru"
    assert (train["sampling_start"], train["sampling_end"], train["stride"], train["weight_decay"]) == (0.9, 0.1, 2, 1e-4)
    assert {"recon"} <= set(_rows(run_dir / "log.csv")[0])
    assert json.loads((run_dir / "config.json").read_text())["run"]["split_seed"] == 4
    assert json.loads((run_dir / "config.json").read_text())["run"]["threads"] == 1
    assert {k: train["data"][k] for k in ("max_frames", "max_pixels")} == {"max_frames": 500, "max_pixels": 4096}
    assert torch.get_num_threads() == threads  # restored after training
    assert "000-gan_lstm" in capsys.readouterr().out
    # Resume continues the same run; flags that the checkpoint decides are refused.
    main(["train-encoder", "--resume", "last", "--out", str(out), "--max-steps", "3", "--device", "cpu"])
    assert load_checkpoint(run_dir / "last.pt")["step"] == 3
    assert _cli("train-encoder", "--resume", "last", "--out", str(out), "--lr", "1") == 2
    assert "--lr 1.0 (the run's: 0.002) cannot change on --resume" in capsys.readouterr().err
    assert _cli("train-encoder", "--resume", "last", "--out", str(out), "--reader-warmup", "5") == 2
    assert _cli("train-encoder", "--resume", "last", "--out", str(out), "--latent-cap", "1") == 2
    assert _cli("train-encoder", "--resume", "last", "--out", str(out), "--cell", "convlstm") == 2
    assert _cli("train-encoder", "--resume", "last", "--out", str(out), "--split-seed", "0") == 2
    assert _cli("train-encoder", "--resume", "last", "--out", str(out), "--max-pixels", "9") == 2
    assert _cli("train-encoder", "--resume", "last", "--out", str(out), "--gdl-weight", "1") == 2
    assert _cli("train-encoder", "--resume", "last", "--out", str(out), "--ema", "0.9") == 2
    try:
        main(["train-baseline", "--model", "convlstm", "--deterministic", "--scaling", "fixed", "--channels", "1", *common])
        assert torch.are_deterministic_algorithms_enabled()
        data_cfg = json.loads((out / "001-convlstm" / "config.json").read_text())["data"]
        assert (data_cfg["scaling"], data_cfg["channels"]) == ("fixed", 1)
    finally:
        torch.use_deterministic_algorithms(False)  # process-wide: do not leak into other tests
    assert (out / "001-convlstm" / "last.pt").is_file()
    assert _cli("train-encoder", "--data", str(data)) == 2
    assert "needs --gan" in capsys.readouterr().err
    assert _cli("train-baseline", "--model", "gan_lstm", "--data", str(data)) == 2
    assert _cli("train-baseline", "--model", "nope", "--data", str(data), "--context", "3", "--horizon", "2", "--out", str(out)) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err
    assert _cli("train-baseline", "--data", str(data), "--epochs", "1", "--max-steps", "1") == 2


def test_log_widens_its_header_when_a_later_phase_logs_more(tmp_path):
    from ganlstm.train.csv_log import CsvLog

    log = CsvLog(tmp_path / "log.csv")
    log.write({"step": 1, "recon": 0.5, "loss": 0.5})  # e.g. the reader warm-up
    log.write({"step": 2, "pixel": 0.25, "recon": 0.5, "loss": 0.75})
    rows = _rows(tmp_path / "log.csv")
    assert list(rows[0]) == ["step", "recon", "loss", "pixel"]
    assert rows[0]["pixel"] == "" and rows[1]["pixel"] == "0.25" and rows[1]["loss"] == "0.75"
    CsvLog(tmp_path / "log.csv", resume_step=1).write({"step": 2, "pixel": 0.5, "recon": 0.5, "loss": 1.0})
    assert [r["pixel"] for r in _rows(tmp_path / "log.csv")] == ["", "0.5"]
