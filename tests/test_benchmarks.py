"""Smoke test of the benchmark scripts in their --quick form (slow tier)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import REPO


@pytest.mark.slow
def test_overhead_benchmark_prints_its_table(tmp_path: Path) -> None:
    out = tmp_path / "overhead.csv"
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "overhead.py"), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "| data | sizes | epochs | bare fit | harness | overhead |" in result.stdout
    assert "| digits |" in result.stdout and "| cifar-sized | 4500 train" in result.stdout
    frame = pd.read_csv(out)
    assert set(frame["kind"]) == {"bare_fit", "harness"}
    assert set(frame["data"]) == {"digits", "cifar-sized"}
    assert (frame["seconds"] > 0).all()


@pytest.mark.slow
def test_search_efficiency_benchmark_compares_three_arms(tmp_path: Path) -> None:
    script = REPO / "benchmarks" / "search_efficiency.py"
    result = subprocess.run(
        [sys.executable, str(script), "--quick", "--out-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "| arm | seeds | trials | final best | time to target s |" in result.stdout
    assert "target: time-to-target ratio <= 0.5" in result.stdout
    table = pd.read_csv(tmp_path / "search_efficiency_quick.csv")
    assert list(table["arm"]) == ["keras-tuner", "harness", "harness, no pruning"]
    assert table.loc[0, "ratio_vs_kt"] == 1.0  # keras-tuner against itself
    trials = pd.read_csv(tmp_path / "search_efficiency_quick_trials.csv")
    assert set(trials["arm"]) == set(table["arm"])
    assert (trials["seconds"] > 0).all() and (trials["seconds"] <= 45).all()
    assert (tmp_path / "search_efficiency_quick.png").stat().st_size > 10_000


@pytest.mark.slow
def test_workers_benchmark_prints_its_table() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "workers.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "trials_per_hour" in result.stdout
    frame = pd.read_csv(REPO / "benchmarks" / "results" / "workers_quick.csv")
    assert list(frame["workers"]) == [1, 2]
    assert (frame["trials_per_hour"] > 0).all()


@pytest.mark.slow
def test_memory_benchmark_prints_its_table(tmp_path: Path) -> None:
    out = tmp_path / "memory.csv"
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "memory.py"), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "| trial | state    |  RSS MiB |" in result.stdout
    assert "target: < 150 MB growth over 50 trials: " in result.stdout
    frame = pd.read_csv(out)
    assert list(frame.columns) == ["trial", "state", "rss_mb", "seconds"]
    assert list(frame["trial"]) == list(range(1, 9))
    assert (frame["rss_mb"] > 0).all() and (frame["seconds"] > 0).all()


@pytest.mark.slow
def test_study_size_benchmark_prints_its_table(tmp_path: Path) -> None:
    out = tmp_path / "study_size.csv"
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "study_size.py"), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "| trial |  cycle s |  train s | overhead s |" in result.stdout
    assert "target: <= 2x: " in result.stdout
    frame = pd.read_csv(out)
    assert list(frame.columns) == ["trial", "state", "cycle_s", "train_s", "overhead_s"]
    assert list(frame["trial"]) == list(range(1, 101))
    assert (frame[["cycle_s", "train_s", "overhead_s"]] > 0).all().all()
