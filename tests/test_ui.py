"""``python -m search.ui``: the MLflow UI on a real study, looked at in headless Chromium;
and ``assert_report_renders`` (tests/browser.py) on a self-made report page."""

from __future__ import annotations

import base64
import contextlib
import io
import os
import queue
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from search.ui import dashboard_command
from tests.browser import (  # noqa: F401  (browser_fixture: the browser fixture)
    assert_report_renders,
    browser_fixture,
    loaded_images,
    screenshot,
    wait_for,
    wait_for_text,
)
from tests.conftest import run_cli, tiny
from tests.services import free_port, healthy

UI_START_TIMEOUT = 120.0
UI_STOP_TIMEOUT = 30.0


@dataclass
class Ui:
    proc: subprocess.Popen[str]
    url: str
    lines: list[str] = field(default_factory=list)


def _start_ui(workdir: Path, port: int) -> tuple[subprocess.Popen[str], queue.Queue[str | None]]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "search.ui", f"port={port}", f"mlruns_dir={workdir / 'mlruns'}"],
        cwd=workdir,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    return proc, lines


@contextlib.contextmanager
def ui_server(workdir: Path, port: int, studies: int = 0) -> Iterator[Ui]:
    """``python -m search.ui`` on ``port`` until its two lines (and one per study) are out
    and it answers."""
    proc, lines = _start_ui(workdir, port)
    ui = Ui(proc, "")
    try:
        deadline = time.monotonic() + UI_START_TIMEOUT
        while len(ui.lines) < 2 + studies:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"search.ui printed {ui.lines} in {UI_START_TIMEOUT:.0f} s")
            if line is None:
                proc.wait(timeout=UI_STOP_TIMEOUT)
                stderr = proc.stderr.read() if proc.stderr else ""
                pytest.fail(f"search.ui exited with {proc.returncode}: {ui.lines} {stderr}")
            ui.lines.append(line)
        ui.url = f"http://127.0.0.1:{port}"
        assert ui.lines[0] == f"MLflow UI: {ui.url}  (Ctrl-C to stop)"
        assert healthy(ui.url), f"{ui.url}/health does not answer after the URL line"
        yield ui
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=UI_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def png_width(data: bytes) -> int:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return int(struct.unpack(">I", data[16:20])[0])


def trial_runs(client: MlflowClient, experiment_id: str) -> list[Run]:
    runs = client.search_runs([experiment_id], filter_string="tags.`search.role` = 'trial'")
    return sorted(runs, key=lambda run: int(run.data.tags["optuna.trial_number"]))


