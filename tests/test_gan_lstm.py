"""The GAN-prior forecaster: a frozen, embedded generator; latent steps; its losses."""
from __future__ import annotations

import pytest
import torch
from forecast_helpers import GAN, assert_recorded, gan_checkpoint, generator, model_config, run_config, simulated, train_config, trained_checkpoint

from ganlstm import GanlstmError
from ganlstm.checkpoint import load_checkpoint
from ganlstm.config import ForecasterConfig
from ganlstm.data.frames import read_collection
from ganlstm.data.windows import WindowDataset
from ganlstm.models.base import build_forecaster
from ganlstm.models.gan_lstm import GanLstm
from ganlstm.train.distributed import Dist
from ganlstm.train.forecaster import ForecastTask, load_forecaster, train_forecaster


def _model(feedback: str = "latent") -> GanLstm:
    torch.manual_seed(0)
    return build_forecaster(model_config(feedback)).load_generator(generator())


def _windows(b: int = 3, j: int = 3, k: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.rand(b, j, 1, 16, 16, generator=g), torch.rand(b, k, 1, 16, 16, generator=g)


def _g_state(model: GanLstm) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.generator.state_dict().items()}


@pytest.mark.parametrize("feedback", ["latent", "pixels"])
def test_generator_bit_identical_after_training_steps(tmp_path, feedback):
    model = _model(feedback)
    before = _g_state(model)
    assert any("running_mean" in k for k in before) and any("num_batches_tracked" in k for k in before)
    cfg = train_config(tmp_path, tmp_path / "gan.pt", model=model_config(feedback), sampling_start=0.5, sampling_end=0.5, recon_weight=0.5)
    task = ForecastTask(cfg, run_config(tmp_path), model, torch.device("cpu"), Dist(), [], total=3, steps_per_epoch=3)
    model.train()  # what fit() does: the generator must stay in eval mode regardless
    assert model.training and not model.generator.training
    weights_before = [p.clone() for p in task.params]
    for step in range(3):
        task.train_step(_windows(), step)
    after = model.generator.state_dict()
    assert before.keys() == after.keys()
    for key in before:
        assert torch.equal(before[key], after[key]), f"generator {key} changed"
    assert any(not torch.equal(a, b) for a, b in zip(weights_before, task.params)), "nothing trained"


def test_optimizer_holds_no_generator_parameter(tmp_path):
    model = _model()
    task = ForecastTask(train_config(tmp_path, tmp_path / "gan.pt"), run_config(tmp_path), model, torch.device("cpu"), Dist(), [], 1, 1)
    in_optimizer = {id(p) for group in task.optimizers["forecaster"].param_groups for p in group["params"]}
    generator_params = {id(p) for p in model.generator.parameters()}
    assert not in_optimizer & generator_params
    assert in_optimizer == {id(p) for p in model.trainable_parameters()}
    assert all(not p.requires_grad for p in model.generator.parameters())


def test_checkpoint_embeds_the_stage_one_generator(tmp_path):
    """train_forecaster loads G_ema from the GAN checkpoint; the forecaster checkpoint alone restores it."""
    data = simulated(tmp_path / "data")
    gan = gan_checkpoint(tmp_path / "gan.pt")
    run_dir = train_forecaster(train_config(data, gan), run_config(tmp_path / "runs"))
    g_ema = load_checkpoint(gan, kind="gan")["models"]["G_ema"]
    model, ckpt = load_forecaster(run_dir / "last.pt", device="cpu")
    assert ckpt["config"]["model"]["gan"] == ckpt["config"]["train"]["model"]["gan"]
    for key, value in g_ema.items():
        assert torch.equal(model.generator.state_dict()[key], value), key
    assert not model.generator.training and not any(p.requires_grad for p in model.generator.parameters())


def test_untrained_model_is_latent_persistence():
    """The head starts at zero, so the first prediction is G's reading of the last observed frame."""
    model = _model().eval()
    context, _ = _windows()
    with torch.no_grad():
        from ganlstm.rollout import rollout

        pred = rollout(model, context * 2 - 1, 2)  # (B, 2, C, H, W)
        recon = model.generator(model.encode(context[:, -1] * 2 - 1))
    assert torch.allclose(pred[:, 0], recon, atol=1e-6) and torch.allclose(pred[:, 1], recon, atol=1e-6)


