"""Figure code on tiny inputs: learning-rate bracketing through the run cache, the plots (captions
inside the canvas), the report and the REPRODUCTION.md section; and the whole `--figure=all` path on
tiny models (slow)."""

import dataclasses
import json
import os

import numpy as np
import pytest
from PIL import Image

from linear_tf import plots, sweep
from linear_tf.figures import FIGURES, figure_module, report
from linear_tf.figures import verdicts as V
from linear_tf.figures.common import FigureResult, Row
from linear_tf.figures.protocol import FULL, QUICK
from linear_tf.figures.runs import Context, specs


def _fake_sweep(lrs_by_opt: dict, score, seeds=(0, 1), steps=100) -> sweep.SweepResult:
    """A sweep result whose training loss at lr is score(optimizer, lr) on every seed (no training)."""
    groups = {}
    for name, lrs in lrs_by_opt.items():
        n_lr, n_s = len(lrs), len(seeds)
        train = np.stack([np.full((n_s, steps), score(name, lr)) for lr in lrs])
        snap = {"w": np.zeros((n_lr, n_s, 1, 2))}
        groups[name] = sweep.GroupResult(
            optimizer=name,
            lrs=np.asarray(lrs),
            seeds=np.asarray(seeds),
            eval_loss=train[..., ::50],
            train_loss=train,
            grad_norm=np.ones_like(train),
            snap_params=snap,
            snap_delta=snap,
            final_params={"w": np.zeros((n_lr, n_s, 2))},
            dense_params=None,
        )
    cfg = sweep.SweepConfig(steps=steps)
    return sweep.SweepResult(groups, np.arange(0, steps, 50), np.array([0]), cfg, 0.0)


def test_tune_widens_the_grid_until_the_best_lr_is_interior():
    optimum = {"sgdm": 0.3, "adam": 2e-4}
    ran = []

    class Fake(Context):
        def sweep(self, setting, steps, seeds, lrs, **kw):
            ran.append({k: list(v) for k, v in lrs.items()})
            return _fake_sweep(lrs, lambda k, lr: (np.log(lr) - np.log(optimum[k])) ** 2)

    ctx = Fake(dataclasses.replace(QUICK, max_widen=4), "unused", log=lambda m: None)
    results = ctx.tune("1", (1e-3, 1e-2), (0, 1), 100, ("sgdm", "adam"))
    sg, ad = results["sgdm"], results["adam"]
    assert sg.grid.interior() and ad.grid.interior()
    assert sg.lr == pytest.approx(0.1) and sg.grid.widenings == 2  # 0.1, then 1.0 brackets it
    assert ad.lr == pytest.approx(1e-4) and ad.grid.widenings == 2  # 1e-4, then 1e-5
    assert ran[0] == {"sgdm": [1e-3, 1e-2], "adam": [1e-3, 1e-2]}
    assert ran[1] == {
        "sgdm": [pytest.approx(0.1)],
        "adam": [pytest.approx(1e-4)],
    }  # new points only


def test_tune_stops_after_max_widen_and_reports_the_edge():
    class Fake(Context):
        def sweep(self, setting, steps, seeds, lrs, **kw):
            return _fake_sweep(lrs, lambda k, lr: -lr)  # always better higher up

    ctx = Fake(dataclasses.replace(QUICK, max_widen=2), "unused", log=lambda m: None)
    r = ctx.tune("1", (0.01, 0.1), (0,), 100, ("adam",))["adam"]
    assert not r.grid.interior() and r.grid.widenings == 2 and r.lr == pytest.approx(10.0)


def _png_size(path):
    with Image.open(path) as im:
        return im.size


def test_plots_keep_the_wrapped_caption_and_labels_inside_the_canvas(tmp_path):
    caption = "A long caption that must wrap. " * 20
    steps = np.arange(0, 100, 10)
    curves = {
        "sgdm": {"steps": steps, "mean": np.linspace(1, 0.1, 10), "lo": np.zeros(10), "hi": np.ones(10), "lr": 0.02},
        "adam": {"steps": steps, "mean": np.r_[np.linspace(1, 0.01, 8), -1.0, 0.01], "lo": np.zeros(10), "hi": np.ones(10)},
    }  # fmt: skip
    short = plots.curve_panels({"A": curves}, str(tmp_path / "short.png"), "x", "loss")
    long = plots.curve_panels(
        {"A": curves}, str(tmp_path / "long.png"), caption, "loss", notes={"A": "1 dropped"}
    )
    h_s, h_l = _png_size(short)[1], _png_size(long)[1]
    assert h_l > h_s + 60  # the wrapped caption's 8 lines are part of the saved canvas
    lines = plots.wrap_caption(caption, 8.0).split("\n")
    assert len(lines) > 3 and max(len(x) for x in lines) <= 8.0 * plots.CHARS_PER_INCH
    rng = np.random.default_rng(0)
    hist = plots.histogram_panels(
        {"a": rng.gamma(0.5, size=500)}, str(tmp_path / "h.png"), caption, zoom=0.99, qq=True
    )
    scat = {"x": rng.normal(size=50), "t": np.arange(50), "slope": 1.0, "intercept": 0.0}
    scat |= {"y": scat["x"] + rng.normal(size=50) * 0.1, "pearson_r": 0.9}
    sc = plots.scatter_panels({"s": scat}, str(tmp_path / "s.png"), caption)
    assert all(os.path.getsize(p) > 5000 for p in (hist, sc))


