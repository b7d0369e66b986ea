"""What the figures share: the context they run in, block groups, measured step times, equal
wall-clock comparisons and the standard comparison section (tuning table, arm table, curves)."""

from __future__ import annotations

import dataclasses
import math
import os

import numpy as np

from simplified_tf.params import count_params
from simplified_tf.repro import plots, report, stats, timing
from simplified_tf.repro.experiment import ArmOutcome, Group
from simplified_tf.repro.protocol import Protocol
from simplified_tf.repro.runs import Arm, RunStore


@dataclasses.dataclass
class Context:
    protocol: Protocol
    store: RunStore
    out_dir: str  # this figure's output directory
    retime: bool = False  # re-measure step times even if a cached measurement matches

    def path(self, name: str) -> str:
        os.makedirs(self.out_dir, exist_ok=True)
        return os.path.join(self.out_dir, name)


def block_group(
    key: str,
    blocks,
    p: Protocol,
    *,
    kind: str = "decoder",
    steps: int | None = None,
    tune_steps: int = 0,
    data: tuple = (),
    model: tuple = (),
    informed_lr: bool = True,
) -> Group:
    """A group with one arm per block; `informed_lr` starts decoder grids at the protocol's
    `decoder_lr_centres` (the parity figure keeps the recipe's LRs)."""
    arms = tuple(
        Arm(b, b, kind, p.size, model, lr=p.lr_centre(kind, b) if informed_lr else 0.0)
        for b in blocks
    )
    return Group(
        key, arms, steps or p.steps, p.seeds, tune_steps, p.eval_every, p.data + tuple(data),
        p.grid_points,
    )  # fmt: skip


def params_of(group: Group, arm: Arm) -> int:
    spec = group.spec(arm, arm.default_lr, group.seeds[0], group.steps)
    return int(count_params(spec.config().model)["total"])


def step_seconds(ctx: Context, group: Group, outcomes: dict[str, ArmOutcome]) -> dict:
    """Interleaved timing of every arm's train step (cached in the figure's directory)."""
    specs = {
        name: group.spec(o.arm, o.lr, group.seeds[0], group.steps) for name, o in outcomes.items()
    }
    p = ctx.protocol
    return timing.cached(
        ctx.path(f"timing_{group.key}.json"),
        specs,
        refresh=ctx.retime,
        rounds=p.timing_rounds,
        steps=p.timing_steps,
    )


def loss_at_step(curve: dict, step: float) -> float:
    """Eval loss at a (fractional) step, linearly interpolated between evaluations."""
    xs = np.asarray(curve["step"], float)
    ys = np.asarray([float(v) for v in curve["loss"]], float)
    if not len(xs) or not np.all(np.isfinite(ys)):
        return math.inf
    return float(np.interp(step, xs, ys))


def equal_time(
    outcomes: dict[str, ArmOutcome], name: str, baseline: str, seconds: dict[str, float]
) -> dict:
    """Paired difference, seed by seed, of the two arms' eval losses at the same wall-clock time:
    the shorter of the two runs' durations (measured step time x steps)."""
    diffs_a, diffs_b = [], []
    for ra, rb in zip(outcomes[name].results, outcomes[baseline].results, strict=True):
        ta, tb = seconds[name], seconds[baseline]
        tau = min(ta * ra["steps"], tb * rb["steps"])
        diffs_a.append(loss_at_step(ra["curve"], tau / ta))
        diffs_b.append(loss_at_step(rb["curve"], tau / tb))
    return stats.paired(diffs_a, diffs_b)


def comparison_section(
    ctx: Context,
    group: Group,
    outcomes: dict[str, ArmOutcome],
    *,
    baseline: str,
    title: str,
    stem: str,
    timed: dict | None = None,
) -> tuple[str, dict]:
    """Markdown (tuning table, arm table, curves and LR-sweep PNGs) and JSON of one group."""
    extra = {}
    base_params = params_of(group, group.arm(baseline)) if baseline in outcomes else None
    for name, o in outcomes.items():
        n = params_of(group, o.arm)
        extra[name] = {"params": f"{n:,}"}
        if base_params:
            extra[name]["params / " + baseline] = f"{n / base_params:.3f}"
    seconds = None
    if timed is not None:
        seconds = {k: v["step_s"] for k, v in timed["arms"].items()}
        base_s = seconds.get(baseline)
        for name in outcomes:
            extra[name]["step time (ms)"] = f"{1e3 * seconds[name]:.0f}"
            if base_s:
                extra[name][f"tokens/s / {baseline}"] = f"{base_s / seconds[name]:.3f}"
    curves_png = plots.curves(
        outcomes, ctx.path(f"{stem}_curves.png"), title=title, step_seconds=seconds
    )
    lr_png = plots.lr_sweeps(outcomes, ctx.path(f"{stem}_lr.png"), title=f"{title}: LR tuning")
    seed0 = group.seeds[0]
    lines = [
        f"LR tuning ({group.tuning_steps} steps, seed {seed0}):",
        "",
        report.tuning_table(outcomes, group.tuning_steps, seed0),
        "",
        f"At each arm's chosen LR, {len(group.seeds)} seeds x {group.steps} steps "
        f"(final eval loss; the paired difference is per seed, same init key and data order):",
        "",
        report.arm_table(outcomes, baseline, extra=extra),
        "",
        f"![]({os.path.basename(curves_png)})",
        "",
        f"![]({os.path.basename(lr_png)})",
    ]
    data = dict(outcomes=report.outcome_json(outcomes), timing=timed, params=extra)
    return "\n".join(lines), data


def timed_comparison(
    ctx: Context, group: Group, outcomes: dict[str, ArmOutcome], *, title: str, stem: str
) -> tuple[str, dict, dict[str, float]]:
    """`comparison_section` against pre_ln with every arm's measured step time: (markdown, JSON,
    seconds per step by arm) for the wall-clock claims."""
    timed = step_seconds(ctx, group, outcomes)
    seconds = {k: v["step_s"] for k, v in timed["arms"].items()}
    section, data = comparison_section(
        ctx, group, outcomes, baseline="pre_ln", title=title, stem=stem, timed=timed
    )
    return section, data, seconds


def paired_claim(
    outcomes: dict[str, ArmOutcome],
    name: str,
    baseline: str,
    text: str,
    paper: str,
    expected: str,
    suffix: str = "",
) -> dict:
    """The claim row comparing arm `name` with `baseline` by final eval loss, paired seed by seed
    (`suffix` follows the difference), with both arms' means as its detail."""
    d = stats.paired(outcomes[name].finals, outcomes[baseline].finals)
    return report.claim(
        text,
        paper,
        stats.fmt_diff(d) + suffix,
        expected,
        d["relation"],
        detail=report.means_text(outcomes, name, baseline),
    )


def equal_time_claim(
    outcomes: dict[str, ArmOutcome],
    name: str,
    baseline: str,
    seconds: dict[str, float],
    text: str,
    paper: str,
    expected: str,
) -> dict:
    """The claim row comparing arm `name` with `baseline` at equal wall-clock (`equal_time`)."""
    d = equal_time(outcomes, name, baseline, seconds)
    return report.claim(text, paper, stats.fmt_diff(d) + " at equal time", expected, d["relation"])
