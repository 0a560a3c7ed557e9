"""Pytest fixtures for real services: a PostgreSQL database and an ``mlflow server`` process.

``bin/test-services`` starts (or finds) the PostgreSQL server and writes its URL to
``${TMPDIR:-/tmp}/search-test-pg/url``; ``SEARCH_TEST_POSTGRES`` overrides it. Without a
reachable server the fixtures skip, or fail when ``CI`` is set.

- ``postgres_url``: a fresh, empty database for one test, as a SQLAlchemy URL
  (``postgresql+psycopg://search@127.0.0.1:54329/test_...``), dropped afterwards.
- ``mlflow_server``: an ``mlflow server`` on a free local port, backed by a fresh database
  of its own, serving artifacts from ``tmp_path/artifacts``; ``.url``, ``.stop()``,
  ``.start()``, ``.log``, ``.artifacts``, ``.backend_store_uri``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import URL, make_url

from search.cli import group_alive

SERVER_START_TIMEOUT = 90.0
SERVER_STOP_TIMEOUT = 15.0


def url_file() -> Path:
    """Where ``bin/test-services`` writes the server's URL (bash's ``${TMPDIR:-/tmp}``)."""
    return Path(os.environ.get("TMPDIR") or "/tmp") / "search-test-pg" / "url"


def libpq_conninfo(url: str | URL) -> str:
    """A SQLAlchemy ``postgresql+psycopg://`` URL as a libpq URI for psycopg."""
    plain = make_url(url).set(drivername="postgresql")
    return plain.render_as_string(hide_password=False)


def _answers(url: str) -> bool:
    try:
        with psycopg.connect(libpq_conninfo(url), connect_timeout=3) as conn:
            conn.execute("SELECT 1")
        return True
    except (psycopg.Error, ValueError):
        return False


def _server_url() -> str:
    """The first reachable server URL (env, then the url file); skip or fail without one."""
    candidates = []
    if os.environ.get("SEARCH_TEST_POSTGRES"):
        candidates.append(os.environ["SEARCH_TEST_POSTGRES"])
    if url_file().is_file():
        candidates.append(url_file().read_text().strip())
    for url in candidates:
        if _answers(url):
            return url
    tried = ", ".join(candidates) or f"no SEARCH_TEST_POSTGRES, no {url_file()}"
    if os.environ.get("CI"):
        pytest.fail(f"no PostgreSQL reachable under CI ({tried}): bin/test-services must run")
    pytest.skip("no PostgreSQL: run bin/test-services")


@contextlib.contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """Create a uniquely named database on the server; yield its URL; drop it afterwards."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    admin = libpq_conninfo(server_url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture()
def postgres_url() -> Iterator[str]:
    """A fresh empty PostgreSQL database for this test, as a SQLAlchemy URL."""
    with fresh_database(_server_url()) as url:
        yield url


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def healthy(url: str, timeout: float = 2.0) -> bool:
    """Does ``GET url/health`` answer 200?"""
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, OSError):
        return False


class MlflowServer:
    """An ``mlflow server`` subprocess on a fixed local port, restartable on that port."""

    def __init__(self, backend_store_uri: str, workdir: Path, port: int | None = None) -> None:
        self.backend_store_uri = backend_store_uri
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.artifacts = workdir / "artifacts"
        self.log = workdir / "mlflow-server.log"
        self.startup_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--backend-store-uri",
            self.backend_store_uri,
            "--serve-artifacts",
            "--artifacts-destination",
            str(self.artifacts),
            "--workers",
            "1",
        ]

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def start(self, timeout: float = SERVER_START_TIMEOUT) -> None:
        """Start the server (again) on its port and wait until ``/health`` answers 200."""
        if self.running:
            return
        self.artifacts.mkdir(parents=True, exist_ok=True)
        # The server's own job runner (huey consumers) is of no use to the harness and
        # only adds processes and start-up time.
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        began = time.monotonic()
        with self.log.open("ab") as log:
            log.write(f"\n--- {' '.join(self.command())}\n".encode())
            log.flush()
            # Its own session: stop() signals the whole group (mlflow -> uvicorn -> worker).
            self._proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        while not healthy(self.url):
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._proc = None
                pytest.fail(
                    f"mlflow server exited with {code} before answering "
                    f"(log {self.log}):\n{self.log_tail()}"
                )
            if time.monotonic() - began > timeout:
                self.stop()
                pytest.fail(
                    f"mlflow server did not answer {self.url}/health within {timeout:.0f} s "
                    f"(log {self.log}):\n{self.log_tail()}"
                )
            time.sleep(0.2)
        self.startup_seconds = time.monotonic() - began

    def stop(self) -> None:
        """Terminate the server and its workers and wait until they are gone."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=SERVER_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass
        deadline = time.monotonic() + SERVER_STOP_TIMEOUT
        while group_alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=SERVER_STOP_TIMEOUT)


@pytest.fixture()
def mlflow_server(tmp_path: Path) -> Iterator[MlflowServer]:
    """A running ``mlflow server`` with a fresh PostgreSQL backend store of its own."""
    with fresh_database(_server_url()) as backend:
        server = MlflowServer(backend, tmp_path / "mlflow-server")
        server.artifacts.parent.mkdir(parents=True, exist_ok=True)
        try:
            server.start()
            yield server
        finally:
            server.stop()
