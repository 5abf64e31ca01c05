"""Checkpoints: one file, tensors and primitives only, written atomically, read with weights_only.

Layout::

    {format_version, ganlstm_version, kind, config, models: {name: state_dict},
     optimizers: {name: state_dict}, step, epoch, rng, extra, checksum}

``torch.load(..., weights_only=True)`` refuses anything that is not a tensor or a
primitive container, so loading a checkpoint never runs code from it.

``checksum`` maps the path of every tensor in the file (``"models/G/main.0.weight"``) to the
SHA-256 of its dtype, shape and bytes. :func:`atomic_save` writes it for every checkpoint dict
it saves (so a checkpoint rewritten after editing its config gets a fresh one), and
:func:`load_checkpoint` refuses a file whose tensors no longer match it: torch does not verify
the CRC of the zip entries it reads, so flipped bytes in a weight would otherwise load silently.
Files written before the checksum existed (no ``checksum`` key) load unverified.
"""
from __future__ import annotations

import contextlib
import hashlib
import math
import os
import pickle
import re
import tempfile
import zipfile
from pathlib import Path
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

import torch

from .checkpoint_checks import check_layout
from .errors import GanlstmError
from .version import __version__

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


def write_new_bytes(path: str | Path, data: bytes, overwrite: bool) -> None:
    """:func:`atomic_write_bytes`, refusing an existing ``path`` in one sentence unless ``overwrite``."""
    if Path(path).exists() and not overwrite:
        raise GanlstmError(f"{path} already exists; pass --overwrite to replace it.")
    atomic_write_bytes(path, data)


