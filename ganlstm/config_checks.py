"""Every config field checked for type and range when a config is made, from flags or from a file.

A checkpoint's config decides the architecture that is built before its weights are read, so a
crafted ``hidden=[100000]`` or ``ngf=6000`` would otherwise reach the allocator. The config
dataclasses call :func:`validate` from ``__post_init__``; a bad field gets one sentence naming the
field, the value and the allowed range. Bounds are generous (a 4096-wide layer, 16384 px frames):
they keep a file from asking for terabytes, not a user from a large model. Fields whose rules
depend on other fields (an EMA decay below 1, vmin below vmax) are checked where they are used.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

from .errors import GanlstmError

_WIDTH = (1, 4096)  # channels of one layer
# (class, field) -> inclusive (low, high); None = unbounded on that side. Floats must also be finite.
BOUNDS: dict[tuple[str, str], tuple[float | None, float | None]] = {
    ("FrameOptions", "size"): (None, 16384),  # the lower bound is the reader's (it names --size)
    ("FrameOptions", "max_frames"): (1, None),
    ("FrameOptions", "max_pixels"): (1, None),
    ("GanConfig", "image_size"): (4, 16384),
    ("GanConfig", "channels"): (1, 3),
    ("GanConfig", "nz"): (1, 65536),
    ("GanConfig", "ngf"): _WIDTH,
    ("GanConfig", "ndf"): _WIDTH,
    ("GanConfig", "latent_grid"): (1, 64),
    ("GanConfig", "encoder"): (0, 4096),
    ("GanTrainConfig", "lr_g"): (1e-12, 1.0),
    ("GanTrainConfig", "lr_d"): (1e-12, 1.0),
    ("GanTrainConfig", "beta1"): (0, 1),
    ("GanTrainConfig", "beta2"): (0, 1),
    ("GanTrainConfig", "val_fraction"): (0, 0.9),
    ("GanTrainConfig", "test_fraction"): (0, 0.9),
    ("GanTrainConfig", "recon_weight"): (0, 1e6),
    ("GanTrainConfig", "ada_target"): (0, 1),
    ("GanTrainConfig", "freeze_d"): (0, 64),
    ("ForecasterConfig", "image_size"): (4, 16384),
    ("ForecasterConfig", "channels"): (1, 3),
    ("ForecasterConfig", "hidden"): _WIDTH,  # each entry
    ("ForecasterConfig", "kernel"): (1, 15),
    ("ForecasterConfig", "latent_cap"): (0, None),
    ("ForecasterConfig", "sample_spread"): (0, 10),
    ("ForecastTrainConfig", "context"): (1, 10000),
    ("ForecastTrainConfig", "horizon"): (1, 100000),
    ("ForecastTrainConfig", "stride"): (1, None),
    ("ForecastTrainConfig", "alpha"): (0, 1),
    ("ForecastTrainConfig", "bright_weight"): (0, 1e6),
    ("ForecastTrainConfig", "gdl_weight"): (0, 1e6),
    ("ForecastTrainConfig", "ema"): (0, 1),
    ("ForecastTrainConfig", "recon_weight"): (0, 1e6),
    ("ForecastTrainConfig", "reader_warmup"): (0, None),
    ("ForecastTrainConfig", "sampling_start"): (0, 1),
    ("ForecastTrainConfig", "sampling_end"): (0, 1),
    ("ForecastTrainConfig", "lr"): (1e-12, 1.0),
    ("ForecastTrainConfig", "weight_decay"): (0, 10),
    ("ForecastTrainConfig", "val_fraction"): (0, 0.9),
    ("ForecastTrainConfig", "test_fraction"): (0, 0.9),
    ("FitConfig", "budget"): (0.01, None),
    ("RunConfig", "epochs"): (1, None),
    ("RunConfig", "max_steps"): (1, None),
    ("RunConfig", "batch_size"): (1, 1 << 20),
    ("RunConfig", "num_workers"): (0, 1024),
    ("RunConfig", "threads"): (1, 4096),
    ("RunConfig", "log_every"): (1, None),
    ("RunConfig", "save_every"): (0, None),
    ("RunConfig", "val_every"): (0, None),
}

# Annotation strings (``from __future__ import annotations``) -> what a value may be.
_SCALARS = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,)}


def _allowed(annotation: str) -> tuple[list[tuple[type, ...]], bool, bool]:
    """(scalar type options, None allowed, is a tuple of ints) for an annotation string."""
    parts = [p.strip() for p in str(annotation).split("|")]
    none_ok = "None" in parts
    parts = [p for p in parts if p != "None"]
    if len(parts) == 1 and parts[0].startswith("tuple["):
        inner = parts[0][len("tuple["):].split(",")[0].strip()
        return [_SCALARS.get(inner, (object,))], none_ok, True
    return [_SCALARS.get(p, (object,)) for p in parts], none_ok, False


def _is(value: Any, types: tuple[type, ...]) -> bool:
    if isinstance(value, bool) and bool not in types and object not in types:
        return False  # True is an int to Python, not to a config
    return isinstance(value, types)


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_number(cls_name: str, name: str, value: Any, where: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise GanlstmError(f"{where}.{name} = {value!r} is not a finite number; give a real value.")
    low, high = BOUNDS.get((cls_name, name), (None, None))
    if (low is not None and value < low) or (high is not None and value > high):
        if high is None:
            rule = f"at least {low}"
        elif low is None:
            rule = f"at most {high}"
        else:
            rule = f"between {low} and {high}"
        raise GanlstmError(f"{where}.{name} = {_describe(value)} is out of range; it must be {rule}.")


def validate(cfg: Any, where: str | None = None) -> None:
    """Check the type and range of every field of the dataclass ``cfg`` (not nested ones: they check themselves)."""
    cls_name = type(cfg).__name__
    where = where or cls_name
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            continue
        options, none_ok, is_tuple = _allowed(f.type)
        if value is not None and ("Config" in str(f.type) or "FrameOptions" in str(f.type)):
            raise GanlstmError(f"{where}.{f.name} = {_describe(value)} must be a table of settings ({f.type}).")
        if value is None:
            if none_ok or any(object in o for o in options):
                continue
            raise GanlstmError(f"{where}.{f.name} is missing (None); give a value.")
        if is_tuple:
            if not isinstance(value, (list, tuple)) or not value or not all(_is(v, options[0]) for v in value):
                raise GanlstmError(f"{where}.{f.name} = {_describe(value)} must be a non-empty list of {f.type[6:-6] or 'values'}s.")
            if len(value) > 64:
                raise GanlstmError(f"{where}.{f.name} has {len(value)} entries; at most 64 are allowed.")
            for v in value:
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    _check_number(cls_name, f.name, v, where)
            continue
        if not any(_is(value, o) for o in options):
            raise GanlstmError(f"{where}.{f.name} = {_describe(value)} has the wrong type ({type(value).__name__}); it must be {f.type}.")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            _check_number(cls_name, f.name, value, where)
