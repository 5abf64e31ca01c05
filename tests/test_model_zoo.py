"""The model zoo (ConvGRU, TrajGRU, E3D-LSTM, MIM, SimVP): the Forecaster contract, trainability, FLOPs, the CLI."""
from __future__ import annotations

import pytest
import torch
from forecast_helpers import model_config, simulated
from reliability_helpers import one_thread  # noqa: F401 - fixture: tiny models train faster on one thread

from ganlstm.checkpoint import load_checkpoint
from ganlstm.cli import main
from ganlstm.config import ForecasterConfig
from ganlstm.errors import GanlstmError
from ganlstm.flops import count_flops, count_params
from ganlstm.models.base import build_forecaster, to_model_range
from ganlstm.models.convgru import ConvGRU
from ganlstm.models.trajgru import TrajGRU
from ganlstm.rollout import rollout

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = 16
ZOO = ("convgru", "trajgru", "e3dlstm", "mim", "simvp")


def make(name: str, channels: int = 1, size: int = SIZE, randomise: bool = False) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_forecaster(ForecasterConfig(model=name, image_size=size, channels=channels, hidden=(8, 8)))
    if randomise:  # move every weight off its initialisation (zero heads, zero flows) so each one matters
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.1)
    return model


def frames(batch: int, steps: int, channels: int = 1) -> torch.Tensor:
    return torch.rand(batch, steps, channels, SIZE, SIZE, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("name", ZOO)
@pytest.mark.parametrize("channels", [1, 3])
def test_contract_shape_range_and_untrained_is_persistence(name, channels):
    model = make(name, channels)
    assert type(model).registry_name == name and model.cfg.model == name
    context = to_model_range(frames(2, 3, channels))
    with torch.no_grad():
        assert torch.equal(rollout(model, context, 3), context[:, -1:].expand(-1, 3, -1, -1, -1))  # zero output layer
        model = make(name, channels, randomise=True)
        out, state = model.observe(context)
        for _ in range(2):
            assert out.shape == (2, channels, SIZE, SIZE) and out.dtype == torch.float32
            assert -1.0 <= out.min() and out.max() <= 1.0
            out, state = model.step(None, state)


@pytest.mark.parametrize("name", ZOO)
def test_one_training_step_gives_finite_gradients_everywhere(name):
    context, target = frames(2, 3), frames(2, 3)
    for randomise in (False, True):
        model = make(name, randomise=randomise).train()
        model.training_loss(context, target, sampling_p=0.5)["loss"].backward()
        for key, p in model.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), key
            if randomise:  # off the zero initialisation, the loss reaches every weight
                assert p.grad.abs().sum() > 0, key


@pytest.mark.parametrize("name", ZOO)
def test_rollout_equals_observe_then_closed_loop_steps(name):
    model = make(name, randomise=True).eval()
    context = to_model_range(frames(1, 3))
    horizon = 13  # past SimVP's block of 10: its second block comes from its own predictions
    with torch.no_grad():
        auto = rollout(model, context, horizon)
        out, state = model.observe(context)
        manual = [out]
        for _ in range(horizon - 1):
            out, state = model.step(None, state)
            manual.append(out)
    torch.testing.assert_close(auto, torch.stack(manual, 1), rtol=0, atol=0)
    assert auto.shape == (1, horizon, 1, SIZE, SIZE)


def test_simvp_second_block_is_predicted_from_its_own_frames_or_the_teacher():
    model = make("simvp", randomise=True).eval()
    context, truth = to_model_range(frames(2, 4)), to_model_range(frames(2, 13))
    block = model.t_out
    with torch.no_grad():
        pred = rollout(model, context, 13)
        torch.testing.assert_close(pred[:, block:], model.predict_block(pred[:, :block])[:, :3])
        assert not torch.allclose(pred[:, block], pred[:, 0])
        # Teacher forcing: the truth cannot change a block already predicted, only the next one.
        taught = rollout(model, context, 13, teacher=truth, sampling_p=1.0)
        torch.testing.assert_close(taught[:, :block], pred[:, :block])
        torch.testing.assert_close(taught[:, block:], model.predict_block(truth[:, :block])[:, :3])
        # A short context is padded with its first frame; feeding a prediction back equals step(None).
        padded = torch.cat([context[:, :1].expand(-1, model.t_in - 4, -1, -1, -1), context], dim=1)
        torch.testing.assert_close(pred[:, :block], model.predict_block(padded))
        out, state = model.observe(context)
        torch.testing.assert_close(model.step(out, state)[0], model.step(None, state)[0])


