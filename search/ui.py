"""``python -m search.ui [port=5000] [host=127.0.0.1]``: the MLflow UI on the harness's stores.

Runs ``mlflow server`` on ``tracking_uri`` (the runs) with ``artifact_root`` as its artifact
store, so the trials' plots and files open in the UI (the harness's experiments keep theirs
under ``<artifact_root>/<study>``, file URIs the server reads directly). Prints the URL and
the ``optuna-dashboard`` command for the study storage; the server's own output goes to
``log``. Ctrl-C, SIGTERM or SIGHUP stops the server and exits 0; a port in use is refused
(exit 2), like a ``tracking_uri`` that is no database (another server, a missing file).

Each study's experiment is printed as a link to its training runs. MLflow 3.17's UI decides
what an experiment page shows from a global "GenAI / Model training" switch (the
``workflowType`` URL parameter, else the browser's saved choice, else GenAI), not from the
experiment's ``mlflow.experimentKind`` tag: a plain click on an experiment opens its GenAI
overview (traces, token usage). The links carry ``workflowType=machine_learning``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import shutil
import signal
import sys
from pathlib import Path

import hydra
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from search.cli import (
    ChildServer,
    HarnessError,
    check_port_free,
    entry,
    guarded,
    install_handlers,
    received,
)

__all__ = ["dashboard_command", "runs_links", "serve", "server_command"]

log = logging.getLogger("search")
DASHBOARD_PORT = 8080  # optuna-dashboard's default
TRAINING_VIEW = "workflowType=machine_learning"  # MLflow 3.17's "Model training" switch


def serve(cfg: DictConfig) -> None:
    """Start the server, say where it is, wait for Ctrl-C/SIGTERM or for it to stop."""
    host, port = str(cfg.host), _port(cfg.port)
    check_port_free(host, port)
    backend = _backend_store(str(cfg.tracking_uri))
    log_path = Path(str(cfg.log)).expanduser()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    artifacts = Path(str(cfg.artifact_root)).expanduser().resolve()
    server = ChildServer(server_command(backend, artifacts, host, port), log_path, _server_env())
    install_handlers(forward=server.signal)
    signal.signal(signal.SIGHUP, signal.getsignal(signal.SIGTERM))  # the terminal closed
    server.start()
    url = f"http://{_url_host(host)}:{port}"
    if server.ready(f"{url}/health"):
        log.info(f"MLflow UI: {url}  (Ctrl-C to stop)")
        log.info(f"Optuna dashboard: {dashboard_command(str(cfg.storage), port)}")
        links = runs_links(backend, url)
        for name, link in links:
            log.info(f"runs of {name}: {link}")
        if links:
            log.info(
                "(MLflow 3 opens an experiment on its GenAI page; these links open the runs, "
                'or switch the sidebar to "Model training" once: the browser keeps it)'
            )
    code = server.wait()
    if not received():
        raise HarnessError(
            f"the MLflow server stopped (exit code {code}): {server.problem()}; log {log_path}"
        )


def runs_links(tracking_uri: str, url: str, limit: int = 20) -> list[tuple[str, str]]:
    """(experiment, link to its runs table in Model-training mode), newest first."""
    try:
        experiments = MlflowClient(tracking_uri).search_experiments(
            max_results=limit, order_by=["creation_time DESC"]
        )
    except MlflowException:
        return []
    return [
        (e.name, f"{url}/#/experiments/{e.experiment_id}/runs?{TRAINING_VIEW}")
        for e in experiments
        if e.name != "Default"
    ]


def server_command(backend: str, artifacts: Path, host: str, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--host",
        host,
        "--port",
        str(port),
        "--backend-store-uri",
        backend,
        "--serve-artifacts",  # runs logged through this server land under artifact_root too
        "--artifacts-destination",
        str(artifacts),
        "--workers",
        "1",  # one user: starts in ~4 s instead of ~10 s with uvicorn's 4
        "--uvicorn-opts",
        "--no-access-log",
    ]


def _server_env() -> dict[str, str]:
    env = {**os.environ}
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")  # no job runner processes
    env.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
    return env


def dashboard_command(storage: str, ui_port: int) -> str:
    """``optuna-dashboard <storage>``: it opens a journal file given as a path (it guesses
    JournalStorage for an existing file) and a database by its SQLAlchemy URL."""
    if "://" in storage:
        with contextlib.suppress(ArgumentError):
            storage = make_url(storage).render_as_string(hide_password=True)
    command = f"optuna-dashboard {shlex.quote(storage)}"
    if ui_port == DASHBOARD_PORT:
        command += f" --port {DASHBOARD_PORT + 1}"
    if shutil.which("optuna-dashboard") is None:
        command += "  (pip install optuna-dashboard)"
    return command


def _port(value: object) -> int:
    try:
        port = int(str(value))
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise HarnessError(f"port: '{value}' is not a port number (1-65535), e.g. port=5000")
    return port


def _backend_store(tracking_uri: str) -> str:
    """The store the server reads: a database URL (or a file store), not another server."""
    if tracking_uri.startswith(("http://", "https://", "databricks")):
        raise HarnessError(
            f"tracking_uri is a tracking server ({tracking_uri}): open it in a browser instead"
        )
    if tracking_uri.startswith("sqlite:///"):
        path = Path(tracking_uri.removeprefix("sqlite:///")).expanduser()
        if not path.is_file():
            raise HarnessError(
                f"tracking_uri: no MLflow database at {path}; run python -m search.run first "
                "(or set mlruns_dir=DIR)"
            )
    return tracking_uri


def _url_host(host: str) -> str:
    """How the URL names the host; a wildcard address is reached on the loopback."""
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


@hydra.main(version_base="1.3", config_path="studies", config_name="ui")
def main(cfg: DictConfig) -> None:
    guarded(lambda: serve(cfg))


if __name__ == "__main__":
    entry(main, "ui")
