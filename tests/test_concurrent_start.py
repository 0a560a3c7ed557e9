"""Two terminals, one fresh store (issue 13): commands started at the same moment on a new
``mlruns_dir`` set it up one at a time (``search.cli.locks``), instead of racing inside
MLflow's schema migrations ("Online migration expected to match one row")."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import study_in, tiny

STARTS = 3


def _open_store(uri: str, barrier: object) -> None:
    from search.tracking import StudyTracker

    barrier.wait()  # type: ignore[attr-defined]
    tracker = StudyTracker(uri, "artifacts", "deep_dnn")
    tracker.check()
    tracker.open()


def _open_storage(url: str, barrier: object) -> None:
    from search.study import open_storage

    barrier.wait()  # type: ignore[attr-defined]
    open_storage(url)


@pytest.mark.parametrize(
    ("target", "url", "check"),
    [
        (_open_store, "sqlite:///{dir}/mlflow.db", "mlflow"),
        (_open_storage, "sqlite:///{dir}/optuna.db", "optuna"),
    ],
)
def test_processes_starting_together_on_a_new_database_all_succeed(
    tmp_path: Path, target: object, url: str, check: str
) -> None:
    uri = url.replace("{dir}", str(tmp_path / "fresh"))
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(STARTS)
    procs = [ctx.Process(target=target, args=(uri, barrier)) for _ in range(STARTS)]  # type: ignore[arg-type]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=120)
    assert [p.exitcode for p in procs] == [0] * STARTS
    if check == "mlflow":
        client = MlflowClient(uri)
        names = [e.name for e in client.search_experiments()]
        assert names.count("deep_dnn") == 1
        parents = client.search_runs(
            [client.get_experiment_by_name("deep_dnn").experiment_id],  # type: ignore[union-attr]
            "tags.`search.role` = 'study'",
        )
        assert len(parents) == 1  # the others dropped theirs


@pytest.mark.slow
def test_two_search_runs_at_once_on_a_new_mlruns_dir(tmp_path: Path) -> None:
    """The reported case: two ``search.run`` in two terminals, same new store, together."""
    mlruns = tmp_path / "mlruns"
    command = [sys.executable, "-m", "search.run", "study=deep_dnn", *tiny(mlruns, "n_trials=3")]
    procs = [
        subprocess.Popen(
            command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    results = [proc.communicate(timeout=600) for proc in procs]
    for proc, (out, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err
        assert "Traceback" not in err
        assert "left RUNNING closed" not in out  # neither closed the other's live trial
    study = study_in(tmp_path)
    finished = [t for t in study.trials if t.state.is_finished()]
    assert len(finished) >= 3
    client = MlflowClient(f"sqlite:///{mlruns / 'mlflow.db'}")
    for trial in finished:
        history = client.get_metric_history(trial.user_attrs["mlflow_run_id"], "val_accuracy")
        steps = [m.step for m in history]
        assert sorted(steps) == sorted(set(steps)), f"trial {trial.number}: {steps}"
