"""The failures a run reports to its user as one paragraph instead of a traceback.

Each class names a kind of expected failure; `trainloop.cli` maps them to a message and an exit
status. Their messages are written for the user: they name the bad value or file and say what to do.
Anything else that escapes a script is a bug and keeps its traceback.
"""

from __future__ import annotations

import signal


class ConfigError(ValueError):
    """A bad configuration or command-line value; the message names it and the valid choices."""


class CheckpointError(ValueError):
    """A checkpoint is damaged (unreadable files, checksum mismatch) and no intact one can stand in."""


class NonFiniteError(FloatingPointError):
    """The loss or the gradients became NaN/Inf; the message names the step and the intact checkpoint."""


class Interrupted(RuntimeError):
    """A run inside a script of many runs stopped by a signal; its checkpoint is saved and rerunning
    the script resumes it (and skips the runs already finished)."""


def signal_name(signum: int) -> str:
    """'SIGTERM (signal 15)'."""
    try:
        return f"{signal.Signals(signum).name} (signal {signum})"
    except ValueError:
        return f"signal {signum}"
