"""Downstream metrics against hand-computed values, task scores and the GLUE average."""

import math

import numpy as np
import pytest

from simplified_tf.downstream import metrics, report
from simplified_tf.downstream.glue import GLUE_AVERAGE, GLUE_TASKS


def test_classification_metrics_match_hand_computed_values():
    pred = [1, 1, 0, 0, 1, 0]
    label = [1, 0, 0, 1, 1, 0]  # tp=2, fp=1, fn=1, tn=2
    assert metrics.accuracy(pred, label) == pytest.approx(4 / 6)
    assert metrics.f1(pred, label) == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
    # (tp*tn - fp*fn) / sqrt((tp+fp)(tp+fn)(tn+fp)(tn+fn)) = (4 - 1) / sqrt(3*3*3*3)
    assert metrics.mcc(pred, label) == pytest.approx(3 / 9)
    assert metrics.mcc(label, label) == pytest.approx(1.0)
    assert metrics.mcc([1 - x for x in label], label) == pytest.approx(-1.0)


def test_mcc_of_a_constant_predictor_is_zero_and_f1_without_positives_is_zero():
    label = [1, 0, 0, 1, 1]
    assert metrics.mcc([1] * 5, label) == 0.0
    assert metrics.mcc([0] * 5, label) == 0.0
    assert metrics.f1([0] * 5, [0] * 5) == 0.0
    assert metrics.accuracy([0] * 5, label) == pytest.approx(2 / 5)


def test_multiclass_mcc_matches_the_confusion_matrix_formula():
    pred = np.array([0, 1, 2, 2, 1, 0, 2])
    label = np.array([0, 1, 2, 1, 1, 2, 2])
    # c = 5 correct, s = 7; predicted counts p = (2, 2, 3), true counts t = (1, 3, 3)
    expected = (5 * 7 - (2 * 1 + 2 * 3 + 3 * 3)) / math.sqrt(
        (49 - (4 + 4 + 9)) * (49 - (1 + 9 + 9))
    )
    assert metrics.mcc(pred, label) == pytest.approx(expected)


def test_correlations_match_hand_computed_values():
    # Centred x = (-1.5, -.5, .5, 1.5), y = (-3, -1, 0, 4): sum xy = 11, sum x^2 = 5, sum y^2 = 26.
    assert metrics.pearson([1, 2, 3, 4], [2, 4, 5, 9]) == pytest.approx(11 / math.sqrt(5 * 26))
    # Ranks with a tie: x -> (1, 2.5, 2.5, 4), y -> (1, 3, 2, 4); centred sums 4.5 / 4.5 / 5.
    assert metrics.spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(4.5 / math.sqrt(4.5 * 5))
    assert metrics.spearman([1, 5, 2, 9], [10, 50, 20, 90]) == pytest.approx(1.0)
    assert metrics.pearson([3, 3, 3], [1, 2, 3]) == 0.0  # constant prediction


def test_non_finite_predictions_give_nan_metrics():
    out = metrics.compute(("pearson", "spearman"), [0.1, np.nan, 0.3], [1.0, 2.0, 3.0])
    assert all(math.isnan(v) for v in out.values())


def test_task_score_is_the_mean_of_its_metrics():
    assert metrics.score({"f1": 0.8, "accuracy": 0.7}) == pytest.approx(75.0)
    assert metrics.score({"mcc": 0.25}) == pytest.approx(25.0)


def _glue_runs(seed: int, offset: float) -> list[dict]:
    """One results dict per GLUE task, with known metrics (score = 50 + offset + i)."""
    runs = []
    for i, (name, task) in enumerate(GLUE_TASKS.items()):
        value = (50.0 + offset + i) / 100
        split_metrics = {s: dict.fromkeys(task.spec.metrics, value) for s in task.spec.eval_splits}
        if name == "mrpc":  # two different metrics: the score is their mean
            split_metrics = {"validation": {"f1": value + 0.1, "accuracy": value - 0.1}}
        scores = {task.spec.score_name(s): metrics.score(m) for s, m in split_metrics.items()}
        runs.append(dict(seed=seed, task=name, scores=scores, in_average=task.spec.in_average))
    return runs


def test_glue_average_is_the_mean_of_nine_scores_with_both_mnli_splits():
    runs = _glue_runs(0, 0.0) + _glue_runs(1, 2.0)
    row = report.summarize_row(runs, GLUE_AVERAGE)
    assert row["average_of"] == list(GLUE_AVERAGE) and not row["average_missing"]
    assert {"MNLI-m", "MNLI-mm", "WNLI"} <= set(row["columns"])
    for seed in (0, 1):
        scores = {k: v for r in runs if r["seed"] == seed for k, v in r["scores"].items()}
        assert scores["MRPC"] == pytest.approx(scores["CoLA"] + 2.0)  # (F1 + acc) / 2
        expected = np.mean([scores[n] for n in GLUE_AVERAGE])  # WNLI left out
        assert row["average"]["values"][seed] == pytest.approx(expected)
        assert row["average"]["values"][seed] != pytest.approx(np.mean(list(scores.values())))
    assert row["average"]["std"] == pytest.approx(np.std([0.0, 2.0], ddof=1))
    assert row["columns"]["RTE"]["mean"] == pytest.approx(np.mean([50 + 7, 52 + 7]))


def test_a_nan_run_shows_as_nan_and_keeps_the_finite_mean():
    runs = [
        dict(seed=s, task="t", scores={"T": v}, in_average=True)
        for s, v in enumerate([60.0, float("nan"), 70.0])
    ]
    row = report.summarize_row(runs)
    assert report.cell(row["columns"]["T"]) == "NaN (1/3)"
    assert row["columns"]["T"]["finite_mean"] == pytest.approx(65.0)
    assert report.cell(row["average"]) == "NaN (1/3)"
    ok = report.summarize_row([dict(r, scores={"T": 60.0 + r["seed"]}) for r in runs])
    assert report.cell(ok["columns"]["T"]) == "61.0 ± 1.0"
