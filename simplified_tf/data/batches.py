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
[0, B)) is row `perm_e(p mod N)` of epoch e = p div N, where perm_e is a pseudo-random permutation
keyed by (seed, e) and evaluated pointwise (`permute`), so no index array of the corpus's size
exists. Process k of n takes positions [k*B/n, (k+1)*B/n) of the global batch, so the shards
concatenate to the single-process batch and resuming needs no iterator state.
"""

from __future__ import annotations

import numpy as np

from trainloop.config_util import ConfigError, check_min

PACKINGS = ("full_chunks", "pad_last", "concat")


def check_seq_len(seq_len: int, max_positions: int) -> int:
    """Returns seq_len if the model's position table (max_positions) can hold it, else raises."""
    check_min("data.seq_len", seq_len, 2)
    if max_positions > 0 and seq_len > max_positions:
        raise ConfigError(
            f"data.seq_len={seq_len} exceeds the model's {max_positions} positions; use "
            f"data.seq_len <= {max_positions} or a larger position table."
        )
    return seq_len


class Rows:
    """Packed rows: row i reads `tokens[start_i : start_i + length_i]`, length_i <= width.

    Rows are computed on demand from the documents' offsets (`locate`), so their memory grows
    with the number of documents, not of rows: full chunks of document d are rows
    first[d] .. first[d+1]-1, and row r of document d starts k = r - first[d] chunks in. Windows
    over the whole stream (`concat`) need no table at all.
    """

    def __init__(self, offsets, width: int, *, keep_remainder: bool, min_len: int, stride: int = 0):
        self.width, self.stride = int(width), int(stride)
        if stride:  # windows of `width` tokens every `stride` over the whole stream
            num_tokens = int(offsets[-1])
            self._num = len(range(0, max(num_tokens - width + 1, 0), stride))
            return
        starts_d = np.asarray(offsets[:-1], np.int64)
        content = np.asarray(offsets[1:], np.int64) - starts_d - 1  # drop the separator
        n_full = content // width
        count = n_full + (keep_remainder & (content - n_full * width >= min_len))
        self._doc_starts, self._content = starts_d, content
        self._first = np.zeros(len(count) + 1, np.int64)
        np.cumsum(count, out=self._first[1:])
        self._num = int(self._first[-1])

    def __len__(self) -> int:
        return self._num

    def locate(self, rows) -> tuple[np.ndarray, np.ndarray]:
        """(starts, lengths) of `rows` (int64 arrays of the same shape)."""
        rows = np.asarray(rows, np.int64)
        if self.stride:
            return rows * self.stride, np.full(rows.shape, self.width, np.int64)
        doc = np.searchsorted(self._first, rows, side="right") - 1
        k = rows - self._first[doc]
        starts = self._doc_starts[doc] + k * self.width
        return starts, np.minimum(self.width, self._content[doc] - k * self.width)

    @property
    def starts(self) -> np.ndarray:
        return self.locate(np.arange(self._num))[0]

    @property
    def lengths(self) -> np.ndarray:
        return self.locate(np.arange(self._num))[1]

    def gather(self, tokens, rows: np.ndarray, pad_id: int):
        """Token matrix [len(rows), width] (int32, padded with pad_id) and lengths [len(rows)]."""
        starts, lengths = self.locate(rows)
        idx = starts[:, None] + np.arange(self.width)[None, :]
        inside = np.arange(self.width)[None, :] < lengths[:, None]
        idx = np.minimum(idx, len(tokens) - 1)
        taken = tokens.take(idx) if hasattr(tokens, "take") else tokens[idx]
        out = np.asarray(taken, dtype=np.int32)
        out[~inside] = pad_id
        return out, lengths


def document_chunks(offsets: np.ndarray, width: int, *, keep_remainder: bool, min_len: int = 1):
    """Chunks of `width` tokens inside each document (its trailing separator excluded).

    With keep_remainder, a final shorter chunk (>= min_len tokens) is kept per document.
    """
    return Rows(offsets, width, keep_remainder=keep_remainder, min_len=min_len)


