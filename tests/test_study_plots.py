"""The study's plots for its parent run, on in-memory studies (no Keras, no MLflow)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image
import optuna
import pytest

from search.tracking import learning_curves, optuna_figures, write_study_plots

OPTUNA_PLOTS = {"optimization_history", "param_importances", "parallel_coordinate", "slice"}


def _study(n_trials: int) -> optuna.Study:
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(0))

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("optimizer.learning_rate", 1e-4, 1e-1, log=True)
        drop = trial.suggest_float("model.dropout_rate", 0.0, 0.5)
        bn = trial.suggest_categorical("model.batch_norm", [False, True])
        for epoch in range(4):
            trial.report((epoch + 1) / 4 * (1 - drop) * (0.9 if bn else 0.8), step=epoch)
        return (1 - drop) * (0.9 if bn else 0.8) - abs(lr - 0.01)

    study.optimize(objective, n_trials=n_trials)
    return study


def test_every_figure_is_written_as_png_and_in_one_offline_html(tmp_path: Path) -> None:
    study = _study(12)
    made = write_study_plots(study, tmp_path)
    pngs = {p.stem for p in made if p.suffix == ".png"}
    assert pngs == OPTUNA_PLOTS | {"contour", "learning_curves"}
    for path in made:
        if path.suffix == ".png":
            image = matplotlib.image.imread(path)
            assert image.shape[0] > 200 and image.shape[1] > 300
            assert image.std() > 0.01  # not a blank canvas
    html = (tmp_path / "study_plots.html").read_text(encoding="utf-8")
    assert html.count("<h2>") == 5 and "plotly" in html
    assert '<script src="http' not in html  # plotly.js embedded: opens offline
    plotly = {name: make() for name, make, _ in optuna_figures(study)}  # what the page drew
    values = [float(t.value) for t in study.trials if t.value is not None]
    assert list(plotly["optimization_history"].data[0].y) == pytest.approx(values)


def test_a_study_without_results_gets_no_curves_and_no_error(tmp_path: Path) -> None:
    study = optuna.create_study(direction="maximize")
    study.tell(study.ask(), state=optuna.trial.TrialState.FAIL)
    made = write_study_plots(study, tmp_path)
    assert {p.name for p in made} == {"optimization_history.png", "study_plots.html"}


def test_learning_curves_overlay_the_top_k_trials() -> None:
    study = _study(8)
    figure = learning_curves(study, tracker=None, top_k=3)
    assert figure is not None
    accuracy = figure.axes[0]
    best = sorted(study.trials, key=lambda t: -float(t.value or 0))[:3]
    assert [line.get_label() for line in accuracy.lines] == [
        f"t{t.number:03d} {t.value:.4f}" for t in best
    ]
    assert list(accuracy.lines[0].get_ydata()) == list(best[0].intermediate_values.values())
