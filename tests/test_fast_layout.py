"""ganlstm/models/fast_layout.py: exact rewrites of the generator's output layer and the encoder's layout.

* Exactness: the sub-pixel output layer and the channels_last encoder give the frames and features
  of the original layers within 1e-5 (random weights, 32 and 64 px, 1 and 3 channels, B = 1 and 16).
* Threshold: only CPU inference calls on batches of ``MIN_BATCH`` or more take the rewrites;
  smaller batches, autograd, an encoder in training mode and ``disabled()`` take the original
  layers (spied on the calls made).
* Training is untouched: with autograd on, the gradients are those of the original layers, bit for bit.
* The checkpoint format is unchanged: the same state_dict keys; the cached sub-pixel weight follows
  a ``load_state_dict`` of new weights.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ganlstm.config import ForecasterConfig, GanConfig
from ganlstm.models import fast_layout
from ganlstm.models.base import build_forecaster
from ganlstm.models.dcgan import Generator
from ganlstm.models.encoder import FrameEncoder
from ganlstm.rollout import predict


def generator(size: int, channels: int, seed: int = 0) -> Generator:
    torch.manual_seed(seed)
    g = Generator(nz=64, image_size=size, channels=channels, ngf=8, latent_grid=4).eval().requires_grad_(False)
    with torch.no_grad():
        for p in g.parameters():
            p.normal_(0, 0.2)  # larger than DCGAN's N(0, 0.02), so that the frames are far from flat
    return g.to(memory_format=torch.channels_last)  # as GanLstm holds it


def both(fn):
    """``fn()`` with the original layers and with the fast layout, under inference_mode."""
    with torch.inference_mode():
        with fast_layout.disabled():
            old = fn()
        return old, fn()


def test_subpixel_weight_is_the_transposed_convolution():
    torch.manual_seed(0)
    x, w = torch.randn(2, 5, 6, 7), torch.randn(5, 3, 4, 4)
    ref = F.conv_transpose2d(x, w, stride=2, padding=1)
    sub = F.pixel_shuffle(F.conv2d(x, fast_layout.subpixel_weight(w), padding=1), 2)
    assert sub.shape == ref.shape == (2, 3, 12, 14)
    assert (sub - ref).abs().max() < 1e-5


@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("batch", [1, 16])
def test_generator_and_encoder_frames_are_unchanged(size, channels, batch, monkeypatch):
    monkeypatch.setattr(fast_layout, "MIN_BATCH", 1)  # the rewrites themselves, at B = 1 too
    g = generator(size, channels)
    torch.manual_seed(1)
    enc = FrameEncoder(channels, size, 16).eval()
    z, x = torch.randn(batch, 64), torch.rand(batch, channels, size, size) * 2 - 1
    old, new = both(lambda: g(z))
    assert new.shape == (batch, channels, size, size) and old.std() > 0.01
    assert (new - old).abs().max() < 1e-5
    old, new = both(lambda: enc(x))
    assert new.shape == (batch, 16, 8, 8) and new.is_contiguous()
    assert (new - old).abs().max() < 1e-5


def spy(monkeypatch) -> dict:
    calls = {"subpixel": 0, "channels_last": 0}
    for name in calls:
        real = getattr(fast_layout, {"subpixel": "subpixel_conv_transpose", "channels_last": "channels_last"}[name])

        def wrapped(*args, _real=real, _name=name):
            calls[_name] += 1
            return _real(*args)
        monkeypatch.setattr(fast_layout, real.__name__, wrapped)
    return calls


def test_only_large_inference_batches_on_cpu_take_the_rewrites(monkeypatch):
    calls = spy(monkeypatch)
    g, enc = generator(32, 1), FrameEncoder(1, 32, 16).eval()
    small, large = fast_layout.MIN_BATCH - 1, fast_layout.MIN_BATCH
    with torch.inference_mode():
        g(torch.randn(small, 64)), enc(torch.rand(small, 1, 32, 32))
        assert calls == {"subpixel": 0, "channels_last": 0}
        g(torch.randn(large, 64)), enc(torch.rand(large, 1, 32, 32))
        assert calls == {"subpixel": 1, "channels_last": 1}
        with fast_layout.disabled():
            g(torch.randn(large, 64)), enc(torch.rand(large, 1, 32, 32))
        assert calls == {"subpixel": 1, "channels_last": 1} and fast_layout.ENABLED
    g(torch.randn(large, 64)), enc(torch.rand(large, 1, 32, 32))  # autograd on: training's path
    assert calls == {"subpixel": 1, "channels_last": 1}
    with torch.no_grad():
        enc.train()(torch.rand(large, 1, 32, 32))  # a trained encoder's no-grad targets (the lift's) stay as they were
    assert calls == {"subpixel": 1, "channels_last": 1}
    assert not fast_layout.applies(torch.zeros(large, 1, 32, 32, device="meta"))  # CUDA, MPS...: the original layers


def test_training_gradients_are_those_of_the_original_layers():
    g, enc = generator(32, 1), FrameEncoder(1, 32, 16)
    x, z = torch.rand(16, 1, 32, 32), torch.randn(16, 64, requires_grad=True)

    def grads():
        enc.zero_grad()
        z.grad = None
        (enc(x).square().mean() + g(z).square().mean()).backward()
        return [p.grad.clone() for p in enc.parameters()] + [z.grad.clone()]

    with_fast = grads()
    with fast_layout.disabled():
        without = grads()
    assert all(torch.equal(a, b) for a, b in zip(with_fast, without))


def test_state_dict_is_unchanged_and_the_cache_follows_new_weights():
    cfg = ForecasterConfig(model="gan_lstm", image_size=32, hidden=(8, 8), feedback="pixels",
                           gan=GanConfig(image_size=32, nz=64, ngf=8, ndf=8, latent_grid=4))
    torch.manual_seed(0)
    model = build_forecaster(cfg).eval()
    keys = list(model.state_dict())
    x = torch.rand(fast_layout.MIN_BATCH, 4, 1, 32, 32)
    predict(model, x, 3)  # fills the sub-pixel cache
    assert list(model.state_dict()) == keys and "_subpixel_cache" in model.generator.net[-2].__dict__
    other = generator(32, 1, seed=5)
    model.generator.load_state_dict(other.state_dict())  # in place: the cached weight is stale now
    new = predict(model, x, 3)
    with fast_layout.disabled():
        old = predict(model, x, 3)
    assert (new - old).abs().max() < 1e-5
    fresh = build_forecaster(cfg)
    fresh.load_state_dict(model.state_dict())  # a checkpoint written with the fast layout loads as before
