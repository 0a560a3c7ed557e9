"""Finished trials per hour: today's defaults against the previous ones, same study.

Runs the real command (``python -m search.run study=deep_dnn dataset=digits``) as a user
does, with its defaults (TPE, median pruner, early stopping), once per arm and seed,
alternating arms:

- ``previous``: ``train.steps_per_execution=1 train.traced_models=0 pack=1`` (every step a
  call into the graph, every trial traces its own graphs, one trial at a time: the defaults
  before issue 16);
- ``alone``: the defaults with ``pack=1`` (kept traces, 32 steps per call);
- ``fixed``: the defaults with ``pack_queue=1``: a pack of as many places as trials asked
  (up to 8), none waiting, so places idle as members stop;
- ``default``: the defaults as they are (``pack=auto``: trials asked together train as a fused
  pack of up to 8 places, ``search.packs``, a waiting trial taking a freed place);
- ``jit``: the defaults with ``train.jit_compile=true`` (XLA compiles each kind of pack).

``previous`` and ``alone`` train the same trials bit for bit (the same seed gives the same
sampled parameters, and neither setting changes a result), so their best value must be the
same; the table checks it. ``default`` samples an ask of trials before any ends (TPE with a constant
liar) and trains members on shared batches: its best value must be no worse (median over
seeds). Per arm: the study's own seconds (first trial start to last trial end; the
command's wall time, start-up included, beside it), finished trials per hour from the
study's seconds, tracing seconds per trial (per pack, a first member's first epoch minus
its median later epoch; summed, over the trials), the share of trials that trained on a
kept model, and ``slots_used``: of the place-epochs packs ran (a pack runs until its last
member stops), the share that trained a running member. The ratio rows are over
``previous``: medians over seeds.

    python benchmarks/trial_speed.py            # 3 seeds x 10 trials (~15 min)
    python benchmarks/trial_speed.py --quick    # 1 seed x 3 trials of 2 epochs, lr only (CI)
    python benchmarks/trial_speed.py --override '~space.model'   # the learning rate only
"""

from __future__ import annotations

import argparse
import math
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import optuna  # noqa: E402

from search.study.names import Attr  # noqa: E402
from search.study.storage import open_storage  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
ARMS = {
    "previous": ["train.steps_per_execution=1", "train.traced_models=0", "pack=1"],
    "alone": ["pack=1"],
    "fixed": ["pack_queue=1"],
    "default": [],
    "jit": ["train.jit_compile=true"],
}
STUDY = "deep_dnn"


def run_arm(arm: str, seed: int, trials: int, extra: list[str]) -> dict[str, float | str | int]:
    """One ``search.run`` of ``arm``: its figures from the finished study."""
    with tempfile.TemporaryDirectory(prefix="bench-trial-speed-") as tmp:
        wall = run_study(arm, trials, seed, Path(tmp) / "mlruns", [*ARMS[arm], *extra])
        study = optuna.load_study(
            study_name=STUDY, storage=open_storage(f"{tmp}/mlruns/optuna.journal")
        )
        finished = [t for t in study.trials if t.state.is_finished() and t.datetime_complete]
    return {"arm": arm, "seed": seed, "wall_seconds": wall, **_figures(finished)}


def run_study(
    label: str,
    trials: int,
    seed: int,
    mlruns: Path,
    overrides: list[str],
    python: Sequence[str] = (sys.executable,),
) -> float:
    """The real command (``python -m search.run study=deep_dnn dataset=digits``, run by
    ``python``: the interpreter, or it under a profiler) on ``mlruns``; its wall seconds."""
    command = [
        *python,
        "-m",
        "search.run",
        f"study={STUDY}",
        "dataset=digits",
        f"n_trials={trials}",
        f"seed={seed}",
        f"mlruns_dir={mlruns}",
        *overrides,
    ]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{label} failed (exit {done.returncode}): {done.stderr[-1500:]}")
    return time.perf_counter() - started


