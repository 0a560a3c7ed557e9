"""A user's ordinary day (issue 13): a grid run to its end, Ctrl-C during the summary, a
continued study whose config changed, two stores with a study of the same name, a store in
a bad state. In-process (``run_study`` on a composed config), tiny studies on digits."""

from __future__ import annotations

import shlex
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import optuna
import pytest
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

import search.tracking
from search.cli import HarnessError
from search.export import export_study
from search.report.arms import build_arms
from search.run import run_study
from search.study import open_storage
from tests.conftest import compose, journal_path, run_cli, tiny

GRID = [
    "sampler=grid",
    "space.optimizer.learning_rate=null",
    "space.model.dropout_rate.high=0.1",  # 2 dropout rates x 2 batch_norm = 4 points
]


def interrupt(*args: object, **kwargs: object) -> NoReturn:
    """Stands in for a function that Ctrl-C interrupts."""
    raise KeyboardInterrupt


def client_of(mlruns: Path) -> MlflowClient:
    return MlflowClient(f"sqlite:///{mlruns / 'mlflow.db'}")


def study_of(mlruns: Path, name: str = "deep_dnn") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=open_storage(str(mlruns / "optuna.journal")))


def runs_by_role(mlruns: Path, role: str) -> list[object]:
    client = client_of(mlruns)
    experiment = client.get_experiment_by_name("deep_dnn")
    assert experiment is not None
    return list(client.search_runs([experiment.experiment_id], f"tags.`search.role` = '{role}'"))


def parent_run(mlruns: Path) -> object:
    (parent,) = runs_by_role(mlruns, "study")
    return parent


