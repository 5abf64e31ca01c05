"""ganlstm.model_cost: parameters (frozen generator apart), GFLOP per predicted frame, measured frames/s; the benchmark's zoo."""
from __future__ import annotations

import pytest
import torch
from forecast_helpers import model_config
from reliability_helpers import one_thread  # noqa: F401 - fixture

import ganlstm.model_cost as model_cost
from ganlstm.benchmark import LEARNED_MODELS, MERGER, MERGER_QUICK, MNIST
from ganlstm.config import ForecasterConfig
from ganlstm.evaluation import trivial_baselines
from ganlstm.flops import count_params
from ganlstm.model_cost import format_costs, measure_costs, param_counts
from ganlstm.models.base import FORECASTERS, _import_builtin_models, build_forecaster

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = 16


def zoo(size: int = SIZE) -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    models = dict(trivial_baselines())
    for name in ("convgru", "simvp"):
        models[name] = build_forecaster(ForecasterConfig(model=name, image_size=size, channels=1, hidden=(8, 8)))
    models["gan_lstm"] = build_forecaster(model_config())  # forecast_helpers' 16-px GAN prior
    return models


def test_costs_are_positive_and_the_generator_is_counted_apart():
    models = zoo()
    costs = measure_costs(models, size=SIZE, context=2, horizon=3, batch=2, rounds=2)
    assert list(costs) == list(models)
    for name, c in costs.items():
        assert c.frames_per_second > 0 and len(c.seconds) == 2 and all(s > 0 for s in c.seconds) and c.batch == 2
        if name in ("persistence", "linear"):
            assert (c.params, c.frozen_params, c.gflop_per_frame) == (0, 0, 0.0)
        else:
            assert c.params > 0 and c.gflop_per_frame > 0
    gen = sum(p.numel() for p in models["gan_lstm"].generator.parameters())
    assert costs["gan_lstm"].frozen_params == gen > 0 and costs["convgru"].frozen_params == costs["simvp"].frozen_params == 0
    assert costs["gan_lstm"].params == count_params(models["gan_lstm"]) == param_counts(models["gan_lstm"])[0]
    text = format_costs(costs)
    assert "frozen params" in text and all(name in text for name in models)


def test_frames_per_second_is_timed_in_interleaved_rounds(monkeypatch):
    """The figure comes from the clock around each rollout (median round), models taking turns."""
    models = zoo()
    calls, clock = [], [0.0]
    duration = {"persistence": 0.01, "linear": 0.02, "convgru": 1.0, "simvp": 2.0, "gan_lstm": 4.0}
    real = model_cost.predict

    def fake_predict(model, frames, steps):
        name = next(n for n, m in models.items() if m is model)
        calls.append(name)
        clock[0] += duration[name] * (1 + len(calls) % 3)  # rounds differ: 1x, 2x, 3x ...
        return real(model, frames, steps)

    monkeypatch.setattr(model_cost, "predict", fake_predict)
    monkeypatch.setattr(model_cost.time, "perf_counter", lambda: clock[0])
    costs = measure_costs(models, size=SIZE, context=2, horizon=3, batch=2, rounds=3)
    names = list(models)
    assert calls == names + names * 3  # one untimed warm-up each, then three interleaved rounds
    for name, c in costs.items():
        assert sorted(c.seconds) == pytest.approx([duration[name] * m for m in (1, 2, 3)])
        assert c.frames_per_second == pytest.approx(2 * 3 / (2 * duration[name]))  # the median round


def test_gflop_scales_with_the_frame_size_and_real_timings_differ():
    small = measure_costs({"convgru": zoo()["convgru"]}, size=SIZE, context=2, horizon=3, batch=1, rounds=1)["convgru"]
    big_model = build_forecaster(ForecasterConfig(model="convgru", image_size=2 * SIZE, channels=1, hidden=(8, 8)))
    big = measure_costs({"convgru": big_model}, size=2 * SIZE, context=2, horizon=3, batch=1, rounds=1)["convgru"]
    assert big.gflop_per_frame == pytest.approx(4 * small.gflop_per_frame, rel=0.05) and big.params == small.params
    costs = measure_costs(zoo(), size=SIZE, context=2, horizon=3, batch=2, rounds=1)
    assert costs["persistence"].frames_per_second > costs["gan_lstm"].frames_per_second  # measured, not a constant


def test_benchmark_covers_every_trainable_model_and_widths_fit_each():
    _import_builtin_models()
    trainable = {name for name, cls in FORECASTERS.items() if getattr(cls, "trainable", True)}
    assert set(LEARNED_MODELS) == trainable and len(LEARNED_MODELS) == len(set(LEARNED_MODELS))
    for spec in (MERGER, MERGER_QUICK, MNIST):
        for name in LEARNED_MODELS:
            if name != "gan_lstm":  # needs a generator; trained in test_evaluate's benchmark --quick
                with torch.device("meta"):
                    build_forecaster(ForecasterConfig(model=name, image_size=spec.size, channels=1, hidden=spec.hidden_for(name)))
    import dataclasses

    wide = dataclasses.replace(MERGER, model_hidden=(("simvp", (64, 512)),))
    assert wide.hidden_for("simvp") == (64, 512) and wide.hidden_for("convlstm") == MERGER.hidden


def test_the_cli_default_lists_every_benchmark_model():
    from ganlstm.commands.evaluate import BENCHMARK_MODELS

    assert tuple(BENCHMARK_MODELS.split(",")) == LEARNED_MODELS


def test_every_zoo_model_trains_in_the_benchmark_path(tmp_path):
    """The learned models test_evaluate's `benchmark --quick` leaves out, trained and loaded as the benchmark does."""
    from ganlstm.benchmark import prepare_benchmark_data, train_benchmark_models
    from ganlstm.train.forecaster import load_forecaster

    zoo_models = [m for m in LEARNED_MODELS if m not in ("gan_lstm", "convlstm", "predrnn", "simvp")]
    assert zoo_models == ["convgru", "trajgru", "e3dlstm", "mim"]
    import dataclasses

    spec = dataclasses.replace(MERGER_QUICK, train_sequences=4, test_sequences=1, forecaster_steps=2)
    train_dir, _ = prepare_benchmark_data(spec, tmp_path / "data")
    paths, seconds = train_benchmark_models(spec, train_dir, tmp_path / "runs", zoo_models, {}, device="cpu", progress=False)
    assert list(paths) == list(seconds) == zoo_models
    models = {}
    for name in zoo_models:
        models[name], ckpt = load_forecaster(paths[name], "cpu")
        assert ckpt["step"] == 2 and tuple(models[name].cfg.hidden) == spec.hidden and models[name].cfg.image_size == spec.size
    costs = measure_costs(models, size=spec.size, context=2, horizon=2, batch=1, rounds=1)
    assert all(c.params > 0 and c.gflop_per_frame > 0 and c.frames_per_second > 0 for c in costs.values())
