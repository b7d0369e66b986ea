"""The boundary between the suite's absl mains and their users: signals, config flags, errors.

A script uses three names:

    from trainloop import cli
    from trainloop.config_util import ConfigError

    _CONFIG = cli.define_config_flag("config", "Experiment config (path.py[:args]).")

    def main(argv):
        ...  # raise ConfigError("--x=3 must be ...") etc. for bad input; see below

    if __name__ == "__main__":
        cli.run(main, stop_note="before the table was written.")

`cli.run(main, stop_note=None)` replaces `absl.app.run(main)`:
  1. installs the SIGTERM/SIGINT handlers of `trainloop.signals` first thing: outside the training
     loop a signal prints "Stopped by SIGTERM (signal 15) <stop_note>" and ends the process with
     status 128 + signal; inside the loop the signal is recorded, a checkpoint saved and
     `train_and_evaluate` returns `interrupted=True` (whose `signal` the script exits with).
     `stop_note` finishes that sentence (default: "before training started; no checkpoint was
     written."); during `train_and_evaluate`'s set-up it names the newest complete checkpoint.
     A script that trains calls `signals.install(note)` at its very top as well, so that even its
     imports are covered;
  2. parses flags with one-paragraph errors (status 2): a bad flag value, an unknown
     `--config.key` (listing the valid keys), or a config file that is missing, does not parse,
     has no `get_config`, or whose `get_config` raises (naming the file and the line);
  3. runs `main` inside `guard`, which turns expected failures into one paragraph on stderr,
     "Error: <message>", and an exit status:

        ConfigError (bad config or flag value; unusable data), absl.app.UsageError   2
        NonFiniteError (NaN/Inf loss or gradient)                                     3
        CheckpointError (no intact checkpoint to restore)                             4
        OSError of the machine or a path (ENOSPC, EDQUOT, EACCES, EPERM, EROFS,      74
          EIO, ENOENT, ENOTDIR, EISDIR, ENAMETOOLONG, EMFILE, ENFILE)
        KeyboardInterrupt (a second signal inside the training loop)                130
        Interrupted (a run of a many-run script stopped by a signal; saved)          130

     Any other exception is a bug and keeps its traceback.

`cli.prologue(argv)` is the first line of a `main`: it rejects positional arguments (UsageError,
status 2) and, unless -v/--verbosity is given, sets the log verbosity to WARNING (or the level
passed; None keeps absl's default), which keeps library INFO chatter (orbax, the XLA bridge) off
the console; the suite announces what matters on stderr itself.

`cli.define_config_flag(name, help)` is `ml_collections.config_flags.DEFINE_config_file` (with
`--name.key=value` overrides) whose file loading goes through `config_util.load_config`, the one
config-file loader; code that loads a config without a flag calls
`trainloop.config_util.load_config("path.py:args")` (re-exported here as `cli.load_config`).
`cli.guard(fn)` wraps any `fn(argv)` in the same boundary; `cli.describe(exc)` gives the
(message, status) it would use, or None for a bug; `cli.fail(message, status)` prints one
paragraph and exits; `cli.exit_if_interrupted(result, workdir)` ends a training script that
`train_and_evaluate` returned from after a signal.
"""

from __future__ import annotations

import errno
import functools
import os
import re
import sys
from collections.abc import Callable
from typing import NoReturn

from absl import app, flags, logging
from ml_collections import config_flags

from trainloop import signals
from trainloop.config_util import load_config  # noqa: F401  (part of this module's API)
from trainloop.errors import (
    CheckpointError,
    ConfigError,
    Interrupted,
    NonFiniteError,
    signal_name,
)

EXIT_CONFIG, EXIT_NONFINITE, EXIT_CHECKPOINT, EXIT_OS = 2, 3, 4, 74

# errnos that describe the machine or the user's paths, with what to do about them.
OS_HINTS = {
    errno.ENOSPC: "Free some space (or use a --workdir on a disk with room) and rerun the same "
    "command; a training run resumes from its newest complete checkpoint.",
    errno.EDQUOT: "The disk quota is used up; free some of it and rerun the same command.",
    errno.EACCES: "Check the permissions of that path, or pass a path you can write to.",
    errno.EPERM: "Check the permissions of that path, or pass a path you can write to.",
    errno.EROFS: "The file system is read-only; pass a path on a writable one.",
    errno.EIO: "The disk reported an I/O error; check it before rerunning.",
    errno.ENOENT: "Check the path.",
    errno.ENOTDIR: "A part of the path is a file, not a directory; check the path.",
    errno.EISDIR: "The path is a directory where a file was expected; check the path.",
    errno.ENAMETOOLONG: "Use a shorter path.",
    errno.EMFILE: "Too many open files; raise the limit (ulimit -n) and rerun.",
    errno.ENFILE: "Too many open files on the system; rerun when fewer are open.",
}


def fail(message: str, status: int = EXIT_CONFIG) -> NoReturn:
    """Prints `Error: message` (one paragraph) on stderr and exits with `status`."""
    print(f"Error: {' '.join(str(message).split())}", file=sys.stderr, flush=True)
    sys.exit(status)


