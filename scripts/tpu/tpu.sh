#!/usr/bin/env bash
# Cloud TPU VM lifecycle for this suite. Every host runs the same command; scripts/train.py
# --multihost calls jax.distributed.initialize(), which discovers the pod on its own.
#
#   export TPU=my-tpu ZONE=us-central2-b ACCEL=v4-32 RUNTIME=tpu-ubuntu2204-base \
#          REPO=https://github.com/<you>/<this-repo>.git BUCKET=my-bucket
#   scripts/tpu/tpu.sh create
#   scripts/tpu/tpu.sh setup
#   scripts/tpu/tpu.sh train --config=configs/decoder.py:size=paper,block=sas_p --workdir=/mnt/runs/sas_p
#   scripts/tpu/tpu.sh logs
#   scripts/tpu/tpu.sh delete
#
# The workdir must be visible to every host: setup mounts gs://$BUCKET at /mnt/runs with gcsfuse.
set -euo pipefail
: "${TPU:?set TPU}" "${ZONE:?set ZONE}"
ssh_all() { gcloud compute tpus tpu-vm ssh "$TPU" --zone="$ZONE" --worker=all --command="$1"; }

case "${1:-}" in
  create)
    gcloud compute tpus tpu-vm create "$TPU" --zone="$ZONE" \
      --accelerator-type="${ACCEL:?set ACCEL}" --version="${RUNTIME:?set RUNTIME}" ;;
  setup)
    ssh_all "set -e; [ -d suite ] || git clone ${REPO:?set REPO} suite; cd suite && git pull --ff-only;
      python3 -m venv .venv && .venv/bin/pip install -q -e . 'jax[tpu]==0.10.2';
      sudo mkdir -p /mnt/runs && sudo chown \$USER /mnt/runs;
      mountpoint -q /mnt/runs || gcsfuse --implicit-dirs ${BUCKET:?set BUCKET} /mnt/runs" ;;
  train)
    shift
    ssh_all "cd suite && TRAIN_MULTIHOST=1 nohup .venv/bin/python scripts/train.py $* > train.log 2>&1 &" ;;
  logs)
    gcloud compute tpus tpu-vm ssh "$TPU" --zone="$ZONE" --worker=0 --command="tail -n 100 -f suite/train.log" ;;
  stop)  # SIGTERM: every host saves a checkpoint and exits; `train` again resumes.
    ssh_all "pkill -TERM -f scripts/train.py || true" ;;
  delete)
    gcloud compute tpus tpu-vm delete "$TPU" --zone="$ZONE" --quiet ;;
  *)
    echo "usage: $0 create|setup|train <train.py flags>|logs|stop|delete" >&2; exit 2 ;;
esac
