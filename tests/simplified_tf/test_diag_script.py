"""scripts/signal_prop.py: checkpoint layout of trainloop, and (slow) an end-to-end run."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import pytest
from script_loader import load_script

from trainloop.checkpoint import Checkpoints
from trainloop.config_util import ConfigError
from trainloop.errors import CheckpointError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "scripts", "signal_prop.py")


def _load_script():
    return load_script(SCRIPT, "signal_prop_script")


def test_restore_params_reads_the_trainloop_layout(tmp_path):
    params = {"blocks": {"rest": {"beta_ff": jnp.array([0.1, 0.3])}}, "w": jnp.ones((2, 3))}
    state = {"step": jnp.int32(7), "params": params, "opt_state": {"mu": jnp.zeros((2, 3))}}
    ckpts = Checkpoints(str(tmp_path), every=1, keep=2)
    ckpts.save(7, state, {"structure": {}}, force=True)
    ckpts.close()
    script = _load_script()
    restored, step = script.restore_params(str(tmp_path), None)
    assert step == 7
    chex.assert_trees_all_close(jax.tree.map(jnp.asarray, restored), params)
    with pytest.raises(ConfigError, match="valid steps"):
        script.restore_params(str(tmp_path), 3)
    with pytest.raises(ConfigError, match="No checkpoints"):
        script.restore_params(str(tmp_path / "nothing"), None)


def test_restore_params_verifies_and_skips_a_damaged_newest_checkpoint(tmp_path, capsys):
    ckpts = Checkpoints(str(tmp_path), every=1, keep=3)
    for step in (6, 7):
        state = {"step": jnp.int32(step), "params": {"w": jnp.full((2, 3), float(step))}}
        ckpts.save(step, state, {"structure": {}}, force=True)
    ckpts.close()
    (tmp_path / "checkpoints" / "7" / "meta" / "metadata").write_bytes(b"\xff")
    script = _load_script()
    restored, step = script.restore_params(str(tmp_path), None)
    assert step == 6 and float(restored["w"][0, 0]) == 6.0
    assert "Checkpoint step 7 in" in capsys.readouterr().err
    with pytest.raises(CheckpointError, match="step 7 .* damaged"):
        script.restore_params(str(tmp_path), 7)


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
