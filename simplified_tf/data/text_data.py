"""`make_text_data`: corpus -> split -> tokenizer -> cached token stores -> packed, sampled batches.

Batches are dicts of numpy arrays with a leading example axis:
- decoder: inputs int32 [B, T], targets int32 [B, T], weights float32 [B, T] (0 where there is
  no target, and where the target is EOS/pad when `mask_eos` is on, the reference's pad = EOS).
- bert: inputs (corrupted), targets (original tokens), weights (1 at selected positions), all
  [B, T], and valid bool [B, T] (False at padding).

Every process runs the same deterministic pipeline (`prepare`: a streamed, cached, one-off build;
the caches make repeats cheap and are safe under concurrent writers), maps the token stores and
then gathers only its own rows of each global batch. Host memory depends on the batch and the
number of documents, not on the corpus size.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import ml_collections
import numpy as np
from absl import logging

from simplified_tf.data import batches, cache_util, masking, prepare, token_store, tokenizer
from trainloop.config_util import ConfigError, check_choice, check_min

# Eval rows and eval masks use a fixed seed so runs with different training seeds are evaluated
# on identical batches.
EVAL_SEED = 0


def default_data_config(kind: str = "decoder", **overrides: Any) -> ml_collections.ConfigDict:
    """The `config.data` keys with their defaults (stdlib corpus, trained tokenizer)."""
    c = ml_collections.ConfigDict(
        dict(
            source="stdlib",
            tokenizer="",
            vocab_size=8192,
            seq_len=128,
            packing="full_chunks",
            val_fraction=0.02,
            max_documents=0,
            cache_dir="",
            text_field="text",
            eval_batches=8,
            tokenizer_train_bytes=prepare.DEFAULT_TOKENIZER_TRAIN_BYTES,
            shard_tokens=token_store.DEFAULT_SHARD_TOKENS,
        )
    )
    if kind == "bert":
        c.mask_prob, c.mask_token_prob, c.random_token_prob = 0.25, 0.8, 0.1
    c.update(overrides)
    return c


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Validated view of `config.data` (unknown extra keys are ignored)."""

    source: str
    tokenizer: str
    vocab_size: int
    seq_len: int
    packing: str
    val_fraction: float
    max_documents: int
    cache_dir: str
    text_field: str
    eval_batches: int
    tokenizer_train_bytes: int
    shard_tokens: int
    mask_eos: bool
    mask: masking.MaskSpec

    @classmethod
    def parse(cls, cfg: Mapping[str, Any] | ml_collections.ConfigDict) -> DataConfig:
        """Missing keys take the defaults of `default_data_config("bert")` (the masking ones are
        only read by the MLM task); `mask_eos` (decoder targets), an expert switch, is True."""
        v = {"mask_eos": True} | default_data_config("bert").to_dict() | dict(cfg)
        cast = {"str": str, "int": int, "float": float, "bool": bool}
        scalars = {
            f.name: cast[f.type](v[f.name]) for f in dataclasses.fields(cls) if f.type in cast
        }
        mask = masking.MaskSpec(
            float(v["mask_prob"]), float(v["mask_token_prob"]), float(v["random_token_prob"])
        )
        out = cls(**scalars, mask=mask)
        check_choice("data.packing", out.packing, batches.PACKINGS)
        check_min("data.seq_len", out.seq_len, 2)
        check_min("data.eval_batches", out.eval_batches, 0)
        check_min("data.tokenizer_train_bytes", out.tokenizer_train_bytes, 0, "0 = all of train")
        check_min("data.shard_tokens", out.shard_tokens, 1)
        return out


