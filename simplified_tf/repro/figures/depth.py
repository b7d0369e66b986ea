"""Depth (paper Fig. 6): every block at L and 4L layers of the same width, each depth with its own
tuned LR. The paper (18 vs 72 layers) finds Pre-LN and the simplified blocks improving with depth,
the normed simplified blocks tracking Pre-LN, and V-SkipInit getting worse."""

from __future__ import annotations

import os

from simplified_tf.repro import plots, report, stats
from simplified_tf.repro.figures.common import (
    Context,
    block_group,
    comparison_section,
    paired_claim,
)
from simplified_tf.repro.protocol import Protocol

NAME = "depth"
TITLE = "Depth: L vs 4L layers at the same width (paper Fig. 6)"


def groups(p: Protocol):
    return [
        block_group(f"L{n}", p.depth_blocks, p, steps=p.depth_steps, model=(("num_layers", n),))
        for n in p.depth_layers
    ]


def report_figure(ctx: Context, outcomes_by_group: dict):
    p = ctx.protocol
    shallow_group, deep_group = groups(p)
    shallow = outcomes_by_group[shallow_group.key]
    deep = outcomes_by_group[deep_group.key]
    (l_small, l_big), blocks = p.depth_layers, p.depth_blocks
    claims, rows = [], []
    for b in blocks:
        d = stats.paired(deep[b].finals, shallow[b].finals)
        expected = "worse" if b == "v_skipinit" else "better"
        text = "gets worse" if b == "v_skipinit" else "improves"
        claims.append(
            report.claim(
                f"{b} {text} from {l_small} to {l_big} layers (Fig. 6)",
                "worse at 4L" if b == "v_skipinit" else "better at 4L",
                stats.fmt_diff(d) + f" ({l_big} - {l_small} layers)",
                expected,
                d["relation"],
                detail=f"{stats.fmt_pm(*shallow[b].mean_std)} -> {stats.fmt_pm(*deep[b].mean_std)}",
            )
        )
        rows.append(
            f"| {b} | {stats.fmt_pm(*shallow[b].mean_std)} | {stats.fmt_pm(*deep[b].mean_std)} | "
            f"{stats.fmt_diff(d)} |"
        )
    claims += [
        paired_claim(deep, b, "pre_ln", f"{b} tracks pre_ln at {l_big} layers (Fig. 6)", "level",
                     "not_worse")
        for b in ("sas", "sas_p", "sas_p_nonorm")
        if b in blocks
    ]  # fmt: skip
    bars = plots.grouped_bars(
        list(blocks),
        {f"{n} layers": [o[b].mean_std for b in blocks] for n, o in zip(
            p.depth_layers, (shallow, deep), strict=True)},
        ctx.path("depth_final.png"),
        title=f"Final eval loss at {l_small} and {l_big} layers (mean ± std over seeds)",
        ylabel="final eval loss",
    )  # fmt: skip
    parts = [
        f"| block | {l_small} layers | {l_big} layers | paired diff. ({l_big} - {l_small}) |",
        "|---|---|---|---|",
        *rows,
        "",
        f"![]({os.path.basename(bars)})",
    ]
    data = {}
    for group, outcomes in ((shallow_group, shallow), (deep_group, deep)):
        section, data[group.key] = comparison_section(
            ctx, group, outcomes, baseline="pre_ln", title=f"Decoder, {group.key[1:]} layers",
            stem=f"depth_{group.key}",
        )  # fmt: skip
        parts += ["", f"## {group.key[1:]} layers", "", section]
    return "\n".join(parts), data, claims
