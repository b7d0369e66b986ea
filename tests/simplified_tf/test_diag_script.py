"""scripts/signal_prop.py end to end (slow); its checkpoint reading is trainloop.checkpoint.restore_run_params."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "scripts", "signal_prop.py")


@pytest.mark.slow
def test_script_at_init_writes_outputs_and_shows_collapse(tmp_path):
    out = tmp_path / "sp"
    cmd = [
        sys.executable,
        SCRIPT,
        "--size=tiny",
        "--layers=6",
        "--blocks=sas_p,naive_skipless",
        "--batch=2",
        "--seq=16",
        f"--out={out}",
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert res.returncode == 0, res.stderr[-2000:]
    stem = "decoder_tiny_L6"
    for suffix in ("_cosine_rms.png", "_batch_corr.png", "_outliers.png", "_entropy.png", ".md"):
        assert (out / f"{stem}{suffix}").exists()
        assert str(out / f"{stem}{suffix}") in res.stdout
    data = json.loads((out / f"{stem}.json").read_text())
    cos_sas = data["profiles"]["sas_p"]["cosine"]
    cos_naive = data["profiles"]["naive_skipless"]["cosine"]
    assert len(cos_sas) == 7
    assert max(abs(c - cos_sas[0]) for c in cos_sas) < 0.05
    assert cos_naive[-1] > 0.9
    assert data["scalar_tables"]["sas_p"][0]["beta_ff"] == pytest.approx(0.1)


def test_script_rejects_unknown_block():
    res = subprocess.run(
        [sys.executable, SCRIPT, "--size=tiny", "--blocks=sas,nope", "--out=/dev/null"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert res.returncode == 2
    assert "nope" in res.stderr and "naive_skipless" in res.stderr
