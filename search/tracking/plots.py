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

from search.study.front import curve_of, first_target, is_multi, maximizes  # noqa: E402
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
    for name, plotly_fig, mpl_fig in optuna_figures(drawn, front=study):
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
    study: optuna.Study, front: optuna.Study | None = None
) -> Iterator[tuple[str, Callable[[], Any], Callable[[], Any]]]:
    """(name, plotly figure, matplotlib axes) makers of Optuna's plots for this study. Of a
    multi-objective study: the Pareto front (2 or 3 objectives) of ``front`` (the whole
    study, as its tags and export have it; ``study`` may be one revision of it), the
    importances for each objective, and the other plots for the first objective."""
    vis, mpl = optuna.visualization, optuna.visualization.matplotlib
    on: dict[str, Any] = {}  # one objective: Optuna's own value
    whole = front or study
    if is_multi(study):
        names = study.metric_names or [f"objective {i}" for i in range(len(study.directions))]
        on = {"target": first_target, "target_name": names[0]}
        if len(study.directions) <= 3:
            yield (
                "pareto_front",
                lambda: vis.plot_pareto_front(whole),
                lambda: mpl.plot_pareto_front(whole),
            )
    yield (
        "optimization_history",
        lambda: vis.plot_optimization_history(study, **on),
        lambda: mpl.plot_optimization_history(study, **on),
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
        lambda: vis.plot_parallel_coordinate(study, **on),
        lambda: mpl.plot_parallel_coordinate(study, **on),
    )
    yield "slice", lambda: vis.plot_slice(study, **on), lambda: mpl.plot_slice(study, **on)
    if len(params) >= 2:
        pair = params[:2]
        yield (
            "contour",
            lambda: vis.plot_contour(study, params=pair, **on),
            lambda: mpl.plot_contour(study, params=pair, **on),
        )


def _most_important(study: optuna.Study) -> list[str]:
    """Parameters by fANOVA importance (needs two finished trials with differing params);
    of several objectives, for the first."""
    target = first_target if is_multi(study) else None
    with _quiet():
        try:
            return list(
                optuna.importance.get_param_importances(
                    study, evaluator=fanova_evaluator(), target=target
                )
            )
        except (ValueError, RuntimeError, ZeroDivisionError):
            return []


def fanova_evaluator() -> optuna.importance.FanovaImportanceEvaluator:
    """fANOVA with a fixed seed: the same study gives the same importances every time."""
    return optuna.importance.FanovaImportanceEvaluator(seed=0)


def learning_curves(
    study: optuna.Study, tracker: StudyTracker | None, top_k: int = 5, revision: int | None = None
) -> plt.Figure | None:
    """The study's metric (its intermediate values: validation accuracy by default; of a
    multi-objective study, which reports none, its ``curve``: ``front.curve_of``) and
    the validation loss against epoch of the top-k trials (of ``revision``, if given) on
    the first objective, overlaid."""
    sign = -1.0 if maximizes(study) else 1.0
    scored = [
        t
        for t in study.get_trials(deepcopy=False, states=FINISHED)
        if t.values and (revision is None or revision_of(t) == revision)
    ]
    trials = sorted(scored, key=lambda t: sign * float(t.values[0]))[:top_k]
    if not trials:
        return None
    metric = recorded_metric(study, "val_accuracy")
    figure, (acc, loss) = plt.subplots(1, 2, figsize=(11, 4.2))
    last = 1
    for trial in trials:
        label = f"t{trial.number:03d} {trial.values[0]:.4f}"
        curve = sorted(curve_of(trial).items())
        dot = "o" if len(curve) == 1 else None  # a one-epoch trial is a point, not a line
        steps = [step + 1 for step, _ in curve]  # 0-based; drawn from epoch 1, as Keras
        (line,) = acc.plot(steps, [value for _, value in curve], marker=dot, label=label)
        last = max([last, *steps])
        history = _history(trial, tracker, "val_loss")
        if history:
            epochs, losses = zip(*history, strict=True)
            loss.plot(
                [e + 1 for e in epochs], losses, color=line.get_color(), marker=dot, label=label
            )
    name = metric.removeprefix("val_")
    acc.set(xlabel="epoch", ylabel=f"validation {name}", title=f"top {len(trials)} trials")
    loss.set(xlabel="epoch", ylabel="validation loss", title="validation loss")
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


def _history(
    trial: FrozenTrial, tracker: StudyTracker | None, metric: str
) -> list[tuple[int, float]]:
    """``metric`` by epoch from the trial's MLflow run."""
    run_id = trial.user_attrs.get(Attr.MLFLOW_RUN_ID)
    if tracker is None or not run_id or not tracker.online:
        return []
    history = tracker.call(tracker.client.get_metric_history, run_id, metric) or []
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
