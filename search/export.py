"""``python -m search.export study=<name> [out=DIR] [trial=N]``: the best config and the
trials table.

Writes ``best.yaml`` (the best trial's full resolved config, runnable as is with
``python -m search.train from=...``), ``best.keras`` (the model that trial kept in MLflow,
``tracking.log_models``) and ``trials.csv`` (one row per trial) into ``out``. A study of
several objectives also gets ``pareto/trial_<N>.yaml`` (and ``.keras``) for each trial on
its Pareto front; its ``best.yaml`` is the best on the first objective. ``trial=N`` writes
``trial_<N>.yaml`` (and ``.keras``) of the trial picked instead of the best.
An export of another study or store already there is not replaced unless
``overwrite=true``: two stores can hold studies of the same name.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import hydra
import optuna
from mlflow.exceptions import MlflowException
from omegaconf import DictConfig, OmegaConf

from search.cli import HarnessError, entry, guarded
from search.cli.errors import first_line
from search.config import check_same_source, check_study_name, unimportable
from search.config.objectives import values_text
from search.study import (
    Attr,
    best_trial,
    is_multi,
    load_existing_study,
    pareto_numbers,
    recorded_metrics,
    trial_export,
)
from search.tracking import download_model, trials_frame
from search.tracking.store import make_client

log = logging.getLogger("search")
FRONT = "pareto"  # the folder of a multi-objective study's Pareto trials


def export_study(cfg: DictConfig) -> tuple[Path, Path]:
    check_study_name(str(cfg.study_name))
    study = load_existing_study(str(cfg.storage), str(cfg.study_name))
    names = recorded_metrics(study, cfg.metric)  # the study's, whatever this command says
    picked = _picked(study, cfg.trial)
    chosen = picked or _best_trial(study)
    stem = f"trial_{chosen.number}" if picked else "best"
    config = trial_export(chosen, study.study_name, str(cfg.storage), names)
    out = Path(str(cfg.out))
    written, trials_csv = out / f"{stem}.yaml", out / "trials.csv"
    if not cfg.overwrite:  # the folder's best.yaml says whose export the folder holds
        for path in dict.fromkeys((out / "best.yaml", written)):
            check_same_source(path, config["source"])
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HarnessError(f"out: cannot make the folder {out} ({exc.strerror or exc})") from None
    OmegaConf.save(OmegaConf.create(config), written)
    trials_frame(study).to_csv(trials_csv, index=False)
    which = "trial" if picked else "best trial"
    log.info(f"{which} {chosen.number}: {_scored(chosen, names)}; searched {chosen.params}")
    log.info(f"wrote {written} and {trials_csv} ({len(study.trials)} trials)")
    _write_model(chosen, cfg, out / f"{stem}.keras")
    if is_multi(study) and not picked:
        _write_front(study, cfg, out / FRONT, names)
    log.info(f"re-train: python -m search.train from={written}")
    _say_if_unimportable(config, written)
    return written, trials_csv


def _picked(study: optuna.Study, number: object) -> optuna.trial.FrozenTrial | None:
    """The trial ``trial=N`` picks (complete), or None when none is picked."""
    if number is None:
        return None
    if isinstance(number, bool) or not isinstance(number, int):
        raise HarnessError(f"trial must be a trial number (trial=3), got {number!r}")
    trials = study.get_trials(deepcopy=False)
    if not 0 <= number < len(trials):
        last = f"0..{len(trials) - 1}" if trials else "none yet"
        raise HarnessError(
            f"trial={number}: study {study.study_name} has no such trial (its trials: {last}); "
            "trials.csv of an export lists them"
        )
    trial = trials[number]
    if trial.state != optuna.trial.TrialState.COMPLETE:
        raise HarnessError(
            f"trial={number}: trial {number} of study {study.study_name} is "
            f"{trial.state.name}, not COMPLETE; pick a complete trial (trials.csv lists them)"
        )
    return trial


def _scored(trial: optuna.trial.FrozenTrial, names: Sequence[str]) -> str:
    """``val_accuracy 0.9512``, or each objective's value."""
    values = trial.values or []
    labels = (
        list(names) if len(names) == len(values) else [f"value {i}" for i, _ in enumerate(values)]
    )
    return ", ".join(f"{name} {values_text([v])}" for name, v in zip(labels, values, strict=True))


