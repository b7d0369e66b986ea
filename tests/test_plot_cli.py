"""scripts/plot.py: bad workdirs and unknown metrics are one-paragraph errors; a good plot."""

import json
import os
import subprocess
import sys

import pytest
from script_loader import load_script

from trainloop.config_util import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "plot.py")


@pytest.fixture(scope="module")
def plot():
    return load_script(SCRIPT, "plot_script")


def _workdir(path, events):
    path.mkdir()
    (path / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    return str(path)


def test_load_runs_errors(plot, tmp_path):
    good = _workdir(tmp_path / "good", [{"step": 1, "train/loss": 2.0}])
    with pytest.raises(ConfigError, match="'.*nowhere' is not a directory"):
        plot.load_runs([str(tmp_path / "nowhere")], ["train/loss"])
    with pytest.raises(ConfigError, match="No metric events in .*empty"):
        plot.load_runs([_workdir(tmp_path / "empty", [])], ["train/loss"])
    with pytest.raises(
        ConfigError, match="'eval/loss' is not logged in .*Logged metrics: train/loss"
    ):
        plot.load_runs([good], ["eval/loss"])
    assert plot.load_runs([good], ["train/loss"]) == {good: [{"step": 1, "train/loss": 2.0}]}


def test_unknown_metric_is_an_error_without_usage_and_writes_nothing(tmp_path):
    good = _workdir(tmp_path / "good", [{"step": 1, "train/loss": 2.0}])
    out = tmp_path / "p.png"
    run = subprocess.run(
        [sys.executable, SCRIPT, f"--workdirs={good}", "--metrics=train/bogus", f"--out={out}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2
    assert run.stderr.startswith("Error: --metrics entry 'train/bogus' is not logged")
    assert run.stderr.count("\n") == 1 and not out.exists()
