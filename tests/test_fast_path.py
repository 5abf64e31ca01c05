"""The rollout engine's fast path gives the frames of the plain step-by-step loop, and streams in flat memory.

* Batched decode: ``predict`` (latents collected in a preallocated buffer, decoded by a
  channels_last generator in :data:`~ganlstm.rollout.RENDER_CHUNK`-frame calls) equals a naive
  loop that renders every step with a generator in the default memory layout.
* Streaming: ``iter_predict`` in chunks equals ``predict`` for every model and chunk size.
* No host synchronisation inside the closed loop: the loop runs with every tensor-to-host
  conversion patched to raise (the CPU stand-in for ``torch.cuda.set_sync_debug_mode``, which
  tests/test_cuda.py uses on a GPU).
* Flat memory: ``ganlstm predict --steps 1000`` peaks within 1.2x of ``--steps 100`` (one
  subprocess per k, ``ru_maxrss``), because PNG frames are written as the rollout streams out.
"""
from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ganlstm.config import ForecasterConfig, ForecastTrainConfig, FrameOptions, GanConfig, RunConfig
from ganlstm.models.base import build_forecaster
from ganlstm.pixel_range import to_model_range
from ganlstm.rollout import RENDER_CHUNK, iter_predict, predict, rollout_outputs

GAN = GanConfig(image_size=32, nz=16, ngf=8, ndf=8, latent_grid=1)


def gan_lstm(feedback: str):
    """A random GAN-LSTM whose head moves the latent (the zero-initialised head would only copy it)."""
    torch.manual_seed(0)
    model = build_forecaster(ForecasterConfig(model="gan_lstm", image_size=32, hidden=(8, 8), feedback=feedback, gan=GAN))
    with torch.no_grad():
        model.head.net[-1].weight.normal_(0, 0.05)
        for m in model.generator.modules():
            if isinstance(m, torch.nn.ConvTranspose2d):  # DCGAN's N(0, 0.02) draws flat grey frames (and denormals)
                m.weight.normal_(0, 0.15)
            elif isinstance(m, torch.nn.BatchNorm2d):  # statistics that are not the identity
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return model.eval()


def frames(b: int, t: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, t, 1, size, size, generator=torch.Generator().manual_seed(seed))


def step_by_step(model, context01: torch.Tensor, horizon: int) -> torch.Tensor:
    """The naive loop the engine replaces: step, render this step's output, repeat. In [0, 1]."""
    x = to_model_range(context01)
    with torch.no_grad():
        state = model.init_state(x.shape[0], x.device)
        for t in range(x.shape[1]):
            out, state = model.step(x[:, t], state)
        shown = [model.render(out)]
        for _ in range(horizon - 1):
            out, state = model.step(None, state)
            shown.append(model.render(out))
    return ((torch.stack(shown, dim=1) + 1) * 0.5).clamp(0, 1)


@pytest.mark.parametrize("feedback", ["latent", "pixels"])
def test_batched_decode_equals_rendering_every_step(feedback):
    model = gan_lstm(feedback)
    naive = copy.deepcopy(model)
    naive.generator.to(memory_format=torch.contiguous_format)
    conv = model.generator.net[0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()  # the layouts really differ
    context, horizon = frames(3, 4), 25  # 75 frames: more than one render chunk, and not a multiple of it
    assert 3 * horizon > RENDER_CHUNK and (3 * horizon) % RENDER_CHUNK
    fast = predict(model, context, horizon)
    slow = step_by_step(naive, context, horizon)
    assert fast.shape == (3, horizon, 1, 32, 32)
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=0)
    assert (fast[:, -1] - fast[:, 0]).abs().max() > 1e-3, "the rollout should move"


@pytest.mark.parametrize("name", ["gan_lstm", "persistence", "linear", "convlstm", "predrnn"])
def test_streamed_chunks_equal_one_prediction(name):
    torch.manual_seed(0)
    model = gan_lstm("latent") if name == "gan_lstm" else build_forecaster(ForecasterConfig(model=name, image_size=32, hidden=(8, 8))).eval()
    context, steps = frames(2, 3), 23
    whole = predict(model, context, steps)
    for chunk in (1, 7, steps, 100):
        parts = list(iter_predict(model, context, steps, chunk=chunk))
        assert [p.shape[1] for p in parts] == [min(chunk, steps - i) for i in range(0, steps, chunk)]
        torch.testing.assert_close(torch.cat(parts, dim=1), whole, atol=1e-5, rtol=0)


def _no_host_sync(monkeypatch) -> None:
    def refuse(*_, **__):
        raise AssertionError("host synchronisation inside the rollout loop")

    for method in ("item", "tolist", "numpy", "__bool__", "__float__", "__int__", "__index__"):
        monkeypatch.setattr(torch.Tensor, method, refuse)


@pytest.mark.parametrize("name", ["gan_lstm_latent", "gan_lstm_pixels", "persistence", "linear", "convlstm", "predrnn"])
def test_closed_loop_never_syncs_with_the_host(monkeypatch, name):
    if name.startswith("gan_lstm"):
        model = gan_lstm(name.rsplit("_", 1)[1])
    else:
        model = build_forecaster(ForecasterConfig(model=name, image_size=32, hidden=(8, 8))).eval()
    context, truth = to_model_range(frames(2, 3)), to_model_range(frames(2, 5, seed=1))
    with monkeypatch.context() as m:
        _no_host_sync(m)
        with torch.inference_mode():
            closed = rollout_outputs(model, context, 5)
            sampled = rollout_outputs(model, context, 5, teacher=truth, sampling_p=0.5)  # scheduled sampling's coins
    assert closed.shape[:2] == sampled.shape[:2] == (2, 5)
    with pytest.raises(AssertionError, match="host synchronisation"), monkeypatch.context() as m:
        _no_host_sync(m)
        bool(closed.sum() > 0)  # the patch does catch a sync


# ---------------------------------------------------------------- flat memory over a long rollout

PEAK_RSS = """
import json, resource, sys
from ganlstm.predict_files import predict_to_directory
root, k = sys.argv[1], int(sys.argv[2])
result = predict_to_directory(f"{root}/observed.npy", k, checkpoint=f"{root}/linear.pt", out=f"{root}/out{k}", device="cpu")
print(json.dumps({"files": len(result["frames"]), "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def test_long_prediction_streams_to_disk_in_flat_memory(tmp_path):
    """128 px frames make a held rollout visible (1000 frames = 64 MB per copy); linear extrapolation keeps it cheap."""
    from ganlstm.checkpoint import save_checkpoint
    from ganlstm.train.forecaster import checkpoint_config

    size = 128
    cfg = ForecastTrainConfig(model=ForecasterConfig(model="linear", image_size=size), data=FrameOptions(size=size), context=4)
    save_checkpoint(tmp_path / "linear.pt", kind="forecaster", config=checkpoint_config(cfg, RunConfig()),
                    models={"forecaster": build_forecaster(cfg.model)})
    np.save(tmp_path / "observed.npy", np.random.default_rng(0).uniform(0.2, 0.8, (6, size, size)).astype(np.float32))
    peak = {}
    for k in (100, 1000):
        proc = subprocess.run([sys.executable, "-c", PEAK_RSS, str(tmp_path), str(k)], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        assert result["files"] == k
        peak[k] = result["maxrss_kb"]
    assert sorted(p.name for p in (tmp_path / "out1000").glob("*.png"))[-1] == "frame_1005.png"
    assert peak[1000] <= 1.2 * peak[100], f"peak RSS {peak[1000] / 1024:.0f} MB at k=1000 vs {peak[100] / 1024:.0f} MB at k=100"
