"""Checks of a checkpoint's non-weight fields before anything uses them: counters, RNG state, optimiser state.

A file loaded with ``weights_only=True`` cannot run code, but it can hold anything else: a step of
``-1`` or ``"x"``, an RNG state that is a string, optimiser moments of another shape. Used as they
are, those give raw tracebacks deep inside torch, numpy or :mod:`random` (or, for moments of the
wrong shape, in the middle of the first training step). Each check here raises one
:class:`~ganlstm.errors.GanlstmError` naming the file and the field instead:

* :func:`check_layout` -- the top-level fields every loader reads (``load_checkpoint`` calls it);
* :func:`check_rng_state` -- what :func:`ganlstm.rng.set_rng_state` restores;
* :func:`check_optimizer_state` -- an optimiser's saved state against the optimiser it is loaded into.
"""
from __future__ import annotations

import inspect
import math
import random
from typing import Any

import numpy as np
import torch

from .errors import GanlstmError

MAX_COUNTER = 10**15  # steps / epochs / batches: far beyond any run, far below float precision trouble
_MAPPINGS = ("config", "models", "optimizers", "rng", "extra")
_COUNTERS = ("step", "epoch")
_EXTRA_COUNTERS = ("batch_in_epoch", "skipped_batches", "evaluated_at")
_MT_WORDS = 624  # Mersenne Twister state words (numpy and random)


def malformed(path: Any, what: str) -> GanlstmError:
    return GanlstmError(f"checkpoint {path} is malformed ({what}); the file is damaged or was not written by ganlstm, "
                        f"so use another copy, e.g. the run's last.pt or best.pt.")


def _kind(x: Any) -> str:
    return type(x).__name__


def is_count(x: Any) -> bool:
    """A non-negative int (not a bool) no larger than :data:`MAX_COUNTER`."""
    return isinstance(x, int) and not isinstance(x, bool) and 0 <= x <= MAX_COUNTER


def _is_real(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def check_layout(ckpt: dict, path: Any) -> None:
    """The top-level fields: mappings where mappings belong, counters that are counts, weights that are tensors."""
    for key in _MAPPINGS:
        if key in ckpt and not isinstance(ckpt[key], dict):
            raise malformed(path, f"its {key!r} is a {_kind(ckpt[key])}, not a mapping")
    for key in _COUNTERS:
        if key in ckpt and not is_count(ckpt[key]):
            raise malformed(path, f"its {key} is {ckpt[key]!r}, not a count between 0 and {MAX_COUNTER:.0e}")
    for name, sd in ckpt.get("models", {}).items():
        if not isinstance(sd, dict) or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in sd.items()):
            raise malformed(path, f"the weights of {name!r} are not a mapping of names to tensors")
    for name, sd in ckpt.get("optimizers", {}).items():
        _check_optimizer_layout(sd, name, path)
    extra = ckpt.get("extra", {})
    for key in _EXTRA_COUNTERS:
        if key in extra and not is_count(extra[key]):
            raise malformed(path, f"its extra.{key} is {extra[key]!r}, not a count")
    if "best_score" in extra and not _is_real(extra["best_score"]):
        raise malformed(path, f"its extra.best_score is {extra['best_score']!r}, not a number")
    if "split" in extra:
        split = extra["split"]
        if not isinstance(split, dict) or not all(
                isinstance(v, list) and all(isinstance(s, str) for s in v) for v in split.values()):
            raise malformed(path, "its extra.split is not a mapping of split names to lists of sequence names")
    scalers = extra.get("grad_scalers", {})
    if not isinstance(scalers, dict) or not all(isinstance(s, dict) for s in scalers.values()):
        raise malformed(path, "its extra.grad_scalers is not a mapping of loss-scaler states")
    ranks = extra.get("rank_rng", [])
    if not isinstance(ranks, list):
        raise malformed(path, f"its extra.rank_rng is a {_kind(ranks)}, not a list of RNG states")
    if ckpt.get("rng"):
        check_rng_state(ckpt["rng"], path)
    for state in ranks:
        check_rng_state(state, path, where="extra.rank_rng")


