"""Training samples cut from sequences, and train/val/test splits by sequence.

Stage two learns "given j observed frames, predict the next k" (the original project used
j = 20, k = 30), so each sample is a window of j + k consecutive frames of one sequence.
Stage one trains the DCGAN on single frames.

Splits are made over whole sequences, never over windows: overlapping windows of one
sequence share most of their frames, so splitting windows would leak the test set into
training and inflate every metric.
"""
from __future__ import annotations

import bisect
import itertools
import math
from collections import Counter
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import GanlstmError
from .frame_files import natural_key


def _as_sequences(sequences: Sequence[np.ndarray | torch.Tensor]) -> list[torch.Tensor]:
    """Float32 (T, C, H, W) tensors in [0, 1] sharing one frame shape; float32 inputs are not copied."""
    if len(sequences) == 0:
        raise GanlstmError("no sequences were given; read some with ganlstm.data.frames.read_collection first.")
    out = [torch.as_tensor(s, dtype=torch.float32) for s in sequences]
    for i, s in enumerate(out):
        if s.dim() != 4:
            raise GanlstmError(f"sequence {i} has shape {tuple(s.shape)}; sequences must be (T, C, H, W) frame arrays.")
        if s.shape[1:] != out[0].shape[1:]:
            raise GanlstmError(
                f"sequence {i} has frames of shape {tuple(s.shape[1:])} but sequence 0 has {tuple(out[0].shape[1:])}; "
                f"read them with one --size and --channels."
            )
        if s.numel() and not _in_unit_range(s):
            raise GanlstmError(f"sequence {i} has values outside [0, 1] (or NaN); read frames with ganlstm.data.frames, which scales them.")
    return out


def _in_unit_range(s: torch.Tensor) -> bool:
    lo, hi = torch.aminmax(s)
    return bool(lo >= 0) and bool(hi <= 1)  # NaN fails both comparisons


class _Index:
    """Maps a flat sample index to (sequence, position) through cumulative counts, in O(log n)."""

    def __init__(self, counts: list[int]) -> None:
        self.ends = list(itertools.accumulate(counts))  # ends[i] = samples in sequences 0..i

    def __len__(self) -> int:
        return self.ends[-1] if self.ends else 0

    def locate(self, i: int) -> tuple[int, int]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"sample {i} out of range for {len(self)} samples")
        i %= len(self)
        seq = bisect.bisect_right(self.ends, i)
        return seq, i - (self.ends[seq - 1] if seq else 0)


