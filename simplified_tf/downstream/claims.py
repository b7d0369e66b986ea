"""Verdicts on the paper's downstream claims (He & Hofmann 2024, Table 1), computed from a table.

Table 1 puts every block within about a point of Pre-LN on the GLUE average (78.9 ± .7; parallel
78.5, v_skipinit 78.0, sas 78.4, sas_p 78.3) and reports NaNs when fine-tuning sas_p_nonorm. Here
each block's suite average is compared with pre_ln's seed by seed (fine-tuning seed k draws the
same head initialisation and data order for every block), by the rule of the reproduction
(`simplified_tf.repro.stats`): level when the paired 95% t-interval contains 0.
"""

from __future__ import annotations

import math

from simplified_tf.repro import stats

PAPER_AVERAGE = {
    "pre_ln": "78.9 ± .7",
    "parallel": "78.5 ± .6",
    "v_skipinit": "78.0 ± .3",
    "sas": "78.4 ± .8",
    "sas_p": "78.3 ± .4",
    "sas_p_nonorm": "NaN",
}


def claims(rows: dict[str, dict], reference: str = "pre_ln") -> list[dict]:
    """One claim per block: level with `reference` on the average, or (sas_p_nonorm) NaNs."""
    out = []
    base = rows.get(reference)
    for block, row in rows.items():
        if block == reference or base is None:
            continue
        values = row["average"]["values"]
        if block == "sas_p_nonorm":
            nans = sum(not math.isfinite(v) for v in values)
            out.append(
                dict(
                    claim="sas_p_nonorm gives NaNs in fine-tuning (Table 1)",
                    paper="NaN",
                    ours=f"{nans} of {len(values)} seeds NaN",
                    verdict="reproduced" if nans else "contradicted",
                )
            )
            continue
        # Scores: higher is better, so compare negated values (the rule's "better" = lower).
        p = stats.paired([-v for v in values], [-v for v in base["average"]["values"]])
        sign = {"worse": "lower", "better": "higher"}.get(p["relation"], p["relation"])
        half = "n/a" if not math.isfinite(p["halfwidth"]) else f"{p['halfwidth']:.1f}"
        out.append(
            dict(
                claim=f"{block} level with {reference} on the suite average (Table 1)",
                paper=f"{PAPER_AVERAGE.get(block, '?')} vs {PAPER_AVERAGE[reference]}",
                ours=f"{-p['mean']:+.1f} ± {half} ({sign})",
                verdict=stats.verdict("level", p["relation"]),
            )
        )
    return out


def markdown(claim_rows: list[dict]) -> str:
    lines = [
        "| claim (paper) | paper (GLUE average) | ours: paired difference of the suite average "
        "(95% CI) | verdict |",
        "|---|---|---|---|",
    ]
    for c in claim_rows:
        lines.append(f"| {c['claim']} | {c['paper']} | {c['ours']} | **{c['verdict']}** |")
    return "\n".join(lines)
