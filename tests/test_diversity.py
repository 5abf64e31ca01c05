"""The diversity score: different mergers should get futures as different as the truth's."""
from __future__ import annotations

import math

import pytest
import torch

from ganlstm.diversity import DiversityAccumulator, diversity_ratio, mean_pairwise_distance
from ganlstm.evaluation import evaluate_models, trivial_baselines


def test_mean_pairwise_distance_by_hand():
    frames = torch.zeros(3, 1, 2, 2)
    frames[1] += 1.0  # distance 1 from frame 0 (per-pixel RMS)
    frames[2] += 0.5  # 0.5 from both
    assert mean_pairwise_distance(frames) == pytest.approx((1 + 0.5 + 0.5) / 3)
    assert math.isnan(mean_pairwise_distance(frames[:1]))


def test_identical_forecasts_score_zero_and_the_truth_scores_one():
    g = torch.Generator().manual_seed(0)
    truth = torch.rand(6, 4, 1, 8, 8, generator=g)
    assert diversity_ratio(truth, truth) == pytest.approx([1.0] * 4)
    blob = truth.mean(0, keepdim=True).expand_as(truth)  # every window gets the same frame
    assert max(diversity_ratio(blob, truth)) < 1e-6
    noisy = truth + 0.5 * torch.randn(truth.shape, generator=g)
    assert min(diversity_ratio(noisy, truth)) > 1.0


def test_accumulates_over_batches_and_joins_the_evaluation():
    g = torch.Generator().manual_seed(1)
    pred, truth = torch.rand(8, 3, 1, 8, 8, generator=g), torch.rand(8, 3, 1, 8, 8, generator=g)
    acc = DiversityAccumulator()
    acc.update(pred[:5], truth[:5])
    acc.update(pred[5:], truth[5:])
    assert acc.per_horizon()["diversity"] == pytest.approx(diversity_ratio(pred, truth))
    seqs = [torch.rand(8, 1, 16, 16, generator=g).numpy() for _ in range(4)]
    ev = evaluate_models(trivial_baselines(), seqs, context=3, horizon=4, batch_size=2, device="cpu")
    assert len(ev.per_horizon["persistence"]["diversity"]) == 4 and "diversity" in ev.mean["linear"]
    with pytest.raises(Exception, match="unknown score 'nope'"):
        evaluate_models(trivial_baselines(), seqs, context=3, horizon=4, device="cpu", scores=("nope",))
