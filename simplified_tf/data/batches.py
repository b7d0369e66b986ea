"""Packing token stores into fixed-length rows, and stateless, process-sharded sampling.

Packing modes (`data.packing`):
- `full_chunks` (the paper's CodeParrot recipe): each document is cut into consecutive chunks
  of exactly `width` tokens and the remainder is dropped. Chunks never cross documents and
  never contain the document separator.
- `pad_last`: like `full_chunks`, but the short remainder of each document is kept as one more
  row, padded; positions past `length` are invalid (weight 0, `valid` False for BERT).
- `concat`: documents joined by the separator (EOS / [SEP]) form one stream cut into rows.

Causal LM layout (decoder): a full chunk is `seq_len` tokens, inputs = the chunk, targets = the
chunk shifted left by one, and the last position has no target (weight 0). This mirrors the
reference, which shifts labels inside the loss, and keeps its chunk count (so its step count); it
gives `seq_len - 1` predictions per row. In `concat` mode rows are windows of `seq_len + 1`
tokens with stride `seq_len`, so every position has a target.

BERT layout: `[CLS] body [SEP]` with a body of `seq_len - 2` tokens.

Sampling: the rows of step s are a pure function of (seed, s): stream position p = s*B + i (i in
[0, B)) is row `perm_e[p mod N]` of epoch e = p div N, where perm_e is a permutation seeded by
(seed, e). Process k of n takes positions [k*B/n, (k+1)*B/n) of the global batch, so the shards
concatenate to the single-process batch and resuming needs no iterator state.
"""

from __future__ import annotations

import dataclasses
import threading

import numpy as np

from trainloop.config_util import ConfigError

PACKINGS = ("full_chunks", "pad_last", "concat")


def check_seq_len(seq_len: int, max_positions: int) -> int:
    """Returns seq_len if the model's position table (max_positions) can hold it, else raises."""
    if seq_len < 2:
        raise ConfigError(f"data.seq_len={seq_len} must be >= 2.")
    if max_positions > 0 and seq_len > max_positions:
        raise ConfigError(
            f"data.seq_len={seq_len} exceeds the model's {max_positions} positions; use "
            f"data.seq_len <= {max_positions} or a larger position table."
        )
    return seq_len


@dataclasses.dataclass(frozen=True)
class Rows:
    """Packed rows: row i reads `tokens[starts[i] : starts[i] + lengths[i]]`, lengths <= width."""

    starts: np.ndarray  # int64 [N]
    lengths: np.ndarray  # int64 [N]
    width: int

    def __len__(self) -> int:
        return len(self.starts)

    def gather(self, tokens: np.ndarray, rows: np.ndarray, pad_id: int):
        """Token matrix [len(rows), width] (int32, padded with pad_id) and lengths [len(rows)]."""
        lengths = self.lengths[rows]
        idx = self.starts[rows][:, None] + np.arange(self.width)[None, :]
        inside = np.arange(self.width)[None, :] < lengths[:, None]
        out = np.asarray(tokens[np.minimum(idx, len(tokens) - 1)], dtype=np.int32)
        out[~inside] = pad_id
        return out, lengths


def document_chunks(offsets: np.ndarray, width: int, *, keep_remainder: bool, min_len: int = 1):
    """Chunks of `width` tokens inside each document (its trailing separator excluded).

    With keep_remainder, a final shorter chunk (>= min_len tokens) is kept per document.
    """
    starts_d = offsets[:-1]
    content = offsets[1:] - starts_d - 1  # drop the separator
    n_full = content // width
    first = np.cumsum(n_full) - n_full  # index of each document's first chunk
    k = np.arange(int(n_full.sum())) - np.repeat(first, n_full)
    starts = np.repeat(starts_d, n_full) + width * k
    lengths = np.full(len(starts), width, np.int64)
    if keep_remainder:
        rem = content - n_full * width
        has = rem >= min_len
        starts = np.concatenate([starts, (starts_d + n_full * width)[has]])
        lengths = np.concatenate([lengths, rem[has]])
        order = np.argsort(starts, kind="stable")
        starts, lengths = starts[order], lengths[order]
    return Rows(starts.astype(np.int64), lengths.astype(np.int64), width)


def stream_chunks(num_tokens: int, width: int, stride: int) -> Rows:
    """Windows of `width` tokens every `stride` tokens over the whole stream (full windows only)."""
    starts = np.arange(0, max(num_tokens - width + 1, 0), stride, dtype=np.int64)
    return Rows(starts, np.full(len(starts), width, np.int64), width)


