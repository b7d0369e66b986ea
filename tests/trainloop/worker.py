"""Runs the toy task in a subprocess: for the multi-process and signal tests.

usage: worker.py WORKDIR NUM_STEPS LOCAL_DEVICES [PROCESS_ID NUM_PROCESSES PORT]
(TOY_CHECKPOINT_EVERY=N in the environment: a checkpoint every N steps; default 5)
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

workdir, num_steps, local_devices = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={local_devices}"

import jax  # noqa: E402

if len(sys.argv) > 4:
    process_id, num_processes, port = (int(a) for a in sys.argv[4:7])
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=f"localhost:{port}",
        num_processes=num_processes,
        process_id=process_id,
    )

from toy import make_toy_task, toy_config  # noqa: E402

from trainloop.train import train_and_evaluate  # noqa: E402

every = int(os.environ.get("TOY_CHECKPOINT_EVERY", "5"))
config = toy_config(num_steps=num_steps, checkpoint_every=every, log_every=1, eval_every=0)
result = train_and_evaluate(config, workdir, make_toy_task())
print(f"WORKER_DONE step={result.step} interrupted={result.interrupted}", flush=True)
sys.exit(128 + result.signal if result.interrupted else 0)
