"""``python -m search.ui [port=5000] [host=127.0.0.1]``: the MLflow UI on the harness's stores.

Runs ``mlflow server`` on ``tracking_uri`` (the runs) with ``artifact_root`` as its artifact
store, so the trials' plots and files open in the UI (the harness's experiments keep theirs
under ``<artifact_root>/<study>``, file URIs the server reads directly). Prints the URL and
the ``optuna-dashboard`` command for the study storage; the server's own output goes to
``log``. Ctrl-C, SIGTERM or SIGHUP stops the server and exits 0; a port in use is refused
(exit 2), like a ``tracking_uri`` that is no database (another server, a missing file).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import hydra
from omegaconf import DictConfig
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from search.cli import entry, guarded
from search.errors import HarnessError
from search.signals import install_handlers, received

__all__ = ["dashboard_command", "server_command", "serve"]

log = logging.getLogger("search")
STOP_TIMEOUT = 15.0  # s the server gets to stop after the signal before it is killed
DASHBOARD_PORT = 8080  # optuna-dashboard's default
_ERROR = re.compile(r"\w(Error|Exception)\b|\bERROR\b")


def serve(cfg: DictConfig) -> None:
    """Start the server, say where it is, wait for Ctrl-C/SIGTERM or for it to stop."""
    host, port = str(cfg.host), _port(cfg.port)
    check_port_free(host, port)
    backend = _backend_store(str(cfg.tracking_uri))
    log_path = Path(str(cfg.log)).expanduser()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    artifacts = Path(str(cfg.artifact_root)).expanduser().resolve()
    server = _Server(server_command(backend, artifacts, host, port), log_path)
    install_handlers(forward=server.signal)
    signal.signal(signal.SIGHUP, signal.getsignal(signal.SIGTERM))  # the terminal closed
    server.start()
    url = f"http://{_url_host(host)}:{port}"
    if server.ready(url):
        log.info(f"MLflow UI: {url}  (Ctrl-C to stop)")
        log.info(f"Optuna dashboard: {dashboard_command(str(cfg.storage), port)}")
    code = server.wait()
    if not received():
        raise HarnessError(
            f"the MLflow server stopped (exit code {code}): {server.problem()}; log {log_path}"
        )


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


def check_port_free(host: str, port: int) -> None:
    """Refuse a port another process listens on, before anything is started."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    except socket.gaierror as exc:
        raise HarnessError(f"host: cannot resolve '{host}' ({exc.strerror})") from None
    try:
        with socket.create_server((host, port), family=family):  # SO_REUSEADDR: not TIME_WAIT
            pass
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise HarnessError(
                f"port {port} on {host} is in use; stop what listens there or pick another "
                f"port, e.g. port={port + 1 if port < 65535 else 5000}"
            ) from None
        raise HarnessError(f"cannot listen on {host}:{port} ({exc.strerror})") from None


class _Server:
    """``mlflow server`` in its own session: Ctrl-C reaches this process only, which passes
    the signal on to mlflow (it forwards it to uvicorn) and waits for the whole group."""

    def __init__(self, command: list[str], log_path: Path) -> None:
        self.command, self.log_path = command, log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ}
        env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")  # no job runner processes
        env.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
        with self.log_path.open("ab") as out:
            out.write(f"\n--- {time.strftime('%F %T')} {shlex.join(self.command)}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        if received():  # a signal that came while it started
            self.signal(signal.SIGINT)

    def signal(self, signum: int) -> None:
        """Ctrl-C passes on as SIGINT; SIGTERM or SIGHUP as SIGTERM (mlflow forwards both)."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGINT if signum == signal.SIGINT else signal.SIGTERM)

    def ready(self, url: str) -> bool:
        """Wait until ``/health`` answers; False when the server stopped first."""
        assert self.proc is not None
        while self.proc.poll() is None:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        return True
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        return False

    def wait(self) -> int:
        """Its exit code, once it and every process it started are gone."""
        assert self.proc is not None
        deadline: float | None = None
        while True:
            try:
                code = self.proc.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                if received() and deadline is None:
                    deadline = time.monotonic() + STOP_TIMEOUT
                if deadline is not None and time.monotonic() > deadline:
                    self._kill_group()
        deadline = time.monotonic() + STOP_TIMEOUT
        while group_alive(self.proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        self._kill_group()
        return code

    def _kill_group(self) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def problem(self) -> str:
        """The last error line of this start's output (or its last line)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        lines = [line.strip() for line in text.rsplit("\n--- ", 1)[-1].splitlines()[1:]]
        lines = [line for line in lines if line]
        errors = [line for line in lines if _ERROR.search(line)]
        return (errors or lines or ["(no output)"])[-1][:300]


def group_alive(pgid: int) -> bool:
    """Whether any process of the group ``pgid`` is still there."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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


@hydra.main(version_base="1.3", config_path="../studies", config_name="ui")
def main(cfg: DictConfig) -> None:
    guarded(lambda: serve(cfg))


if __name__ == "__main__":
    entry(main, "ui")
