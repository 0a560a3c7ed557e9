"""``python -m search.export study=<name> [out=DIR]``: the best config and the trials table.

Writes ``best.yaml`` (the best trial's full resolved config, runnable as is with
``python -m search.train from=...``), ``best.keras`` (the model that trial kept in MLflow,
``tracking.log_models``) and ``trials.csv`` (one row per trial) into ``out``.
An export of another study or store already there is not replaced unless
``overwrite=true``: two stores can hold studies of the same name.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import optuna
from mlflow.exceptions import MlflowException
from omegaconf import DictConfig, OmegaConf

from search.cli import HarnessError, entry, guarded
from search.cli.errors import first_line
from search.config import check_same_source, check_study_name, unimportable
from search.study import Attr, load_existing_study, recorded_metric, trial_export
from search.tracking import download_model, trials_frame
from search.tracking.store import make_client

log = logging.getLogger("search")


def export_study(cfg: DictConfig) -> tuple[Path, Path]:
    check_study_name(str(cfg.study_name))
    study = load_existing_study(str(cfg.storage), str(cfg.study_name))
    best = _best_trial(study)
    config = trial_export(best, study.study_name, str(cfg.storage))
    out = Path(str(cfg.out))
    best_yaml, trials_csv = out / "best.yaml", out / "trials.csv"
    if not cfg.overwrite:
        check_same_source(best_yaml, config["source"])
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HarnessError(f"out: cannot make the folder {out} ({exc.strerror or exc})") from None
    OmegaConf.save(OmegaConf.create(config), best_yaml)
    trials_frame(study).to_csv(trials_csv, index=False)
    metric = recorded_metric(study, str(cfg.metric))  # the study's, whatever this command says
    log.info(f"best trial {best.number}: {metric} {best.value:.4f}, params {best.params}")
    log.info(f"wrote {best_yaml} and {trials_csv} ({len(study.trials)} trials)")
    _write_model(best, cfg, out / "best.keras")
    log.info(f"re-train: python -m search.train from={best_yaml}")
    _say_if_unimportable(config, best_yaml)
    return best_yaml, trials_csv


def _write_model(best: optuna.trial.FrozenTrial, cfg: DictConfig, dest: Path) -> None:
    """``best.keras``: the model the best trial kept in MLflow (``tracking.log_models``)."""
    model_id = str(best.user_attrs.get(Attr.MODEL_ID, ""))
    dest.unlink(missing_ok=True)  # never another trial's model beside this best.yaml
    if not model_id:
        log.info(
            f"no best.keras: trial {best.number} kept no model (tracking.log_models=none "
            "when it ran, or a study from before models were kept); re-train it to get one"
        )
        return
    try:
        download_model(make_client(str(cfg.tracking_uri)), model_id, dest)
    except (MlflowException, OSError) as exc:
        log.warning(
            f"no best.keras: cannot read trial {best.number}'s model {model_id} from "
            f"{cfg.tracking_uri} ({first_line(exc)}); check tracking_uri"
        )
        return
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
        return study.best_trial
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
