"""Trains several Transformer blocks on the same data / seed / steps, then times them fairly.

  python scripts/compare_blocks.py --config=configs/decoder.py:size=small \
      --blocks=pre_ln,parallel,v_skipinit,sas,sas_p,sas_p_nonorm --out=results/decoder_small
  python scripts/compare_blocks.py --config=configs/bert.py:size=small --blocks=pre_ln,sas,sas_p \
      --out=results/bert_small --steps=300

Each block trains into OUT/<block>/ through `trainloop.train.train_and_evaluate` (rerunning skips
finished blocks and resumes unfinished ones from their checkpoints). Then one interleaved timing pass
measures every block's jitted train step in this process. Outputs: OUT/curves.png (eval loss vs
step and vs estimated wall time), OUT/summary.md and OUT/summary.json (final eval loss/accuracy,
params, tokens/s, both relative to pre_ln).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from trainloop import signals  # noqa: E402  (stdlib only)

STOP_NOTE = (
    "outside a training step; the blocks' checkpoints that finished saving are complete (rerun "
    "the same command to resume)."
)
if __name__ == "__main__":  # first thing, so a stop during the imports below gets a message too
    signals.install(STOP_NOTE)

from trainloop import cli, host_alloc  # noqa: E402  (import no jax: run before jax starts threads)

# CPU speed: keep freed host memory mapped so XLA's per-step temporary buffer is not page-faulted in
# again every step (see trainloop/host_alloc.py; 5-15% per decoder step on CPU). Must precede any
# thread creation, hence before flag parsing. `--host_malloc=default` keeps glibc's defaults.
host_alloc.apply_from_argv(sys.argv)

from absl import flags  # noqa: E402

from trainloop.config_util import ConfigError, check_min  # noqa: E402

host_alloc.define_flag()
_CONFIG = flags.DEFINE_string("config", None, "Config spec path.py[:args], without block=.")
_BLOCKS = flags.DEFINE_list(
    "blocks", "pre_ln,parallel,v_skipinit,sas,sas_p,sas_p_nonorm", "Blocks to compare."
)
_OUT = flags.DEFINE_string("out", None, "Output directory (one workdir per block inside).")
_STEPS = flags.DEFINE_integer("steps", 0, "Training steps per block (0 = the config's).")
_ROUNDS = flags.DEFINE_integer("timing_rounds", 3, "Interleaved timing rounds over the blocks.")
_TIMED = flags.DEFINE_integer("timing_steps", 10, "Timed steps per block per round.")
_WARMUP = flags.DEFINE_integer("timing_warmup", 2, "Untimed steps per block before timing.")
_BASELINE = flags.DEFINE_string("baseline", "pre_ln", "Block the relative numbers refer to.")
_OVERRIDE = flags.DEFINE_multi_string(
    "override", [], "Config override dotted.key=value (repeatable), e.g. data.max_documents=200."
)
flags.mark_flags_as_required(["config", "out"])


def run(
    config_spec, blocks, out, steps=0, rounds=3, timed=10, warmup=2, baseline="pre_ln", overrides=()
):
    """Trains (or skips finished) blocks, times them, writes the summary; returns the rows."""
    import jax

    from simplified_tf import compare
    from simplified_tf.model_config import BLOCKS
    from simplified_tf.params import count_params
    from simplified_tf.tasks import make_task_and_data
    from trainloop.train import train_and_evaluate

    if not blocks or len(set(blocks)) != len(blocks):
        raise ConfigError(f"--blocks={blocks} must be a non-empty list without repeats.")
    for b in blocks:
        if b not in BLOCKS:
            raise ConfigError(f"Unknown block {b!r}; valid blocks: {', '.join(BLOCKS)}.")
    for name, value, low in (("steps", steps, 0), ("timing_rounds", rounds, 1),
                             ("timing_steps", timed, 1), ("timing_warmup", warmup, 0)):  # fmt: skip
        check_min(f"--{name}", value, low)
    os.makedirs(out, exist_ok=True)
    configs = {b: compare.load_config(config_spec, b, steps, overrides) for b in blocks}
    tasks = {}
    for b, cfg in configs.items():
        workdir = os.path.join(out, b)
        kind = cfg.model.kind
        if compare.is_finished(workdir, int(cfg.num_steps)):
            print(f"[{b}] finished ({workdir}); skipping training.", file=sys.stderr)
            continue
        print(f"[{b}] training {cfg.num_steps} steps into {workdir}", file=sys.stderr, flush=True)
        tasks[b] = make_task_and_data(cfg, kind)[0]
        result = train_and_evaluate(cfg, workdir, tasks[b])
        cli.exit_if_interrupted(
            result, workdir, "Rerun the same command to resume; finished blocks are skipped."
        )

    print("Timing pass (interleaved)...", file=sys.stderr, flush=True)
    load_before = os.getloadavg()
    programs = {}
    for b, cfg in configs.items():
        task = tasks.get(b) or make_task_and_data(cfg, cfg.model.kind)[0]
        programs[b] = compare.timing_program(cfg, task)
    times = compare.time_interleaved(programs, rounds=rounds, steps=timed, warmup=warmup)
    load_after = os.getloadavg()
    del programs
    jax.clear_caches()

    rows, curves, step_times = [], {}, {}
    for b, cfg in configs.items():
        workdir = os.path.join(out, b)
        curve = compare.eval_curve(workdir)
        curves[b] = curve
        step_times[b] = compare.median(times[b])
        seq = int(cfg.data.seq_len)
        rows.append(
            dict(
                block=b,
                final_step=curve["step"][-1] if curve["step"] else 0,
                eval_loss=curve["loss"][-1] if curve["loss"] else float("nan"),
                eval_accuracy=curve["accuracy"][-1] if curve["accuracy"] else float("nan"),
                params=int(count_params(cfg.model)["total"]),
                step_time_s=step_times[b],
                step_time_min_s=min(times[b]),
                tokens_per_step=int(cfg.batch_size) * seq,
                lr=float(cfg.optimizer.lr),
            )
        )
    rows = compare.summarize(rows, baseline)
    first = next(iter(configs.values()))
    extra = dict(
        config=config_spec,
        overrides=list(overrides),
        kind=first.model.kind,
        steps=int(first.num_steps),
        batch_size=int(first.batch_size),
        seq_len=int(first.data.seq_len),
        tokens_per_step=int(first.batch_size) * int(first.data.seq_len),
        timing=dict(
            rounds=rounds,
            steps_per_round=timed,
            warmup=warmup,
            loadavg_before=[round(x, 2) for x in load_before],
            loadavg_after=[round(x, 2) for x in load_after],
            devices=f"{jax.device_count()} x {jax.devices()[0].platform}",
        ),
    )
    png = os.path.join(out, "curves.png")
    kind = "MLM" if first.model.kind == "bert" else "LM"
    compare.plot_curves(curves, step_times, png, title=f"{kind}: {config_spec}")
    md, js = compare.write_summary(out, rows, extra)
    print(compare.markdown_table(rows))
    print(f"\nLoad average before/after timing: {load_before} / {load_after}")
    print(f"Wrote {md}\n      {js}\n      {png}")
    return rows


def main(argv):
    cli.prologue(argv)
    run(
        _CONFIG.value,
        _BLOCKS.value,
        _OUT.value,
        steps=_STEPS.value,
        rounds=_ROUNDS.value,
        timed=_TIMED.value,
        warmup=_WARMUP.value,
        baseline=_BASELINE.value,
        overrides=_OVERRIDE.value,
    )


if __name__ == "__main__":
    cli.run(main, stop_note=STOP_NOTE)
