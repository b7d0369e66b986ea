"""trainloop.cli: the config-file loader and the error boundary of the absl mains."""

import errno

import pytest
from absl import app

from trainloop import cli, signals
from trainloop.config_util import ConfigError, load_config
from trainloop.errors import CheckpointError, Interrupted, NonFiniteError


def _write(path, text):
    path.write_text(text)
    return str(path)


def test_load_config_reads_get_config_with_and_without_args(tmp_path):
    spec = _write(
        tmp_path / "c.py",
        "import ml_collections\n"
        "def get_config(arg=None):\n"
        "    return ml_collections.ConfigDict({'arg': arg or 'none', 'x': {'y': 1}})\n",
    )
    assert load_config(spec).arg == "none"
    assert load_config(f"{spec}:a=1,b").arg == "a=1,b"


@pytest.mark.parametrize(
    "text, message",
    [
        (None, r"Config file '.*nope.py' does not exist\. Pass --config="),
        ("def get_config(arg=None)\n    return 1\n", "syntax error at line 1: expected ':'"),
        (
            "import no_such_module_xyz\n",
            r"importing it raised ModuleNotFoundError.*\(at .*c.py:1\)",
        ),
        ("x = 1\n", r"defines no get_config\(arg=None\) function"),
        (
            "def get_config(arg=None):\n    return {}['k']\n",
            r"get_config\(\) raised KeyError.*c.py:2",
        ),
        ("def get_config(arg=None):\n    pass\n", "returned NoneType, not a ConfigDict"),
    ],
)
def test_load_config_errors_name_the_file_and_the_cause(tmp_path, text, message):
    path = tmp_path / ("nope.py" if text is None else "c.py")
    if text is not None:
        path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(str(path))


def test_load_config_passes_config_errors_of_get_config_through(tmp_path):
    spec = _write(
        tmp_path / "c.py",
        "from trainloop.config_util import ConfigError\n"
        "def get_config(arg=None):\n"
        "    raise ConfigError('Invalid size=7. Valid choices: a, b.')\n",
    )
    with pytest.raises(ConfigError, match=r"^Invalid size=7\. Valid choices: a, b\.$"):
        load_config(spec)
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(str(tmp_path))


@pytest.mark.parametrize(
    "exc, status, text",
    [
        (ConfigError("Invalid x=3.\nValid: 1, 2."), 2, "Error: Invalid x=3. Valid: 1, 2."),
        (app.UsageError("Unexpected arguments: ['a']"), 2, "(run with --help for the flags)."),
        (NonFiniteError("Non-finite train/loss at step 6"), 3, "at step 6"),
        (CheckpointError("No intact checkpoint in /w"), 4, "No intact checkpoint in /w"),
        (
            OSError(errno.ENOSPC, "No space left on device", "/w/metrics.jsonl"),
            74,
            "No space left on device: /w/metrics.jsonl. Free some space",
        ),
        (OSError(errno.EACCES, "Permission denied", "/w"), 74, "Check the permissions"),
        (KeyboardInterrupt(), 130, "stopped at once without saving"),
        (
            Interrupted("Fine-tuning in /w stopped by signal 15."),
            130,
            "Error: Fine-tuning in /w stopped by signal 15. Rerun the same command to resume.",
        ),
    ],
)
def test_guard_turns_expected_failures_into_one_paragraph(capsys, exc, status, text):
    def main(argv):
        raise exc

    with pytest.raises(SystemExit) as info:
        cli.guard(main)(["prog"])
    assert info.value.code == status
    err = capsys.readouterr().err
    assert err.startswith("Error: ") and text in err and err.count("\n") == 1, err


@pytest.mark.parametrize(
    "exc", [RuntimeError("a bug"), KeyError("k"), OSError("no errno"), ValueError("plain")]
)
def test_guard_lets_bugs_keep_their_traceback(exc):
    def main(argv):
        raise exc

    with pytest.raises(type(exc)):
        cli.guard(main)(["prog"])
    assert cli.describe(exc) is None


def test_signal_note_is_set_for_a_block_and_restored():
    before = signals._state.note
    with signals.noting(lambda: "after step 4."):
        assert signals._state.note() == "after step 4."
    assert signals._state.note == before


def test_exit_if_interrupted(capsys):
    from trainloop.train import TrainResult

    cli.exit_if_interrupted(TrainResult(step=7, state={}), "/w")  # finished: returns
    with pytest.raises(SystemExit) as info:
        cli.exit_if_interrupted(TrainResult(step=7, state={}, interrupted=True, signal=15), "/w")
    assert info.value.code == 143
    assert capsys.readouterr().err == (
        "Interrupted by SIGTERM (signal 15) at step 7; checkpoint saved in /w/checkpoints. "
        "Rerun the same command to resume.\n"
    )


def test_prologue_rejects_positional_arguments_and_quiets_logging_unless_asked(monkeypatch):
    from absl import flags, logging

    monkeypatch.setattr(logging, "set_verbosity", lambda level: levels.append(level))
    levels = []
    with pytest.raises(app.UsageError, match=r"Unexpected arguments: \['extra'\]"):
        cli.prologue(["prog", "extra"])
    monkeypatch.setattr(flags.FLAGS["verbosity"], "present", 0)
    cli.prologue(["prog"])
    cli.prologue(["prog"], verbosity=logging.ERROR)
    cli.prologue(["prog"], verbosity=None)
    assert levels == [logging.WARNING, logging.ERROR]
    monkeypatch.setattr(flags.FLAGS["verbosity"], "present", 1)  # -v given: left as asked
    cli.prologue(["prog"])
    assert levels == [logging.WARNING, logging.ERROR]
