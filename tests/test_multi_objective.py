"""Several objectives (``metric=[val_accuracy,seconds_per_epoch]``): an Optuna
multi-objective study, its Pareto front on the parent run, in the trials table, the
export and the report; the champion moves for the first objective; no pruning, said once."""

from __future__ import annotations

import logging
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from search.cli import HarnessError
from search.config import parse_space
from search.config.objectives import Objective, objectives_of
from search.study import (
    ProgressLine,
    best_trial,
    dominated,
    measured,
    pareto_numbers,
    warm_sets,
)
from search.study.names import Attr
from search.study.revisions import latest_revision
from search.study.samplers import PRUNERS
from search.tracking import ALIAS, optuna_figures
from tests.conftest import client_in, compose, journal_path, run_cli, study_in, tiny

MULTI = ["metric=[val_accuracy,seconds_per_epoch]", "direction=[maximize,minimize]"]


@pytest.mark.parametrize(
    ("metric", "direction", "objectives"),
    [
        ("val_accuracy", "maximize", [("val_accuracy", True)]),
        (["val_loss"], ["minimize"], [("val_loss", False)]),
        (
            ["val_accuracy", "seconds_per_epoch", "params"],
            ["maximize", "minimize", "minimize"],
            [("val_accuracy", True), ("seconds_per_epoch", False), ("params", False)],
        ),
        (
            ["val_accuracy", "val_loss"],
            ["maximize", "minimize"],
            [("val_accuracy", True), ("val_loss", False)],
        ),
    ],
)
def test_metric_and_direction_name_the_objectives(
    metric: object, direction: object, objectives: list[tuple[str, bool]]
) -> None:
    assert objectives_of(metric, direction) == tuple(Objective(n, m) for n, m in objectives)


@pytest.mark.parametrize(
    ("metric", "direction", "said"),
    [
        (["val_accuracy", "params"], "maximize", "direction 1 objective; give one direction per"),
        (["val_accuracy", "seconds_per_epoch"], "maximize", "direction=[maximize,minimize]"),
        (["val_accuracy"], ["maximize", "minimize"], "but direction 2 objectives"),
        (["params", "val_accuracy"], ["minimize", "maximize"], "must be a validation figure"),
        (["val_accuracy", "params"], ["maximize", "maximize"], "direction=[maximize,minimize]"),
        (["val_accuracy", "flops"], ["maximize", "minimize"], "flops is neither a validation"),
        (["val_accuracy", "param"], ["maximize", "minimize"], "did you mean params?"),
        (["val_accuracy", "val_loss"], ["maximize", "maximize"], "direction=[maximize,minimize]"),
        (["val_accuracy", "val_accuracy"], ["maximize", "maximize"], "listed twice"),
        (["val_accuracy", "params"], ["maximize", "smaller"], "direction must be maximize or"),
        ([], [], "metric must be a name or a list of names"),
        (["val_accuracy", 3], ["maximize", "minimize"], "metric must be a name or a list"),
    ],
)
def test_objectives_that_do_not_go_together_are_one_line(
    metric: object, direction: object, said: str
) -> None:
    with pytest.raises(HarnessError) as caught:
        objectives_of(metric, direction)
    assert said in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        (["sampler=cmaes", *MULTI], "sampler=cmaes optimizes one objective"),
        (["metric=[val_accuracy,val_loss]", "direction=[maximize,maximize]"], "val_loss is better"),
        (["metric=[val_accuracy,params]", "direction=minimize"], "give one direction per metric"),
        (  # a later check: the note on pruning is not printed before it
            ["metric=[val_acuracy,params]", "direction=[maximize,minimize]"],
            "metric: 'acuracy' is not a Keras metric; did you mean accuracy?",
        ),
        (["metric=[val_accuracy,val_mae]", "direction=[maximize,minimize]"], "each metric fits"),
    ],
)
def test_a_bad_multi_objective_run_creates_nothing(
    workdir: Path, extra: list[str], said: str
) -> None:
    done = run_cli("search.run", "study=deep_dnn", *tiny(workdir / "mlruns"), *extra, cwd=workdir)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: ") and said in line, line
    assert "Optuna cannot prune" not in done.stdout
    assert not journal_path(workdir).exists()
    assert not (workdir / "mlruns" / "mlflow.db").exists()


def _study(values: list[tuple[float, float] | None], revised_from: int = 99) -> optuna.Study:
    """Trials of (accuracy, seconds); those from ``revised_from`` on of revision 1."""
    study = optuna.create_study(directions=["maximize", "minimize"])
    for number, pair in enumerate(values):
        study.add_trial(
            create_trial(
                state=TrialState.COMPLETE if pair else TrialState.PRUNED,
                values=list(pair) if pair else None,
                params={"x": float(number)},
                distributions={"x": FloatDistribution(0.0, 10.0)},
                user_attrs={Attr.REVISION: int(number >= revised_from)},
            )
        )
    return study


