"""Search efficiency: this harness against keras-tuner's Hyperband, same problem, same wall budget.

Same data (digits, the harness's fixed splits), same model family (the 20x100 ELU/He dense
net), same space (learning rate log 1e-4..1e-1, batch norm on/off, dropout 0..0.5, Nadam),
same epoch cap (27), same wall-clock budget from process launch (imports and start-up
count for both). Three arms, each a process of its own, per seed:

- ``keras-tuner``: ``Hyperband(factor=3, max_epochs=27)`` (``benchmarks/kt_hyperband.py``);
- ``harness``: ``python -m search.run`` with its defaults (TPE sampler, median pruner,
  early stopping), only the space bounds and ``train.epochs=27`` set;
- ``harness, no pruning``: the same with ``pruner=none``.

The best validation accuracy each arm can hand over (keras-tuner: its best trial's
score; the harness: its best complete trial) is followed against wall time. The target
is keras-tuner's median final best; the table gives each arm's median time to reach it
(over seeds), its ratio to keras-tuner's, and the test accuracy of each run's winner.

A second table races a *completed* Hyperband (one iteration, a 9-epoch cap, run to its
end): per seed, its wall time and best score, then the harness (its defaults,
``train.epochs=9``) given that wall time, and the harness's time to reach that score as a
share of it (target <= 0.25).

    python benchmarks/search_efficiency.py            # 3 seeds x 300 s per arm, then 1
                                                      # completed Hyperband (~65 min)
    python benchmarks/search_efficiency.py --quick    # 1 seed x 45 s; a 3-epoch Hyperband
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
KT, HARNESS, NO_PRUNING = "keras-tuner", "harness", "harness, no pruning"
SPACE = [
    "space.optimizer.learning_rate.low=1e-4",
    "space.optimizer.learning_rate.high=0.1",
    "space.model.dropout_rate.step=null",  # continuous 0..0.5, as keras-tuner's Float
]


def run_keras_tuner(
    seed: int, budget: float, tmp: Path, kt_args: tuple[str, ...] = ()
) -> tuple[pd.DataFrame, float]:
    """keras-tuner's trials (seconds from launch, score) and its winner's test accuracy."""
    out = tmp / "kt.csv"
    started = time.time()
    command = [sys.executable, str(REPO / "benchmarks" / "kt_hyperband.py"), "--seed", str(seed)]
    command += ["--deadline", str(started + budget), "--out", str(out), *kt_args]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"keras-tuner seed {seed} failed: {done.stderr.strip()[-800:]}")
    trials = pd.read_csv(out)
    winner = json.loads(out.with_suffix(".json").read_text())
    frame = pd.DataFrame(
        {"seconds": trials["end_unix"] - started, "value": trials["score"], "finished": 1}
    )
    return frame, float(winner["test_accuracy"])


def run_harness(
    seed: int, budget: float, tmp: Path, pruning: bool, epochs: int = 27
) -> tuple[pd.DataFrame, float]:
    """The harness's finished trials (seconds from launch, value of complete ones) and the
    test accuracy of its best complete trial within the budget."""
    command = [sys.executable, "-m", "search.run", "study=deep_dnn", "dataset=digits"]
    command += [f"seed={seed}", "n_trials=100000", f"timeout={budget}", f"train.epochs={epochs}"]
    command += [*SPACE, f"mlruns_dir={tmp}/mlruns", *([] if pruning else ["pruner=none"])]
    started = time.time()
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:  # past the budget nothing counts: stop it there (it closes its trial and exits 143)
        _, stderr = process.communicate(timeout=budget + 1)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate()
    if process.returncode not in (0, 143):
        raise SystemExit(f"harness seed {seed} failed: {stderr.decode()[-800:]}")
    return _harness_trials(tmp / "mlruns" / "optuna.journal", started, budget)


def _harness_trials(journal: Path, started: float, budget: float) -> tuple[pd.DataFrame, float]:
    import optuna

    from search.study import Attr, open_storage

    study = optuna.load_study(study_name="deep_dnn", storage=open_storage(str(journal)))
    rows, best, test_accuracy = [], -math.inf, math.nan
    for trial in study.get_trials(deepcopy=False):
        if not trial.state.is_finished() or trial.datetime_complete is None:
            continue
        seconds = trial.datetime_complete.timestamp() - started
        complete = trial.state == optuna.trial.TrialState.COMPLETE
        value = float(trial.value) if complete and trial.value is not None else math.nan
        rows.append({"seconds": seconds, "value": value, "finished": 1})
        if complete and seconds <= budget and value > best:
            best = value
            test_accuracy = float(trial.user_attrs[Attr.METRICS]["test_accuracy"])
    return pd.DataFrame(rows), test_accuracy


def run_arm(arm: str, seed: int, budget: float) -> tuple[pd.DataFrame, float]:
    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
        if arm == KT:
            frame, test_accuracy = run_keras_tuner(seed, budget, Path(tmp))
        else:
            frame, test_accuracy = run_harness(seed, budget, Path(tmp), pruning=arm == HARNESS)
    frame = frame[frame["seconds"] <= budget].sort_values("seconds")
    frame = frame.assign(arm=arm, seed=seed, best=frame["value"].cummax())
    return frame.reset_index(drop=True), test_accuracy


def race_completed(seed: int, max_epochs: int) -> dict[str, float]:
    """A completed Hyperband (one iteration) and the harness given its wall time."""
    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
        started = time.time()
        kt_args = ("--max-epochs", str(max_epochs), "--iterations", "1")
        kt, _ = run_keras_tuner(seed, 1e9, Path(tmp), kt_args)
        wall = time.time() - started
    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
        harness, _ = run_harness(seed, wall, Path(tmp), pruning=True, epochs=max_epochs)
    target = float(kt["value"].max())
    harness = harness[harness["seconds"] <= wall].sort_values("seconds")
    harness = harness.assign(best=harness["value"].cummax())
    reached = time_to(harness, target)
    return {
        "seed": seed,
        "max_epochs": max_epochs,
        "kt_trials": len(kt),
        "kt_wall_seconds": wall,
        "kt_best": target,
        "harness_trials": len(harness),
        "harness_best": float(harness["value"].max()),
        "harness_time_to_kt_best": reached,
        "share_of_kt_wall": reached / wall,
    }


def print_completed(rows: pd.DataFrame) -> None:
    print("completed Hyperband (1 iteration) vs the harness given its wall time")
    print(
        "| seed | kt trials | kt wall s | kt best | harness trials | harness best | "
        "harness s to kt best | share of kt wall |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows.itertuples():
        print(
            f"| {r.seed} | {r.kt_trials} | {r.kt_wall_seconds:.0f} | {r.kt_best:.4f} | "
            f"{r.harness_trials} | {r.harness_best:.4f} | {r.harness_time_to_kt_best:.0f} | "
            f"{r.share_of_kt_wall:.2f} |"
        )
    share = float(rows["share_of_kt_wall"].median())
    print(
        f"target: share of a completed Hyperband's wall <= 0.25: {share:.2f} "
        f"{'PASS' if share <= 0.25 else 'MISS'}"
    )


def time_to(frame: pd.DataFrame, target: float) -> float:
    """Seconds from launch until the best-so-far reached ``target`` (inf: never)."""
    hit = frame.loc[frame["best"] >= target, "seconds"]
    return float(hit.iloc[0]) if len(hit) else math.inf


def summarize(trials: pd.DataFrame, runs: pd.DataFrame) -> tuple[pd.DataFrame, float]:
    target = float(runs.loc[runs["arm"] == KT, "final_best"].median())
    runs["time_to_target"] = [
        time_to(trials[(trials["arm"] == r.arm) & (trials["seed"] == r.seed)], target)
        for r in runs.itertuples()
    ]
    table = runs.groupby("arm", sort=False).agg(
        seeds=("seed", "count"),
        trials=("trials", "median"),
        final_best=("final_best", "median"),
        time_to_target=("time_to_target", "median"),
        test_accuracy=("test_accuracy", "median"),
        min_test_accuracy=("test_accuracy", "min"),
    )
    table["ratio_vs_kt"] = table["time_to_target"] / table.loc[KT, "time_to_target"]
    return table.reset_index(), target


def plot(trials: pd.DataFrame, target: float, budget: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 5))
    ax = fig.add_subplot()
    colours = {KT: "tab:red", HARNESS: "tab:blue", NO_PRUNING: "tab:green"}
    for (arm, seed), run in trials.groupby(["arm", "seed"], sort=False):
        run = run.dropna(subset=["best"])
        xs = [*run["seconds"], budget]
        ys = [*run["best"], run["best"].iloc[-1]] if len(run) else []
        label = arm if seed == trials.loc[trials["arm"] == arm, "seed"].min() else None
        if ys:
            ax.step(xs, ys, where="post", color=colours[str(arm)], alpha=0.8, label=label)
    ax.axhline(target, color="grey", linestyle="--", label=f"target {target:.4f}")
    ax.set(xlabel="wall seconds from launch", ylabel="best validation accuracy so far")
    ax.set_xlim(0, budget)
    ax.set_ylim(max(0.0, target - 0.25), 1.0)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title(
        "digits, 20x100 dense net: best val accuracy against wall time (one line per seed)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def print_table(table: pd.DataFrame, target: float, budget: float, seeds: int) -> None:
    print(f"search efficiency, digits, 20x100 dense net, {budget:.0f} s per run, {seeds} seed(s)")
    print(f"target = keras-tuner's median final best validation accuracy = {target:.4f}")
    head = "| arm | seeds | trials | final best | time to target s | ratio vs kt | test acc |"
    print(head)
    print("|---|---|---|---|---|---|---|")
    for row in table.itertuples():
        print(
            f"| {row.arm} | {row.seeds} | {row.trials:.0f} | {row.final_best:.4f} | "
            f"{row.time_to_target:.0f} | {row.ratio_vs_kt:.2f} | {row.test_accuracy:.4f} |"
        )
    harness = table.set_index("arm").loc[HARNESS]
    kt = table.set_index("arm").loc[KT]
    time_ok = "PASS" if harness["ratio_vs_kt"] <= 0.5 else "MISS"
    test_ok = "PASS" if harness["test_accuracy"] >= kt["test_accuracy"] else "MISS"
    print(
        f"target: time-to-target ratio <= 0.5: {harness['ratio_vs_kt']:.2f} {time_ok}; "
        f"winner test accuracy >= keras-tuner's: {harness['test_accuracy']:.4f} vs "
        f"{kt['test_accuracy']:.4f} {test_ok}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--budget", type=float, default=300.0, help="wall seconds per run")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1 seed, 45 s per run")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    parser.add_argument(
        "--completed-seeds", type=int, default=1, help="completed Hyperbands to race (0: none)"
    )
    args = parser.parse_args()
    budget, seeds = (45.0, 1) if args.quick else (args.budget, args.seeds)
    stem = "search_efficiency_quick" if args.quick else "search_efficiency"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    curves, runs = [], []
    for seed in range(seeds):
        for arm in (KT, HARNESS, NO_PRUNING):  # interleaved: drift of the machine hits all
            frame, test_accuracy = run_arm(arm, seed, budget)
            curves.append(frame)
            final = float(frame["best"].max()) if frame["best"].notna().any() else math.nan
            runs.append(
                {
                    "arm": arm,
                    "seed": seed,
                    "trials": len(frame),
                    "final_best": final,
                    "test_accuracy": test_accuracy,
                }
            )
            print(f"  {arm}, seed {seed}: {len(frame)} trials, best {final:.4f}", flush=True)
    trials, runs_frame = pd.concat(curves, ignore_index=True), pd.DataFrame(runs)
    table, target = summarize(trials, runs_frame)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    trials.to_csv(args.out_dir / f"{stem}_trials.csv", index=False)
    runs_frame.to_csv(args.out_dir / f"{stem}_runs.csv", index=False)
    table.to_csv(args.out_dir / f"{stem}.csv", index=False)
    plot(trials, target, budget, args.out_dir / f"{stem}.png")
    print_table(table, target, budget, seeds)
    print(f"wrote {args.out_dir / stem}.csv, _runs.csv, _trials.csv, .png")
    if args.completed_seeds:
        cap = 3 if args.quick else 9
        completed = pd.DataFrame([race_completed(s, cap) for s in range(args.completed_seeds)])
        completed.to_csv(args.out_dir / f"{stem}_completed.csv", index=False)
        print_completed(completed)


if __name__ == "__main__":
    main()
