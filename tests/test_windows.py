"""Windows and frames as datasets, and splits by sequence."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from ganlstm.data.windows import FrameDataset, WindowDataset, split_by_sequence
from ganlstm.errors import GanlstmError


def numbered(length: int, seq_id: int = 0, c: int = 1, hw: int = 4) -> torch.Tensor:
    """(length, c, hw, hw) frames whose every pixel encodes (sequence, frame): seq_id/10 + t/1000."""
    t = torch.arange(length, dtype=torch.float32) / 1000 + seq_id / 10
    return t.view(-1, 1, 1, 1).expand(length, c, hw, hw).contiguous()


def ids(frames: torch.Tensor) -> list[tuple[int, int]]:
    v = frames[:, 0, 0, 0].double()
    return [(int(x * 10 + 1e-6), round((x * 1000) % 100)) for x in v.tolist()]


def test_window_count_and_content_across_sequences():
    seqs = [numbered(8, 0), numbered(3, 1), numbered(6, 2)]  # the 3-frame one is too short for 3 + 2
    ds = WindowDataset(seqs, context=3, horizon=2)
    assert len(ds) == (8 - 5 + 1) + (6 - 5 + 1)
    assert ds.skipped == [1]
    ctx, tgt = ds[4]  # first window of sequence 2
    assert ctx.shape == (3, 1, 4, 4) and tgt.shape == (2, 1, 4, 4)
    assert ctx.dtype == tgt.dtype == torch.float32
    assert ids(ctx) == [(2, 0), (2, 1), (2, 2)] and ids(tgt) == [(2, 3), (2, 4)]
    assert ids(ds[-1][1]) == [(2, 4), (2, 5)]
    with pytest.raises(IndexError):
        ds[len(ds)]


@pytest.mark.parametrize("stride,expect", [(1, 6), (2, 3), (4, 2), (10, 1)])
def test_stride(stride, expect):
    ds = WindowDataset([numbered(10)], context=2, horizon=3, stride=stride)
    assert len(ds) == expect
    assert [ds.locate(i) for i in range(len(ds))] == [(0, i * stride) for i in range(expect)]


def test_original_project_lengths_j20_k30():
    ds = WindowDataset([numbered(60, 0, c=3), numbered(49, 1, c=3)], context=20, horizon=30)
    assert len(ds) == 11 and ds.skipped == [1]
    ctx, tgt = ds[10]
    assert ctx.shape == (20, 3, 4, 4) and tgt.shape == (30, 3, 4, 4)
    assert ids(ctx)[0] == (0, 10) and ids(tgt)[-1] == (0, 59)
    batch_ctx, batch_tgt = next(iter(DataLoader(ds, batch_size=4)))
    assert batch_ctx.shape == (4, 20, 3, 4, 4) and batch_tgt.shape == (4, 30, 3, 4, 4)


def test_items_are_views_of_one_copy():
    seq = numbered(12)
    ds = WindowDataset([seq], context=4, horizon=4)
    ctx, tgt = ds[2]
    assert ds.sequences[0].data_ptr() == seq.data_ptr()  # float32 input kept, not copied
    assert ctx.untyped_storage().data_ptr() == tgt.untyped_storage().data_ptr() == seq.untyped_storage().data_ptr()


def test_numpy_input_is_converted_once():
    arr = numbered(6).numpy().astype(np.float64)
    ds = WindowDataset([arr], context=2, horizon=2)
    assert ds.sequences[0].dtype == torch.float32 and ds[0][0].dtype == torch.float32


def test_none_long_enough_names_the_longest():
    with pytest.raises(GanlstmError, match=r"the longest has 49 frames but context\+horizon needs 50"):
        WindowDataset([numbered(30), numbered(49)], context=20, horizon=30)


@pytest.mark.parametrize(
    "seqs,kwargs,words",
    [
        ([], {}, "no sequences"),
        ([numbered(20, hw=4), numbered(20, hw=8)], {}, r"shape \(1, 8, 8\).*--size"),
        ([numbered(20)[:, 0]], {}, r"\(T, C, H, W\)"),
        ([numbered(20) * 300], {}, r"outside \[0, 1\]"),
        ([torch.full((20, 1, 2, 2), float("nan"))], {}, "NaN"),
        ([numbered(20)], {"context": 0}, "context=0"),
        ([numbered(20)], {"stride": 1.5}, "stride=1.5"),
    ],
)
def test_window_input_errors(seqs, kwargs, words):
    with pytest.raises(GanlstmError, match=words):
        WindowDataset(seqs, **kwargs)


def test_frame_dataset_yields_every_frame_once():
    seqs = [numbered(3, 0), numbered(0, 1), numbered(2, 2)]
    ds = FrameDataset(seqs)
    assert len(ds) == 5
    assert [ids(ds[i][None])[0] for i in range(5)] == [(0, 0), (0, 1), (0, 2), (2, 0), (2, 1)]
    assert ds[0].shape == (1, 4, 4)
    with pytest.raises(GanlstmError, match="hold no frames"):
        FrameDataset([numbered(0)])


NAMES = [f"merger_{i}" for i in range(20)]


def test_split_is_deterministic_disjoint_and_covering():
    a = split_by_sequence(NAMES, 0.1, 0.1, seed=3)
    assert a == split_by_sequence(NAMES, 0.1, 0.1, seed=3)
    assert (len(a["train"]), len(a["val"]), len(a["test"])) == (16, 2, 2)
    assert sorted(a["train"] + a["val"] + a["test"]) == list(range(20))
    others = [split_by_sequence(NAMES, 0.1, 0.1, seed=s) for s in range(4, 8)]
    assert any(o["test"] != a["test"] for o in others)


def test_split_follows_names_not_their_order():
    shuffled = list(reversed(NAMES))
    a, b = split_by_sequence(NAMES, seed=1), split_by_sequence(shuffled, seed=1)
    for key in a:
        assert sorted(NAMES[i] for i in a[key]) == sorted(shuffled[i] for i in b[key])


@pytest.mark.parametrize("n", range(1, 31))
@pytest.mark.parametrize("val,test", [(0.1, 0.1), (0.0, 0.2), (0.5, 0.4)])
def test_split_invariants(n, val, test):
    s = split_by_sequence([f"s{i}" for i in range(n)], val, test, seed=n)
    assert sorted(s["train"] + s["val"] + s["test"]) == list(range(n))  # every sequence exactly once
    assert len(s["train"]) >= 1
    assert (len(s["val"]) > 0) <= (val > 0) and (len(s["test"]) > 0) <= (test > 0)


@pytest.mark.parametrize("n,sizes", [(1, (1, 0, 0)), (2, (1, 1, 0)), (3, (1, 1, 1)), (5, (3, 1, 1)), (25, (19, 3, 3))])
def test_split_sizes_for_few_sequences(n, sizes):
    s = split_by_sequence([f"s{i}" for i in range(n)], 0.1, 0.1)
    assert (len(s["train"]), len(s["val"]), len(s["test"])) == sizes


@pytest.mark.parametrize(
    "names,kwargs,words",
    [
        ([], {}, "no sequences"),
        (["a", "b", "a"], {}, "'a' appears more than once"),
        (["a", "b"], {"val_fraction": 1.0}, r"val_fraction=1.0 .*\[0, 1\)"),
        (["a", "b"], {"test_fraction": -0.1}, "test_fraction"),
        (["a", "b"], {"val_fraction": 0.5, "test_fraction": 0.5}, "leaves nothing to train on"),
    ],
)
def test_split_errors(names, kwargs, words):
    with pytest.raises(GanlstmError, match=words):
        split_by_sequence(names, **kwargs)


def test_split_collection_in_time_cuts_one_movie_into_contiguous_parts():
    from ganlstm.data.windows import split_collection

    movie = np.arange(40, dtype=np.float32).reshape(40, 1, 1, 1)
    parts = split_collection([("m", movie)], 0.15, 0.15, seed=5, time_split=True)
    (tn, train), (vn, val), (sn, test) = parts["train"][0], parts["val"][0], parts["test"][0]
    assert (tn, vn, sn) == ("m@train", "m@val", "m@test")
    assert (len(train), len(val), len(test)) == (28, 6, 6)
    assert np.array_equal(np.concatenate([train, val, test]), movie)  # in order, nothing dropped or repeated
    with pytest.raises(GanlstmError, match="exactly one sequence"):
        split_collection([("a", movie), ("b", movie)], time_split=True)


def test_split_collection_by_sequence_matches_split_by_sequence():
    from ganlstm.data.windows import split_collection

    seqs = [(f"s{i}", np.zeros((3, 1, 2, 2), np.float32)) for i in range(10)]
    parts = split_collection(seqs, 0.1, 0.1, seed=2)
    idx = split_by_sequence([n for n, _ in seqs], 0.1, 0.1, seed=2)
    assert {k: [n for n, _ in v] for k, v in parts.items()} == {k: [f"s{i}" for i in v] for k, v in idx.items()}