@pytest.mark.parametrize("feedback", ["latent", "pixels"])
def test_training_loss_terms(feedback):
    model = _model(feedback)
    context, target = _windows()
    losses = model.training_loss(context, target, sampling_p=0.0, recon_weight=0.5)
    expected = {"pixel", "recon", "loss"} | ({"lift"} if feedback == "latent" else set())
    assert set(losses) == expected
    total = losses["pixel"] + 0.5 * losses["recon"] + losses.get("lift", 0.0)
    assert torch.allclose(losses["loss"], total)
    losses["loss"].backward()
    assert all(p.grad is None for p in model.generator.parameters())
    assert all(p.grad is not None for p in model.trainable_parameters())


def test_latent_feedback_is_trained_to_match_pixel_feedback():
    """The lift target is what the encoder sees on G's rendering of the encoder's own reading."""
    model = _model("latent")
    context, target = _windows()
    losses = model.training_loss(context, target, sampling_p=1.0)
    with torch.no_grad():
        z = model.encode(context[:, -1] * 2 - 1)
        expected = torch.nn.functional.mse_loss(model.lift(z), model.encoder(model.generator(z)))
    assert torch.allclose(losses["lift"], expected)


def test_config_errors():
    with pytest.raises(GanlstmError, match="needs the generator's architecture"):
        build_forecaster(ForecasterConfig(model="gan_lstm", image_size=16, channels=1))
    with pytest.raises(GanlstmError, match="unknown feedback"):
        build_forecaster(model_config("bogus"))
    with pytest.raises(GanlstmError, match="generator draws"):
        build_forecaster(ForecasterConfig(model="gan_lstm", image_size=32, channels=1, gan=GAN))
    with pytest.raises(GanlstmError, match="does not match"):
        build_forecaster(model_config()).load_generator(build_forecaster(ForecasterConfig(
            model="gan_lstm", image_size=32, channels=1, gan=type(GAN)(image_size=32, channels=1, nz=8, ngf=8, latent_grid=1))).generator)


def test_windows_from_simulated_data_train(tmp_path):
    """One real batch of simulated windows through the loss: finite, and the generator receives no gradient."""
    data = simulated(tmp_path / "data", sequences=2, frames=8)
    seqs = [a for _, a in read_collection(data)]
    context, target = (torch.stack(x) for x in zip(*[WindowDataset(seqs, 3, 2)[i] for i in range(2)]))
    model = _model("pixels")
    loss = model.training_loss(context, target, sampling_p=0.5, recon_weight=0.1)["loss"]
    assert torch.isfinite(loss)


def test_spatial_latent_generator_trains_and_predicts(tmp_path):
    import dataclasses

    from ganlstm.models.dcgan import build_generator
    from ganlstm.rollout import predict

    gan = dataclasses.replace(GAN, nz=32, latent_grid=4)  # z (B, 32) drawn as a (2, 4, 4) grid
    cfg = dataclasses.replace(model_config("pixels"), gan=gan)
    torch.manual_seed(0)
    model = build_forecaster(cfg).load_generator(build_generator(gan).eval())
    task = ForecastTask(train_config(tmp_path, tmp_path / "gan.pt", model=cfg), run_config(tmp_path), model,
                        torch.device("cpu"), Dist(), [], total=2, steps_per_epoch=2)
    before = [p.clone() for p in task.params]
    for step in range(2):
        assert torch.isfinite(task.train_step(_windows(), step)["loss"])
    assert any(not torch.equal(a, b) for a, b in zip(before, task.params))
    out = predict(model.eval(), _windows()[0], 4)  # (B, 4, 1, 16, 16) in [0, 1]
    assert out.shape == (3, 4, 1, 16, 16) and 0 <= out.min() and out.max() <= 1


