"""Small things that misled a new user (issue 13): the progress line says why a trial was
pruned and at which epoch, a trial is not pruned at its last epoch, ``reports/`` is
git-ignored, the printed commands outside Hydra name every store."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import optuna
import pytest
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf
from optuna.trial import TrialState, create_trial

from search.cli import HarnessError, next_command
from search.config import check_same_source
from search.study import ProgressLine
from search.trial.callbacks import PruningCallback
from tests.conftest import REPO, compose


class AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return True


def _pruned(curve: dict[int, float], **attrs: object) -> optuna.trial.FrozenTrial:
    return create_trial(
        state=TrialState.PRUNED,
        intermediate_values=curve,
        user_attrs=attrs,
        params={},
        distributions={},
    )


@pytest.mark.parametrize(
    ("pruner", "trial", "said"),
    [
        (
            optuna.pruners.MedianPruner(),
            _pruned({0: 0.2, 1: 0.3}),
            "pruned by median after epoch 2",
        ),
        (
            optuna.pruners.HyperbandPruner(),
            _pruned({0: 0.2}),
            "pruned by hyperband after epoch 1 (0.2000)",
        ),
        (
            optuna.pruners.MedianPruner(),
            _pruned({0: 0.1, 1: 0.1, 2: 0.1}, diagnosis="stuck_at_chance"),
            "stuck at chance after epoch 3 (0.1000)",
        ),
        (
            optuna.pruners.MedianPruner(),
            _pruned({0: 0.4, 1: 0.0}, diagnosis="diverged"),
            "diverged after epoch 2 (0.0000)",
        ),
        (AlwaysPrune(), _pruned({}), "pruned by AlwaysPrune"),
    ],
)
def test_the_progress_line_says_why_a_trial_was_pruned(
    caplog: pytest.LogCaptureFixture,
    pruner: optuna.pruners.BasePruner,
    trial: optuna.trial.FrozenTrial,
    said: str,
) -> None:
    study = optuna.create_study(direction="maximize", pruner=pruner)
    study.add_trial(trial)
    logger = logging.getLogger("test-progress")
    with caplog.at_level(logging.INFO, logger="test-progress"):
        ProgressLine(logger)(study, study.trials[0])
    assert said in caplog.text, caplog.text


def test_a_trial_is_not_pruned_at_its_last_epoch() -> None:
    """Pruning at the last epoch saves no training: the epoch is reported, the trial goes on
    to complete; before it, the pruner decides as usual."""
    study = optuna.create_study(direction="maximize", pruner=AlwaysPrune())
    trial = study.ask()
    callback = PruningCallback(trial, "val_accuracy", epochs=3)
    callback.on_epoch_end(2, {"val_accuracy": 0.5})
    assert study.trials[0].intermediate_values == {2: 0.5}
    with pytest.raises(optuna.TrialPruned):
        callback.on_epoch_end(1, {"val_accuracy": 0.4})


def test_reports_and_exports_are_git_ignored() -> None:
    for path in ("reports/deep_dnn/report.html", "exports/deep_dnn/best.yaml"):
        ignored = subprocess.run(
            ["git", "check-ignore", "-q", path], cwd=REPO, check=False
        ).returncode
        assert ignored == 0, f"{path} is not git-ignored"


def test_a_printed_command_repeats_the_store_overrides(tmp_path: Path) -> None:
    cfg = compose("study=deep_dnn", f"mlruns_dir={tmp_path}", "n_trials=3", "storage=pg://u:pw@h/d")
    line = next_command("search.export", cfg)
    assert line == (
        f"python -m search.export study=deep_dnn mlruns_dir={tmp_path} 'storage=pg://u:***@h/d'"
    )
    assert next_command("search.ui", cfg, study=False) == (
        f"python -m search.ui mlruns_dir={tmp_path} 'storage=pg://u:***@h/d'"
    )


def test_a_printed_command_outside_hydra_names_every_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = compose("study=deep_dnn", f"mlruns_dir={tmp_path}")
    monkeypatch.setattr(HydraConfig.instance(), "cfg", None)  # run_study called from Python
    line = next_command("search.export", cfg)
    assert line.startswith("python -m search.export study_name=deep_dnn ")
    for key in ("mlruns_dir", "storage", "tracking_uri", "artifact_root"):
        assert f"{key}=" in line


@pytest.mark.parametrize(
    ("before", "keys", "refused"),
    [
        ({"study_name": "a", "storage": "/s/one.journal"}, (), False),  # same: a newer best
        ({"study_name": "a", "storage": "/s/two.journal"}, (), True),  # another store
        ({"study_name": "b", "storage": "/s/one.journal"}, (), True),  # another study
        ({"study_name": "b", "storage": "/s/one.journal"}, ("storage",), False),  # a report arm
        ({"study_name": "a", "storage": "/s/two.journal"}, ("storage",), True),
        (None, (), True),  # a file that is no export
    ],
)
def test_an_export_of_another_study_or_store_is_not_replaced(
    tmp_path: Path, before: dict[str, str] | None, keys: tuple[str, ...], refused: bool
) -> None:
    path = tmp_path / "best.yaml"
    path.write_text(OmegaConf.to_yaml({"source": before}) if before else "model: [\n")
    source = {"study_name": "a", "storage": "/s/one.journal"}
    if refused:
        with pytest.raises(HarnessError, match="add overwrite=true"):
            check_same_source(path, source, keys)
    else:
        check_same_source(path, source, keys)
