"""Merger phases from the generator latent: every frame's latent clustered (k-means), the clusters named by when they occur, and scored against the simulator's true phases.

The encoder of a GAN-prior forecaster reads each frame into a latent z (N, nz) of the frozen
generator. :func:`label_phases` standardises the latents of all frames of all sequences together,
clusters them with :func:`kmeans` (k-means++ starts, best of several by inertia) and names the
clusters by the mean normalised time ``t / (T - 1)`` of their frames: the earliest is
"approach", then "first passage", "coalescence", "remnant" (for k != 4: "phase 1" .. "phase k").

The true phase of a simulated frame (:func:`true_phases`) comes from the core separation r(t)
of its ``params.json``, integrated by the simulator's own physics, on a grid of the leapfrog's
base timestep (so no pericentre falls between frames):

* approach: t < t1, the first pericentre (the first local minimum of r);
* first passage: t1 <= t < t2, where t2 is the earliest of the second pericentre (the next local
  minimum of r), the first time after t1 that r falls (crosses downwards) below ``CLOSE_FRACTION``
  (0.25) of its initial value r(0), and the coalescence time;
* coalescence: t2 <= t < t_merge, :func:`~ganlstm.data.merger_physics.coalescence_time` (the
  cores within half their combined softening);
* remnant: t >= t_merge (never, when the cores do not coalesce by ``MAX_TIME``).

Frame i of T lies at t = i * t_end / (T - 1), with t_end as :func:`ganlstm.data.simulate.simulate_sequence`
sets it. ``CLOSE_FRACTION`` is 0.25 and not 0.1: 0.1 r(0) is 0.5-0.7, about the coalescence
radius itself (0.56-0.71), so with 0.1 the coalescence phase held 4 % of the frames and was empty in
62 % of 120 sampled mergers (seeds 101, 202, 303; 50 frames); with 0.25 the phases hold 25, 42, 25
and 8 % of the frames, and 15 % of the mergers (those that do not coalesce among them) have no
coalescence frame. Agreement is the adjusted Rand
index (:func:`adjusted_rand_index`, Hubert & Arabie 1985), which ignores what the clusters are called.
"""
from __future__ import annotations

import math
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .errors import GanlstmError
from .pixel_range import to_model_range

PHASES = ("approach", "first passage", "coalescence", "remnant")
CLOSE_FRACTION = 0.25  # first passage ends once r < CLOSE_FRACTION * r(0) (after the first pericentre)
SMOOTH = False  # the width-3 majority filter; benchmarks/phases_demo.py measured that it does not help (see the report)


# ---------------------------------------------------------------------------- clustering


def _sq_dist(x: Tensor, c: Tensor) -> Tensor:
    """Squared distances (N, k) between points x (N, D) and centres c (k, D)."""
    return torch.cdist(x, c).square()


def _plus_plus(x: Tensor, k: int, gen: torch.Generator) -> Tensor:
    """k-means++ starts (Arthur & Vassilvitskii 2007): each next centre drawn with probability ~ D(x)^2."""
    first = int(torch.randint(len(x), (1,), generator=gen))
    centres, d2 = [x[first]], (x - x[first]).square().sum(1)  # d2 (N,)
    for _ in range(1, k):
        p = d2 if float(d2.sum()) > 0 else torch.ones_like(d2)  # all points equal: uniform
        i = int(torch.multinomial(p, 1, generator=gen))
        centres.append(x[i])
        d2 = torch.minimum(d2, (x - x[i]).square().sum(1))
    return torch.stack(centres)  # (k, D)