def test_the_front_and_the_best_on_the_first_objective() -> None:
    # (accuracy up, seconds down): 1 dominates 0; 2 and 3 trade; 4 ties 3 on accuracy
    study = _study([(0.5, 0.4), (0.6, 0.3), (0.9, 0.5), (0.95, 0.9), None, (0.95, 1.0)])
    assert pareto_numbers(study) == [1, 2, 3]
    assert best_trial(study).number == 3  # 0.95 first; the tie goes to the lower number
    assert dominated([0.5, 0.4], [[0.6, 0.3]], [True, False])
    assert not dominated([0.6, 0.3], [[0.6, 0.3]], [True, False])  # equal: not dominated
    assert not dominated([0.9, 0.5], [[0.6, 0.3], [0.95, 0.9]], [True, False])


def test_a_warm_start_from_a_multi_objective_study_takes_its_front_first() -> None:
    study = _study([(0.5, 0.4), (0.6, 0.3), (0.9, 0.5), (0.8, 0.6)])
    space = parse_space({"x": {"type": "float", "low": 0.0, "high": 10.0}})
    sets = warm_sets(study.study_name, lambda: study._storage, space, 4)
    assert sets == [{"x": 2.0}, {"x": 1.0}, {"x": 3.0}, {"x": 0.0}]  # front by accuracy, rest


def test_the_progress_line_gives_the_values_and_the_front(caplog: pytest.LogCaptureFixture) -> None:
    study = _study([(0.5, 0.4), (0.6, 0.3), (0.9, 0.5)])
    logger = logging.getLogger("test-progress-multi")
    with caplog.at_level(logging.INFO, logger="test-progress-multi"):
        ProgressLine(logger)(study, study.trials[2])
    assert "values=0.9000, 0.5000" in caplog.text and "front=2 trials" in caplog.text
    counted = _study([(0.9, 205434.0)])  # a parameter count prints as a whole number
    with caplog.at_level(logging.INFO, logger="test-progress-multi"):
        ProgressLine(logger)(counted, counted.trials[0])
    assert "values=0.9000, 205434 " in caplog.text


