"""What ``python -m search.report`` does: load the studies, make the report, write it
under ``out`` and log it to the study's MLflow parent run."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NOTE
from omegaconf import DictConfig

from search.cli.errors import HarnessError, first_line
from search.config.checks import check_study_name, storage_identity
from search.config.exported import check_same_source
from search.report.arms import Arms, arm_table, build_arms, mc_dropout_table, steady_epochs
from search.report.best import best_configs, shown_storage
from search.report.figures import (
    plot_best_so_far,
    plot_diagnostics,
    plot_learning_curves,
    plot_mc_dropout,
    plot_param_importances,
    plot_pareto_front,
    plot_per_arm,
)
from search.report.page import Report, answer, render_html
from search.study.names import Role, Tag
from search.study.revisions import recorded_metric
from search.study.storage import load_existing_study
from search.tracking.tracker import StudyTracker

__all__ = ["log_report", "make_report", "run_report", "write_report"]

log = logging.getLogger("search")

_NOTE_TAG = MLFLOW_RUN_NOTE  # the run's description in the MLflow UI
_NOTE_HEAD = "**Study report**"


_CAPTIONS = {
    "best_so_far": "Best value so far against trial number, per arm (dots: every trial; "
    "o complete, x pruned).",
    "learning_curves": "Validation curve per epoch of each arm's top trials (thick: the arm's "
    "best), from the values the trials reported to Optuna.",
    "value_per_arm": "Every complete and pruned trial's value, per arm.",
    "seconds_per_epoch": "Seconds per epoch of the trials that ran two epochs or more, per arm "
    "(median of each trial's epochs, the first, which traces the graph, left out).",
    "mc_dropout": "Test accuracy, NLL and ECE of each arm's best trial with MC Dropout "
    "figures: deterministic (grey) against MC Dropout (purple).",
    "diagnostics": "Diagnostics at the end of each trial against its value, coloured by arm.",
    "param_importances": "Optuna's fANOVA importance of each searched param for the value "
    "(complete trials).",
    "pareto_front": "Every complete trial on the study's objectives; the Pareto front (no "
    "other trial is as good on every objective and better on one) in red.",
}


def make_report(cfg: DictConfig, out: Path) -> tuple[Report, Arms]:
    """Load the studies, compute the numbers, draw the figures (nothing written but
    the arms' best configs)."""
    name = str(cfg.study_name)
    check_study_name(name)
    top_k = cfg.top_k
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise HarnessError(f"top_k must be a positive whole number, got {top_k!r}")
    studies = [load_existing_study(str(cfg.storage), name)]
    if not cfg.overwrite:  # a report of another store's study of the same name is kept
        source = {"study_name": name, "storage": storage_identity(str(cfg.storage))}
        for path in sorted(out.glob("best_*.yaml")):
            check_same_source(path, source, keys=("storage",))
    if cfg.vs:
        other = str(cfg.vs)
        check_study_name(other)
        if other == name:
            raise HarnessError(f"vs: '{other}' is the study itself; name another study")
        studies.append(load_existing_study(str(cfg.storage), other))
    by = str(cfg.by) if cfg.by else None
    arms = build_arms(studies, by, recorded_metric(studies[0], cfg.metric))
    table = arm_table(arms)
    mc = mc_dropout_table(arms, top_k)
    makers: dict[str, Callable[[], bytes | None]] = {
        "best_so_far": lambda: plot_best_so_far(arms),
        "learning_curves": lambda: plot_learning_curves(arms, top_k),
        "value_per_arm": lambda: plot_per_arm(
            arms, arms.scored(), "value", arms.metric, f"{arms.metric} per arm"
        ),
        "seconds_per_epoch": lambda: plot_per_arm(
            arms,
            pd.concat([steady_epochs(arms.of(arm)) for arm in arms.order]),
            "seconds_per_epoch",
            "seconds per epoch",
            "Seconds per epoch per arm",
            log_ok=True,
        ),
        "mc_dropout": lambda: plot_mc_dropout(arms, mc),
        "diagnostics": lambda: plot_diagnostics(arms),
        "param_importances": lambda: plot_param_importances(studies[0]),
        "pareto_front": lambda: plot_pareto_front(studies[0]),
    }
    figures = {k: png for k, make in makers.items() if (png := make()) is not None}
    out.mkdir(parents=True, exist_ok=True)
    title = f"Study report: {name}" + (f" vs {studies[1].study_name}" if len(studies) > 1 else "")
    title += f", by {by}" if by else ""
    report = Report(
        title=title,
        answer=answer(arms, table, mc),
        table=table,
        figures=figures,
        captions=_CAPTIONS,
        mc=mc,
        best=best_configs(arms, studies[0], cfg, out),
    )
    return report, arms


def write_report(cfg: DictConfig) -> Report:
    """Write ``<out>/report.html``, ``arms.csv`` and ``figures/*.png``."""
    out = Path(str(cfg.out)).expanduser()
    report, arms = make_report(cfg, out)
    counts = arms.trials.groupby("study").size()
    meta = (
        f"{datetime.now():%Y-%m-%d %H:%M} · storage {shown_storage(str(cfg.storage))} · "
        + ", ".join(f"{s}: {n} trials" for s, n in counts.items())
        + f" · arms by {arms.key}"
    )
    report.path = out / "report.html"
    report.path.write_text(render_html(report, arms, meta), encoding="utf-8")
    report.table.to_csv(out / "arms.csv")
    figures = out / "figures"
    figures.mkdir(exist_ok=True)
    for name, data in report.figures.items():
        path = figures / f"{name}.png"
        path.write_bytes(data)
        report.figure_paths.append(path)
    return report


def log_report(cfg: DictConfig, report: Report) -> str:
    """Log the page (and its figures under ``report/``) to the study's parent run and link
    them from its description; the run's status is left as it was. Returns the run id."""
    tracker = StudyTracker.from_config(cfg)
    try:
        tracker.check()
        status = _parent_status(tracker)
        tracker.open()
        run_id = tracker.parent_run_id
        client = tracker.client
        tracker.call(client.log_artifact, run_id, str(report.path))
        for path in report.figure_paths:
            tracker.call(client.log_artifact, run_id, str(path), "report")
        run = tracker.call(client.get_run, run_id)
        previous = run.data.tags.get(_NOTE_TAG, "") if run is not None else ""
        tracker.call(client.set_tag, run_id, _NOTE_TAG, _note(previous, report))
        if status != "RUNNING":  # a search.run in progress keeps its parent RUNNING
            tracker.call(client.set_terminated, run_id, status or "FINISHED")
    finally:
        tracker.executor.shutdown(wait=False)
    return run_id if tracker.online else ""


def _parent_status(tracker: StudyTracker) -> str | None:
    """The parent run's status before ``open`` marks it RUNNING (None: there is none yet)."""
    try:
        experiment = tracker.client.get_experiment_by_name(tracker.study_name)
        if experiment is None:
            return None
        runs = tracker.client.search_runs(
            [experiment.experiment_id],
            filter_string=f"tags.`{Tag.ROLE}` = '{Role.STUDY}'",
            order_by=["attributes.start_time ASC", "attributes.run_id ASC"],
            max_results=1,
        )
    except MlflowException as exc:
        raise HarnessError(
            f"tracking_uri: cannot read the parent run ({first_line(exc)})"
        ) from None
    return str(runs[0].info.status) if runs else None


def _note(previous: str, report: Report) -> str:
    """The parent run's description: what was there before, then the report's block
    (replacing the block an earlier report wrote)."""
    kept = previous.split(_NOTE_HEAD)[0].rstrip()
    local = report.path.resolve()
    block = (
        f"{_NOTE_HEAD}: `report.html` in this run's artifacts (Artifacts tab; figures under "
        f"`report/`); local file [{local}]({local.as_uri()}).\n\n{report.answer}"
    )
    return f"{kept}\n\n{block}" if kept else block


def run_report(cfg: DictConfig) -> Report:
    report = write_report(cfg)
    log.info(f"wrote {report.path} ({len(report.figures)} figures, {len(report.table)} arm(s))")
    try:
        run_id = log_report(cfg, report)
    except HarnessError as exc:  # the page is written: say so, and why it is not in MLflow
        log.warning(f"report not logged to MLflow: {exc}")
        run_id = ""
    if run_id:
        log.info(f"logged report.html to the parent run {run_id} of {cfg.study_name}")
    log.info(f"answer: {report.answer}")
    return report