def _figures(trials: list[optuna.trial.FrozenTrial]) -> dict[str, float | int]:
    starts = [t.datetime_start for t in trials if t.datetime_start]
    ends = [t.datetime_complete for t in trials if t.datetime_complete]
    seconds = (max(ends) - min(starts)).total_seconds() if starts and ends else math.nan
    metrics = [_metrics(t) for t in trials]
    values = [t.value for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    return {
        "slots_used": _slots_used(trials),
        "trials": len(trials),
        "study_seconds": seconds,
        "trials_per_hour": len(trials) / seconds * 3600 if seconds else math.nan,
        "tracing_per_trial": _tracing(trials) / len(trials) if trials else math.nan,
        "reused": statistics.fmean(m.get("reused_traces", 0.0) for m in metrics) if metrics else 0,
        "packed": statistics.fmean(len(p) for p in _packs(trials) for _ in p) if trials else 1,
        "best_value": max(values) if values else math.nan,
    }


def _metrics(trial: optuna.trial.FrozenTrial) -> dict[str, float]:
    return trial.user_attrs.get(Attr.METRICS) or {}


def _started(trial: optuna.trial.FrozenTrial) -> int:
    """The pack's epoch the trial started at (0: with its pack, or alone)."""
    train = (trial.user_attrs.get(Attr.CONFIG) or {}).get("train", {})
    return int(train.get("pack_epoch") or 0)


def _packs(trials: list[optuna.trial.FrozenTrial]) -> list[list[optuna.trial.FrozenTrial]]:
    """Trials by the pack they trained in (its seed); a trial alone is a pack of its own."""
    packs: dict[object, list[optuna.trial.FrozenTrial]] = {}
    for trial in trials:
        seed = (trial.user_attrs.get(Attr.CONFIG) or {}).get("train", {}).get("pack_seed")
        packs.setdefault(seed if seed is not None else f"alone {trial.number}", []).append(trial)
    return list(packs.values())


def _tracing(trials: list[optuna.trial.FrozenTrial]) -> float:
    """Seconds the packs spent tracing: per pack, a first member's first epoch less its
    median later epoch (members that start later never trace)."""
    total = 0.0
    for pack in _packs(trials):
        first = [_metrics(t) for t in pack if _started(t) == 0]
        timed = [m for m in first if "first_epoch_seconds" in m and "seconds_per_epoch" in m]
        if timed:
            total += max(0.0, timed[0]["first_epoch_seconds"] - timed[0]["seconds_per_epoch"])
    return total


def _slots_used(trials: list[optuna.trial.FrozenTrial]) -> float:
    """Of the place-epochs the packs ran (its places x its epochs, a pack running until
    its last member stops), the share that trained a running member."""
    ran = used = 0
    for pack in _packs(trials):
        epochs = [len(t.intermediate_values) for t in pack]
        length = max(_started(t) + e for t, e in zip(pack, epochs, strict=True))
        starters = sum(_started(t) == 0 for t in pack)  # a pack starts with every place taken
        places = max([starters, *(int(_metrics(t).get("pack_places", 0)) for t in pack)])
        ran, used = ran + places * length, used + sum(epochs)
    return used / ran if ran else math.nan


def table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per arm, the median over seeds; then the ratios over previous."""
    columns = [
        "wall_seconds",
        "study_seconds",
        "trials_per_hour",
        "tracing_per_trial",
        "reused",
        "packed",
        "slots_used",
    ]
    rows = runs.groupby("arm", sort=False)[columns].median().reindex(list(ARMS))
    rows["best_value"] = runs.groupby("arm", sort=False)["best_value"].median()
    rows.loc["alone / previous"] = rows.loc["alone"] / rows.loc["previous"]
    rows.loc["default / previous"] = rows.loc["default"] / rows.loc["previous"]
    rows.loc["jit / previous"] = rows.loc["jit"] / rows.loc["previous"]
    return rows.round(3)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    parser.add_argument("--quick", action="store_true", help="1 seed, 3 trials of 2 epochs")
    parser.add_argument("--out", type=Path, default=None, help="CSV (default: benchmarks/results)")
    parser.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS))
    parser.add_argument(
        "--override", nargs="*", default=[], help="more overrides, e.g. '~space.model' (lr only)"
    )
    args = parser.parse_args()
    trials, seeds = (3, [42]) if args.quick else (args.trials, args.seeds)
    extra = ["train.epochs=2", "~space.model"] if args.quick else []  # quick: one structure
    extra += args.override
    runs = pd.DataFrame(
        [run_arm(arm, seed, trials, extra) for seed in seeds for arm in args.arms]  # alternating
    )
    searched = f", overrides {' '.join(extra)}" if extra else ""
    print(f"{STUDY} on digits, {trials} trials, seeds {seeds}{searched}, medians over seeds")
    print(table(runs).to_string())
    same = runs.pivot(index="seed", columns="arm", values="best_value")
    if {"alone", "previous"} <= set(same.columns):
        same_best = bool((same["alone"] == same["previous"]).all())
        print(f"alone: same best value in every seed: {same_best}")
    if {"default", "previous"} <= set(same.columns):
        no_worse = int((same["default"] >= same["previous"]).sum())
        print(f"default's best value no worse than previous's in {no_worse} of {len(same)} seeds")
    out = args.out or RESULTS / ("trial_speed_quick.csv" if args.quick else "trial_speed.csv")
    out.parent.mkdir(parents=True, exist_ok=True)
    runs.to_csv(out, index=False)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
