"""Issue 18, item 10: ganlstm's outputs are never read back as data.

``predict`` without ``--out`` used to write ``<frames>_predicted`` beside the sequence, i.e. inside
its collection, so the next training run read the predictions as one more sequence. The default
is now beside the collection, and every folder ganlstm writes predictions or metrics into carries
``.ganlstm-output``; a collection's reader skips such folders and says so once.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from ganlstm.config import FrameOptions
from ganlstm.data.frame_files import OUTPUT_MARKER, SkippedOutputWarning
from ganlstm.data.frames import read_collection
from reliability_helpers import SIZE, cli, one_thread, tiny_runs  # noqa: F401 - fixture

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.filterwarnings("ignore:no validation")]
OPTS = FrameOptions(size=SIZE)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    return tiny_runs(tmp_path_factory.mktemp("r3out"))


def _names(path: Path) -> list[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("error", SkippedOutputWarning)
        return [n for n, _ in read_collection(path, OPTS)]


def test_predict_by_default_writes_beside_the_collection_not_inside_it(runs, tmp_path, capsys):
    import shutil

    data = shutil.copytree(runs["data"], tmp_path / "data")
    before = _names(data)
    code, err = cli(["predict", "--frames", data / "seq_0001", "--steps", 2, "--checkpoint", runs["encoder"], "--device", "cpu"], capsys)
    assert code == 0, err
    out = tmp_path / "data_predicted" / "seq_0001"
    assert len(list(out.glob("*.png"))) == 2 and (out / OUTPUT_MARKER).is_file()
    assert _names(data) == before, "the prediction became part of the collection"


def test_a_lone_sequence_gets_its_prediction_beside_it(runs, tmp_path, capsys):
    movie = tmp_path / "mine" / "movie.npy"
    movie.parent.mkdir()
    np.save(movie, np.random.default_rng(0).random((5, SIZE, SIZE), dtype=np.float32))
    code, err = cli(["predict", "--frames", movie, "--steps", 1, "--checkpoint", runs["encoder"], "--device", "cpu"], capsys)
    assert code == 0, err
    assert (tmp_path / "mine" / "movie_predicted" / OUTPUT_MARKER).is_file()


def test_readers_skip_marked_output_folders_inside_a_collection_and_say_so_once(runs, tmp_path, capsys):
    import shutil

    data = shutil.copytree(runs["data"], tmp_path / "data")
    before = _names(data)
    for args in (["predict", "--frames", data / "seq_0000", "--steps", 2, "--out", data / "my_predictions"],
                 ["evaluate", "--data", data / "seq_0002", "--context", 3, "--horizon", 2, "--out", data / "scores"]):
        code, err = cli([*args, "--checkpoint", runs["encoder"], "--device", "cpu"], capsys)
        assert code == 0, err
    assert (data / "my_predictions" / OUTPUT_MARKER).is_file() and (data / "scores" / OUTPUT_MARKER).is_file()
    with pytest.warns(SkippedOutputWarning) as caught:
        names = [n for n, _ in read_collection(data, OPTS)]
    assert names == before
    assert len(caught) == 1 and "my_predictions, scores" in str(caught[0].message), [str(w.message) for w in caught]
    (data / "my_predictions" / OUTPUT_MARKER).unlink()  # the user's way to read it as data after all
    assert "my_predictions" in [n for n, _ in read_collection(data, OPTS)]