class WindowDataset(Dataset):
    """(context, target) windows of consecutive frames: (j, C, H, W) and (k, C, H, W), float32 in [0, 1].

    Windows start every ``stride`` frames in every sequence, in order: all windows of sequence 0,
    then of sequence 1, ... Sequences shorter than ``context + horizon`` give no windows; their
    indices are listed in ``skipped``. Items are views of the sequences held once as tensors;
    the DataLoader's collate makes the only copy.
    """

    def __init__(
        self,
        sequences: Sequence[np.ndarray | torch.Tensor],
        context: int = 10,
        horizon: int = 10,
        stride: int = 1,
    ) -> None:
        for name, value in (("context", context), ("horizon", horizon), ("stride", stride)):
            if not isinstance(value, int) or value < 1:
                raise GanlstmError(f"{name}={value!r} is invalid; use a positive integer (--{name}).")
        self.sequences = _as_sequences(sequences)
        self.context, self.horizon, self.stride = context, horizon, stride
        span = context + horizon
        lengths = [len(s) for s in self.sequences]
        if max(lengths) < span:
            raise GanlstmError(
                f"no sequence is long enough: the longest has {max(lengths)} frames but context+horizon needs {span}; "
                f"use a shorter --context/--horizon or a smaller --interval."
            )
        self.skipped = [i for i, n in enumerate(lengths) if n < span]
        self._index = _Index([(n - span) // stride + 1 if n >= span else 0 for n in lengths])

    def __len__(self) -> int:
        return len(self._index)

    def locate(self, i: int) -> tuple[int, int]:
        """(sequence index, first frame) of window ``i``."""
        seq, k = self._index.locate(i)
        return seq, k * self.stride

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        seq, start = self.locate(i)
        window = self.sequences[seq][start : start + self.context + self.horizon]  # view, no copy
        return window[: self.context], window[self.context :]


class FrameDataset(Dataset):
    """Every frame of every sequence as one (C, H, W) float32 sample in [0, 1] (stage one's data)."""

    def __init__(self, sequences: Sequence[np.ndarray | torch.Tensor]) -> None:
        self.sequences = _as_sequences(sequences)
        self._index = _Index([len(s) for s in self.sequences])
        if len(self._index) == 0:
            raise GanlstmError("the sequences hold no frames; check the data path and --interval.")

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, i: int) -> torch.Tensor:
        seq, t = self._index.locate(i)
        return self.sequences[seq][t]


def split_by_sequence(
    names: Sequence[str],
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
) -> dict[str, list[int]]:
    """Assign every sequence to exactly one of train/val/test; returns sorted indices into ``names``.

    The assignment depends on the seed and the set of names, not on their order: names are
    natural-sorted, then shuffled by ``numpy.random.default_rng(seed)``. Each split gets
    round(fraction * n) sequences, but at least one when its fraction is positive, and train
    always keeps at least one; when there are too few sequences for all three, test is emptied
    first, then val. So 1 sequence -> train only; 2 -> one train, one val (test empty);
    3 -> one each. Pass a fraction of 0 to turn a split off.
    """
    n = len(names)
    if n == 0:
        raise GanlstmError("no sequences to split; check the data path.")
    dups = sorted(name for name, c in Counter(names).items() if c > 1)
    if dups:
        dup = dups[0]
        raise GanlstmError(f"sequence name {dup!r} appears more than once; give every sequence a unique name.")
    for label, f in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 <= f < 1:
            raise GanlstmError(f"{label}={f!r} is invalid; use a fraction in [0, 1).")
    if val_fraction + test_fraction >= 1:
        raise GanlstmError(
            f"val_fraction + test_fraction = {val_fraction + test_fraction:g} leaves nothing to train on; keep the sum below 1."
        )

    def share(f: float) -> int:
        return max(1, math.floor(f * n + 0.5)) if f > 0 else 0  # half rounds up, unlike round()

    n_val, n_test = share(val_fraction), share(test_fraction)
    n_test = min(n_test, n - 1 - min(n_val, n - 1))  # train keeps >= 1; test gives way first
    n_val = min(n_val, n - 1 - n_test)
    order = sorted(range(n), key=lambda i: natural_key(names[i]))
    perm = [order[j] for j in np.random.default_rng(seed).permutation(n)]
    return {
        "train": sorted(perm[n_val + n_test :]),
        "val": sorted(perm[n_test : n_test + n_val]),
        "test": sorted(perm[:n_test]),
    }


SPLITS = ("train", "val", "test")


def split_collection(
    sequences: Sequence[tuple[str, np.ndarray]],
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
    *,
    time_split: bool = False,
) -> dict[str, list[tuple[str, np.ndarray]]]:
    """Named sequences -> ``{"train": [...], "val": [...], "test": [...]}`` of (name, (T, C, H, W)).

    By default whole sequences go to one split (:func:`split_by_sequence`). ``time_split`` cuts
    a single sequence, a movie, in time instead: its first frames train, the next
    ``val_fraction`` of them validate and the last ``test_fraction`` test, named
    ``<name>@train``, ``<name>@val`` and ``<name>@test``. The continuation is then truly unseen.
    """
    if not time_split:
        idx = split_by_sequence([name for name, _ in sequences], val_fraction, test_fraction, seed)
        return {part: [sequences[i] for i in idx[part]] for part in SPLITS}
    if len(sequences) != 1:
        raise GanlstmError(f"a split in time needs exactly one sequence (a movie), found {len(sequences)}; "
                           f"drop time_split to split a collection by sequence.")
    name, seq = sequences[0]
    n = len(seq)
    n_val, n_test = int(round(val_fraction * n)), int(round(test_fraction * n))
    if n - n_val - n_test < 1:
        raise GanlstmError(f"{name}: {n} frames leave none to train on with val_fraction={val_fraction} and "
                           f"test_fraction={test_fraction}; lower them or give a longer movie.")
    cut = (0, n - n_val - n_test, n - n_test, n)
    parts = {part: seq[a:b] for part, a, b in zip(SPLITS, cut[:-1], cut[1:])}  # each (T_part, C, H, W)
    return {part: [(f"{name}@{part}", s)] if len(s) else [] for part, s in parts.items()}
