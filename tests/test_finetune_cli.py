"""scripts/finetune.py: bad input stops with one paragraph (exit 2) and writes nothing."""

import os
import subprocess
import sys

import pytest

from simplified_tf.recipes import decoder_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "simplified_tf"))
from test_downstream_glue import write_glue_fixture  # noqa: E402


def _finetune(*args):
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, "scripts", "finetune.py"), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )


@pytest.mark.parametrize("case", ["missing_glue_dir", "decoder_init_from"])
def test_bad_input_is_one_paragraph_and_writes_nothing(tmp_path, case):
    glue_dir = tmp_path / "glue"
    init_from = ""
    if case == "decoder_init_from":
        write_glue_fixture(glue_dir)
        init_from = tmp_path / "decoder_run"
        init_from.mkdir()
        (init_from / "config.json").write_text(decoder_config("pre_ln", "tiny").to_json())
    out = tmp_path / "out"
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    run = _finetune(
        f"--config=configs/glue.py:tasks=sst2,size=tiny,glue_dir={glue_dir},init_from={init_from}",
        f"--out={out}",
    )
    assert run.returncode == 2, run.stderr
    error = run.stderr.strip().splitlines()[-1]
    assert error.startswith("Error: ") and "Traceback" not in run.stderr
    expected = "does not exist" if case == "missing_glue_dir" else "is not a BERT pretraining run"
    assert expected in error
    assert not out.exists() and sorted(str(p) for p in tmp_path.rglob("*")) == before
