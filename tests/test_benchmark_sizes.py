"""`ganlstm benchmark --size`: the merger spec at 64 px by default, 32 px as before, refusals for the fixed-size specs."""
from __future__ import annotations

import pytest

from ganlstm import GanlstmError
from ganlstm.benchmark import MERGER, MERGER_QUICK, benchmark_spec
from ganlstm.cli import main


def test_the_merger_spec_defaults_to_64_px_and_keeps_32():
    spec = benchmark_spec()
    assert spec.size == 64 and spec.name == "merger-64"
    assert (spec.frames, spec.train_sequences, spec.test_sequences, spec.hidden, spec.forecaster_steps) == (
        MERGER.frames, MERGER.train_sequences, MERGER.test_sequences, MERGER.hidden, MERGER.forecaster_steps)  # same budget
    assert benchmark_spec(size=32) is MERGER
    assert benchmark_spec(size=128).size == 128
    assert benchmark_spec(quick=True) is MERGER_QUICK


def test_sizes_the_spec_cannot_run_are_refused(capsys):
    with pytest.raises(GanlstmError, match="--size 48 is not a merger benchmark size"):
        benchmark_spec(size=48)
    with pytest.raises(GanlstmError, match="runs at 16 px only"):
        benchmark_spec(quick=True, size=64)
    with pytest.raises(SystemExit) as e:
        main(["benchmark", "--quick", "--size", "64", "--out", "unused"])
    assert e.value.code == 2 and "runs at 16 px only" in capsys.readouterr().err
