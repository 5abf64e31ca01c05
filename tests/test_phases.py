"""Merger phases from the latent: k-means, phase naming, the true phases, the adjusted Rand index, and `ganlstm phases` end to end."""
from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from forecast_helpers import trained_checkpoint

from ganlstm import GanlstmError
from ganlstm.cli import cli, main
from ganlstm.config import ForecasterConfig
from ganlstm.data.merger_params import MergerParams
from ganlstm.data.merger_physics import coalescence_time
from ganlstm.data.simulate import _sequence_rng
from ganlstm.phase_plot import plot_phase_strips
from ganlstm.phases import (
    PHASES, adjusted_rand_index, kmeans, label_phases, phase_report, phase_times, smooth_labels, time_phases, true_phases,
)


# ---------------------------------------------------------------- k-means


def test_kmeans_recovers_well_separated_blobs():
    rng = np.random.default_rng(0)
    means = rng.normal(0, 10, (5, 6))  # 5 blobs in 6-D, far apart next to their spread of 0.3
    truth = rng.integers(0, 5, 400)
    x = means[truth] + rng.normal(0, 0.3, (400, 6))
    labels, centres = kmeans(x, 5, seed=3)
    assert labels.shape == (400,) and centres.shape == (5, 6)
    assert adjusted_rand_index(labels.numpy(), truth) == 1.0
    # Each centre is its blob's mean, to within the noise.
    for j in range(5):
        found = centres[labels[truth == j][0]].numpy()
        assert np.abs(found - x[truth == j].mean(0)).max() < 1e-4
    again = kmeans(torch.from_numpy(x), 5, seed=3)[0]
    assert torch.equal(again, labels)  # seeded: the same labels
    with pytest.raises(GanlstmError, match="k <= N"):
        kmeans(x[:3], 4)
    with pytest.raises(GanlstmError, match=r"\(N, D\)"):
        kmeans(np.full((4, 2), np.nan), 2)


def test_kmeans_best_restart_beats_a_single_bad_start():
    # Four tight blobs on a line, two of them close: the best of restarts finds the global optimum's inertia.
    rng = np.random.default_rng(1)
    x = np.concatenate([c + rng.normal(0, 0.05, (50, 1)) for c in (0.0, 1.0, 10.0, 11.0)])
    labels, centres = kmeans(x, 4, seed=0, restarts=8)
    assert sorted(np.round(centres.numpy()[:, 0]).tolist()) == [0.0, 1.0, 10.0, 11.0]


# ---------------------------------------------------------------- phase labels


def _synthetic_path(lengths, seed=0):
    """Latent paths that move through 4 separated regions in order, with boundaries that differ per sequence."""
    rng = np.random.default_rng(seed)
    regions = rng.normal(0, 1, (4, 8)) * 6
    latents, truth = [], []
    for T in lengths:
        cuts = np.sort(rng.uniform(0.1, 0.9, 3))  # (3,) region boundaries in normalised time
        phase = np.searchsorted(cuts, np.arange(T) / (T - 1), side="right")  # (T,) 0..3, non-decreasing
        latents.append(regions[phase] + rng.normal(0, 0.2, (T, 8)))
        truth.append(phase)
    return latents, truth


def test_labels_follow_the_regions_in_time_order():
    latents, truth = _synthetic_path([20, 33, 47, 61, 25])
    labels, names = label_phases(latents, k=4, seed=0)
    assert names == PHASES
    assert [len(s) for s in labels] == [20, 33, 47, 61, 25]
    for lab, true in zip(labels, truth):
        np.testing.assert_array_equal(lab, true)  # approach .. remnant in order
    assert adjusted_rand_index(np.concatenate(labels), np.concatenate(truth)) == 1.0
    names3 = label_phases(latents, k=3)[1]
    assert names3 == ("phase 1", "phase 2", "phase 3")
    with pytest.raises(GanlstmError, match="same size"):
        label_phases([np.zeros((5, 3)), np.zeros((5, 4))])
    with pytest.raises(GanlstmError, match="k=4 clusters need at least 4 frames"):
        label_phases([np.zeros((3, 2))], k=4)


