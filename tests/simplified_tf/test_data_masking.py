"""MLM masking: selection rate, the 80/10/10 rule, specials and padding never masked, determinism."""

import numpy as np
import pytest

from simplified_tf.data import masking
from trainloop.config_util import ConfigError

PAD, CLS, SEP, MASK = 0, 1, 2, 3
SPECIALS = (PAD, CLS, SEP, MASK)
VOCAB = 50


def _batch(b=64, t=128, seed=0):
    rng = np.random.default_rng(seed)
    tokens = rng.integers(4, VOCAB, size=(b, t))
    tokens[:, 0], tokens[:, t // 2] = CLS, SEP
    valid = np.ones((b, t), bool)
    valid[: b // 2, -20:] = False
    tokens[~valid] = PAD
    return tokens, valid


def _mask(tokens, valid, spec, seed=0, step=0):
    noise = masking.mask_noise(seed, step, *tokens.shape)
    return masking.apply_mlm(
        tokens,
        valid,
        noise,
        spec,
        mask_id=MASK,
        special_ids=SPECIALS,
        random_ids=masking.ordinary_ids(VOCAB, SPECIALS),
    )


def test_rates_and_80_10_10_rule():
    tokens, valid = _batch()
    out = _mask(tokens, valid, masking.MaskSpec(0.25, 0.8, 0.1))
    sel = out["weights"] == 1
    candidates = valid & ~np.isin(tokens, SPECIALS)
    n_sel = sel.sum()
    # Binomial(n, 0.25): sd ~ 0.004 of n on ~7400 candidates; allow ~5 sd
    assert abs(n_sel / candidates.sum() - 0.25) < 0.02
    masked = sel & (out["inputs"] == MASK)
    kept = sel & (out["inputs"] == tokens)
    replaced = sel & ~masked & ~kept
    assert abs(masked.sum() / n_sel - 0.8) < 0.03
    # random replacements can hit the original token by chance (1/46), counted as kept
    assert abs((replaced.sum() + kept.sum()) / n_sel - 0.2) < 0.03
    assert abs(kept.sum() / n_sel - 0.1 - 0.1 / 46) < 0.03
    assert not np.isin(out["inputs"][replaced], SPECIALS).any()
    np.testing.assert_array_equal(out["targets"], tokens)
    np.testing.assert_array_equal(out["inputs"][~sel], tokens[~sel])  # unselected untouched


def test_specials_and_padding_never_masked():
    tokens, valid = _batch()
    out = _mask(tokens, valid, masking.MaskSpec(0.9, 0.8, 0.1))
    sel = out["weights"] == 1
    assert not sel[np.isin(tokens, SPECIALS)].any()
    assert not sel[~valid].any()
    np.testing.assert_array_equal(out["valid"], valid)


def test_deterministic_per_seed_and_step():
    tokens, valid = _batch()
    spec = masking.MaskSpec()
    a, b = _mask(tokens, valid, spec, step=5), _mask(tokens, valid, spec, step=5)
    np.testing.assert_array_equal(a["inputs"], b["inputs"])
    c = _mask(tokens, valid, spec, step=6)
    d = _mask(tokens, valid, spec, seed=1, step=5)
    assert not np.array_equal(a["weights"], c["weights"])
    assert not np.array_equal(a["weights"], d["weights"])


def test_configurable_rule():
    tokens, valid = _batch()
    out = _mask(tokens, valid, masking.MaskSpec(0.5, 1.0, 0.0))
    sel = out["weights"] == 1
    assert (out["inputs"][sel] == MASK).all()


@pytest.mark.parametrize(
    "args,match",
    [((0.0, 0.8, 0.1), "mask_prob"), ((0.2, 0.8, 0.3), "must be <= 1"), ((0.2, -1, 0), "in \\[0")],
)
def test_bad_spec(args, match):
    with pytest.raises(ConfigError, match=match):
        masking.MaskSpec(*args)


def test_mask_noise_rows_equal_the_same_rows_of_the_whole_batch():
    whole = masking.mask_noise(5, 9, 12, 7)
    assert whole.shape == (3, 12, 7) and 0.0 <= whole.min() and whole.max() < 1.0
    for rows in (slice(0, 3), slice(1, 4), slice(5, 12), slice(11, 12)):  # odd offsets too
        np.testing.assert_array_equal(masking.mask_noise(5, 9, 12, 7, rows=rows), whole[:, rows])
    assert not np.array_equal(masking.mask_noise(5, 10, 12, 7), whole)  # per step
