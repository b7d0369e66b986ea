"""compare_blocks: the summary arithmetic on fake inputs, config overrides, and a resumed comparison
that skips finished blocks."""

import json
import os
import pathlib

import numpy as np
import pytest
from script_loader import load_script
from stf_helpers import write_corpus

from simplified_tf import compare
from trainloop.config_util import ConfigError

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_summarize_relative_numbers():
    rows = [
        dict(block="sas_p", params=85, step_time_s=0.8, tokens_per_step=2048),
        dict(block="pre_ln", params=100, step_time_s=1.0, tokens_per_step=2048),
        dict(block="v_skipinit", params=100, step_time_s=1.25, tokens_per_step=2048),
    ]
    out = {r["block"]: r for r in compare.summarize(rows)}
    assert out["pre_ln"]["speed_rel"] == 1.0 and out["pre_ln"]["params_rel"] == 1.0
    np.testing.assert_allclose(out["sas_p"]["speed_rel"], 1.25)
    np.testing.assert_allclose(out["sas_p"]["params_rel"], 0.85)
    np.testing.assert_allclose(out["sas_p"]["tokens_per_s"], 2560.0)
    np.testing.assert_allclose(out["v_skipinit"]["speed_rel"], 0.8)
    assert rows[0].keys() == {"block", "params", "step_time_s", "tokens_per_step"}  # not mutated
    # Without pre_ln the first row is the baseline, and it is named.
    alt = compare.summarize(rows[2:] + rows[:1])
    assert alt[0]["baseline"] == "v_skipinit" and alt[1]["speed_rel"] == pytest.approx(1.5625)


def test_markdown_table_lists_every_block():
    rows = compare.summarize(
        [
            dict(block=b, params=p, step_time_s=t, tokens_per_step=100, final_step=10,
                 eval_loss=3.0, eval_accuracy=0.4)
            for b, p, t in [("pre_ln", 1000, 0.5), ("sas", 800, 0.4)]
        ]
    )  # fmt: skip
    table = compare.markdown_table(rows)
    lines = table.splitlines()
    assert len(lines) == 4 and "| sas |" in lines[3] and "1.250" in lines[3] and "0.800" in lines[3]


def test_overrides_and_bad_overrides():
    cfg = compare.load_config(
        "configs/decoder.py:size=tiny,block=sas", "pre_ln", 7,
        ["data.source=/x", "model.vocab_size=300", "optimizer.lr=0.5", "progress_bar=false"],
    )  # fmt: skip
    assert (
        cfg.model.block == "pre_ln" and cfg.num_steps == 7
    )  # block= in the config string is replaced
    assert cfg.data.source == "/x" and cfg.model.vocab_size == 300 and cfg.optimizer.lr == 0.5
    assert cfg.progress_bar is False
    with pytest.raises(ConfigError, match="nope"):
        compare.load_config("configs/decoder.py:size=tiny", "pre_ln", 0, ["data.nope=1"])
    with pytest.raises(ConfigError, match="does not exist"):
        compare.load_config("configs/missing.py", "pre_ln")


def _script():
    return load_script(str(ROOT / "scripts/compare_blocks.py"), "compare_blocks")


@pytest.mark.slow  # trains two tiny models and times them (~1-3 min on the shared CPU)
def test_resume_skips_finished_blocks(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    corpus = write_corpus(tmp_path / "corpus", 20, lines=30, words=(2, 8))
    overrides = [
        f"data.source={corpus}",
        f"data.cache_dir={tmp_path / 'cache'}",
        "data.vocab_size=300",
        "model.vocab_size=300",
        "data.val_fraction=0.2",
        "data.eval_batches=1",
        "progress_bar=false",
        "checkpoint_every=0",
    ]
    out = tmp_path / "out"
    script = _script()
    kw = dict(steps=2, rounds=1, timed=1, warmup=1, overrides=overrides)
    script.run("configs/decoder.py:size=tiny", ["pre_ln"], str(out), **kw)
    before = (out / "pre_ln" / "metrics.jsonl").read_text()
    assert compare.latest_step(str(out / "pre_ln")) == 2

    rows = script.run("configs/decoder.py:size=tiny", ["pre_ln", "sas_p"], str(out), **kw)
    err = capsys.readouterr().err
    assert "[pre_ln] finished" in err and "[sas_p] training" in err
    assert (out / "pre_ln" / "metrics.jsonl").read_text() == before  # untouched
    assert compare.latest_step(str(out / "sas_p")) == 2
    assert [r["block"] for r in rows] == ["pre_ln", "sas_p"]
    assert rows[1]["params"] < rows[0]["params"] and rows[0]["speed_rel"] == 1.0
    summary = json.loads((out / "summary.json").read_text())
    assert [b["block"] for b in summary["blocks"]] == ["pre_ln", "sas_p"]
    assert all(np.isfinite(b["eval_loss"]) for b in summary["blocks"])
    assert os.path.getsize(out / "curves.png") > 1000 and (out / "summary.md").exists()
