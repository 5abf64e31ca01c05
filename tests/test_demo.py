"""`ganlstm demo` with the shipped checkpoints: the four outputs, the refusal of a non-empty --out, a missing checkpoint."""
from __future__ import annotations

import json

import pytest
from PIL import Image
from reliability_helpers import cli

import ganlstm.demo as demo_module
from ganlstm.cli import main
from ganlstm.demo import CONTEXT, HORIZON, OUTPUTS

pytestmark = pytest.mark.skipif(not all(p.is_file() for p in demo_module.SHIPPED.values()),
                                reason="shipped checkpoints not present (checkpoints/*.pt)")


def test_demo_writes_outputs_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "demo"
    main(["demo", "--out", str(out), "--sequences", "2", "--device", "cpu"])
    stdout = capsys.readouterr().out
    assert all((out / name).is_file() for name in OUTPUTS)
    assert "k=30" in stdout and "gan_lstm" in stdout and str(out / "comparison.gif") in stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["context"] == CONTEXT and metrics["horizon"] == HORIZON and metrics["windows"] == 2
    assert set(metrics["per_horizon"]) == {"gan_lstm", "convlstm", "persistence"}
    gif = Image.open(out / "comparison.gif")
    assert gif.n_frames == CONTEXT + HORIZON
    before = (out / "metrics.json").read_bytes()
    code, err = cli(["demo", "--out", out, "--sequences", 2], capsys)
    assert code == 2 and "--overwrite" in err and (out / "metrics.json").read_bytes() == before


def test_demo_names_a_missing_checkpoint(tmp_path, monkeypatch, capsys):
    missing = tmp_path / "nowhere" / "convlstm.pt"
    monkeypatch.setitem(demo_module.SHIPPED, "convlstm", missing)
    code, err = cli(["demo", "--out", tmp_path / "demo", "--sequences", 1], capsys)
    assert code == 2 and str(missing) in err and "train_shipped.sh" in err
    assert not (tmp_path / "demo").exists()


def test_demo_refuses_a_training_seed(tmp_path, capsys):
    code, err = cli(["demo", "--out", tmp_path / "demo", "--seed", 1], capsys)
    assert code == 2 and "--seed 1" in err
