"""A server a command runs as a child process (``search.ui``'s ``mlflow server``).

It runs in its own session, so a Ctrl-C in the terminal reaches the command only; the
command passes the signal on (``ChildServer.signal``) and waits for the server's whole
process group to go, killing what is left after ``STOP_TIMEOUT``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shlex
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from search.cli.errors import HarnessError
from search.cli.signals import received

__all__ = ["STOP_TIMEOUT", "ChildServer", "check_port_free", "group_alive"]

STOP_TIMEOUT = 15.0  # s the server gets to stop after the signal before it is killed
_ERROR = re.compile(r"\w(Error|Exception)\b|\bERROR\b")


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


class ChildServer:
    """``command`` in its own session, its output appended to ``log_path``."""

    def __init__(self, command: list[str], log_path: Path, env: dict[str, str]) -> None:
        self.command, self.log_path, self.env = command, log_path, env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as out:
            out.write(f"\n--- {time.strftime('%F %T')} {shlex.join(self.command)}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
        if received():  # a signal that came while it started
            self.signal(signal.SIGINT)

    def signal(self, signum: int) -> None:
        """Ctrl-C passes on as SIGINT; SIGTERM or SIGHUP as SIGTERM."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGINT if signum == signal.SIGINT else signal.SIGTERM)

    def ready(self, url: str) -> bool:
        """Wait until ``url`` answers 200; False when the server stopped first."""
        assert self.proc is not None
        while self.proc.poll() is None:
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
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
