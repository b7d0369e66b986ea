"""BERT masked-language-model corruption (the 80/10/10 rule), deterministic per (seed, step).

Each valid, non-special position is selected independently with probability `mask_prob`
(Crammed BERT: 0.25). A selected position is replaced by [MASK] with probability
`mask_token_prob`, by a uniformly drawn non-special token with probability `random_token_prob`,
and kept otherwise. Targets are the original tokens; weights are 1 exactly at selected positions.
Special tokens ([CLS], [SEP], [PAD], ...) and padding are never selected.

The noise of the global batch is one stream of numpy's default generator (PCG64) keyed by
(seed, step), laid out row by row, and each process draws only its own rows by jumping the
generator ahead to them (`PCG64.advance`, one draw per value), so masks do not depend on how the batch is sharded across processes and no host pays for
the others' rows.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from trainloop.config_util import ConfigError

_MASK_STREAM = 0x6D6C6D  # separates the masking noise from other uses of (seed, step)


@dataclasses.dataclass(frozen=True)
class MaskSpec:
    mask_prob: float = 0.25
    mask_token_prob: float = 0.8
    random_token_prob: float = 0.1

    def __post_init__(self):
        if not 0.0 < self.mask_prob < 1.0:
            raise ConfigError(f"data.mask_prob={self.mask_prob} must be in (0, 1).")
        for name in ("mask_token_prob", "random_token_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"data.{name}={getattr(self, name)} must be in [0, 1].")
        if self.mask_token_prob + self.random_token_prob > 1.0 + 1e-9:
            raise ConfigError(
                f"data.mask_token_prob + data.random_token_prob = "
                f"{self.mask_token_prob + self.random_token_prob} must be <= 1 (the rest of the "
                "selected tokens are kept unchanged)."
            )


def mask_noise(
    seed: int, step: int, batch_size: int, seq_len: int, rows: slice | None = None
) -> np.ndarray:
    """Uniform noise [3, R, T] (selection, action, random token) for `rows` (default: all B) of
    the global batch of `step`; any slice equals the same rows of the whole batch's noise."""
    rows = slice(0, batch_size) if rows is None else rows
    per_row = 3 * seq_len
    start, count = rows.start * per_row, (rows.stop - rows.start) * per_row
    bits = np.random.PCG64(np.random.SeedSequence([seed, _MASK_STREAM, step]))
    bits.advance(start)  # one 64-bit draw per float64
    u = np.random.Generator(bits).random(count)
    return u.reshape(rows.stop - rows.start, 3, seq_len).transpose(1, 0, 2)


def ordinary_ids(vocab_size: int, special_ids) -> np.ndarray:
    """All token ids except the special ones (the pool for random replacements)."""
    return np.setdiff1d(np.arange(vocab_size), np.asarray(special_ids))


def apply_mlm(
    tokens_BT: np.ndarray,
    valid_BT: np.ndarray,
    noise_3BT: np.ndarray,
    spec: MaskSpec,
    *,
    mask_id: int,
    special_ids,
    random_ids: np.ndarray,
) -> dict[str, np.ndarray]:
    """Corrupts `tokens_BT` for MLM; returns inputs, targets, weights and valid (all [B, T]).

    `random_ids` are the replacement candidates of the 10% rule (the non-special vocabulary,
    see `ordinary_ids`).
    """
    u_select, u_action, u_token = noise_3BT
    candidate = valid_BT & ~np.isin(tokens_BT, np.asarray(special_ids))
    selected = candidate & (u_select < spec.mask_prob)
    to_mask = selected & (u_action < spec.mask_token_prob)
    to_random = selected & ~to_mask & (u_action < spec.mask_token_prob + spec.random_token_prob)
    pick = np.minimum((u_token * len(random_ids)).astype(np.int64), len(random_ids) - 1)
    random_tokens = random_ids[pick]
    inputs = np.where(to_mask, mask_id, np.where(to_random, random_tokens, tokens_BT))
    return {
        "inputs": inputs.astype(np.int32),
        "targets": tokens_BT.astype(np.int32),
        "weights": selected.astype(np.float32),
        "valid": valid_BT.astype(bool),
    }
