"""One command per figure of He & Hofmann (ICLR 2024), "Simplifying Transformer Blocks".

  python scripts/reproduce_simplified_tf.py --figure=parity --quick
  python scripts/reproduce_simplified_tf.py --figure=all --quick --out=results/simplified_tf_quick
  python scripts/reproduce_simplified_tf.py --figure=parity --list_runs --quick   # the run set only
  python scripts/reproduce_simplified_tf.py --out=results/simplified_tf_quick --publish=docs/simplified_tf

A figure is a declared set of runs (arm x learning rate x seed; see simplified_tf/repro/). Every
arm's peak LR is tuned on a log grid that widens until the best point is interior, then the arm is
trained over several seeds at that LR; verdicts come from the paired per-seed differences. Runs live
in OUT/runs/ and are shared between figures: a finished run is never retrained, and a killed
command, run again, continues where it stopped (an unfinished run resumes from its checkpoint).
Each figure writes OUT/<figure>/summary.md, summary.json and PNGs; OUT/claims.md gathers every
figure's claims and verdicts found under OUT.

--quick uses size=quick (4 x 128 decoder/BERT, vocab 2048, batch 8 x 128, 300 steps, 3 seeds), sized
for about 40 minutes per figure on 2 CPU cores. Without it, size=small and 2000 steps.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from trainloop import host_alloc  # noqa: E402  (imports no jax: runs before jax starts its threads)

host_alloc.apply_from_argv(sys.argv)

from absl import flags  # noqa: E402

from trainloop import cli  # noqa: E402
from trainloop.config_util import ConfigError  # noqa: E402

host_alloc.define_flag()
_FIGURE = flags.DEFINE_list("figure", ["parity"], "Figures to make, or 'all'.")
_QUICK = flags.DEFINE_bool("quick", False, "The quick protocol (size=quick, 300 steps).")
_OUT = flags.DEFINE_string(
    "out", "", "Output root (default results/simplified_tf or results/simplified_tf_quick)."
)
_SEEDS = flags.DEFINE_integer("seeds", 0, "Seeds per arm (0 = the protocol's, 3).")
_RETIME = flags.DEFINE_bool("retime", False, "Re-measure step times even if cached.")
_LIST = flags.DEFINE_bool("list_runs", False, "Print the declared run set and exit.")
_INDEX = flags.DEFINE_bool(
    "index_only", False, "Rewrite OUT/claims.md from the figures already in --out; train nothing."
)
_PUBLISH = flags.DEFINE_string(
    "publish",
    "",
    "Copy every finished figure's summary.md, summary.json and PNGs, and claims.md, from --out to "
    "this folder (e.g. docs/simplified_tf); train nothing.",
)


def _figures(names):
    from simplified_tf.repro.figures import FIGURES

    if names == ["all"]:
        return list(FIGURES.values())
    unknown = [n for n in names if n not in FIGURES]
    if unknown or not names:
        raise ConfigError(
            f"Unknown --figure {','.join(unknown) or '(empty)'}; valid: {', '.join(FIGURES)} or all."
        )
    return [FIGURES[n] for n in names]


def main(argv):
    cli.prologue(argv)
    _main()


def _main():
    from simplified_tf.repro.protocol import FULL, QUICK
    from simplified_tf.repro.runner import planned_runs, run_figure

    figures = _figures(_FIGURE.value)
    protocol = QUICK if _QUICK.value else FULL
    if _SEEDS.value < 0 or _SEEDS.value == 1:
        raise ConfigError(f"--seeds={_SEEDS.value}: use 0 (the protocol's) or >= 2 seeds.")
    if _SEEDS.value:
        protocol = protocol.with_seeds(_SEEDS.value)
    out = _OUT.value or ("results/simplified_tf_quick" if _QUICK.value else "results/simplified_tf")
    if _INDEX.value or _PUBLISH.value:
        return _index(out, _PUBLISH.value)
    if _LIST.value:
        for fig in figures:
            rows = planned_runs(fig, protocol)
            print(f"{fig.NAME}: {len(rows)} runs before any widening of an LR grid")
            for r in rows:
                lr = r["lr"] if isinstance(r["lr"], str) else f"{r['lr']:.3g}"
                print(f"  {r['group']:>10} {r['arm']:>24} {r['role']:>5} lr={lr:>7} "
                      f"seed={r['seed']} steps={r['steps']}")  # fmt: skip
        return
    command = "python scripts/reproduce_simplified_tf.py " + " ".join(sys.argv[1:])
    for fig in figures:
        print(f"== {fig.NAME}", file=sys.stderr, flush=True)
        result = run_figure(fig, protocol, out, command=command, retime=_RETIME.value)
        print(f"{fig.NAME}: {result['wall'] / 60:.1f} min; {result['summary_md']}")
        for c in result["claims"]:
            print(f"  [{c['verdict']}] {c['claim']}: {c['ours']}")
    from simplified_tf.repro import index
    from simplified_tf.repro.figures import FIGURES

    claims = index.write(out, list(FIGURES))
    if claims:
        print(f"All claims so far: {claims}")


def _index(out: str, docs_dir: str) -> None:
    from simplified_tf.repro import index
    from simplified_tf.repro.figures import FIGURES

    if not os.path.isdir(out):
        raise ConfigError(f"--out={out} does not exist; run a figure into it first.")
    if docs_dir:
        for path in index.publish(out, list(FIGURES), docs_dir):
            print(path)
        return
    print(index.write(out, list(FIGURES)) or f"No finished figure in {out}.")


if __name__ == "__main__":
    cli.run(main, stop_note="between runs (finished runs stay in --out; rerun to continue).")
