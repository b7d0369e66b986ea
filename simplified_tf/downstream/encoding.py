"""Encoding examples for the BERT classifier, and the batches of a fine-tuning run.

A single text becomes `[CLS] a [SEP]`, a pair `[CLS] a [SEP] b [SEP]`, with the pretraining
tokenizer. The suite's BERT has no segment (token-type) embeddings, as in Cramming's default
architecture, so the two segments are told apart by the [SEP] between them and their positions.
Pairs longer than the model's length are truncated longest-first (one token at a time from the
longer text, the usual BERT rule).

Every batch of a task is padded to one length T (the longest encoded example of the task,
rounded up to a multiple of 8, at most the model's length), so the train step compiles once;
padded positions are marked invalid (`valid` False), which masks them in the softmax and in
shaped attention's identity and centring terms, so padding does not change a logit.

Batches are dicts of numpy arrays: inputs int32 [B, T], valid bool [B, T], labels int32 [B] (float32
for regression) and weights float32 [B] (0 for the filler rows of a last eval batch).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from tokenizers import Tokenizer

from simplified_tf.downstream.examples import Examples
from trainloop.config_util import ConfigError

SPECIALS = ("[CLS]", "[SEP]", "[PAD]")


@dataclasses.dataclass(frozen=True)
class Encoded:
    tokens: np.ndarray  # int32 [N, T], padded with the pad id
    lengths: np.ndarray  # int32 [N]
    labels: np.ndarray  # int32 or float32 [N]

    def __len__(self) -> int:
        return len(self.lengths)

    @property
    def width(self) -> int:
        return self.tokens.shape[1]


def truncate_pair(len_a: int, len_b: int, budget: int) -> tuple[int, int]:
    """Longest-first truncation of two lengths to a total of at most `budget`.

    Equals removing one token at a time from the longer text (from `a` on ties) until they fit.
    """
    over = len_a + len_b - budget
    if over <= 0:
        return len_a, len_b
    if abs(len_a - len_b) >= over:  # trimming the longer one alone suffices
        return (len_a - over, len_b) if len_a > len_b else (len_a, len_b - over)
    rest = over - abs(len_a - len_b)  # both are equal at `short` now; alternate, `a` first
    short = min(len_a, len_b)
    return short - (rest + 1) // 2, short - rest // 2


class PairEncoder:
    """Turns `Examples` into padded token matrices with a BERT WordPiece tokenizer."""

    def __init__(self, tokenizer: Tokenizer, max_len: int):
        ids = {t: tokenizer.token_to_id(t) for t in SPECIALS}
        missing = [t for t, i in ids.items() if i is None]
        if missing:
            raise ConfigError(
                f"The tokenizer has no {missing} token(s); fine-tuning needs a BERT tokenizer "
                f"with {', '.join(SPECIALS)} (the pretraining run's WordPiece)."
            )
        if max_len < 5:
            raise ConfigError(
                f"The sequence length {max_len} is too short for [CLS] a [SEP] b [SEP]."
            )
        self.tokenizer, self.max_len = tokenizer, int(max_len)
        self.cls_id, self.sep_id, self.pad_id = ids["[CLS]"], ids["[SEP]"], ids["[PAD]"]

    def _ids(self, texts) -> list[list[int]]:
        encs = self.tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [e.ids for e in encs]

    def token_rows(self, examples: Examples) -> list[list[int]]:
        """The unpadded token ids of every example, truncated to `max_len`."""
        a = self._ids(examples.text_a)
        if examples.text_b is None:
            return [[self.cls_id, *x[: self.max_len - 2], self.sep_id] for x in a]
        b = self._ids(examples.text_b)
        rows = []
        for x, y in zip(a, b, strict=True):
            la, lb = truncate_pair(len(x), len(y), self.max_len - 3)
            rows.append([self.cls_id, *x[:la], self.sep_id, *y[:lb], self.sep_id])
        return rows

    def _pad(self, rows: list[list[int]], width: int, labels: np.ndarray) -> Encoded:
        tokens = np.full((len(rows), width), self.pad_id, np.int32)
        lengths = np.zeros(len(rows), np.int32)
        for i, row in enumerate(rows):
            row = row[:width]
            tokens[i, : len(row)] = row
            lengths[i] = len(row)
        return Encoded(tokens, lengths, labels)

    def encode(self, examples: Examples, width: int) -> Encoded:
        """`examples` padded (or cut) to `width` tokens."""
        return self._pad(self.token_rows(examples), width, examples.labels)

    def encode_splits(self, splits: dict[str, Examples]) -> dict[str, Encoded]:
        """Every split encoded at one common width (see the module docstring)."""
        rows = {name: self.token_rows(ex) for name, ex in splits.items()}
        longest = max((len(r) for rs in rows.values() for r in rs), default=2)
        width = min(self.max_len, -(-longest // 8) * 8)
        return {name: self._pad(rows[name], width, ex.labels) for name, ex in splits.items()}


def batch_of(enc: Encoded, idx: np.ndarray, weights: np.ndarray | None = None) -> dict:
    valid = np.arange(enc.width)[None, :] < enc.lengths[idx][:, None]
    return {
        "inputs": enc.tokens[idx],
        "valid": valid,
        "labels": enc.labels[idx],
        "weights": np.ones(len(idx), np.float32) if weights is None else weights,
    }


class EpochSampler:
    """Rows of step s: stream position p = s*B + i is row perm_e[p mod N] of epoch e = p div N,
    perm_e seeded by (seed, e): a pure function of the step, so resuming needs no state."""

    def __init__(self, num_rows: int, batch_size: int, seed: int):
        if num_rows < 1:
            raise ConfigError("The training split is empty.")
        self.n, self.batch, self.seed = num_rows, batch_size, seed

    def _perm(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.n)

    def indices(self, step: int, process_index: int = 0, process_count: int = 1) -> np.ndarray:
        per = self.batch // process_count
        pos = step * self.batch + process_index * per + np.arange(per)
        epochs = pos // self.n
        out = np.empty(per, np.int64)
        for e in np.unique(epochs):
            sel = epochs == e
            out[sel] = self._perm(int(e))[pos[sel] % self.n]
        return out


def eval_batches(enc: Encoded, batch_size: int) -> list[dict]:
    """Fixed batches covering every row once; the last batch is filled with row 0 at weight 0."""
    out = []
    for start in range(0, len(enc), batch_size):
        idx = np.arange(start, start + batch_size)
        weights = (idx < len(enc)).astype(np.float32)
        out.append(batch_of(enc, np.where(idx < len(enc), idx, 0), weights))
    return out
