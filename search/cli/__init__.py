"""How every command behaves: one-line errors and exit codes (``errors``), Ctrl-C and
SIGTERM (``signals``), logging and the wrapper around a command's body (``command``), the
command line checked before Hydra runs (``precheck``), the commands printed for the user
to type next (``hints``), a store's first use one process at a time (``locks``), and a
child server process that stops with the command (``server``). Nothing here imports the
rest of the harness."""

from __future__ import annotations

from search.cli.command import entry, guarded, setup_logging
from search.cli.errors import EXIT_USAGE, DataError, HarnessError, SpaceError, first_line
from search.cli.hints import STORE_KEYS, next_command, store_args
from search.cli.locks import first_use
from search.cli.precheck import CONFIG_DIR, command_line_problem
from search.cli.server import ChildServer, check_port_free, group_alive
from search.cli.signals import (
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    Terminated,
    exit_code,
    held,
    install_handlers,
    interruptible,
    raise_pending,
    received,
)

__all__ = [
    "CONFIG_DIR",
    "EXIT_INTERRUPTED",
    "EXIT_TERMINATED",
    "EXIT_USAGE",
    "ChildServer",
    "DataError",
    "HarnessError",
    "STORE_KEYS",
    "SpaceError",
    "Terminated",
    "check_port_free",
    "command_line_problem",
    "entry",
    "exit_code",
    "first_line",
    "first_use",
    "group_alive",
    "guarded",
    "held",
    "install_handlers",
    "interruptible",
    "next_command",
    "raise_pending",
    "received",
    "setup_logging",
    "store_args",
]
