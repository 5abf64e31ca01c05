"""GPU-only checks of the rollout engine and the trainers: autocast, torch.compile, no host sync, AMP training.

Marked ``cuda`` and skipped automatically where CUDA is not available. Run on a GPU with::

    python -m pytest tests/test_cuda.py -q
"""
from __future__ import annotations

import pytest
import torch

from ganlstm.config import ForecasterConfig, ForecastTrainConfig, GanConfig, GanTrainConfig, RunConfig
from ganlstm.models.base import build_forecaster
from ganlstm.pixel_range import to_model_range
from ganlstm.rollout import predict, rollout_outputs
from ganlstm.train.distributed import Dist
from ganlstm.train.forecaster import ForecastTask
from ganlstm.train.gan import GanTask
from ganlstm.train.runs import scaler_states

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

GAN = GanConfig(image_size=32, nz=16, ngf=16, ndf=16, latent_grid=1)
MODELS = ["gan_lstm", "convlstm", "predrnn"]


def model(name: str, feedback: str = "latent"):
    torch.manual_seed(0)
    cfg = ForecasterConfig(model=name, image_size=32, hidden=(16, 16), feedback=feedback, gan=GAN if name == "gan_lstm" else None)
    m = build_forecaster(cfg)
    if name == "gan_lstm":
        with torch.no_grad():
            m.head.net[-1].weight.normal_(0, 0.05)  # make the latent move
    return m.cuda().eval()


def frames(b: int, t: int) -> torch.Tensor:
    return torch.rand(b, t, 1, 32, 32, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
@pytest.mark.parametrize("name", MODELS)
def test_autocast_prediction_is_close_to_float32(name, amp):
    m = model(name)
    x = frames(4, 5)
    full = predict(m, x, 8)
    half = predict(m, x, 8, amp=amp)
    assert half.dtype == torch.float32 and half.device.type == "cpu"  # the public boundary stays float32 in [0, 1]
    assert 0 <= float(half.min()) and float(half.max()) <= 1
    assert (half - full).abs().mean() < 0.02, f"{amp} drifted from float32"


@pytest.mark.parametrize("name", MODELS)
def test_compiled_step_gives_the_eager_frames(name):
    eager = model(name)
    compiled = model(name)
    compiled.step = torch.compile(compiled.step, dynamic=False)
    x = frames(2, 4)
    torch.testing.assert_close(predict(compiled, x, 6), predict(eager, x, 6), atol=1e-4, rtol=0)


@pytest.mark.parametrize("feedback", ["latent", "pixels"])
def test_closed_loop_never_syncs_with_the_host(feedback):
    m = model("gan_lstm", feedback)
    context = to_model_range(frames(2, 4).cuda())
    truth = to_model_range(frames(2, 6).cuda())
    rollout_outputs(m, context, 2)  # warm-up outside the check (lazy CUDA initialisation syncs)
    torch.cuda.set_sync_debug_mode("error")
    try:
        with torch.inference_mode():
            rollout_outputs(m, context, 6)
            rollout_outputs(m, context, 6, teacher=truth, sampling_p=0.5)
    finally:
        torch.cuda.set_sync_debug_mode("default")


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_training_steps_under_autocast_are_finite(tmp_path, amp):
    run = RunConfig(out=str(tmp_path), batch_size=4, device="cuda", amp=amp, progress=False)
    gan = GanTask(GanTrainConfig(model=GAN), run, torch.device("cuda"), Dist(), [], steps_per_epoch=1)
    losses = gan.train_step(torch.rand(4, 1, 32, 32), 0)
    assert all(torch.isfinite(v).all() for v in losses.values())
    cfg = ForecastTrainConfig(model=ForecasterConfig(model="gan_lstm", image_size=32, hidden=(16, 16), gan=GAN), context=3, horizon=3)
    torch.manual_seed(0)
    task = ForecastTask(cfg, run, build_forecaster(cfg.model), torch.device("cuda"), Dist(), [], total=10, steps_per_epoch=5)
    losses = task.train_step((torch.rand(4, 3, 1, 32, 32), torch.rand(4, 3, 1, 32, 32)), 0)
    assert all(torch.isfinite(v).all() for v in losses.values())
    # fp16 scales the loss, and last.pt keeps each scale so a resume continues it; bf16 needs none.
    assert set(scaler_states(gan).get("grad_scalers", {})) == ({"G", "D"} if amp == "fp16" else set())
    assert set(scaler_states(task).get("grad_scalers", {})) == ({"forecaster"} if amp == "fp16" else set())


@pytest.mark.parametrize("amp", ["no", "bf16"])
def test_anchored_prediction_on_the_gpu_matches_the_cpu(amp):
    """Residual anchoring on CUDA (one extra generator call, added in float32) gives the CPU's frames."""
    m = model("gan_lstm")
    m.set_anchor_decay(0.5)
    x = frames(3, 4)
    gpu = predict(m, x, 6, amp=amp)
    cpu = predict(m.cpu(), x, 6)
    assert (gpu - cpu).abs().mean() < (1e-4 if amp == "no" else 0.02)
    plain = predict(model("gan_lstm").cpu(), x, 6)
    assert (cpu[:, 0] - plain[:, 0]).abs().mean() > 1e-3  # the anchor did change horizon 1
