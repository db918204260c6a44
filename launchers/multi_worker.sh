#!/usr/bin/env bash
# Runs launchers/train.py as N MultiWorkerMirroredStrategy workers on this machine.
#
#   launchers/multi_worker.sh 2 --flagfile=models/tiny_teacher.flags \
#       --train_data_pattern='data/demo/train-*.tfrecord' --run_dir=runs/mw
#
# Each worker gets a TF_CONFIG naming all workers (localhost ports from $BASE_PORT, default 23456)
# and its own index; worker 0 is the chief and writes the run directory. On a real cluster, start
# one `python launchers/train.py --strategy=multi_worker ...` per machine with a TF_CONFIG whose
# "cluster" lists every machine's host:port and whose "task" names that machine's index. --run_dir
# must be on a file system that every worker shares (gs://, NFS): all workers restore the chief's
# checkpoints, and a run whose workers restored different steps is refused.
#
# A lost worker stops the run: the others exit with one line, `train.py: error: worker 1 died
# (...)` or `... stopped responding (no heartbeat for 10 s)`, naming the checkpoint to resume
# from, within seconds (a killed process), about 10 to 15 s (a frozen process or lost host: the
# coordination service's heartbeat timeout) or, for a worker that is alive but stuck, the
# collective timeout of yt8m_kd/training/strategy.py (COLLECTIVE_TIMEOUT_S, 600 s). The
# collectives need every worker, so restart all of them with the same command: they resume from
# the chief's last checkpoint. This script then exits with the failed worker's status.
set -euo pipefail
num_workers=${1:?usage: multi_worker.sh NUM_WORKERS TRAIN_FLAGS...}
shift
base_port=${BASE_PORT:-23456}
here=$(cd "$(dirname "$0")" && pwd)

workers=""
for ((i = 0; i < num_workers; i++)); do
  workers+="${workers:+,}\"localhost:$((base_port + i))\""
done

pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
for ((i = 0; i < num_workers; i++)); do
  TF_CONFIG="{\"cluster\": {\"worker\": [$workers]}, \"task\": {\"type\": \"worker\", \"index\": $i}}" \
    python "$here/train.py" --strategy=multi_worker "$@" &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do
  wait "$pid" || status=$?
done
trap - EXIT
exit $status
