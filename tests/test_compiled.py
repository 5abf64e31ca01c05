"""``predict --compile`` (:mod:`ganlstm.compiled`): compiled rollouts give the eager frames, failures fall back, the flag is wired.

On CPU a real ``torch.compile`` of a tiny 16 px GAN-LSTM is checked against eager; the fallback and
the wiring run with a monkeypatched ``torch.compile``. The CUDA-graph tests (marked ``cuda``) skip
without a GPU.
"""
from __future__ import annotations

import shutil
import warnings

import pytest
import torch
from forecast_helpers import SIZE, model_config, trained_checkpoint

import ganlstm.compiled as compiled_module
from ganlstm import Predictor
from ganlstm.cli import main
from ganlstm.compiled import CPU_DECISION, CPU_MIN_BATCH, CompileWarning, compile_for_prediction, compile_parts
from ganlstm.rollout import predict, rollout
from ganlstm.train.forecaster import load_forecaster

ATOL = 1e-4  # in [0, 1] units; measured on CPU: 1.3e-6 (shipped checkpoint), 6e-8 (the 64 px architecture)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Tiny trained 16 px GAN-LSTMs: pixel feedback (step and frame_of compiled) and latent feedback (step only)."""
    root = tmp_path_factory.mktemp("compiled")
    return {fb: trained_checkpoint(root / fb, model=model_config(fb)) for fb in ("pixels", "latent")}


def frames(batch: int, t: int = 4) -> torch.Tensor:
    return torch.rand(batch, t, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(batch))


def twins(path, device: str = "cpu"):
    """The same checkpoint loaded twice, with the head nudged alike so the latents move."""
    models = []
    for _ in range(2):
        m = load_forecaster(path, device)[0].eval()
        with torch.no_grad():
            m.head.net[-1].weight.copy_(torch.randn(m.head.net[-1].weight.shape, generator=torch.Generator().manual_seed(0)) * 0.05)
        models.append(m)
    return models


def counting_compile(calls: list):
    """A stand-in for ``torch.compile`` that counts the calls of what it "compiles" and runs it as is."""
    def fake(fn, **_):
        def run(*args, **kwargs):
            calls.append(fn.__name__)
            return fn(*args, **kwargs)
        return run
    return fake


# ---------------------------------------------------------------- CPU: a real compile


@pytest.mark.slow
@pytest.mark.skipif(not any(shutil.which(c) for c in ("g++", "c++", "clang++")), reason="torch.compile on CPU needs a C++ compiler")
def test_compiled_step_gives_the_eager_frames_on_cpu(checkpoints):
    eager, model = twins(checkpoints["pixels"])
    assert compile_parts(model, "default") == ["step", "frame_of"]
    x = frames(2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CompileWarning)  # a fallback would hide the comparison
        got = predict(model, x, 5)
    torch.testing.assert_close(got, predict(eager, x, 5), atol=ATOL, rtol=0)
    assert {"step", "frame_of"} <= set(vars(model))  # still compiled: nothing fell back


# ---------------------------------------------------------------- fallback and guards


def test_compile_refused_falls_back_with_one_warning(checkpoints, monkeypatch):
    eager, model = twins(checkpoints["pixels"])

    def refuse(*_, **__):
        raise RuntimeError("Windows not yet supported for torch.compile\nsecond line of detail")
    monkeypatch.setattr(torch, "compile", refuse)
    with pytest.warns(CompileWarning) as caught:
        assert compile_parts(model, "default") == []
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "RuntimeError: Windows not yet supported for torch.compile" in message and "second line" not in message
    assert "eagerly" in message and "\n" not in message
    x = frames(1)
    torch.testing.assert_close(predict(model, x, 3), predict(eager, x, 3), atol=0, rtol=0)


def test_failure_at_the_first_call_falls_back_once_and_answers_eagerly(checkpoints, monkeypatch):
    eager, model = twins(checkpoints["latent"])

    def broken(fn, **_):
        def run(*args, **kwargs):
            raise RuntimeError("dynamo: an operation it cannot trace")
        return run
    monkeypatch.setattr(torch, "compile", broken)
    assert compile_parts(model, "default") == ["step"]
    x = frames(2)
    with pytest.warns(CompileWarning) as caught:
        got = predict(model, x, 4)
        again = predict(model, x, 4)
    assert len(caught) == 1 and "eagerly" in str(caught[0].message)
    assert "step" not in vars(model)  # the eager method is back for good
    torch.testing.assert_close(got, predict(eager, x, 4), atol=0, rtol=0)
    torch.testing.assert_close(again, got, atol=0, rtol=0)


def test_an_error_of_the_model_itself_is_raised_not_hidden(checkpoints, monkeypatch):
    _, model = twins(checkpoints["latent"])
    monkeypatch.setattr(torch, "compile", counting_compile([]))
    compile_parts(model, "default")
    with warnings.catch_warnings():
        warnings.simplefilter("error", CompileWarning)
        with torch.inference_mode(), pytest.raises(ValueError, match="first step needs an observed frame"):
            model.step(None, model.init_state(1, torch.device("cpu")))


