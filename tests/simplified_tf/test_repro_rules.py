"""The reproduction's pure rules: LR grid and its widening, the verdict rule on synthetic numbers,
run-set enumeration and run identities."""

import math

import pytest

from simplified_tf.repro import stats, tuning
from simplified_tf.repro.experiment import Group, plan
from simplified_tf.repro.figures import FIGURES
from simplified_tf.repro.protocol import QUICK
from simplified_tf.repro.runner import planned_runs
from simplified_tf.repro.runs import Arm, RunSpec


def test_initial_grid_is_a_factor_two_ladder_around_the_default():
    assert tuning.initial_grid(1e-3) == [5e-4, 1e-3, 2e-3, 4e-3]
    assert tuning.initial_grid(3e-4) == [1.25e-4, 2.5e-4, 5e-4, 1e-3]  # 3e-4 -> nearest rung 2.5e-4
    assert tuning.initial_grid(1e-3, 5) == [2.5e-4, 5e-4, 1e-3, 2e-3, 4e-3]
    with pytest.raises(ValueError, match="num_points"):
        tuning.initial_grid(1e-3, 2)


def test_widen_adds_the_rung_beyond_the_best_edge():
    grid = [5e-4, 1e-3, 2e-3, 4e-3]
    assert tuning.widen(grid, [5.0, 4.0, 4.5, 4.9]) is None  # interior
    assert tuning.widen(grid, [4.0, 4.2, 4.5, 4.9]) == [2.5e-4] + grid
    assert tuning.widen(grid, [5.0, 4.9, 4.5, 4.0]) == grid + [8e-3]
    assert tuning.widen(grid, [math.inf] * 4) == [2.5e-4] + grid  # all diverged: go lower
    assert tuning.widen(grid, [4.0, math.nan, 4.5, 4.0]) == [2.5e-4] + grid  # tie -> smaller LR


def test_tune_widens_until_interior_and_reports_it():
    calls = []

    def loss_at(lr):  # a parabola in log2(lr) with its minimum at 1.6e-2
        calls.append(lr)
        return (math.log2(lr / 1.6e-2)) ** 2

    result = tuning.tune(1e-3, loss_at)
    assert result["best_lr"] == pytest.approx(1.6e-2)
    assert result["interior"] and result["widened"] == 3
    assert result["grid"] == [5e-4, 1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2, 3.2e-2]
    # The driver asks for every grid point of every round; the store makes repeats free.
    assert set(calls) == set(result["grid"])


def test_tune_gives_up_after_max_widen_and_says_not_interior():
    result = tuning.tune(1e-3, lambda lr: -lr, max_widen=1)  # larger is always better
    assert not result["interior"] and result["widened"] == 1 and result["best_lr"] == 8e-3


def test_paired_relation_and_t_interval():
    # Differences 0.10, 0.12, 0.11: mean 0.11, std 0.01, half-width 4.303 * 0.01 / sqrt(3).
    p = stats.paired([1.10, 1.22, 1.31], [1.00, 1.10, 1.20])
    assert p["mean"] == pytest.approx(0.11) and p["std"] == pytest.approx(0.01)
    assert p["halfwidth"] == pytest.approx(4.302653 * 0.01 / math.sqrt(3), rel=1e-5)
    assert p["relation"] == "worse"
    assert stats.paired([0.9, 1.0, 1.1], [1.0, 1.1, 1.2])["relation"] == "better"
    # Same mean shift but noisy: the interval covers 0.
    assert stats.paired([1.3, 0.9, 1.2], [1.0, 1.1, 1.0])["relation"] == "level"
    assert stats.paired([1.0], [0.5])["relation"] == "unknown"
    assert stats.paired([math.inf, 1.0], [1.0, 1.0])["relation"] == "worse"


@pytest.mark.parametrize(
    "expected, relation, verdict",
    [
        ("level", "level", "reproduced"),
        ("level", "better", "contradicted"),
        ("not_worse", "better", "reproduced"),
        ("not_worse", "worse", "contradicted"),
        ("not_better", "better", "contradicted"),
        ("not_better", "worse", "reproduced"),
        ("worse", "worse", "reproduced"),
        ("worse", "level", "inconclusive"),
        ("worse", "better", "contradicted"),
        ("better", "unknown", "inconclusive"),
    ],
)
def test_verdict_rule(expected, relation, verdict):
    assert stats.verdict(expected, relation) == verdict


def test_verdict_rejects_unknown_words():
    with pytest.raises(ValueError, match="valid"):
        stats.verdict("same", "level")


def test_plan_enumerates_grid_then_extra_seeds():
    arms = (Arm("a", "pre_ln", size="tiny"), Arm("b", "v_skipinit", size="tiny"))
    rows = plan(Group("g", arms, steps=10, seeds=(0, 1, 2)))
    assert [(r["arm"], r["role"], r["lr"], r["seed"]) for r in rows[:6]] == [
        ("a", "tune", 5e-4, 0), ("a", "tune", 1e-3, 0), ("a", "tune", 2e-3, 0),
        ("a", "tune", 4e-3, 0), ("a", "seed", "best", 1), ("a", "seed", "best", 2),
    ]  # fmt: skip
    assert rows[6]["lr"] == 1.25e-4  # v_skipinit's grid sits around its lower recipe LR
    # A longer final budget than the tuning budget: every seed is a new run.
    longer = plan(Group("g", arms[:1], steps=30, seeds=(0, 1), tune_steps=10))
    assert [(r["role"], r["seed"], r["steps"]) for r in longer[4:]] == [
        ("seed", 0, 30),
        ("seed", 1, 30),
    ]


def test_every_quick_figure_declares_its_runs():
    counts = {name: len(planned_runs(fig, QUICK)) for name, fig in FIGURES.items()}
    assert counts["parity"] == 6 * (4 + 2)
    assert counts["speed"] == 0
    assert all(n > 0 for name, n in counts.items() if name != "speed")


def test_run_ids_are_stable_and_change_with_the_config():
    arm = Arm("sas_p", "sas_p", size="tiny")
    a = RunSpec(arm, 1e-3, 0, 10, 5)
    assert a.run_id == RunSpec(arm, 1e-3, 0, 10, 5).run_id
    assert a.run_id.startswith("decoder-tiny-sas_p-lr0.001-s0-n10-")
    others = {
        RunSpec(arm, 2e-3, 0, 10, 5).run_id,
        RunSpec(arm, 1e-3, 1, 10, 5).run_id,
        RunSpec(arm, 1e-3, 0, 10, 5, (("eval_batches", 2),)).run_id,
        RunSpec(
            Arm("sas_p", "sas_p", size="tiny", model=(("beta_ff", 0.2),)), 1e-3, 0, 10, 5
        ).run_id,
    }
    assert a.run_id not in others and len(others) == 4
    config = a.config()
    assert config.optimizer.lr == 1e-3 and config.seed == 0 and config.num_steps == 10
    assert config.eval_every == 5 and config.model.block == "sas_p"
