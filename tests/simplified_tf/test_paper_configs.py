"""The size=paper configs (paper Sec. 4 footnote 7, App. D.1, D.2): exact / reported parameter
counts, and a few real optimiser steps through `trainloop.train_and_evaluate` with the batch shrunk
to 2 sequences.

Slow: each case compiles a full-size (100-170M parameter) train step on CPU. The data is a small
local corpus whose tokenizer (vocab 400) is smaller than the model's 50,000 / 32,768 logits, which
the tasks allow; the model, optimiser recipe, sequence length and eval path are the paper config's.
"""

import math
import os
import pathlib

import jax
import numpy as np
import pytest
from stf_helpers import write_corpus

from simplified_tf import compare
from simplified_tf.params import count_params
from simplified_tf.tasks import make_task_and_data
from trainloop.metrics import read_metrics
from trainloop.train import train_and_evaluate

ROOT = pathlib.Path(__file__).resolve().parents[2]
STEPS = 3

# (config file, block, check of count_params). Decoder: the exact totals of docs/simplified_tf.md
# section 6 (scalar gains excluded, 704 of them in sas). Crammed BERT: the paper's rounded
# 120M / 101M (Table 1).
CASES = [
    ("decoder", "pre_ln", dict(total_excl_gains=166_645_248, gains=0)),
    ("decoder", "sas", dict(total_excl_gains=146_001_408, gains=704)),
    ("bert", "pre_ln", dict(millions=120, gains=0)),
    ("bert", "sas_p", dict(millions=101)),
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = write_corpus(tmp_path_factory.mktemp("corpus"), 24, seed=3, lines=(40, 80))
    return root, tmp_path_factory.mktemp("cache")


@pytest.mark.slow
@pytest.mark.parametrize("kind,block,expected", CASES)
def test_paper_config_counts_and_trains(corpus, tmp_path, kind, block, expected):
    cfg_file = str(ROOT / "configs" / f"{kind}.py")
    accum = ",accum=1" if kind == "bert" else ""  # bert paper: 8192 = 128 x 64 microbatches
    overrides = [
        f"data.source={corpus[0]}",
        f"data.cache_dir={corpus[1]}",
        "data.vocab_size=400",
        "data.val_fraction=0.2",
        "data.eval_batches=1",
        "eval_every=0",  # evaluates once, at the end
        "log_every=1",
        "checkpoint_every=0",  # saves once, at the end
        "progress_bar=false",
    ]
    config = compare.load_config(
        f"{cfg_file}:size=paper,batch=2{accum}", block, steps=STEPS, overrides=overrides
    )
    model = config.model
    assert (model.num_layers, model.width, model.num_heads) == (
        (18, 768, 12) if kind == "decoder" else (16, 768, 12)
    )
    assert model.vocab_size == (50_000 if kind == "decoder" else 32_768)

    counts = count_params(model)
    if "millions" in expected:
        assert round(counts["total_excl_gains"] / 1e6) == expected["millions"], counts
    else:
        assert counts["total_excl_gains"] == expected["total_excl_gains"], counts
    if "gains" in expected:
        assert counts["gains"] == expected["gains"], counts

    task, data = make_task_and_data(config, kind)
    assert data.vocab_size <= 400 < model.vocab_size
    workdir = str(tmp_path / "run")
    result = train_and_evaluate(config, workdir, task, devices=jax.devices()[:1])
    assert result.step == STEPS and not result.interrupted

    events = read_metrics(os.path.join(workdir, "metrics.jsonl"))
    losses = [e["train/loss"] for e in events if "train/loss" in e]
    assert len(losses) == STEPS and all(np.isfinite(losses)), losses
    # Near-uniform predictions over the model's full vocabulary at init.
    assert abs(losses[0] - math.log(model.vocab_size)) < 1.0, losses
    evals = [e for e in events if "eval/loss" in e]
    assert len(evals) == 1 and np.isfinite(evals[0]["eval/loss"])
    traces = [k for k in evals[0] if k.startswith("eval/scalars/")]
    last = f"eval/scalars/layer{model.num_layers - 1:02d}/beta_ff"
    assert (last in traces) == (block != "pre_ln"), traces[:5]
    assert os.path.isdir(os.path.join(workdir, "checkpoints", str(STEPS)))


def test_recipe_options_of_the_other_kind_and_unknown_kinds_are_refused():
    from simplified_tf.recipes import pretrain_config
    from trainloop.config_util import ConfigError

    assert pretrain_config("bert", "sas", "paper", ramp=0).get("batch_ramp_microbatches", 0) == 0
    assert pretrain_config("bert", "sas", "paper").batch_ramp_microbatches > 0
    with pytest.raises(ConfigError, match="ramp=0.5: the batch ramp is part of the BERT recipe"):
        pretrain_config("decoder", "sas", "tiny", ramp=0.5)
    with pytest.raises(ConfigError, match="schedule='warmup_cosine'"):
        pretrain_config("bert", "sas", "tiny", schedule="warmup_cosine")
    with pytest.raises(ConfigError, match="Invalid kind='gpt'. Valid choices: decoder, bert"):
        pretrain_config("gpt", "sas", "tiny")
