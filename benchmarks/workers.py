"""Trials per hour with ``workers=1`` against ``workers=N`` on digits (same study settings).

Each configuration runs the real command (``python -m search.run``) in a fresh directory,
so start-up (TensorFlow import, data, worker processes) is included, as a user sees it.
The sampler is random and the pruner off so that every configuration trains the same kind
of trials; every trial trains ``--epochs`` epochs (early stopping off).

    python benchmarks/workers.py                # 20 trials, 10 epochs, workers 1 and 2
    python benchmarks/workers.py --quick        # 4 trials, 2 epochs (CI smoke test)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from search.study import count_finished, load_existing_study

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def run_study(workers: int, trials: int, epochs: int) -> float:
    """Wall seconds of one ``search.run`` with ``workers`` worker processes."""
    with tempfile.TemporaryDirectory(prefix="bench-workers-") as tmp:
        command = [
            sys.executable,
            "-m",
            "search.run",
            "study=deep_dnn",
            "dataset=digits",
            f"n_trials={trials}",
            f"workers={workers}",
            f"train.epochs={epochs}",
            f"train.patience={epochs}",
            "sampler=random",
            "pruner=none",
            "space.model.dropout_rate=null",  # 0.5 dropout in 20 layers never learns
            f"mlruns_dir={tmp}/mlruns",
        ]
        started = time.perf_counter()
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"workers={workers} failed: {done.stderr.strip()[-500:]}")
        finished = count_finished(load_existing_study(f"{tmp}/mlruns/optuna.journal", "deep_dnn"))
    if finished != trials:
        raise SystemExit(f"workers={workers} finished {finished} trials, not {trials}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--quick", action="store_true", help="4 trials, 2 epochs")
    parser.add_argument("--out", type=Path, default=None, help="CSV (default: benchmarks/results)")
    args = parser.parse_args()
    trials, epochs = (4, 2) if args.quick else (args.trials, args.epochs)

    rows = []
    for workers in args.workers:
        seconds = run_study(workers, trials, epochs)
        rows.append(
            {
                "workers": workers,
                "trials": trials,
                "epochs": epochs,
                "wall_seconds": round(seconds, 1),
                "trials_per_hour": round(trials / seconds * 3600, 1),
            }
        )
    table = pd.DataFrame(rows)
    table["speedup"] = (table["trials_per_hour"] / table["trials_per_hour"].iloc[0]).round(2)
    print(table.to_string(index=False))
    out = args.out or RESULTS / ("workers_quick.csv" if args.quick else "workers.csv")
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
