"""Corpus -> tokenizer -> token stores, streamed and cached: the one-off data preparation.

`prepare` runs on first use inside `make_text_data`, or ahead of time with
`scripts/prepare_data.py` (then training processes only map the stores). Host memory does not grow
with the corpus:
- the corpus is read one document at a time (`corpus.open_corpus`), and its cache identity is a
  manifest (file names, sizes, modification times), so a warm start reads no text at all;
- the tokenizer trains on a bounded sample: the first `data.tokenizer_train_bytes` of training
  text in corpus order (all of it when the corpus is smaller), streamed into the trainer;
- both splits are tokenized in one pass, in blocks of a few MB, and appended to memory-mapped
  token shards (`token_store.StoreWriter`).

The split is the per-document hash rule of `corpus.split_documents`. Its small-corpus guarantee
(validation gets at least one document and training keeps one) needs the whole corpus, so in the
rare case the hash rule leaves a side empty the pass is repeated with that one document moved;
the tokenizer sample is taken before that is known and may then contain it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import pathlib
import time

from absl import logging

from simplified_tf.data import corpus, token_store, tokenizer
from trainloop.config_util import ConfigError

DEFAULT_TOKENIZER_TRAIN_BYTES = 100_000_000


@dataclasses.dataclass(frozen=True)
class Prepared:
    info: tokenizer.TokenizerInfo
    train: token_store.TokenStore
    val: token_store.TokenStore
    source: corpus.CorpusSource


def _fingerprint(*parts) -> str:
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()


class _TrainSample:
    """Iterates the training-split texts of `source`, stopping after `max_bytes` characters."""

    def __init__(self, source: corpus.CorpusSource, val_fraction: float, max_bytes: int):
        self.source, self.val_fraction, self.max_bytes = source, val_fraction, max_bytes

    def __iter__(self):
        seen = 0
        for doc in self.source.documents():
            if corpus.is_validation(doc.name, self.val_fraction):
                continue
            yield doc.text
            seen += len(doc.text)
            if self.max_bytes and seen >= self.max_bytes:
                return


@dataclasses.dataclass
class _SplitScan:
    """Side assignments seen in one pass (to apply the small-corpus guarantee afterwards)."""

    counts: dict = dataclasses.field(default_factory=lambda: {"train": 0, "val": 0})
    lowest: tuple[float, str] = (2.0, "")
    highest: tuple[float, str] = (-1.0, "")


def _assign(docs, val_fraction: float, forced: dict[str, str], scan: _SplitScan):
    """Yields (split, document) with the hash rule, overridden for names in `forced`."""
    for doc in docs:
        u = corpus.unit_hash(doc.name)
        scan.lowest, scan.highest = (
            min(scan.lowest, (u, doc.name)),
            max(scan.highest, (u, doc.name)),
        )
        split = forced.get(doc.name) or ("val" if u < val_fraction else "train")
        scan.counts[split] += 1
        yield split, doc


def _write_pass(source, val_fraction, info, writers, forced) -> _SplitScan:
    """One streaming pass: every document encoded, in blocks, into its split's writer."""
    scan, stats = _SplitScan(), corpus.ScanStats()
    block = {"train": [], "val": []}
    size = {"train": 0, "val": 0}

    def flush(split):
        if block[split] and split in writers:
            writers[split].add(token_store.encode_texts(block[split], info))
        block[split], size[split] = [], 0

    for split, doc in _assign(source.documents(stats), val_fraction, forced, scan):
        block[split].append(doc.text)
        size[split] += len(doc.text)
        if size[split] >= token_store.ENCODE_BLOCK_BYTES:
            flush(split)
    flush("train")
    flush("val")
    source.log(stats)
    return scan


def _fix_for_small_corpus(scan: _SplitScan, val_fraction: float) -> dict[str, str]:
    """Names to move so that validation and training each keep a document (see module doc)."""
    n = scan.counts["train"] + scan.counts["val"]
    if val_fraction <= 0 or n < 2:
        return {}
    if scan.counts["val"] == 0:
        return {scan.lowest[1]: "val"}
    if scan.counts["train"] == 0:
        return {scan.highest[1]: "train"}
    return {}


def prepare(cfg, kind: str, root: pathlib.Path) -> Prepared:
    """The tokenizer and the train/validation token stores for `cfg` (a `DataConfig`)."""
    source = corpus.open_corpus(
        cfg.source, text_field=cfg.text_field, max_documents=cfg.max_documents
    )
    corpus.check_val_fraction(cfg.val_fraction)
    split_fp = {s: _fingerprint(source.fingerprint, cfg.val_fraction, s) for s in ("train", "val")}
    sample = _TrainSample(source, cfg.val_fraction, cfg.tokenizer_train_bytes)
    info = tokenizer.get_tokenizer(
        cfg.tokenizer,
        kind=kind,
        vocab_size=cfg.vocab_size,
        train_texts=sample,
        train_fingerprint=_fingerprint(split_fp["train"], cfg.tokenizer_train_bytes),
        cache_dir=root,
    )
    paths = {
        s: root / "tokens" / token_store.store_key(fp, info, cfg.shard_tokens)
        for s, fp in split_fp.items()
    }
    stores = {s: token_store.open_cached(p, s) for s, p in paths.items()}
    missing = [s for s, store in stores.items() if store is None]
    if missing:
        stores.update(_build(source, cfg, info, {s: paths[s] for s in missing}, split_fp))
    if stores["train"].num_documents == 0:
        raise ConfigError(f"data.source={cfg.source!r}: the training split is empty.")
    return Prepared(info, stores["train"], stores["val"], source)


def _build(source, cfg, info, paths, split_fp) -> dict[str, token_store.TokenStore]:
    start = time.perf_counter()
    forced: dict[str, str] = {}
    for _ in range(2):  # a second pass only if the small-corpus rule moves a document
        writers = {s: token_store.new_writer(p, info, cfg.shard_tokens) for s, p in paths.items()}
        try:
            scan = _write_pass(source, cfg.val_fraction, info, writers, forced)
        except BaseException:
            for w in writers.values():
                w.abort()
            raise
        moved = {} if forced else _fix_for_small_corpus(scan, cfg.val_fraction)
        if not moved:
            break
        for w in writers.values():
            w.abort()
        forced = moved
    out = {}
    for s, w in writers.items():
        meta = {"documents_fingerprint": split_fp[s], "tokenizer": info.fingerprint, "split": s}
        out[s] = token_store.publish(w, paths[s], meta, s)
    logging.info("Prepared %s in %.1f s.", ", ".join(paths), time.perf_counter() - start)
    return out
