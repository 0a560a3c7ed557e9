"""``python -m search.report``: the HTML report of a real (tiny) study, checked against the
numbers recomputed here from the Optuna study, and its place on the MLflow parent run."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from search.cli import HarnessError
from search.config import load_exported
from search.report import epochs_to_reach, run_report, write_report
from search.study import open_storage
from tests.browser import assert_report_renders
from tests.browser import browser_fixture as browser_fixture  # the `browser` fixture
from tests.conftest import compose, journal_path, run_cli, study_in, tiny

IMAGE = '<img src="data:image/png;base64,'


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two tiny studies in one storage: deep_dnn (6 trials, MC Dropout on, seed 2: both
    batch-norm arms among the random start-up trials) and ``other`` (3 trials, ReLU: dead
    units are measured)."""
    work = tmp_path_factory.mktemp("report")
    mlruns = work / "mlruns"
    main = run_cli(
        "search.run",
        "study=deep_dnn",
        "n_trials=6",
        *tiny(mlruns, "seed=2", "evaluate.mc_dropout_samples=2"),
        cwd=work,
    )
    assert main.returncode == 0, main.stderr
    other = run_cli(
        "search.run",
        "study=deep_dnn",
        "study_name=other",
        "n_trials=3",
        *tiny(mlruns, "model.activation=relu"),
        cwd=work,
    )
    assert other.returncode == 0, other.stderr
    return work


def compose_report(*overrides: str) -> DictConfig:
    return compose(*overrides, config_name="report")


def _cfg(work: Path, out: str, *overrides: str) -> DictConfig:
    return compose_report(
        "study=deep_dnn", f"mlruns_dir={work / 'mlruns'}", f"out={work / out}", *overrides
    )


