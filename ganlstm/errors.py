"""The one exception type for bad input (the CLI prints its message and exits 2), and a saved interruption."""
from __future__ import annotations


class GanlstmError(Exception):
    """Bad input or state. The message is one sentence naming the problem and the fix."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) stopped a training run after it saved ``checkpoint``; the CLI prints how to resume."""

    def __init__(self, checkpoint: str):
        super().__init__(checkpoint)
        self.checkpoint = checkpoint
