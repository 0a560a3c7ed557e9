"""The examples run (issue 14): examples/course.ipynb executed with nbclient on digits, and
the package as a user installs it (a built wheel, not the checkout) running the own-model
example from a folder outside the checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO


@pytest.mark.slow
def test_the_course_notebook_runs(tmp_path: Path) -> None:
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(REPO / "examples" / "course.ipynb", as_version=4)
    NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()  # a cell that raises fails the test
    printed = "".join(
        str(out.get("text", ""))
        for cell in notebook.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
    )
    trial, retrain = printed.split("trial: ")[1].split("\n")[0].split(", re-train: ")
    assert trial == retrain  # the re-train reproduces the best trial
    assert "mc_test_accuracy" in str(notebook.cells[5].outputs)
    assert (tmp_path / "mlruns" / "optuna.journal").is_file()


@pytest.mark.slow
def test_the_installed_package_runs_a_project_outside_the_checkout(tmp_path: Path) -> None:
    """The wheel (what ``pip install`` puts in an environment) holds the harness's studies
    and builders; with it on the path instead of the checkout, the example project runs."""
    wheels, site = tmp_path / "wheels", tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "--quiet", "--disable-pip-version-check"]
    build = [*pip, "wheel", "--no-deps", "--no-build-isolation", str(REPO), "-w", str(wheels)]
    subprocess.run(build, check=True, capture_output=True)
    (wheel,) = wheels.glob("*.whl")
    install = [*pip, "install", "--no-deps", "--target", str(site), str(wheel)]
    subprocess.run(install, check=True, capture_output=True)
    assert (site / "search" / "studies" / "study" / "deep_dnn.yaml").is_file()
    assert not (site / "models").exists()  # no top-level package to shadow a user's
    project = tmp_path / "elsewhere"
    shutil.copytree(
        REPO / "examples" / "own_model",
        project,
        ignore=shutil.ignore_patterns("mlruns", "data", "exports"),
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    env.pop("HYDRA_FULL_ERROR", None)

    def run(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, *args],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    where = run("-c", "import search; print(search.__file__)")
    assert where.startswith(str(site)), where  # the installed copy, not the checkout
    run("make_data.py")
    run("-m", "search.run", "study=my_cnn", "n_trials=1", "train.epochs=1")
    run("-m", "search.export", "study=my_cnn")
    assert "re-training trial 0" in run("-m", "search.train", "from=exports/my_cnn/best.yaml")
