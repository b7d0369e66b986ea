"""OUT/claims.md: every figure's claims and verdicts in one table, read from the figures'
summary.json files (whatever figures exist under OUT), with each figure's budget, command and
commit; and `publish`, which copies the figures' summaries and plots to a docs folder."""

from __future__ import annotations

import glob
import json
import os
import shutil

from simplified_tf.repro.runs import RunStore

VERDICTS = ("reproduced", "contradicted", "inconclusive")


def collect(out_root: str, order: list[str]) -> list[dict]:
    rows = []
    for name in order:
        path = os.path.join(out_root, name, "summary.json")
        if not os.path.exists(path):
            continue
        with open(path) as f:
            summary = json.load(f)
        prov = summary.get("provenance", {})
        outcomes = dict(summary.get("outcomes", {}))
        for key, group in summary.items():  # figures with several groups (depth: L2, L8)
            if isinstance(group, dict) and isinstance(group.get("outcomes"), dict):
                outcomes |= {f"{key}/{k}": v for k, v in group["outcomes"].items()}
        budget = budget_text(out_root, outcomes)
        for c in summary.get("claims", []):
            rows.append(dict(figure=name, provenance=prov, budget=budget, **c))
    return rows


def budget_text(out_root: str, outcomes: dict) -> str:
    """'3 seeds x 300 steps x 1,024 tokens' for each distinct budget of a figure's arms, read from
    the runs' result.json files under OUT/runs ('' where they are not there)."""
    store = RunStore(os.path.join(out_root, "runs"))
    budgets = []
    for o in outcomes.values():
        run_ids = o.get("run_ids") or []
        r = store.result_of(run_ids[0]) if run_ids else None
        if r is None:
            continue
        text = f"{len(run_ids)} seeds x {r['steps']} steps x {r['tokens_per_step']:,} tokens"
        if text not in budgets:
            budgets.append(text)
    return "; ".join(budgets)


def write(out_root: str, order: list[str], path: str | None = None) -> str | None:
    """Writes the claims table (default OUT/claims.md); returns its path, or None without rows."""
    rows = collect(out_root, order)
    if not rows:
        return None
    counts = {v: sum(r["verdict"] == v for r in rows) for v in VERDICTS}
    text = "\n".join(
        [
            "# Claims of He & Hofmann (2024) and this suite's verdicts",
            "",
            ", ".join(f"{n} {v}" for v, n in counts.items()) + ".",
            "",
            claims_table(rows),
            "",
            "Sources:",
            "",
            *sources(rows),
        ]
    )
    path = path or os.path.join(out_root, "claims.md")
    with open(path, "w") as f:
        f.write(text + "\n")
    return path


def claims_table(rows: list[dict], link_prefix: str = "") -> str:
    """One row per claim; links point to `link_prefix`<figure>/summary.md."""
    lines = [
        "| figure | claim (paper) | paper | ours: paired difference (95% CI) | means ± std over "
        "seeds | budget per arm | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| [{r['figure']}]({link_prefix}{r['figure']}/summary.md) | {r['claim']} | "
            f"{r['paper']} | {r['ours']} | {r.get('detail', '')} | {r.get('budget', '')} | "
            f"**{r['verdict']}** |"
        )
    return "\n".join(lines)


def sources(rows: list[dict]) -> list[str]:
    """Per figure: its command, commit, CPU and the cost of its last invocation."""
    seen, out = set(), []
    for r in rows:
        if r["figure"] in seen:
            continue
        seen.add(r["figure"])
        p = r["provenance"]
        load = p.get("loadavg_before", [None])[0], p.get("loadavg_after", [None])[0]
        load_text = f", load {load[0]:.1f} -> {load[1]:.1f}" if None not in load else ""
        minutes = p.get("run_minutes")
        out.append(
            f"- {r['figure']}: `{p.get('command', '')}` at `{p.get('commit', '')}` "
            f"({p.get('machine', {}).get('cpu', '')}; {p.get('wall_seconds', 0) / 60:.1f} min in "
            f"its last invocation{load_text}, {p.get('runs_trained_now', 0)} runs trained then"
            + (f"; its runs took {minutes:.1f} min of training in all)" if minutes else ")")
        )
    return out


def publish(out_root: str, order: list[str], docs_dir: str) -> list[str]:
    """Copies each figure's summary.md, summary.json and PNGs, and claims.md, from OUT to
    `docs_dir`/<figure>/ (the same layout, so the links stay valid); returns the copied paths."""
    copied = []
    for name in order:
        src = os.path.join(out_root, name)
        if not os.path.exists(os.path.join(src, "summary.json")):
            continue
        os.makedirs(os.path.join(docs_dir, name), exist_ok=True)
        files = [os.path.join(src, "summary.md"), os.path.join(src, "summary.json")]
        for path in files + sorted(glob.glob(os.path.join(src, "*.png"))):
            dest = os.path.join(docs_dir, name, os.path.basename(path))
            shutil.copyfile(path, dest)
            copied.append(dest)
    claims = write(out_root, order, os.path.join(docs_dir, "claims.md"))
    return copied + ([claims] if claims else [])
