"""Runs the toy task in a subprocess: for the multi-process and signal tests.

usage: worker.py WORKDIR NUM_STEPS LOCAL_DEVICES [PROCESS_ID NUM_PROCESSES PORT]

Env: WORKER_LOG_EVERY (default 1), WORKER_CHECKPOINT_EVERY (default 5). The worker records the
cross-process blocking calls (`multihost_utils` all-gathers, barriers, broadcasts) made while the
loop works on each step, and prints them as `SYNC_CALLS={step: [names]}` (JSON; step 0 = setup).
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

import json  # noqa: E402

from jax.experimental import multihost_utils  # noqa: E402
from toy import make_toy_task, toy_config  # noqa: E402

from trainloop.prefetch import Prefetcher  # noqa: E402
from trainloop.train import train_and_evaluate  # noqa: E402

current = {"step": 0}  # the step the loop is working on (1-based; 0 before the first)
sync_calls: dict[int, list[str]] = {}


def _counted(fn):
    def wrapper(*args, **kwargs):
        sync_calls.setdefault(current["step"], []).append(fn.__name__)
        return fn(*args, **kwargs)

    return wrapper


for name in ("process_allgather", "sync_global_devices", "broadcast_one_to_all"):
    setattr(multihost_utils, name, _counted(getattr(multihost_utils, name)))
_get = Prefetcher.get


def _get_and_mark(self, step):
    current["step"] = step + 1  # the loop fetches the batch of 0-based step `step` first
    return _get(self, step)


Prefetcher.get = _get_and_mark

config = toy_config(
    num_steps=num_steps,
    checkpoint_every=int(os.environ.get("WORKER_CHECKPOINT_EVERY", 5)),
    log_every=int(os.environ.get("WORKER_LOG_EVERY", 1)),
    eval_every=0,
)
result = train_and_evaluate(config, workdir, make_toy_task())
print(f"SYNC_CALLS={json.dumps(sync_calls)}", flush=True)
print(f"WORKER_DONE step={result.step} interrupted={result.interrupted}", flush=True)
sys.exit(128 + result.signal if result.interrupted else 0)
