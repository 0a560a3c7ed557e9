"""The report's figures: each returns PNG bytes, or None when the study has nothing to draw."""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optuna  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator  # noqa: E402

from search.report.arms import Arms, _col  # noqa: E402
from search.study.front import first_target, is_multi, pareto_numbers  # noqa: E402
from search.tracking.plots import fanova_evaluator  # noqa: E402

__all__ = [
    "plot_best_so_far",
    "plot_diagnostics",
    "plot_learning_curves",
    "plot_mc_dropout",
    "plot_param_importances",
    "plot_pareto_front",
    "plot_per_arm",
]

_DPI = 110


def _colors(arms: Arms) -> dict[str, Any]:
    cmap = plt.get_cmap("tab10")
    return {arm: cmap(i % 10) for i, arm in enumerate(arms.order)}


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=_DPI, bbox_inches="tight")
    finally:
        plt.close(fig)
    return buffer.getvalue()


def _state_markers(rows: pd.DataFrame) -> list[Line2D]:
    """Legend entries for the trial states drawn (o complete, x pruned)."""
    states = set(rows["state"])
    return [
        Line2D([], [], marker=marker, ls="", color="0.35", label=state.lower())
        for state, marker in (("COMPLETE", "o"), ("PRUNED", "x"))
        if state in states
    ]


def _plain_numbers(axis: Any) -> None:
    """Tick labels of a log axis as plain numbers (0.3, 2), not 3x10^-1."""
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}"))


def _scatter_states(ax: Axes, x: pd.Series, rows: pd.DataFrame, color: Any, y: str) -> None:
    for state, marker in (("COMPLETE", "o"), ("PRUNED", "x")):
        mask = (rows["state"] == state).to_numpy()
        if mask.any():
            ax.scatter(
                np.asarray(x)[mask], rows[y].to_numpy()[mask], marker=marker, color=color, s=30
            )


def plot_best_so_far(arms: Arms) -> bytes:
    """Best-so-far value against trial number, one step line per arm, every trial a dot."""
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    colors = _colors(arms)
    for arm in arms.order:
        rows = arms.scored(arm).sort_values("number")
        if rows.empty:
            continue
        best = rows["value"].cummax() if arms.maximize else rows["value"].cummin()
        ax.step(rows["number"], best, where="post", color=colors[arm], lw=2, label=arm)
        _scatter_states(ax, rows["number"], rows, colors[arm], "value")
    ax.set(xlabel=_trial_axis(arms), ylabel=f"best {arms.metric} so far", title="Best so far")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    handles, _ = ax.get_legend_handles_labels()
    ax.legend(
        handles=handles + _state_markers(arms.scored()), title=arms.key, fontsize=8, loc="best"
    )
    return _png(fig)


def _trial_axis(arms: Arms) -> str:
    several = arms.trials["study"].nunique() > 1
    return "trial number (in its study)" if several else "trial number"


def plot_learning_curves(arms: Arms, top_k: int) -> bytes:
    """The metric per epoch of each arm's top-k trials, one colour per arm (best: thick)."""
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    colors = _colors(arms)
    for arm in arms.order:
        rows = arms.scored(arm)
        rows = rows[rows["curve"].map(bool)]
        rows = rows.sort_values("value", ascending=not arms.maximize).head(top_k)
        for rank, (_, row) in enumerate(rows.iterrows()):
            steps = sorted(row["curve"])
            label = f"{arm} (top {len(rows)}; best t{int(row['number'])})" if rank == 0 else None
            ax.plot(
                [s + 1 for s in steps],
                [row["curve"][s] for s in steps],
                color=colors[arm],
                lw=2.2 if rank == 0 else 1.0,
                alpha=1.0 if rank == 0 else 0.45,
                marker="." if len(steps) == 1 else None,  # a trial pruned after one epoch
                label=label,
            )
    ax.set(xlabel="epoch", ylabel=arms.metric, title=f"Learning curves: top {top_k} per arm")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(title=arms.key, fontsize=8, loc="best")
    return _png(fig)


def plot_per_arm(
    arms: Arms, rows: pd.DataFrame, column: str, ylabel: str, title: str, log_ok: bool = False
) -> bytes | None:
    """A box per arm with each of ``rows`` on top (jittered; o complete, x pruned); a log
    axis (``log_ok``) when the values span more than a factor of 8."""
    source = rows.assign(_y=_col(rows, column))
    source = source[source["_y"].notna()]
    if source.empty:
        return None
    present = [arm for arm in arms.order if (source["arm"] == arm).any()]
    fig, ax = plt.subplots(figsize=(max(4.5, 1.3 * len(present) + 2.5), 4.2))
    colors = _colors(arms)
    groups = [source.loc[source["arm"] == arm, "_y"].to_numpy() for arm in present]
    ax.boxplot(
        groups,
        positions=range(len(present)),
        widths=0.5,
        showfliers=False,
        medianprops={"color": "black", "lw": 1.5},
    )
    rng = np.random.default_rng(0)
    for i, arm in enumerate(present):
        mine = source[source["arm"] == arm]
        jitter = i + rng.uniform(-0.15, 0.15, len(mine))
        _scatter_states(ax, pd.Series(jitter), mine, colors[arm], "_y")
    ax.set_xticks(range(len(present)), present, rotation=20 if len(present) > 3 else 0)
    values = source["_y"]
    if log_ok and (values > 0).all() and values.max() / values.min() > 8:
        ax.set_yscale("log")
        _plain_numbers(ax.yaxis)
    ax.set(xlabel=arms.key, ylabel=ylabel, title=title)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(handles=_state_markers(source), fontsize=8, loc="best")
    return _png(fig)


