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
    assert "| bare fit" in result.stdout and "| harness" in result.stdout
    frame = pd.read_csv(out)
    assert set(frame["kind"]) == {"bare_fit", "harness"}
    assert (frame["seconds"] > 0).all()


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
