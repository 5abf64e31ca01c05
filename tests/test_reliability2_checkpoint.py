"""Issue 18, items 4 and 12: damaged tensors are caught by a checksum, and foreign files are named as such.

torch does not verify the CRC of the zip entries it reads, so a flipped byte inside a weight
loads silently; the checksum written with every checkpoint catches it. A file torch.save did
not write (an image, an .npz, text) is called "not a ganlstm checkpoint", not a torch error.
"""
from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganlstm.checkpoint import SHIPPED_DIR, atomic_save, load_checkpoint, save_checkpoint
from ganlstm.errors import GanlstmError

CORRUPT = r"is corrupt: its tensors do not match the checksum stored when it was written; re-download it or use another checkpoint"


def _ckpt(path: Path) -> Path:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(30, 20), torch.nn.BatchNorm1d(20))
    opt = torch.optim.Adam(net.parameters())
    net(torch.randn(4, 30)).sum().backward()
    opt.step()
    return save_checkpoint(path, kind="forecaster", config={"model": {"anchor_decay": 0.0}}, models={"net": net},
                           optimizers={"opt": opt}, step=3, extra={"half": torch.ones(2, dtype=torch.bfloat16)})


def test_a_fresh_checkpoint_carries_a_checksum_and_loads(tmp_path):
    path = _ckpt(tmp_path / "c.pt")
    raw = torch.load(path, weights_only=True)
    assert isinstance(raw["checksum"], dict) and "models/net/0.weight" in raw["checksum"]
    assert "optimizers/opt/state/0/exp_avg" in raw["checksum"]
    assert load_checkpoint(path)["step"] == 3


def test_a_flipped_byte_in_a_weight_is_refused(tmp_path):
    path = _ckpt(tmp_path / "c.pt")
    with zipfile.ZipFile(path) as zf:  # the largest tensor storage: the Linear weight
        info = max((i for i in zf.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    data = bytearray(path.read_bytes())
    name_len, extra_len = struct.unpack_from("<HH", data, info.header_offset + 26)  # zip local file header
    data[info.header_offset + 30 + name_len + extra_len + info.file_size // 2] ^= 0x10
    flipped = tmp_path / "flipped.pt"
    flipped.write_bytes(bytes(data))
    torch.load(flipped, weights_only=True)  # torch itself reads the damaged file without complaint
    with pytest.raises(GanlstmError, match=r"flipped\.pt " + CORRUPT):
        load_checkpoint(flipped)


def test_a_tampered_tensor_keeping_the_old_checksum_is_refused(tmp_path):
    payload = torch.load(_ckpt(tmp_path / "c.pt"), weights_only=True)
    payload["models"]["net"]["1.running_var"][3] = 2.0
    torch.save(payload, tmp_path / "tampered.pt")
    with pytest.raises(GanlstmError, match=r"tampered\.pt " + CORRUPT):
        load_checkpoint(tmp_path / "tampered.pt")
    payload["checksum"] = ["not", "a", "checksum"]
    torch.save(payload, tmp_path / "garbled.pt")
    with pytest.raises(GanlstmError, match=r"garbled\.pt " + CORRUPT):
        load_checkpoint(tmp_path / "garbled.pt")


def test_edits_that_leave_the_tensors_alone_still_load(tmp_path):
    payload = torch.load(_ckpt(tmp_path / "c.pt"), weights_only=True)
    payload["config"]["model"]["anchor_decay"] = 0.5  # e.g. a hand-edited config
    del payload["optimizers"]  # a tensor dropped: reported by whoever needs it, not as corruption
    torch.save(payload, tmp_path / "edited.pt")
    assert load_checkpoint(tmp_path / "edited.pt")["config"]["model"]["anchor_decay"] == 0.5


def test_rewriting_a_loaded_checkpoint_refreshes_its_checksum(tmp_path):
    # What set_anchor_decay does: load, change, atomic_save the same dict (stale checksum and path included).
    ckpt = load_checkpoint(_ckpt(tmp_path / "c.pt"))
    ckpt["models"]["net"]["0.bias"].add_(1.0)
    ckpt["config"]["model"]["anchor_decay"] = 0.25
    atomic_save(ckpt, tmp_path / "rewritten.pt")
    raw = torch.load(tmp_path / "rewritten.pt", weights_only=True)
    assert "path" not in raw
    again = load_checkpoint(tmp_path / "rewritten.pt")
    assert torch.equal(again["models"]["net"]["0.bias"], ckpt["models"]["net"]["0.bias"])
    assert again["path"] == str(tmp_path / "rewritten.pt")


def test_checkpoints_written_before_the_checksum_still_load(tmp_path):
    payload = torch.load(_ckpt(tmp_path / "c.pt"), weights_only=True)
    del payload["checksum"]
    payload["models"]["net"]["0.bias"][0] = 7.0  # unverifiable, so loaded as it is
    torch.save(payload, tmp_path / "legacy.pt")
    assert load_checkpoint(tmp_path / "legacy.pt")["models"]["net"]["0.bias"][0] == 7.0
    for name in ("convlstm_32.pt",):  # predates the checksum and still loads (gan_lstm_32.pt gained one with its context check)
        if (SHIPPED_DIR / name).is_file():
            assert "checksum" not in load_checkpoint(SHIPPED_DIR / name)
    for path in (SHIPPED_DIR / "gan_lstm.pt", SHIPPED_DIR / "convlstm.pt"):  # the 64 px pair carries one, and it verifies
        assert "checksum" in load_checkpoint(path)


def _foreign_bytes(what: str) -> bytes:
    buf = io.BytesIO()
    if what == "png":
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(buf, format="PNG")
    elif what == "npz":
        np.savez(buf, a=np.zeros(3))
    elif what == "npy":
        np.save(buf, np.zeros(3))
    else:
        buf.write(b"hello, this is a note")
    return buf.getvalue()


@pytest.mark.parametrize("what, looks", [
    ("png", "it looks like a PNG image"),
    ("npz", "it is a zip archive without data.pkl"),
    ("npy", "it looks like a NumPy .npy array"),
    ("text", "it starts with the bytes b'hello, t'"),
])
def test_a_file_torch_did_not_write_is_not_a_ganlstm_checkpoint(tmp_path, what, looks):
    path = tmp_path / f"model_{what}.pt"
    path.write_bytes(_foreign_bytes(what))
    with pytest.raises(GanlstmError) as e:
        load_checkpoint(path)
    message = str(e.value)
    assert message.startswith(f"{path} is not a ganlstm checkpoint ({looks}")
    assert "pass a checkpoint written by ganlstm" in message and "\n" not in message
    assert "weights_only" not in message and "Weights only" not in message


def test_damage_that_makes_torch_raise_anything_is_a_clear_error(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"\x80\x02junk after a pickle protocol byte")
    with pytest.raises(GanlstmError, match=r"junk\.pt is (corrupt or truncated|.*refused)"):
        load_checkpoint(tmp_path / "junk.pt")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(GanlstmError, match=r"empty\.pt is corrupt or truncated and cannot be read \(EOFError\)"):
        load_checkpoint(tmp_path / "empty.pt")
