"""Markdown tables and the summary files every figure writes (summary.md, summary.json)."""

from __future__ import annotations

import json
import math
import os

from simplified_tf.repro import stats
from simplified_tf.repro.experiment import ArmOutcome
from simplified_tf.repro.runs import write_atomic


def lr_text(lr: float) -> str:
    return f"{lr:.3g}"


def loss_text(x: float, digits: int = 3) -> str:
    return f"{x:.{digits}f}" if math.isfinite(x) else "diverged"


def tuning_cell(outcome: ArmOutcome) -> str:
    """'5e-4: 5.31, **1e-3: 5.20**, 2e-3: 5.25, 4e-3: 5.40' (the chosen LR in bold)."""
    t = outcome.tuning
    cells = []
    for lr, loss in zip(t["grid"], t["losses"], strict=True):
        cell = f"{lr_text(lr)}: {loss_text(loss)}"
        cells.append(f"**{cell}**" if lr == t["best_lr"] else cell)
    return ", ".join(cells)


def arm_table(
    outcomes: dict[str, ArmOutcome], baseline: str | None, *, extra: dict[str, dict] | None = None
) -> str:
    """One row per arm: chosen LR (interior?), final eval loss mean ± std over seeds, per-seed
    values, and the paired difference to `baseline` with its 95% half-width and relation."""
    extra = extra or {}
    extra_cols = sorted({k for row in extra.values() for k in row})
    head = ["arm", "LR (interior)", "final eval loss, mean ± std", "per seed"]
    if baseline:
        head.append(f"paired diff. to {baseline} (95% CI)")
    head += extra_cols
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, o in outcomes.items():
        m, s = o.mean_std
        interior = "yes" if o.tuning["interior"] else "NO"
        row = [
            name,
            f"{lr_text(o.lr)} ({interior})",
            f"{stats.fmt_pm(m, s)} (n={len(o.finals)})",
            " / ".join(loss_text(x) for x in o.finals),
        ]
        if baseline:
            row.append(
                "—"
                if name == baseline
                else stats.fmt_diff(stats.paired(o.finals, outcomes[baseline].finals))
            )
        row += [str(extra.get(name, {}).get(c, "")) for c in extra_cols]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def tuning_table(outcomes: dict[str, ArmOutcome], steps: int, seed: int) -> str:
    lines = [
        f"| arm | eval loss at {steps} steps, seed {seed}, per peak LR (chosen in bold) | "
        "widened | interior |",
        "|---|---|---|---|",
    ]
    for name, o in outcomes.items():
        t = o.tuning
        lines.append(
            f"| {name} | {tuning_cell(o)} | {t['widened']}x | {'yes' if t['interior'] else 'NO'} |"
        )
    return "\n".join(lines)


def claim(
    text: str,
    paper: str,
    ours: str,
    expected: str,
    relation: str,
    words: dict | None = None,
    detail: str = "",
) -> dict:
    """A claim row. `expected`/`relation` use the canonical words of `stats` (worse = higher);
    `words` renames them for display where "higher"/"lower" reads better than worse/better."""
    words = words or {}
    show = lambda r: " ".join(words.get(part, part) for part in r.split("_"))
    return dict(
        claim=text,
        paper=paper,
        ours=ours,
        expected=show(expected),
        relation=show(relation),
        verdict=stats.verdict(expected, relation),
        detail=detail,
    )


def means_text(outcomes: dict[str, ArmOutcome], *names: str) -> str:
    """'sas 4.910 ± 0.020 vs pre_ln 5.020 ± 0.030': the final losses a claim compares."""
    return " vs ".join(f"{n} {stats.fmt_pm(*outcomes[n].mean_std)}" for n in names)


HIGHER_LOWER = {"worse": "higher", "better": "lower"}


def claims_table(claims: list[dict]) -> str:
    """One row per claim; `ours` is the paired difference (mean ± 95% half-width) and `means` the
    compared arms' final values (mean ± std over seeds)."""
    lines = [
        "| claim (paper) | paper | ours: paired difference | means | expected | observed | "
        "verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in claims:
        lines.append(
            f"| {c['claim']} | {c['paper']} | {c['ours']} | {c.get('detail', '')} | "
            f"{c['expected']} | {c['relation']} | **{c['verdict']}** |"
        )
    return "\n".join(lines)


def outcome_json(outcomes: dict[str, ArmOutcome]) -> dict:
    out = {}
    for name, o in outcomes.items():
        m, s = o.mean_std
        out[name] = dict(
            block=o.arm.block,
            kind=o.arm.kind,
            size=o.arm.size,
            model=[list(kv) for kv in o.arm.model],
            tuning=o.tuning,
            lr=o.lr,
            seeds=[r["seed"] for r in o.results],
            finals=o.finals,
            mean=m,
            std=s,
            run_ids=[r["run_id"] for r in o.results],
        )
    return out


def _jsonable(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


def write(out_dir: str, markdown: str, data: dict) -> tuple[str, str]:
    os.makedirs(out_dir, exist_ok=True)
    md_path = os.path.join(out_dir, "summary.md")
    json_path = os.path.join(out_dir, "summary.json")
    write_atomic(md_path, markdown.rstrip() + "\n")
    write_atomic(json_path, json.dumps(_jsonable(data), indent=1, sort_keys=True) + "\n")
    return md_path, json_path