def _check_optimizer_layout(sd: Any, name: str, path: Any) -> None:
    if not isinstance(sd, dict) or not isinstance(sd.get("state"), dict) or not isinstance(sd.get("param_groups"), list):
        raise malformed(path, f"the state of optimiser {name!r} is not a mapping with 'state' and 'param_groups'")
    for group in sd["param_groups"]:
        if not isinstance(group, dict) or not isinstance(group.get("params"), list) or not all(
                isinstance(p, int) and not isinstance(p, bool) for p in group["params"]):
            raise malformed(path, f"a parameter group of optimiser {name!r} is not a mapping with a list of parameter ids")
    for key, value in sd["state"].items():
        if not isinstance(value, dict):
            raise malformed(path, f"the state of parameter {key!r} of optimiser {name!r} is a {_kind(value)}, not a mapping")


def check_rng_state(state: Any, path: Any, where: str = "rng") -> None:
    """What :func:`ganlstm.rng.rng_state` writes: torch's, numpy's and Python's generator states."""
    def bad(what: str) -> GanlstmError:
        return malformed(path, f"its {where}{what}")

    if not isinstance(state, dict):
        raise bad(f" is a {_kind(state)}, not a mapping")
    if "torch" in state:
        t = state["torch"]
        size = torch.get_rng_state().numel()
        if not torch.is_tensor(t) or t.dtype != torch.uint8 or t.shape != (size,):
            raise bad(f".torch is not the {size}-byte state torch writes")
    if "cuda" in state:
        cuda = state["cuda"]
        if not isinstance(cuda, list) or not all(torch.is_tensor(t) and t.dtype == torch.uint8 and t.dim() == 1 for t in cuda):
            raise bad(".cuda is not a list of byte tensors")
    if "numpy" in state:
        n = state["numpy"]
        if not isinstance(n, dict):
            raise bad(f".numpy is a {_kind(n)}, not a mapping")
        keys = n.get("keys")
        if not torch.is_tensor(keys) or keys.shape != (_MT_WORDS,) or keys.is_floating_point() or keys.is_complex() \
                or bool(((keys < 0) | (keys >= 2**32)).any()):
            raise bad(f".numpy.keys is not {_MT_WORDS} 32-bit words")
        if not (isinstance(n.get("pos"), int) and not isinstance(n.get("pos"), bool) and 0 <= n["pos"] <= _MT_WORDS):
            raise bad(f".numpy.pos is {n.get('pos')!r}, not a position between 0 and {_MT_WORDS}")
        if n.get("has_gauss") not in (0, 1) or isinstance(n.get("has_gauss"), float):
            raise bad(f".numpy.has_gauss is {n.get('has_gauss')!r}, not 0 or 1")
        if not _is_real(n.get("cached_gaussian")):
            raise bad(f".numpy.cached_gaussian is {n.get('cached_gaussian')!r}, not a number")
    if "python" in state:
        p = state["python"]
        ok = isinstance(p, (list, tuple)) and len(p) == 3 and isinstance(p[0], int) and isinstance(p[1], (list, tuple)) \
            and len(p[1]) == _MT_WORDS + 1 and all(isinstance(w, int) and not isinstance(w, bool) and 0 <= w < 2**32 for w in p[1]) \
            and p[1][-1] <= _MT_WORDS and (p[2] is None or _is_real(p[2]))
        if not ok:
            raise bad(".python is not the (version, 625 words, gauss) state of Python's random module")
        if p[0] != random.getstate()[0]:
            raise bad(f".python has version {p[0]!r}, this Python's random module writes {random.getstate()[0]}")


