"""The shared rollout engine driving the GAN-prior model: one call == step by step, any j and k."""
from __future__ import annotations

import pytest
import torch
from forecast_helpers import generator, model_config

from ganlstm.models.base import build_forecaster
from ganlstm.pixel_range import to_model_range
from ganlstm.rollout import iter_predict, predict, render_all, rollout, rollout_outputs


def _model(feedback: str):
    torch.manual_seed(0)
    model = build_forecaster(model_config(feedback)).load_generator(generator())
    with torch.no_grad():  # a non-zero head, so that predictions actually move from step to step
        model.head.net[-1].weight.normal_(0, 0.05)
    return model.eval()


def _frames(b: int, t: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, t, 1, 16, 16, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("feedback", ["latent", "pixels"])
def test_one_call_equals_step_by_step_with_render_each_step(feedback):
    model = _model(feedback)
    context = to_model_range(_frames(2, 4))
    with torch.no_grad():
        fast = rollout(model, context, 6)  # latents collected, one batched generator call at the end
        state = model.init_state(2, context.device)
        for t in range(context.shape[1]):
            out, state = model.step(context[:, t], state)
        latents, frames = [out], [model.render(out)]  # decode every step, as a naive loop would
        for _ in range(5):
            out, state = model.step(None, state)
            latents.append(out)
            frames.append(model.render(out))
    slow = torch.stack(frames, dim=1)
    assert fast.shape == (2, 6, 1, 16, 16)
    assert torch.allclose(fast, slow, atol=1e-5)
    assert not torch.allclose(latents[0], latents[-1], atol=1e-2), "the rollout should move"


def test_batched_decode_equals_per_step_decode():
    model = _model("latent")
    with torch.no_grad():
        outs = rollout_outputs(model, to_model_range(_frames(3, 3)), 7)  # (B, K, nz)
        once = render_all(model, outs)
        each = torch.stack([model.render(outs[:, k]) for k in range(outs.shape[1])], dim=1)
    assert outs.shape == (3, 7, model.nz)
    assert torch.allclose(once, each, atol=1e-5)


@pytest.mark.parametrize("j,k", [(1, 1), (20, 30), (5, 100)])
def test_context_and_horizon_are_free(j, k):
    model = _model("latent")
    frames = _frames(1, j)
    pred = predict(model, frames[0], k)
    assert pred.shape == (k, 1, 16, 16) and pred.dtype == torch.float32
    assert 0 <= float(pred.min()) and float(pred.max()) <= 1
    chunked = torch.cat(list(iter_predict(model, frames, k, chunk=7)), dim=1)[0]
    assert torch.allclose(pred, chunked, atol=1e-5)


def test_teacher_forcing_feeds_the_truth():
    """With sampling_p=1 each closed-loop input is the true frame: the rollout equals warm-ups on growing contexts."""
    model = _model("pixels")
    frames = to_model_range(_frames(2, 6))
    with torch.no_grad():
        forced = rollout(model, frames[:, :3], 3, teacher=frames[:, 3:], sampling_p=1.0)
        third = rollout(model, frames[:, :5], 1)
    assert torch.allclose(forced[:, 2], third[:, 0], atol=1e-5)


def test_scheduled_sampling_is_reproducible_under_a_seed():
    model = _model("latent")
    frames = to_model_range(_frames(4, 6))
    runs = []
    for _ in range(2):
        torch.manual_seed(3)
        with torch.no_grad():
            runs.append(rollout(model, frames[:, :3], 3, teacher=frames[:, 3:], sampling_p=0.5))
    assert torch.equal(runs[0], runs[1])


def _count_frames(module: torch.nn.Module) -> dict:
    """Count the frames (batch entries) that go through ``module``'s forward."""
    seen = {"frames": 0}
    module.register_forward_pre_hook(lambda _m, args: seen.__setitem__("frames", seen["frames"] + args[0].shape[0]))
    return seen


@pytest.mark.parametrize("feedback", ["latent", "pixels"])
def test_a_k_frame_prediction_decodes_and_re_encodes_each_frame_at_most_once(feedback):
    b, j, k = 2, 4, 9
    model = _model(feedback)
    model.set_anchor_decay(0.5)  # the anchor costs one more decode and encode, of the last observed frame
    reference = predict(model, _frames(b, j), k)
    decoded, encoded = _count_frames(model.generator), _count_frames(model.encoder)
    counted = predict(model, _frames(b, j), k)
    assert torch.allclose(counted, reference, atol=1e-5), "counting changed the prediction"
    # Per sample: G draws each predicted frame once (k) plus the anchor's reading (1); the encoder reads
    # the j observed frames, each drawn frame fed back (k - 1 with pixel feedback) and the anchor's frame (1).
    fed_back = k - 1 if feedback == "pixels" else 0
    assert decoded["frames"] == b * (k + 1) and encoded["frames"] == b * (j + fed_back + 1), (decoded, encoded)
    for chunked in (1, 4):  # streaming in chunks does not draw anything twice either
        decoded["frames"] = encoded["frames"] = 0
        torch.cat(list(iter_predict(model, _frames(b, j), k, chunk=chunked)), dim=1)
        assert decoded["frames"] == b * (k + 1) and encoded["frames"] == b * (j + fed_back + 1), (chunked, decoded, encoded)