def describe(exc: BaseException) -> tuple[str, int] | None:
    """(one-paragraph message, exit status) of an expected failure, None for a bug."""
    if isinstance(exc, KeyboardInterrupt):
        return (
            "Interrupted by a second signal (or Ctrl-C): stopped at once without saving. "
            "Checkpoints that finished saving are intact; rerun the same command to resume.",
            130,
        )
    if isinstance(exc, Interrupted):
        return f"{exc} Rerun the same command to resume.", 130
    if isinstance(exc, app.UsageError):
        return f"{str(exc).rstrip('.')} (run with --help for the flags).", EXIT_CONFIG
    if isinstance(exc, ConfigError):
        return str(exc), EXIT_CONFIG
    if isinstance(exc, NonFiniteError):
        return str(exc), EXIT_NONFINITE
    if isinstance(exc, CheckpointError):
        return str(exc), EXIT_CHECKPOINT
    if isinstance(exc, OSError) and exc.errno in OS_HINTS:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror}{where}. {OS_HINTS[exc.errno]}", EXIT_OS
    return None


def prologue(argv: list[str], verbosity: int | None = logging.WARNING) -> None:
    """Rejects positional arguments and sets the log verbosity unless -v/--verbosity was given
    (see the module docstring)."""
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if verbosity is not None and not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(verbosity)


def exit_if_interrupted(
    result, workdir: str, rerun: str = "Rerun the same command to resume."
) -> None:
    """Ends the process with 128 + signal if `train_and_evaluate` returned after a signal (its
    checkpoint is saved), saying so on stderr."""
    if not result.interrupted:
        return
    print(
        f"Interrupted by {signal_name(result.signal)} at step {result.step}; checkpoint saved in "
        f"{os.path.join(workdir, 'checkpoints')}. {rerun}",
        file=sys.stderr,
        flush=True,
    )
    sys.exit(128 + result.signal)


def guard(main: Callable[[list[str]], object]) -> Callable[[list[str]], object]:
    """`main` with expected failures turned into one paragraph and an exit status (see above)."""

    @functools.wraps(main)
    def guarded(argv):
        try:
            return main(argv)
        except BaseException as e:
            described = describe(e)
            if described is None:
                raise
            fail(*described)

    return guarded


class _ConfigFileParser(flags.ArgumentParser):
    """Parses `--config=path.py:args` through `load_config` (in place of config_flags' parser)."""

    def __init__(self, lock_config: bool):
        self.lock_config = lock_config

    def parse(self, argument):
        config = load_config(argument)
        if self.lock_config:
            config.lock()
        return config

    def flag_type(self):
        return "config object"


def define_config_flag(
    name: str = "config",
    help_string: str = "Config file (path.py:args).",
    *,
    lock_config: bool = True,
):
    """A `--name=path.py[:args]` flag with `--name.key=value` overrides (see module docstring)."""
    holder = config_flags.DEFINE_config_file(name, None, help_string, lock_config=lock_config)
    flags.FLAGS[name].parser = _ConfigFileParser(lock_config)
    return holder


def _config_flag_names() -> list[str]:
    return [n for n, f in flags.FLAGS._flags().items() if isinstance(f.parser, _ConfigFileParser)]


def _dotted_keys(node, prefix: str = ""):
    for key, value in node.items():
        if hasattr(value, "items"):
            yield from _dotted_keys(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"


def _unknown_keys_message(argv: list[str], error: Exception) -> str:
    """Names the unknown `--config.key` overrides and lists the valid keys."""
    for name in _config_flag_names():
        spec = next((a.split("=", 1)[1] for a in argv if a.startswith(f"--{name}=")), None)
        if spec is None:
            continue
        valid = sorted(_dotted_keys(load_config(spec)))
        given = [a.split("=", 1)[0][len(name) + 3 :] for a in argv if a.startswith(f"--{name}.")]
        unknown = [k for k in given if re.sub(r"^no", "", k) not in valid and k not in valid]
        if unknown:
            return f"Unknown config key(s) {unknown}. Valid keys: {', '.join(valid)}."
    return f"Bad config override: {type(error).__name__}: {error}."


def parse_flags(argv: list[str]) -> list[str]:
    """absl flag parsing with one-paragraph errors instead of tracebacks (exit status 2)."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        cause = e.__cause__ or e.__context__
        if isinstance(cause, ConfigError):
            fail(str(cause))
        fail(f"{str(e).rstrip('.')} (run with --help for the flags).")
    except (AttributeError, KeyError) as e:  # config_flags on an unknown --config.key
        try:
            fail(_unknown_keys_message(argv, e))
        except ConfigError as config_error:
            fail(str(config_error))


def run(main: Callable[[list[str]], object], *, stop_note: str | None = None) -> NoReturn:
    """`absl.app.run(main)` with signal handling from now on, one-paragraph flag errors and the
    error boundary around `main` (see the module docstring)."""
    signals.install(stop_note or signals.DEFAULT_NOTE)
    app.run(guard(main), flags_parser=parse_flags)