def kmeans(x: np.ndarray | Tensor, k: int, seed: int = 0, iters: int = 100, restarts: int = 4) -> tuple[Tensor, Tensor]:
    """k-means (Lloyd) of points x (N, D): labels (N,) in 0..k-1 and centres (k, D), the best of ``restarts`` by inertia.

    Deterministic for a seed (one seeded ``torch.Generator`` draws every k-means++ start). An empty
    cluster is restarted at the point farthest from its centre.
    """
    x = torch.as_tensor(np.asarray(x) if not isinstance(x, Tensor) else x).double()
    if x.dim() != 2 or not len(x) or not bool(torch.isfinite(x).all()):
        raise GanlstmError(f"kmeans needs finite points shaped (N, D), got {tuple(x.shape)}; flatten and clean them first.")
    if not 1 <= k <= len(x) or iters < 1 or restarts < 1:
        raise GanlstmError(f"kmeans needs 1 <= k <= N ({len(x)}) and iters, restarts >= 1, got k={k}, iters={iters}, restarts={restarts}.")
    gen = torch.Generator().manual_seed(seed)
    best: tuple[float, Tensor, Tensor] | None = None
    for _ in range(restarts):
        c = _plus_plus(x, k, gen)  # (k, D)
        labels = _sq_dist(x, c).argmin(1)  # (N,)
        for _ in range(iters):
            counts = torch.bincount(labels, minlength=k)  # (k,)
            c = torch.zeros_like(c).index_add_(0, labels, x) / counts.clamp(min=1)[:, None]
            for j in torch.nonzero(counts == 0).flatten().tolist():  # empty: restart at the worst-fitted point
                c[j] = x[int(_sq_dist(x, c).min(1).values.argmax())]
            new = _sq_dist(x, c).argmin(1)
            if torch.equal(new, labels):
                break
            labels = new
        inertia = float(_sq_dist(x, c).min(1).values.sum())
        if best is None or inertia < best[0]:
            best = (inertia, labels, c)
    return best[1], best[2].float()


def standardise(z: np.ndarray) -> np.ndarray:
    """Each latent coordinate (column of z (N, D)) to zero mean and unit variance; constant ones to 0."""
    std = z.std(0)
    return (z - z.mean(0)) / np.where(std > 0, std, 1.0)


def normalised_time(frames: int) -> np.ndarray:
    """t / (T - 1) of each frame (T,); a one-frame sequence is at 0."""
    return np.arange(frames) / max(frames - 1, 1)


def phase_names(k: int) -> tuple[str, ...]:
    """The clusters' names in time order: :data:`PHASES` for k = 4, else "phase 1" .. "phase k"."""
    return PHASES if k == len(PHASES) else tuple(f"phase {i + 1}" for i in range(k))


def smooth_labels(labels: np.ndarray) -> np.ndarray:
    """The majority filter of width 3 along time: a frame whose two neighbours agree takes their label."""
    out = np.array(labels, copy=True)
    agree = labels[:-2] == labels[2:]  # (T - 2,) neighbours of frames 1 .. T-2
    out[1:-1][agree] = labels[:-2][agree]
    return out


def label_phases(latents_per_sequence: Sequence[np.ndarray], k: int = 4, seed: int = 0,
                 smooth: bool = SMOOTH) -> tuple[list[np.ndarray], tuple[str, ...]]:
    """Phase labels of every frame from its latent: per sequence an int array (T,) into the returned names.

    All frames of all sequences are clustered together (after :func:`standardise`), so a label
    means the same in every sequence; label 0 is the cluster with the earliest mean ``t / (T - 1)``.
    ``smooth`` applies :func:`smooth_labels` to each sequence.
    """
    z = [np.asarray(s, dtype=np.float64).reshape(len(s), -1) for s in latents_per_sequence]  # each (T, nz)
    if not z or any(len(s) == 0 for s in z) or len({s.shape[1] for s in z}) != 1:
        raise GanlstmError("label_phases needs at least one sequence, each of at least one latent of the same size; pass (T, nz) arrays.")
    flat = np.concatenate(z)  # (N, nz)
    if k > len(flat):
        raise GanlstmError(f"k={k} clusters need at least {k} frames, but there are {len(flat)}; pass a smaller --k or more frames.")
    raw = kmeans(standardise(flat), k, seed=seed)[0].numpy()  # (N,)
    times = np.concatenate([normalised_time(len(s)) for s in z])  # (N,)
    mean_t = [times[raw == j].mean() if np.any(raw == j) else math.inf for j in range(k)]
    rank = np.empty(k, dtype=np.int64)
    rank[np.argsort(mean_t, kind="stable")] = np.arange(k)  # cluster -> its place in time order
    labels = np.split(rank[raw], np.cumsum([len(s) for s in z])[:-1])
    return [smooth_labels(s) if smooth else s for s in labels], phase_names(k)


def time_phases(frames: int, k: int = 4) -> np.ndarray:
    """The trivial baseline: frame t in phase floor(k t / (T - 1)) (the quantiles of normalised time), (T,)."""
    return np.minimum((normalised_time(frames) * k).astype(np.int64), k - 1)


# ---------------------------------------------------------------------------- the truth


