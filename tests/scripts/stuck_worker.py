"""One worker of a 2-worker MultiWorkerMirroredStrategy whose peer is late to an all-reduce.

  TF_CONFIG=... python tests/scripts/stuck_worker.py COLLECTIVE_TIMEOUT_S STUCK_S RUN_DIR

Each worker prints {"ready": task} once the strategy is up (the cluster has formed); then worker
1 sleeps STUCK_S seconds (alive: its coordination-service heartbeats go on, unless the test
freezes it with SIGSTOP) before it joins the all-reduce, which worker 0 joins at once. Each ends
with one JSON line: how long its all-reduce took, and the error it ended with (the one-line
`worker_failures` message, naming RUN_DIR's checkpoint) or null.
"""

import json
import os
import sys
import time

import tensorflow as tf

from yt8m_kd.training import strategy as strategy_lib


def main() -> None:
    timeout_s, stuck_s = float(sys.argv[1]), float(sys.argv[2])
    strategy = strategy_lib.make_strategy("multi_worker", collective_timeout_s=timeout_s)
    task_id = strategy.cluster_resolver.task_id
    print(json.dumps({"ready": task_id}), flush=True)

    @tf.function
    def all_reduce() -> tf.Tensor:
        value = strategy.run(lambda: tf.constant(1.0))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)

    if task_id == 1:
        time.sleep(stuck_s)
    started, error = time.monotonic(), None
    try:
        with strategy_lib.worker_failures(strategy, os.path.join(sys.argv[3], "checkpoints")):
            all_reduce()
    except strategy_lib.WorkerLostError as e:
        error = str(e)
    print(json.dumps({"task": task_id, "seconds": time.monotonic() - started, "error": error}))
    sys.stdout.flush()
    os._exit(0)  # no clean shutdown: the peer may be gone or still asleep


if __name__ == "__main__":
    main()
