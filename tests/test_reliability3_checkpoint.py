"""Issue 18, items 3 and 11: malformed checkpoint fields, and resuming a file that is not in a run directory of --out.

Item 3: a checkpoint loaded with ``weights_only`` cannot run code, but its counters, RNG state and
optimiser state can be anything. Each malformed field below must give one sentence naming the
file and exit 2 on ``train-gan --resume`` (and ``load_checkpoint`` must refuse the layout ones for
every other entry point), and nothing may be written: no run directory appears.

Item 11: ``--resume FILE`` where FILE is not in a run directory of ``--out`` continues in a new run
directory under ``--out``; the file's own folder (which may hold the user's ``last.pt`` and
``log.csv``) stays byte-identical. Checked for train-gan, train-encoder, train-baseline and fit.
"""
from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import pytest
import torch

from ganlstm import GanlstmError
from ganlstm.checkpoint import atomic_save, load_checkpoint
from reliability_helpers import (SIZE, cli, encoder_config, gan_config, one_thread, run_config, simulated,  # noqa: F401 - fixture
                                 tiny_runs, train_gan_run)

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.filterwarnings("ignore:no validation")]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    return tiny_runs(tmp_path_factory.mktemp("r3"))


def _crafted(src: Path, dst: Path, edit) -> Path:
    """``src`` after ``edit(payload)``, with a fresh checksum (so only the edited field can be the reason for a refusal)."""
    payload = torch.load(src, weights_only=True)
    edit(payload)
    dst.parent.mkdir(parents=True, exist_ok=True)
    atomic_save(payload, dst)
    return dst


def _set(*keys, value):
    def edit(p):
        d = p
        for k in keys[:-1]:
            d = d[k]
        d[keys[-1]] = value
    return edit


def _first_param(p) -> int:
    return next(iter(p["optimizers"]["G"]["state"]))


