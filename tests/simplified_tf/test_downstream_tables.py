"""The CPU-scale Tables 1/2 end to end at tiny scale: every block row, resumable."""

import os
import shutil

import numpy as np
import pytest

from simplified_tf.data.corpus import stdlib_root
from simplified_tf.downstream import tables

PACKAGES = ("json", "http", "urllib", "concurrent", "wsgiref", "email")


@pytest.mark.slow
def test_tables_run_tiny_and_resume_without_retraining(tmp_path):
    corpus = tmp_path / "pylib"
    for pkg in PACKAGES:
        shutil.copytree(stdlib_root() / pkg, corpus / pkg, ignore=shutil.ignore_patterns("test*"))
    kw = dict(
        seeds=2,
        blocks=("pre_ln", "sas_p"),
        tasks="topic,acceptability",
        size="tiny",
        pretrain_overrides=(f"data.source={corpus}", f"data.cache_dir={tmp_path / 'cache'}"),
        finetune_overrides=(
            f"downstream.code.source={corpus}",
            "downstream.code.train_examples=64",
            "downstream.code.eval_examples=32",
            "downstream.code.topics=3",
            "downstream.code.min_topic_files=1",
            "batch_size=16",
        ),
        log=lambda message: None,
    )
    out = tmp_path / "out"
    summary = tables.run(str(out), **kw)
    assert summary["columns"] == ["Topic", "Accept."]
    for block in ("pre_ln", "sas_p"):
        row = summary["rows"][block]
        assert row["average"]["n"] == 2 and row["columns"]["Topic"]["n"] == 2
        assert np.isfinite(row["average"]["mean"])
        assert summary["pretrain"][block]["status"] == "ok"
    md = (out / "summary.md").read_text()
    assert "| pre_ln |" in md and "| sas_p |" in md and " ± " in md

    stamps = {
        p: os.path.getmtime(p)
        for p in out.rglob("*")
        if p.name in ("results.json", "config.json") or p.parent.name == "checkpoints"
    }
    again = tables.run(str(out), **kw)
    assert again["rows"] == summary["rows"]
    assert {p: os.path.getmtime(p) for p in stamps} == stamps  # nothing retrained
