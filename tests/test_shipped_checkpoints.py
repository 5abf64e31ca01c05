"""The shipped checkpoints (checkpoints/*.pt) load with weights_only=True and forecast held-out mergers sensibly.

Two pairs: the default 64 px ``gan_lstm.pt`` / ``convlstm.pt`` (issue 20) and the earlier 32 px
``gan_lstm_32.pt`` / ``convlstm_32.pt``. Each model must beat copy-last-frame at horizon 1 on
held-out mergers (the demo's seed 3; training used seed 1, the benchmark's test collection seed 2).
"""
from __future__ import annotations

import pytest
import torch

from ganlstm.demo import SHIPPED, SHIPPED_32, simulate_held_out
from ganlstm.rollout import predict
from ganlstm.train.forecaster import load_forecaster

STEPS = 5
CONTEXT = 20
MERGERS = 8  # held-out mergers; horizon-1 errors are compared on their mean (one merger alone is noisy, see below)
PAIRS = {64: SHIPPED, 32: SHIPPED_32}
CASES = [(size, name) for size, pair in PAIRS.items() for name in pair]

pytestmark = pytest.mark.skipif(not all(p.is_file() for pair in PAIRS.values() for p in pair.values()),
                                reason="shipped checkpoints not present (checkpoints/*.pt)")

# The 32 px GAN-LSTM passes horizon 1 only with residual anchoring (its config's anchor_decay 0.5): its
# encoder's reading of the last observed frame, G(read(E(x))), reproduces a held-out frame about as
# well as that frame predicts the next one, so without the anchor its horizon-1 MSE is 3.84 against
# persistence's 2.57 on the test collection (with it: 2.42). The anchor's own tests are in test_gan_lstm.py.
# Merger by merger it wins 5 of these 8 (and loses the first two by 2 % on their mean), so the test
# compares the mean over all 8, as the benchmark does over its 40. The 64 px GAN-LSTM needs no anchor.


@pytest.fixture(scope="module")
def forecasts() -> dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """{(size, name): (context, truth, prediction)} for MERGERS held-out mergers at each pair's size."""
    out = {}
    for size, pair in PAIRS.items():
        mergers = torch.stack([torch.from_numpy(s) for s in simulate_held_out(MERGERS, size=size)])  # (MERGERS, T, 1, size, size)
        context, truth = mergers[:, :CONTEXT], mergers[:, CONTEXT : CONTEXT + STEPS]
        for name, path in pair.items():
            model, _ = load_forecaster(path, "cpu")  # weights_only=True, checked before allocation
            assert model.cfg.model == name and (model.cfg.image_size, model.cfg.channels) == (size, 1)
            with torch.no_grad():
                out[size, name] = context, truth, predict(model, context, STEPS)  # (MERGERS, STEPS, 1, size, size)
    return out


@pytest.mark.parametrize("size,name", CASES)
def test_shipped_checkpoint_loads_without_pickled_code(size, name):
    raw = torch.load(PAIRS[size][name], map_location="cpu", weights_only=True)  # plain tensors and containers only
    assert raw["kind"] == "forecaster" and raw["config"]["model"]["model"] == name
    assert raw["config"]["model"]["image_size"] == size


@pytest.mark.parametrize("size,name", CASES)
def test_shipped_prediction_is_finite_and_in_range(size, name, forecasts):
    _, truth, pred = forecasts[size, name]
    assert pred.shape == truth.shape
    assert torch.isfinite(pred).all() and pred.min() >= 0 and pred.max() <= 1


@pytest.mark.parametrize("size,name", CASES)
def test_shipped_model_beats_persistence_at_horizon_1(size, name, forecasts):
    context, truth, pred = forecasts[size, name]
    mse_h1 = ((pred[:, 0] - truth[:, 0]) ** 2).mean()
    persistence_h1 = ((context[:, -1] - truth[:, 0]) ** 2).mean()
    assert mse_h1 < persistence_h1, f"{size} px {name}: horizon-1 MSE {mse_h1:.5f} is not below persistence's {persistence_h1:.5f}"


@pytest.mark.slow
@pytest.mark.parametrize("size", sorted(PAIRS))
def test_shipped_gan_lstm_checks_its_context_and_falls_back_on_frames_it_cannot_draw(size):
    """Frames unlike any merger (static noise): the recorded settings lose to copy-last-frame by far; the check copies it."""
    model = load_forecaster(PAIRS[size]["gan_lstm"], "cpu")[0]
    assert model.context_check  # recorded in the shipped checkpoint
    frame = torch.rand(2, 1, 1, size, size, generator=torch.Generator().manual_seed(0))
    context = frame.expand(-1, CONTEXT, -1, -1, -1).contiguous()  # (2, 20, 1, size, size)
    checked = predict(model, context, STEPS)
    model.set_context_check(False)
    recorded = predict(model, context, STEPS)
    assert (recorded - frame).pow(2).mean() > 0.01  # the simulator prior draws a merger instead
    torch.testing.assert_close(checked, frame.expand(-1, STEPS, -1, -1, -1), atol=1e-5, rtol=0)


def test_a_wheel_carries_the_shipped_checkpoints(tmp_path):
    """`pip install git+...` builds a wheel: the checkpoints must be in it, under share/ganlstm/checkpoints."""
    import subprocess
    import sys
    import zipfile
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(root)],
                   check=True, cwd=tmp_path, capture_output=True)
    (wheel,) = tmp_path.glob("ganlstm-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for name in ("gan_lstm.pt", "convlstm.pt", "gan_lstm_32.pt", "convlstm_32.pt", "MODEL_CARD.md"):
        assert any(n.endswith(f".data/data/share/ganlstm/checkpoints/{name}") for n in names), name


def test_an_installed_package_finds_the_installed_checkpoints(tmp_path, monkeypatch):
    import sys

    import ganlstm.checkpoint as checkpoint_module

    monkeypatch.setattr(checkpoint_module, "__file__", str(tmp_path / "site-packages" / "ganlstm" / "checkpoint.py"))
    assert checkpoint_module.shipped_checkpoint_dir() == tmp_path / "site-packages" / "checkpoints"  # nowhere: the source path, for the error
    installed = tmp_path / "prefix" / "share" / "ganlstm" / "checkpoints"
    installed.mkdir(parents=True)
    (installed / "gan_lstm.pt").write_bytes(b"")
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "prefix"))
    assert checkpoint_module.shipped_checkpoint_dir() == installed
