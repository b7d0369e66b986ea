"""The downstream verdicts: paired by fine-tuning seed, higher scores are better, NaN counted."""

import math

from simplified_tf.downstream import claims


def _row(values):
    return {"average": {"values": values}}


def test_level_higher_lower_and_nan_verdicts():
    rows = {
        "pre_ln": _row([70.0, 72.0, 74.0]),
        "parallel": _row([70.5, 71.5, 74.2]),  # within noise: level
        "sas": _row([60.0, 62.1, 63.9]),  # 10 points lower every seed
        "sas_p": _row([80.0, 82.2, 83.9]),  # 10 points higher every seed
        "sas_p_nonorm": _row([math.nan, 71.0, 73.0]),
    }
    out = {c["claim"].split()[0]: c for c in claims.claims(rows)}
    assert out["parallel"]["verdict"] == "reproduced" and "(level)" in out["parallel"]["ours"]
    assert out["sas"]["verdict"] == "contradicted" and "(lower)" in out["sas"]["ours"]
    assert out["sas_p"]["verdict"] == "contradicted" and "(higher)" in out["sas_p"]["ours"]
    assert out["sas_p_nonorm"]["verdict"] == "reproduced"
    assert out["sas_p_nonorm"]["ours"] == "1 of 3 seeds NaN"
    rows["sas_p_nonorm"] = _row([70.0, 71.0, 73.0])
    out = {c["claim"].split()[0]: c for c in claims.claims(rows)}
    assert out["sas_p_nonorm"]["verdict"] == "contradicted"
    assert "| **contradicted** |" in claims.markdown(list(out.values()))
