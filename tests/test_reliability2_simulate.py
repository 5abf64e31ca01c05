"""Issue 18, item 6: ``simulate`` killed anywhere resumes when the same command runs again.

A SIGKILL while the progress file (or simulation.json) is being written leaves only its temp
file (``.NAME.XXXX.tmp``, see ganlstm.checkpoint._temp_beside); the folder then holds finished
sequences and leftovers, and the same call must finish the job instead of refusing "not empty".
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from ganlstm.data import simulate as sim
from ganlstm.errors import GanlstmError

ARGS = dict(sequences=2, frames=3, size=16, seed=4)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, dict[str, bytes]]:
    out = sim.simulate_dataset(tmp_path_factory.mktemp("whole") / "sim", progress=False, **ARGS)
    return out, _files(out)


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_killed_while_writing_the_summary_resumes(finished, tmp_path):
    src, files = finished
    out = _copy(src, tmp_path / "sim")
    summary = (out / "simulation.json").read_text()
    (out / "simulation.json").unlink()
    (out / ".simulation.json.k3x9_a2.tmp").write_text(summary[: len(summary) // 2])  # cut off mid-write, unparsable
    sim.simulate_dataset(out, progress=False, **ARGS)
    assert _files(out) == files  # finished, the leftover removed, the sequences untouched


def test_killed_while_first_writing_the_progress_file_resumes(finished, tmp_path):
    src, files = finished
    out = tmp_path / "sim"
    out.mkdir()
    (out / f".{sim.PARTIAL}.0f1e2d3c.tmp").write_bytes(b"")  # the first write, killed before any byte
    sim.simulate_dataset(out, progress=False, **ARGS)
    assert _files(out) == files


def test_killed_midway_without_progress_file_resumes_and_keeps_finished_sequences(finished, tmp_path, monkeypatch):
    src, files = finished
    out = _copy(src, tmp_path / "sim")
    (out / "simulation.json").unlink()
    (out / "seq_0001" / "frame_0000.png").rename(tmp_path / "moved.png")
    (out / "seq_0001").rename(out / ".seq_0001")  # cut off while writing sequence 1
    (out / f".{sim.PARTIAL}.a1b2c3d4.tmp").write_text(json.dumps({**ARGS, "generator": "ganlstm.data.simulate"}))
    simulated: list[int] = []
    real = sim._simulate_one
    monkeypatch.setattr(sim, "_simulate_one", lambda job: simulated.append(job[1]) or real(job))
    sim.simulate_dataset(out, progress=False, **ARGS)
    assert simulated == [1] and _files(out) == files


def test_killed_after_the_summary_but_before_removing_the_progress_file_resumes(finished, tmp_path):
    src, files = finished
    out = _copy(src, tmp_path / "sim")
    (out / sim.PARTIAL).write_text(json.dumps({**ARGS, "generator": "ganlstm.data.simulate"}))
    sim.simulate_dataset(out, progress=False, **ARGS)
    assert _files(out) == files
    with pytest.raises(GanlstmError, match="not empty; pass --overwrite"):  # finished: no longer resumable
        sim.simulate_dataset(out, progress=False, **ARGS)


def test_leftovers_of_other_settings_or_foreign_files_are_still_refused(finished, tmp_path):
    src, _ = finished
    out = _copy(src, tmp_path / "sim")
    (out / "simulation.json").unlink()
    for other in (dict(ARGS, seed=5), dict(ARGS, frames=4), dict(ARGS, size=32), dict(ARGS, sequences=1)):
        with pytest.raises(GanlstmError, match="not empty; pass --overwrite"):  # the sequences show other settings
            sim.simulate_dataset(out, progress=False, **other)
    (out / ".simulation.json.zz.tmp").write_text(json.dumps({**ARGS, "seed": 9, "generator": "ganlstm.data.simulate"}))
    with pytest.raises(GanlstmError, match=r"interrupted simulation with other settings: seed 9 \(now 4\)"):
        sim.simulate_dataset(out, progress=False, **ARGS)
    (out / ".simulation.json.zz.tmp").unlink()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(GanlstmError, match="not empty; pass --overwrite"):
        sim.simulate_dataset(out, progress=False, **ARGS)
    assert (out / "notes.txt").read_text() == "mine"