def test_training_and_ensembles_run_the_eager_step(checkpoints, monkeypatch):
    _, model = twins(checkpoints["latent"])
    calls: list[str] = []
    monkeypatch.setattr(torch, "compile", counting_compile(calls))
    compile_parts(model, "default")
    x = frames(1) * 2 - 1
    rollout(model, x, 3)  # autograd on: as in training
    assert calls == []
    model.latent_noise = 0.1  # an ensemble member's random nudges
    with torch.inference_mode():
        rollout(model, x, 3)
    assert calls == []
    model.latent_noise = 0.0
    predict(model, frames(1), 3)
    assert calls and set(calls) == {"step"}


# ---------------------------------------------------------------- wiring


def test_cpu_compiles_only_batches_that_measured_faster(checkpoints, monkeypatch):
    calls: list[str] = []
    monkeypatch.setattr(torch, "compile", counting_compile(calls))
    p = Predictor.from_checkpoint(checkpoints["pixels"], device="cpu", compile=True)
    assert p.compile_note == CPU_DECISION and f"{CPU_MIN_BATCH} or more" in p.compile_note
    assert {"step", "frame_of"} <= set(vars(p.model))
    p.predict(frames(1)[0].numpy(), 3)  # one sequence: eager
    assert calls == []
    p.predict(frames(CPU_MIN_BATCH).numpy(), 3)
    assert set(calls) == {"step", "frame_of"}
    assert Predictor.from_checkpoint(checkpoints["pixels"], device="cpu").compile_note is None


def test_from_checkpoint_and_predict_compile_reach_compile_for_prediction(checkpoints, monkeypatch, tmp_path, capsys):
    seen = []

    def spy(model, device):
        seen.append(torch.device(device).type)
        return model, "compiled (spy)"
    monkeypatch.setattr(compiled_module, "compile_for_prediction", spy)
    p = Predictor.from_checkpoint(checkpoints["pixels"], device="cpu", compile=True)
    assert p.compile_note == "compiled (spy)" and seen == ["cpu"]
    from ganlstm.data.frame_writer import write_frames

    observed = tmp_path / "observed"
    write_frames(torch.rand(4, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(0)), observed)
    main(["predict", "--frames", str(observed), "--steps", "2", "--checkpoint", str(checkpoints["pixels"]),
          "--out", str(tmp_path / "pred"), "--device", "cpu", "--compile"])
    assert seen == ["cpu", "cpu"]
    err = capsys.readouterr().err
    assert "--compile: compiled (spy)" in err


def test_cli_compile_on_cpu_says_what_it_did(checkpoints, tmp_path, capsys):
    from ganlstm.data.frame_writer import write_frames

    observed = tmp_path / "observed"
    write_frames(torch.rand(4, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(0)), observed)
    main(["predict", "--frames", str(observed), "--steps", "2", "--checkpoint", str(checkpoints["latent"]),
          "--out", str(tmp_path / "pred"), "--device", "cpu", "--compile"])
    captured = capsys.readouterr()
    assert "wrote 2 predicted frames" in captured.out and f"--compile: {CPU_DECISION}" in captured.err


def test_other_devices_stay_eager(checkpoints):
    model = load_forecaster(checkpoints["latent"], "cpu")[0]
    _, note = compile_for_prediction(model, "mps")
    assert "not used on mps" in note and "step" not in vars(model)


# ---------------------------------------------------------------- CUDA graphs


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("feedback", ["pixels", "latent"])
@pytest.mark.parametrize("batch", [1, 8])
def test_cuda_graphs_give_the_eager_frames(checkpoints, feedback, batch):
    eager, model = twins(checkpoints[feedback], "cuda")
    model, note = compile_for_prediction(model, "cuda")
    assert "CUDA graphs" in note
    x = frames(batch)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CompileWarning)
        torch.testing.assert_close(predict(model, x, 6), predict(eager, x, 6), atol=ATOL, rtol=0)
        torch.testing.assert_close(predict(model, x, 6), predict(eager, x, 6), atol=ATOL, rtol=0)  # replayed graphs


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("feedback", ["pixels", "latent"])
def test_cuda_graph_outputs_are_not_overwritten_by_the_next_call(checkpoints, feedback):
    eager, model = twins(checkpoints[feedback], "cuda")
    compile_for_prediction(model, "cuda")
    a, b = (frames(2, 4).cuda() * 2 - 1), (frames(3, 4)[:2].cuda() * 2 - 1)
    with torch.inference_mode():
        first = rollout(model, a, 5)  # stays on the GPU: would alias the graph's memory if not copied out
        kept = first.clone()
        second = rollout(model, b, 5)
        torch.testing.assert_close(first, kept, atol=0, rtol=0)  # the second prediction left the first alone
        torch.testing.assert_close(first, rollout(eager, a, 5), atol=ATOL, rtol=0)
        torch.testing.assert_close(second, rollout(eager, b, 5), atol=ATOL, rtol=0)
        out1, state1 = model.step(a[:, 0], model.init_state(2, a.device))
        z1 = out1.clone()
        model.step(None, state1)
        torch.testing.assert_close(out1, z1, atol=0, rtol=0)