def _record(tmp_path):
    v = [V.judge([0.5, 0.6], "Setting 1: Adam ends below SGDM", "log ratio")]
    row = Row("D1: loss", "Adam below SGDM", "0.01 vs 0.002", v, "2 seeds × 100 steps", ["a.png"])
    (tmp_path / "a.png").write_bytes(b"png")
    fig = FigureResult(
        "loss_curves",
        "cap",
        [str(tmp_path / "a.png")],
        ["| t |", "|---|"],
        [row],
        {"x": np.float32(1.5)},
    )
    rec = {
        "command": "python scripts/reproduce_linear_tf.py --figure=loss_curves",
        "protocol": dict(FULL.__dict__),
        "machine": {"cpu": "CPU X", "cores": 2, "commit": "abc1234", "dirty": False, "nice": 19},
        "load_start": (2.0, 1.0, 1.0),
        "load_end": (3.0, 1.0, 1.0),
        "seconds": 7200.0,
        "figures": {"loss_curves": report.figure_record(fig, 12.0, (2.0, 3.0))},
    }  # fmt: skip
    return rec


def test_summary_and_section_render_from_the_record(tmp_path):
    rec = _record(tmp_path)
    md, js = report.write_summary(str(tmp_path), rec)
    loaded = json.loads(open(js).read())
    assert loaded["figures"]["loss_curves"]["numbers"]["x"] == 1.5
    assert "REPRODUCED" in open(md).read()
    timed = {
        **loaded,
        "command": "python scripts/reproduce_linear_tf.py --figure=all --quick",
        "seconds": 1200.0,
    }
    section = report.render_section(loaded, [timed], "docs/linear_tf")
    assert (
        "| D1: loss | Adam below SGDM | 0.01 vs 0.002 | 2 seeds × 100 steps | **reproduced** |"
        in section
    )
    assert "abc1234" in section and "CPU X" in section and "20.0 min" in section
    assert "![loss_curves](docs/linear_tf/a.png)" in section
    assert (
        "- Fig. 8 (depth): 2 seeds × 3,000 steps" in section
    )  # differences come from the protocol
    for word in ("/tmp", "flock", "session", "agent", "spec §"):
        assert word not in section
    doc = tmp_path / "R.md"
    doc.write_text(
        "# Reproduction\n\n## Linear old\nold text\n\n## Simplifying Transformer Blocks\nkeep\n"
    )
    report.replace_section(str(doc), section)
    text = doc.read_text()
    assert text.startswith("# Reproduction\n\n## Linear attention") and "old text" not in text
    assert text.endswith("## Simplifying Transformer Blocks\nkeep\n")
    assert report.copy_pngs(loaded, str(tmp_path), str(tmp_path / "docs")) == [
        str(tmp_path / "docs" / "a.png")
    ]
    # re-rendering from the published copy copies nothing onto itself
    assert report.copy_pngs(loaded, str(tmp_path / "docs"), str(tmp_path / "docs")) == []


TINY = dataclasses.replace(
    QUICK, name="tiny", one_layer_steps=100, main_steps=100, ds_stride=10, l0l1_steps=100,
    l0l1_stride=5, noise_samples=100, noise_full_batches=2, depths=(2, 4, 6, 8), depth_steps=50,
    depth_grid=(1e-2, 0.1), softmax_steps=50, softmax_grid=(0.01, 0.1), large_steps=50,
    large_tune_steps=50, large_batch=50, large_noise_samples=50, nonlinear_steps=250,
    nonlinear_cn_steps=(0, 250), nonlinear_hessian_batch=20, nonlinear_noise_samples=50,
    demo_steps=200, demo_batch=100, max_widen=1,
)  # fmt: skip


class TinyContext(Context):
    """Every setting at d=2, n=4 (the non-isotropic demonstration keeps its d=5)."""

    def specs(self, setting, layers=3, attention="linear", d=5, n=None):
        return specs(setting, layers, attention, d=2, n=4)


@pytest.mark.slow
def test_every_figure_runs_on_tiny_models(tmp_path):
    ctx = TinyContext(TINY, str(tmp_path), log=lambda m: None)
    results = {name: figure_module(name).run(ctx) for name in FIGURES}
    for name, r in results.items():
        assert all(os.path.getsize(p) > 5000 for p in r.pngs), name
        assert r.rows and all(row.label in V.LABELS for row in r.rows), name
    d3 = results["condition_number"].numbers
    np.testing.assert_allclose(d3["1"]["ratio_at_0"], 1.0)  # shared initialisation
    assert results["grad_noise"].numbers["Setting 1, L=3"]["num_samples"] == 100
    depth = results["depth"].numbers
    assert all(np.isfinite(depth[L]["max_grad_norm"]["adam"]) for L in TINY.depths)
    names = {os.path.basename(p) for r in results.values() for p in r.pngs}
    assert {"loss_curves.png", "smoothness.png", "sphere.png", "nonisotropic.png"} <= names
