"""Fine-tuning through the loop: a separable fixture is learned perfectly, padding changes no
logit, init_from restores the body (head fresh) and refuses decoders and other vocabularies."""

import json
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_downstream_glue import write_glue_fixture

from simplified_tf.downstream import finetune, report
from simplified_tf.downstream.recipes import finetune_config
from simplified_tf.model_config import model_config
from simplified_tf.recipes import bert_config, decoder_config
from simplified_tf.tasks import make_mlm_task
from trainloop.config_util import ConfigError
from trainloop.train import train_and_evaluate

GOOD, BAD = "good great fine nice", "bad awful poor sad"
ONE = jax.devices()[:1]  # one CPU device: the loop's behaviour on 8 is tested in tests/trainloop


def _sst_fixture(root, n_train=32, n_dev=16):
    """A separable SST-2: the label is which word set the sentence uses."""
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("dev", n_dev)):
        rows = ["sentence\tlabel"]
        for i in range(n):
            words = (GOOD if i % 2 else BAD).split()
            filler = rng.choice("the movie was a plot with actors".split(), 3)
            rows.append(f"{' '.join(filler)} {rng.choice(words)} {rng.choice(words)}\t{i % 2}")
        os.makedirs(root / "SST-2", exist_ok=True)
        (root / "SST-2" / f"{split}.tsv").write_text("\n".join(rows) + "\n")
    return root


def _tiny_config(tmp_path, suite="glue", tasks="sst2", **kw):
    """A tiny-BERT fine-tuning config whose tokenizer is trained on a small text corpus."""
    corpus = tmp_path / "corpus"
    corpus.mkdir(exist_ok=True)
    text = " ".join([GOOD, BAD, "the movie was a plot with actors cola mrpc sts mnli"] * 30)
    (corpus / "text.txt").write_text(text + "\n")
    c = finetune_config(suite, tasks, "pre_ln", "tiny", glue_dir=str(tmp_path / "glue"), **kw)
    c.data.update(
        source=str(corpus), cache_dir=str(tmp_path / "cache"), vocab_size=512, seq_len=32,
        val_fraction=0.0, eval_batches=0,
    )  # fmt: skip
    c.progress_bar = False
    c.batch_size = 8
    c.downstream.eval_batch_size = 8
    return c


def test_fine_tuning_from_init_from_learns_a_separable_fixture_perfectly(tmp_path):
    """init_from restores the pretrained body with a fresh head, and the run reaches accuracy 1."""
    c = _tiny_config(tmp_path)
    pre = bert_config("pre_ln", "tiny", steps=2)
    pre.data, pre.progress_bar, pre.checkpoint_every = c.data, False, 0
    trained = train_and_evaluate(pre, str(tmp_path / "mlm"), make_mlm_task(pre), devices=ONE)
    body = jax.device_get(trained.state["params"])

    _sst_fixture(tmp_path / "glue")
    c = _tiny_config(tmp_path, init_from=str(tmp_path / "mlm"), lr=3e-3, epochs=12)
    encoder = finetune.load_encoder(c)
    assert float(encoder.model.dropout) == 0.1 and float(pre.model.dropout) == 0.0
    prepared = finetune.prepare(c, encoder, "sst2")
    assert prepared.config.num_steps == 12 * 4 and prepared.train.width == 8
    assert prepared.train.lengths.min() < 8  # padded rows in the batches
    task = finetune.make_task(prepared, prepared.config)
    p0, p1 = task.init(jax.random.key(0)), task.init(jax.random.key(1))
    chex.assert_trees_all_equal(jax.device_get(p0["bert"]), body)
    assert not np.allclose(p0["classifier"]["kernel"], p1["classifier"]["kernel"])

    result = finetune.run(prepared, 0, str(tmp_path / "run"), devices=ONE)
    assert result["status"] == "ok"
    assert result["metrics"]["validation"]["accuracy"] == 1.0, result
    assert result["scores"] == {"SST-2": 100.0}
    assert finetune.run(prepared, 0, str(tmp_path / "run")) == result  # not redone
    assert json.loads((tmp_path / "mlm" / "config.json").read_text())["task"] == "mlm"


