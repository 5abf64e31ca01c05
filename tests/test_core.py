"""Core plumbing: strict configs, checkpoints, the shared training loop, the rollout engine, the CLI group."""
from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from ganlstm import GanlstmError
from ganlstm.checkpoint import load_checkpoint, load_state, save_checkpoint
from ganlstm.config import ForecasterConfig, ForecastTrainConfig, RunConfig, from_dict, to_dict
from ganlstm.device import autocast, resolve_device
from ganlstm.models.base import Forecaster
from ganlstm.rollout import iter_predict, predict, rollout
from ganlstm.train.distributed import Dist
from ganlstm.train.loop import fit
from ganlstm.train.nonfinite import check_finite
from ganlstm.train.reproducibility import seed_everything
from ganlstm.train.runs import create_run_dir, resolve_resume, restore, start_run
from ganlstm.train.task import FitState

# ---------------------------------------------------------------- config


def test_config_round_trip_and_unknown_keys():
    cfg = ForecastTrainConfig(context=20, horizon=30)
    back = from_dict(ForecastTrainConfig, to_dict(cfg))
    assert back == cfg and isinstance(back.model, ForecasterConfig)
    d = to_dict(cfg)
    d["model"]["hiden"] = [8]
    with pytest.raises(GanlstmError, match="unknown key.*hiden"):
        from_dict(ForecastTrainConfig, d)


# ---------------------------------------------------------------- checkpoints


def _ckpt(tmp_path: Path, kind: str = "gan") -> Path:
    net = nn.Linear(3, 2)
    return save_checkpoint(tmp_path / "c.pt", kind=kind, config={"a": 1}, models={"net": net}, step=5)


def test_checkpoint_round_trip_weights_only(tmp_path):
    path = _ckpt(tmp_path)
    raw = torch.load(path, weights_only=True)  # must load under the strict unpickler
    assert raw["step"] == 5 and raw["kind"] == "gan"
    ck = load_checkpoint(path, kind="gan")
    net = nn.Linear(3, 2)
    load_state(net, ck["models"]["net"], name="net")
    assert torch.equal(net.weight, ck["models"]["net"]["weight"])
    assert not list(tmp_path.glob(".*tmp")), "atomic write left a temp file behind"


