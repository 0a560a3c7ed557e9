"""The Optuna objective: one trial = sample, track, train, report.

Outcome -> state: returns the best validation accuracy (COMPLETE); a pruning decision, a
fit stuck at chance level (``diagnosis=stuck_at_chance``) or a diverged loss
(``diagnosis=diverged``) end as PRUNED, so the sampler learns the region is bad; anything
else that raises is FAIL. The trial's MLflow run is closed in every case.
"""

from __future__ import annotations

import logging
import math
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from omegaconf import DictConfig, OmegaConf
from optuna_integration import KerasPruningCallback

from search.callbacks import EpochRecorder
from search.config import as_dict, resolved_copy
from search.data import Splits
from search.diagnostics import StuckAtChance
from search.lr_find import plot_lr_curve, resolve_auto_lr
from search.space import ParamSpec, apply_params, sample_params
from search.tracking import StudyTracker, TrialRun
from search.training import TrialDiverged, fit_config, save_history, summarize_epochs

__all__ = ["make_objective", "trial_config"]

log = logging.getLogger("search")
LR_KEY = "optimizer.learning_rate"


def trial_config(
    cfg: DictConfig, trial: optuna.trial.BaseTrial, specs: list[ParamSpec]
) -> tuple[DictConfig, dict[str, Any]]:
    """The trial's resolved config: sampled values applied, ``seed`` = base seed + trial number."""
    sampled = sample_params(trial, specs, cfg)
    out = apply_params(resolved_copy(cfg), sampled)
    out.seed = int(cfg.seed) + int(trial.number)
    return out, sampled


def make_objective(
    cfg: DictConfig, specs: list[ParamSpec], splits: Splits, tracker: StudyTracker
) -> Callable[[optuna.Trial], float]:
    def objective(trial: optuna.Trial) -> float:
        config, sampled = trial_config(cfg, trial, specs)
        auto_lr = str(config.optimizer.learning_rate) == "auto"
        omit = (LR_KEY,) if auto_lr else ()
        run = tracker.start_trial(trial.number, sampled, as_dict(config), omit=omit)
        trial.set_user_attr("mlflow_run_id", run.run_id)
        trial.set_user_attr("config", as_dict(config))
        recorder = EpochRecorder(sink=run.log_epoch)
        pruning = KerasPruningCallback(trial, str(cfg.metric))
        try:
            source = "search" if LR_KEY in sampled else "config"
            if auto_lr:
                config = _find_lr(config, splits, run, trial)
                source = "lr_find"
            run.log_params({f"{LR_KEY}_source": source})
            result = fit_config(config, splits, recorder, callbacks=[pruning])
        except optuna.TrialPruned:
            _record(trial, _close(run, "PRUNED", recorder, config, trial.number))
            raise
        except StuckAtChance as exc:
            trial.set_user_attr("diagnosis", "stuck_at_chance")
            final = _close(
                run, "PRUNED", recorder, config, trial.number, diagnosis="stuck_at_chance"
            )
            _record(trial, final)
            raise optuna.TrialPruned(str(exc)) from None
        except TrialDiverged as exc:
            # PRUNED, not FAIL: the sampler learns from a pruned trial's last reported value
            # but ignores failed ones, and TPE then kept proposing the diverging region.
            _report_last_epoch(trial, recorder, str(cfg.metric))
            trial.set_user_attr("diagnosis", "diverged")
            trial.set_user_attr("error", _describe(exc))
            _record(
                trial,
                _close(
                    run, "PRUNED", recorder, config, trial.number, diagnosis="diverged", error=exc
                ),
            )
            raise optuna.TrialPruned(str(exc)) from None
        except BaseException as exc:  # Ctrl-C, a bug, OOM: close the run, let Optuna decide
            status = "KILLED" if isinstance(exc, KeyboardInterrupt) else None
            try:
                trial.set_user_attr("error", _describe(exc))
                _close(run, "FAIL", recorder, config, trial.number, error=exc, status=status)
            except Exception as close_error:  # never hide the original error
                log.warning(f"trial {trial.number}: could not close its MLflow run ({close_error})")
            raise
        _record(trial, result.metrics)
        _close(
            run,
            "COMPLETE",
            recorder,
            config,
            trial.number,
            metrics=result.metrics,
            tables=result.tables,
        )
        return result.best_val_accuracy

    return objective


def _find_lr(config: DictConfig, splits: Splits, run: TrialRun, trial: optuna.Trial) -> DictConfig:
    """Run the LR range test for this trial's model; log the rate, its cost and the plot."""
    config, finding = resolve_auto_lr(config, splits)
    assert finding is not None
    run.log_params({LR_KEY: finding.suggested_lr})
    trial.set_user_attr("config", as_dict(config))  # export gets the concrete rate
    trial.set_user_attr("lr_find_seconds", finding.seconds)
    with tempfile.TemporaryDirectory(prefix="search-lrfind-") as tmp:
        finding.curve.to_csv(Path(tmp) / "lr_find.csv", index=False)
        plot_lr_curve(finding, Path(tmp) / "lr_find.png", f"trial {trial.number}: LR range test")
        run.log_files(Path(tmp))
    run.log_metrics({"lr_find_seconds": finding.seconds})
    return config


def _report_last_epoch(trial: optuna.Trial, recorder: EpochRecorder, metric: str) -> None:
    """Report the diverged epoch's validation figure (the pruning callback never saw it)."""
    if recorder.rows:
        row = recorder.rows[-1]
        value = row.get(metric, 0.0)
        trial.report(value if math.isfinite(value) else 0.0, step=int(row["epoch"]))


def _record(trial: optuna.Trial, metrics: dict[str, float]) -> None:
    """The trial's final metrics as one user attr ``metrics`` (pruned and failed trials
    too): one storage write instead of one per metric."""
    trial.set_user_attr("metrics", metrics)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}".strip()[:5000]


def _close(
    run: TrialRun,
    state: str,
    recorder: EpochRecorder,
    config: DictConfig,
    number: int,
    metrics: dict[str, float] | None = None,
    diagnosis: str | None = None,
    error: BaseException | None = None,
    status: str | None = None,
    tables: dict[str, pd.DataFrame] | None = None,
) -> dict[str, float]:
    """Close the trial's MLflow run with its artifacts; returns the final metrics logged."""
    final = metrics if metrics is not None else summarize_epochs(recorder.rows, str(config.metric))
    tags: dict[str, str] = {}
    if diagnosis:
        tags["diagnosis"] = diagnosis
    if error is not None:
        tags["error"] = _describe(error)
    with tempfile.TemporaryDirectory(prefix="search-trial-") as tmp:
        out = Path(tmp)
        OmegaConf.save(config, out / "config.yaml")
        for name, table in (tables or {}).items():
            table.to_csv(out / f"{name}.csv", index=False)
        if recorder.rows:
            save_history(recorder.rows, out, title=f"{config.study_name} trial {number} ({state})")
        run.finish(state, metrics=final, tags=tags, artifacts_dir=out, status=status)
    return final