@pytest.mark.parametrize("stack", [ConvGRU, TrajGRU])
def test_gru_stacks_mirror_convlstm_and_drive_the_gan_lstm(stack):
    cells = stack(3, [4, 6], 3)
    states = cells.init_state(2, 8, 8, torch.device("cpu"))
    top, states = cells(torch.rand(2, 3, 8, 8), states)
    assert top.shape == (2, 6, 8, 8) and [s.shape[1] for s in states] == [4, 6] and cells.out_channels == 6
    torch.manual_seed(0)
    model = build_forecaster(model_config())  # the GAN prior, with its dynamics cell swapped
    model.lstm = stack(model.cfg.hidden[0], list(model.cfg.hidden), model.cfg.kernel)
    with torch.no_grad():
        assert rollout(model, to_model_range(frames(2, 2)), 3).shape == (2, 3, 1, SIZE, SIZE)


def test_bad_configs_raise_one_sentence_errors():
    def build(name, **kw):
        build_forecaster(ForecasterConfig(model=name, **{**dict(image_size=SIZE, hidden=(8, 8)), **kw}))

    for name in ("convgru", "trajgru"):
        with pytest.raises(GanlstmError, match="even"):
            build(name, image_size=15)
    for name in ("e3dlstm", "mim"):
        with pytest.raises(GanlstmError, match="multiple of 2"):
            build(name, image_size=15)
        with pytest.raises(GanlstmError, match="same width"):
            build(name, hidden=(4, 8))
    with pytest.raises(GanlstmError, match="at least two layers"):
        build("mim", hidden=(8,))
    with pytest.raises(GanlstmError, match="multiple of 4"):
        build("simvp", image_size=18)
    with pytest.raises(GanlstmError, match="two sizes"):
        build("simvp", hidden=(8, 8, 8))
    with pytest.raises(ValueError, match="first step"):
        make("simvp").step(None, make("simvp").init_state(1, torch.device("cpu")))


def test_count_flops_grows_with_image_size_and_needs_no_compute():
    small, large = count_flops(make("convgru"), 2, 3), count_flops(make("convgru", size=32), 2, 3)
    assert 0 < small and large == pytest.approx(4 * small, rel=0.05)  # convolutions scale with the pixels
    with torch.device("meta"):
        meta = build_forecaster(ForecasterConfig(model="mim", image_size=SIZE, hidden=(8, 8)))
    assert count_flops(meta, 2, 3) == pytest.approx(count_flops(make("mim"), 2, 3))
    assert count_params(meta) == count_params(make("mim")) > 0


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return simulated(tmp_path_factory.mktemp("zoo") / "data")


@pytest.mark.parametrize("name", ["convgru", "simvp"])
def test_cli_train_baseline_trains_and_resumes(tmp_path, data, name):
    out = tmp_path / "runs"
    main(["train-baseline", "--model", name, "--data", str(data), "--size", str(SIZE), "--context", "3", "--horizon", "2",
          "--hidden", "8,8", "--max-steps", "2", "--batch-size", "2", "--val-fraction", "0.2", "--test-fraction", "0.2",
          "--out", str(out), "--device", "cpu", "--num-workers", "0", "--threads", "1"])
    run_dir = out / f"000-{name}"
    assert load_checkpoint(run_dir / "last.pt")["step"] == 2
    main(["train-baseline", "--model", name, "--resume", "last", "--out", str(out), "--max-steps", "3", "--device", "cpu"])
    ckpt = load_checkpoint(run_dir / "last.pt")
    assert ckpt["step"] == 3 and ckpt["config"]["model"]["model"] == name
