"""Smoke test of the benchmark scripts in their --quick form (slow tier)."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import REPO


def _quick(
    script: Path, flag: str, out: str, timeout: int = 600
) -> subprocess.CompletedProcess[str]:
    """Run a benchmark script's ``--quick`` form; it must succeed."""
    result = subprocess.run(
        [sys.executable, str(script), "--quick", flag, out],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result


@pytest.mark.slow
def test_overhead_benchmark_prints_its_table(tmp_path: Path) -> None:
    out = tmp_path / "overhead.csv"
    result = _quick(REPO / "benchmarks" / "overhead.py", "--out", str(out))
    assert "| data | sizes | epochs | bare fit | harness | overhead |" in result.stdout
    assert "| digits |" in result.stdout and "| cifar-sized | 4500 train" in result.stdout
    frame = pd.read_csv(out)
    counts = frame.groupby(["data", "kind"]).size().to_dict()  # --quick: 2 digits, 1 cifar pairs
    assert counts == {
        ("cifar-sized", "bare_fit"): 1,
        ("cifar-sized", "harness"): 1,
        ("digits", "bare_fit"): 2,
        ("digits", "harness"): 2,
    }
    for _, group in frame.groupby("data"):  # the printed row is the CSV's medians
        bare = group.loc[group.kind == "bare_fit", "seconds"].median()
        harness = group.loc[group.kind == "harness", "seconds"].median()
        assert f"| {bare:.2f} | {harness:.2f} | {(harness / bare - 1) * 100:+.1f} % |" in (
            result.stdout
        )


@pytest.mark.slow
def test_search_efficiency_benchmark_compares_three_arms(tmp_path: Path) -> None:
    script = REPO / "benchmarks" / "search_efficiency.py"
    result = _quick(script, "--out-dir", str(tmp_path), timeout=900)
    assert "| arm | seeds | trials | final best | time to target s |" in result.stdout
    assert "target: time-to-target ratio <= 0.5" in result.stdout
    table = pd.read_csv(tmp_path / "search_efficiency_quick.csv")
    assert list(table["arm"]) == ["keras-tuner", "harness", "harness, no pruning"]
    trials = pd.read_csv(tmp_path / "search_efficiency_quick_trials.csv")
    target = table.loc[0, "final_best"]  # keras-tuner's final best (one seed in --quick)
    kt_time = table.loc[0, "time_to_target"]
    for row in table.itertuples():  # the table is the trials' best-so-far curves, summarised
        arm = trials[trials["arm"] == row.arm].sort_values("seconds")
        assert row.trials == len(arm)
        assert row.final_best == pytest.approx(arm["value"].max(), nan_ok=True)
        hit = arm.loc[arm["value"].cummax() >= target, "seconds"]
        assert row.time_to_target == pytest.approx(hit.iloc[0] if len(hit) else math.inf)
        assert row.ratio_vs_kt == pytest.approx(row.time_to_target / kt_time, nan_ok=True)
    assert (tmp_path / "search_efficiency_quick.png").stat().st_size > 10_000
    (race,) = pd.read_csv(tmp_path / "search_efficiency_quick_completed.csv").itertuples()
    assert race.kt_trials > 0 and race.kt_wall_seconds > 0  # a Hyperband run to its end
    assert race.share_of_kt_wall == pytest.approx(
        race.harness_time_to_kt_best / race.kt_wall_seconds
    )
    assert "target: share of a completed Hyperband's wall <= 0.25" in result.stdout


@pytest.mark.slow
def test_workers_benchmark_prints_its_table(tmp_path: Path) -> None:
    out = tmp_path / "workers.csv"
    result = _quick(REPO / "benchmarks" / "workers.py", "--out", str(out))
    frame = pd.read_csv(out)  # each run finished its 4 trials, or the script exits non-zero
    assert list(frame["workers"]) == [1, 2]
    assert (frame["trials"] == 4).all() and (frame["epochs"] == 2).all()
    per_hour = (4 / frame["wall_seconds"] * 3600).tolist()
    assert frame["trials_per_hour"].tolist() == pytest.approx(per_hour, rel=0.01)
    assert frame["speedup"].tolist() == pytest.approx(
        [1.0, frame["trials_per_hour"][1] / frame["trials_per_hour"][0]], abs=0.01
    )
    assert frame.to_string(index=False).splitlines()[0] in result.stdout


@pytest.mark.slow
def test_memory_benchmark_prints_its_table(tmp_path: Path) -> None:
    out = tmp_path / "memory.csv"
    result = _quick(REPO / "benchmarks" / "memory.py", "--out", str(out))
    assert "| trial | state    |  RSS MiB |" in result.stdout
    assert "target: < 150 MB growth over 50 trials: " in result.stdout
    frame = pd.read_csv(out)
    assert list(frame.columns) == ["trial", "state", "rss_mb", "seconds"]
    assert list(frame["trial"]) == list(range(1, 9))
    assert frame["state"].isin(["COMPLETE", "PRUNED"]).all()
    assert (frame["rss_mb"] > 200).all()  # every trial recorded its worker's RSS (TensorFlow)
    growth = (
        frame.loc[frame.trial == 8, "rss_mb"].item() - frame.loc[frame.trial == 2, "rss_mb"].item()
    )
    assert f"growth trial 2 -> 8: {growth:+.1f} MiB" in result.stdout


@pytest.mark.slow
def test_study_size_benchmark_prints_its_table(tmp_path: Path) -> None:
    out = tmp_path / "study_size.csv"
    result = _quick(REPO / "benchmarks" / "study_size.py", "--out", str(out))
    assert "| trial |  cycle s |  train s | overhead s |" in result.stdout
    assert "target: <= 2x: " in result.stdout
    frame = pd.read_csv(out)
    assert list(frame.columns) == ["trial", "state", "cycle_s", "train_s", "overhead_s"]
    assert list(frame["trial"]) == list(range(1, 101))
    assert (frame[["cycle_s", "train_s", "overhead_s"]] > 0).all().all()


@pytest.mark.slow
def test_model_cost_benchmark_prints_its_table(tmp_path: Path) -> None:
    out = tmp_path / "cost.csv"
    result = _quick(REPO / "benchmarks" / "model_cost.py", "--out", str(out))
    (row,) = pd.read_csv(out).to_dict("records")
    assert row["model"] == "dense 20x100" and row["params"] == 500_210
    # the .keras file holds the weights and Nadam's two slots: about 3 x 4 bytes per param
    assert 2.5 * 4 * row["params"] < row["keras_bytes"] < 4 * 4 * row["params"]
    assert row["stored_bytes"] >= row["keras_bytes"] and row["seconds"] > 0
    mib = row["keras_bytes"] / 2**20
    assert f"| dense 20x100 | 500,210 | {mib:.1f} MiB |" in result.stdout


@pytest.mark.slow
def test_fit_speed_benchmark_prints_its_table(tmp_path: Path) -> None:
    out = tmp_path / "fit_speed.csv"
    result = _quick(REPO / "benchmarks" / "fit_speed.py", "--out", str(out))
    frame = pd.read_csv(out)
    # --quick: three settings once, the last a fused pack of 4 trials
    assert list(frame["setting"]) == ["spe 1", "spe 32 + jit", "pack 4 + jit"]
    # 20x100 net on 32x32x3: 3072*100 + 19*100*100 + 100*10 kernel weights, 6 FLOP each
    assert frame["epoch_gflop"].tolist() == pytest.approx([6 * 498_200 * 2_000 / 1e9] * 3)
    floor = frame["epoch_gflop"] / frame["matmul_gflops"]
    assert frame["floor_s"].tolist() == pytest.approx(floor.tolist())
    for row in frame.itertuples():  # the printed rows are the CSV's figures
        trial = row.first_epoch_s + 9 * row.steady_s
        assert (
            f"| cifar-sized | {row.setting} | {row.first_epoch_s:.2f} | {row.steady_s:.3f} | "
            f"{row.floor_s:.3f} | {row.steady_s / row.floor_s:.1f}x | {trial:.2f} |"
        ) in result.stdout


@pytest.mark.slow
def test_trial_speed_benchmark_prints_its_table(tmp_path: Path) -> None:
    out = tmp_path / "trial_speed.csv"
    result = _quick(REPO / "benchmarks" / "trial_speed.py", "--out", str(out), timeout=900)
    assert "default / previous" in result.stdout and "alone / previous" in result.stdout
    assert "alone: same best value in every seed: True" in result.stdout  # no result changes
    runs = pd.read_csv(out)
    assert list(runs["arm"]) == ["previous", "alone", "fixed", "default", "jit"]
    assert (runs["trials"] == 3).all()
    previous, alone = runs.set_index("arm").loc[["previous", "alone"], "reused"]
    assert previous == 0.0 and alone > 0.0  # kept traced models reused; the old did not
    assert runs.set_index("arm").loc["default", "packed"] > 1.0  # pack=auto: trials packed
    assert runs.set_index("arm").loc["alone", "slots_used"] == 1.0  # alone: no idle epochs
    assert 0.0 < runs.set_index("arm").loc["default", "slots_used"] <= 1.0


@pytest.mark.slow
def test_study_profile_benchmark_splits_a_study_and_a_step(tmp_path: Path) -> None:
    out = tmp_path / "study_profile.csv"
    result = _quick(REPO / "benchmarks" / "study_profile.py", "--out", str(out))
    rows = pd.read_csv(out)
    study = rows[rows["table"] == "study"].set_index("part")["seconds"]
    whole = study["whole command"]
    assert whole > 0 and f"{whole:.3f}" in result.stdout
    parts = ["start-up (imports, Hydra)", "tracing", "running the graphs", "ending members"]
    assert all(0 < study[f"  {p}" if p == "ending members" else p] < whole for p in parts)
    # a nested row is part of the one above it: the profile adds up
    assert study["    its optimizer update"] < study["  the pack's train step"] < study["tracing"]
    assert study["    closing their runs"] < study["  ending members"]
    assert study["  ending members"] < study["pack epochs' callbacks"]
    top = ["start-up (imports, Hydra)", "set-up (MLflow, preflight, store)", "tracing"]
    assert sum(study[p] for p in top) + study["running the graphs"] < whole
    steps = rows[rows["table"] == "step"].set_index("K")
    assert list(steps.index) == [1, 2]
    timed = ["batched chain ms", "K chains alone ms", "Nadam update ms", "compiled update ms"]
    assert (steps[timed] > 0).all().all()
    ratio = steps["batched chain ms"] / steps["K chains alone ms"]
    assert ratio.tolist() == pytest.approx(steps["batched / alone"].tolist(), abs=2e-3)
