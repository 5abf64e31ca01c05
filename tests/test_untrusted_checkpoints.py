"""Loading a checkpoint never runs code from it, and a wrong checkpoint is named as such (issue 8).

A *pickle bomb* is a real checkpoint with one extra object whose unpickling calls
``open(marker, "w")``. Every way of loading a checkpoint -- :func:`load_checkpoint`,
``Predictor.from_checkpoint`` and every CLI command that takes one -- must refuse it with a
one-line error (exit status 2) and the marker file must not exist afterwards. A control test
shows the bomb does go off under a plain ``torch.load(weights_only=False)``, so the refusals
are not vacuous. Checkpoints of the wrong kind, format version or architecture must produce an
error naming what was expected and what was found.
"""
from __future__ import annotations

import pickle
import re
import shutil
from pathlib import Path

import pytest
import torch

from ganlstm import GanlstmError
from ganlstm.checkpoint import load_checkpoint
from ganlstm.predictor import Predictor
from reliability_helpers import BOMB_FORMATS, cli, one_thread, tiny_runs, write_bomb  # noqa: F401 - fixture

pytestmark = [
    pytest.mark.usefixtures("one_thread"),
    pytest.mark.filterwarnings("ignore:no validation"),  # the tiny runs have no validation split, on purpose
    pytest.mark.filterwarnings("ignore:Detected pickle protocol"),  # torch notes the raw-pickle bomb's protocol
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Real data, a real stage-one run and a real stage-two run on top of it."""
    return tiny_runs(tmp_path_factory.mktemp("untrusted"))


@pytest.fixture
def bombs(runs, tmp_path) -> dict:
    """One bomb per checkpoint kind (so kind checks cannot be what refuses it), and the marker both would create."""
    marker = tmp_path / "PWNED"
    return {
        "marker": marker,
        "gan": write_bomb(runs["gan"], tmp_path / "bomb_gan" / "best.pt", marker),
        "forecaster": write_bomb(runs["encoder"], tmp_path / "bomb_forecaster" / "best.pt", marker),
    }


def test_the_bomb_is_live_under_an_unsafe_load(runs, tmp_path):
    marker = tmp_path / "PWNED"
    for fmt in BOMB_FORMATS:
        bomb = write_bomb(runs["gan"], tmp_path / f"{fmt}.pt", marker, fmt)
        with bomb.open("rb") as f:  # what a careless loader would do
            pickle.load(f) if fmt == "raw-pickle" else torch.load(f, weights_only=False)
        assert marker.exists(), f"the {fmt} bomb did not go off, so the refusal tests would prove nothing"
        marker.unlink()


@pytest.mark.parametrize("fmt", BOMB_FORMATS)
def test_load_checkpoint_refuses_every_bomb_container(runs, tmp_path, fmt):
    marker = tmp_path / "PWNED"
    bomb = write_bomb(runs["gan"], tmp_path / "bomb.pt", marker, fmt)
    with pytest.raises(GanlstmError, match=r"bomb\.pt holds objects that are not tensors.*refused.*could run code"):
        load_checkpoint(bomb)
    assert not marker.exists()


def test_predictor_refuses_a_bomb(bombs):
    for path in (bombs["forecaster"], bombs["forecaster"].parent):  # the file, and its run directory
        with pytest.raises(GanlstmError, match="refused"):
            Predictor.from_checkpoint(path, device="cpu")
    assert not bombs["marker"].exists()


def _commands(runs: dict, bombs: dict, out: Path) -> dict[str, list]:
    """Every command that reads a checkpoint, pointed at a bomb of the kind it expects."""
    g, f, data = bombs["gan"], bombs["forecaster"], runs["data"]
    bomb_runs = out / "bomb_runs"
    for name, bomb in (("000-gan", g), ("000-gan_lstm", f), ("000-convlstm", f)):
        (bomb_runs / name).mkdir(parents=True)
        shutil.copy(bomb, bomb_runs / name / "last.pt")
    return {
        "sample": ["sample", "--checkpoint", g, "--out", out / "s.png"],
        "sample (run dir)": ["sample", "--checkpoint", g.parent, "--out", out / "s.png"],
        "interpolate": ["interpolate", "--checkpoint", g, "--out", out / "w.gif"],
        "evaluate-gan": ["evaluate-gan", "--checkpoint", g, "--data", data, "--out", out / "e.json"],
        "predict": ["predict", "--frames", data / "seq_0000", "--steps", 2, "--checkpoint", f, "--out", out / "pred"],
        "evaluate": ["evaluate", "--checkpoint", f, "--data", data, "--context", 3, "--horizon", 2, "--out", out / "ev"],
        "export": ["export", "--checkpoint", f, "--out", out / "small.pt"],
        "train-encoder --gan": ["train-encoder", "--gan", g, "--data", data, "--max-steps", 1, "--out", out / "runs"],
        "train-gan --resume FILE": ["train-gan", "--resume", g, "--out", out / "runs"],
        "train-gan --resume last": ["train-gan", "--resume", "last", "--out", bomb_runs],
        "train-encoder --resume last": ["train-encoder", "--resume", "last", "--out", bomb_runs],
        "train-baseline --resume last": ["train-baseline", "--model", "convlstm", "--resume", "last", "--out", bomb_runs],
        "benchmark --checkpoint": ["benchmark", "--quick", "--models", "gan_lstm", "--checkpoint", f"gan={g}", "--device", "cpu",
                                   "--out", out / "bench"],
    }


def test_every_cli_command_refuses_a_bomb_with_exit_2(runs, bombs, tmp_path, capsys):
    refused = []
    for name, args in _commands(runs, bombs, tmp_path).items():
        code, err = cli(args, capsys)
        assert code == 2, f"`ganlstm {name}` exited {code}: {err}"
        assert err.startswith("error: ") and "refused" in err and len(err.strip().splitlines()) == 1, f"{name}: {err}"
        assert re.search(r"it references _?io\.open", err), f"{name}: the error should name what the file tried to call: {err}"
        assert not bombs["marker"].exists(), f"`ganlstm {name}` ran code from the checkpoint"
        refused.append(name)
    assert not (tmp_path / "runs").exists() and not (tmp_path / "pred").exists(), "a refused command left outputs behind"
    print(f"\n{len(refused)} commands refused the pickle bomb: {', '.join(refused)}")


# ---------------------------------------------------------------- wrong kind, version, architecture


def _doctored(src: Path, dst: Path, edit) -> Path:
    """A copy of the checkpoint ``src`` after ``edit(payload)``, saved the way ganlstm saves (weights_only-safe)."""
    payload = torch.load(src, weights_only=True)
    edit(payload)
    torch.save(payload, dst)
    return dst


def test_wrong_kind_names_expected_and_found(runs, tmp_path, capsys):
    with pytest.raises(GanlstmError, match=r"is a 'gan' checkpoint but a 'forecaster' checkpoint is needed"):
        Predictor.from_checkpoint(runs["gan"], device="cpu")
    cases = {
        "sample": (["sample", "--checkpoint", runs["encoder"], "--out", tmp_path / "s.png"], "'forecaster' checkpoint but a 'gan'"),
        "predict": (["predict", "--frames", runs["data"] / "seq_0000", "--steps", 1, "--checkpoint", runs["gan"],
                     "--out", tmp_path / "p"], "'gan' checkpoint but a 'forecaster'"),
        "train-encoder --gan": (["train-encoder", "--gan", runs["encoder"], "--data", runs["data"], "--out", tmp_path / "r"],
                                "'forecaster' checkpoint but a 'gan'"),
    }
    for name, (args, words) in cases.items():
        code, err = cli(args, capsys)
        assert code == 2 and words in err, f"{name}: exit {code}: {err}"


def test_wrong_format_version_names_both_versions(runs, tmp_path):
    def bump(p):
        p["format_version"] = 99

    future = _doctored(runs["encoder"], tmp_path / "future.pt", bump)
    with pytest.raises(GanlstmError, match=r"future\.pt has format version 99, this ganlstm .* reads version 1"):
        Predictor.from_checkpoint(future, device="cpu")


def test_wrong_architecture_names_the_shapes(runs, tmp_path, capsys):
    def wider_generator(p):
        p["config"]["train"]["model"]["nz"] = 16  # the config now disagrees with the weights

    def deeper_convlstm(p):
        p["config"]["model"]["hidden"] = [8, 8]

    gan = _doctored(runs["gan"], tmp_path / "gan.pt", wider_generator)
    code, err = cli(["sample", "--checkpoint", gan, "--out", tmp_path / "s.png"], capsys)
    assert code == 2, err
    assert "do not fit the architecture" in err and "from checkpoint" in err and "current model" in err, err
    assert "torch.Size([8," in err and "torch.Size([16," in err, f"the error must show both shapes: {err}"
    enc = _doctored(runs["encoder"], tmp_path / "enc.pt", deeper_convlstm)
    with pytest.raises(GanlstmError, match=r"enc\.pt: the weights of 'forecaster(_ema)?' do not fit the architecture in its config \(.*\)"):
        Predictor.from_checkpoint(enc, device="cpu")


def test_foreign_and_incomplete_files_are_named(runs, tmp_path):
    torch.save(torch.nn.Linear(2, 2).state_dict(), tmp_path / "foreign.pt")
    with pytest.raises(GanlstmError, match=r"foreign\.pt is not a ganlstm checkpoint"):
        Predictor.from_checkpoint(tmp_path / "foreign.pt", device="cpu")

    def drop_weights(p):
        del p["models"]["forecaster"]

    def unknown_key(p):
        p["config"]["model"]["wings"] = 2

    with pytest.raises(GanlstmError, match=r"holds no forecaster weights"):
        Predictor.from_checkpoint(_doctored(runs["encoder"], tmp_path / "empty.pt", drop_weights), device="cpu")
    with pytest.raises(GanlstmError, match=r"unknown key\(s\) wings for ForecasterConfig"):
        Predictor.from_checkpoint(_doctored(runs["encoder"], tmp_path / "wings.pt", unknown_key), device="cpu")
    data = runs["gan"].read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(GanlstmError, match=r"cut\.pt is corrupt or truncated"):
        Predictor.from_checkpoint(tmp_path / "cut.pt", device="cpu")