def plot_mc_dropout(arms: Arms, table: pd.DataFrame) -> bytes | None:
    """Test accuracy, NLL and ECE of each arm's best MC Dropout trial: deterministic vs MC."""
    if table.empty:
        return None
    best = table.sort_values("value", ascending=not arms.maximize).groupby("arm", sort=False)
    rows = best.head(1).set_index("arm").reindex([a for a in arms.order if a in set(table["arm"])])
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.6))
    x = np.arange(len(rows))
    for ax, (name, title) in zip(
        axes, (("accuracy", "accuracy ↑"), ("nll", "NLL ↓"), ("ece", "ECE ↓")), strict=True
    ):
        ax.bar(x - 0.2, rows[f"test_{name}"], 0.4, label="deterministic", color="0.6")
        ax.bar(x + 0.2, rows[f"mc_test_{name}"], 0.4, label="MC Dropout", color="tab:purple")
        ax.set_xticks(
            x, [f"{a}\nt{int(t)}" for a, t in zip(rows.index, rows["trial"], strict=True)]
        )
        ax.set_title(f"test {title}")
        ax.grid(alpha=0.3, axis="y")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=9, frameon=False)
    fig.suptitle("Best trial of each arm: deterministic vs MC Dropout")
    fig.tight_layout(rect=(0, 0.07, 1, 1))  # room for the legend below the bars
    return _png(fig)


_DIAGNOSTICS = (
    ("dead_unit_fraction", "dead-unit fraction (ReLU units never active)", False),
    ("grad_norm_ratio", "gradient-norm ratio, first / last layer (log)", True),
)


def plot_diagnostics(arms: Arms) -> bytes | None:
    """The metric against the dead-unit fraction and the gradient-norm ratio, by arm."""
    scored = arms.scored()
    present = [d for d in _DIAGNOSTICS if _col(scored, d[0]).notna().any()]
    if not present:
        return None
    fig, axes = plt.subplots(1, len(present), figsize=(5.2 * len(present), 4), squeeze=False)
    colors = _colors(arms)
    drawn = []
    for ax, (column, label, log_x) in zip(axes[0], present, strict=True):
        values = _col(scored, column)
        rows = scored[values.notna() & ((values > 0) if log_x else True)]
        drawn.append(rows)
        for arm in arms.order:
            mine = rows[rows["arm"] == arm]
            if not mine.empty:
                _scatter_states(ax, _col(mine, column), mine, colors[arm], "value")
        if log_x:
            ax.set_xscale("log")
            _plain_numbers(ax.xaxis)
        ax.set(xlabel=label, ylabel=arms.metric)
        ax.grid(alpha=0.3)
    plotted = pd.concat(drawn)
    handles = [
        Line2D([], [], marker="s", ls="", color=colors[a], label=a)
        for a in arms.order
        if (plotted["arm"] == a).any()
    ]
    axes[0][-1].legend(
        handles=handles + _state_markers(plotted), title=arms.key, fontsize=8, loc="best"
    )
    fig.suptitle("Diagnostics at the end of training against the result")
    fig.tight_layout()
    return _png(fig)


def plot_param_importances(study: optuna.Study) -> bytes | None:
    """Optuna's fANOVA param importances (fixed seed; of several objectives, for the
    first); None below two differing trials."""

    def draw() -> Axes:
        return optuna.visualization.matplotlib.plot_param_importances(
            study,
            evaluator=fanova_evaluator(),
            target=first_target if is_multi(study) else None,
            target_name=(study.metric_names or ["Objective Value"])[0],
        )

    def shape(fig: Figure, ax: Axes) -> bool:
        if not ax.patches:
            return False
        fig.set_size_inches(7.5, max(2.5, 0.5 * len(ax.patches) + 1.5))
        legend = ax.get_legend()
        if legend is not None:
            legend.remove()  # "Objective Value": the plot is of one objective
        return True

    return _optuna_png(draw, shape, f"Param importances for {study.study_name} (fANOVA)")


def plot_pareto_front(study: optuna.Study) -> bytes | None:
    """A multi-objective study's trials on its first two (or three) objectives, the Pareto
    front marked (Optuna's plot); None for one objective or no complete trial."""
    if not is_multi(study) or len(study.directions) > 3 or not pareto_numbers(study):
        return None

    def shape(fig: Figure, ax: Axes) -> bool:
        fig.set_size_inches(7.5, 5)
        return True

    return _optuna_png(
        lambda: optuna.visualization.matplotlib.plot_pareto_front(study),
        shape,
        f"Pareto front of {study.study_name}",
    )


def _optuna_png(
    draw: Callable[[], Axes], shape: Callable[[Figure, Axes], bool], title: str
) -> bytes | None:
    """One of Optuna's matplotlib plots as PNG bytes, titled on the left (``shape`` sizes
    it, or says there is nothing to show); None when Optuna cannot draw it."""
    before = set(plt.get_fignums())
    with warnings.catch_warnings(), plt.rc_context():  # Optuna sets a global style
        warnings.simplefilter("ignore")
        try:
            ax = draw()
            fig = ax.get_figure()
            if isinstance(fig, Figure) and shape(fig, ax):
                ax.set_title(title, loc="left")
                ax.set_title("")  # Optuna's own title, centred: it would overlap
                return _png(fig)
        except (ValueError, RuntimeError, ZeroDivisionError):
            pass
        finally:
            for number in set(plt.get_fignums()) - before:
                plt.close(number)
    return None
