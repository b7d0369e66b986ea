"""Every figure and table of Ahn et al. (ICLR 2024), "Linear attention is (maybe) all you need".

  python scripts/reproduce_linear_tf.py --figure=loss_curves --quick --out=results/linear_tf_quick
  python scripts/reproduce_linear_tf.py --figure=all --out=results/linear_tf_full    # full protocol
  python scripts/reproduce_linear_tf.py --render_section \
      --render_from=results/linear_tf_full/summary.json,results/linear_tf_quick/summary.json

Writes <figure>*.png, summary.md (captions, tables, verdicts) and summary.json (every number, the
command, commit, CPU and load) under --out; the summary is rewritten after every figure. Figures of one
invocation share their training sweeps. `--render_section` regenerates the paper-B section of
REPRODUCTION.md from summary.json files (the first gives the numbers, all give wall times) and copies
the first run's PNGs into docs/linear_tf/. The figure modules live in `linear_tf/figures/`.
"""

from __future__ import annotations

import json
import os
import sys
import time

import jax
from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from linear_tf.figures import FIGURES, figure_module, report  # noqa: E402
from linear_tf.figures.protocol import PROTOCOLS  # noqa: E402
from linear_tf.figures.runs import Context  # noqa: E402
from trainloop import cli  # noqa: E402

flags.DEFINE_list("figure", ["loss_curves"], f"Figures: {', '.join(FIGURES)}, or all.")
flags.DEFINE_string("out", "results/linear_tf", "Output directory.")
flags.DEFINE_bool("quick", False, "The quick protocol (about 25 minutes on 2 cores for all).")
flags.DEFINE_string(
    "compile_cache",
    os.path.join(os.path.expanduser("~"), ".cache", "linear_tf_jax"),
    "JAX persistent compilation cache directory (reruns skip compilation); empty to disable.",
)
flags.DEFINE_bool("render_section", False, "Regenerate REPRODUCTION.md's paper-B section and exit.")
flags.DEFINE_list("render_from", [], "summary.json files for --render_section (first = numbers).")
flags.DEFINE_string(
    "doc", "REPRODUCTION.md", "Document whose paper-B section --render_section writes."
)
flags.DEFINE_string("png_dir", "docs/linear_tf", "Where --render_section copies the PNGs.")
FLAGS = flags.FLAGS


def render() -> None:
    if not FLAGS.render_from:
        raise app.UsageError(
            "--render_section needs --render_from=<summary.json>[,<summary.json>...]."
        )
    records = []
    for path in FLAGS.render_from:
        with open(path) as f:
            records.append(json.load(f))
    section = report.render_section(records[0], records[1:], FLAGS.png_dir)
    copied = report.copy_pngs(records[0], os.path.dirname(FLAGS.render_from[0]), FLAGS.png_dir)
    report.replace_section(FLAGS.doc, section)
    print(
        f"Wrote the paper-B section of {FLAGS.doc}; copied {len(copied)} PNGs to {FLAGS.png_dir}."
    )


def main(argv):
    del argv
    if FLAGS.render_section:
        return render()
    figs = FIGURES if FLAGS.figure == ["all"] else tuple(FLAGS.figure)
    bad = [f for f in figs if f not in FIGURES]
    if bad:
        raise app.UsageError(f"Unknown --figure={','.join(bad)}. Valid: {', '.join(FIGURES)}, all.")
    if FLAGS.compile_cache:
        jax.config.update("jax_compilation_cache_dir", FLAGS.compile_cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    protocol = PROTOCOLS["quick" if FLAGS.quick else "full"]
    os.makedirs(FLAGS.out, exist_ok=True)
    ctx = Context(protocol, FLAGS.out, log=lambda msg: print(msg, flush=True))
    start = time.time()
    record = {
        "command": "python scripts/reproduce_linear_tf.py " + " ".join(sys.argv[1:]),
        "protocol": protocol.__dict__,
        "machine": report.machine(),
        "load_start": os.getloadavg(),
        "figures": {},
    }
    for name in figs:
        print(f"== {name} ==", flush=True)
        t0, load0 = time.time(), os.getloadavg()
        result = figure_module(name).run(ctx)
        record["figures"][name] = report.figure_record(
            result, time.time() - t0, (load0[0], os.getloadavg()[0])
        )
        record |= {"seconds": time.time() - start, "load_end": os.getloadavg()}
        paths = report.write_summary(FLAGS.out, record)
        for row in result.rows:
            print(f"  {row.item}: {row.label}")
    print(f"\nWall time {record['seconds']:.0f} s. Wrote:")
    for name in figs:
        for p in record["figures"][name]["pngs"]:
            print(" ", os.path.join(FLAGS.out, p))
    print("\n".join(f"  {p}" for p in paths))


if __name__ == "__main__":
    cli.run(main, stop_note="before the summary was written (finished figures stay in --out).")
