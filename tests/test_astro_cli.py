"""The astronomer's scores from the command line: `evaluate --morphology`, `predict --truth --morphology`, `fit --morphology`."""
from __future__ import annotations

import json

import pytest
from forecast_helpers import trained_checkpoint

from ganlstm import Predictor
from ganlstm.astro_scores import ASTRO_METRICS
from ganlstm.cli import main


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("astro_cli")
    return root, trained_checkpoint(root)


def _exit(args: list[str]) -> int:
    try:
        main(args)
    except SystemExit as e:
        return e.code
    return 0


def test_evaluate_morphology_adds_the_scores(setup, capsys):
    root, ckpt = setup
    out = root / "ev"
    assert _exit(["evaluate", "--checkpoint", str(ckpt), "--data", str(root / "data"), "--context", "4", "--horizon", "6",
                  "--out", str(out), "--split", "all", "--device", "cpu", "--morphology"]) in (0, None)
    text = capsys.readouterr().out
    assert "|ΔGini|" in text and "coalescence time error" in text and "diversity" in text
    saved = json.loads((out / "metrics.json").read_text())
    for name in (*ASTRO_METRICS, "diversity"):
        assert len(saved["per_horizon"]["gan_lstm"][name]) == 6
    assert "coalescence_err" in saved["mean"]["persistence"]
    plain = root / "ev_plain"
    _exit(["evaluate", "--checkpoint", str(ckpt), "--data", str(root / "data"), "--context", "4", "--horizon", "6",
           "--out", str(plain), "--split", "all", "--device", "cpu"])
    assert "gini_err" not in json.loads((plain / "metrics.json").read_text())["per_horizon"]["gan_lstm"]  # opt-in


def test_predict_truth_morphology(setup, tmp_path, capsys):
    root, ckpt = setup
    from ganlstm.data.frame_writer import write_frames

    seq = Predictor.from_checkpoint(ckpt, device="cpu").read(root / "data" / "seq_0003")
    observed, future = tmp_path / "observed", tmp_path / "future"
    write_frames(seq[:8], observed)
    write_frames(seq[8:], future, start_index=8)
    out = tmp_path / "pred"
    assert _exit(["predict", "--frames", str(observed), "--steps", "4", "--checkpoint", str(ckpt), "--out", str(out),
                  "--truth", str(future), "--morphology", "--device", "cpu"]) in (0, None)
    morph = json.loads((out / "metrics.json").read_text())["morphology"]
    assert len(morph["gini_err"]) == 4 and "flux_acf_err" in morph["mean"]
    capsys.readouterr()
    assert _exit(["predict", "--frames", str(observed), "--steps", "4", "--checkpoint", str(ckpt), "--out", str(tmp_path / "p2"),
                  "--morphology", "--device", "cpu"]) == 2
    assert "pass --truth" in capsys.readouterr().err


def test_fit_morphology_may_change_on_resume():
    from ganlstm.pipeline import REPORT_ONLY

    assert "morphology" in REPORT_ONLY


def test_predictor_morphology_and_snapshots(setup, tmp_path):
    root, ckpt = setup
    p = Predictor.from_checkpoint(ckpt, device="cpu")
    seq = p.read(root / "data" / "seq_0001")  # (14, 1, 16, 16)
    stats = p.morphology(seq)
    assert set(stats) >= {"gini", "m20", "concentration", "asymmetry", "merger", "separation"}
    assert all(len(v) == len(seq) for v in stats.values())
    from ganlstm.morphology import morphology

    assert stats["gini"] == pytest.approx(morphology(seq)["gini"], nan_ok=True)  # the library's values, per frame


def test_predictor_reads_snapshots_at_its_size(setup, tmp_path):
    pynbody = pytest.importorskip("pynbody")
    import numpy as np

    root, ckpt = setup
    rng = np.random.default_rng(0)
    snaps = tmp_path / "snaps"
    snaps.mkdir()
    for t in range(3):
        sim = pynbody.new(star=200)
        sim["pos"] = rng.normal(0, 1, (200, 3)) + [0.2 * t, 0, 0]
        sim["mass"] = np.full(200, 1e-3)
        sim.properties["time"] = float(t)
        sim.write(fmt=pynbody.snapshot.tipsy.TipsySnap, filename=str(snaps / f"snap_{t:03d}"))
    frames = Predictor.from_checkpoint(ckpt, device="cpu").read_snapshots(snaps)
    assert frames.shape == (3, 1, 16, 16) and frames.dtype == np.float32
    assert 0 <= frames.min() and frames.max() <= 1 and frames.max() > 0
