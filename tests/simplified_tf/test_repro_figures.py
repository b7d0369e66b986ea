"""Every figure's report on synthetic outcomes (no training): claims computed from the numbers,
tables and PNGs written. Step times are faked, so nothing here is timed."""

import math
import os

import numpy as np
import pytest

from simplified_tf.repro import report, timing, vectorised
from simplified_tf.repro.experiment import ArmOutcome
from simplified_tf.repro.figures import FIGURES, gains
from simplified_tf.repro.figures.common import Context
from simplified_tf.repro.protocol import QUICK
from simplified_tf.repro.runs import RunStore

# Final-loss offsets from pre_ln per arm (per seed noise is added on top, identical across arms so
# that paired differences are exact).
OFFSETS = {"pre_ln": 0.0, "parallel": 0.0, "v_skipinit": 0.5, "sas": -0.1, "sas_p": -0.1,
           "sas_p_nonorm": 0.05}  # fmt: skip
STEP_S = {"pre_ln": 0.10, "parallel": 0.095, "v_skipinit": 0.105, "sas": 0.092, "sas_p": 0.086,
          "sas_p_nonorm": 0.083}  # fmt: skip


def fake_result(arm, seed, steps, final, layers=4):
    evals = list(range(25, steps + 1, 25))
    loss = [final + 2.0 * (1 - s / steps) for s in evals]
    scalars = {}
    if arm.name.startswith("trainable_vp"):
        falls = arm.name == "trainable_vp"
        for layer in range(layers):
            end = 0.2 if (layer == 0 or not falls) else 0.05
            beta = np.linspace(0.2, end, len(evals)) * (1 + 0.01 * seed)
            scalars[f"layer{layer:02d}/beta_v"] = list(beta)
            scalars[f"layer{layer:02d}/alpha_v"] = [1.0] * len(evals)
            scalars[f"layer{layer:02d}/beta_p"] = list(
                np.linspace(0.2, 0.05 + 0.15 * (not falls), len(evals))
            )
            scalars[f"layer{layer:02d}/alpha_p"] = [1.0] * len(evals)
    return dict(run_id=f"{arm.name}-{seed}", seed=seed, steps=steps, final_loss=final,
                curve=dict(step=evals, loss=loss, accuracy=[0.1] * len(evals)), scalars=scalars)  # fmt: skip


def fake_outcomes(figure, p):
    out = {}
    for group in figure.groups(p):
        outcomes = {}
        for arm in group.arms:
            offset = OFFSETS.get(arm.block, 0.0)
            if arm.name.startswith("orth"):
                offset += 0.2
            if "_b" in arm.name:
                offset += 0.1 * float(arm.name.split("_b")[1])
            if dict(arm.model).get("num_layers") == p.depth_layers[1]:
                offset += 0.3 if arm.block == "v_skipinit" else -0.2
            if arm.name == "trainable_vp":
                offset += 0.03
            finals = [3.0 + offset + 0.01 * s for s in group.seeds]
            tuning = dict(grid=[5e-4, 1e-3, 2e-3, 4e-3], losses=[3.5, 3.1, 3.2, 3.4], best_lr=1e-3,
                          best_loss=3.1, interior=True, widened=0)  # fmt: skip
            results = [
                fake_result(arm, s, group.steps, f)
                for s, f in zip(group.seeds, finals, strict=True)
            ]
            outcomes[arm.name] = ArmOutcome(arm, tuning, results)
        out[group.key] = outcomes
    return out


@pytest.fixture
def no_timing(monkeypatch):
    def fake_cached(path, specs, **kw):
        rounds, steps = kw.get("rounds", 3), kw.get("steps", 5)
        arms = {}
        for name, spec in specs.items():
            s = STEP_S.get(spec.arm.block, 0.1)
            samples = [s * (1 + 0.01 * ((i * 7) % 5)) for i in range(rounds * steps)]
            arms[name] = dict(
                step_s=float(np.median(samples)), samples=samples, tokens_per_step=1024
            )
        return dict(arms=arms, loadavg_before=[0.0], loadavg_after=[0.0], key={})

    monkeypatch.setattr(timing, "cached", fake_cached)
    monkeypatch.setattr(vectorised, "measure", lambda spec, n, **kw: dict(
        num_runs=n, sequential_s=[0.1] * 3, vmapped_per_run_s=[0.1] * 3, ratio=[1.0] * 3,
        ratio_median=1.0))  # fmt: skip


