"""The answer in a few sentences and the self-contained HTML page."""

from __future__ import annotations

import base64
import html
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from search.report.arms import Arms, _num
from search.report.best import BestConfig
from search.study.outcome import DIVERGED, STUCK_AT_CHANCE

__all__ = ["Report", "answer", "render_html"]


def answer(arms: Arms, table: pd.DataFrame, mc: pd.DataFrame) -> str:
    """A few sentences from the numbers: the arms compared on each figure, best arm first."""
    ranked = table.sort_values("best_value", ascending=not arms.maximize)
    lead = ranked.iloc[0]
    name = str(ranked.index[0])
    prefix = name if arms.key.startswith("study") else f"{arms.key}={name}"
    if len(ranked) == 1:
        text = (
            f"{prefix}: best {arms.metric} {lead.best_value:.4f} (trial {lead.best_trial}, "
            f"{_test(arms)} {_acc(lead.test_value)}), median {_acc(lead.median_value)} over "
            f"{lead.complete + lead.pruned} finished trials; epochs to 95 % of its best: "
            f"{_epochs(lead.epochs_to_95)} ({lead.reached_95} of {lead.with_curve} trials get "
            f"there); {_sec(lead.seconds_per_epoch)} s/epoch"
        )
    else:
        others = [str(n) for n in ranked.index[1:]]

        def versus(column: str, fmt: Callable[[Any], str]) -> str:
            """``lead vs other for B, other for C``; with two arms ``lead vs other``."""
            named = len(others) > 1
            rest = ", ".join(
                fmt(ranked.loc[n, column]) + (f" for {n}" if named else "") for n in others
            )
            return f"{fmt(lead[column])} vs {rest}"

        text = (
            f"{prefix}: best {versus('best_value', _acc)}"
            + (f" for {others[0]}" if len(others) == 1 else "")
            + f"; median {versus('median_value', _acc)}; epochs to 95 % of its best: "
            f"{versus('epochs_to_95', _epochs)} (to 95 % of the overall best: "
            f"{versus('epochs_to_95_overall', _epochs)}); "
            f"{versus('seconds_per_epoch', _sec)} s/epoch; "
            f"{_test(arms)} of the best trial {versus('test_value', _acc)}"
        )
        for column, what in ((STUCK_AT_CHANCE, "stuck at chance"), (DIVERGED, "diverged")):
            if table[column].sum():
                text += f"; {what} {versus(column, lambda v: str(int(v)))}"
        counts = ranked[["complete", "pruned"]].sum(axis=1)
        text += f" ({' vs '.join(str(int(c)) for c in counts)} finished trials)"
    text += "."
    if not mc.empty:
        top = mc.sort_values("value", ascending=not arms.maximize).iloc[0]
        text += (
            f" MC Dropout on the best trial ({top.arm}, t{int(top.trial)}): test accuracy "
            f"{top.mc_test_accuracy:.4f} vs {top.test_accuracy:.4f} deterministic, NLL "
            f"{top.mc_test_nll:.3f} vs {top.test_nll:.3f}, ECE {top.mc_test_ece:.3f} vs "
            f"{top.test_ece:.3f}."
        )
    return text


def _acc(value: Any) -> str:
    return "–" if pd.isna(value) else f"{float(value):.4f}"


def _sec(value: Any) -> str:
    return "–" if pd.isna(value) else f"{float(value):.3g}"


def _epochs(value: Any) -> str:
    return "never" if pd.isna(value) else f"{float(value):g}"


_HEADERS = {
    "trials": "trials",
    "best_value": "best {m}",
    "median_value": "median {m}",
    "epochs_to_95": "epochs to 95 % of best",
    "epochs_to_95_overall": "epochs to 95 % of overall best",
    "seconds_per_epoch": "s/epoch",
    "pruned": "pruned",
    "failed": "failed",
    STUCK_AT_CHANCE: "stuck at chance",
    DIVERGED: "diverged",
    "best_trial": "best trial",
    "test_value": "test",  # named after the figure: test accuracy, test mae
}


def _test(arms: Arms) -> str:
    """``test accuracy``, ``test mae``: the test figure the report shows."""
    return arms.test_metric.replace("_", " ", 1)


def _display(arms: Arms, table: pd.DataFrame) -> pd.DataFrame:
    """The arm table as the page shows it: formatted numbers, 'n of m' next to medians."""
    several = arms.trials["study"].nunique() > 1
    shown = pd.DataFrame(index=table.index)
    for column, header in _HEADERS.items():
        values = table[column]
        if column == "test_value":
            header = _test(arms)
        if column in ("best_value", "median_value", "test_value"):
            cells = values.map(_acc)
        elif column == "seconds_per_epoch":
            cells = values.map(_sec)
        elif column in ("epochs_to_95", "epochs_to_95_overall"):
            reached = table["reached_95" if column == "epochs_to_95" else "reached_95_overall"]
            cells = pd.Series(
                [
                    f"{'–' if pd.isna(e) else f'{e:g}'} ({int(r)} of {int(n)})"
                    for e, r, n in zip(values, reached, table["with_curve"], strict=True)
                ],
                index=table.index,
            )
        elif column == "best_trial":
            cells = pd.Series(
                [
                    "–" if t < 0 else f"{s} t{int(t)}" if several else f"t{int(t)}"
                    for s, t in zip(table["best_study"], values, strict=True)
                ],
                index=table.index,
            )
        else:
            cells = values.astype(int).astype(str)
        shown[header.format(m=arms.metric)] = cells
    shown.index.name = arms.key
    return shown.reset_index()