class TextData:
    """Packed train/validation rows with stateless batch functions (see module docstring)."""

    def __init__(
        self,
        cfg: DataConfig,
        kind: str,
        info: tokenizer.TokenizerInfo,
        train: token_store.TokenStore,
        val: token_store.TokenStore,
        global_batch_size: int,
        seed: int,
        batch_ramp=None,
    ):
        self.config, self.kind, self.info, self.seed = cfg, kind, info, seed
        self.global_batch_size = global_batch_size
        self.batch_ramp = batch_ramp  # a trainloop.ramp.BatchRamp, or None
        self.train_store, self.val_store = train, val
        self.train_rows = batches.pack(train.offsets, cfg.packing, kind, cfg.seq_len)
        self.val_rows = batches.pack(val.offsets, cfg.packing, kind, cfg.seq_len)
        self.sampler = batches.Sampler(len(self.train_rows), global_batch_size, seed)
        self._eval_cache: list[dict[str, np.ndarray]] | None = None
        self._random_ids = masking.ordinary_ids(info.vocab_size, info.special_ids)
        logging.info(
            "Packed (%s, seq_len %d): train %d rows (%d tokens in rows), val %d rows.",
            cfg.packing,
            cfg.seq_len,
            len(self.train_rows),
            int(self.train_rows.lengths.sum()),
            len(self.val_rows),
        )

    # --- properties used by tasks and sampling code (token ids: `self.info`) ---
    @property
    def tokenizer(self):
        return self.info.tokenizer

    @property
    def vocab_size(self) -> int:
        """Size of the tokenizer's vocabulary (<= data.vocab_size, the embedding size)."""
        return self.info.vocab_size

    @property
    def num_train_tokens(self) -> int:
        """Tokens in the training store (each document's tokens plus one separator)."""
        return self.train_store.num_tokens

    @property
    def num_train_chunks(self) -> int:
        return len(self.train_rows)

    def encode(self, text: str) -> np.ndarray:
        return np.asarray(self.tokenizer.encode(text, add_special_tokens=False).ids, np.int32)

    def decode(self, ids) -> str:
        return self.tokenizer.decode([int(i) for i in np.asarray(ids).reshape(-1)])

    # --- batches ---
    def _rows_to_batch(self, store, rows, idx, noise_3BT=None):
        tokens_NW, lengths_N = rows.gather(store.tokens, idx, self.info.pad_id)
        return self.batch_arrays(tokens_NW, lengths_N, noise_3BT)

    def batch_arrays(self, tokens_NW, lengths_N, noise_3BT=None) -> dict[str, np.ndarray]:
        """The training arrays of gathered rows (MLM corruption from `noise_3BT` for BERT)."""
        if self.kind == "decoder":
            return batches.decoder_batch(
                tokens_NW,
                lengths_N,
                self.config.seq_len,
                pad_id=self.info.pad_id,
                eos_id=self.info.eos_id,
                mask_eos=self.config.mask_eos,
            )
        tokens_BT, valid_BT = batches.bert_rows(
            tokens_NW,
            lengths_N,
            cls_id=self.info.cls_id,
            sep_id=self.info.sep_id,
            pad_id=self.info.pad_id,
        )
        return masking.apply_mlm(
            tokens_BT,
            valid_BT,
            noise_3BT,
            self.config.mask,
            mask_id=self.info.mask_id,
            special_ids=self.info.special_ids,
            random_ids=self._random_ids,
        )

    def host_batch(self, step: int, process_index: int = 0, process_count: int = 1):
        """This process's rows of the global batch of `step` (pure function of seed and step).

        Under a batch ramp, global row r belongs to microbatch i = r mod A (the loop's strided
        split) and is used only if i < a(step); used rows take consecutive stream positions
        (nothing is skipped or repeated), unused rows are padding with zero weight.
        """
        sl = self.sampler.host_slice(process_index, process_count)
        positions = self.stream_positions(step, sl)
        used = positions >= 0
        noise = None
        if self.kind == "bert":
            noise = masking.mask_noise(
                self.seed, step, self.global_batch_size, self.config.seq_len, rows=sl
            )
        if used.all():
            idx = self.sampler.rows_at(positions)
            return self._rows_to_batch(self.train_store, self.train_rows, idx, noise)
        idx = self.sampler.rows_at(np.where(used, positions, 0))
        first = np.flatnonzero(used)[:1] if used.any() else np.zeros(1, np.int64)
        part = self._rows_to_batch(
            self.train_store,
            self.train_rows,
            idx[used] if used.any() else idx[first],
            None if noise is None else noise[:, used if used.any() else first],
        )
        return self._pad_unused(part, used)

    def _pad_unused(self, part: dict[str, np.ndarray], used: np.ndarray) -> dict[str, np.ndarray]:
        """Full-size arrays: `part` at the used rows, padding (weight 0, invalid) elsewhere."""
        out = {}
        for k, v in part.items():
            full = np.zeros((len(used),) + v.shape[1:], v.dtype)
            if k in ("inputs", "targets"):
                full[:] = self.info.pad_id
            if used.any():
                full[used] = v
            out[k] = full
        return out

    def stream_positions(self, step: int, sl: slice) -> np.ndarray:
        """Stream positions of global rows `sl` of step `step`; -1 for rows the step leaves unused."""
        rows = np.arange(sl.start, sl.stop, dtype=np.int64)
        if self.batch_ramp is None:
            return step * self.global_batch_size + rows
        full = self.batch_ramp.max_microbatches
        consumed, micro = (int(x) for x in self.batch_ramp.at(step))
        per_micro = self.global_batch_size // full
        q, i = np.divmod(rows, full)
        return np.where(i < micro, consumed * per_micro + q * micro + i, -1)

    def eval_batches(self) -> list[dict[str, np.ndarray]]:
        """Up to data.eval_batches fixed global batches of validation rows.

        Rows are a fixed (EVAL_SEED) permutation of the validation rows. When they run out, the
        last batch is filled with repeated rows whose weights are 0, so a weight-averaged eval
        metric counts every validation row once.
        """
        if self._eval_cache is None:
            b, n = self.global_batch_size, len(self.val_rows)
            num = min(self.config.eval_batches, -(-n // b)) if n else 0
            order = np.random.default_rng([EVAL_SEED, n]).permutation(n) if n else None
            out = []
            for i in range(num):
                pos = np.arange(i * b, (i + 1) * b)
                idx = order[pos % n]
                noise = None
                if self.kind == "bert":
                    noise = masking.mask_noise(EVAL_SEED, 2**31 + i, b, self.config.seq_len)
                batch = self._rows_to_batch(self.val_store, self.val_rows, idx, noise)
                batch["weights"][pos >= n] = 0.0
                out.append(batch)
            self._eval_cache = out
        return [dict(bt) for bt in self._eval_cache]


def make_text_data(
    data_config, *, kind: str, global_batch_size: int, seed: int, batch_ramp=None
) -> TextData:
    """Builds the text pipeline for `kind` ("decoder" | "bert") from `config.data`.

    `batch_ramp` (a `trainloop.ramp.BatchRamp`) makes each step's batch use only the rows of its
    active microbatches, drawn consecutively from the stream (see `TextData.host_batch`).
    """
    check_choice("data kind", kind, tokenizer.KINDS)
    cfg = DataConfig.parse(data_config)
    prepared = prepare.prepare(cfg, kind, cache_util.cache_root(cfg.cache_dir))
    info, train, val = prepared.info, prepared.train, prepared.val
    logging.info(
        "Text data (%s, %s): %d train / %d val documents, %d / %d tokens, vocab %d.",
        kind,
        prepared.source.where,
        train.num_documents,
        val.num_documents,
        train.num_tokens,
        val.num_tokens,
        info.vocab_size,
    )
    data = TextData(cfg, kind, info, train, val, global_batch_size, seed, batch_ramp)
    if cfg.eval_batches > 0 and len(data.val_rows) == 0:
        raise ConfigError(
            f"data.eval_batches={cfg.eval_batches} but the validation split "
            f"({val.num_documents} documents) has no rows of seq_len {cfg.seq_len}. Raise "
            "data.val_fraction, lower data.seq_len, or set data.eval_batches=0."
        )
    return data
