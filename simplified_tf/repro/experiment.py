"""Groups of arms compared fairly: each arm's LR tuned on its own grid, then several seeds at it.

A `Group` declares the runs: every arm is tuned on seed `seeds[0]` over a log grid of learning rates
(`tuning.tune`, widened until the best point is interior) at `tune_steps`, then trained at its best
LR for every seed at `steps`. When `tune_steps == steps` the tuning run at the best LR doubles as the
first seed's run, so a group costs (grid points + seeds - 1) runs per arm. Every arm sees the same
seeds, hence the same initialisation keys and data order, which makes per-seed differences paired.
"""

from __future__ import annotations

import dataclasses

from simplified_tf.repro import stats, tuning
from simplified_tf.repro.runs import Arm, RunSpec, RunStore, final_loss


@dataclasses.dataclass(frozen=True)
class Group:
    key: str
    arms: tuple[Arm, ...]
    steps: int
    seeds: tuple[int, ...] = (0, 1, 2)
    tune_steps: int = 0  # 0: the same budget as `steps`
    eval_every: int = 25
    data: tuple[tuple[str, object], ...] = ()
    grid_points: int = 4
    max_widen: int = 4

    @property
    def tuning_steps(self) -> int:
        return self.tune_steps or self.steps

    def arm(self, name: str) -> Arm:
        for a in self.arms:
            if a.name == name:
                return a
        raise KeyError(
            f"group {self.key!r} has no arm {name!r}; arms: {[a.name for a in self.arms]}"
        )

    def spec(self, arm: Arm, lr: float, seed: int, steps: int) -> RunSpec:
        return RunSpec(arm, lr, seed, steps, self.eval_every, self.data)

    def tuning_spec(self, arm: Arm, lr: float) -> RunSpec:
        return self.spec(arm, lr, self.seeds[0], self.tuning_steps)


@dataclasses.dataclass
class ArmOutcome:
    arm: Arm
    tuning: dict  # tuning.tune's result: grid, losses, best_lr, interior, widened
    results: list[dict]  # one run result per seed, in `Group.seeds` order

    @property
    def lr(self) -> float:
        return self.tuning["best_lr"]

    @property
    def finals(self) -> list[float]:
        return [final_loss(r) for r in self.results]

    @property
    def mean_std(self) -> tuple[float, float]:
        return stats.mean_std(self.finals)


def describe(group: Group) -> str:
    """One line on what a group trains: model, arms, seeds, steps and tokens."""
    arm = group.arms[0]
    config = group.spec(arm, arm.default_lr, group.seeds[0], group.steps).config()
    m = config.model
    tokens = int(config.batch_size) * int(config.data.seq_len)
    tune = "" if group.tuning_steps == group.steps else f" (LR tuned at {group.tuning_steps} steps)"
    return (
        f"`{group.key}`: {arm.kind} size={arm.size} ({m.num_layers} layers, "
        f"d={m.width}, vocab {m.vocab_size}), {len(group.arms)} arms x {len(group.seeds)} seeds x "
        f"{group.steps} steps of {config.batch_size} x {config.data.seq_len} tokens "
        f"({group.steps * tokens / 1e6:.2f}M tokens per run){tune}."
    )


def plan(group: Group) -> list[dict]:
    """The group's runs before any tuning result is known: the initial grids, then the seed runs
    (at "best", the LR tuning will pick). Widening may add grid points later."""
    rows = []
    for arm in group.arms:
        for lr in tuning.initial_grid(arm.default_lr, group.grid_points):
            rows.append(
                dict(group=group.key, arm=arm.name, role="tune", lr=lr, seed=group.seeds[0],
                     steps=group.tuning_steps)
            )  # fmt: skip
        reuse = group.tuning_steps == group.steps
        for seed in group.seeds[1:] if reuse else group.seeds:
            rows.append(
                dict(group=group.key, arm=arm.name, role="seed", lr="best", seed=seed,
                     steps=group.steps)
            )  # fmt: skip
    return rows


def run_group(store: RunStore, group: Group) -> dict[str, ArmOutcome]:
    """Tunes and seeds every arm (training only what the store lacks); outcomes by arm name."""
    out = {}
    for arm in group.arms:
        result = tuning.tune(
            arm.default_lr,
            lambda lr, arm=arm: final_loss(store.ensure(group.tuning_spec(arm, lr))),
            num_points=group.grid_points,
            max_widen=group.max_widen,
        )
        runs = [
            store.ensure(group.spec(arm, result["best_lr"], s, group.steps)) for s in group.seeds
        ]
        out[arm.name] = ArmOutcome(arm, result, runs)
    return out


def paired_to(outcomes: dict[str, ArmOutcome], name: str, baseline: str) -> dict:
    """Paired difference of `name`'s final losses to `baseline`'s, seed by seed."""
    return stats.paired(outcomes[name].finals, outcomes[baseline].finals)