def test_a_used_up_grid_is_a_normal_end(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """n_trials above the grid size: the grid's 4 points run, the study is summarised, and
    a rerun adds no duplicate point (before: RuntimeError from Study.stop, parent KILLED)."""
    monkeypatch.chdir(workdir)
    mlruns = workdir / "mlruns"
    cfg = compose("study=deep_dnn", *tiny(mlruns, "n_trials=10", "train.epochs=1", *GRID))
    run_study(cfg)
    trials = study_of(mlruns).trials
    assert len(trials) == 4
    points = {(t.params["model.batch_norm"], t.params["model.dropout_rate"]) for t in trials}
    assert points == {(False, 0.0), (False, 0.1), (True, 0.0), (True, 0.1)}
    assert parent_run(mlruns).info.status == "FINISHED"  # type: ignore[attr-defined]
    run_study(cfg)
    assert len(study_of(mlruns).trials) == 4


def test_ctrl_c_during_the_summary_is_completed_by_the_same_command(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(workdir)
    mlruns = workdir / "mlruns"
    cfg = compose("study=deep_dnn", *tiny(mlruns, "n_trials=2", "train.epochs=1"))
    real = search.tracking.publish_summary

    monkeypatch.setattr(search.tracking, "publish_summary", interrupt)
    with pytest.raises(KeyboardInterrupt):
        run_study(cfg)
    assert parent_run(mlruns).info.status == "KILLED"  # type: ignore[attr-defined]
    assert {r.info.status for r in runs_by_role(mlruns, "trial")} == {"FINISHED"}  # type: ignore[attr-defined]

    monkeypatch.setattr(search.tracking, "publish_summary", real)
    run_study(cfg)  # the same command: nothing to train, the summary is written
    parent = parent_run(mlruns)
    assert parent.info.status == "FINISHED"  # type: ignore[attr-defined]
    assert parent.data.metrics["n_finished_trials"] == 2  # type: ignore[attr-defined]
    files = {f.path for f in client_of(mlruns).list_artifacts(parent.info.run_id)}  # type: ignore[attr-defined]
    assert "trials.csv" in files
    assert len(study_of(mlruns).trials) == 2


def test_ctrl_c_during_a_sync_leaves_the_parent_run_closed(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import search.sync

    monkeypatch.chdir(workdir)
    mlruns = workdir / "mlruns"
    cfg = compose("study=deep_dnn", *tiny(mlruns, "n_trials=1", "train.epochs=1"))
    run_study(cfg)

    monkeypatch.setattr(search.sync, "publish_summary", interrupt)
    with pytest.raises(KeyboardInterrupt):
        search.sync.run_sync(cfg)
    assert parent_run(mlruns).info.status == "KILLED"  # type: ignore[attr-defined]
    run_study(cfg)  # the same study's command completes the summary
    assert parent_run(mlruns).info.status == "FINISHED"  # type: ignore[attr-defined]


CHANGES = [
    (["space.optimizer.learning_rate.high=0.1"], "space.optimizer.learning_rate.high: 0.01 -> 0.1"),
    (["train.epochs=2"], "train.epochs: 1 -> 2"),
    (
        ["+space.model.depth={type:int,low:2,high:3}"],
        "space.model.depth: added {high: 3, low: 2, type: int}",
    ),
    (["space.model.batch_norm=null"], "space.model.batch_norm: dropped (was {choices: [False, "),
    # the budget is named first, before the space's changes
    (
        ["train.epochs=3", "space.model.dropout_rate.high=0.4"],
        "config (train.epochs: 1 -> 3; space",
    ),
    (["model.width=12"], "model.width: 8 -> 12"),
]


@pytest.fixture(scope="module")
def first_revision(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-trial study (1 epoch, width 8) to continue with changes; copied per test."""
    work = tmp_path_factory.mktemp("revision0")
    cfg = compose("study=deep_dnn", *tiny(work / "mlruns", "n_trials=2", "train.epochs=1"))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(work)
        run_study(OmegaConf.merge(cfg, {"model": {"width": 8}}))
    return work / "mlruns"


def copy_of(store: Path, work: Path) -> Path:
    shutil.copytree(store, work / "mlruns", dirs_exist_ok=True)
    return work / "mlruns"


@pytest.mark.parametrize(("overrides", "said"), CHANGES)
def test_a_changed_study_is_refused_with_what_changed(
    first_revision: Path,
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
    overrides: list[str],
    said: str,
) -> None:
    monkeypatch.chdir(workdir)
    mlruns = copy_of(first_revision, workdir)
    args = tiny(mlruns, "n_trials=4", "train.epochs=1", "model.width=8", *overrides)
    with pytest.raises(HarnessError) as err:
        run_study(compose("study=deep_dnn", *args))
    message = str(err.value)
    assert "\n" not in message
    assert said in message, message
    assert "add accept_changes=true to continue it as revision 1" in message
    assert len(study_of(mlruns).trials) == 2  # nothing ran
    assert len(runs_by_role(mlruns, "trial")) == 2


def test_accepted_changes_make_a_revision_the_report_tells_apart(
    first_revision: Path, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(workdir)
    mlruns = copy_of(first_revision, workdir)
    args = tiny(mlruns, "n_trials=4", "train.epochs=2", "model.width=8", "accept_changes=true")
    run_study(compose("study=deep_dnn", *args))
    study = study_of(mlruns)
    assert [t.user_attrs["revision"] for t in study.trials] == [0, 0, 1, 1]
    tags = {
        r.data.tags["optuna.trial_number"]: r.data.tags["revision"]
        for r in runs_by_role(mlruns, "trial")
    }  # type: ignore[attr-defined]
    assert tags == {"0": "0", "1": "0", "2": "1", "3": "1"}
    assert build_arms([study], None).order == ["deep_dnn r0", "deep_dnn r1"]
    # the same command again: revision 1 is known, nothing to ask
    run_study(compose("study=deep_dnn", *args[:-1], "n_trials=5"))
    assert study_of(mlruns).trials[-1].user_attrs["revision"] == 1


def test_a_study_from_before_revisions_is_compared_with_its_first_trial(
    first_revision: Path, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(workdir)
    mlruns = copy_of(first_revision, workdir)
    study_of(mlruns).set_user_attr("revisions", [])  # as a study made by an older version
    args = tiny(mlruns, "n_trials=3", "train.epochs=1", "model.width=8")
    with pytest.raises(HarnessError, match=r"train.epochs: 1 -> 2"):
        run_study(compose("study=deep_dnn", *args, "train.epochs=2"))
    run_study(compose("study=deep_dnn", *args))  # the same config: it goes on as revision 0
    study = study_of(mlruns)
    assert len(study.trials) == 3 and study.trials[-1].user_attrs["revision"] == 0
    assert len(study.user_attrs["revisions"]) == 1


@pytest.mark.parametrize(
    ("fixed", "said"),
    [
        (
            "metric=val_loss direction=minimize",
            "(direction: maximize -> minimize; metric: val_accuracy -> val_loss)",
        ),
        (
            "metric=val_sparse_top_k_categorical_accuracy",
            "(metric: val_accuracy -> val_sparse_top_k_categorical_accuracy)",
        ),
        (  # one objective to two: another study, not a revision
            "metric=[val_accuracy,params] direction=[maximize,minimize]",
            "metric: val_accuracy -> [val_accuracy,params]); continue it with "
            "metric=val_accuracy direction=maximize, or start",
        ),
    ],
)
def test_what_a_study_optimizes_cannot_change(
    first_revision: Path, workdir: Path, monkeypatch: pytest.MonkeyPatch, fixed: str, said: str
) -> None:
    monkeypatch.chdir(workdir)
    mlruns = copy_of(first_revision, workdir)
    args = tiny(mlruns, "n_trials=4", "train.epochs=1", "model.width=8", "accept_changes=true")
    with pytest.raises(HarnessError, match="made to optimize another objective") as err:
        run_study(compose("study=deep_dnn", *args, *fixed.split()))
    assert said in str(err.value)  # every change of the objective, not the first only


def test_an_export_from_another_store_is_not_replaced(
    first_revision: Path, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two stores, a study of the same name in each: exporting the second over the first's
    export is refused (one line) unless overwrite=true; the same store re-exports freely."""
    monkeypatch.chdir(workdir)
    one = copy_of(first_revision, workdir / "one")
    two = copy_of(first_revision, workdir / "two")
    out = f"out={workdir / 'exports'}"
    best_yaml, _ = export_study(
        compose("study=deep_dnn", f"mlruns_dir={one}", out, config_name="export")
    )
    export_study(compose("study=deep_dnn", f"mlruns_dir={one}", out, config_name="export"))
    before = best_yaml.read_bytes()
    with pytest.raises(HarnessError) as err:
        export_study(compose("study=deep_dnn", f"mlruns_dir={two}", out, config_name="export"))
    assert f"holds an export of study deep_dnn from {one}/optuna.journal" in str(err.value)
    assert "add overwrite=true" in str(err.value)
    assert best_yaml.read_bytes() == before
    export_study(
        compose("study=deep_dnn", f"mlruns_dir={two}", out, "overwrite=true", config_name="export")
    )
    source = OmegaConf.load(best_yaml).source
    assert source.storage == str(two / "optuna.journal")


def test_the_printed_hints_name_the_same_stores(workdir: Path) -> None:
    """A study of the user's own config folder run on mlruns_dir=DIR: the printed export
    command (study, store and --config-dir as given) exports that study from DIR, and the
    browse command opens DIR (before: ``export: python -m search.export study=deep_dnn``,
    which exported ./mlruns' study of that name)."""
    mine = workdir / "configs" / "study"
    mine.mkdir(parents=True)
    (mine / "mine.yaml").write_text("# @package _global_\ndefaults:\n  - deep_dnn\n")
    other = workdir / "elsewhere"
    args = ["study=mine", *tiny(other, "n_trials=1"), "--config-dir", str(workdir / "configs")]
    done = run_cli("search.run", *args, cwd=workdir)
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(": ", 1) for line in done.stdout.splitlines() if ": " in line)
    assert f"mlruns_dir={other}" in lines["browse"]
    assert "study=" not in lines["browse"]  # search.ui takes no study
    words = shlex.split(lines["export"])
    assert words[:4] == ["python", "-m", "search.export", "study=mine"]
    assert f"mlruns_dir={other}" in words
    assert words[-2:] == ["--config-dir", str(workdir / "configs")]
    exported = run_cli(*words[2:], cwd=workdir)
    assert exported.returncode == 0, exported.stderr
    best = OmegaConf.load(workdir / "exports" / "mine" / "best.yaml")
    assert best.source.storage == str(other / "optuna.journal")
    assert best.source.study_name == "mine"


def _file_for_folder(work: Path) -> list[str]:
    (work / "afile").write_text("not a folder")
    return [f"mlruns_dir={work / 'afile'}"]


def _garbage_mlflow_db(work: Path) -> list[str]:
    (work / "mlruns" / "mlflow.db").write_bytes(b"garbage, not SQLite")
    return []


def _garbage_journal(work: Path) -> list[str]:
    (work / "mlruns" / "optuna.journal").write_bytes(b'{"op_code": 0, garbage\n')
    return []


def _truncated_journal(work: Path) -> list[str]:
    good = b'{"op_code": 0, "worker_id": "w", "study_name": "x", "directions": [2]}\n'
    (work / "mlruns" / "optuna.journal").write_bytes(good + good[:20])
    return []


def _corrupt_middle_journal(work: Path) -> list[str]:
    good = b'{"op_code": 0, "worker_id": "w", "study_name": "x", "directions": [2]}\n'
    (work / "mlruns" / "optuna.journal").write_bytes(good + b"{oops\n" + good)
    return []


def _garbage_sqlite_storage(work: Path) -> list[str]:
    (work / "mlruns" / "optuna.db").write_bytes(b"garbage" * 100)
    return [f"storage=sqlite:///{work / 'mlruns' / 'optuna.db'}"]


@pytest.mark.parametrize(
    ("make", "said"),
    [
        (_file_for_folder, "afile is a file, not a folder (it should hold mlflow.db)"),
        (_garbage_mlflow_db, "tracking_uri: cannot read the MLflow store"),
        (_garbage_journal, "the last line of"),
        (_truncated_journal, "is cut off or not JSON"),
        (_corrupt_middle_journal, "storage: cannot read"),
        (_garbage_sqlite_storage, "storage: cannot open sqlite:///"),
    ],
)
def test_a_store_in_a_bad_state_is_named_and_left_as_it_was(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, make: Callable[[Path], list[str]], said: str
) -> None:
    monkeypatch.chdir(workdir)
    extra = make(workdir)
    files = {p: p.read_bytes() for p in workdir.rglob("*") if p.is_file()}
    with pytest.raises(HarnessError) as err:
        run_study(compose("study=deep_dnn", *tiny(workdir / "mlruns", "n_trials=1"), *extra))
    assert "\n" not in str(err.value)
    assert said in str(err.value), str(err.value)
    for path, content in files.items():
        assert path.read_bytes() == content, f"{path} was changed"
    assert not journal_path(workdir).exists() or journal_path(workdir) in files


@pytest.mark.parametrize("where", ["uploading the artifacts", "before finish"])
def test_ctrl_c_while_a_run_is_closed_leaves_it_killed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """A re-train's or an LR test's run: interrupted while its files upload (seconds on a
    server) or before it is closed, it ends KILLED, never RUNNING."""
    from search.study import outcome_of
    from search.tracking import StudyTracker

    tracker = StudyTracker(f"sqlite:///{tmp_path / 'mlflow.db'}", str(tmp_path / "a"), "s")
    tracker.open(parent=False)
    run = tracker.start_run("retrain t0", {"search.role": "retrain"}, {"a": 1})
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "x.txt").write_text("x")

    with pytest.raises(KeyboardInterrupt):
        with run.ended_by_errors():
            if where == "before finish":
                raise KeyboardInterrupt
            monkeypatch.setattr(tracker.client, "log_artifacts", interrupt)
            run.finish(outcome_of(None), artifacts_dir=tmp_path / "files")
    assert tracker.client.get_run(run.run_id).info.status == "KILLED"
