"""Study size: per-trial harness overhead (sampling + storage + tracking, with a trivial
model) at trial 10, 100 and 1,000 of one study, for the default storage.

Runs the real command (``python -m search.run``) in a fresh directory with one worker
training one trial at a time (``pack=1``), the default storage (journal file), the default
sampler (TPE) and pruner (median), as a user gets them, and a trivial model (1 x 8 units, 1
epoch on digits) so that the harness's share dominates. From the finished study: a trial's
cycle is the start of the next trial minus its own start (the last trial: its completion),
its training the sum of its Keras epochs' seconds (``train_seconds``), and its overhead the
difference. Each checkpoint shows the median over the 11 trials centred on it; the target
is that overhead at the last checkpoint stays within 2x of overhead at trial 10.

    python benchmarks/study_size.py            # 1,000 trials
    python benchmarks/study_size.py --quick    # 100 trials (CI smoke test)
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
CHECKPOINTS = (10, 100, 1000)  # 1-based trial numbers
WINDOW = 11  # trials in each checkpoint's median, centred on it
TARGET_RATIO = 2.0


def run_study(trials: int) -> tuple[list[optuna.trial.FrozenTrial], float]:
    """The finished study's trials (by number) and the command's wall seconds."""
    with tempfile.TemporaryDirectory(prefix="bench-study-size-") as tmp:
        command = [
            sys.executable,
            "-m",
            "search.run",
            f"study={STUDY}",
            "dataset=digits",
            f"n_trials={trials}",
            "workers=1",
            "pack=1",  # one trial at a time: a trial's cycle is the next one's start
            "model.depth=1",
            "model.width=8",
            "train.epochs=1",
            "train.patience=1",
            "diagnostics.enabled=false",
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
    """One row per started trial: cycle, training and overhead seconds."""
    started = [t for t in trials if t.datetime_start is not None]
    rows = []
    for trial, following in zip(started, [*started[1:], None], strict=True):
        end = following.datetime_start if following else trial.datetime_complete
        begun = trial.datetime_start
        cycle = (end - begun).total_seconds() if end and begun else math.nan
        train = float((trial.user_attrs.get(Attr.METRICS) or {}).get("train_seconds", math.nan))
        rows.append(
            {
                "trial": trial.number + 1,
                "state": trial.state.name,
                "cycle_s": round(cycle, 4),
                "train_s": round(train, 4),
                "overhead_s": round(cycle - train, 4),
            }
        )
    return pd.DataFrame(rows, columns=["trial", "state", "cycle_s", "train_s", "overhead_s"])


def window_medians(frame: pd.DataFrame, trial: int) -> pd.Series:
    """Medians of the seconds columns over the ``WINDOW`` rows centred on ``trial``."""
    centre = int(frame.index[frame.trial == trial][0])
    half = WINDOW // 2
    rows = frame.iloc[max(centre - half, 0) : centre + half + 1]
    return rows[["cycle_s", "train_s", "overhead_s"]].median()


def print_report(frame: pd.DataFrame, wall: float) -> None:
    shown = [t for t in CHECKPOINTS if t in set(frame.trial)]
    if not shown:
        raise SystemExit(f"the study has {len(frame)} trials: fewer than trial {CHECKPOINTS[0]}")
    print(
        f"per-trial cycle, {STUDY} on digits (1 x 8 units, 1 epoch), {len(frame)} trials, "
        f"TPE + median pruner, journal storage; median of {WINDOW} trials around each"
    )
    print(f"| {'trial':>5} | {'cycle s':>8} | {'train s':>8} | {'overhead s':>10} |")
    print(f"|{'-' * 7}|{'-' * 10}|{'-' * 10}|{'-' * 12}|")
    overhead = {}
    for trial in shown:
        medians = window_medians(frame, trial)
        overhead[trial] = float(medians.overhead_s)
        print(
            f"| {trial:>5} | {medians.cycle_s:>8.3f} | {medians.train_s:>8.3f} "
            f"| {medians.overhead_s:>10.3f} |"
        )
    missing = frame.train_s.isna().sum()
    if missing:
        print(f"warning: {missing} trial(s) recorded no train_seconds")
    first, last = shown[0], shown[-1]
    ratio = overhead[last] / overhead[first] if overhead[first] > 0 else math.nan
    verdict = "PASS" if ratio <= TARGET_RATIO else "MISS"  # NaN -> MISS
    print(f"overhead trial {last} / trial {first}: {ratio:.2f}x")
    note = "" if last >= CHECKPOINTS[-1] else f" (only {len(frame)} trials: not the target's 1000)"
    print(f"target: <= {TARGET_RATIO:g}x: {verdict}{note}")
    print(f"wall time of the command: {wall:.1f} s ({wall / len(frame):.3f} s per trial)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="100 trials")
    parser.add_argument("--out", type=Path, default=None, help="CSV (default: benchmarks/results)")
    args = parser.parse_args()
    trials = 100 if args.quick else args.trials
    out = args.out or RESULTS / ("study_size_quick.csv" if args.quick else "study_size.csv")

    finished, wall = run_study(trials)
    frame = trial_rows(finished)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out, index=False)
    print_report(frame, wall)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
