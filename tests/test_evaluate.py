"""Evaluation: metrics files and table, `ganlstm evaluate` on a tiny checkpoint, Moving MNIST, `benchmark --quick`."""
from __future__ import annotations

import csv
import json
import re
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from ganlstm.cli import main
from ganlstm.config import ForecasterConfig, ForecastTrainConfig, FrameOptions, RunConfig
from ganlstm.data.mnist import load_moving_mnist, write_collection
from ganlstm.errors import GanlstmError
from ganlstm.evaluation import Evaluation, evaluate_models, load_checkpoints, read_common_frames, select_split, trivial_baselines
from ganlstm.metrics import METRICS
from ganlstm.results import best_models, format_table, write_metrics
from reliability_helpers import one_thread  # noqa: F401 - fixture: tiny models train faster on one thread

pytestmark = pytest.mark.usefixtures("one_thread")

S = 16


def run_cli(args, capsys) -> tuple[int, str, str]:
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def moving_squares(n: int, frames: int, seed: int = 0) -> np.ndarray:
    """(n, T, 1, S, S) in [0, 1]: a bright square drifting one pixel per frame (linear motion)."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n, frames, 1, S, S), np.float32)
    for i in range(n):
        y, x = rng.integers(2, 6, 2)
        for t in range(frames):
            out[i, t, 0, y : y + 4, (x + t) % (S - 4) : (x + t) % (S - 4) + 4] = 0.9
    return out


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    """Ten 12-frame sequences as .npy files (read back with scaling='fixed')."""
    root = tmp_path_factory.mktemp("data") / "squares"
    write_collection(moving_squares(10, 12), root)
    return root


@pytest.fixture(scope="module")
def checkpoint(collection, tmp_path_factory):
    """A convlstm trained for two steps on `collection`, holding out 2 test sequences."""
    from ganlstm.train.forecaster import train_forecaster

    cfg = ForecastTrainConfig(model=ForecasterConfig(model="convlstm", hidden=(4,)), data=FrameOptions(scaling="fixed"),
                              data_path=str(collection), context=3, horizon=2, val_fraction=0.1, test_fraction=0.2)
    run = RunConfig(out=str(tmp_path_factory.mktemp("runs")), max_steps=2, batch_size=4, device="cpu", progress=False)
    return train_forecaster(cfg, run)


def test_metrics_files_schema_and_overwrite(tmp_path):
    seqs = moving_squares(3, 8)
    ev = evaluate_models(trivial_baselines(), seqs, context=3, horizon=4, batch_size=2, device="cpu")
    assert ev.windows == 3 and ev.sequences == 3  # stride = horizon: one window (3 + 4 <= 8 < 3 + 4 + 4) per sequence
    paths = write_metrics(ev, tmp_path)
    with paths["metrics.csv"].open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["model", "horizon", "metric", "value"]
    written = (*METRICS, "diversity", "pairwise_pred", "pairwise_truth")  # the pixel metrics, then the default extra score
    assert len(rows) == 2 * len(written) * 4
    assert {r["model"] for r in rows} == {"persistence", "linear"} and {r["metric"] for r in rows} == set(written)
    assert sorted({int(r["horizon"]) for r in rows}) == [1, 2, 3, 4]
    ssim_p = [float(r["value"]) for r in rows if r["model"] == "persistence" and r["metric"] == "ssim"]
    np.testing.assert_allclose(ssim_p, ev.per_horizon["persistence"]["ssim"], rtol=1e-5)
    saved = json.loads(paths["metrics.json"].read_text())
    assert saved["per_horizon"] == ev.per_horizon and saved["mean"] == ev.mean and saved["horizon"] == 4
    assert Image.open(paths["metrics.png"]).size[0] > 400
    with pytest.raises(GanlstmError, match="--overwrite"):
        write_metrics(ev, tmp_path)
    write_metrics(ev, tmp_path, overwrite=True)


def test_linear_is_exact_on_linear_brightening_and_table_marks_it():
    ramp = (0.1 + 0.1 * np.arange(8, dtype=np.float32)).reshape(1, 8, 1, 1, 1)  # 0.1 ... 0.8, no clipping
    seqs = ramp * moving_squares(3, 8)[:, :1] / 0.9  # a fixed square brightening linearly in time
    ev = evaluate_models(trivial_baselines(), seqs, context=3, horizon=2, device="cpu")
    assert ev.mean["linear"]["mse"] < 1e-8 < ev.mean["persistence"]["mse"]
    table = format_table(ev)
    assert "k=1" in table and "k=2" in table and "mean" in table
    mse_linear = next(line for line in table.splitlines() if "linear" in line)  # the first row is MSE
    assert mse_linear.rstrip().endswith("*")
    assert best_models("sharpness", {"a": 0.8, "b": 1.1, "c": 1.3}) == {"b"}  # closest to 1 wins


def test_evaluate_cli_on_a_tiny_checkpoint(checkpoint, collection, tmp_path, capsys):
    out = tmp_path / "eval"
    code, stdout, err = run_cli(["evaluate", "--checkpoint", checkpoint, "--data", collection, "--context", 3,
                                 "--horizon", 2, "--out", out, "--device", "cpu", "--batch-size", 2], capsys)
    assert code == 0, err
    assert "persistence" in stdout and "linear" in stdout and "convlstm" in stdout and "split: test" in stdout
    windows = json.loads((out / "metrics.json").read_text())["windows"]
    assert re.search(rf"scored {windows} windows from \d+ of \d+ sequences \(split: test, a window every 2 frames\)", stdout), stdout
    code, stdout, err = run_cli(["evaluate", "--checkpoint", checkpoint, "--data", collection, "--context", 3, "--horizon", 2,
                                 "--stride", 1, "--out", tmp_path / "dense", "--device", "cpu"], capsys)
    dense = json.loads((tmp_path / "dense" / "metrics.json").read_text())["windows"]
    assert code == 0 and dense > windows and "a window every 1 frames" in stdout, stdout
    info = json.loads((out / "metrics.json").read_text())["info"]
    assert info["split"] == "test"
    assert info["sequence_names"] == json.loads((checkpoint / "split.json").read_text())["test"]
    assert (out / "metrics.png").is_file()
    code, _, err = run_cli(["evaluate", "--checkpoint", checkpoint, "--data", collection, "--context", 3,
                            "--horizon", 2, "--out", out], capsys)
    assert code == 2 and "--overwrite" in err and err.count("\n") == 1


def test_split_selection(checkpoint, collection, tmp_path):
    from ganlstm.checkpoint import load_checkpoint

    ckpts = [load_checkpoint(checkpoint)]
    copy = tmp_path / "copy"
    shutil.copytree(collection, copy)
    sequences = [(f"seq_{i:05d}.npy", np.zeros((4, 1, S, S), np.float32)) for i in range(10)]
    test = json.loads((checkpoint / "split.json").read_text())["test"]
    for data, split, names, used in ((collection, "auto", test, "test"), (copy, "auto", None, "all"),
                                     (copy, "test", test, "test"), (collection, "all", None, "all")):
        chosen, got = select_split(sequences, data, ckpts, split)
        assert got == used and [n for n, _ in chosen] == (names or [n for n, _ in sequences])
    with pytest.raises(GanlstmError, match="lacks the test sequence"):
        select_split(sequences[:1], copy, ckpts, "test")
    with pytest.raises(GanlstmError, match="needs a checkpoint"):
        select_split(sequences, copy, [], "test")


def test_evaluate_cli_without_checkpoints_and_size_rules(checkpoint, collection, tmp_path, capsys):
    code, stdout, err = run_cli(["evaluate", "--data", collection, "--context", 2, "--horizon", 3, "--out", tmp_path / "a",
                                 "--size", 12, "--device", "cpu"], capsys)
    assert code == 0, err
    assert "persistence" in stdout
    assert json.loads((tmp_path / "a" / "metrics.json").read_text())["info"]["frame_options"]["size"] == 12
    code, _, err = run_cli(["evaluate", "--checkpoint", checkpoint, "--data", collection, "--context", 3, "--horizon", 2,
                            "--out", tmp_path / "b", "--size", 12], capsys)
    assert code == 2 and "--size 12" in err


def test_checkpoints_must_see_the_same_frames(checkpoint, collection, tmp_path):
    import copy

    from ganlstm.checkpoint import load_checkpoint

    fixed = load_checkpoint(checkpoint)
    minmax = copy.deepcopy(fixed)
    minmax["config"]["data"]["scaling"] = "minmax"
    models, _ = load_checkpoints([checkpoint], "cpu")
    # Squares of 0.9 on black: min-max stretches them to 1.0, fixed keeps 230/255: different frames.
    with pytest.raises(GanlstmError, match="differ by up to"):
        read_common_frames(collection, models, [fixed, minmax], None)
    full_range = tmp_path / "full"
    write_collection(moving_squares(3, 6) / 0.9, full_range)  # 0 and 255 in every sequence: both readings agree
    frames, opts = read_common_frames(full_range, models, [fixed, minmax], None)
    assert len(frames) == 3 and opts.scaling == "fixed" and opts.size == S
    with pytest.raises(GanlstmError, match="--size 12"):
        read_common_frames(full_range, models, [fixed], 12)


def test_repeated_model_names_are_made_unique(checkpoint):
    models, _ = load_checkpoints([checkpoint / "best.pt", checkpoint / "last.pt"], "cpu")
    run = checkpoint.name
    assert list(models) == [f"convlstm@{run}/best", f"convlstm@{run}/last"]
    with pytest.raises(GanlstmError, match="given twice"):
        load_checkpoints([checkpoint / "last.pt", checkpoint / "last.pt"], "cpu")


def test_moving_mnist_loader(tmp_path):
    raw = np.random.default_rng(0).integers(0, 256, (20, 3, 64, 64), dtype=np.uint8)
    np.save(tmp_path / "mnist_test_seq.npy", raw)
    seqs = load_moving_mnist(tmp_path / "mnist_test_seq.npy")
    assert seqs.shape == (3, 20, 1, 64, 64) and seqs.dtype == np.float32
    np.testing.assert_allclose(seqs[1, 5, 0], raw[5, 1] / 255.0)  # time-first file -> sequence-first arrays
    small = load_moving_mnist(tmp_path / "mnist_test_seq.npy", limit=2, size=16)
    assert small.shape == (2, 20, 1, 16, 16)
    np.testing.assert_allclose(small[0, 0, 0, 0, 0], raw[0, 0, :4, :4].mean() / 255.0, rtol=1e-5)  # area average
    np.save(tmp_path / "bad.npy", raw[0])
    with pytest.raises(GanlstmError, match="standard uint8"):
        load_moving_mnist(tmp_path / "bad.npy")
    with pytest.raises(GanlstmError, match="does not exist"):
        load_moving_mnist(tmp_path / "missing.npy")


def test_evaluation_keeps_model_order_and_timing():
    ev = evaluate_models(trivial_baselines(), moving_squares(2, 6), 2, 2, device="cpu")
    assert isinstance(ev, Evaluation) and ev.models == ["persistence", "linear"]
    assert set(ev.seconds) == set(ev.models) and set(ev.mean["linear"]) == {*METRICS, "diversity", "pairwise_pred", "pairwise_truth"}


def test_benchmark_quick_end_to_end(tmp_path, capsys):
    """Four of the learned models (the others train in the same path in tests/test_model_cost.py; all eight take 20 s)."""
    out = tmp_path / "bench"
    models = ("gan_lstm", "convlstm", "predrnn", "simvp")
    torch.set_num_threads(2)
    try:
        code, stdout, err = run_cli(["benchmark", "--quick", "--out", out, "--device", "cpu", "--threads", 1,
                                     "--models", ",".join(models), "--steps", 3], capsys)
        assert torch.get_num_threads() == 2  # --threads applies to the run only
    finally:
        torch.set_num_threads(1)  # the one_thread fixture's setting
    assert code == 0, err
    summary = json.loads((out / "benchmark.json").read_text())
    assert summary["machine"]["torch_threads"] == 1
    assert set(summary["results"]) == {"j10_k10", "j20_k30"}
    for task, k in (("j10_k10", 10), ("j20_k30", 30)):
        res = summary["results"][task]
        assert list(res["per_horizon"]) == ["persistence", "linear", *models]
        assert all(len(v["mse"]) == k for v in res["per_horizon"].values())
        assert all((out / task / f).is_file() for f in ("metrics.png", "metrics.csv", "examples.png"))
        # Size and speed of every model, measured in the run: in metrics.json, benchmark.json and tables.md.
        assert json.loads((out / task / "metrics.json").read_text())["info"]["cost"] == summary["cost"]
        cost = summary["cost"]["models"]  # measured once, at the training windows' j=10 -> k=10
        assert list(cost) == list(res["per_horizon"]) and (summary["cost"]["context"], summary["cost"]["horizon"]) == (10, 10)
        assert all(c["frames_per_second"] > 0 and len(c["seconds"]) == 3 for c in cost.values())
        assert cost["gan_lstm"]["frozen_params"] > 0 and all(cost[m]["params"] > 0 < cost[m]["gflop_per_frame"] for m in models)
    assert set(summary["train_seconds"]) == {"gan", *models}
    # The GAN prior trains with the shipped recipe's reader warm-up (on top of the shared forecasting steps) and latent cap.
    prior = json.loads((out / "runs" / "001-gan_lstm" / "config.json").read_text())
    # --steps 3 replaces the spec's 4 forecasting steps for every model; the warm-up stays.
    assert (prior["train"]["reader_warmup"], prior["train"]["model"]["latent_cap"], prior["run"]["max_steps"]) == (2, 1.0, 5)
    assert prior["train"]["model"]["gan"]["latent_grid"] == 4 and summary["spec"]["forecaster_steps"] == 3
    baseline = json.loads((out / "runs" / "002-convlstm" / "config.json").read_text())
    assert (baseline["train"]["reader_warmup"], baseline["train"]["model"]["latent_cap"], baseline["run"]["max_steps"]) == (0, 0.0, 3)
    assert "k=30" in stdout and "| predrnn |" in (out / "tables.md").read_text() and "GFLOP/frame" in stdout
    assert "| simvp | " in (out / "tables.md").read_text().split("size and speed")[1]
    code, _, err = run_cli(["benchmark", "--quick", "--out", out], capsys)  # a second run refuses the non-empty directory
    assert code == 2 and "--overwrite" in err


def test_benchmark_on_a_fake_moving_mnist_file(tmp_path, capsys):
    raw = (np.random.default_rng(1).random((20, 20, 64, 64)) < 0.05).astype(np.uint8) * 255
    np.save(tmp_path / "mnist_test_seq.npy", raw)
    code, stdout, err = run_cli(["benchmark", "--quick", "--mnist", tmp_path / "mnist_test_seq.npy", "--models", "convlstm",
                                 "--out", tmp_path / "bench", "--device", "cpu"], capsys)
    assert code == 0, err
    summary = json.loads((tmp_path / "bench" / "benchmark.json").read_text())
    assert summary["spec"]["name"] == "mnist-quick" and list(summary["results"]) == ["j10_k10"]
    assert len(list((tmp_path / "bench" / "data" / "test").glob("*.npy"))) == 4
    # Given checkpoints are reused, not retrained; an extra name adds another forecaster to the comparison.
    ckpt = summary["checkpoints"]["convlstm"]
    code, _, err = run_cli(["benchmark", "--quick", "--mnist", tmp_path / "mnist_test_seq.npy", "--models", "convlstm",
                            "--out", tmp_path / "bench", "--overwrite", "--device", "cpu",
                            "--checkpoint", f"convlstm={ckpt}", "--checkpoint", f"mine={ckpt}"], capsys)
    assert code == 0, err
    again = json.loads((tmp_path / "bench" / "benchmark.json").read_text())
    assert again["train_seconds"] == {} and list(again["results"]["j10_k10"]["per_horizon"]) == ["persistence", "linear", "convlstm", "mine"]
    assert again["results"]["j10_k10"]["mean"]["convlstm"] == summary["results"]["j10_k10"]["mean"]["convlstm"]  # reproducible
    code, _, err = run_cli(["benchmark", "--quick", "--out", tmp_path / "x", "--checkpoint", "convlstm"], capsys)
    assert code == 2 and "NAME=PATH" in err
    code, _, err = run_cli(["benchmark", "--quick", "--out", tmp_path / "y", "--models", "e3d"], capsys)
    assert code == 2 and "e3d" in err


def test_no_models_is_an_error():
    with pytest.raises(GanlstmError, match="no models"):
        evaluate_models({}, [torch.zeros(6, 1, S, S)], 2, 2)


def test_the_metrics_plot_has_one_panel_per_distinct_metric_and_shows_persistence_on_top(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    from ganlstm import results

    seqs = moving_squares(3, 8)
    ev = evaluate_models(trivial_baselines(), seqs, context=3, horizon=4, device="cpu")
    figures = []
    original = plt.subplots

    def spy(*a, **k):
        fig, axes = original(*a, **k)
        figures.append(fig)
        return fig, axes

    plt.subplots = spy
    try:
        results.plot_metrics(ev, tmp_path / "m.png")
    finally:
        plt.subplots = original
    (fig,) = figures
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert "MSE ↓ (per pixel)" not in titles and len(titles) == len(set(titles)) == len(results.PLOTTED)
    sharp = next(ax for ax in fig.axes if ax.get_title().startswith("sharpness"))
    assert sharp.get_yscale() == "linear"
    mse = next(ax for ax in fig.axes if ax.get_title().startswith("MSE"))
    persistence = next(line for line in mse.get_lines() if line.get_label() == "persistence")
    assert persistence.get_zorder() > 2 and persistence.get_marker() not in (None, "None", "")
