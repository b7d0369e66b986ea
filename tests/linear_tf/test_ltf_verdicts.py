"""The verdict rule, the learning-rate widening rule and the per-seed statistics, on synthetic numbers."""

import numpy as np
import pytest

from linear_tf.figures import common as C
from linear_tf.figures import tuning
from linear_tf.figures import verdicts as V
from linear_tf.figures.depth import slope_over_depth, spikes, trend_claims
from linear_tf.figures.l0l1 import order_one


@pytest.mark.parametrize(
    "values,label",
    [
        ([0.4, 0.5, 0.6, 0.5, 0.45, 0.55], "reproduced"),  # every seed, mean − std > 0
        ([2.0, 0.1, 0.1, 0.1, 0.1, 0.1], "weak"),  # every seed, but mean − std < 0
        (np.log([2.43, 0.51]), "weak"),  # a ratio > 1 on the mean of 2 seeds, 1 of 2 seeds
        ([-0.3, -0.2, 0.1, -0.5], "contradicted"),
        ([0.1, 0.1, 0.1, -5.0], "mixed"),  # 3 of 4 seeds hold, one outlier sinks the mean
        ([0.2], "reproduced"),  # a single value above the threshold
        ([-0.2], "contradicted"),
    ],
)
def test_verdict_labels(values, label):
    assert V.judge(values, "claim", "x").label == label


def test_verdict_counts_fraction_threshold_and_ignores_nan():
    v = V.judge([0.7, 0.9, np.nan, 0.2], "frac", "fraction", threshold=0.5)
    assert v.n == 3 and v.fraction == pytest.approx(2 / 3) and v.label == "weak"
    assert v.mean == pytest.approx(0.6) and v.std == pytest.approx(np.std([0.7, 0.9, 0.2], ddof=1))
    assert "2/3 seeds; 1 left out, undefined)" in v.summary() and "WEAK" in v.summary()
    assert v.undefined == 1 and "left out" not in V.judge([0.7], "c", "x").summary()
    assert V.judge([np.nan], "c", "x").label == "contradicted"


def test_log_ratio_counts_divergence_against_the_diverged_run():
    r = V.log_ratio([np.inf, 1.0, np.nan, 2.0], [1.0, np.inf, np.nan, 1.0])
    assert r[0] == np.inf and r[1] == -np.inf and np.isnan(r[2])
    assert r[3] == pytest.approx(np.log(2.0))
    # SGDM diverged on both seeds: Adam below SGDM holds on every seed.
    assert V.judge(V.log_ratio([np.inf, np.inf], [0.1, 0.2]), "c", "x").fraction == 1.0


def test_weakest_label_of_a_row():
    vs = [V.judge([1.0, 1.0], "a", "x"), V.judge([-1.0, 0.1, -2.0], "b", "x")]
    assert V.weakest(vs) == "contradicted"
    assert V.weakest(vs[:1]) == "reproduced"


def test_bootstrap_resamples_each_sample_independently():
    a, b = np.arange(100.0), np.arange(100.0) + 1000
    out = V.bootstrap(lambda x, y: y.mean() - x.mean(), [a, b], resamples=50)
    assert out.shape == (50,) and np.all(out > 900)
    assert np.std(out) > 0


@pytest.mark.parametrize(
    "lrs,scores,expected",
    [
        ([0.01, 1.0, 0.1], [2.0, 0.5, 1.0], [10.0]),  # best at the top edge: one step up
        ([0.01, 0.1, 1.0], [0.5, 1.0, 2.0], [0.001]),  # bottom edge: one step down
        ([0.01, 0.1, 1.0], [1.0, 0.5, 2.0], []),  # interior
        ([0.01, 0.1, 1.0], [1.0, np.inf, np.inf], [0.001]),  # diverged above counts as worse
        ([0.01, 0.1], [np.nan, np.inf], [0.001]),  # everything diverged: go down
    ],
)
def test_widen_rule(lrs, scores, expected):
    np.testing.assert_allclose(tuning.widen(lrs, scores), expected, rtol=1e-9)


def test_widen_rule_keeps_the_grid_spacing_and_adds_n_points():
    assert tuning.widen([1e-3, 1e-2], [2.0, 1.0], n_new=2) == pytest.approx([0.1, 1.0])
    assert tuning.is_interior([3.0, 1.0, 2.0]) and not tuning.is_interior([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="at least one"):
        tuning.widen([], [])


def test_grid_record_best_and_table_in_lr_order():
    rec = tuning.GridRecord()
    rec.add([0.1, 0.01], [0.5, 0.9], "first")
    rec.add([1.0], [0.7], "second")
    assert rec.table() == [(0.01, 0.9), (0.1, 0.5), (1.0, 0.7)]
    assert rec.best() == (0.1, ("first", 0)) and rec.interior()


def test_final_loss_and_below_fraction():
    ev = np.array([[5.0, 1.0, 0.5, 0.3], [5.0, 1.0, np.inf, 0.2]])
    np.testing.assert_allclose(C.final_loss(ev, frac=0.5), [0.4, np.inf])
    a = np.array([[1.0, 0.1, 0.1, 0.5]])
    b = np.array([[1.0, 0.2, 0.2, 0.2]])
    np.testing.assert_allclose(C.below_fraction(a, b, [0, 300, 350, 400]), [2 / 3])
    assert np.isnan(C.below_fraction(a, b, [0, 1, 2, 3])).all()


def test_spikes_and_depth_trends():
    loss = np.full((2, 200), 0.1)
    loss[0, 120] = 5.0  # one spike
    loss[1, 150:] = np.nan  # divergence: every non-finite step counts
    np.testing.assert_array_equal(spikes(loss), [1, 50])
    depths = (2, 4, 6, 8)
    gap = np.array([[0.5, 0.4], [1.0, 0.5], [1.5, 0.6], [2.0, 0.3]])  # seed 0 grows, seed 1 flat
    np.testing.assert_allclose(slope_over_depth(depths, gap), [0.25, -0.01], atol=1e-12)
    final = {
        "sgdm": {L: np.array([1.0 / L, 1.0 / L]) for L in depths},
        "adam": {L: np.array([0.1 / L**2, 0.1 / L**2]) for L in depths},
    }
    labels = [v.label for v in trend_claims(depths, final)]
    assert labels == ["reproduced", "reproduced", "reproduced"]


def test_order_one_slope():
    np.testing.assert_array_equal(
        order_one([1.0, 0.6, 1.9, 0.4, 3.0, -1.0]) > 0, [1, 1, 1, 0, 0, 0]
    )
