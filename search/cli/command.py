"""What every command shares: quiet logging, one-line errors and exit codes."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import NoReturn

from search.cli.errors import EXIT_USAGE, HarnessError
from search.cli.precheck import command_line_problem
from search.cli.signals import exit_code, install_handlers

__all__ = ["entry", "guarded", "setup_logging"]

log = logging.getLogger("search")


def setup_logging(level: int = logging.INFO) -> None:
    """One plain line per event from the harness; libraries only speak up on warnings."""
    if not log.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
    log.setLevel(level)
    log.propagate = False
    for name in ("mlflow", "alembic", "optuna", "absl", "tensorflow", "h5py"):
        logging.getLogger(name).setLevel(logging.WARNING)
    tensorflow = logging.getLogger("tensorflow")
    if not any(isinstance(f, _ExpectedTracing) for f in tensorflow.filters):
        tensorflow.addFilter(_ExpectedTracing())


class _ExpectedTracing(logging.Filter):
    """Drops TensorFlow's "N out of the last M calls ... triggered tf.function retracing":
    every Keras model's train step counts as one function there, and each new model
    structure of a study traces once on purpose (``search.trial.traces``); with 32 steps
    per call a short trial makes few calls, so the advice fires on an ordinary study."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()

    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # trial failures: our progress line


def guarded(task: Callable[[], object], resume_hint: str = "") -> None:
    """Run a command's body with the harness's logging: a user error is one line on
    stderr and exit code 2; Ctrl-C or SIGTERM one line and exit code 130 or 143."""
    setup_logging()
    install_handlers()
    try:
        task()
    except HarnessError as exc:
        _fail(f"error: {exc}", EXIT_USAGE)
    except KeyboardInterrupt as exc:
        hint = f"; {resume_hint}" if resume_hint else ""
        _fail(f"interrupted{hint}", exit_code(exc))


def _fail(message: str, code: int) -> NoReturn:
    print(message, file=sys.stderr, flush=True)
    sys.exit(code)


def entry(hydra_main: Callable[[], None], config_name: str) -> None:
    """Call a ``@hydra.main`` function whose config is ``config_name``. The command line is
    composed once first, so a bad one (unknown study, group option or key, an override
    that does not parse) is one line on stderr and exit code 2, like our own errors."""
    problem = command_line_problem(config_name, sys.argv[1:])
    if problem:
        _fail(f"error: {problem}", EXIT_USAGE)
    try:
        hydra_main()
    except SystemExit as exc:
        if exc.code == 1:  # Hydra reports config errors (unknown key or option) with 1
            sys.exit(EXIT_USAGE)
        raise