def pack(offsets: np.ndarray, packing: str, kind: str, seq_len: int) -> Rows:
    """Rows for `kind` ("decoder" | "bert") under `packing` (see module docstring)."""
    if packing not in PACKINGS:
        raise ConfigError(
            f"Invalid data.packing={packing!r}. Valid choices: {', '.join(PACKINGS)}."
        )
    body = seq_len if kind == "decoder" else seq_len - 2
    if body < 1:
        raise ConfigError(f"data.seq_len={seq_len} leaves no room for tokens in a {kind} row.")
    if packing == "concat":
        width = seq_len + 1 if kind == "decoder" else body
        stride = seq_len if kind == "decoder" else body
        return stream_chunks(int(offsets[-1]), width, stride)
    min_len = 2 if kind == "decoder" else 1  # a decoder row needs two tokens for one target
    return document_chunks(offsets, body, keep_remainder=packing == "pad_last", min_len=min_len)


def decoder_batch(
    rows_NW: np.ndarray, lengths_N: np.ndarray, seq_len: int, *, pad_id, eos_id, mask_eos: bool
) -> dict[str, np.ndarray]:
    """Causal-LM arrays from gathered rows of width seq_len or seq_len + 1."""
    n = rows_NW.shape[0]
    if rows_NW.shape[1] == seq_len:
        rows_NW = np.concatenate([rows_NW, np.full([n, 1], pad_id, np.int32)], axis=1)
    inputs_BT, targets_BT = rows_NW[:, :seq_len], rows_NW[:, 1 : seq_len + 1]
    has_target_BT = np.arange(1, seq_len + 1)[None, :] < lengths_N[:, None]
    if mask_eos:
        has_target_BT &= targets_BT != eos_id
    return {
        "inputs": np.ascontiguousarray(inputs_BT),
        "targets": np.ascontiguousarray(targets_BT),
        "weights": has_target_BT.astype(np.float32),
    }


def bert_rows(rows_NW: np.ndarray, lengths_N: np.ndarray, *, cls_id, sep_id, pad_id):
    """`[CLS] body [SEP] [PAD]...` rows [N, W + 2] and their valid mask."""
    n, w = rows_NW.shape
    tokens = np.full([n, w + 2], pad_id, np.int32)
    tokens[:, 0] = cls_id
    tokens[:, 1 : w + 1] = rows_NW
    tokens[np.arange(n), lengths_N + 1] = sep_id
    valid = np.arange(w + 2)[None, :] < (lengths_N + 2)[:, None]
    tokens[~valid] = pad_id
    return tokens, valid


class Sampler:
    """Maps (step, process) to row indices; a pure function of (seed, step), memoized per epoch."""

    def __init__(self, num_rows: int, global_batch_size: int, seed: int):
        if num_rows <= 0:
            raise ConfigError(
                "The training split has no rows (documents shorter than one chunk?). Use a "
                "larger corpus, a smaller data.seq_len, or data.packing='concat'/'pad_last'."
            )
        if global_batch_size <= 0:
            raise ConfigError(f"batch_size={global_batch_size} must be positive.")
        self.num_rows, self.batch_size, self.seed = num_rows, global_batch_size, seed
        self._perms: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()

    def _perm(self, epoch: int) -> np.ndarray:
        with self._lock:
            if epoch not in self._perms:
                if len(self._perms) >= 3:
                    self._perms.pop(min(self._perms))
                rng = np.random.default_rng([self.seed, epoch])
                self._perms[epoch] = rng.permutation(self.num_rows)
            return self._perms[epoch]

    def host_slice(self, process_index: int, process_count: int) -> slice:
        if process_count <= 0 or not 0 <= process_index < process_count:
            raise ValueError(f"Bad process {process_index} of {process_count}.")
        if self.batch_size % process_count:
            raise ConfigError(
                f"batch_size={self.batch_size} is not divisible by process_count={process_count}."
            )
        per = self.batch_size // process_count
        return slice(process_index * per, (process_index + 1) * per)

    def indices(self, step: int, process_index: int = 0, process_count: int = 1) -> np.ndarray:
        """Row indices of this process's share of the global batch of `step`."""
        if step < 0:
            raise ValueError(f"step={step} must be >= 0.")
        sl = self.host_slice(process_index, process_count)
        pos = step * self.batch_size + np.arange(sl.start, sl.stop, dtype=np.int64)
        epoch, within = np.divmod(pos, self.num_rows)
        out = np.empty_like(pos)
        for e in np.unique(epoch):
            sel = epoch == e
            out[sel] = self._perm(int(e))[within[sel]]
        return out
