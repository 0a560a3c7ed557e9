"""The harness from Python (a notebook cell, a script): the same commands, the same configs.

    import search
    study = search.run_study("deep_dnn", overrides=["dataset=digits", "n_trials=10"])
    frame = search.trials_frame(study)        # pandas: one row per trial
    best = search.export_study("deep_dnn", overrides=["dataset=digits"])
    result = search.train_exported(best)      # re-train the best config, tracked

Each call composes its command's config as the command line would (``overrides`` are its
``key=value`` words; ./studies and ``search_path=DIR`` are searched first) and leaves
nothing behind for the next call: Hydra's global state, signal handlers, Keras' session.
A mistake raises ``search.HarnessError`` with the one line the command would print.
"""

from __future__ import annotations

from search.api.calls import export_study, run_study, train_exported, trials_frame
from search.cli.errors import HarnessError

__all__ = ["HarnessError", "export_study", "run_study", "train_exported", "trials_frame"]
