"""Time SAKD's chunked greedy selection (`select_samples`) against the number of candidates N.

The spec (docs/sakd.md, point 3) asks for a cost linear in N: YouTube-8M train has 3.9M
videos. For each N this draws random [N, dim] float32 features and a random difficulty in [0, 1],
times `select_samples` (best of --repeats) and writes one JSON file with the machine, the settings,
the timings, and seconds(N) / seconds(N_smallest) next to N / N_smallest: the two columns should
agree for linear growth.

    .venv/bin/python benchmarks/selection_benchmark.py
    .venv/bin/python benchmarks/selection_benchmark.py --sizes 10000,100000 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from yt8m_kd import machine as yt8m_machine
from yt8m_kd.distill.selection import select_samples

REPO_ROOT = Path(__file__).resolve().parent.parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        default="10000,100000,1000000",
        help="comma-separated numbers of candidates N",
    )
    parser.add_argument("--dim", type=int, default=64, help="feature size D")
    parser.add_argument("--ratio", type=float, default=0.1, help="fraction selected")
    parser.add_argument("--gamma", type=float, default=0.5, help="diversity weight of the kernel")
    parser.add_argument("--chunk_size", type=int, default=2048, help="candidates per greedy run")
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="timed runs per N, best kept (default: 3 below N = 1M, 1 from there on)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seeds the data and the chunk split")
    parser.add_argument(
        "--output",
        type=Path,
        default=REPO_ROOT / "benchmarks" / "results" / "selection.json",
        help="where the JSON goes",
    )
    args = parser.parse_args(argv)
    args.sizes = [int(size) for size in args.sizes.split(",")]
    if not args.sizes or min(args.sizes) < 1:
        parser.error(f"--sizes must be positive integers; got {args.sizes}")
    if args.repeats is not None and args.repeats < 1:
        parser.error(f"--repeats must be >= 1; got {args.repeats}")
    return args


def machine_info() -> dict:
    return yt8m_machine.machine_info(
        numpy=np.__version__,
        thread_env={
            name: os.environ.get(name)
            for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
        },
    )


def time_selection(args: argparse.Namespace, num_candidates: int) -> dict:
    rng = np.random.default_rng(args.seed)
    features = rng.normal(size=(num_candidates, args.dim)).astype(np.float32)  # [N, D]
    d_hat = rng.uniform(size=num_candidates)  # [N]
    repeats = args.repeats or (3 if num_candidates < 1_000_000 else 1)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        selected = select_samples(
            features,
            d_hat,
            args.ratio,
            gamma=args.gamma,
            chunk_size=args.chunk_size,
            seed=args.seed,
        )
        times.append(time.perf_counter() - start)
    seconds = min(times)
    return {
        "N": num_candidates,
        "selected": int(selected.shape[0]),
        "repeats": repeats,
        "seconds": seconds,
        "all_seconds": times,
        "seconds_per_1k_candidates": seconds / num_candidates * 1000,
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    machine = machine_info()
    results = []
    for num_candidates in args.sizes:
        result = time_selection(args, num_candidates)
        print(
            f"N={result['N']:>9,}  selected={result['selected']:>8,}  "
            f"{result['seconds']:8.3f} s  {result['seconds_per_1k_candidates'] * 1000:7.3f} ms/1k",
            flush=True,
        )
        results.append(result)

    smallest = min(results, key=lambda result: result["N"])
    scaling = [
        {
            "N": result["N"],
            "size_ratio": result["N"] / smallest["N"],
            "time_ratio": result["seconds"] / smallest["seconds"],
        }
        for result in results
    ]
    report = {
        "benchmark": "select_samples (chunked fast greedy DPP MAP)",
        "machine": machine,
        "settings": {
            "sizes": args.sizes,
            "dim": args.dim,
            "ratio": args.ratio,
            "gamma": args.gamma,
            "chunk_size": args.chunk_size,
            "repeats": args.repeats,
            "seed": args.seed,
            "features_dtype": "float32",
        },
        "results": results,
        "scaling_vs_smallest": scaling,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    for row in scaling:
        print(f"N/N0={row['size_ratio']:8.1f}  t/t0={row['time_ratio']:8.2f}")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