def atomic_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` through a temp file + ``os.replace``: a crash leaves the old file intact.

    A checkpoint dict (one with ``format_version`` and ``kind``) is saved with a fresh
    ``checksum`` of its tensors and without the ``path`` that :func:`load_checkpoint` adds.
    """
    if _is_checkpoint(obj):
        obj = {k: v for k, v in obj.items() if k not in _UNCHECKED}
        obj["checksum"] = tensor_checksums(obj)
    with atomic_open(path) as f:
        torch.save(obj, f)


_UNCHECKED = ("checksum", "path")  # top-level keys outside the checksum: itself, and the path load_checkpoint adds


def _is_checkpoint(obj: Any) -> bool:
    return isinstance(obj, dict) and "format_version" in obj and "kind" in obj


def tensor_checksums(ckpt: dict) -> dict[str, str]:
    """SHA-256 (hex) of every tensor's dtype, shape and bytes in a checkpoint dict, keyed by its path.

    Paths join the keys and list indices down to the tensor with "/" (``"optimizers/G/state/0/exp_avg"``);
    the top-level ``checksum`` and ``path`` are skipped.
    """
    out: dict[str, str] = {}

    def walk(x: Any, where: str) -> None:
        if torch.is_tensor(x):
            out[where] = _tensor_digest(x)
        elif isinstance(x, dict):
            for k, v in x.items():
                walk(v, f"{where}/{k}" if where else str(k))
        elif isinstance(x, (list, tuple)):
            for i, v in enumerate(x):
                walk(v, f"{where}/{i}")

    walk({k: v for k, v in ckpt.items() if k not in _UNCHECKED}, "")
    return out


def _tensor_digest(t: torch.Tensor) -> str:
    t = t.detach()
    if t.layout != torch.strided:
        t = t.to_dense()
    h = hashlib.sha256(f"{t.dtype}{tuple(t.shape)}|".encode())
    t = t.resolve_conj().resolve_neg().cpu().contiguous().reshape(-1)  # (numel,)
    h.update(t.view(torch.uint8).numpy().data if t.numel() else b"")  # (numel * itemsize,) raw bytes
    return h.hexdigest()


def _verify_checksum(ckpt: dict, path: Path) -> None:
    """Refuse a checkpoint whose tensors differ from its stored checksum; legacy files (none stored) pass.

    Only the tensors still in the file are compared: a tensor a tool removed is reported by whoever needs it.
    """
    stored = ckpt.get("checksum")
    if stored is None:
        return
    found = tensor_checksums(ckpt)
    if not isinstance(stored, dict) or any(stored.get(k) != digest for k, digest in found.items()):
        raise GanlstmError(
            f"{path} is corrupt: its tensors do not match the checksum stored when it was written; "
            f"re-download it or use another checkpoint."
        )


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

    Raises :class:`GanlstmError` naming the file and the fix for a missing file, a file
    torch.save did not write (an image, an .npz), a corrupt or truncated file, a file holding
    code or arbitrary objects, a checkpoint of another kind or format version, or one whose
    tensors no longer match the checksum written with them.
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
    foreign = _foreign_file(path)
    if foreign:
        raise GanlstmError(
            f"{path} is not a ganlstm checkpoint ({foreign}, not a file written by torch.save); "
            f"pass a checkpoint written by ganlstm, e.g. a run's best.pt or last.pt."
        )
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise GanlstmError(
            f"checkpoint {path} holds objects that are not tensors or plain data and was refused "
            f"(loading it could run code: {_unpickling_detail(e)}); only load checkpoints written by ganlstm."
        ) from None
    except Exception as e:  # noqa: BLE001 - damaged bytes make torch raise anything (RuntimeError, EOFError, KeyError, ...)
        raise GanlstmError(
            f"checkpoint {path} is corrupt or truncated and cannot be read ({error_name(e)}); "
            f"use another copy, e.g. the run's last.pt or best.pt."
        ) from None
    if not isinstance(ckpt, dict) or "format_version" not in ckpt or "kind" not in ckpt:
        raise GanlstmError(f"{path} is not a ganlstm checkpoint (no format_version/kind); pass a file written by ganlstm.")
    if ckpt["format_version"] != FORMAT_VERSION:
        raise GanlstmError(
            f"checkpoint {path} has format version {ckpt['format_version']}, this ganlstm "
            f"{__version__} reads version {FORMAT_VERSION}; re-save it with a matching ganlstm."
        )
    _verify_checksum(ckpt, path)
    check_layout(ckpt, path)
    if kind is not None and ckpt["kind"] != kind:
        raise GanlstmError(f"checkpoint {path} is a {ckpt['kind']!r} checkpoint but a {kind!r} checkpoint is needed here; pass the right file.")
    ckpt["path"] = str(path)
    return ckpt


# What a file that torch.save did not write most likely is, by its first bytes.
_SIGNATURES = {b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image", b"GIF8": "a GIF image",
               b"II*\x00": "a TIFF image", b"MM\x00*": "a TIFF image", b"BM": "a BMP image", b"\x93NUMPY": "a NumPy .npy array",
               b"SIMPLE  =": "a FITS file", b"\x1f\x8b": "a gzip file"}


def _foreign_file(path: Path) -> str | None:
    """What ``path`` looks like if torch.save cannot have written it, else None (let torch.load judge).

    torch.save writes a zip archive holding ``<name>/data.pkl``, or (legacy format) a pickle, which starts
    with the PROTO opcode 0x80. An empty or truncated file is left to torch.load, which calls it truncated.
    """
    with open(path, "rb") as f:
        head = f.read(16)
    if not head or head[:1] == b"\x80":
        return None
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
        except (zipfile.BadZipFile, OSError, ValueError):
            return None  # a cut-off torch file: torch.load reports it as truncated
        if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
            return None
        return "it is a zip archive without data.pkl, e.g. an .npz"
    kind = next((what for magic, what in _SIGNATURES.items() if head.startswith(magic)), None)
    return f"it looks like {kind}" if kind else f"it starts with the bytes {head[:8]!r}"


def build_checked(build: Callable[[], torch.nn.Module], state_dict: Any, *, name: str, path: str = "checkpoint") -> torch.nn.Module:
    """``build()`` after checking, on the meta device (no memory), that its tensors are the file's.

    A checkpoint's config decides the architecture; a crafted one (``ngf=6000`` beside small
    weights) would otherwise allocate gigabytes before ``load_state_dict`` noticed the mismatch.
    """
    check_fits(build, state_dict, name=name, path=path)
    return build()


def check_fits(build: Callable[[], torch.nn.Module], state_dict: Any, *, name: str, path: str = "checkpoint") -> None:
    """Refuse ``state_dict`` unless its tensor names and shapes are those of ``build()``, built on the meta device."""
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise GanlstmError(f"{path}: the weights of {name!r} are not a mapping of tensors; the file is damaged or not written by ganlstm.")
    with torch.device("meta"):
        probe = _unwrap(build())
    want = {k: tuple(v.shape) for k, v in probe.state_dict().items()}
    have = {k: tuple(v.shape) for k, v in state_dict.items()}
    if want != have:
        n_want = sum(math.prod(s) for s in want.values())
        n_have = sum(math.prod(s) for s in have.values())
        mismatched = [k for k in want if k in have and want[k] != have[k]]
        if mismatched:
            k = mismatched[0]
            detail = f"{k}: shape torch.Size({list(have[k])}) from checkpoint, torch.Size({list(want[k])}) in the current model"
        else:
            missing, extra = sorted(set(want) - set(have)), sorted(set(have) - set(want))
            detail = f"missing {missing[0]!r}" if missing else f"unexpected {extra[0]!r}"
        raise GanlstmError(
            f"{path}: the weights of {name!r} do not fit the architecture in its config ({detail}; the config declares "
            f"{n_want:,} values in {len(want)} tensors, the file holds {n_have:,} in {len(have)}); nothing was built."
        )


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


def error_name(e: BaseException) -> str:
    """``RuntimeError: first line`` or just the type name for an exception without a message."""
    line = _first_line(e)
    return f"{type(e).__name__}: {line}" if line else type(e).__name__


def _first_line(e: BaseException) -> str:
    s = str(e).strip().split("\n")[0]
    return s[:200]
