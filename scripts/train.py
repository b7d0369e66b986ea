"""Trains any task of the suite: `python scripts/train.py --config=configs/X.py:args --workdir=W`.

Overrides: `--config.optimizer.lr=3e-4 --config.num_steps=2000`. Running the same command again resumes
from the latest checkpoint in W. Multi-host (TPU pods, multi-node GPU): pass `--multihost` (or set
TRAIN_MULTIHOST=1) on every host so `jax.distributed.initialize()` runs before any other JAX call.
"""

from __future__ import annotations

import importlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from trainloop import signals  # noqa: E402  (stdlib only)

STOP_NOTE = (
    "before training started; no checkpoint was written by this command (any already in the "
    "workdir are unchanged)."
)
if __name__ == "__main__":  # first thing, so a stop during the imports below gets a message too
    signals.install(STOP_NOTE)

from trainloop import cli, host_alloc  # noqa: E402  (import no jax: run before jax starts threads)

# CPU speed: keep freed host memory mapped so XLA's per-step temporary buffer is not page-faulted in
# again every step (see trainloop/host_alloc.py; 5-15% per decoder step on CPU). Must precede any
# thread creation, hence before flag parsing. `--host_malloc=default` keeps glibc's defaults.
host_alloc.apply_from_argv(sys.argv)

from absl import flags, logging  # noqa: E402

from trainloop.config_util import check_choice  # noqa: E402

# Task name -> "module:factory"; each factory maps a config to a trainloop.task.Task.
TASKS = {
    "linear_regression": "linear_tf.task:make_task",
    "lm": "simplified_tf.tasks:make_lm_task",
    "mlm": "simplified_tf.tasks:make_mlm_task",
}

host_alloc.define_flag()
_CONFIG = cli.define_config_flag("config", "Config file (path.py:args).")
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Output directory (metrics, checkpoints, config.json)."
)
_MULTIHOST = flags.DEFINE_bool(
    "multihost",
    os.environ.get("TRAIN_MULTIHOST", "") not in ("", "0"),
    "Call jax.distributed.initialize() first (set on every host of a multi-host launch).",
)
_NUM_PROCESSES = flags.DEFINE_integer(
    "num_processes",
    None,
    "With --multihost where JAX cannot detect the cluster (plain multi-node GPU).",
)
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "With --num_processes: this host's index.")
flags.mark_flags_as_required(["config", "workdir"])


def make_task(config):
    """Builds the Task named by `config.task`."""
    check_choice("task", config.task, TASKS)
    module, factory = TASKS[config.task].split(":")
    return getattr(importlib.import_module(module), factory)(config)


def main(argv):
    cli.prologue(argv)  # library INFO chatter stays off the console; the loop announces on stderr
    import jax

    if _MULTIHOST.value:
        # TPU pods, SLURM and similar are auto-detected; otherwise JAX_COORDINATOR_ADDRESS=host:port
        # plus --num_processes/--process_id describe the cluster.
        jax.distributed.initialize(num_processes=_NUM_PROCESSES.value, process_id=_PROCESS_ID.value)
    import flax
    import optax

    from trainloop.defaults import validate
    from trainloop.train import train_and_evaluate

    config = validate(_CONFIG.value)  # every shared key, before any data or model work

    logging.info(
        "jax %s, flax %s, optax %s; process %d/%d; %d local / %d global devices: %s",
        jax.__version__, flax.__version__, optax.__version__, jax.process_index(),
        jax.process_count(), jax.local_device_count(), jax.device_count(), jax.devices(),
    )  # fmt: skip
    task = make_task(config)
    result = train_and_evaluate(config, _WORKDIR.value, task)
    cli.exit_if_interrupted(result, _WORKDIR.value)
    if jax.process_index() == 0:
        print(f"Finished at step {result.step}. Metrics: {_WORKDIR.value}/metrics.jsonl")
        for name, metrics in (
            ("train", result.last_train_metrics),
            ("eval", result.last_eval_metrics),
        ):
            # Per-layer traces (e.g. "scalars/layer03/beta_ff") stay in metrics.jsonl only.
            shown = {k: v for k, v in sorted((metrics or {}).items()) if k.count("/") == 1}
            if shown:
                print(f"  {name}: " + ", ".join(f"{k}={v:.5g}" for k, v in shown.items()))


def run():
    # Expected failures (bad config, NaN, damaged checkpoints, a full disk, signals before the loop)
    # end in one paragraph and an exit status; see trainloop/cli.py.
    cli.run(main, stop_note=STOP_NOTE)


if __name__ == "__main__":
    run()
