"""Suite-wide fixtures."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _restore_flush_denormal():
    """Training calls ``configure_cpu()``, which flushes denormals for the whole process.

    That global FPU state would leak into later tests (hypothesis refuses to draw floats
    when subnormals cannot be represented), so every test starts and ends with it off.
    """
    torch.set_flush_denormal(False)
    yield
    torch.set_flush_denormal(False)
