"""How every command behaves: one-line errors and exit codes (``errors``), Ctrl-C and
SIGTERM (``signals``), logging and the wrapper around a command's body (``command``), the
command line checked before Hydra runs (``precheck``), where configs are found
(``searchpath``: ./studies first), the commands printed for the user to type next
(``hints``), a store's first use one process at a time (``locks``), and a child server
process that stops with the command (``server``). Nothing here imports the
rest of the harness."""

from __future__ import annotations

from search.cli.command import entry, guarded, setup_logging
from search.cli.errors import EXIT_USAGE, DataError, HarnessError, SpaceError, first_line
from search.cli.hints import STORE_KEYS, next_command, searched_overrides, store_args
from search.cli.locks import first_use
from search.cli.precheck import command_line_problem
from search.cli.searchpath import (
    CONFIG_DIR,
    SEARCH_PATH_KEY,
    config_folders,
    set_search_path,
    use_search_path,
)
from search.cli.server import ChildServer, check_port_free, group_alive
from search.cli.signals import (
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    Terminated,
    exit_code,
    handled,
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
    "SEARCH_PATH_KEY",
    "STORE_KEYS",
    "SpaceError",
    "Terminated",
    "check_port_free",
    "command_line_problem",
    "config_folders",
    "entry",
    "exit_code",
    "first_line",
    "first_use",
    "group_alive",
    "guarded",
    "handled",
    "held",
    "install_handlers",
    "interruptible",
    "next_command",
    "raise_pending",
    "received",
    "searched_overrides",
    "set_search_path",
    "setup_logging",
    "store_args",
    "use_search_path",
]
