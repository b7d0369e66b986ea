"""Token store: round trip, cache hit, shards, and corrupted caches detected and rebuilt."""

import json

import chex
import numpy as np
import pytest

from simplified_tf.data import token_store, tokenizer

TEXTS = ["def add(a, b):\n    return a + b\n" * (i + 1) + f"# doc {i}\n" for i in range(12)] + ["x"]


@pytest.fixture(scope="module")
def info(tmp_path_factory):
    return tokenizer.get_tokenizer(
        "",
        kind="decoder",
        vocab_size=300,
        train_texts=TEXTS,
        train_fingerprint="fp",
        cache_dir=tmp_path_factory.mktemp("tok"),
    )


def _check_contents(store, info):
    assert store.num_documents == len(TEXTS)
    assert store.tokens.dtype == np.uint16
    for d, text in enumerate(TEXTS):
        expected = info.tokenizer.encode(text).ids + [info.eos_id]
        chex.assert_trees_all_equal(np.asarray(store.document(d), np.int64), np.array(expected))


def test_roundtrip_and_cache_hit(tmp_path, info):
    store = token_store.load_or_build(TEXTS, "docs-fp", info, tmp_path)
    _check_contents(store, info)
    assert isinstance(store.tokens, np.memmap)  # served from disk
    files = {p: p.stat().st_mtime_ns for p in store.path.iterdir()}
    again = token_store.load_or_build(["ignored on a hit"], "docs-fp", info, tmp_path)
    assert again.path == store.path
    _check_contents(again, info)
    assert {p: p.stat().st_mtime_ns for p in again.path.iterdir()} == files
    assert not [p for p in tmp_path.rglob("*") if ".tmp-" in p.name]


def test_different_documents_get_a_different_store(tmp_path, info):
    a = token_store.load_or_build(TEXTS, "docs-a", info, tmp_path)
    b = token_store.load_or_build(TEXTS[:3], "docs-b", info, tmp_path)
    assert a.path != b.path and b.num_documents == 3
    _check_contents(token_store.load_or_build(TEXTS, "docs-a", info, tmp_path), info)


def test_sharded_store_reads_like_one_array(tmp_path, info):
    one = token_store.load_or_build(TEXTS, "docs-fp", info, tmp_path / "one")
    sharded = token_store.load_or_build(TEXTS, "docs-fp", info, tmp_path / "many", shard_tokens=7)
    _check_contents(sharded, info)  # documents spanning shard boundaries included
    meta = json.loads((sharded.path / "meta.json").read_text())
    assert len(meta["shards"]) == -(-one.num_tokens // 7) > 2
    assert all(len(e["sha256"]) == 64 for e in meta["shards"])
    flat = np.asarray(one.tokens)
    np.testing.assert_array_equal(sharded.tokens[:], flat)
    idx = np.array([[0, 6, 7, 13], [14, len(flat) - 1, 20, 21]])
    np.testing.assert_array_equal(sharded.tokens.take(idx), flat[idx])
    np.testing.assert_array_equal(sharded.offsets, one.offsets)


def _flip_byte(path, offset_from_end=3):
    raw = bytearray(path.read_bytes())
    raw[-offset_from_end] ^= 0xFF
    path.write_bytes(bytes(raw))


def _truncate(path):
    path.write_bytes(path.read_bytes()[:-10])


def _drop_meta(path):
    path.with_name("meta.json").unlink()


@pytest.mark.parametrize(
    "file,damage",
    [
        ("tokens-00000.bin", _flip_byte),
        ("tokens-00000.bin", _truncate),
        ("offsets.bin", _flip_byte),
        ("tokens-00000.bin", _drop_meta),
    ],
)
def test_corruption_detected_and_rebuilt(tmp_path, info, file, damage, caplog):
    store = token_store.load_or_build(TEXTS, "docs-fp", info, tmp_path)
    del store  # release the memmap before damaging the file
    path = tmp_path / "tokens" / token_store.store_key("docs-fp", info)
    damage(path / file)
    rebuilt = token_store.load_or_build(TEXTS, "docs-fp", info, tmp_path)
    _check_contents(rebuilt, info)
    meta = json.loads((path / "meta.json").read_text())
    assert meta["num_tokens"] == rebuilt.num_tokens
    assert [p.name for p in (tmp_path / "tokens").iterdir()] == [path.name]  # old copy removed