def test_checkpoint_errors(tmp_path):
    path = _ckpt(tmp_path)
    with pytest.raises(GanlstmError, match="'gan' checkpoint but a 'forecaster'"):
        load_checkpoint(path, kind="forecaster")
    with pytest.raises(GanlstmError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    trunc = tmp_path / "trunc.pt"
    trunc.write_bytes(path.read_bytes()[:100])
    with pytest.raises(GanlstmError, match="corrupt or truncated"):
        load_checkpoint(trunc)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(GanlstmError, match="not a ganlstm checkpoint"):
        load_checkpoint(foreign)
    with pytest.raises(GanlstmError, match="do not fit the architecture"):
        load_state(nn.Linear(4, 2), load_checkpoint(path)["models"]["net"], name="net")


class _Boom:
    """Unpickling this would run a shell command; weights_only must refuse it."""

    def __reduce__(self):
        return (subprocess.call, (["touch", str(_Boom.marker)],))


def test_pickle_bomb_refused_without_running(tmp_path):
    _Boom.marker = tmp_path / "pwned"
    bomb = tmp_path / "bomb.pt"
    with bomb.open("wb") as f:
        torch.save({"format_version": 1, "kind": "gan", "x": _Boom()}, f, pickle_module=pickle)
    with pytest.raises(GanlstmError, match="refused"):
        load_checkpoint(bomb)
    assert not _Boom.marker.exists()


# ---------------------------------------------------------------- the training loop


class _ToyTask:
    kind, name = "gan", "toy"

    def __init__(self):
        self.net = nn.Linear(4, 1)
        self.models = {"net": self.net}
        self.optimizers = {"opt": torch.optim.Adam(self.net.parameters(), 1e-2)}
        self.config = {"toy": True}
        self.poison_at: int | None = None

    def train_step(self, batch, step):
        (x,) = batch
        loss = (self.net(x) + torch.randn(len(x), 1)).pow(2).mean()  # noise: RNG must be restored on resume
        if step == self.poison_at:
            loss = loss * float("nan")
        check_finite("toy", loss)
        self.optimizers["opt"].zero_grad()
        loss.backward()
        self.optimizers["opt"].step()
        return {"loss": loss.detach()}

    def evaluate(self, epoch, step, run_dir):
        torch.randn(10)  # must not disturb training RNG
        return {"score": float(self.net.weight.abs().sum())}


_DATA = torch.utils.data.TensorDataset(torch.randn(40, 4, generator=torch.Generator().manual_seed(1)))


def _train(out: Path, steps: int, resume: str | None = None, task: _ToyTask | None = None, make: type = _ToyTask, **run_kw):
    seed_everything(0)
    task = task or make()
    run = RunConfig(out=str(out), max_steps=steps, batch_size=8, progress=False, log_every=1, **run_kw)
    run_dir, ckpt = start_run(task.name, task.kind, run, resume, task.config)
    state = restore(task, ckpt) if ckpt else FitState()
    fit(task, _DATA, run, dist_=Dist(), run_dir=run_dir, state=state)
    return task, run_dir


def test_resume_equals_uninterrupted(tmp_path):
    one, _ = _train(tmp_path / "a", 13)
    _train(tmp_path / "b", 7)  # 7 steps: stops mid-epoch (5 batches per epoch)
    two, run_dir = _train(tmp_path / "b", 13, resume="last")
    assert torch.equal(one.net.weight, two.net.weight)
    steps = [int(line.split(",")[0]) for line in (run_dir / "log.csv").read_text().splitlines()[1:]]
    assert steps == list(range(1, 14)), "log steps must be continuous across a resume"
    assert {"config.json", "log.csv", "metrics.csv", "last.pt", "best.pt"} <= {p.name for p in run_dir.iterdir()}


class _ScaledToyTask(_ToyTask):
    """The toy task stepped through a loss scaler whose scale grows every 2 steps (fp16's GradScaler, on CPU)."""

    def __init__(self):
        super().__init__()
        self.scalers = {"opt": torch.amp.GradScaler("cpu", init_scale=4.0, growth_interval=2)}

    def train_step(self, batch, step):
        (x,) = batch
        loss = (self.net(x) + torch.randn(len(x), 1)).pow(2).mean()
        scaler, opt = self.scalers["opt"], self.optimizers["opt"]
        opt.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        return {"loss": loss.detach()}


def test_resume_restores_the_loss_scale(tmp_path):
    one, _ = _train(tmp_path / "a", 13, make=_ScaledToyTask)
    _train(tmp_path / "b", 7, make=_ScaledToyTask)
    saved = load_checkpoint(next((tmp_path / "b").glob("*-toy")) / "last.pt")["extra"]["grad_scalers"]["opt"]
    assert saved["scale"] == 4.0 * 2 ** 3  # grown after steps 2, 4 and 6
    two, _ = _train(tmp_path / "b", 13, resume="last", make=_ScaledToyTask)
    assert two.scalers["opt"].get_scale() == one.scalers["opt"].get_scale() == 4.0 * 2 ** 6
    assert torch.equal(one.net.weight, two.net.weight)
    _train(tmp_path / "c", 2)  # no scalers (fp32, bf16, CPU): nothing extra is saved
    assert "grad_scalers" not in load_checkpoint(next((tmp_path / "c").glob("*-toy")) / "last.pt")["extra"]


def test_nan_loss_stops_with_step_and_keeps_checkpoint(tmp_path):
    _train(tmp_path, 5, save_every=5)
    last = next(tmp_path.glob("*-toy")) / "last.pt"
    before = load_checkpoint(last)["models"]["net"]["weight"]
    task = _ToyTask()
    task.poison_at = 7
    with pytest.raises(GanlstmError, match="NaN/Inf at step 8.*intact"):
        _train(tmp_path, 12, resume="last", task=task)
    after = load_checkpoint(last)
    assert after["step"] == 5 and torch.equal(after["models"]["net"]["weight"], before)


def test_skip_nonfinite_continues(tmp_path):
    task = _ToyTask()
    task.poison_at = 2
    task, _ = _train(tmp_path, 6, task=task, skip_nonfinite=True)
    assert torch.isfinite(task.net.weight).all()


def test_run_dirs_are_numbered_and_never_reused(tmp_path):
    a, b = create_run_dir(tmp_path, "gan"), create_run_dir(tmp_path, "gan")
    assert (a.name, b.name) == ("000-gan", "001-gan")
    with pytest.raises(GanlstmError, match="no gan run"):
        resolve_resume("last", tmp_path, "gan")


def test_device_and_autocast_choices():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(GanlstmError, match="unknown --amp"):
        autocast(torch.device("cpu"), "fp8")
    if not torch.cuda.is_available():
        with pytest.raises(GanlstmError, match="CUDA is not available"):
            resolve_device("cuda")


# ---------------------------------------------------------------- the rollout engine


class _ToyForecaster(Forecaster):
    """Tiny recurrent pixel model used to test the engine without any real model."""

    def __init__(self):
        super().__init__(ForecasterConfig(model="toy", image_size=8))
        self.conv = nn.Conv2d(2, 1, 3, padding=1)

    def init_state(self, batch, device):
        return {"h": torch.zeros(batch, 1, 8, 8, device=device), "last": None}

    def step(self, frame, state):
        frame = state["last"] if frame is None else frame
        y = torch.tanh(self.conv(torch.cat([frame, state["h"]], 1)))
        return y, {"h": y, "last": y}


def test_rollout_equals_manual_steps_and_streaming():
    torch.manual_seed(0)
    model = _ToyForecaster()
    ctx = torch.rand(2, 5, 1, 8, 8) * 2 - 1
    out = rollout(model, ctx, 7)
    state = model.init_state(2, ctx.device)
    for t in range(5):
        y, state = model.step(ctx[:, t], state)
    manual = [y]
    for _ in range(6):
        y, state = model.step(None, state)
        manual.append(y)
    assert torch.allclose(out, torch.stack(manual, 1))
    full = predict(model, (ctx[0] + 1) / 2, 7)
    chunks = torch.cat(list(iter_predict(model, (ctx[:1] + 1) / 2, 7, chunk=3)), 1)[0]
    assert full.shape == (7, 1, 8, 8) and torch.allclose(full, chunks, atol=1e-6)


def test_scheduled_sampling_extremes():
    torch.manual_seed(0)
    model = _ToyForecaster()
    ctx, truth = torch.rand(3, 4, 1, 8, 8) * 2 - 1, torch.rand(3, 6, 1, 8, 8) * 2 - 1
    free = rollout(model, ctx, 6)
    assert torch.equal(rollout(model, ctx, 6, teacher=truth, sampling_p=0.0), free)
    forced = rollout(model, ctx, 6, teacher=truth, sampling_p=1.0)
    assert not torch.allclose(forced[:, 1:], free[:, 1:])
    assert torch.allclose(forced[:, 0], free[:, 0])  # the first prediction sees only context


# ---------------------------------------------------------------- CLI group


def test_cli_help_and_version():
    r = subprocess.run([sys.executable, "-m", "ganlstm", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "Commands" in r.stdout
    r = subprocess.run([sys.executable, "-m", "ganlstm", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and "ganlstm, version" in r.stdout


def test_cli_reports_errors_in_one_line(monkeypatch, capsys):
    from ganlstm import cli

    @cli.cli.command("boom-test")
    def boom():
        raise GanlstmError("frames/ is empty; point --frames at a directory of images.")

    with pytest.raises(SystemExit) as e:
        cli.main(["boom-test"])
    cli.cli.commands.pop("boom-test")
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.strip() == "error: frames/ is empty; point --frames at a directory of images."


def test_gradient_difference_loss_prefers_edges_to_blur():
    import torch.nn.functional as F

    from ganlstm.losses import gradient_difference_loss, rollout_pixel_loss

    target = torch.zeros(1, 3, 1, 16, 16)
    target[..., 4:12, 4:12] = 1.0  # a bright square: all its gradient is on the edges
    blurred = F.avg_pool2d(target.flatten(0, 1), 5, stride=1, padding=2, count_include_pad=False).view_as(target)
    assert gradient_difference_loss(target, target) == 0
    assert gradient_difference_loss(blurred, target) > 0
    assert gradient_difference_loss(blurred, target) > gradient_difference_loss(target * 0.9, target)  # edges kept, contrast lost
    pixel = rollout_pixel_loss(blurred, target, alpha=0.5)
    assert torch.equal(rollout_pixel_loss(blurred, target, alpha=0.5, gdl_weight=0.0), pixel)
    assert torch.allclose(rollout_pixel_loss(blurred, target, alpha=0.5, gdl_weight=2.0), pixel + 2 * gradient_difference_loss(blurred, target))
