"""SIGTERM/SIGINT outside the training loop: stop at once with a message saying what is on disk.

Inside the loop, `trainloop.train` records the first signal and stops at the next step boundary
after saving a checkpoint (a second signal stops at once). Outside it (imports, data preparation,
restoring, compiling, or a script that does not train) there is nothing to finish, so once
`install` ran, a signal prints one paragraph, "Stopped by SIGTERM (signal 15) <note>", and ends the
process with status 128 + signal. Without this, SIGTERM during start-up kills the process without
a word and SIGINT prints a KeyboardInterrupt traceback.

The process ends with `os._exit`, like the SIGKILL that a scheduler sends after its grace period:
no Python code runs after the signal, so no half-done cleanup or exception handler (some libraries
turn exceptions raised in a signal handler into other errors) can change what is on disk. Every
file the suite writes outside the loop is written to a temporary name and renamed, and checkpoints
commit by renaming, so stopping at any instant leaves complete files.

`install(note)` is for scripts (`cli.run` calls it; the training scripts call it first thing).
Library use (tests, notebooks) keeps Python's default behaviour outside the loop. `note` is a
string or a function returning one (called when the signal arrives); `noting(note)` sets it for a
block, e.g. the training loop's set-up, which names the newest complete checkpoint.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable

from trainloop.errors import signal_name

SIGNALS = (signal.SIGTERM, signal.SIGINT)
DEFAULT_NOTE = "before training started; no checkpoint was written."

Note = str | Callable[[], str]


class _State:
    installed: bool = False
    note: Note = DEFAULT_NOTE


_state = _State()


def _handle(signum, frame):
    try:
        note = _state.note() if callable(_state.note) else _state.note
    except Exception as e:  # the message must not stop the stop
        note = f"(could not describe the files on disk: {e})"
    print(f"Stopped by {signal_name(signum)} {note}", file=sys.stderr, flush=True)
    os._exit(128 + signum)


def install(note: Note | None = None) -> bool:
    """From now on SIGTERM/SIGINT outside the training loop stop the process with a message.

    Returns False (and does nothing but set the note) off the main thread, where Python cannot
    set handlers."""
    if note is not None:
        _state.note = note
    if threading.current_thread() is not threading.main_thread():
        return False
    for s in SIGNALS:
        signal.signal(s, _handle)
    _state.installed = True
    return True


def installed() -> bool:
    return _state.installed


@contextlib.contextmanager
def noting(note: Note):
    """Within the block, a stop reports `note`; the previous note comes back afterwards."""
    previous = _state.note
    _state.note = note
    try:
        yield
    finally:
        _state.note = previous