def stream_chunks(offsets: np.ndarray, width: int, stride: int) -> Rows:
    """Windows of `width` tokens every `stride` tokens over the whole stream (full windows only)."""
    return Rows(offsets, width, keep_remainder=False, min_len=width, stride=stride)


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
        return stream_chunks(offsets, width, stride)
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


_PERMUTE_STREAM = 0x5EED5  # separates the shuffle keys from other uses of (seed, epoch)
_FEISTEL_ROUNDS = 4


def _mix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser on uint64 arrays (wrapping arithmetic)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def permute(index: np.ndarray, n: int, seed: int, epoch: int) -> np.ndarray:
    """perm_(seed, epoch)(index): a pseudo-random permutation of [0, n), evaluated pointwise.

    A balanced Feistel network over the smallest even number of bits that holds n - 1, with
    cycle-walking (values that land outside [0, n) are permuted again until they fall inside),
    which keeps it a bijection of [0, n). Nothing of size n is ever built, so shuffling costs
    O(batch) memory and time however large the corpus (the same construction as grain's
    `index_shuffle`, vectorised over a batch in numpy).
    """
    half = max(1, (max(int(n) - 1, 1).bit_length() + 1) // 2)
    mask = np.uint64((1 << half) - 1)
    keys = np.random.default_rng([seed, _PERMUTE_STREAM, epoch]).integers(
        0, 2**63, size=_FEISTEL_ROUNDS, dtype=np.uint64
    )

    def rounds(x):
        left, right = x >> np.uint64(half), x & mask
        for key in keys:
            left, right = right, left ^ (_mix64(right ^ key) & mask)
        return (left << np.uint64(half)) | right

    x = np.asarray(index, np.int64).astype(np.uint64)
    todo = np.ones(x.shape, bool)
    while todo.any():
        x[todo] = rounds(x[todo])
        todo = x >= np.uint64(n)
    return x.astype(np.int64)


class Sampler:
    """Maps (step, process) to row indices; a pure function of (seed, step), O(batch) memory."""

    def __init__(self, num_rows: int, global_batch_size: int, seed: int):
        if num_rows <= 0:
            raise ConfigError(
                "The training split has no rows (documents shorter than one chunk?). Use a "
                "larger corpus, a smaller data.seq_len, or data.packing='concat'/'pad_last'."
            )
        if global_batch_size <= 0:
            raise ConfigError(f"batch_size={global_batch_size} must be positive.")
        self.num_rows, self.batch_size, self.seed = num_rows, global_batch_size, seed

    def host_slice(self, process_index: int, process_count: int) -> slice:
        if process_count <= 0 or not 0 <= process_index < process_count:
            raise ValueError(f"Bad process {process_index} of {process_count}.")
        if self.batch_size % process_count:
            raise ConfigError(
                f"batch_size={self.batch_size} is not divisible by process_count={process_count}."
            )
        per = self.batch_size // process_count
        return slice(process_index * per, (process_index + 1) * per)

    def rows_at(self, positions: np.ndarray) -> np.ndarray:
        """Row indices at stream positions: position p is row perm_e(p mod N) of epoch e = p div N."""
        epoch, within = np.divmod(np.asarray(positions, np.int64), self.num_rows)
        out = np.empty_like(within)
        for e in np.unique(epoch):
            sel = epoch == e
            out[sel] = permute(within[sel], self.num_rows, self.seed, int(e))
        return out

    def indices(self, step: int, process_index: int = 0, process_count: int = 1) -> np.ndarray:
        """Row indices of this process's share of the global batch of `step`."""
        if step < 0:
            raise ValueError(f"step={step} must be >= 0.")
        sl = self.host_slice(process_index, process_count)
        return self.rows_at(step * self.batch_size + np.arange(sl.start, sl.stop, dtype=np.int64))
