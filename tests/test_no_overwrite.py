"""No command loses the user's data (issue 8): nothing is written into an input directory or over
an existing output unless ``--overwrite`` is given, and a new training run never reuses a run directory.

Every test snapshots the directories involved (relative path -> SHA-256 and mtime) before a
refused command and asserts they are byte-for-byte and timestamp-for-timestamp unchanged after
it; a refusal must be a one-line error with exit status 2 that names ``--overwrite`` (or the fix).
"""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from reliability_helpers import GAN, cli, one_thread, tiny_runs  # noqa: F401 - fixture

pytestmark = [
    pytest.mark.filterwarnings("ignore:no validation"),  # the tiny runs have no validation split, on purpose
    pytest.mark.usefixtures("one_thread"),
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    return tiny_runs(tmp_path_factory.mktemp("no_overwrite"))


@pytest.fixture
def data(runs, tmp_path) -> Path:
    """A private copy of the frames: a command that wrongly writes into its input cannot spoil other tests."""
    return shutil.copytree(runs["data"], tmp_path / "data")


def snapshot(*roots: Path) -> dict[str, tuple[str, int]]:
    """Every file under ``roots``: path -> (sha256, mtime_ns)."""
    out = {}
    for root in roots:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for p in files:
            out[str(p)] = (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
    return out


def refused(args: list, capsys, *watched: Path, words: str = "--overwrite") -> str:
    """Run a command that must be refused; assert exit 2, one line naming ``words``, and ``watched`` untouched."""
    before = snapshot(*watched)
    code, err = cli(args, capsys)
    assert code == 2, f"`ganlstm {' '.join(map(str, args[:1]))}` exited {code}: {err}"
    assert err.startswith("error: ") and words in err and len(err.strip().splitlines()) == 1, err
    assert snapshot(*watched) == before, f"`ganlstm {args[0]}` changed files although it was refused"
    return err


def ok(args: list, capsys) -> None:
    code, err = cli(args, capsys)
    assert code == 0, f"`ganlstm {args[0]}` failed: {err}"


# ---------------------------------------------------------------- simulate


def test_simulate_refuses_a_non_empty_out_and_replaces_only_with_overwrite(tmp_path, capsys):
    out = tmp_path / "sim"
    args = ["simulate", "--out", out, "--sequences", 1, "--frames", 2, "--size", 16]
    ok(args, capsys)
    refused(args, capsys, out)
    mine = tmp_path / "my_frames"
    mine.mkdir()
    (mine / "frame_0000.png").write_bytes(b"the user's own frame")
    refused(["simulate", "--out", mine, "--sequences", 1, "--frames", 2, "--size", 16], capsys, mine)
    ok(args + ["--overwrite"], capsys)
    assert sorted(p.name for p in out.iterdir()) == ["seq_0000", "simulation.json"]


# ---------------------------------------------------------------- stage one outputs


@pytest.mark.parametrize("command,name", [("sample", "grid.png"), ("interpolate", "walk.gif")])
def test_gan_pictures_are_not_overwritten(runs, tmp_path, capsys, command, name):
    target = tmp_path / name
    target.write_bytes(b"an earlier result")
    extra = ["--steps", 2] if command == "interpolate" else ["--n", 2]
    args = [command, "--checkpoint", runs["gan"], "--out", target, *extra]
    refused(args, capsys, target, runs["gan"].parent)
    ok(args + ["--overwrite"], capsys)
    assert target.read_bytes() != b"an earlier result"


def test_evaluate_gan_does_not_overwrite_its_report(runs, tmp_path, capsys):
    out = tmp_path / "eval.json"
    args = ["evaluate-gan", "--checkpoint", runs["gan"], "--data", runs["data"], "--split", "all", "--frames", 2,
            "--steps", 2, "--restarts", 1, "--device", "cpu", "--out", out]
    ok(args, capsys)
    refused(args, capsys, out, runs["data"], runs["gan"].parent)


# ---------------------------------------------------------------- predict


def test_predict_never_writes_into_its_input_or_over_a_previous_prediction(runs, data, capsys):
    seq = data / "seq_0001"
    base = ["predict", "--frames", seq, "--steps", 2, "--checkpoint", runs["encoder"], "--device", "cpu"]
    refused(base + ["--out", seq], capsys, data)  # the input's own directory
    ok(base, capsys)  # default: beside the input's collection (<collection>_predicted/<name>), never inside either
    default_out = data.parent / f"{data.name}_predicted" / seq.name
    assert default_out.is_dir() and len(list(default_out.glob("*.png"))) == 2
    refused(base, capsys, data)  # a second run would overwrite the first prediction
    refused(base + ["--out", default_out, "--truth", data / "seq_0002"], capsys, data)


# ---------------------------------------------------------------- evaluate


def test_evaluate_refuses_existing_metrics_and_its_input_directory(runs, data, tmp_path, capsys):
    out = tmp_path / "eval"
    args = ["evaluate", "--checkpoint", runs["encoder"], "--data", data, "--context", 3, "--horizon", 2,
            "--split", "all", "--device", "cpu", "--out"]
    ok(args + [out], capsys)
    assert {"metrics.csv", "metrics.json"} <= {p.name for p in out.iterdir()}
    refused(args + [out], capsys, out, data)
    refused(args + [data], capsys, data, words="--out")  # metrics.png among the frames would turn the collection into one sequence
    refused(args + [data / "results"], capsys, data, words="--out")  # ... or add a one-frame sequence to it


# ---------------------------------------------------------------- training run directories


def _train_gan(data: Path, out: Path, *extra) -> list:
    return ["train-gan", "--data", data, "--size", GAN.image_size, "--nz", GAN.nz, "--latent-grid", 1, "--ngf", GAN.ngf, "--ndf", GAN.ndf,
            "--val-fraction", 0, "--test-fraction", 0, "--batch-size", 4, "--max-steps", 1, "--device", "cpu", "--out", out, *extra]


def test_a_new_run_never_reuses_a_run_directory(data, tmp_path, capsys):
    out = tmp_path / "runs"
    (out / "000-gan").mkdir(parents=True)
    (out / "000-gan" / "notes.txt").write_text("an earlier run")
    (out / "004-gan_lstm").mkdir()  # numbers are shared by all kinds: the next run is 005
    before = snapshot(out, data)
    ok(_train_gan(data, out), capsys)
    ok(_train_gan(data, out), capsys)
    assert sorted(p.name for p in out.iterdir()) == ["000-gan", "004-gan_lstm", "005-gan", "006-gan"]
    after = snapshot(out, data)
    assert {k: v for k, v in after.items() if k in before} == before, "training changed an earlier run or the data"
