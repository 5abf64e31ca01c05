"""The append-only CSV logs of a run (``log.csv``, ``metrics.csv``)."""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from ..checkpoint import atomic_write_bytes


class CsvLog:
    """Append-only CSV; a row with new keys widens the header; on resume, rows past the step are dropped."""

    def __init__(self, path: Path, resume_step: int | None = None):
        self.path = path
        self.fields: list[str] | None = None
        if path.exists():
            rows = self._read()
            if rows:
                self.fields = list(rows[0].keys())
            if resume_step is not None:
                # Rows logged after the checkpoint we resume from never "happened": drop them so steps stay continuous.
                kept = [r for r in rows if _int(r.get("step")) <= resume_step]
                self._rewrite(kept)

    def _read(self) -> list[dict]:
        with self.path.open(newline="") as f:
            return list(csv.DictReader(f))

    def _rewrite(self, rows: list[dict]) -> None:
        text = io.StringIO()
        if self.fields:
            w = csv.DictWriter(text, fieldnames=self.fields)
            w.writeheader()
            w.writerows(rows)
        atomic_write_bytes(self.path, text.getvalue().encode())

    def write(self, row: dict) -> None:
        new = self.fields is None
        if new:
            self.fields = list(row)
        elif set(row) - set(self.fields):
            # A later phase logs more (e.g. after stage two's reader warm-up): widen the header, old rows get blanks.
            rows = self._read()
            self.fields += [k for k in row if k not in self.fields]
            self._rewrite(rows)
        with self.path.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.fields, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow({k: _fmt(v) for k, v in row.items()})
            f.flush()


def _int(x: Any) -> int:
    try:
        return int(float(x))
    except (TypeError, ValueError):
        return -1


def _fmt(v: Any) -> Any:
    return f"{v:.6g}" if isinstance(v, float) else v
