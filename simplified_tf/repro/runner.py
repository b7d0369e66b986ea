"""Runs one figure end to end: its groups' runs (trained only where missing), its report, and
summary.md / summary.json with the provenance every number needs (command, commit, CPU, load,
wall time, runs trained vs reused)."""

from __future__ import annotations

import os
import time

from simplified_tf.repro import provenance, report
from simplified_tf.repro.experiment import describe, plan, run_group
from simplified_tf.repro.figures.common import Context
from simplified_tf.repro.protocol import Protocol
from simplified_tf.repro.runs import RunStore

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def planned_runs(figure, protocol: Protocol) -> list[dict]:
    """The figure's declared runs before tuning (see `experiment.plan`)."""
    rows = []
    for group in figure.groups(protocol):
        rows += plan(group)
    return rows


def run_figure(
    figure, protocol: Protocol, out_root: str, *, command: str = "", retime: bool = False
) -> dict:
    """Trains what is missing, writes OUT/<figure>/summary.{md,json} and PNGs; returns the claims
    and output paths."""
    store = RunStore(os.path.join(out_root, "runs"))
    ctx = Context(protocol, store, os.path.join(out_root, figure.NAME), retime)
    load_before = os.getloadavg()
    start = time.perf_counter()
    outcomes = {g.key: run_group(store, g) for g in figure.groups(protocol)}
    body, data, claims = figure.report_figure(ctx, outcomes)
    wall = time.perf_counter() - start
    load_after = os.getloadavg()

    used = sorted(set(store.touched))
    trained = set(store.trained)
    seconds = [store.train_seconds(run_id) for run_id in used]
    run_minutes = None if None in seconds else sum(seconds) / 60  # None: some ran before timing
    prov = dict(
        command=command,
        commit=provenance.git_commit(REPO),
        machine=provenance.machine(),
        protocol=protocol.name,
        wall_seconds=round(wall, 1),
        loadavg_before=[round(x, 2) for x in load_before],
        loadavg_after=[round(x, 2) for x in load_after],
        runs_trained_now=len(trained),
        runs_reused=len(set(used) - trained),
        run_minutes=None if run_minutes is None else round(run_minutes, 1),
    )
    m = prov["machine"]
    header = [
        f"# {figure.TITLE}",
        "",
        f"Command: `{command}`" if command else "",
        "",
        f"Protocol `{protocol.name}`; computed at commit `{prov['commit']}` on {m['cpu']} "
        f"({m['cores']} cores), float32. This invocation: {wall / 60:.1f} min wall time, "
        f"{prov['runs_trained_now']} runs trained, {prov['runs_reused']} reused from earlier "
        f"invocations; load average {prov['loadavg_before'][0]:.2f} before, "
        f"{prov['loadavg_after'][0]:.2f} after. {_run_minutes_text(len(used), run_minutes)}",
        "",
        *[f"- {describe(g)}" for g in figure.groups(protocol)],
        "",
        "Verdicts are computed from the numbers below by the rule in "
        "`simplified_tf/repro/stats.py`: a paired difference (same seed = same init key and data "
        "order) is outside seed noise when its two-sided 95% t-interval excludes 0.",
        "",
        report.claims_table(claims),
        "",
        _interior_line(outcomes),
        "",
        body,
    ]
    md, js = report.write(
        ctx.out_dir,
        "\n".join(header),
        dict(provenance=prov, claims=claims, used_runs=used, **data),
    )
    return dict(claims=claims, summary_md=md, summary_json=js, out_dir=ctx.out_dir, wall=wall)


def _interior_line(outcomes) -> str:
    """Whether every chosen LR is interior to its final grid (else the verdicts carry a caveat)."""
    edge = [f"{key}/{name}" for key, group in outcomes.items() for name, o in group.items()
            if not o.tuning["interior"]]  # fmt: skip
    if not outcomes:
        return ""
    if not edge:
        return "Every chosen learning rate is interior to its final grid."
    return (
        "**Not every chosen learning rate is interior to its grid** (the grid stopped widening): "
        + ", ".join(edge)
        + ". Verdicts involving these arms compare them at the best LR tried, not a bracketed "
        "optimum."
    )


def _run_minutes_text(runs: int, minutes: float | None) -> str:
    if minutes is None:
        return f"The {runs} runs this figure uses include some that did not record their times."
    return (
        f"The {runs} runs this figure uses took {minutes:.1f} min of training in all (their own "
        "measured times, whenever they ran)."
    )