def show_metric_column(browser: Any, metric: str) -> None:
    """Add a metric column to MLflow's runs table through its "Columns" selector."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    wait_for(
        browser,
        lambda d: d.find_element(
            By.XPATH, "//button[@data-testid='column-selection-dropdown'][contains(., 'Columns')]"
        ),
        "the Columns button",
        60,
    ).click()
    search = wait_for(
        browser,
        lambda d: d.find_element(By.CSS_SELECTOR, "input[placeholder='Search columns']"),
        "the column search box",
        30,
    )
    search.send_keys(metric)
    wait_for(
        browser,
        lambda d: d.find_element(
            By.XPATH,
            "//*[@role='dialog']//span[contains(@class, 'tree-title')]"
            f"[normalize-space(.)='{metric}']",
        ),
        f"{metric} in the column selector",
        30,
    ).click()
    search.send_keys(Keys.ESCAPE)


def test_ui_shows_the_study_in_a_browser(workdir: Path, browser: Any, tmp_path: Path) -> None:
    """A 3-trial study, ``search.ui`` on it: the runs table lists the parent run and the
    trials with their metric, a trial's learning-curve PNG displays through the UI (and its
    REST API), and Ctrl-C stops it with exit code 0 and frees the port."""
    from selenium.webdriver.common.by import By

    done = run_cli(
        "search.run", "study=deep_dnn", "n_trials=3", *tiny(workdir / "mlruns"), cwd=workdir
    )
    assert done.returncode == 0, done.stderr
    client = MlflowClient(f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("deep_dnn")
    assert experiment is not None
    eid = experiment.experiment_id
    trials = trial_runs(client, eid)
    names = [str(run.info.run_name) for run in trials]
    assert [name.split()[0] for name in names] == ["t000", "t001", "t002"]
    best = {run.info.run_id: run.data.metrics["best_val_accuracy"] for run in trials}
    first = trials[0]
    png = Path(first.info.artifact_uri.removeprefix("file://")) / "learning_curve.png"
    assert png.is_file(), f"the trial's artifacts are not under {png.parent}"

    port = free_port()
    began = time.monotonic()
    with ui_server(workdir, port, studies=1) as ui:
        started = time.monotonic() - began
        journal = workdir / "mlruns" / "optuna.journal"
        assert ui.lines[1].startswith(f"Optuna dashboard: optuna-dashboard {journal}"), ui.lines
        link = f"{ui.url}/#/experiments/{eid}/runs?workflowType=machine_learning"
        assert ui.lines[2] == f"runs of deep_dnn: {link}", ui.lines

        # the UI's REST API serves the artifact from its file URI, byte for byte
        get = f"{ui.url}/get-artifact?path=learning_curve.png&run_uuid={first.info.run_id}"
        with urllib.request.urlopen(get, timeout=30) as response:
            assert response.status == 200
            assert response.read() == png.read_bytes()

        # the printed link opens the training runs (a plain click on the experiment in MLflow
        # 3.17 opens its GenAI overview: traces, token usage); the trials are nested under
        # the study's parent run: expand it
        browser.get(link)
        opened = wait_for_text(browser, ["deep_dnn", "Run Name"])
        assert "Token Usage" not in opened and "Traces\n0" not in opened, opened
        assert "workflowType=machine_learning" in browser.current_url
        assert "/runs" in browser.current_url, browser.current_url
        wait_for(
            browser,
            lambda d: d.find_element(
                By.CSS_SELECTOR, "[role='row'] button[data-component-id*='runnamecellrenderer']"
            ),
            "the parent run's expand button",
            60,
        ).click()
        text = wait_for_text(browser, [*names, "deep_dnn"])
        assert "Error" not in text.split("MLflow Assistant")[0], text
        show_metric_column(browser, "best_val_accuracy")
        cells = wait_for(
            browser,
            lambda d: (
                {
                    cell.find_element(By.XPATH, "ancestor::*[@role='row'][1]").get_attribute(
                        "row-id"
                    ): cell.text
                    for cell in d.find_elements(
                        By.XPATH, "//*[@role='gridcell'][@col-id='metrics.`best_val_accuracy`']"
                    )
                    if cell.text.strip() not in ("", "-")
                }
                or None
            ),
            "best_val_accuracy values in the runs table",
            30,
        )
        shown = {run_id: float(value) for run_id, value in cells.items() if run_id in best}
        assert shown.keys() == best.keys(), cells
        assert shown == pytest.approx(best, abs=1e-6)
        assert "best_val_accuracy" in wait_for_text(browser, ["best_val_accuracy"])
        screenshot(browser, tmp_path / "mlflow-ui-runs.png")

        # a trial's artifact page shows its learning curve, decoded at the PNG's own width
        browser.get(
            f"{ui.url}/#/experiments/{eid}/runs/{first.info.run_id}/artifacts/learning_curve.png"
        )
        width = png_width(png.read_bytes())
        wait_for(
            browser,
            lambda d: [
                image
                for image in loaded_images(d)
                if image["src"].startswith("blob:") and image["naturalWidth"] == width
            ],
            f"the {width} px wide learning_curve.png",
            60,
        )
        screenshot(browser, tmp_path / "mlflow-ui-artifact.png")

        ui.proc.send_signal(signal.SIGINT)
        code = ui.proc.wait(timeout=UI_STOP_TIMEOUT)
        stderr = ui.proc.stderr.read() if ui.proc.stderr else ""
    assert code == 0, stderr
    assert stderr == "", stderr  # no traceback, no "interrupted"
    assert port_free(port), f"port {port} is still taken after search.ui exited"
    print(f"search.ui answered after {started:.1f} s")


def test_ui_refuses_a_port_in_use(workdir: Path) -> None:
    (workdir / "mlruns" / "mlflow.db").touch()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_cli("search.ui", f"port={port}", f"mlruns_dir={workdir / 'mlruns'}", cwd=workdir)
    assert done.returncode == 2, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"error: port {port} on 127.0.0.1 is in use"), lines
    assert "MLflow UI" not in done.stdout
    assert not (workdir / "mlruns" / "mlflow-ui.log").exists()  # nothing was started


def test_dashboard_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("search.ui.shutil.which", lambda name: f"/usr/bin/{name}")
    assert (
        dashboard_command("mlruns/optuna.journal", 5000) == "optuna-dashboard mlruns/optuna.journal"
    )
    assert dashboard_command("/data/my runs/optuna.journal", 5000) == (
        "optuna-dashboard '/data/my runs/optuna.journal'"
    )
    assert dashboard_command("postgresql+psycopg://me:secret@db/optuna", 5000) == (
        "optuna-dashboard 'postgresql+psycopg://me:***@db/optuna'"
    )
    assert dashboard_command("mlruns/optuna.journal", 8080).endswith("--port 8081")
    monkeypatch.setattr("search.ui.shutil.which", lambda name: None)
    assert dashboard_command("mlruns/optuna.journal", 5000).endswith(
        "(pip install optuna-dashboard)"
    )


def _plot_png(title: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 3), dpi=80)
    ax.plot([0, 1, 2, 3], [0.1, 0.4, 0.6, 0.7], marker="o")
    ax.set_title(title)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def _report(path: Path, images: list[str]) -> Path:
    tags = "\n".join(
        f'<figure><img alt="plot {i}" src="data:image/png;base64,{data}"></figure>'
        for i, data in enumerate(images)
    )
    path.write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>report</title></head>"
        f"<body><h1>deep_dnn</h1>{tags}</body></html>"
    )
    return path


def test_report_images_render(browser: Any, tmp_path: Path) -> None:
    """``assert_report_renders`` on a self-contained page with two embedded matplotlib PNGs
    (the real report's test can reuse it), and it catches a broken image."""
    good = _report(tmp_path / "report.html", [_plot_png("history"), _plot_png("importance")])
    images = assert_report_renders(browser, good, min_images=2)
    assert [image["naturalWidth"] for image in images] == [320, 320]
    screenshot(browser, tmp_path / "report.png")

    broken = _report(tmp_path / "broken.html", [_plot_png("history"), "bm90IGEgcG5n"])
    with pytest.raises(AssertionError, match="1 of 2 image"):
        assert_report_renders(browser, broken, min_images=2)