@pytest.fixture(scope="module")
def front_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4-trial study of accuracy against seconds per epoch on digits, exported."""
    workdir = tmp_path_factory.mktemp("front")
    (workdir / "mlruns").mkdir()
    args = ["study=deep_dnn", "n_trials=4", *tiny(workdir / "mlruns"), *MULTI]
    done = run_cli("search.run", *args, cwd=workdir)
    assert done.returncode == 0, done.stderr
    (workdir / "run.log").write_text(done.stdout)
    exported = run_cli("search.export", *args, cwd=workdir)
    assert exported.returncode == 0, exported.stderr
    (workdir / "export.log").write_text(exported.stdout)
    return workdir


def test_a_run_with_two_metrics_is_a_multi_objective_study_said_once(front_dir: Path) -> None:
    study = study_in(front_dir)
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    assert study.metric_names == ["val_accuracy", "seconds_per_epoch"]
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 4
    for trial in complete:
        metrics = trial.user_attrs[Attr.METRICS]
        assert trial.values == [metrics["best_val_accuracy"], metrics["seconds_per_epoch"]]
        curve = trial.user_attrs[Attr.CURVE]  # no reports in a multi-objective study
        assert trial.intermediate_values == {} and len(curve) == metrics["epochs_trained"]
        assert max(curve) == pytest.approx(trial.values[0])
    log = (front_dir / "run.log").read_text()
    assert log.count("Optuna cannot prune a multi-objective study") == 1
    front = pareto_numbers(study)
    assert f"Pareto front: trial{'s' if len(front) > 1 else ''} " in log
    assert ", ".join(str(n) for n in front) in log


def test_the_parent_run_shows_the_front_and_the_runs_are_tagged(front_dir: Path) -> None:
    study, client = study_in(front_dir), client_in(front_dir)
    front = pareto_numbers(study)
    experiment = client.get_experiment_by_name("deep_dnn")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("search.role") == "study"]
    assert parent.data.tags["pareto_trials"] == ",".join(str(n) for n in front)
    assert parent.data.metrics["n_pareto_trials"] == len(front)
    plots = {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert "plots/pareto_front.png" in plots and "plots/learning_curves.png" in plots
    tagged = {
        int(r.data.tags["optuna.trial_number"]): r.data.tags["search.pareto"]
        for r in runs
        if r.data.tags.get("search.role") == "trial"
    }
    assert tagged == {n: "true" if n in front else "false" for n in range(4)}
    champion = client.get_model_version_by_alias("deep_dnn", ALIAS)  # the first objective's
    assert int(champion.tags["optuna.trial_number"]) == best_trial(study).number


def test_export_writes_one_config_per_pareto_trial_and_the_table_marks_them(
    front_dir: Path,
) -> None:
    study = study_in(front_dir)
    front = pareto_numbers(study)
    out = front_dir / "exports" / "deep_dnn"
    written = sorted(p.name for p in (out / "pareto").glob("*.yaml"))
    assert written == sorted(f"trial_{n}.yaml" for n in front)
    for number in front:
        source = yaml.safe_load((out / "pareto" / f"trial_{number}.yaml").read_text())["source"]
        values = study.trials[number].values
        assert source["trial_number"] == number
        assert source["values"] == {"val_accuracy": values[0], "seconds_per_epoch": values[1]}
        assert (out / "pareto" / f"trial_{number}.keras").is_file()  # each kept its model
    best = yaml.safe_load((out / "best.yaml").read_text())["source"]
    assert best["trial_number"] == best_trial(study).number
    table = pd.read_csv(out / "trials.csv")
    assert set(table.loc[table["pareto"], "number"]) == set(front)
    assert list(table["value"]) == list(table["values_val_accuracy"])


def test_export_of_a_picked_trial_and_its_retrain(front_dir: Path) -> None:
    study = study_in(front_dir)
    picked = next(t for t in study.trials if t.number != best_trial(study).number)
    args = ["study=deep_dnn", *tiny(front_dir / "mlruns"), *MULTI]
    done = run_cli("search.export", *args, f"trial={picked.number}", cwd=front_dir)
    assert done.returncode == 0, done.stderr
    path = front_dir / "exports" / "deep_dnn" / f"trial_{picked.number}.yaml"
    assert yaml.safe_load(path.read_text())["source"]["trial_number"] == picked.number
    again = run_cli("search.train", f"from={path}", cwd=front_dir)
    assert again.returncode == 0, again.stderr
    had = f"val_accuracy {picked.values[0]:.4f} (the trial had {picked.values[0]:.4f})"
    assert had in again.stdout and "seconds_per_epoch " in again.stdout
    for bad, said in (("99", "has no such trial"), ("abc", "must be a trial number")):
        refused = run_cli("search.export", *args, f"trial={bad}", cwd=front_dir)
        assert refused.returncode == 2 and said in refused.stderr, refused.stderr


def test_the_report_shows_the_front(front_dir: Path) -> None:
    done = run_cli(
        "search.report", "study=deep_dnn", f"mlruns_dir={front_dir / 'mlruns'}", cwd=front_dir
    )
    assert done.returncode == 0, done.stderr
    figures = front_dir / "reports" / "deep_dnn" / "figures"
    assert (figures / "pareto_front.png").is_file()
    page = (front_dir / "reports" / "deep_dnn" / "report.html").read_text()
    assert "Pareto front" in page
    assert "0 of 0 trials" not in page  # the curves come from the trials' curve attr


def test_params_as_an_objective_is_the_models_parameter_count(workdir: Path) -> None:
    args = [
        "study=deep_dnn",
        "n_trials=2",
        *tiny(workdir / "mlruns"),
        "metric=[val_accuracy,params]",
        "direction=[maximize,minimize]",
        "+space.model.width={type:categorical,choices:[8,32]}",
        "sampler=grid",
        "~space.optimizer",
        "~space.model.batch_norm",
        "~space.model.dropout_rate",
    ]
    done = run_cli("search.run", *args, cwd=workdir)
    assert done.returncode == 0, done.stderr
    study = study_in(workdir)
    counts = {t.params["model.width"]: t.values[1] for t in study.trials}
    # dense 64 -> w -> w -> w -> 10, each with biases
    assert counts == {w: float(64 * w + w + 2 * (w * w + w) + w * 10 + 10) for w in (8, 32)}
    maximize = [True, False]
    undominated = [
        t.number
        for t in study.trials
        if not dominated(t.values, [u.values for u in study.trials if u is not t], maximize)
    ]
    assert pareto_numbers(study) == undominated


def test_what_a_study_measures_counts_one_objective_once_and_no_pruner_of_several() -> None:
    one = measured(compose("study=deep_dnn"))
    assert (
        measured(compose("study=deep_dnn", "metric=[val_accuracy]", "direction=[maximize]")) == one
    )
    several = [measured(compose("study=deep_dnn", *MULTI, f"pruner={p}")) for p in PRUNERS]
    assert all(m == several[0] for m in several) and several[0] != one
    assert not any(key.startswith("pruner.") for key in several[0])


def test_the_parent_runs_front_is_the_whole_studys_across_revisions(tmp_path: Path) -> None:
    study = _study([(0.5, 0.4), (0.6, 0.3), (0.9, 0.5), (0.8, 0.2)], revised_from=2)
    view, revision = latest_revision(study)
    assert revision == 1 and len(view.trials) == 2
    drawn = {name: make() for name, make, _ in optuna_figures(view, front=study)}
    points = sum(len(trace.x) for trace in drawn["pareto_front"].data if trace.x is not None)
    assert points == 4  # every trial, as pareto_trials and search.pareto have them


def test_export_of_a_trial_into_another_studys_folder_is_refused(front_dir: Path) -> None:
    out = front_dir / "other"
    out.mkdir()
    (out / "best.yaml").write_text("source: {study_name: other, storage: /elsewhere.journal}\n")
    (out / "trials.csv").write_text("theirs\n")
    args = ["study=deep_dnn", *tiny(front_dir / "mlruns"), *MULTI, f"out={out}"]
    done = run_cli("search.export", *args, "trial=0", cwd=front_dir)
    assert done.returncode == 2 and "holds an export of study other" in done.stderr
    assert (out / "trials.csv").read_text() == "theirs\n" and not (out / "trial_0.yaml").exists()