def test_reader_warmup_trains_only_the_reader_then_everything(tmp_path):
    model = _model("pixels")
    cfg = train_config(tmp_path, tmp_path / "gan.pt", model=model_config("pixels"), reader_warmup=2, alpha=0.8)
    task = ForecastTask(cfg, run_config(tmp_path), model, torch.device("cpu"), Dist(), [], total=4, steps_per_epoch=4)
    reader = {n for n, _ in model.named_parameters() if n.startswith(("encoder.", "read."))}
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    snap = lambda: {n: p.detach().clone() for n, p in trainable.items()}  # noqa: E731
    before = snap()
    frames = _windows()
    target = frames[1]
    x = torch.cat(frames, 1).flatten(0, 1)
    err = lambda: float(((model.generator(model.encode(x * 2 - 1)) + 1) / 2 - x).pow(2).mean())  # noqa: E731
    for step in range(2):  # warm-up: the reader only
        out = task.train_step(frames, step)
        assert "pixel" not in out and torch.isfinite(out["recon"]) and out["sampling_p"] == 1.0
    after = snap()
    moved = {n for n in trainable if not torch.equal(before[n], after[n])}
    assert moved and moved <= reader  # nothing but the reader moved
    out = task.train_step(frames, 2)  # the main phase: scheduled sampling starts from sampling_start
    assert torch.isfinite(out["pixel"]) and out["sampling_p"] == 1.0
    task.train_step(frames, 3)
    assert any(not torch.equal(after[n], p) for n, p in trainable.items() if n not in reader)
    assert target.shape[1] == 2


def test_reader_warmup_improves_the_reading_and_is_gan_lstm_only(tmp_path):
    model = _model("pixels")
    with torch.no_grad():  # a random G with DCGAN's N(0, 0.02) init draws nearly the same frame for every z; widen it
        for m in model.generator.modules():
            if isinstance(m, torch.nn.ConvTranspose2d):
                m.weight.mul_(8)
    cfg = train_config(tmp_path, tmp_path / "gan.pt", model=model_config("pixels"), reader_warmup=150, lr=3e-3)
    task = ForecastTask(cfg, run_config(tmp_path), model, torch.device("cpu"), Dist(), [], total=150, steps_per_epoch=150)
    g = torch.Generator().manual_seed(4)
    with torch.no_grad():
        frames = model.generator(torch.randn(30, GAN.nz, generator=g)).add(1).div(2).view(3, 10, 1, 16, 16)  # frames G can draw
    x = frames.flatten(0, 1)
    err = lambda: float(((model.generator(model.encode(x * 2 - 1)) + 1) / 2 - x).pow(2).mean().detach())  # noqa: E731
    start = err()
    assert x.std() > 0.05
    for step in range(150):
        task.train_step((frames[:, :6], frames[:, 6:]), step)
    assert err() < 0.5 * start

    baseline = train_config(tmp_path / "no-data-needed", "", model=ForecasterConfig(model="convlstm", image_size=16, hidden=(4,)), reader_warmup=5)
    with pytest.raises(GanlstmError, match="--reader-warmup is for the gan_lstm model"):
        train_forecaster(baseline, run_config(tmp_path / "runs"))


def test_latent_cap_bounds_every_predicted_latent_and_off_is_identity():
    import dataclasses

    from ganlstm.rollout import rollout_outputs

    capped = build_forecaster(dataclasses.replace(model_config("pixels"), latent_cap=0.5)).load_generator(generator())
    free = build_forecaster(dataclasses.replace(model_config("pixels"), latent_cap=0.0)).load_generator(generator())
    free.load_state_dict(capped.state_dict())
    with torch.no_grad():  # a head that pushes every latent outwards, as drifting rollouts do
        for m in (capped, free):
            m.head.net[-1].bias.fill_(2.0)
    context = torch.rand(3, 4, 1, 16, 16) * 2 - 1
    with torch.no_grad():
        z_cap, z_free = rollout_outputs(capped, context, 6), rollout_outputs(free, context, 6)  # (3, 6, nz)
    rms = lambda z: z.pow(2).mean(-1).sqrt()  # noqa: E731
    assert rms(z_free).max() > 2 and torch.all(rms(z_cap) <= 0.5 + 1e-5)
    # Direction is kept: the first capped latent is the free one scaled down (both start from the same reading).
    assert torch.allclose(z_cap[:, 0], z_free[:, 0] * (0.5 / rms(z_free[:, 0])).unsqueeze(-1), atol=1e-5)
    small = torch.randn(4, GAN.nz) * 0.1
    assert torch.equal(capped.cap(small), small) and torch.equal(free.cap(small * 100), small * 100)
    assert ForecasterConfig().latent_cap == 1.0  # the recipe: on by default
    with pytest.raises(GanlstmError, match="latent_cap"):
        build_forecaster(dataclasses.replace(model_config(), latent_cap=-1.0))


