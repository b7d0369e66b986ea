"""Pre-tokenized corpus splits cached on disk as one flat, memory-mapped token array.

A store for (documents, tokenizer) lives in `<cache>/tokens/<key>/`, key = hash(document
fingerprint, tokenizer fingerprint, separator id, format version):
- `tokens.npy`: every document's token ids followed by the separator id (EOS for the decoder,
  [SEP] for BERT), concatenated; uint16 when the vocabulary fits, else uint32. Memory-mapped.
- `offsets.npy`: int64 [num_documents + 1]; document d is `tokens[offsets[d]:offsets[d+1]]`
  (its last token is the separator).
- `meta.json`: sizes, dtype and sha256 checksums of both arrays, written last.

The directory is built under a temporary name and renamed into place, so a crash never leaves a
partial store. On load, sizes and checksums are verified; a mismatch (truncated or flipped bytes)
is logged and the store is discarded and rebuilt rather than trusted.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib
import time
from collections.abc import Sequence

import numpy as np
from absl import logging

from simplified_tf.data import cache_util
from simplified_tf.data.tokenizer import TokenizerInfo

FORMAT_VERSION = 1
_ENCODE_BATCH_DOCS = 256  # documents per encode_batch call (bounds peak memory)


@dataclasses.dataclass(frozen=True)
class TokenStore:
    tokens: np.ndarray  # [num_tokens] uint16/uint32, usually a read-only memmap
    offsets: np.ndarray  # [num_documents + 1] int64
    path: pathlib.Path | None = None

    @property
    def num_documents(self) -> int:
        return len(self.offsets) - 1

    @property
    def num_tokens(self) -> int:
        return int(self.offsets[-1])

    def document(self, d: int) -> np.ndarray:
        """Token ids of document d, including its trailing separator."""
        return self.tokens[self.offsets[d] : self.offsets[d + 1]]


def store_key(documents_fingerprint: str, info: TokenizerInfo) -> str:
    raw = f"{documents_fingerprint}|{info.fingerprint}|{info.eos_id}|v{FORMAT_VERSION}"
    return hashlib.sha256(raw.encode()).hexdigest()[:24]


def tokenize_documents(texts: Sequence[str], info: TokenizerInfo) -> TokenStore:
    """Tokenizes in memory: each document's ids plus the separator, concatenated."""
    dtype = np.uint16 if info.vocab_size <= 2**16 else np.uint32
    pieces, lengths = [], []
    sep = np.array([info.eos_id], dtype=dtype)
    for start in range(0, len(texts), _ENCODE_BATCH_DOCS):
        batch = list(texts[start : start + _ENCODE_BATCH_DOCS])
        for enc in info.tokenizer.encode_batch_fast(batch, add_special_tokens=False):
            ids = np.asarray(enc.ids, dtype=dtype)
            pieces += [ids, sep]
            lengths.append(len(ids) + 1)
    tokens = np.concatenate(pieces) if pieces else np.zeros([0], dtype)
    offsets = np.zeros([len(lengths) + 1], np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return TokenStore(tokens, offsets)


def _verify_and_open(path: pathlib.Path) -> TokenStore:
    """Opens a store after checking sizes and checksums; raises ValueError describing a defect."""
    try:
        meta = json.loads((path / "meta.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"meta.json unreadable: {e}") from e
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"format version {meta.get('format_version')} != {FORMAT_VERSION}")
    for name in ("tokens", "offsets"):
        file = path / f"{name}.npy"
        if not file.is_file():
            raise ValueError(f"{file.name} missing")
        if file.stat().st_size != meta[f"{name}_bytes"]:
            raise ValueError(
                f"{file.name} has {file.stat().st_size} bytes, expected {meta[f'{name}_bytes']}"
            )
        if cache_util.file_sha256(file) != meta[f"{name}_sha256"]:
            raise ValueError(f"{file.name} checksum mismatch")
    tokens = np.load(path / "tokens.npy", mmap_mode="r")
    offsets = np.load(path / "offsets.npy")
    if len(offsets) != meta["num_documents"] + 1 or int(offsets[-1]) != len(tokens):
        raise ValueError("offsets inconsistent with tokens")
    return TokenStore(tokens, offsets, path)


def _write(store: TokenStore, tmp: pathlib.Path, extra_meta: dict) -> None:
    tmp.mkdir(parents=True)
    np.save(tmp / "tokens.npy", store.tokens)
    np.save(tmp / "offsets.npy", store.offsets)
    meta = dict(
        extra_meta,
        format_version=FORMAT_VERSION,
        num_documents=store.num_documents,
        num_tokens=store.num_tokens,
        dtype=str(store.tokens.dtype),
    )
    for name in ("tokens", "offsets"):
        file = tmp / f"{name}.npy"
        meta[f"{name}_bytes"] = file.stat().st_size
        meta[f"{name}_sha256"] = cache_util.file_sha256(file)
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True))


def load_or_build(
    texts: Sequence[str],
    documents_fingerprint: str,
    info: TokenizerInfo,
    cache_dir: pathlib.Path,
    *,
    label: str = "",
) -> TokenStore:
    """The cached store for these documents and tokenizer, built (and cached) if missing or bad."""
    path = cache_dir / "tokens" / store_key(documents_fingerprint, info)
    if path.exists():
        try:
            store = _verify_and_open(path)
            logging.info("Token store cache hit (%s): %s", label, path)
            return store
        except (ValueError, KeyError, OSError) as e:
            cache_util.discard_dir(path, str(e))
    start = time.perf_counter()
    store = tokenize_documents(texts, info)
    logging.info(
        "Tokenized %s: %d documents -> %d tokens in %.2f s.",
        label,
        store.num_documents,
        store.num_tokens,
        time.perf_counter() - start,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache_util.temp_sibling(path)
    _write(
        store,
        tmp,
        {"documents_fingerprint": documents_fingerprint, "tokenizer": info.fingerprint},
    )
    if not cache_util.publish_dir(tmp, path):
        logging.info("Another process published %s first; using it.", path)
    try:
        return _verify_and_open(path)
    except (ValueError, KeyError, OSError) as e:  # should not happen; fall back to memory
        logging.warning("Freshly written token store %s failed to verify (%s).", path, e)
        return store
