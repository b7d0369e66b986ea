"""The figures of He & Hofmann (2024) that `scripts/reproduce_simplified_tf.py` reproduces.

Each module has NAME, TITLE, `groups(protocol) -> [Group]` (the declared runs) and
`report_figure(ctx, outcomes_by_group) -> (markdown, data, claims)`. The order is the order of
`--figure=all`: figures that share runs follow each other (longer reuses parity's tuning).
"""

from simplified_tf.repro.figures import (
    bert,
    depth,
    gains,
    longer,
    parity,
    prenorm_gap,
    reparam,
    speed,
)

FIGURES = {m.NAME: m for m in (speed, parity, prenorm_gap, longer, reparam, gains, depth, bert)}
