"""``--config FILE`` (TOML), the ``config.toml`` every run writes, and ``--resume`` taking the run's own settings."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ganlstm.checkpoint import load_checkpoint

from reliability_helpers import cli, one_thread, simulated  # noqa: F401 - fixture

GAN = ["--size", "16", "--nz", "8", "--latent-grid", "1", "--ngf", "4", "--ndf", "4", "--encoder", "0", "--recon-weight", "0",
       "--batch-size", "4", "--val-fraction", "0", "--test-fraction", "0", "--device", "cpu"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return simulated(tmp_path_factory.mktemp("cfg") / "data", sequences=3, frames=6)


def _train_gan(capsys, data: Path, out: Path, *extra) -> tuple[int, str]:
    return cli(["train-gan", "--data", data, "--out", out, *GAN, *extra], capsys)


def test_flags_come_from_a_toml_file_and_the_command_line_wins(one_thread, data, tmp_path, capsys):
    cfg = tmp_path / "stage_one.toml"
    cfg.write_text('max-steps = 2\nlr_g = 0.001\nloss = "hinge"\nsave-every = 1\n')
    code, err = _train_gan(capsys, data, tmp_path / "runs", "--config", cfg, "--lr-g", "0.0005")
    assert code == 0, err
    saved = json.loads((tmp_path / "runs" / "000-gan" / "config.json").read_text())
    assert saved["train"]["loss"] == "hinge" and saved["train"]["lr_g"] == 0.0005 and saved["run"]["max_steps"] == 2


def test_a_run_writes_its_flags_and_config_toml_starts_the_same_run_again(one_thread, data, tmp_path, capsys):
    assert _train_gan(capsys, data, tmp_path / "runs", "--max-steps", "2", "--seed", "3")[0] == 0
    first = tmp_path / "runs" / "000-gan"
    toml = (first / "config.toml").read_text()
    assert "max-steps = 2" in toml and "seed = 3" in toml and "\nresume =" not in toml
    code, err = cli(["train-gan", "--config", first / "config.toml"], capsys)
    assert code == 0, err
    second = tmp_path / "runs" / "001-gan"
    a, b = (load_checkpoint(d / "last.pt")["models"]["G"] for d in (first, second))
    assert all(torch.equal(a[k], b[k]) for k in a), "the same flags (same seed) give the same weights"


def test_bad_config_files_get_one_sentence(data, tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    for text, words in [('max-steps = 2\nbogus = 1\n', "has the key 'bogus'"), ("max-steps = = 2", "is not valid TOML"),
                        ('[table]\nx = 1\n', "is a table"), ('max-steps = "many"\n', "max-steps")]:
        bad.write_text(text)
        code, err = _train_gan(capsys, data, tmp_path / "runs", "--config", bad)
        assert code == 2 and words in err and "Traceback" not in err, (text, err)
    assert not (tmp_path / "runs").exists()


def test_resume_takes_the_runs_budget_and_accepts_the_same_flags_again(one_thread, data, tmp_path, capsys):
    out = tmp_path / "runs"
    original = ["--max-steps", "2", "--save-every", "1"]
    assert _train_gan(capsys, data, out, *original)[0] == 0
    last = out / "000-gan" / "last.pt"
    # Without --max-steps the run's own budget applies: it is finished, nothing more is trained.
    code, err = cli(["train-gan", "--resume", "last", "--out", out], capsys)
    assert code == 0 and load_checkpoint(last)["step"] == 2, err
    # The exact original command with --resume added is accepted ...
    code, err = _train_gan(capsys, data, out, *original, "--resume", "last")
    assert code == 0 and load_checkpoint(last)["step"] == 2, err
    # ... a new budget is taken ...
    assert cli(["train-gan", "--resume", "last", "--out", out, "--max-steps", "3"], capsys)[0] == 0
    assert load_checkpoint(last)["step"] == 3
    # ... and a flag that differs from the run's is refused, naming both values.
    code, err = _train_gan(capsys, data, out, "--max-steps", "3", "--resume", "last", "--ngf", "8")
    assert code == 2 and "--ngf 8 (the run's: 4) cannot change on --resume" in err, err