def test_smoothing_and_the_time_baseline():
    np.testing.assert_array_equal(smooth_labels(np.array([0, 1, 0, 0, 2, 2, 1, 2, 3])), [0, 0, 0, 0, 2, 2, 2, 2, 3])
    np.testing.assert_array_equal(smooth_labels(np.array([1, 0])), [1, 0])  # endpoints keep their labels
    np.testing.assert_array_equal(time_phases(9), [0, 0, 1, 1, 2, 2, 3, 3, 3])  # floor(4 t / 8), the last frame in the last
    np.testing.assert_array_equal(time_phases(1), [0])


# ---------------------------------------------------------------- adjusted Rand index


def _ari_by_pairs(a, b):
    """The ARI from the four pair counts (every pair of items), independent of the contingency-table formula."""
    n11 = n10 = n01 = n00 = 0
    for i, j in itertools.combinations(range(len(a)), 2):
        same_a, same_b = a[i] == a[j], b[i] == b[j]
        n11 += same_a and same_b
        n10 += same_a and not same_b
        n01 += same_b and not same_a
        n00 += not same_a and not same_b
    if n10 == 0 and n01 == 0:
        return 1.0
    return 2.0 * (n11 * n00 - n10 * n01) / ((n11 + n10) * (n10 + n00) + (n11 + n01) * (n01 + n00))


def test_adjusted_rand_index_known_values():
    assert adjusted_rand_index([0, 0, 1, 1, 2], [0, 0, 1, 1, 2]) == 1.0
    assert adjusted_rand_index([0, 0, 1, 1, 2], ["c", "c", "a", "a", "b"]) == 1.0  # names and permutations do not matter
    assert adjusted_rand_index([0, 0, 1, 2], [0, 0, 1, 1]) == pytest.approx(4 / 7)  # by hand: (1 - 1/3) / (3/2 - 1/3)
    assert adjusted_rand_index([0, 0, 0, 0], [0, 1, 2, 3]) == 0.0
    assert adjusted_rand_index([0, 0, 1, 1], [0, 1, 0, 1]) == pytest.approx(-0.5)  # worse than chance
    assert adjusted_rand_index([5, 5, 5], [1, 1, 1]) == 1.0  # both trivial
    rng = np.random.default_rng(0)
    for _ in range(20):
        a, b = rng.integers(0, 4, 30), rng.integers(0, 3, 30)
        assert adjusted_rand_index(a, b) == pytest.approx(_ari_by_pairs(a, b))
        assert adjusted_rand_index(a, b) == pytest.approx(adjusted_rand_index(b, a))
        perm = rng.permutation(4)
        assert adjusted_rand_index(perm[a], b) == pytest.approx(adjusted_rand_index(a, b))
    with pytest.raises(GanlstmError, match="same items"):
        adjusted_rand_index([0, 1], [0, 1, 2])


# ---------------------------------------------------------------- the true phases


@pytest.mark.parametrize("index", [0, 1, 2, 5])
def test_true_phases_of_simulated_mergers(index):
    params = MergerParams.sample(_sequence_rng(101, index)).to_dict()  # seed 101, #0 does not coalesce by MAX_TIME
    phases = true_phases(params, 50)
    assert phases.shape == (50,) and phases[0] == 0  # it starts in the approach
    assert np.all(np.diff(phases) >= 0)  # never back to an earlier phase
    b = phase_times(params)
    assert 0 < b["t1"] <= b["t2"] <= b["t_merge"]
    if coalescence_time(MergerParams(**params)) is None:
        assert PHASES[phases[-1]] != "remnant" and b["t_merge"] == float("inf")
    else:
        assert PHASES[phases[-1]] == "remnant" and set(phases) == {0, 1, 2, 3}
    np.testing.assert_array_equal(true_phases(params, 50), phases)  # deterministic


def test_first_passage_ends_where_the_cores_fall_inside_the_close_fraction():
    from ganlstm.data.merger_physics import core_separation
    from ganlstm.phases import CLOSE_FRACTION

    p = MergerParams.sample(_sequence_rng(101, 1))  # one pericentre, then the cores spiral in and coalesce
    b = phase_times(p.to_dict())
    r0, r1, r2 = core_separation(p, np.array([0.0, b["t1"], b["t2"]]))
    assert b["t2"] < b["t_merge"] and r1 > CLOSE_FRACTION * r0
    assert r2 == pytest.approx(CLOSE_FRACTION * r0, rel=0.02)


