"""The study's pictures for its MLflow parent run: Optuna's own plots and the best curves.

Optuna's visualisation module draws each figure twice: plotly for one interactive HTML page
(``study_plots.html``, plotly.js embedded once, opens offline) and matplotlib for a PNG of
each (``plots/<name>.png``): optimisation history, parameter importances, parallel
coordinates, slice, and the contour of the two most important parameters. A figure that
the study cannot have yet (importances with one finished trial, a contour with one
parameter) is left out. ``learning_curves.png`` overlays the top-k trials' validation
accuracy (Optuna's intermediate values) and validation loss (their MLflow runs). A study
with trials of several revisions (``search.study.revisions``) is drawn for its latest
one: trials of another search space or budget are not plotted as one history.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import optuna  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from optuna.trial import FrozenTrial  # noqa: E402

from search.study.names import Attr  # noqa: E402
from search.study.revisions import latest_revision, recorded_metric, revision_of  # noqa: E402
from search.study.storage import FINISHED  # noqa: E402
from search.tracking.tracker import StudyTracker  # noqa: E402

__all__ = ["fanova_evaluator", "learning_curves", "optuna_figures", "write_study_plots"]

log = logging.getLogger("search")


def write_study_plots(
    study: optuna.Study, out: Path, tracker: StudyTracker | None = None, top_k: int = 5
) -> list[Path]:
    """Write the figures into ``out`` (PNGs under ``out/plots``); returns the files made."""
    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    drawn, revision = latest_revision(study)
    made: list[Path] = []
    html_parts: list[str] = []
    for name, plotly_fig, mpl_fig in optuna_figures(drawn):
        with _quiet():
            try:
                figure = plotly_fig()
                html_parts.append(
                    f"<h2>{name.replace('_', ' ')}</h2>"
                    + figure.to_html(full_html=False, include_plotlyjs=not html_parts)
                )
                axes = mpl_fig()
            except (ValueError, RuntimeError, ZeroDivisionError) as exc:
                log.debug(f"study plot {name} skipped: {exc}")
                continue
            made.append(_save(_figure_of(axes), plots / f"{name}.png"))
    if html_parts:
        page = out / "study_plots.html"
        title = f"Optuna study {drawn.study_name}"
        page.write_text(
            f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head>"
            f"<body><h1>{title}</h1>{''.join(html_parts)}</body></html>",
            encoding="utf-8",
        )
        made.append(page)
    curves = learning_curves(study, tracker, top_k, revision)
    if curves is not None:
        made.append(_save(curves, plots / "learning_curves.png"))
    return made


def optuna_figures(
    study: optuna.Study,
) -> Iterator[tuple[str, Callable[[], Any], Callable[[], Any]]]:
    """(name, plotly figure, matplotlib axes) makers of Optuna's plots for this study."""
    vis, mpl = optuna.visualization, optuna.visualization.matplotlib
    yield (
        "optimization_history",
        lambda: vis.plot_optimization_history(study),
        lambda: mpl.plot_optimization_history(study),
    )
    params = _most_important(study)
    if not params:
        return
    yield (
        "param_importances",
        lambda: vis.plot_param_importances(study, evaluator=fanova_evaluator()),
        lambda: mpl.plot_param_importances(study, evaluator=fanova_evaluator()),
    )
    yield (
        "parallel_coordinate",
        lambda: vis.plot_parallel_coordinate(study),
        lambda: mpl.plot_parallel_coordinate(study),
    )
    yield "slice", lambda: vis.plot_slice(study), lambda: mpl.plot_slice(study)
    if len(params) >= 2:
        pair = params[:2]
        yield (
            "contour",
            lambda: vis.plot_contour(study, params=pair),
            lambda: mpl.plot_contour(study, params=pair),
        )


def _most_important(study: optuna.Study) -> list[str]:
    """Parameters by fANOVA importance (needs two finished trials with differing params)."""
    with _quiet():
        try:
            return list(
                optuna.importance.get_param_importances(study, evaluator=fanova_evaluator())
            )
        except (ValueError, RuntimeError, ZeroDivisionError):
            return []


def fanova_evaluator() -> optuna.importance.FanovaImportanceEvaluator:
    """fANOVA with a fixed seed: the same study gives the same importances every time."""
    return optuna.importance.FanovaImportanceEvaluator(seed=0)


def learning_curves(
    study: optuna.Study, tracker: StudyTracker | None, top_k: int = 5, revision: int | None = None
) -> plt.Figure | None:
    """The study's metric (its intermediate values: validation accuracy by default) and the
    validation loss against epoch of the top-k trials (of ``revision``, if given), overlaid."""
    sign = 1.0 if study.direction == optuna.study.StudyDirection.MINIMIZE else -1.0
    scored = [
        t
        for t in study.get_trials(deepcopy=False, states=FINISHED)
        if t.value is not None and (revision is None or revision_of(t) == revision)
    ]
    trials = sorted(scored, key=lambda t: sign * float(t.value or 0.0))[:top_k]
    if not trials:
        return None
    figure, (acc, loss) = plt.subplots(1, 2, figsize=(11, 4.2))
    for trial in trials:
        label = f"t{trial.number:03d} {trial.value:.4f}"
        steps = sorted(trial.intermediate_values)  # 0-based; drawn from epoch 1, as Keras
        dot = "o" if len(steps) == 1 else None  # a one-epoch trial is a point, not a line
        values = [trial.intermediate_values[s] for s in steps]
        (line,) = acc.plot([s + 1 for s in steps], values, marker=dot, label=label)
        history = _val_loss(trial, tracker)
        if history:
            epochs, losses = zip(*history, strict=True)
            loss.plot(
                [e + 1 for e in epochs], losses, color=line.get_color(), marker=dot, label=label
            )
    metric = recorded_metric(study, "val_accuracy").removeprefix("val_")
    acc.set(xlabel="epoch", ylabel=f"validation {metric}", title=f"top {len(trials)} trials")
    loss.set(xlabel="epoch", ylabel="validation loss", title="validation loss")
    last = max(max(t.intermediate_values, default=0) for t in trials) + 1
    for axes in (acc, loss):
        axes.grid(alpha=0.3)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        axes.set_xlim(0.5, last + 0.5)  # whole epochs, also for one
    acc.legend(fontsize=8, loc="upper right" if sign > 0 else "lower right")
    if loss.lines:
        loss.legend(fontsize=8, loc="upper right")
    else:
        loss.text(0.5, 0.5, "no MLflow history", ha="center", transform=loss.transAxes)
    shown = study.study_name if revision is None else f"{study.study_name} r{revision}"
    figure.suptitle(f"{shown}: learning curves")
    figure.tight_layout()
    return figure


def _val_loss(trial: FrozenTrial, tracker: StudyTracker | None) -> list[tuple[int, float]]:
    run_id = trial.user_attrs.get(Attr.MLFLOW_RUN_ID)
    if tracker is None or not run_id or not tracker.online:
        return []
    history = tracker.call(tracker.client.get_metric_history, run_id, "val_loss") or []
    return sorted((m.step, m.value) for m in history)


def _figure_of(axes: Any) -> plt.Figure:
    first = axes.flat[0] if hasattr(axes, "flat") else axes
    figure: plt.Figure = first.get_figure()
    return figure


def _save(figure: plt.Figure, path: Path) -> Path:
    figure.savefig(path, dpi=100, bbox_inches="tight")  # Optuna's rotated labels fit
    plt.close(figure)
    return path


@contextmanager
def _quiet() -> Iterator[None]:
    """Optuna's matplotlib plots are "experimental" and warn about it each time."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
