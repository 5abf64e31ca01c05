"""Issue 18, item 9: weights or gradients that run away stop training, naming the step, before they reach a checkpoint.

Learning rates are range-checked when a config is made (config_checks), but a learning rate can
still come from a checkpoint's optimiser state, and a bounded loss (a sigmoid, a BatchNorm'd
network) stays finite while the weights grow without limit: the NaN guard alone let a GAN finish
with weights of 1e27 and exit 0. The loop now checks every parameter's magnitude and every
gradient (one fused reduction) every ``RUNAWAY_EVERY`` steps and before every checkpoint write.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from torch import nn

from ganlstm import GanlstmError
from ganlstm.checkpoint import atomic_save, load_checkpoint
from ganlstm.config import RunConfig
from ganlstm.train.distributed import Dist
from ganlstm.train.loop import fit
from ganlstm.train.nonfinite import RUNAWAY_EVERY, RUNAWAY_LIMIT, runaway
from ganlstm.train.runs import start_run, restore
from ganlstm.train.task import FitState
from reliability_helpers import cli, one_thread, simulated, train_gan_run  # noqa: F401 - fixture

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.filterwarnings("ignore:no validation")]

_DATA = torch.utils.data.TensorDataset(torch.randn(40, 4, generator=torch.Generator().manual_seed(1)))


class _Bounded:
    """A toy stage whose loss is bounded (a sigmoid): however far Adam throws the weights, the loss stays finite."""

    kind, name = "gan", "toy"

    def __init__(self, lr: float):
        torch.manual_seed(0)
        self.net = nn.Linear(4, 1)
        self.models = {"net": self.net}
        self.optimizers = {"opt": torch.optim.Adam(self.net.parameters(), lr)}
        self.config = {"toy": True}

    def train_step(self, batch, step):
        (x,) = batch
        loss = torch.sigmoid(self.net(x)).mean()
        self.optimizers["opt"].zero_grad()
        loss.backward()
        self.optimizers["opt"].step()
        return {"loss": loss.detach()}

    def evaluate(self, epoch, step, run_dir):
        return {}


def _train(out: Path, steps: int, lr: float, resume: str | None = None, **kw) -> tuple[_Bounded, Path]:
    task = _Bounded(lr)
    run = RunConfig(**{**dict(out=str(out), max_steps=steps, batch_size=8, progress=False, log_every=1), **kw})
    run_dir, ckpt = start_run(task.name, task.kind, run, resume, task.config)
    state = FitState()
    if ckpt:
        state = restore(task, ckpt)
        for group in task.optimizers["opt"].param_groups:
            group["lr"] = lr  # what a checkpoint's optimiser state can carry
    fit(task, _DATA, run, dist_=Dist(), run_dir=run_dir, state=state)
    return task, run_dir


def test_runaway_weights_stop_training_and_the_last_good_checkpoint_survives(tmp_path):
    _, run_dir = _train(tmp_path, 3, lr=1e-2, save_every=1)
    good = load_checkpoint(run_dir / "last.pt")
    with pytest.raises(GanlstmError) as e:
        _train(tmp_path, 30, lr=1e8, resume="last", save_every=1)
    message = str(e.value)
    assert re.fullmatch(rf"the weights of net reached \S+ in magnitude \(above 1e\+06\) at step 4; training stopped and the last "
                        rf"good checkpoint {re.escape(str(run_dir / 'last.pt'))} is intact; lower the learning rate .*\.", message), message
    kept = load_checkpoint(run_dir / "last.pt")
    assert kept["step"] == 3 and torch.equal(kept["models"]["net"]["weight"], good["models"]["net"]["weight"])


def test_without_checkpoint_writes_the_periodic_check_stops_it(tmp_path):
    with pytest.raises(GanlstmError, match=rf"the weights of net reached .* at step {RUNAWAY_EVERY}; training stopped and no checkpoint was written"):
        _train(tmp_path, 10 * RUNAWAY_EVERY, lr=1e8, save_every=0, batch_size=1)  # 40 steps per epoch: no epoch-end save


def test_an_ordinary_run_is_never_stopped(tmp_path):
    task, run_dir = _train(tmp_path, 25, lr=1e-2, save_every=1)
    assert load_checkpoint(run_dir / "last.pt")["step"] == 25


def test_runaway_names_weights_and_gradients():
    net = nn.Linear(3, 1)
    assert runaway({"net": net}) is None
    net.weight.grad = torch.full_like(net.weight, float("inf"))
    assert runaway({"net": net}) == "the gradients of net became NaN/Inf"
    assert runaway({"net": net}, grads=False) is None  # fp16: the loss scaler skips inf gradients itself
    with torch.no_grad():
        net.bias.fill_(2 * RUNAWAY_LIMIT)
    assert runaway({"net": net}).startswith("the weights of net reached 2e+06")


def test_train_gan_resumed_with_a_runaway_learning_rate_stops_naming_the_step(tmp_path, capsys):
    """The issue's case: a GAN whose optimiser runs at lr 1e6 (from its checkpoint) used to finish with exit 0."""
    run_dir = train_gan_run(simulated(tmp_path / "data"), tmp_path / "runs", steps=2, save_every=1)
    payload = torch.load(run_dir / "last.pt", weights_only=True)
    for opt in payload["optimizers"].values():
        for group in opt["param_groups"]:
            group["lr"] = 1e6
    atomic_save(payload, run_dir / "last.pt")
    code, err = cli(["train-gan", "--resume", run_dir, "--out", tmp_path / "runs", "--max-steps", 8, "--save-every", 1,
                     "--device", "cpu"], capsys)
    assert code == 2 and "Traceback" not in err, err
    assert re.search(r"error: the weights of (G|D|E) reached .* at step 3; training stopped and the last good checkpoint "
                     r".*last\.pt is intact; lower the learning rate", err), err
    kept = load_checkpoint(run_dir / "last.pt")
    assert kept["step"] == 2
    assert max(float(t.abs().max()) for m in kept["models"].values() for t in m.values() if t.is_floating_point()) < RUNAWAY_LIMIT