def test_true_phases_refuses_bad_params():
    with pytest.raises(GanlstmError, match="unknown fields"):
        true_phases({"mass_ratio": 0.5, "colour": "red"}, 10)
    with pytest.raises(GanlstmError, match="invalid"):
        true_phases({"mass_ratio": -1.0}, 10)
    with pytest.raises(GanlstmError, match="frames=0"):
        true_phases({}, 0)


def test_report_and_strips(tmp_path):
    params = MergerParams.sample(_sequence_rng(101, 1)).to_dict()
    truth = true_phases(params, 30)
    report = phase_report([truth, truth[:20]], PHASES, ["a", "b"], [params, None])
    assert report["ari"] is None and report["sequences"][0]["ari"] == 1.0 and "true" not in report["sequences"][1]
    report = phase_report([truth], PHASES, ["a"], [params])
    assert report["ari"] == 1.0 and report["agreement"] == 1.0 and report["sequences"][0]["labels"][0] == "approach"
    path = plot_phase_strips([truth, truth[:20]], PHASES, tmp_path / "s.png", true=[truth, truth[:20]], titles=["a", "b"])
    assert path.stat().st_size > 1000
    with pytest.raises(GanlstmError, match="already exists"):
        plot_phase_strips([truth], PHASES, path)


# ---------------------------------------------------------------- the command


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("phases")
    yield root, trained_checkpoint(root / "g"), trained_checkpoint(root / "c", model=ForecasterConfig(model="convlstm", hidden=(4,)))
    torch.set_num_threads(before)


def _exit(args, capsys) -> tuple[int, str]:
    """``ganlstm ARGS`` through the console entry point (GanlstmError -> one line, exit 2)."""
    try:
        main([str(a) for a in args])
    except SystemExit as e:
        return int(e.code or 0), capsys.readouterr().err
    return 0, capsys.readouterr().err


def test_cli_end_to_end(runs, capsys):
    root, ckpt, convlstm = runs
    data, out = root / "g" / "data", root / "out"
    result = CliRunner().invoke(cli, ["phases", "--checkpoint", str(ckpt), "--data", str(data), "--out", str(out),
                                      "--device", "cpu", "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert "5 sequences, 70 frames" in result.output and "ARI vs the true phases" in result.output
    report = json.loads((out / "phases.json").read_text())
    assert (out / "phases.png").stat().st_size > 1000 and (out / "phase_frames.png").is_file()
    assert (out / ".ganlstm-output").is_file()
    assert [s["name"] for s in report["sequences"]] == [f"seq_{i:04d}" for i in range(5)]
    for s in report["sequences"]:
        assert len(s["labels"]) == len(s["true"]) == 14 and set(s["labels"]) <= set(PHASES) and -1 <= s["ari"] <= 1
    assert -1 <= report["ari"] <= 1 and report["time_ari"] is not None
    # --max-sequences, and a non-empty --out is refused (exit 2, one line) unless --overwrite.
    code, err = _exit(["phases", "--checkpoint", ckpt, "--data", data, "--out", out, "--device", "cpu"], capsys)
    assert code == 2 and err.startswith("error: ") and "--overwrite" in err and len(err.strip().splitlines()) == 1
    code, _ = _exit(["phases", "--checkpoint", ckpt, "--data", data, "--out", out, "--device", "cpu", "--overwrite",
                     "--max-sequences", "2", "--k", "3"], capsys)
    report = json.loads((out / "phases.json").read_text())
    assert code == 0 and report["sequences_count"] == 2 and report["names"] == ["phase 1", "phase 2", "phase 3"]


def test_cli_refuses_a_checkpoint_without_an_encoder(runs, capsys):
    root, _, convlstm = runs
    code, err = _exit(["phases", "--checkpoint", convlstm, "--data", root / "g" / "data", "--out", root / "no", "--device", "cpu"], capsys)
    assert code == 2 and "'convlstm'" in err and "gan_lstm checkpoint" in err and len(err.strip().splitlines()) == 1, err
    assert not (root / "no").exists()
    code, err = _exit(["phases", "--checkpoint", convlstm, "--data", root / "g" / "data", "--out", root / "g" / "data", "--overwrite"], capsys)
    assert code == 2 and "holds --data" in err, err
