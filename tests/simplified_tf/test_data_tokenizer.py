"""Tokenizer training, the cache (hit, new key, never overwritten), loading, and bad input."""

import os

import numpy as np
import pytest
from stf_helpers import WORDS

from simplified_tf.data import tokenizer
from trainloop.config_util import ConfigError


def synthetic_texts(n=30, seed=0):
    rng = np.random.default_rng(seed)
    texts = []
    for _ in range(n):
        lines = [
            "    " * rng.integers(0, 3) + " ".join(rng.choice(WORDS, rng.integers(2, 9)))
            for _ in range(rng.integers(5, 60))
        ]
        texts.append("\n".join(lines) + "\n")
    return texts


def _get(tmp_path, kind="decoder", vocab=300, spec="", fp="fp0"):
    return tokenizer.get_tokenizer(
        spec,
        kind=kind,
        vocab_size=vocab,
        train_texts=synthetic_texts(),
        train_fingerprint=fp,
        cache_dir=tmp_path,
    )


def _snapshot(root):
    return {
        p: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_decoder_tokenizer_roundtrip_and_specials(tmp_path):
    info = _get(tmp_path)
    assert info.vocab_size <= 300
    assert info.tokenizer.id_to_token(info.eos_id) == tokenizer.EOS
    assert info.pad_id == info.eos_id and info.special_ids == (info.eos_id,)
    text = "def f(x):\n    return x  # ünïcode ✓\n"
    ids = info.tokenizer.encode(text).ids
    assert info.tokenizer.decode(ids) == text  # byte-level BPE is lossless


def test_bert_tokenizer_has_all_specials(tmp_path):
    info = _get(tmp_path, kind="bert", vocab=400)
    names = {info.tokenizer.id_to_token(i) for i in info.special_ids}
    assert names == set(tokenizer.BERT_SPECIALS)
    assert info.tokenizer.id_to_token(info.mask_id) == "[MASK]"
    assert info.tokenizer.id_to_token(info.pad_id) == "[PAD]"
    assert info.eos_id == info.sep_id
    enc = info.tokenizer.encode("return value")
    assert enc.ids[0] == info.cls_id and enc.ids[-1] == info.sep_id


def test_cache_hit_same_tokenizer_and_new_vocab_makes_new_file(tmp_path):
    first = _get(tmp_path)
    files = _snapshot(tmp_path)
    assert len(files) == 1
    second = _get(tmp_path)
    assert second.fingerprint == first.fingerprint
    assert _snapshot(tmp_path) == files  # hit: nothing rewritten
    other = _get(tmp_path, vocab=320)
    assert other.fingerprint != first.fingerprint
    after = _snapshot(tmp_path)
    assert len(after) == 2
    assert all(after[p] == files[p] for p in files)  # the old entry is untouched
    assert not [p for p in after if ".tmp-" in p.name]  # no temporary files left


def test_cache_key_includes_corpus_and_kind(tmp_path):
    a = tokenizer.cached_tokenizer_path(tmp_path, "decoder", 300, "aaaa")
    assert a != tokenizer.cached_tokenizer_path(tmp_path, "decoder", 300, "bbbb")
    assert a != tokenizer.cached_tokenizer_path(tmp_path, "bert", 300, "aaaa")


def test_byte_level_training_is_deterministic():
    # processes with separate caches each train their own copy; they must agree
    texts = synthetic_texts(n=60, seed=3)
    a = tokenizer.train_tokenizer(texts, "decoder", 300)
    b = tokenizer.train_tokenizer(texts, "decoder", 300)
    assert a.to_str() == b.to_str()


def test_wordpiece_numbering_is_canonical():
    # the WordPiece trainer numbers pieces in hash order; ids are renumbered to a fixed order
    vocab = tokenizer.train_tokenizer(synthetic_texts(), "bert", 300).get_vocab()
    by_id = sorted(vocab, key=vocab.get)
    n = len(tokenizer.BERT_SPECIALS)
    assert tuple(by_id[:n]) == tokenizer.BERT_SPECIALS
    assert by_id[n:] == sorted(by_id[n:])
    assert sorted(vocab.values()) == list(range(len(vocab)))


def test_unreadable_cache_entry_is_kept_and_not_trusted(tmp_path):
    path = tokenizer.cached_tokenizer_path(tmp_path, "decoder", 300, "fp0")
    path.parent.mkdir(parents=True)
    path.write_text("{ half a file")
    info = _get(tmp_path)
    assert info.vocab_size > 256
    assert path.read_text() == "{ half a file"  # never overwritten
    assert len(list(path.parent.glob("*.json"))) == 2


@pytest.mark.parametrize("kind,vocab", [("decoder", 256), ("decoder", 100), ("bert", 20)])
def test_vocab_too_small_is_a_clear_error(tmp_path, kind, vocab):
    _get(tmp_path)  # an existing cache entry that must survive
    before = _snapshot(tmp_path)
    with pytest.raises(ConfigError, match=f"vocab_size={vocab} is too small"):
        _get(tmp_path, kind=kind, vocab=vocab)
    assert _snapshot(tmp_path) == before


def test_bert_vocab_below_alphabet_is_a_clear_error(tmp_path):
    texts = ["".join(chr(0x4E00 + i) for i in range(200))]  # 200 distinct characters
    with pytest.raises(ConfigError, match="alphabet alone"):
        tokenizer.train_tokenizer(texts, "bert", 100)


def test_load_local_tokenizer_json(tmp_path):
    info = _get(tmp_path / "cache")
    path = tmp_path / "tok.json"
    info.tokenizer.save(str(path))
    loaded = _get(tmp_path / "other", spec=str(path))
    assert loaded.fingerprint == info.fingerprint and loaded.eos_id == info.eos_id
    assert not (tmp_path / "other").exists()  # loading caches nothing
    with pytest.raises(ConfigError, match="data.vocab_size"):
        _get(tmp_path / "other", spec=str(path), vocab=200)
    with pytest.raises(ConfigError, match="no such file"):
        _get(tmp_path, spec=str(tmp_path / "missing.json"))
    with pytest.raises(ConfigError, match="has no pad token"):
        _get(tmp_path, spec=str(path), kind="bert")


def test_cache_root_resolution(tmp_path, monkeypatch):
    from simplified_tf.data import cache_util

    monkeypatch.setenv(cache_util.CACHE_ENV, str(tmp_path / "env"))
    assert cache_util.cache_root("") == tmp_path / "env"
    assert cache_util.cache_root(str(tmp_path / "cfg")) == tmp_path / "cfg"
    monkeypatch.delenv(cache_util.CACHE_ENV)
    assert str(cache_util.cache_root("")) == os.path.expanduser("~/.cache/simplified_tf")