def test_a_non_finite_run_is_recorded_as_nan_not_raised(tmp_path, monkeypatch):
    _sst_fixture(tmp_path / "glue", n_train=16, n_dev=8)
    c = _tiny_config(tmp_path, epochs=1)
    prepared = finetune.prepare(c, finetune.load_encoder(c), "sst2")

    def nan_loss(logits_BC, batch, regression):
        return jnp.float32(jnp.nan), {"accuracy": jnp.float32(0), "weight": jnp.float32(1)}

    monkeypatch.setattr(finetune, "classifier_loss", nan_loss)
    result = finetune.run(prepared, 3, str(tmp_path / "nan"), devices=ONE)
    assert result["status"] == "nonfinite" and "Non-finite train/loss" in result["message"]
    assert np.isnan(result["scores"]["SST-2"])
    assert finetune.read_results(str(tmp_path / "nan"))["status"] == "nonfinite"
    ok = dict(result, seed=0, scores={"SST-2": 90.0})
    row = report.summarize_row([ok, result])
    assert report.cell(row["columns"]["SST-2"]) == "NaN (1/2)"


@pytest.mark.parametrize("block", ["pre_ln", "sas_p"])
def test_extra_padding_leaves_the_logits_unchanged(block):
    fns = finetune.classifier_fns(model_config(block, "tiny", "bert", vocab_size=64), 3, 0.1)

    @jax.jit
    def init_perturbed(key):  # noise on every param, so zero-init queries etc. hide nothing
        leaves, tree = jax.tree.flatten(fns.init(key))
        keys = jax.random.split(jax.random.key(1), len(leaves))
        noise = [
            0.1 * jax.random.normal(k, x.shape, x.dtype) for x, k in zip(leaves, keys, strict=True)
        ]
        return jax.tree.unflatten(tree, [x + n for x, n in zip(leaves, noise, strict=True)])

    state = init_perturbed(jax.random.key(0))
    forward = jax.jit(lambda state, x, valid: fns.merge(state)(x, valid))
    tokens = jax.random.randint(jax.random.key(2), (3, 24), 5, 64)
    lengths = jnp.array([16, 9, 3])

    def logits(width):
        valid = jnp.arange(width)[None, :] < lengths[:, None]
        return forward(state, jnp.where(valid, tokens[:, :width], 0), valid)  # pad id 0

    base = logits(16)
    assert np.all(np.abs(np.asarray(base)) > 0)
    chex.assert_trees_all_close(logits(24), base, atol=1e-5, rtol=1e-5)


def _write_run_config(workdir, config):
    os.makedirs(workdir, exist_ok=True)
    (workdir / "config.json").write_text(config.to_json_best_effort())


@pytest.mark.parametrize(
    "pretraining, message",
    [
        (lambda: decoder_config("pre_ln", "tiny"), "is not a BERT pretraining run"),
        (lambda: bert_config("pre_ln", "tiny", model={"vocab_size": 1024}),
         "another vocabulary: model.vocab_size=1024 there vs 512 here"),
        (lambda: bert_config("pre_ln", "tiny", model={"width": 128}),
         "another model: model.width=128 there vs 64 here"),
        (lambda: bert_config("sas_p", "tiny"), "model.block='sas_p' there vs 'pre_ln' here"),
    ],
)  # fmt: skip
def test_init_from_refuses_decoders_and_other_models_and_writes_nothing(
    tmp_path, pretraining, message
):
    run_dir = tmp_path / "pretrained"
    _write_run_config(run_dir, pretraining())
    before = sorted(os.listdir(tmp_path))
    c = _tiny_config(tmp_path, init_from=str(run_dir))
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(ConfigError, match=message) as err:
        finetune.load_encoder(c)
    assert "\n" not in str(err.value)
    assert sorted(os.listdir(tmp_path)) == before and os.listdir(run_dir) == ["config.json"]


def test_unknown_task_and_missing_glue_dir_are_clear_errors(tmp_path):
    c = _tiny_config(tmp_path, tasks="sst2,bogus")
    with pytest.raises(ConfigError, match="Invalid downstream task \\(glue\\)='bogus'"):
        finetune.expand_tasks(c)
    c = _tiny_config(tmp_path, suite="code", tasks="cola")
    with pytest.raises(ConfigError, match="Valid choices: acceptability, pair, topic"):
        finetune.expand_tasks(c)
    c = _tiny_config(tmp_path, tasks="rte")
    with pytest.raises(ConfigError, match="GLUE directory .* does not exist"):
        finetune.load_task_data(c, "rte")
    write_glue_fixture(tmp_path / "glue")
    with pytest.raises(ConfigError, match="RTE/train.tsv does not exist"):
        finetune.load_task_data(c, "rte")
