"""End to end through the real CLI: run, continue, export, re-train (bad input: test_bad_input).

Each command runs as a subprocess in a temp directory; results are checked through the
Optuna and MLflow APIs, as a user would see them in the MLflow UI.
"""

from __future__ import annotations

import re
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml

from tests.cifar_fixture import make_cifar_tarball
from tests.conftest import client_in, run_cli, study_in, tiny

FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-trial deep_dnn study on digits, then continued to 4 trials by the same command."""
    work = tmp_path_factory.mktemp("study")
    first = run_cli("search.run", "study=deep_dnn", "n_trials=3", *tiny(work / "mlruns"), cwd=work)
    assert first.returncode == 0, first.stderr
    assert len(re.findall(r"^trial +\d+  ", first.stdout, re.MULTILINE)) == 3  # one line each
    again = run_cli("search.run", "study=deep_dnn", "n_trials=4", *tiny(work / "mlruns"), cwd=work)
    assert again.returncode == 0, again.stderr
    assert "running 1 more trial (3 finished before)" in again.stdout
    return work


def _study(work: Path) -> optuna.Study:
    return study_in(work)


def test_study_has_the_requested_finished_trials(study_dir: Path) -> None:
    study = _study(study_dir)
    assert len(study.get_trials(states=FINISHED)) == 4
    assert [t.number for t in study.trials] == [0, 1, 2, 3]
    for trial in study.trials:
        assert set(trial.params) == {
            "optimizer.learning_rate",
            "model.batch_norm",
            "model.dropout_rate",
        }


def test_one_parent_run_with_one_child_per_trial(study_dir: Path) -> None:
    client = client_in(study_dir)
    experiment = client.get_experiment_by_name("deep_dnn")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("search.role") == "study"]
    children = [r for r in runs if r.data.tags.get("search.role") == "trial"]
    assert len(parents) == 1 and len(children) == 4
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["n_finished_trials"] == 4
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parent.info.run_id}
    study = _study(study_dir)
    by_number = {int(r.data.tags["optuna.trial_number"]): r for r in children}
    for trial in study.trials:
        run = by_number[trial.number]
        assert trial.user_attrs["mlflow_run_id"] == run.info.run_id
        assert run.data.tags["optuna.state"] == trial.state.name
        assert run.data.tags["optuna.study_name"] == "deep_dnn"
        assert run.info.status == "FINISHED"
    assert parent.data.metrics["best_value"] == pytest.approx(study.best_value)
    root = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"trials.csv", "study_plots.html", "plots"} <= root
    plots = {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert {"plots/optimization_history.png", "plots/learning_curves.png"} <= plots


def test_child_runs_carry_params_epoch_metrics_and_artifacts(study_dir: Path) -> None:
    client = client_in(study_dir)
    study = _study(study_dir)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert complete, "at least one trial completes in a 2-epoch study"
    for trial in complete:
        run = client.get_run(trial.user_attrs["mlflow_run_id"])
        params = run.data.params
        assert params["model.depth"] == "3" and params["train.epochs"] == "2"
        assert float(params["optimizer.learning_rate"]) == pytest.approx(
            trial.params["optimizer.learning_rate"]
        )
        assert params["seed"] == str(42 + trial.number)
        epochs = int(run.data.metrics["epochs_trained"])
        for key in ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"):
            history = client.get_metric_history(run.info.run_id, key)
            assert [m.step for m in history] == list(range(epochs)), key
        best = max(m.value for m in client.get_metric_history(run.info.run_id, "val_accuracy"))
        assert run.data.metrics["best_val_accuracy"] == pytest.approx(best)
        assert trial.value == pytest.approx(best)
        history = pd.read_csv(
            client.download_artifacts(run.info.run_id, "history.csv", str(study_dir))
        )
        steady = history["epoch_seconds"].iloc[1:]  # the first epoch also traces the graphs
        assert run.data.metrics["seconds_per_epoch"] == pytest.approx(float(steady.median()))
        assert run.data.metrics["test_accuracy"] == pytest.approx(
            trial.user_attrs["metrics"]["test_accuracy"]
        )
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert artifacts == {
            "config.yaml",
            "history.csv",
            "learning_curve.png",
            "gradient_norms.csv",
        }
        grads = Path(
            client.download_artifacts(run.info.run_id, "gradient_norms.csv", str(study_dir))
        )
        table = pd.read_csv(grads)
        assert list(table.columns) == ["layer", "start", "end"] and len(table) == 4  # 3 + output
        metrics = run.data.metrics
        assert metrics["grad_norm_first_layer"] == pytest.approx(table["end"].iloc[0])
        assert metrics["grad_norm_ratio_start"] == pytest.approx(
            table["start"].iloc[0] / table["start"].iloc[-1]
        )
        assert "dead_unit_fraction" not in metrics  # ELU: no ReLU units to die
        local = Path(client.download_artifacts(run.info.run_id, "history.csv", str(study_dir)))
        assert len(pd.read_csv(local)) == epochs


def test_export_then_retrain_reproduces_the_trial(study_dir: Path) -> None:
    out = study_dir / "exported"
    export = run_cli(
        "search.export",
        "study=deep_dnn",
        f"mlruns_dir={study_dir}/mlruns",
        f"out={out}",
        cwd=study_dir,
    )
    assert export.returncode == 0, export.stderr
    best = yaml.safe_load((out / "best.yaml").read_text())
    study = _study(study_dir)
    assert best["source"]["trial_number"] == study.best_trial.number
    for key, value in study.best_trial.params.items():
        section, name = key.split(".")
        assert best[section][name] == pytest.approx(value)
    table = pd.read_csv(out / "trials.csv")
    assert len(table) == 4
    assert {"number", "state", "value", "mlflow_run_id", "duration_seconds"} <= set(table.columns)

    retrain = run_cli("search.train", f"from={out / 'best.yaml'}", cwd=study_dir)
    assert retrain.returncode == 0, retrain.stderr
    client = client_in(study_dir)
    experiment = client.get_experiment_by_name("deep_dnn")
    (run,) = client.search_runs(
        [experiment.experiment_id], filter_string="tags.`search.role` = 'retrain'"
    )
    assert run.data.tags["search.retrain_of"] == study.best_trial.user_attrs["mlflow_run_id"]
    assert run.data.metrics["best_val_accuracy"] == pytest.approx(study.best_value, abs=1e-6)


def test_cifar10_from_a_local_tarball(workdir: Path) -> None:
    tarball = workdir / "cifar-10-python.tar.gz"
    make_cifar_tarball(tarball, per_batch=40, test=50)
    result = run_cli(
        "search.run",
        "study=deep_dnn",
        "n_trials=1",
        *tiny(workdir / "mlruns", "dataset=cifar10", f"dataset.path={tarball}"),
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr
    assert "data cifar10 (180 train / 20 val / 50 test)" in result.stdout
    (trial,) = _study(workdir).trials
    run = client_in(workdir).get_run(trial.user_attrs["mlflow_run_id"])
    assert run.data.params["dataset.name"] == "cifar10"
    assert run.data.params["dataset.path"] == str(tarball)
    assert "test_accuracy" in run.data.metrics


@pytest.mark.parametrize("study", ["deep_dnn_bn", "deep_dnn_selu", "bn_vs_nobn"])
def test_course_studies_run_on_digits(workdir: Path, study: str) -> None:
    result = run_cli(
        "search.run",
        f"study={study}",
        "n_trials=2",
        "evaluate.mc_dropout_samples=5" if study == "deep_dnn_selu" else "seed=42",
        *tiny(workdir / "mlruns"),
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr
    trials = study_in(workdir, study).trials
    assert len(trials) == 2
    assert optuna.trial.TrialState.COMPLETE in {t.state for t in trials}  # the checks below ran
    client = client_in(workdir)
    for trial in trials:
        run = client.get_run(trial.user_attrs["mlflow_run_id"])
        params = run.data.params
        if study == "deep_dnn_bn":
            assert (
                params["model.batch_norm"] == "True" and params["model.input_batch_norm"] == "True"
            )
            assert ("optimizer.momentum" in trial.params) == (
                trial.params["optimizer.name"] == "sgd"
            )
        if study == "deep_dnn_selu":
            assert params["model.activation"] == "selu" and params["model.dropout"] == "alpha"
        if study == "bn_vs_nobn":
            assert params["model.batch_norm"] == str(trial.params["model.batch_norm"])
        if trial.state == optuna.trial.TrialState.COMPLETE:
            assert {"test_accuracy", "test_nll", "test_ece"} <= set(run.data.metrics)
            mc = {"mc_test_accuracy", "mc_test_nll", "mc_test_ece", "mc_predictive_entropy"}
            assert (mc <= set(run.data.metrics)) == (study == "deep_dnn_selu")


@pytest.mark.slow
@pytest.mark.parametrize("study", ["transfer_vgg16", "transfer_resnet50"])
def test_transfer_studies_run_on_digits_with_random_weights(workdir: Path, study: str) -> None:
    result = run_cli(
        "search.run",
        f"study={study}",
        "dataset=digits",
        "n_trials=1",
        "model.weights=null",
        "model.head=[32,16]",
        "train.epochs=1",
        "dataset.train_limit=64",
        "space.model.input_size=null",
        "space.model.trainable_layers=null",
        f"mlruns_dir={workdir / 'mlruns'}",
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr
    assert "(64 train / 288 val / 360 test)" in result.stdout
    (trial,) = study_in(workdir, study).trials
    run = client_in(workdir).get_run(trial.user_attrs["mlflow_run_id"])
    assert run.data.params["model.builder"] == "transfer"
    assert run.data.params["model.preprocess"] == "True"
    assert "test_accuracy" in run.data.metrics
    assert "dead_unit_fraction.head_1" in run.data.metrics  # the ReLU head is diagnosed
