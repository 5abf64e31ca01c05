"""Baselines: shapes through the shared rollout engine, exact trivial baselines, and trainability."""
from __future__ import annotations

import pytest
import torch

from ganlstm.config import ForecasterConfig
from ganlstm.errors import GanlstmError
from ganlstm.models.base import build_forecaster
from ganlstm.pixel_range import to_model_range
from ganlstm.rollout import predict, rollout
from reliability_helpers import one_thread  # noqa: F401 - fixture: tiny models train faster on one thread

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = 16
LEARNED = ("convlstm", "predrnn")


def make(name: str, channels: int = 1, **kw) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_forecaster(ForecasterConfig(model=name, image_size=SIZE, channels=channels, hidden=(6, 6), **kw))


@pytest.mark.parametrize("name", ["persistence", "linear", *LEARNED])
@pytest.mark.parametrize("channels", [1, 3])
def test_rollout_shapes_and_range(name, channels):
    model = make(name, channels)
    context = torch.rand(2, 3, channels, SIZE, SIZE)
    pred = predict(model, context, steps=4)
    assert pred.shape == (2, 4, channels, SIZE, SIZE)
    assert pred.dtype == torch.float32 and 0.0 <= pred.min() and pred.max() <= 1.0
    single = predict(model, context[0], steps=2)  # (T, C, H, W) in -> (K, C, H, W) out
    assert single.shape == (2, channels, SIZE, SIZE)


def test_persistence_copies_last_frame():
    context = torch.rand(3, 4, 1, SIZE, SIZE)
    pred = predict(make("persistence"), context, steps=5)
    assert torch.equal(pred, context[:, -1:].expand_as(pred))


def test_linear_extrapolates_and_clips():
    a = torch.full((1, 1, 1, SIZE, SIZE), 0.5)
    b = torch.full((1, 1, 1, SIZE, SIZE), 0.6)
    pred = predict(make("linear"), torch.cat([a, b], dim=1), steps=6)[0, :, 0, 0, 0]
    # In [-1, 1]: 0 -> 0.2, so each step adds 0.2 (0.1 in [0, 1]) until the clip at 1.
    expected = torch.tensor([0.7, 0.8, 0.9, 1.0, 1.0, 1.0])
    torch.testing.assert_close(pred, expected, atol=1e-6, rtol=0)
    one = predict(make("linear"), b, steps=2)  # a single observed frame: persistence
    assert torch.equal(one, b.expand_as(one))


@pytest.mark.parametrize("name", LEARNED)
def test_untrained_learned_baseline_is_persistence(name):
    # The output layer starts at zero (a residual on the input frame); see baselines.py.
    context = torch.rand(2, 3, 1, SIZE, SIZE)
    pred = predict(make(name), context, steps=3)
    assert torch.equal(pred, context[:, -1:].expand_as(pred))


@pytest.mark.parametrize("name", LEARNED)
def test_training_steps_reach_every_weight(name):
    model = make(name)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    context, target = torch.rand(2, 3, 1, SIZE, SIZE), torch.rand(2, 2, 1, SIZE, SIZE)
    losses = []
    for _ in range(2):  # the zero-initialised head passes gradient upstream from the second step on
        opt.zero_grad()
        loss = model.training_loss(context, target, sampling_p=0.5)["loss"]
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    unchanged = [k for k, v in model.state_dict().items() if torch.equal(v, before[k])]
    assert not unchanged, f"weights never updated: {unchanged}"
    assert all(torch.isfinite(torch.tensor(losses)))


def test_predrnn_memory_zigzags_across_time():
    """M leaving the top layer at t must reach the bottom layer at t+1."""
    model = make("predrnn")
    for p in model.parameters():  # give the head a non-zero map so M's effect reaches the output
        torch.nn.init.normal_(p, std=0.3)
    frame = to_model_range(torch.rand(1, 1, SIZE, SIZE))
    with torch.no_grad():
        _, state = model.step(frame, model.init_state(1, torch.device("cpu")))
        hs, cs, m, last = state
        out_a, _ = model.step(frame, (hs, cs, m, last))
        out_b, _ = model.step(frame, (hs, cs, torch.zeros_like(m), last))
    assert not torch.allclose(out_a, out_b)


def test_closed_loop_equals_feeding_own_predictions():
    """rollout's step(None) must match feeding the model its own previous output explicitly."""
    model = make("convlstm")
    for p in model.decode.parameters():
        torch.nn.init.normal_(p, std=0.1)
    x = to_model_range(torch.rand(1, 2, 1, SIZE, SIZE))
    with torch.no_grad():
        auto = rollout(model, x, 3)
        state = model.init_state(1, torch.device("cpu"))
        for t in range(2):
            out, state = model.step(x[:, t], state)
        manual = [out]
        for _ in range(2):
            out, state = model.step(out, state)
            manual.append(out)
    torch.testing.assert_close(auto, torch.stack(manual, 1))


def test_bad_configs_raise_one_sentence_errors():
    with pytest.raises(GanlstmError, match="same width"):
        build_forecaster(ForecasterConfig(model="predrnn", image_size=SIZE, hidden=(4, 8)))
    with pytest.raises(GanlstmError, match="even"):
        build_forecaster(ForecasterConfig(model="convlstm", image_size=15, hidden=(4,)))
    with pytest.raises(ValueError, match="first step"):
        make("persistence").step(None, None)


def test_trivial_baselines_have_nothing_to_train():
    for name in ("persistence", "linear"):
        model = make(name)
        assert model.trainable is False and not list(model.parameters())
    assert all(make(n).trainable for n in LEARNED)
