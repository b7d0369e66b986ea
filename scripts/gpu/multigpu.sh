#!/usr/bin/env bash
# GPUs. One box: a single process drives all its GPUs (no distributed init needed):
#   scripts/gpu/multigpu.sh setup
#   scripts/gpu/multigpu.sh train --config=configs/decoder.py:size=paper,block=sas_p --workdir=runs/sas_p
# Several boxes (no SLURM): run on each host, with the same coordinator and its own index:
#   JAX_COORDINATOR_ADDRESS=host0:1234 NUM_HOSTS=2 HOST_ID=0 scripts/gpu/multigpu.sh train ...
# Under SLURM, `srun scripts/gpu/multigpu.sh train ...` with TRAIN_MULTIHOST=1 is auto-detected.
# The workdir must be on a filesystem every host sees (NFS, gcsfuse, ...).
set -euo pipefail
cd "$(dirname "$0")/../.."
case "${1:-}" in
  setup)
    python3 -m venv .venv && .venv/bin/pip install -q -e . 'jax[cuda12]==0.10.2' ;;
  train)
    shift
    if [ -n "${NUM_HOSTS:-}" ]; then
      exec .venv/bin/python scripts/train.py --multihost \
        --num_processes="$NUM_HOSTS" --process_id="${HOST_ID:?set HOST_ID}" "$@"
    fi
    exec .venv/bin/python scripts/train.py "$@" ;;
  *)
    echo "usage: $0 setup|train <train.py flags>" >&2; exit 2 ;;
esac
