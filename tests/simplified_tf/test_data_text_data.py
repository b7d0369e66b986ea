"""End-to-end `make_text_data`: batches, sharding, eval batches, caching, and bad input."""

import sys

import chex
import numpy as np
import pytest
from stf_helpers import write_corpus

from simplified_tf.data import default_data_config, make_text_data
from trainloop.config_util import ConfigError


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("corpus"), 40, lines=(3, 80), name="mod{i:02d}.py")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


def _cfg(corpus_dir, cache_dir, kind="decoder", **kw):
    base = dict(source=str(corpus_dir), vocab_size=400, seq_len=32, cache_dir=str(cache_dir))
    base["val_fraction"] = 0.1
    return default_data_config(kind, **{**base, **kw})


def _data(corpus_dir, cache_dir, kind="decoder", batch=8, seed=0, **kw):
    cfg = _cfg(corpus_dir, cache_dir, kind, **kw)
    return make_text_data(cfg, kind=kind, global_batch_size=batch, seed=seed)


def _snapshot(root):
    return {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in root.rglob("*") if p.is_file()}


def test_decoder_batches(corpus_dir, cache_dir):
    data = _data(corpus_dir, cache_dir)
    b = data.host_batch(3)
    chex.assert_shape([b["inputs"], b["targets"], b["weights"]], (8, 32))
    assert b["inputs"].dtype == np.int32 and b["weights"].dtype == np.float32
    np.testing.assert_array_equal(b["targets"][:, :-1], b["inputs"][:, 1:])
    np.testing.assert_array_equal(b["weights"][:, -1], 0)  # last position has no target
    assert (b["inputs"] != data.info.eos_id).all()  # full chunks never hold the separator
    assert data.vocab_size <= 400 and data.tokenizer.get_vocab_size() == data.vocab_size
    # full chunks: sum over train documents of floor(tokens / 32)
    lengths = np.diff(data.train_store.offsets) - 1
    assert data.num_train_chunks == int((lengths // 32).sum()) > 8
    assert data.num_train_tokens == int(data.train_store.offsets[-1])
    text = "def value(self):\n    return None\n"
    assert data.decode(data.encode(text)) == text


def test_batches_pure_and_sharded(corpus_dir, cache_dir):
    data = _data(corpus_dir, cache_dir)
    again = _data(corpus_dir, cache_dir)  # fresh object from the cache
    for step in (0, 7, 100):
        b = data.host_batch(step)
        chex.assert_trees_all_equal(b, data.host_batch(step), again.host_batch(step))
        shards = [data.host_batch(step, i, 2) for i in range(2)]
        chex.assert_trees_all_equal({k: np.concatenate([s[k] for s in shards]) for k in b}, b)
    other = _data(corpus_dir, cache_dir, seed=1)
    assert not np.array_equal(other.host_batch(0)["inputs"], data.host_batch(0)["inputs"])


def test_bert_batches_sharded_and_masked(corpus_dir, cache_dir):
    data = _data(corpus_dir, cache_dir, kind="bert", packing="pad_last")
    b = data.host_batch(2)
    chex.assert_shape([b["inputs"], b["targets"], b["weights"], b["valid"]], (8, 32))
    assert b["valid"].dtype == bool
    tok = data.tokenizer
    assert all(tok.id_to_token(int(t)) == "[CLS]" for t in b["targets"][:, 0])
    special = np.isin(b["targets"], data.info.special_ids)
    assert not b["weights"][special | ~b["valid"]].any()
    assert (b["targets"][~b["valid"]] == data.info.pad_id).all()
    shards = [data.host_batch(2, i, 4) for i in range(4)]
    chex.assert_trees_all_equal({k: np.concatenate([s[k] for s in shards]) for k in b}, b)
    rate = np.mean([data.host_batch(s)["weights"][~special].mean() for s in range(20)])
    assert 0.2 < rate < 0.3
    # pad_last keeps short remainders: valid = [CLS] + body + [SEP]
    assert (data.train_rows.lengths < 30).any()
    lengths = data.train_rows.lengths[data.sampler.indices(2)]
    np.testing.assert_array_equal(b["valid"].sum(1), lengths + 2)


def test_eval_batches_fixed_and_weighted(corpus_dir, cache_dir):
    data = _data(corpus_dir, cache_dir, eval_batches=100)
    ev = data.eval_batches()
    n_val = len(data.val_rows)
    assert len(ev) == -(-n_val // 8)  # fewer rows than asked: every row once
    chex.assert_trees_all_equal(ev, data.eval_batches())
    rows_with_weight = sum(int((e["weights"].sum(1) > 0).sum()) for e in ev)
    assert rows_with_weight == n_val
    fewer = _data(corpus_dir, cache_dir, eval_batches=1, seed=5).eval_batches()
    chex.assert_trees_all_equal(fewer[0], ev[0])  # independent of the training seed
    bert = _data(corpus_dir, cache_dir, kind="bert").eval_batches()
    chex.assert_trees_all_equal(bert, _data(corpus_dir, cache_dir, kind="bert").eval_batches())


def test_concat_packing(corpus_dir, cache_dir):
    data = _data(corpus_dir, cache_dir, packing="concat")
    b = data.host_batch(0)
    np.testing.assert_array_equal(b["targets"][:, :-1], b["inputs"][:, 1:])
    assert data.num_train_chunks == (data.num_train_tokens - 33) // 32 + 1


def test_cache_hit_rewrites_nothing(corpus_dir, cache_dir):
    _data(corpus_dir, cache_dir)
    before = _snapshot(cache_dir)
    _data(corpus_dir, cache_dir)
    assert _snapshot(cache_dir) == before


@pytest.mark.parametrize(
    "override,match",
    [
        (dict(vocab_size=100), "vocab_size=100 is too small"),
        (dict(source="hf:some/dataset"), r"pip install -e '\.\[hf\]'"),
        (dict(packing="greedy"), "Valid choices: full_chunks"),
        (dict(tokenizer="/nonexistent/tok.json"), "no such file"),
        (dict(val_fraction=1.5), "val_fraction"),
        (dict(seq_len=4096), "no rows"),
    ],
)
def test_bad_input_leaves_cache_untouched(corpus_dir, cache_dir, monkeypatch, override, match):
    _data(corpus_dir, cache_dir)  # make sure a cache exists
    before = _snapshot(cache_dir)
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(ConfigError, match=match):
        _data(corpus_dir, cache_dir, **override)
    after = _snapshot(cache_dir)
    assert all(after[p] == before[p] for p in before)  # nothing deleted or overwritten


@pytest.mark.parametrize("content", [None, b"\x00binary\x00", b"\xff\xfe latin \xe9"])
def test_unusable_folder_errors_and_keeps_cache(tmp_path, cache_dir, corpus_dir, content):
    _data(corpus_dir, cache_dir)
    before = _snapshot(cache_dir)
    bad = tmp_path / "bad"
    bad.mkdir()
    if content is not None:
        (bad / "f.py").write_bytes(content)
    with pytest.raises(ConfigError, match=str(bad)):
        _data(bad, cache_dir)
    assert _snapshot(cache_dir) == before


def test_stdlib_slice_end_to_end(tmp_path):
    cfg = default_data_config(
        "decoder",
        max_documents=20,
        vocab_size=512,
        seq_len=64,
        cache_dir=str(tmp_path),
        val_fraction=0.2,
    )
    data = make_text_data(cfg, kind="decoder", global_batch_size=4, seed=0)
    assert data.num_train_chunks > 100
    assert len(data.eval_batches()) >= 1
    assert "import" in data.decode(data.train_store.tokens[:20_000])


def test_sharded_store_gives_the_same_batches(corpus_dir, cache_dir):
    # 500-token shards: rows and documents straddle shard boundaries. Batches, process shares
    # and eval batches must not change, and a fresh object (a resumed process) agrees.
    data = _data(corpus_dir, cache_dir, kind="bert", packing="pad_last")
    sharded = _data(corpus_dir, cache_dir, kind="bert", packing="pad_last", shard_tokens=500)
    assert sharded.train_store.path != data.train_store.path
    assert len(sharded.train_store.tokens.shards) == -(-sharded.num_train_tokens // 500) > 3
    again = _data(corpus_dir, cache_dir, kind="bert", packing="pad_last", shard_tokens=500)
    for step in (0, 5, 40):
        b = data.host_batch(step)
        chex.assert_trees_all_equal(sharded.host_batch(step), b, again.host_batch(step))
        shards = [sharded.host_batch(step, i, 2) for i in range(2)]
        chex.assert_trees_all_equal({k: np.concatenate([s[k] for s in shards]) for k in b}, b)
    chex.assert_trees_all_equal(sharded.eval_batches(), data.eval_batches())


def test_batch_ramp_draws_consecutive_rows_for_used_microbatches(corpus_dir, cache_dir):
    from trainloop.ramp import BatchRamp  # noqa: PLC0415

    # 16 rows = 4 microbatches of 4; a ramp over 6 microbatches uses 1, 1, 2, 3, 4, 4 of them.
    ramp = BatchRamp(4, 6)
    cfg = _cfg(corpus_dir, cache_dir, "bert")
    data = make_text_data(cfg, kind="bert", global_batch_size=16, seed=0, batch_ramp=ramp)
    fixed = _data(corpus_dir, cache_dir, kind="bert", batch=16)
    positions = [data.stream_positions(k, slice(0, 16)) for k in range(6)]
    used = np.concatenate([p[p >= 0] for p in positions])
    np.testing.assert_array_equal(np.sort(used), np.arange(ramp.at(6)[0] * 4))  # no gap, no repeat
    for k, p in enumerate(positions):
        assert ((p >= 0) == (np.arange(16) % 4 < ramp.at(k)[1])).all()  # microbatch i = r mod 4
    b = data.host_batch(3)  # 3 of 4 microbatches
    unused = np.arange(16) % 4 == 3
    assert not b["weights"][unused].any() and not b["valid"][unused].any()
    assert b["valid"][~unused].all(axis=1).any()
    shards = [data.host_batch(3, i, 2) for i in range(2)]
    chex.assert_trees_all_equal({k: np.concatenate([s[k] for s in shards]) for k in b}, b)
    # After the ramp: the same stream as a fixed batch, shifted by the rows the ramp consumed.
    late = data.stream_positions(10, slice(0, 16))
    np.testing.assert_array_equal(late, ramp.at(10)[0] * 4 + np.arange(16))
    assert fixed.stream_positions(10, slice(0, 16))[0] == 160
