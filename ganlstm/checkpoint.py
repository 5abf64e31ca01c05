"""Checkpoints: one file, tensors and primitives only, written atomically, read with weights_only.

Layout::

    {format_version, ganlstm_version, kind, config, models: {name: state_dict},
     optimizers: {name: state_dict}, step, epoch, rng, extra}

``torch.load(..., weights_only=True)`` refuses anything that is not a tensor or a
primitive container, so loading a checkpoint never runs code from it.
"""
from __future__ import annotations

import contextlib
import os
import pickle
import random
import re
import tempfile
import zipfile
from pathlib import Path
from collections.abc import Iterator
from typing import Any, BinaryIO

import numpy as np
import torch

from . import __version__
from .errors import GanlstmError

FORMAT_VERSION = 1
KINDS = ("gan", "forecaster")


def shipped_checkpoint_dir() -> Path:
    """Where the shipped pretrained checkpoints are.

    In a source checkout or an editable install, the repository's ``checkpoints/``; after
    ``pip install`` of a wheel (``pip install git+...``), ``<prefix>/share/ganlstm/checkpoints``,
    where setup.cfg's ``data_files`` puts them (``<user base>/share/...`` for ``--user``).
    Returns the repository path when neither holds them (callers then say how to restore them).
    """
    import site
    import sys

    repo = Path(__file__).resolve().parent.parent / "checkpoints"
    installed = [Path(base) / "share" / "ganlstm" / "checkpoints" for base in (sys.prefix, site.USER_BASE) if base]
    return next((d for d in (repo, *installed) if (d / "gan_lstm.pt").is_file()), repo)


#: The shipped checkpoints' folder (see :func:`shipped_checkpoint_dir`).
SHIPPED_DIR = shipped_checkpoint_dir()


def _temp_beside(path: Path) -> tuple[int, str]:
    """A temp file next to ``path`` (same filesystem, so ``os.replace`` is atomic), with the mode ``open()`` would give.

    ``mkstemp`` creates files as 0600; kept, every checkpoint and picture would be unreadable to collaborators.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0o022)  # reading the umask means setting it; restored at once
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    return fd, tmp


@contextlib.contextmanager
def atomic_open(path: str | Path) -> Iterator[BinaryIO]:
    """Open a temp file beside ``path`` for writing; on success it is fsynced and renamed onto ``path``.

    A crash or exception at any point leaves the old ``path`` intact and no temp file behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _temp_beside(path)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same directory + ``os.replace``)."""
    with atomic_open(path) as f:
        f.write(data)


def atomic_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` through a temp file + ``os.replace``: a crash leaves the old file intact."""
    with atomic_open(path) as f:
        torch.save(obj, f)


def rng_state() -> dict:
    """Every RNG the training loop touches, as tensors and primitives."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": _python_rng_to_primitives(random.getstate()),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` captured."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _python_rng_to_primitives(s: tuple) -> list:
    version, internal, gauss = s
    return [version, list(internal), gauss]


def save_checkpoint(
    path: str | Path,
    *,
    kind: str,
    config: dict,
    models: dict[str, torch.nn.Module | dict],
    optimizers: dict[str, torch.optim.Optimizer | dict] | None = None,
    step: int = 0,
    epoch: int = 0,
    rng: dict | None = None,
    extra: dict | None = None,
) -> Path:
    """Save one checkpoint file atomically and return its path."""
    if kind not in KINDS:
        raise ValueError(f"unknown checkpoint kind {kind!r}")

    def sd(x):
        return x.state_dict() if hasattr(x, "state_dict") else x

    payload = {
        "format_version": FORMAT_VERSION,
        "ganlstm_version": __version__,
        "kind": kind,
        "config": config,
        "models": {k: _cpu(sd(_unwrap(m))) for k, m in models.items()},
        "optimizers": {k: sd(o) for k, o in (optimizers or {}).items()},
        "step": int(step),
        "epoch": int(epoch),
        "rng": rng if rng is not None else {},
        "extra": extra or {},
    }
    atomic_save(payload, path)
    return Path(path)


def load_checkpoint(path: str | Path, *, kind: str | None = None, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint with ``weights_only=True`` and check its format and kind.

    Raises :class:`GanlstmError` naming the file and the fix for a missing file, a
    corrupt or truncated file, a file holding code or arbitrary objects, or a
    checkpoint of another kind or format version.
    """
    path = Path(path)
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            if (path / name).is_file():
                path = path / name
                break
        else:
            raise GanlstmError(f"{path} is a directory without best.pt or last.pt; pass a checkpoint file.")
    if not path.is_file():
        raise GanlstmError(f"checkpoint {path} does not exist; check the path (run directories hold best.pt and last.pt).")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise GanlstmError(
            f"checkpoint {path} holds objects that are not tensors or plain data and was refused "
            f"(loading it could run code: {_unpickling_detail(e)}); only load checkpoints written by ganlstm."
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as e:
        raise GanlstmError(
            f"checkpoint {path} is corrupt or truncated and cannot be read ({_first_line(e)}); "
            f"use another copy, e.g. the run's last.pt or best.pt."
        ) from None
    if not isinstance(ckpt, dict) or "format_version" not in ckpt or "kind" not in ckpt:
        raise GanlstmError(f"{path} is not a ganlstm checkpoint (no format_version/kind); pass a file written by ganlstm.")
    if ckpt["format_version"] != FORMAT_VERSION:
        raise GanlstmError(
            f"checkpoint {path} has format version {ckpt['format_version']}, this ganlstm "
            f"{__version__} reads version {FORMAT_VERSION}; re-save it with a matching ganlstm."
        )
    if kind is not None and ckpt["kind"] != kind:
        raise GanlstmError(f"checkpoint {path} is a {ckpt['kind']!r} checkpoint but a {kind!r} checkpoint is needed here; pass the right file.")
    ckpt["path"] = str(path)
    return ckpt


def load_state(module: torch.nn.Module, state_dict: dict, *, name: str, path: str = "checkpoint") -> None:
    """``load_state_dict`` with an error that says which architecture mismatch occurred."""
    try:
        _unwrap(module).load_state_dict(state_dict)
    except RuntimeError as e:
        msg = str(e).split("\n")
        detail = "; ".join(line.strip() for line in msg[1:4] if line.strip()) or msg[0]
        raise GanlstmError(
            f"{path}: the weights of {name!r} do not fit the architecture in its config ({detail}); "
            f"the checkpoint was written by a different architecture or version."
        ) from None


def _unwrap(m: Any) -> Any:
    # DDP / torch.compile wrappers keep the real module underneath.
    while hasattr(m, "module") and isinstance(m, torch.nn.Module):
        m = m.module
    return getattr(m, "_orig_mod", m)


def _cpu(sd: dict) -> dict:
    return {k: v.detach().cpu() if torch.is_tensor(v) else v for k, v in sd.items()}


def _unpickling_detail(e: BaseException) -> str:
    """What the weights_only unpickler objected to, e.g. "it references io.open".

    torch's own message is a page of advice whose first line suggests ``weights_only=False``:
    exactly what must not be done with an untrusted file.
    """
    found = re.search(r"GLOBAL ([\w.]+)", str(e))
    if found:
        return f"it references {found.group(1)}"
    lines = [line.strip() for line in str(e).splitlines() if "WeightsUnpickler error" in line]
    return re.sub(r"\x1b\[[0-9;]*m", "", lines[0] if lines else _first_line(e))[:200]


def _first_line(e: BaseException) -> str:
    s = str(e).strip().split("\n")[0]
    return s[:200]