def merger_params(params: Mapping[str, Any]):
    """The :class:`~ganlstm.data.merger_params.MergerParams` of a ``params.json`` dict (the inverse of ``to_dict``)."""
    from dataclasses import fields

    from .data.merger_params import MergerParams

    known = {f.name for f in fields(MergerParams)}
    unknown = sorted(set(params) - known)
    if unknown:
        raise GanlstmError(f"params.json holds unknown fields {', '.join(unknown)}; pass the params.json that `ganlstm simulate` wrote.")
    p = MergerParams(**params)
    p.check()
    return p


def phase_times(params: Mapping[str, Any]) -> dict[str, float]:
    """The phase boundaries of a simulated merger: t1 (first pericentre), t2, t_merge (inf if none) and t_end, in simulation units."""
    from .data.merger_physics import base_timestep, coalescence_time, core_separation
    from .data.simulate import end_time

    p = merger_params(params)
    t_merge = coalescence_time(p)
    t_end = end_time(p)
    dt = base_timestep(p)
    t = np.arange(math.ceil(t_end / dt) + 2) * dt  # (S,) one step past t_end, so a minimum at t_end is seen
    r = core_separation(p, t)  # (S,)
    minima = np.flatnonzero((r[1:-1] < r[:-2]) & (r[1:-1] <= r[2:])) + 1
    merge = math.inf if t_merge is None else t_merge
    if not len(minima):
        return dict(t1=math.inf, t2=math.inf, t_merge=merge, t_end=t_end)
    i1 = int(minima[0])
    after = np.arange(i1 + 1, len(r))
    close = after[(r[after] < CLOSE_FRACTION * r[0]) & (r[after - 1] >= CLOSE_FRACTION * r[0])]  # a downward crossing after t1
    ends = [t[minima[1]] if len(minima) > 1 else math.inf, t[close[0]] if len(close) else math.inf, merge]
    return dict(t1=float(t[i1]), t2=float(max(t[i1], min(ends))), t_merge=merge, t_end=t_end)


def true_phases(params: Mapping[str, Any], frames: int) -> np.ndarray:
    """The true phase (index into :data:`PHASES`) of each of ``frames`` frames of a simulated merger, (frames,).

    ``params`` is the sequence's ``params.json`` dict; the phases are defined in this module's docstring.
    """
    if frames < 1:
        raise GanlstmError(f"frames={frames} is invalid; pass the number of frames of the sequence (>= 1).")
    b = phase_times(params)
    t = np.arange(frames) * (b["t_end"] / max(frames - 1, 1))  # (frames,) the simulator's frame times
    return np.searchsorted(np.array([b["t1"], b["t2"], b["t_merge"]]), t, side="right").astype(np.int64)


# ---------------------------------------------------------------------------- agreement


