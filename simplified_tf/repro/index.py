"""OUT/claims.md: every figure's claims and verdicts in one table, read from the figures'
summary.json files (whatever figures exist under OUT), with each figure's command and commit."""

from __future__ import annotations

import json
import os


def collect(out_root: str, order: list[str]) -> list[dict]:
    rows = []
    for name in order:
        path = os.path.join(out_root, name, "summary.json")
        if not os.path.exists(path):
            continue
        with open(path) as f:
            summary = json.load(f)
        prov = summary.get("provenance", {})
        for c in summary.get("claims", []):
            rows.append(dict(figure=name, provenance=prov, **c))
    return rows


def write(out_root: str, order: list[str]) -> str | None:
    rows = collect(out_root, order)
    if not rows:
        return None
    lines = [
        "| figure | claim (paper) | paper | ours: paired difference (95% CI) | means ± std over "
        "seeds | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| [{r['figure']}]({r['figure']}/summary.md) | {r['claim']} | {r['paper']} | "
            f"{r['ours']} | {r.get('detail', '')} | **{r['verdict']}** |"
        )
    seen, sources = set(), []
    for r in rows:
        if r["figure"] in seen:
            continue
        seen.add(r["figure"])
        p = r["provenance"]
        sources.append(
            f"- {r['figure']}: `{p.get('command', '')}` at `{p.get('commit', '')}` "
            f"({p.get('machine', {}).get('cpu', '')}; {p.get('wall_seconds', 0) / 60:.1f} min in "
            f"its last invocation, {p.get('runs_trained_now', 0)} runs trained then"
            + (
                f"; its runs took {p['run_minutes']:.1f} min of training in all)"
                if p.get("run_minutes") is not None
                else ")"
            )
        )
    counts = {v: sum(r["verdict"] == v for r in rows) for v in ("reproduced", "contradicted",
                                                              "inconclusive")}  # fmt: skip
    text = "\n".join(
        ["# Claims of He & Hofmann (2024) and this suite's verdicts", "",
         ", ".join(f"{n} {v}" for v, n in counts.items()) + ".", "", *lines, "", "Sources:", "",
         *sources]
    )  # fmt: skip
    path = os.path.join(out_root, "claims.md")
    with open(path, "w") as f:
        f.write(text + "\n")
    return path
