"""A project of the user's own (issue 14): examples/own_model copied into a folder outside
the checkout, next to a ``models.py`` of the user's that the harness must never import;
``python -m search.run/export/train`` find ./studies first, or ``search_path=DIR``."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, run_cli

SHADOW = "raise RuntimeError('the harness imported the user\\'s own models.py')\n"


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "my-project"
    ignore = shutil.ignore_patterns("mlruns", "exports", "__pycache__")
    shutil.copytree(REPO / "examples" / "own_model", folder, ignore=ignore)
    (folder / "models.py").write_text(SHADOW, encoding="utf-8")
    assert (folder / "data" / "digits.npz").is_file()  # shipped with the example
    return folder


def _ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.slow
def test_the_example_project_runs_exports_and_retrains(project: Path) -> None:
    said = _ok(run_cli("search.run", "study=my_cnn", "n_trials=2", "train.epochs=2", cwd=project))
    assert "data npz digits.npz" in said and "export: python -m search.export study=my_cnn" in said
    _ok(run_cli("search.export", "study=my_cnn", cwd=project))
    best = yaml.safe_load((project / "exports" / "my_cnn" / "best.yaml").read_text())
    assert best["model"]["builder"] == "my_models:build_cnn"
    assert best["dataset"]["kind"] == "npz"
    retrained = _ok(run_cli("search.train", "from=exports/my_cnn/best.yaml", cwd=project))
    assert "re-training trial" in retrained and "(the trial had" in retrained


@pytest.mark.slow
def test_help_lists_your_folders_and_search_path_finds_another(project: Path) -> None:
    helped = _ok(run_cli("search.run", "--help", cwd=project))
    assert "my_cnn" in helped.split("study:")[1].splitlines()[0]
    assert str(project / "studies") in helped
    elsewhere = project.parent / "elsewhere"
    elsewhere.mkdir()
    shutil.move(str(project / "studies"), str(project / "configs"))
    missing = run_cli("search.run", "study=my_cnn", "--cfg", "job", cwd=project)
    assert missing.returncode == 2 and "unknown study 'my_cnn'" in missing.stderr
    found = run_cli(
        "search.run", "study=my_cnn", "search_path=configs", "--cfg", "job", cwd=project
    )
    assert "my_models:build_cnn" in _ok(found)
    typo = run_cli("search.run", "study=my_cnn", "search_path=config", cwd=project)
    assert typo.returncode == 2 and typo.stderr.count("\n") == 1
    assert "search_path: config does not exist" in typo.stderr