@pytest.mark.parametrize("name", list(FIGURES))
def test_figure_report_on_synthetic_outcomes(name, tmp_path, no_timing):
    figure = FIGURES[name]
    ctx = Context(QUICK, RunStore(str(tmp_path / "runs")), str(tmp_path / name))
    body, data, claims = figure.report_figure(ctx, fake_outcomes(figure, QUICK))
    assert claims and all(
        c["verdict"] in ("reproduced", "contradicted", "inconclusive") for c in claims
    )
    md, js = report.write(ctx.out_dir, body + "\n" + report.claims_table(claims), data)
    text = open(md).read()
    assert "{" not in text.replace("{}", "")  # no unfilled template fields
    for image in [line[4:-1] for line in text.splitlines() if line.startswith("![](")]:
        assert os.path.getsize(os.path.join(ctx.out_dir, image)) > 5000
    verdicts = {c["claim"]: c["verdict"] for c in claims}
    if name == "parity":  # the synthetic numbers make sas ahead, v_skipinit behind, parallel level
        assert verdicts["sas matches pre_ln per step (Figs. 5, 26)"] == "reproduced"
        assert (
            verdicts["v_skipinit clearly behind pre_ln, even at its best LR (Figs. 2, 5)"]
            == "reproduced"
        )
        assert verdicts["parallel and pre_ln level per step (the two baselines)"] == "reproduced"
        assert verdicts["sas_p ahead of pre_ln at equal wall-clock (Figs. 5, 26)"] == "reproduced"
        assert verdicts["sas_p_nonorm slightly behind sas_p per step (Fig. 5)"] == "reproduced"
    if name == "depth":
        assert all(v == "reproduced" for k, v in verdicts.items() if "layers (Fig. 6)" in k)
    if name == "reparam":
        assert all(v == "reproduced" for k, v in verdicts.items() if "identity W_init beats" in k)
        assert all(v == "reproduced" for k, v in verdicts.items() if "smaller fixed beta" in k)
    if name == "gains":
        assert all(v == "reproduced" for v in verdicts.values()), verdicts
    if name == "speed":
        assert verdicts["sas_p faster than pre_ln (decoder quick)"] == "reproduced"
        assert verdicts["v_skipinit slower than pre_ln (decoder quick)"] == "reproduced"


def test_gains_ratio_series_reads_the_traces():
    arm = gains.groups(QUICK)[0].arm("trainable_vp")
    r = fake_result(arm, 0, 100, 3.0)
    series = gains.ratio_series(r, "v")
    assert sorted(series) == [0, 1, 2, 3]
    assert series[1][-1] == pytest.approx(0.05) and series[0][-1] == pytest.approx(0.2)
    assert not math.isnan(series[2][0])


def test_claims_index_gathers_every_figure(tmp_path):
    from simplified_tf.repro import index

    for name, verdicts in (("parity", ("level", "worse")), ("depth", ("better",))):
        claims = [report.claim(f"{name} claim {i}", "p", "o", "level", rel)
                  for i, rel in enumerate(verdicts)]  # fmt: skip
        prov = dict(command=f"cmd {name}", commit="abc123", machine=dict(cpu="cpu"))
        report.write(str(tmp_path / name), "x", dict(claims=claims, provenance=prov))
    text = open(index.write(str(tmp_path), ["parity", "bert", "depth"])).read()
    assert "1 reproduced, 2 contradicted, 0 inconclusive" in text
    rows = [line for line in text.splitlines() if line.startswith("| [")]
    assert [r.split("|")[2].strip() for r in rows] == [
        "parity claim 0",
        "parity claim 1",
        "depth claim 0",
    ]
    assert "`cmd depth` at `abc123`" in text
    assert index.write(str(tmp_path / "empty"), ["parity"]) is None


def test_claims_budget_and_publish_copy_a_figure_with_working_links(tmp_path):
    """The budget column is read from the runs' results; publish copies summaries, PNGs and
    claims.md into a docs folder of the same layout (so claims.md's links resolve there)."""
    import json

    from simplified_tf.repro import index
    from simplified_tf.repro.runs import RESULT_FILE

    out, docs = tmp_path / "out", tmp_path / "docs"
    run_ids = ["r-s0", "r-s1", "r-s2"]
    for rid in run_ids:
        (out / "runs" / rid).mkdir(parents=True)
        (out / "runs" / rid / RESULT_FILE).write_text(
            json.dumps(dict(steps=300, tokens_per_step=1024))
        )
    claims = [report.claim("sas claim", "p", "o", "level", "level")]
    summary = dict(claims=claims, provenance={}, outcomes={"sas": dict(run_ids=run_ids)})
    report.write(str(out / "parity"), "body", summary)
    (out / "parity" / "curves.png").write_bytes(b"png")
    copied = index.publish(str(out), ["parity", "depth"], str(docs))
    assert sorted(os.path.relpath(p, docs) for p in copied) == [
        "claims.md", "parity/curves.png", "parity/summary.json", "parity/summary.md"
    ]  # fmt: skip
    text = (docs / "claims.md").read_text()
    assert "3 seeds x 300 steps x 1,024 tokens" in text
    link = text.split("](", 1)[1].split(")", 1)[0]
    assert (docs / link).exists()