MALFORMED = {
    "rng is a string": (_set("rng", value="not a state"), r"its 'rng' is a str, not a mapping"),
    "torch rng is a string": (_set("rng", "torch", value="x"), r"rng\.torch is not the \d+-byte state"),
    "torch rng cut short": (lambda p: p["rng"].__setitem__("torch", p["rng"]["torch"][:10]), r"rng\.torch is not the"),
    "numpy rng position": (_set("rng", "numpy", "pos", value=-5), r"rng\.numpy\.pos is -5"),
    "python rng words": (lambda p: p["rng"].__setitem__("python", [3, [1, 2], None]), r"rng\.python is not the"),
    "step -1": (_set("step", value=-1), r"its step is -1, not a count"),
    "step 'x'": (_set("step", value="x"), r"its step is 'x', not a count"),
    "epoch 1.5": (_set("epoch", value=1.5), r"its epoch is 1\.5"),
    "optimizers a string": (_set("optimizers", value="x"), r"its 'optimizers' is a str, not a mapping"),
    "optimizer a list": (_set("optimizers", "G", value=[1, 2]), r"optimiser 'G' is not a mapping with 'state' and 'param_groups'"),
    "one param group too many": (lambda p: p["optimizers"]["D"]["param_groups"].append(dict(p["optimizers"]["D"]["param_groups"][0])),
                                 r"optimiser 'D' has 2 parameter groups in the file but 1 here"),
    "a parameter missing": (lambda p: p["optimizers"]["D"]["param_groups"][0]["params"].pop(),
                            r"group 0 of optimiser 'D' has \d+ parameters in the file but \d+ here"),
    "moment of another shape": (lambda p: p["optimizers"]["G"]["state"][_first_param(p)].__setitem__("exp_avg", torch.zeros(3, 2)),
                                r"state exp_avg of parameter \d+ is a \(3, 2\) torch\.float32 tensor"),
    "a moment removed": (lambda p: p["optimizers"]["G"]["state"][_first_param(p)].pop("exp_avg"),
                         r"optimiser 'G' state of parameter \d+ lacks exp_avg"),
    "a beta of 1.5": (_set("optimizers", "D", "param_groups", 0, "betas", value=(1.5, 0.999)),
                      r"the hyperparameters of optimiser 'D' are refused \(ValueError: Invalid beta parameter"),
    "learning rate a string": (_set("optimizers", "D", "param_groups", 0, "lr", value="fast"), r"hyperparameter lr of optimiser 'D' is 'fast'"),
    "betas of one value": (_set("optimizers", "D", "param_groups", 0, "betas", value=(0.5,)), r"hyperparameter betas of optimiser 'D'"),
    "batch_in_epoch -3": (_set("extra", "batch_in_epoch", value=-3), r"extra\.batch_in_epoch is -3"),
    "best_score 'x'": (_set("extra", "best_score", value="x"), r"extra\.best_score is 'x', not a number"),
    "weights a string": (_set("models", "D", value="x"), r"the weights of 'D' are not a mapping of names to tensors"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_field_is_one_sentence_and_exit_2_on_resume(runs, tmp_path, capsys, case):
    edit, words = MALFORMED[case]
    bad = _crafted(runs["gan"], tmp_path / "given" / "bad.pt", edit)
    code, err = cli(["train-gan", "--resume", bad, "--out", tmp_path / "runs", "--max-steps", 3, "--device", "cpu"], capsys)
    assert code == 2, f"{case}: exit {code}: {err}"
    assert err.startswith(f"error: checkpoint {bad} is malformed (") and len(err.strip().splitlines()) == 1, err
    assert re.search(words, err), f"{case}: {err}"
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir()), "a refused resume left a run directory"
    assert sorted(p.name for p in bad.parent.iterdir()) == ["bad.pt"]


def test_layout_errors_are_refused_by_every_loader(runs, tmp_path, capsys):
    bad = _crafted(runs["encoder"], tmp_path / "enc.pt", _set("step", value="x"))
    with pytest.raises(GanlstmError, match=r"enc\.pt is malformed \(its step is 'x'"):
        load_checkpoint(bad)
    for args in (["export", "--checkpoint", bad, "--out", tmp_path / "small.pt"],
                 ["predict", "--frames", runs["data"] / "seq_0000", "--steps", 1, "--checkpoint", bad, "--out", tmp_path / "p"]):
        code, err = cli(args, capsys)
        assert code == 2 and "is malformed (its step is 'x'" in err, err


def test_the_rng_is_untouched_when_a_state_is_refused():
    from ganlstm.rng import rng_state, set_rng_state

    good = rng_state()
    bad = {**good, "python": [good["python"][0], [2**40] * 625, None]}
    before = torch.get_rng_state()
    with pytest.raises(GanlstmError, match=r"rng\.python"):
        set_rng_state(bad, "x.pt")
    assert torch.equal(torch.get_rng_state(), before)


# ---------------------------------------------------------------- item 11


def _snapshot(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def _users_folder(src: Path, folder: Path, with_config: bool = False) -> Path:
    """A checkpoint in a folder that also holds the user's own last.pt-named file and log.csv."""
    folder.mkdir(parents=True)
    shutil.copy(src, folder / "last.pt")
    (folder / "log.csv").write_text("my,own,notes\n1,2,3\n")
    if with_config:  # a run directory, but of another --out
        shutil.copy(src.parent / "config.json", folder / "config.json")
    return folder / "last.pt"


@pytest.mark.parametrize("command", ["train-gan", "train-encoder", "train-baseline"])
def test_resume_file_outside_a_run_directory_of_out_starts_a_new_run_there(runs, tmp_path, capsys, command):
    if command == "train-baseline":
        from ganlstm.config import ForecasterConfig
        from ganlstm.train.forecaster import train_forecaster

        cfg = encoder_config(runs["data"], runs["gan"], model=ForecasterConfig(model="convlstm", hidden=(8,)), gan_checkpoint="")
        src = train_forecaster(cfg, run_config(tmp_path / "base", 1)) / "last.pt"
    else:
        src = runs["gan" if command == "train-gan" else "encoder"]
    extra = ["--model", "convlstm"] if command == "train-baseline" else []
    for name, with_config in (("downloads", False), ("other_out/000-x", True)):
        given = _users_folder(src, tmp_path / name, with_config)
        before = _snapshot(given.parent)
        out = tmp_path / f"runs_{name.split('/')[0]}"
        code, err = cli([command, *extra, "--resume", given, "--out", out, "--max-steps", 3, "--device", "cpu"], capsys)
        assert code == 0, err
        assert _snapshot(given.parent) == before, f"{command} wrote beside {given}"
        (run_dir,) = list(out.iterdir())
        assert load_checkpoint(run_dir / "last.pt")["step"] == 3 and (run_dir / "config.json").is_file()
        assert [int(r.split(",")[0]) for r in (run_dir / "log.csv").read_text().splitlines()[1:]][-1] == 3
        assert f"not in a run directory under --out {out}" in err


def test_resume_inside_a_run_directory_of_out_continues_in_place(runs, tmp_path, capsys):
    out = tmp_path / "runs"
    shutil.copytree(runs["gan"].parent, out / "000-gan")
    code, err = cli(["train-gan", "--resume", out / "000-gan" / "last.pt", "--out", out, "--max-steps", 3, "--device", "cpu"], capsys)
    assert code == 0, err
    assert [p.name for p in out.iterdir()] == ["000-gan"] and load_checkpoint(out / "000-gan" / "last.pt")["step"] == 3


def test_fit_never_resumes_into_a_run_directory_outside_its_out(tmp_path, monkeypatch):
    """A fit.json copied with its folder names the original's stage runs: resuming must not write into them."""
    from ganlstm import pipeline
    from ganlstm.config import FitConfig

    data = simulated(tmp_path / "data")
    elsewhere = train_gan_run(data, tmp_path / "original" / "stages", steps=1)
    before = _snapshot(elsewhere)
    cfg = FitConfig(data=str(data), out=str(tmp_path / "copy"), size=SIZE, nz=8, width=4, gan_batch_size=4, device="cpu", threads=1)

    class State:  # fit.json as the copied fit left it: stage one started elsewhere, 2 steps planned
        data = {"runs": {"gan": str(elsewhere)}, "done": [], "steps": {"gan": 2}, "budget_minutes": {"gan": 1}}

        def save(self):
            pass

        def finish(self, stage, seconds, **facts):
            self.data["done"].append(stage)

    stages = tmp_path / "copy" / "stages"
    run_dir = pipeline._stage(State(), "gan", gan_config(data), cfg, stages, 4)
    assert _snapshot(elsewhere) == before and run_dir.parent == stages
    assert load_checkpoint(run_dir / "last.pt")["step"] == 2