def check_optimizer_state(opt: torch.optim.Optimizer, sd: dict, name: str, path: Any) -> None:
    """A saved optimiser state against the optimiser it is about to be loaded into (before ``load_state_dict``).

    The groups must match in number and size, every hyperparameter must have the type the optimiser
    uses (numbers finite and non-negative), and every per-parameter tensor must be a scalar or have
    its parameter's shape: torch checks only the group sizes, and a moment of another shape would
    fail in the middle of the first training step.
    """
    groups, mine = sd["param_groups"], opt.param_groups
    if len(groups) != len(mine):
        raise malformed(path, f"optimiser {name!r} has {len(groups)} parameter groups in the file but {len(mine)} here")
    by_id: dict[int, tuple[torch.Tensor, set[str]]] = {}
    for i, (saved, current) in enumerate(zip(groups, mine)):
        if len(saved["params"]) != len(current["params"]):
            raise malformed(path, f"group {i} of optimiser {name!r} has {len(saved['params'])} parameters in the file "
                                  f"but {len(current['params'])} here")
        for key, value in saved.items():
            if key != "params" and key in current and not _same_kind(value, current[key]):
                raise malformed(path, f"hyperparameter {key} of optimiser {name!r} is {value!r}; a {_describe_kind(current[key])} is needed")
        keys = _state_keys(opt, saved, name, path)
        by_id.update((pid, (param, keys)) for pid, param in zip(saved["params"], current["params"]))
    for pid, state in sd["state"].items():
        param, keys = by_id.get(pid, (None, set()))
        if param is None:
            raise malformed(path, f"optimiser {name!r} holds state for parameter {pid!r}, which none of its groups lists")
        missing = sorted(keys - set(state)) if state else []
        if missing:
            raise malformed(path, f"optimiser {name!r} state of parameter {pid} lacks {', '.join(missing)}")
        for key, value in state.items():
            if torch.is_tensor(value):
                if value.is_complex() or value.dtype == torch.bool or (value.dim() and value.shape != param.shape):
                    raise malformed(path, f"optimiser {name!r} state {key} of parameter {pid} is a {tuple(value.shape)} "
                                          f"{value.dtype} tensor; the parameter is {tuple(param.shape)}")
                if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                    raise malformed(path, f"optimiser {name!r} state {key} of parameter {pid} holds NaN/Inf")
            elif not (_is_real(value) and math.isfinite(value) and value >= 0):
                raise malformed(path, f"optimiser {name!r} state {key} of parameter {pid} is {value!r}, not a tensor or count")


def _state_keys(opt: torch.optim.Optimizer, group: dict, name: str, path: Any) -> set[str]:
    """The state keys ``opt``'s class keeps per parameter under ``group``'s hyperparameters (e.g. Adam: step, exp_avg,
    exp_avg_sq), found by one step of a probe on a one-value parameter; the probe's constructor also range-checks them."""
    probe = torch.zeros(1, requires_grad=True)
    probe.grad = torch.zeros(1)
    accepted = inspect.signature(type(opt).__init__).parameters  # AdamW's defaults hold a key its constructor does not take
    settings = {k: v for k, v in group.items() if k in opt.defaults and k in accepted}
    try:
        stepper = type(opt)([probe], **settings)
        stepper.step()
    except (ValueError, TypeError, RuntimeError) as e:
        raise malformed(path, f"the hyperparameters of optimiser {name!r} are refused ({type(e).__name__}: {e})") from None
    return set(stepper.state[probe])


def _same_kind(saved: Any, current: Any) -> bool:
    if current is None or isinstance(current, bool):
        return saved is None or isinstance(saved, bool)
    if _is_real(current):
        return _is_real(saved) and math.isfinite(saved) and saved >= 0
    if isinstance(current, (tuple, list)):
        return isinstance(saved, (tuple, list)) and len(saved) == len(current) and all(_same_kind(s, c) for s, c in zip(saved, current))
    if isinstance(current, str):
        return isinstance(saved, str)
    return torch.is_tensor(current) == torch.is_tensor(saved)


def _describe_kind(current: Any) -> str:
    if current is None or isinstance(current, bool):
        return "flag (true, false or none)"
    if _is_real(current):
        return "finite non-negative number"
    if isinstance(current, (tuple, list)):
        return f"list of {len(current)} finite non-negative numbers"
    return _kind(current)


def numpy_state(n: dict) -> tuple:
    """The ``np.random.set_state`` tuple of a checked ``rng["numpy"]`` mapping."""
    return ("MT19937", n["keys"].numpy().astype(np.uint32), int(n["pos"]), int(n["has_gauss"]), float(n["cached_gaussian"]))