def _anchored(decay: float) -> GanLstm:
    import dataclasses

    torch.manual_seed(0)
    return build_forecaster(dataclasses.replace(model_config("pixels"), anchor_decay=decay)).load_generator(generator()).eval()


def test_anchor_adds_the_decaying_reading_error_to_predicted_frames():
    """Untrained (zero) head: every raw frame is G(read(x_J)); anchoring adds decay**(k-1) of x_J - G(read(x_J))."""
    from ganlstm.rollout import iter_predict, predict

    decay = 0.5
    plain, anchored = _anchored(0.0), _anchored(decay)
    anchored.load_state_dict(plain.state_dict())
    context, _ = _windows(j=3)
    with torch.no_grad():
        drawn = (plain.generator(plain.encode(context[:, -1] * 2 - 1)) + 1) / 2  # (3, 1, 16, 16) in [0, 1]
    residual = context[:, -1] - drawn
    assert residual.abs().mean() > 0.05  # the generator does not draw the last frame exactly
    raw, pred = predict(plain, context, 5), predict(anchored, context, 5)  # (3, 5, 1, 16, 16)
    for k in range(5):
        torch.testing.assert_close(raw[:, k], drawn, atol=1e-5, rtol=0)
        torch.testing.assert_close(pred[:, k], (drawn + decay**k * residual).clamp(0, 1), atol=1e-5, rtol=0)
    # Horizon 1 is the observed frame moved by the predicted change; with no change, that is persistence.
    torch.testing.assert_close(pred[:, 0], context[:, -1], atol=1e-5, rtol=0)
    # Streamed in chunks, the k-th frame still gets decay**(k-1): the chunks continue the horizon count.
    torch.testing.assert_close(torch.cat(list(iter_predict(anchored, context, 5, chunk=2)), dim=1), pred, atol=1e-6, rtol=0)
    assert plain.correction(context * 2 - 1) is None  # off: not even the extra generator call


def test_anchor_decay_is_checked():
    import dataclasses

    for bad in (-0.1, 1.5):
        with pytest.raises(GanlstmError, match=r"anchor_decay=.* must be in \[0, 1\]"):
            build_forecaster(dataclasses.replace(model_config(), anchor_decay=bad))


def test_anchor_decay_is_recorded_in_a_checkpoint_and_can_be_overridden(tmp_path):
    from ganlstm import Predictor
    from ganlstm.train.prediction_settings import set_anchor_decay

    ckpt = trained_checkpoint(tmp_path)
    weights = torch.load(ckpt, weights_only=True)["models"]
    assert load_forecaster(ckpt, "cpu")[0].anchor_decay == 0
    set_anchor_decay(ckpt, 0.5)
    assert_recorded(ckpt, weights, "anchor_decay", 0.5)
    assert Predictor.from_checkpoint(ckpt, device="cpu").model.anchor_decay == 0.5
    off = Predictor.from_checkpoint(ckpt, device="cpu", anchor_decay=0)
    assert off.model.anchor_decay == 0 and off.model.cfg.anchor_decay == 0
    frames = torch.rand(4, 1, 16, 16, generator=torch.Generator().manual_seed(3)).numpy()
    on = Predictor.from_checkpoint(ckpt, device="cpu").predict(frames, 2)
    assert not torch.allclose(torch.as_tensor(on), torch.as_tensor(off.predict(frames, 2)))


def test_anchor_decay_is_gan_lstm_only(tmp_path):
    from ganlstm.train.prediction_settings import set_anchor_decay

    ckpt = trained_checkpoint(tmp_path, model=ForecasterConfig(model="convlstm", hidden=(4,)))
    with pytest.raises(GanlstmError, match="applies to gan_lstm checkpoints only"):
        load_forecaster(ckpt, "cpu", anchor_decay=0.5)
    with pytest.raises(GanlstmError, match="applies to gan_lstm checkpoints only"):
        set_anchor_decay(ckpt, 0.5)