def adjusted_rand_index(a: Sequence, b: Sequence) -> float:
    """The adjusted Rand index of two labelings of the same items (Hubert & Arabie 1985): 1 identical, ~0 chance.

    From the contingency table n_ij with row sums a_i and column sums b_j:
    ARI = (sum C(n_ij, 2) - E) / ((sum C(a_i, 2) + sum C(b_j, 2)) / 2 - E), E = sum C(a_i, 2) sum C(b_j, 2) / C(n, 2).
    Labels may be any values (names or numbers); two partitions that are both trivial (one cluster,
    or all singletons) agree fully and score 1.
    """
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim != 1:
        raise GanlstmError(f"adjusted_rand_index needs two labelings of the same items, got shapes {a.shape} and {b.shape}.")
    ia, ib = np.unique(a, return_inverse=True)[1], np.unique(b, return_inverse=True)[1]
    table = np.zeros((ia.max(initial=-1) + 1, ib.max(initial=-1) + 1), dtype=np.int64)
    np.add.at(table, (ia, ib), 1)
    pairs = lambda n: (n * (n - 1) // 2).sum()  # noqa: E731
    index, rows, cols, total = pairs(table), pairs(table.sum(1)), pairs(table.sum(0)), pairs(np.array([len(a)]))
    expected = rows * cols / total if total else 0.0
    top = (rows + cols) / 2
    return 1.0 if top == expected else float((index - expected) / (top - expected))


# ---------------------------------------------------------------------------- models and reports


def require_encoder(model: Any) -> torch.nn.Module:
    """The network behind ``model`` (a Predictor or its ``.model``), refused in one sentence unless it is a GAN prior (``generator``, ``encode``)."""
    net = getattr(model, "model", model)
    if not (hasattr(net, "generator") and callable(getattr(net, "encode", None))):  # baselines' .encode is a conv layer
        kind = getattr(getattr(net, "cfg", None), "model", type(net).__name__)
        raise GanlstmError(f"phases need a GAN-prior forecaster whose encoder reads frames into generator latents, but this checkpoint "
                           f"holds {kind!r}; pass a gan_lstm checkpoint (from `ganlstm train-encoder`, or none for the shipped one).")
    return net


def encode_sequences(model: Any, sequences: Sequence[np.ndarray], batch: int = 256) -> list[np.ndarray]:
    """The encoder's latent of every frame: each (T, C, H, W) array in [0, 1] -> (T, nz).

    ``model`` is a :class:`~ganlstm.Predictor` or its ``.model``: a GAN-prior network with a
    ``generator`` and ``encode(frames in [-1, 1]) -> latents`` (the gan_lstm forecaster). It runs in eval mode,
    ``batch`` frames at a time, on the model's device.
    """
    net = require_encoder(model)
    cfg = getattr(net, "cfg", None)
    device = next((t.device for t in (*net.parameters(), *net.buffers())), torch.device("cpu"))
    was_training, out = net.training, []
    net.eval()
    try:
        for seq in sequences:
            x = torch.as_tensor(np.asarray(seq, dtype=np.float32))  # (T, C, H, W) in [0, 1]
            if x.dim() != 4 or not len(x) or (cfg is not None and tuple(x.shape[1:]) != (cfg.channels, cfg.image_size, cfg.image_size)):
                need = f"(T, {cfg.channels}, {cfg.image_size}, {cfg.image_size})" if cfg is not None else "(T, C, H, W)"
                raise GanlstmError(f"a sequence of shape {tuple(x.shape)} cannot be encoded; pass frames shaped {need}, read with the checkpoint's options.")
            if not bool(torch.isfinite(x).all()) or float(x.min()) < 0 or float(x.max()) > 1:
                raise GanlstmError("frames must be finite and in [0, 1]; scale them first (the frame readers do).")
            with torch.inference_mode():
                z = [net.encode(to_model_range(x[i : i + batch].to(device))).float().cpu() for i in range(0, len(x), batch)]
            out.append(torch.cat(z).flatten(1).numpy())  # (T, nz)
    finally:
        net.train(was_training)
    return out


def phases(model: Any, sequences: Sequence[np.ndarray], k: int = 4, seed: int = 0,
           smooth: bool = SMOOTH) -> tuple[list[np.ndarray], tuple[str, ...]]:
    """Phase labels of sequences (each (T, C, H, W) in [0, 1]) through a GAN-prior model: per sequence (T,) ints, and the names."""
    return label_phases(encode_sequences(model, sequences), k=k, seed=seed, smooth=smooth)


def phase_report(labels: Sequence[np.ndarray], names: Sequence[str], sequence_names: Sequence[str],
                 params: Sequence[Mapping[str, Any] | None]) -> dict[str, Any]:
    """What ``phases.json`` holds: each sequence's labels by name and, where its params are known, its true phases and ARI.

    ``ari`` (over all frames of all sequences), ``time_ari`` (the :func:`time_phases` baseline) and,
    for k = 4, ``agreement`` (the fraction of frames whose predicted phase is the true one) are
    given when every sequence has params, else None.
    """
    if not len(labels) == len(sequence_names) == len(params):
        raise GanlstmError("phase_report needs one name and one params entry (or None) per sequence.")
    k, rows, truth = len(names), [], []
    for lab, name, p in zip(labels, sequence_names, params):
        row: dict[str, Any] = {"name": name, "frames": len(lab), "labels": [names[i] for i in lab]}
        if p is not None:
            true = true_phases(p, len(lab))
            truth.append(true)
            row.update(true=[PHASES[i] for i in true], ari=adjusted_rand_index(lab, true))
        rows.append(row)
    known = len(truth) == len(labels)
    pred, true = (np.concatenate(labels), np.concatenate(truth)) if known else (None, None)
    base = np.concatenate([time_phases(len(lab), k) for lab in labels])
    return {
        "k": k, "names": list(names), "sequences_count": len(labels), "frames": int(sum(len(lab) for lab in labels)),
        "ari": adjusted_rand_index(pred, true) if known else None,
        "time_ari": adjusted_rand_index(base, true) if known else None,
        "agreement": float(np.mean(pred == true)) if known and tuple(names) == PHASES else None,
        "sequences": rows,
    }


# ---------------------------------------------------------------------------- files


def check_output_dir(out: str | Path, data: str | Path, overwrite: bool) -> Path:
    """Refuse an ``out`` that is a file, holds ``data``, or is not empty (unless ``overwrite``); returns it."""
    out, data = Path(out), Path(data)
    if out.exists() and not out.is_dir():
        raise GanlstmError(f"--out {out} is a file; pass a directory for phases.json and phases.png.")
    if out.resolve() == data.resolve() or out.resolve() in data.resolve().parents:
        raise GanlstmError(f"--out {out} holds --data {data}; choose an --out outside the data.")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise GanlstmError(f"--out {out} is not empty; choose another --out or pass --overwrite.")
    return out


def read_sequences(data: str | Path, opts: Any, max_sequences: int | None = None) -> list[tuple[str, np.ndarray, dict | None]]:
    """(name, frames (T, C, H, W) in [0, 1], params.json dict or None) of each sequence under ``data``, the first ``max_sequences``."""
    from .data.frame_files import is_ganlstm_output, visible_entries
    from .data.frames import is_sequence_path, read_collection, read_sequence

    data = Path(data)
    single = not data.is_dir() or is_sequence_path(data)
    entries = [] if single or max_sequences is None else [
        p for p in visible_entries(data) if not is_ganlstm_output(p) and is_sequence_path(p)][:max_sequences]
    pairs = [(p.name, read_sequence(p, opts)) for p in entries] if entries else read_collection(data, opts)[:max_sequences]
    out = []
    for name, frames in pairs:
        file = (data if single else data / name) / "params.json"
        try:
            params = json.loads(file.read_text()) if file.is_file() else None
        except (OSError, ValueError) as e:
            raise GanlstmError(f"{file} cannot be read as JSON ({e}); delete it or write it again with `ganlstm simulate`.") from None
        out.append((name, frames, params))
    return out


def phases_to_directory(model: Any, data: str | Path, out: str | Path, *, k: int = 4, seed: int = 0, smooth: bool = SMOOTH,
                        max_sequences: int | None = None, overwrite: bool = False) -> dict[str, Any]:
    """Label every frame under ``data`` with ``model`` (a :class:`~ganlstm.Predictor`) and write ``out``/phases.json, phases.png and phase_frames.png.

    Every frame is read with the checkpoint's size, channels and scaling; its ``interval`` is
    not applied (the encoder reads one frame at a time, and the true phases are per simulated
    frame). Returns the :func:`phase_report` dict, with ``files`` added.
    """
    import dataclasses

    from .checkpoint import atomic_write_bytes
    from .data.frame_files import mark_output
    from .phase_plot import plot_cluster_frames, plot_phase_strips

    out = check_output_dir(out, data, overwrite)
    require_encoder(model)  # before any frame is read
    opts = getattr(model, "frame_options", None)
    seqs = read_sequences(data, dataclasses.replace(opts, interval=1) if opts is not None else None, max_sequences)
    labels, names = phases(model, [s[1] for s in seqs], k=k, seed=seed, smooth=smooth)
    report = phase_report(labels, names, [s[0] for s in seqs], [s[2] for s in seqs])
    report.update(seed=seed, smooth=smooth, data=str(data), checkpoint=str(getattr(model, "checkpoint", {}).get("path", "")))
    truth = [true_phases(s[2], len(s[1])) for s in seqs] if report["ari"] is not None else None
    out.mkdir(parents=True, exist_ok=True)
    mark_output(out, "phase labels")
    files = {"json": out / "phases.json", "strips": out / "phases.png", "frames": out / "phase_frames.png"}
    plot_phase_strips(labels, names, files["strips"], true=truth, titles=[s[0] for s in seqs], true_names=PHASES, overwrite=True)
    plot_cluster_frames([s[1] for s in seqs], labels, names, files["frames"], seed=seed, overwrite=True)
    report["files"] = {key: str(p) for key, p in files.items()}
    atomic_write_bytes(files["json"], (json.dumps(report, indent=2) + "\n").encode())
    return report
