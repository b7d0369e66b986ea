"""Pre-tokenized corpus splits on disk: memory-mapped token shards with an index and checksums.

A store lives in `<cache>/tokens/<key>/`:
- `tokens-00000.bin`, `tokens-00001.bin`, ...: every document's token ids followed by the
  separator id (EOS for the decoder, [SEP] for BERT), concatenated and cut into shards of
  `shard_tokens` tokens (the last one shorter); raw little-endian uint16 when the vocabulary fits,
  else uint32. Global token position p lives in shard p // shard_tokens, so a reader needs no
  search. Documents may span two shards.
- `offsets.bin`: int64 [num_documents + 1]; document d is tokens [offsets[d], offsets[d+1]) (its
  last token is the separator).
- `meta.json` (the index): dtype, counts, the shard size, and the byte size and sha256 of every
  file, written last.

Stores are built by streaming (`StoreWriter`): documents are encoded in bounded blocks and
appended to the open shard, so building needs memory for one block, not for the corpus. The
directory is built under a temporary name and renamed into place, so a crash never leaves a
partial store. On open, sizes and checksums are verified (a sequential read, no resident memory);
a mismatch is logged and the store is discarded and rebuilt rather than trusted. Readers only map
the files: a process touches the pages of the rows it gathers and nothing else.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib
import shutil
import time
from collections.abc import Iterable, Sequence

import numpy as np
from absl import logging

from simplified_tf.data import cache_util
from simplified_tf.data.tokenizer import TokenizerInfo

FORMAT_VERSION = 2
DEFAULT_SHARD_TOKENS = 2**28  # 512 MiB of uint16 per shard
ENCODE_BLOCK_BYTES = 4_000_000  # text per encode call (bounds peak memory while building)


class ShardedTokens:
    """Read-only view of token shards as one flat array: `len`, `dtype`, slices and int indices."""

    def __init__(self, shards: Sequence[np.ndarray], shard_tokens: int):
        self.shards, self.shard_tokens = list(shards), int(shard_tokens)
        self.dtype = self.shards[0].dtype if self.shards else np.dtype(np.uint16)
        self._len = sum(len(s) for s in self.shards)

    def __len__(self) -> int:
        return self._len

    @property
    def shape(self) -> tuple[int]:
        return (self._len,)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self.take(np.arange(*index.indices(self._len), dtype=np.int64))
        if np.isscalar(index):
            return self.take(np.asarray([index], np.int64))[0]
        return self.take(np.asarray(index, np.int64))

    def take(self, positions: np.ndarray) -> np.ndarray:
        """Tokens at global `positions` (any shape), read from the shards that hold them."""
        positions = np.asarray(positions, np.int64)
        shard, within = np.divmod(positions, self.shard_tokens)
        if len(self.shards) == 1:
            return np.asarray(self.shards[0][within])
        out = np.empty(positions.shape, self.dtype)
        for s in np.unique(shard):
            sel = shard == s
            out[sel] = self.shards[int(s)][within[sel]]
        return out


@dataclasses.dataclass(frozen=True)
class TokenStore:
    tokens: np.ndarray | ShardedTokens  # a memmap (one shard) or a sharded view
    offsets: np.ndarray  # [num_documents + 1] int64, usually a memmap
    path: pathlib.Path | None = None

    @property
    def num_documents(self) -> int:
        return len(self.offsets) - 1

    @property
    def num_tokens(self) -> int:
        return int(self.offsets[-1])

    def document(self, d: int) -> np.ndarray:
        """Token ids of document d, including its trailing separator."""
        return self.tokens[int(self.offsets[d]) : int(self.offsets[d + 1])]


def token_dtype(vocab_size: int):
    return np.uint16 if vocab_size <= 2**16 else np.uint32


def store_key(documents_fingerprint: str, info: TokenizerInfo, shard_tokens: int = 0) -> str:
    shards = f"|s{shard_tokens}" if shard_tokens and shard_tokens != DEFAULT_SHARD_TOKENS else ""
    raw = f"{documents_fingerprint}|{info.fingerprint}|{info.eos_id}|v{FORMAT_VERSION}{shards}"
    return hashlib.sha256(raw.encode()).hexdigest()[:24]


class StoreWriter:
    """Appends documents (ids + separator) to a new store directory, shard by shard."""

    def __init__(self, directory: pathlib.Path, dtype, eos_id: int, shard_tokens: int):
        if shard_tokens < 1:
            raise ValueError(f"shard_tokens={shard_tokens} must be >= 1.")
        self.directory, self.dtype = directory, np.dtype(dtype)
        self.shard_tokens, self.eos_id = int(shard_tokens), eos_id
        directory.mkdir(parents=True)
        self._offsets = open(directory / "offsets.bin", "wb")  # noqa: SIM115 (closed in finish)
        self._offsets.write(np.zeros(1, np.int64).tobytes())
        self._shard, self._in_shard, self._shards = None, 0, []
        self.num_tokens = self.num_documents = 0

    def _write_tokens(self, ids: np.ndarray) -> None:
        while len(ids):
            if self._shard is None or self._in_shard == self.shard_tokens:
                if self._shard is not None:
                    self._shard.close()
                name = f"tokens-{len(self._shards):05d}.bin"
                self._shard, self._in_shard = open(self.directory / name, "wb"), 0  # noqa: SIM115
                self._shards.append(name)
            take = min(len(ids), self.shard_tokens - self._in_shard)
            self._shard.write(ids[:take].tobytes())
            self._in_shard += take
            ids = ids[take:]

    def add(self, documents_ids: Iterable[Sequence[int]]) -> None:
        """Appends each document's ids followed by the separator."""
        ends, pieces = [], []
        for ids in documents_ids:
            pieces += [np.asarray(ids, self.dtype), np.array([self.eos_id], self.dtype)]
            self.num_tokens += len(ids) + 1
            ends.append(self.num_tokens)
        if pieces:
            self._write_tokens(np.concatenate(pieces))
            self._offsets.write(np.asarray(ends, np.int64).tobytes())
            self.num_documents += len(ends)

    def finish(self, extra_meta: dict) -> None:
        """Closes the files and writes meta.json (sizes and checksums) last."""
        if self._shard is not None:
            self._shard.close()
        self._offsets.close()
        meta = dict(
            extra_meta,
            format_version=FORMAT_VERSION,
            num_documents=self.num_documents,
            num_tokens=self.num_tokens,
            dtype=self.dtype.name,
            shard_tokens=self.shard_tokens,
            shards=[_file_entry(self.directory / n) for n in self._shards],
            offsets=_file_entry(self.directory / "offsets.bin"),
        )
        (self.directory / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True))

    def abort(self) -> None:
        for f in (self._shard, self._offsets):
            if f is not None:
                f.close()
        shutil.rmtree(self.directory, ignore_errors=True)


