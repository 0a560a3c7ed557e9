"""The commands the harness prints for the user to type next (``export:``, ``browse:``,
``search.sync ...``): each names the same study and stores as the command that printed it.

Inside a command, Hydra knows what the user typed: the study chosen, their own overrides
of the store keys, an extra ``--config-dir``. Those are repeated; keys left at their
defaults are not (the next command computes the same defaults). Called outside Hydra (a
config composed in Python), every store key is named with its value.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Collection

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

__all__ = ["STORE_KEYS", "next_command", "searched_overrides", "store_args"]

# the keys that say where a study and its runs live
STORE_KEYS = ("study_name", "mlruns_dir", "storage", "tracking_uri", "artifact_root")
REPEATED = (*STORE_KEYS, "search_path")  # and where the study's config file was found
_PASSWORD = re.compile(r"//([^:/@]*):[^@/]*@")


def next_command(module: str, cfg: DictConfig, *extra: str, study: bool = True) -> str:
    """``python -m <module>`` for the study of ``cfg`` (``study=False``: a command that
    takes none, ``search.ui``), on the same stores, then ``extra`` (Hydra reads flags
    after the key=value words: ``--config-dir`` goes last)."""
    words = [w for w in store_args(cfg) if study or not w.startswith(("study=", "study_name="))]
    words = ["python", "-m", module, *words, *extra, *_config_dir()]
    return " ".join(shlex.quote(word) for word in words)


def store_args(cfg: DictConfig) -> list[str]:
    """``study=<choice>`` and the store keys as the user gave them (or all, outside Hydra);
    a password in a database URL is shown as ***."""
    if not HydraConfig.initialized():
        words = [f"study_name={cfg.study_name}"] + [f"{k}={cfg[k]}" for k in STORE_KEYS[1:]]
    else:
        hydra = HydraConfig.get()
        choice = hydra.runtime.choices.get("study")
        words = [f"study={choice}"] if choice else [f"study_name={cfg.study_name}"]
        words += [o for o in hydra.overrides.task if o.split("=", 1)[0].lstrip("+~") in REPEATED]
    return [_PASSWORD.sub(r"//\1:***@", word) for word in words]


def searched_overrides(searched: Collection[str]) -> list[str]:
    """The user's command-line values of keys the study searches
    (``optimizer.learning_rate=0.01`` while ``space.optimizer.learning_rate`` exists): the
    sampler's values replace them in every trial."""
    if not HydraConfig.initialized():
        return []
    return [
        o for o in HydraConfig.get().overrides.task if o.split("=", 1)[0].lstrip("+") in searched
    ]


def _config_dir() -> list[str]:
    if not HydraConfig.initialized():
        return []
    sources = HydraConfig.get().runtime.config_sources
    extra = [s.path for s in sources if s.provider == "command-line"]
    return ["--config-dir", str(extra[0])] if extra else []
