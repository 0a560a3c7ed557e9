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
import psutil
from omegaconf import DictConfig, OmegaConf
from optuna_integration import KerasPruningCallback

from search.callbacks import EpochRecorder
from search.config import as_dict, resolved_copy
from search.data import Splits
from search.diagnostics import StuckAtChance
from search.lr_find import plot_lr_curve, resolve_auto_lr
from search.signals import interruptible
from search.space import ParamSpec, apply_params, sample_params
from search.tracking import StudyTracker, TrialRun
from search.training import (
    FitResult,
    TrialDiverged,
    fit_config,
    save_history,
    summarize_epochs,
)

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
        recorder = EpochRecorder(sink=run.log_epoch)
        pruning = KerasPruningCallback(trial, str(cfg.metric))
        try:  # from here on, whatever happens closes the run
            if run.run_id:  # empty while the MLflow store is unreachable (sync back-fills)
                trial.set_user_attr("mlflow_run_id", run.run_id)
            trial.set_user_attr("config", as_dict(config))
            with interruptible():  # a Ctrl-C held since the ask raises here (search.signals)
                source = "search" if LR_KEY in sampled else "config"
                if auto_lr:
                    config = _find_lr(config, splits, run, trial)
                    source = "lr_find"
                run.log_params({f"{LR_KEY}_source": source})
                result = fit_config(config, splits, recorder, callbacks=[pruning])
        except optuna.TrialPruned:
            _end(trial, run, "PRUNED", recorder, config)
            raise
        except (StuckAtChance, TrialDiverged) as exc:
            # PRUNED, not FAIL: the sampler learns from a pruned trial's last reported value
            # but ignores failed ones (TPE then kept proposing a diverging region).
            diverged = isinstance(exc, TrialDiverged)
            if diverged:
                _report_last_epoch(trial, recorder, str(cfg.metric))
            diagnosis = "diverged" if diverged else "stuck_at_chance"
            error = exc if diverged else None
            _end(trial, run, "PRUNED", recorder, config, diagnosis=diagnosis, error=error)
            raise optuna.TrialPruned(str(exc)) from None
        except BaseException as exc:  # Ctrl-C, a bug, OOM: close the run, let Optuna decide
            status = "KILLED" if isinstance(exc, KeyboardInterrupt) else None
            try:
                _end(trial, run, "FAIL", recorder, config, error=exc, status=status)
            except Exception as close_error:  # never hide the original error
                log.warning(f"trial {trial.number}: could not close its MLflow run ({close_error})")
            raise
        _end(trial, run, "COMPLETE", recorder, config, result=result)
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


def _rss_mb() -> float:
    """Resident memory of this worker process, MiB."""
    return psutil.Process().memory_info().rss / 2**20


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}".strip()[:5000]


def _end(
    trial: optuna.Trial,
    run: TrialRun,
    state: str,
    recorder: EpochRecorder,
    config: DictConfig,
    result: FitResult | None = None,
    diagnosis: str | None = None,
    error: BaseException | None = None,
    status: str | None = None,
) -> None:
    """Record the outcome on the trial (final metrics in one user attr: one storage write)
    and close its MLflow run with the same metrics, tags and the artifacts."""
    metrics = result.metrics if result else summarize_epochs(recorder.rows, str(config.metric))
    metrics = {**metrics, "worker_rss_mb": _rss_mb()}  # a leak shows as a rising line
    tags: dict[str, str] = {}
    if diagnosis:
        tags["diagnosis"] = diagnosis
    if error is not None:
        tags["error"] = _describe(error)
    for key, value in {"metrics": metrics, **tags}.items():
        trial.set_user_attr(key, value)
    with tempfile.TemporaryDirectory(prefix="search-trial-") as tmp:
        out = Path(tmp)
        OmegaConf.save(config, out / "config.yaml")
        for name, table in (result.tables if result else {}).items():
            table.to_csv(out / f"{name}.csv", index=False)
        if recorder.rows:
            title = f"{config.study_name} trial {trial.number} ({state})"
            save_history(recorder.rows, out, title=title)
        run.finish(state, metrics=metrics, tags=tags, artifacts_dir=out, status=status)