def _scored(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return [t for t in study.get_trials(states=states) if t.value is not None]


def _arms_csv(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "arms.csv", index_col=0, dtype={0: str})


def _self_contained(page: str) -> None:
    assert page.count(IMAGE) >= 4
    assert not re.search(r"""(?:src|href)\s*=\s*["']?https?://""", page)
    assert "<script" not in page and "<link" not in page


@pytest.fixture(scope="module")
def by_bn(work: Path) -> Path:
    """The report by batch norm, made in-process (and logged to MLflow)."""
    run_report(_cfg(work, "rep_bn", "by=model.batch_norm"))
    return work / "rep_bn"


def test_by_param_report_has_one_arm_per_value(work: Path, by_bn: Path) -> None:
    page = (by_bn / "report.html").read_text(encoding="utf-8")
    _self_contained(page)
    study = study_in(work)
    table = _arms_csv(by_bn)
    values = {str(t.params["model.batch_norm"]) for t in study.trials}
    assert values == {"False", "True"}  # seed 2: both arms
    assert list(table.index) == ["False", "True"]
    assert "<th>model.batch_norm</th>" in page
    for arm in table.index:
        trials = [t for t in study.trials if str(t.params["model.batch_norm"]) == arm]
        scored = [t for t in _scored(study) if t in trials]
        best = max(t.value for t in scored if t.value is not None)
        median = float(pd.Series([t.value for t in scored]).median())
        assert table.loc[arm, "trials"] == len(trials)
        assert table.loc[arm, "best_value"] == pytest.approx(best)
        assert table.loc[arm, "median_value"] == pytest.approx(median)
        assert f"<td>{best:.4f}</td>" in page
        reach = [epochs_to_reach(t.intermediate_values, 0.95 * best) for t in trials]
        reached = [e for e in reach if e is not None]
        assert table.loc[arm, "reached_95"] == len(reached)
        assert table.loc[arm, "epochs_to_95"] == pytest.approx(float(pd.Series(reached).median()))
        complete = [t for t in scored if t.state == optuna.trial.TrialState.COMPLETE]
        top = max(complete, key=lambda t: float(t.value or 0.0))
        assert table.loc[arm, "best_trial"] == top.number
        assert table.loc[arm, "test_value"] == pytest.approx(
            top.user_attrs["metrics"]["test_accuracy"]
        )
    assert "model.batch_norm=" in page.split("class='answer'")[1].split("</div>")[0]


def test_the_report_renders_in_a_browser_with_its_plots(by_bn: Path, browser: Any) -> None:
    images = assert_report_renders(browser, by_bn / "report.html", min_images=5)
    assert all(image["naturalWidth"] > 300 for image in images)  # real plots, not icons
    text = browser.find_element("tag name", "body").text
    assert "model.batch_norm" in text and "epochs to 95" in text


def test_mc_dropout_table_and_figure(work: Path, by_bn: Path) -> None:
    page = (by_bn / "report.html").read_text(encoding="utf-8")
    section = page.split("<h2>MC Dropout vs deterministic</h2>")[1].split("<h2>")[0]
    assert "<table" in section and "MC accuracy" in section and IMAGE in section
    complete = [t for t in study_in(work).trials if t.state == optuna.trial.TrialState.COMPLETE]
    top = max(complete, key=lambda t: float(t.value or 0.0))
    metrics = top.user_attrs["metrics"]
    assert f"{metrics['mc_test_accuracy']:.4f}" in section  # the best trial's own MC figures
    assert f"{metrics['test_accuracy']:.4f}" in section
    words = re.sub(r"data:image/png;base64,[^\"]*", "", section)  # an image's bytes may spell it
    assert "nan" not in words.lower()
    assert (by_bn / "figures" / "mc_dropout.png").stat().st_size > 1000


def test_each_arm_best_config_and_retrain_command(work: Path, by_bn: Path) -> None:
    study = study_in(work)
    page = (by_bn / "report.html").read_text(encoding="utf-8")
    assert f"python -m search.export study=deep_dnn mlruns_dir={work / 'mlruns'}\n" in page
    assert "python -m search.train from=exports/deep_dnn/best.yaml" in page
    overall = str(study.best_trial.params["model.batch_norm"])
    other_arm = {"False": "True", "True": "False"}[overall]
    written = by_bn / f"best_{other_arm}.yaml"
    assert f"python -m search.train from={written}" in page
    assert not (by_bn / f"best_{overall}.yaml").exists()
    cfg = load_exported(written)  # what search.train reads
    trial = study.trials[int(cfg.source.trial_number)]
    assert str(trial.params["model.batch_norm"]) == other_arm
    assert cfg.source.study_name == "deep_dnn" and cfg.source.value == trial.value
    assert cfg.model.batch_norm == trial.params["model.batch_norm"]


def test_report_is_on_the_parent_run(work: Path, by_bn: Path) -> None:
    client = MlflowClient(f"sqlite:///{work}/mlruns/mlflow.db")
    experiment = client.get_experiment_by_name("deep_dnn")
    assert experiment is not None
    (parent,) = client.search_runs(
        [experiment.experiment_id], filter_string="tags.`search.role` = 'study'"
    )
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert "report.html" in artifacts
    figures = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert "report/best_so_far.png" in figures
    note = parent.data.tags["mlflow.note.content"]
    assert "report.html" in note and str((by_bn / "report.html").resolve()) in note
    assert parent.info.status == "FINISHED"  # as search.run left it
    assert "trials.csv" in artifacts  # the run's own summary is still there


def test_vs_report_through_the_cli(work: Path) -> None:
    out = work / "rep_vs"
    done = run_cli(
        "search.report",
        "study=deep_dnn",
        "vs=other",
        f"mlruns_dir={work / 'mlruns'}",
        f"out={out}",
        cwd=work,
    )
    assert done.returncode == 0, done.stderr
    assert f"wrote {out / 'report.html'}" in done.stdout and "answer: " in done.stdout
    page = (out / "report.html").read_text(encoding="utf-8")
    _self_contained(page)
    table = _arms_csv(out)
    assert list(table.index) == ["deep_dnn", "other"]
    storage = open_storage(str(journal_path(work)))
    for name in table.index:
        study = optuna.load_study(study_name=name, storage=storage)
        best = max(float(t.value or 0.0) for t in _scored(study))
        assert table.loc[name, "best_value"] == pytest.approx(best)
        assert table.loc[name, "trials"] == len(study.trials)
    diagnostics = page.split("<h2>Diagnostics vs result</h2>")[1].split("<h2>")[0]
    assert IMAGE in diagnostics  # ReLU in other: its dead-unit fraction is drawn


def test_float_param_is_binned(work: Path) -> None:
    report = write_report(_cfg(work, "rep_lr", "by=optimizer.learning_rate"))
    labels = list(report.table.index)
    assert len(labels) == 3 and all("–" in label for label in labels)
    assert report.table["trials"].sum() == len(study_in(work).trials)
    rates = sorted(t.params["optimizer.learning_rate"] for t in study_in(work).trials)
    assert labels[0].startswith(f"{rates[0]:.1e}") and labels[-1].endswith(f"{rates[-1]:.1e}")


def test_single_arm_without_by_or_vs(work: Path) -> None:
    report = write_report(_cfg(work, "rep_one"))
    assert list(report.table.index) == ["deep_dnn"]
    assert report.answer.startswith("deep_dnn: best val_accuracy")
    assert report.path.read_text(encoding="utf-8").count(IMAGE) >= 4


def test_bad_by_exits_2_naming_the_params(work: Path) -> None:
    done = run_cli(
        "search.report", "study=deep_dnn", "by=model.foo", f"mlruns_dir={work / 'mlruns'}", cwd=work
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "model.foo" in lines[0] and "model.batch_norm" in lines[0]
    assert "optimizer.learning_rate" in lines[0]
    assert not (work / "reports").exists()


def test_unknown_vs_names_the_studies(work: Path) -> None:
    with pytest.raises(HarnessError, match=r"no study 'nope'.*studies there: .*deep_dnn"):
        write_report(_cfg(work, "rep_bad", "vs=nope"))


def test_study_without_finished_trials_is_refused(work: Path) -> None:
    study = optuna.create_study(study_name="empty", storage=open_storage(str(journal_path(work))))
    study.tell(study.ask(), state=optuna.trial.TrialState.FAIL)
    with pytest.raises(HarnessError, match="no finished"):
        write_report(_cfg(work, "rep_empty", "study_name=empty"))


@pytest.mark.parametrize(
    ("curve", "target", "expected"),
    [
        ({0: 0.5, 1: 0.9, 2: 0.95}, 0.9, 2),
        ({0: 0.95}, 0.9, 1),
        ({2: 0.1, 0: 0.95, 1: 0.2}, 0.9, 1),  # steps in any order
        ({0: 0.5, 1: 0.6}, 0.9, None),
        ({}, 0.9, None),
    ],
)
def test_epochs_to_reach(curve: dict[int, float], target: float, expected: int | None) -> None:
    assert epochs_to_reach(curve, target) == expected