@dataclass
class Report:
    """What the page is made of (also returned to the caller and the tests)."""

    title: str
    answer: str
    table: pd.DataFrame
    figures: dict[str, bytes]
    captions: dict[str, str]
    mc: pd.DataFrame
    best: list[BestConfig]
    path: Path = Path()
    figure_paths: list[Path] = field(default_factory=list)


_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1100px;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em}h2{margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:.2em}
.answer{background:#f3f7ff;border-left:4px solid #4a78d0;padding:.6em 1em;font-size:1.05em}
.meta{color:#666;font-size:.9em}
table.data{border-collapse:collapse;font-size:.9em;margin:.5em 0}
table.data th,table.data td{border:1px solid #ccc;padding:.25em .6em;text-align:right}
table.data th{background:#f5f5f5}table.data td:first-child{text-align:left;font-weight:600}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #eee}
figcaption{color:#555;font-size:.9em}
pre{background:#f6f6f6;padding:.6em;overflow-x:auto}
"""


def _table_html(frame: pd.DataFrame) -> str:
    return str(frame.to_html(index=False, border=0, classes="data", escape=True, na_rep="–"))


def _figure_html(report: Report, name: str) -> str:
    data = report.figures.get(name)
    if data is None:
        return ""
    encoded = base64.b64encode(data).decode("ascii")
    caption = html.escape(report.captions.get(name, ""))
    return (
        f'<figure><img src="data:image/png;base64,{encoded}" alt="{html.escape(name)}">'
        f"<figcaption>{caption}</figcaption></figure>"
    )


def render_html(report: Report, arms: Arms, meta: str) -> str:
    """The whole page: inline CSS, tables from pandas, figures as data URIs; no scripts."""
    esc = html.escape
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{esc(report.title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{esc(report.title)}</h1><p class='meta'>{esc(meta)}</p>",
        f"<div class='answer'><strong>Answer.</strong> {esc(report.answer)}</div>",
        f"<h2>Arms</h2>{_table_html(_display(arms, report.table))}",
        "<p class='meta'>Best and median over complete and pruned trials (a pruned trial's value"
        " is its last reported epoch). Epochs to 95 %: per trial, the first epoch whose "
        f"{esc(arms.metric)} reaches 95 % of the arm's best (or of the best of all arms); "
        "the median over the trials that reach it (how many do, of the trials with a curve). "
        "s/epoch: median of the trials' seconds per epoch (the first epoch, which traces the "
        "graph, left out; trials that ran one epoch only are not counted). Best trial: the "
        "arm's best complete trial, and its test accuracy.</p>",
        "<h2>Progress and learning curves</h2>",
        _figure_html(report, "best_so_far"),
        _figure_html(report, "learning_curves"),
        f"<h2>{esc(arms.metric)} and cost per arm</h2>",
        _figure_html(report, "value_per_arm"),
        _figure_html(report, "seconds_per_epoch"),
        "<h2>MC Dropout vs deterministic</h2>",
    ]
    if report.mc.empty:
        parts.append(
            "<p>The study has no MC Dropout figures: no trial recorded mc_test_* metrics "
            "(<code>evaluate.mc_dropout_samples=N</code> turns MC Dropout on).</p>"
        )
    else:
        parts += [_table_html(_mc_display(report.mc)), _figure_html(report, "mc_dropout")]
    parts.append("<h2>Diagnostics vs result</h2>")
    parts.append(
        _figure_html(report, "diagnostics")
        or "<p>The trials recorded no dead-unit fraction or gradient-norm ratio.</p>"
    )
    if "pareto_front" in report.figures:
        parts += ["<h2>The trade-off: Pareto front</h2>", _figure_html(report, "pareto_front")]
    if "param_importances" in report.figures:
        parts += ["<h2>Which params matter</h2>", _figure_html(report, "param_importances")]
    parts.append("<h2>Best configuration of each arm</h2>")
    for best in report.best:
        parts.append(_best_html(best, arms.key))
    parts.append("</body></html>")
    return "\n".join(p for p in parts if p)


def _mc_display(mc: pd.DataFrame) -> pd.DataFrame:
    shown = pd.DataFrame({"arm": mc["arm"], "trial": mc["trial"].map(lambda t: f"t{int(t)}")})
    if mc["study"].nunique() > 1:
        shown.insert(1, "study", mc["study"])
    for name, fmt in (("accuracy", "{:.4f}"), ("nll", "{:.3f}"), ("ece", "{:.3f}")):
        shown[f"test {name}"] = mc[f"test_{name}"].map(fmt.format)
        shown[f"MC {name}"] = mc[f"mc_test_{name}"].map(fmt.format)
    shown["MC entropy"] = mc["mc_predictive_entropy"].map(
        lambda v: "–" if pd.isna(v) else f"{v:.3f}"
    )
    return shown


def _best_html(best: BestConfig, key: str) -> str:
    esc = html.escape
    params = pd.DataFrame(
        {"param": list(best.params), "value": [_param_value(v) for v in best.params.values()]}
    )
    facts = (
        f"study {best.study}, trial {best.trial} ({best.state}): value {best.value:.4f}, "
        f"{best.test_metric.replace('_', ' ', 1)} {_acc(best.test_value)}, "
        f"MLflow run {best.run_id or '–'}"
    )
    where = (
        "" if best.path is None else f"<p>Config written to <code>{esc(str(best.path))}</code>.</p>"
    )
    commands = "\n".join(best.commands)
    overall = " (the study's best)" if best.path is None else ""
    return (
        f"<h3>{esc(key)} = {esc(best.arm)}{esc(overall)}</h3><p>{esc(facts)}</p>"
        f"{_table_html(params)}"
        f"{where}<pre>{esc(commands)}</pre>"
    )


def _param_value(value: Any) -> str:
    return _num(value) if isinstance(value, float) else str(value)
