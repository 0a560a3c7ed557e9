"""Memory: RSS of a worker across 50 trials (growth from trial 5 to trial 50).

Runs the real command (``python -m search.run``) in a fresh directory with one worker and
reads back, from the finished study, the worker's resident memory that every trial records
at its end (``user_attrs[Attr.METRICS]["worker_rss_mb"]``). Trials 1-4 pay for one-off
allocations (TensorFlow's first graphs, allocator pools), so growth is measured from trial
5: what keeps rising after that is a leak. The sampler is random and the pruner off so that
every trial trains the same number of epochs of the same-sized model.

    python benchmarks/memory.py            # 50 trials, 3 epochs
    python benchmarks/memory.py --quick    # 8 trials, 2 epochs, growth from trial 2 (CI smoke)
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
sys.path.insert(0, str(REPO))

import optuna  # noqa: E402

from search.study import Attr, open_storage  # noqa: E402

STUDY = "deep_dnn"
CHECKPOINTS = (1, 5, 10, 20, 30, 40, 50)  # 1-based trial numbers shown in the table
TARGET_MB = 150  # growth over 50 trials; MB = 10**6 bytes (the stricter reading)


def run_study(trials: int, epochs: int) -> tuple[list[optuna.trial.FrozenTrial], float]:
    """The finished study's trials (by number) and the command's wall seconds."""
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        command = [
            sys.executable,
            "-m",
            "search.run",
            f"study={STUDY}",
            "dataset=digits",
            f"n_trials={trials}",
            "workers=1",
            "sampler=random",
            "pruner=none",
            f"train.epochs={epochs}",
            f"train.patience={epochs}",
            "space.model.dropout_rate=null",  # 0.5 dropout in 20 layers never learns
            f"mlruns_dir={tmp}/mlruns",
        ]
        started = time.perf_counter()
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            tail = done.stderr.strip()[-2000:]
            raise SystemExit(f"search.run failed (exit {done.returncode}): {tail}")
        study = optuna.load_study(
            study_name=STUDY, storage=open_storage(f"{tmp}/mlruns/optuna.journal")
        )
        trials_done = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    return trials_done, seconds


def trial_rows(trials: list[optuna.trial.FrozenTrial]) -> pd.DataFrame:
    """One row per trial: 1-based number, state, worker RSS (MiB) and duration (s)."""
    rows = []
    for trial in trials:
        metrics = trial.user_attrs.get(Attr.METRICS) or {}
        duration = trial.duration.total_seconds() if trial.duration else math.nan
        rows.append(
            {
                "trial": trial.number + 1,
                "state": trial.state.name,
                "rss_mb": round(float(metrics.get("worker_rss_mb", math.nan)), 1),
                "seconds": round(duration, 2),
            }
        )
    return pd.DataFrame(rows, columns=["trial", "state", "rss_mb", "seconds"])


def rss_at(frame: pd.DataFrame, trial: int) -> float:
    return float(frame.loc[frame.trial == trial, "rss_mb"].iloc[0])


def print_report(frame: pd.DataFrame, start: int, epochs: int, wall: float) -> None:
    last = int(frame.trial.max())
    start = start if start in set(frame.trial) else int(frame.trial.min())
    shown = sorted({t for t in (*CHECKPOINTS, start, last) if t in set(frame.trial)})
    print(f"worker RSS, {STUDY} on digits, {len(frame)} trials x {epochs} epochs, 1 worker")
    print(f"| {'trial':>5} | {'state':<8} | {'RSS MiB':>8} | {'trial s':>7} |")
    print(f"|{'-' * 7}|{'-' * 10}|{'-' * 10}|{'-' * 9}|")
    for trial in shown:
        row = frame.loc[frame.trial == trial].iloc[0]
        print(f"| {trial:>5} | {row.state:<8} | {row.rss_mb:>8.1f} | {row.seconds:>7.2f} |")
    missing = frame.rss_mb.isna().sum()
    if missing:
        print(f"warning: {missing} trial(s) recorded no worker_rss_mb")
    growth = rss_at(frame, last) - rss_at(frame, start)
    growth_mb = growth * 2**20 / 1e6
    print(f"growth trial {start} -> {last}: {growth:+.1f} MiB ({growth_mb:+.1f} MB)")
    verdict = "PASS" if growth_mb < TARGET_MB else "MISS"  # NaN growth -> MISS
    note = "" if last >= 50 else f" (only {last} trials: not the target's 50)"
    print(f"target: < {TARGET_MB} MB growth over 50 trials: {verdict}{note}")
    print(f"wall time of the command: {wall:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="8 trials, 2 epochs")
    parser.add_argument("--out", type=Path, default=None, help="CSV (default: benchmarks/results)")
    args = parser.parse_args()
    trials, epochs, start = (8, 2, 2) if args.quick else (args.trials, args.epochs, 5)
    out = args.out or RESULTS / ("memory_quick.csv" if args.quick else "memory.csv")

    finished, wall = run_study(trials, epochs)
    frame = trial_rows(finished)
    if frame.empty:
        raise SystemExit("the study has no trials")
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out, index=False)
    print_report(frame, start, epochs, wall)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