def _file_entry(path: pathlib.Path) -> dict:
    return {"name": path.name, "bytes": path.stat().st_size, "sha256": cache_util.file_sha256(path)}


def _check_file(path: pathlib.Path, entry: dict) -> None:
    file = path / entry["name"]
    if not file.is_file():
        raise ValueError(f"{file.name} missing")
    if file.stat().st_size != entry["bytes"]:
        raise ValueError(f"{file.name} has {file.stat().st_size} bytes, expected {entry['bytes']}")
    if cache_util.file_sha256(file) != entry["sha256"]:
        raise ValueError(f"{file.name} checksum mismatch")


def _map(file: pathlib.Path, dtype) -> np.ndarray:
    if file.stat().st_size == 0:
        return np.zeros([0], dtype)
    return np.memmap(file, dtype=dtype, mode="r")


def open_store(path: pathlib.Path) -> TokenStore:
    """Maps a store after checking sizes and checksums; raises ValueError describing a defect."""
    try:
        meta = json.loads((path / "meta.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"meta.json unreadable: {e}") from e
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"format version {meta.get('format_version')} != {FORMAT_VERSION}")
    for entry in [*meta["shards"], meta["offsets"]]:
        _check_file(path, entry)
    dtype = np.dtype(meta["dtype"])
    shards = [_map(path / e["name"], dtype) for e in meta["shards"]]
    offsets = _map(path / "offsets.bin", np.int64)
    tokens = shards[0] if len(shards) == 1 else ShardedTokens(shards, meta["shard_tokens"])
    if len(offsets) != meta["num_documents"] + 1 or int(offsets[-1]) != len(tokens):
        raise ValueError("offsets inconsistent with tokens")
    return TokenStore(tokens, offsets, path)


def open_cached(path: pathlib.Path, label: str = "") -> TokenStore | None:
    """The verified store at `path`, or None if it is missing (a bad one is discarded)."""
    if not path.exists():
        return None
    try:
        store = open_store(path)
        logging.info("Token store cache hit (%s): %s", label, path)
        return store
    except (ValueError, KeyError, OSError) as e:
        cache_util.discard_dir(path, str(e))
        return None


def encode_blocks(texts: Iterable[str], info: TokenizerInfo, block_bytes=ENCODE_BLOCK_BYTES):
    """Yields lists of token-id arrays, encoding `texts` in blocks of about `block_bytes`."""
    block, size = [], 0
    for text in texts:
        block.append(text)
        size += len(text)
        if size >= block_bytes:
            yield encode_texts(block, info)
            block, size = [], 0
    if block:
        yield encode_texts(block, info)


def encode_texts(texts: list[str], info: TokenizerInfo) -> list[np.ndarray]:
    dtype = token_dtype(info.vocab_size)
    encoded = info.tokenizer.encode_batch_fast(texts, add_special_tokens=False)
    return [np.asarray(e.ids, dtype) for e in encoded]


def publish(writer: StoreWriter, final: pathlib.Path, extra_meta: dict, label: str) -> TokenStore:
    """Finishes `writer`'s directory and publishes it as `final` (or uses a racing winner's)."""
    writer.finish(extra_meta)
    final.parent.mkdir(parents=True, exist_ok=True)
    if not cache_util.publish_dir(writer.directory, final):
        logging.info("Another process published %s first; using it.", final)
    logging.info(
        "Token store (%s): %d documents, %d tokens -> %s",
        label,
        writer.num_documents,
        writer.num_tokens,
        final,
    )
    return open_store(final)


def new_writer(final: pathlib.Path, info: TokenizerInfo, shard_tokens: int) -> StoreWriter:
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache_util.temp_sibling(final)
    return StoreWriter(tmp, token_dtype(info.vocab_size), info.eos_id, shard_tokens)


def load_or_build(
    texts: Iterable[str],
    documents_fingerprint: str,
    info: TokenizerInfo,
    cache_dir: pathlib.Path,
    *,
    label: str = "",
    shard_tokens: int = DEFAULT_SHARD_TOKENS,
) -> TokenStore:
    """The cached store for these documents and tokenizer, built by streaming if missing or bad."""
    path = cache_dir / "tokens" / store_key(documents_fingerprint, info, shard_tokens)
    store = open_cached(path, label)
    if store is not None:
        return store
    start = time.perf_counter()
    writer = new_writer(path, info, shard_tokens)
    try:
        for block in encode_blocks(texts, info):
            writer.add(block)
    except BaseException:
        writer.abort()
        raise
    meta = {"documents_fingerprint": documents_fingerprint, "tokenizer": info.fingerprint}
    store = publish(writer, path, meta, label)
    logging.info("Tokenized %s in %.2f s.", label, time.perf_counter() - start)
    return store
