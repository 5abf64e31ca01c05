"""The one exception type for bad input; the CLI prints its message and exits 2."""
from __future__ import annotations


class GanlstmError(Exception):
    """Bad input or state. The message is one sentence naming the problem and the fix."""
