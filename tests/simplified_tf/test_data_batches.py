"""Packing (full chunks never cross documents), decoder targets/weights, stateless sharded sampling."""

import chex
import numpy as np
import pytest

from simplified_tf.data import batches
from trainloop.config_util import ConfigError

SEP = 0


def _store(lengths, seed=0):
    """Flat tokens: document d holds token value d + 1 at every position, then the separator."""
    pieces = [np.append(np.full(n, d + 1), SEP) for d, n in enumerate(lengths)]
    offsets = np.concatenate([[0], np.cumsum([n + 1 for n in lengths])])
    return np.concatenate(pieces).astype(np.uint16), offsets.astype(np.int64)


def _doc_of(tokens_row):
    return set(np.unique(tokens_row).tolist())


def test_full_chunks_keep_only_full_chunks_within_documents():
    lengths = [3, 8, 17, 16, 0, 9]
    tokens, offsets = _store(lengths)
    rows = batches.pack(offsets, "full_chunks", "decoder", seq_len=8)
    assert len(rows) == sum(n // 8 for n in lengths) == 6
    assert (rows.lengths == 8).all()
    mat, _ = rows.gather(tokens, np.arange(len(rows)), pad_id=SEP)
    owners = [_doc_of(r) for r in mat]
    assert all(len(o) == 1 and SEP not in o for o in owners)  # one document, no separator
    assert [o.pop() for o in owners] == [2, 3, 3, 4, 4, 6]


def test_bert_full_chunks_leave_room_for_cls_and_sep():
    tokens, offsets = _store([20])
    rows = batches.pack(offsets, "full_chunks", "bert", seq_len=8)
    assert rows.width == 6 and len(rows) == 3


def test_pad_last_keeps_remainders_and_concat_spans_documents():
    lengths = [3, 8, 17, 1]
    tokens, offsets = _store(lengths)
    rows = batches.pack(offsets, "pad_last", "decoder", seq_len=8)
    # full chunks plus remainders of >= 2 tokens (a 1-token remainder has no target)
    assert sorted(rows.lengths.tolist()) == [3, 8, 8, 8]
    cat = batches.pack(offsets, "concat", "decoder", seq_len=8)
    assert cat.width == 9 and len(cat) == (offsets[-1] - 9) // 8 + 1
    np.testing.assert_array_equal(np.diff(cat.starts), 8)


def test_decoder_batch_shift_and_weights():
    tokens, offsets = _store([10, 10])
    rows = batches.pack(offsets, "pad_last", "decoder", seq_len=8)
    mat, lengths = rows.gather(tokens, np.arange(len(rows)), pad_id=SEP)
    b = batches.decoder_batch(mat, lengths, 8, pad_id=SEP, eos_id=SEP, mask_eos=True)
    chex.assert_shape([b["inputs"], b["targets"], b["weights"]], (4, 8))
    np.testing.assert_array_equal(b["targets"][:, :-1], b["inputs"][:, 1:])
    # full rows: 7 targets; remainder rows (2 tokens): 1 target
    np.testing.assert_array_equal(b["weights"].sum(1), [7, 1, 7, 1])
    assert b["inputs"].dtype == np.int32 and b["weights"].dtype == np.float32


def test_mask_eos_switch_in_concat_mode():
    tokens, offsets = _store([5, 5, 5])
    rows = batches.pack(offsets, "concat", "decoder", seq_len=8)
    mat, lengths = rows.gather(tokens, np.arange(len(rows)), pad_id=SEP)
    on = batches.decoder_batch(mat, lengths, 8, pad_id=SEP, eos_id=SEP, mask_eos=True)
    off = batches.decoder_batch(mat, lengths, 8, pad_id=SEP, eos_id=SEP, mask_eos=False)
    np.testing.assert_array_equal(on["weights"], (on["targets"] != SEP).astype(np.float32))
    assert (off["weights"] == 1).all() and (on["targets"] == SEP).any()


def test_bert_rows_cls_sep_and_valid():
    mat = np.array([[5, 6, 7, 8], [9, 10, 0, 0]], np.int32)
    tokens, valid = batches.bert_rows(mat, np.array([4, 2]), cls_id=2, sep_id=3, pad_id=1)
    np.testing.assert_array_equal(tokens, [[2, 5, 6, 7, 8, 3], [2, 9, 10, 3, 1, 1]])
    np.testing.assert_array_equal(valid.sum(1), [6, 4])


def test_sampler_is_pure_and_covers_each_epoch_once():
    s = batches.Sampler(num_rows=10, global_batch_size=4, seed=3)
    first = [s.indices(k) for k in range(5)]
    fresh = batches.Sampler(num_rows=10, global_batch_size=4, seed=3)
    for k in reversed(range(5)):  # any call order gives the same batch
        np.testing.assert_array_equal(fresh.indices(k), first[k])
    stream = np.concatenate(first)
    assert sorted(stream[:10].tolist()) == list(range(10))  # epoch 0
    assert sorted(stream[10:20].tolist()) == list(range(10))  # epoch 1
    assert not np.array_equal(stream[:10], stream[10:20])  # reshuffled per epoch
    other = batches.Sampler(num_rows=10, global_batch_size=4, seed=4)
    assert not np.array_equal(np.concatenate([other.indices(k) for k in range(3)]), stream[:12])


@pytest.mark.parametrize("count", [2, 4])
def test_process_shards_concatenate_to_global_batch(count):
    s = batches.Sampler(num_rows=37, global_batch_size=8, seed=0)
    for step in (0, 4, 11):
        shards = [s.indices(step, i, count) for i in range(count)]
        np.testing.assert_array_equal(np.concatenate(shards), s.indices(step))


def test_sampler_bad_input():
    with pytest.raises(ConfigError, match="no rows"):
        batches.Sampler(0, 4, 0)
    with pytest.raises(ConfigError, match="not divisible by process_count=3"):
        batches.Sampler(10, 4, 0).indices(0, 0, 3)


def test_check_seq_len():
    assert batches.check_seq_len(128, 128) == 128
    with pytest.raises(ConfigError, match="seq_len=256 exceeds the model's 128 positions"):
        batches.check_seq_len(256, 128)
    with pytest.raises(ConfigError, match="must be >= 2"):
        batches.check_seq_len(1, 128)


def test_unknown_packing():
    _, offsets = _store([4])
    with pytest.raises(ConfigError, match="full_chunks, pad_last, concat"):
        batches.pack(offsets, "greedy", "decoder", 8)