def _write_front(study: optuna.Study, cfg: DictConfig, folder: Path, names: Sequence[str]) -> None:
    """``trial_<N>.yaml`` (and ``.keras``) for each trial on the Pareto front; the files of
    trials that have left the front since an earlier export go."""
    folder.mkdir(exist_ok=True)
    for old in [*folder.glob("trial_*.yaml"), *folder.glob("trial_*.keras")]:
        old.unlink()
    front = pareto_numbers(study)
    for number in front:
        trial = study.trials[number]
        config = trial_export(trial, study.study_name, str(cfg.storage), names)
        OmegaConf.save(OmegaConf.create(config), folder / f"trial_{number}.yaml")
        _write_model(trial, cfg, folder / f"trial_{number}.keras", quiet=True)
        log.info(f"  front: trial {number}: {_scored(trial, names)}")
    models = len(list(folder.glob("trial_*.keras")))
    log.info(
        f"wrote {folder}/trial_<N>.yaml for the {len(front)} trial"
        f"{'s' if len(front) != 1 else ''} on the Pareto front, and .keras for {models} "
        f"(a trial keeps its model when it joins the front, unless tracking.log_models=none)"
    )


def _write_model(
    best: optuna.trial.FrozenTrial, cfg: DictConfig, dest: Path, quiet: bool = False
) -> None:
    """``best.keras``: the model the best trial kept in MLflow (``tracking.log_models``)."""
    model_id = str(best.user_attrs.get(Attr.MODEL_ID, ""))
    dest.unlink(missing_ok=True)  # never another trial's model beside this best.yaml
    if not model_id:
        if quiet:
            return
        log.info(
            f"no {dest.name}: trial {best.number} kept no model (tracking.log_models=best keeps "
            "the models of trials that were the best when they ended or joined the front, none "
            "keeps none, and studies from before models were kept have none); re-train it to "
            "get one"
        )
        return
    try:
        download_model(make_client(str(cfg.tracking_uri)), model_id, dest)
    except (MlflowException, OSError) as exc:
        log.warning(
            f"no {dest.name}: cannot read trial {best.number}'s model {model_id} from "
            f"{cfg.tracking_uri} ({first_line(exc)}); check tracking_uri"
        )
        return
    if not quiet:
        log.info(f"wrote {dest}: trial {best.number}'s model (MLflow logged model {model_id})")


def _say_if_unimportable(config: dict[str, object], best_yaml: Path) -> None:
    """The export keeps ``model.builder``; say so when ``search.train`` cannot import it."""
    model = config.get("model")
    builder = str(model.get("builder", "")) if isinstance(model, dict) else ""
    why = unimportable(builder)
    if why:
        name = (builder.partition(":")[2] or builder).split(".")[-1]
        log.warning(
            f"note: model.builder {builder} cannot be imported by search.train ({why}); "
            f"move {name} into a module (my_models.py) and set model.builder: "
            f"my_models:{name} in {best_yaml}"
        )


def _best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial:
    try:
        return best_trial(study)
    except ValueError:
        ended = len(study.get_trials(deepcopy=False))
        run = f"python -m search.run study={study.study_name}"
        raise HarnessError(
            f"study {study.study_name} has no completed trial yet; "
            + (
                f"its {ended} were pruned or failed: run {run} with a higher n_trials"
                if ended
                else f"run {run} first"
            )
        ) from None


@hydra.main(version_base="1.3", config_path="studies", config_name="export")
def main(cfg: DictConfig) -> None:
    guarded(lambda: export_study(cfg))


if __name__ == "__main__":
    entry(main, "export")
