"""An exported config (``best.yaml``) as ``search.train`` reads it: checked to be a harness
config, laid over the harness's current defaults (keys added since it was exported get
their default from the YAML), then the command line's ``key=value`` on top."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from search.cli.errors import HarnessError, first_line
from search.cli.searchpath import config_folders
from search.config.checks import storage_identity

__all__ = ["REQUIRED", "apply_overrides", "check_same_source", "load_exported", "with_defaults"]

REQUIRED = (
    "study_name",
    "seed",
    "metric",
    "dataset",
    "model",
    "optimizer",
    "train",
    "tracking_uri",
)
SECTIONS = ("dataset", "model", "optimizer", "train")  # mappings in an exported config
# sections whose defaults apply to any study (the model's are the study's own)
_DEFAULTED = ("optimizer", "train", "lr_find", "diagnostics", "evaluate")


def load_exported(path: str | Path) -> DictConfig:
    """An exported ``best.yaml`` (safe YAML), checked to be a harness config."""
    path = Path(path).expanduser()
    if not path.is_file():
        where = f"{path} is a directory, not a file" if path.is_dir() else f"no file at {path}"
        raise HarnessError(f"from: {where}; give an exported best.yaml")
    try:
        cfg = OmegaConf.load(path)
    except yaml.YAMLError as exc:
        raise HarnessError(f"from: {path} is not valid YAML ({_yaml_problem(exc)})") from None
    except (OmegaConfBaseException, ValueError, OSError) as exc:
        raise HarnessError(f"from: {path} is not readable YAML ({first_line(exc)})") from None
    missing = [key for key in REQUIRED if not isinstance(cfg, DictConfig) or key not in cfg]
    if missing:
        raise HarnessError(
            f"from: {path} is not an exported config (missing {', '.join(missing)}); "
            "make one with python -m search.export study=<name>"
        )
    assert isinstance(cfg, DictConfig)
    flat = [
        key
        for key in SECTIONS
        if not OmegaConf.is_dict(OmegaConf.select(cfg, key, throw_on_resolution_failure=False))
    ]
    if flat:
        raise HarnessError(
            f"from: {path} is not an exported config ({flat[0]} is not a mapping); "
            "make one with python -m search.export study=<name>"
        )
    return cfg


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """``line 2, column 1: expected the node content, but found '<stream end>'``."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or first_line(exc)
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark else problem


def with_defaults(exported: DictConfig, composed: DictConfig) -> DictConfig:
    """``exported`` over the defaults of ``composed`` (the harness's config): its scalar keys,
    the sections every study shares and the exported data set's own group file."""
    harness = OmegaConf.to_container(composed, resolve=False)
    assert isinstance(harness, dict)
    base: dict[str, Any] = {
        str(key): value
        for key, value in harness.items()
        if key != "from" and (not isinstance(value, dict) or key in _DEFAULTED)
    }
    name = f"{exported.dataset.get('name')}.yaml"
    groups = [folder / "dataset" / name for folder in config_folders()]
    group = next((path for path in groups if path.is_file()), None)
    if group is not None:
        base["dataset"] = OmegaConf.to_container(OmegaConf.load(group))
    merged = OmegaConf.merge(OmegaConf.create(base), exported)
    assert isinstance(merged, DictConfig)
    return merged


def apply_overrides(cfg: DictConfig, composed: DictConfig, overrides: list[str]) -> DictConfig:
    """Set each ``key=value`` from the command line (typed by Hydra in ``composed``)."""
    out = cfg.copy()
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if key == "from":
            continue
        OmegaConf.update(out, key, OmegaConf.select(composed, key), merge=False)
    return out


def check_same_source(path: Path, source: dict[str, Any], keys: tuple[str, ...] = ()) -> None:
    """Refuse to replace an exported config of another study or store (``keys``: what must
    match, by default the study and its storage); the same study's is a newer best."""
    keys = keys or ("study_name", "storage")
    if not path.is_file():
        return
    try:
        loaded = OmegaConf.load(path)
    except Exception:  # not YAML: say so rather than replace it
        loaded = OmegaConf.create({"source": {"storage": "a file that is not YAML"}})
    before = loaded.get("source") if isinstance(loaded, DictConfig) else None
    was = dict(before) if isinstance(before, DictConfig) else {}
    storage = was.get("storage")
    if isinstance(storage, str) and not storage.startswith("a file"):
        was["storage"] = storage_identity(storage)  # exported before paths were absolute
    if any(was.get(key) != source[key] for key in keys):
        raise HarnessError(
            f"{path} holds an export of study {was.get('study_name')} from "
            f"{was.get('storage')}, not of {source['study_name']} from {source['storage']}; "
            "give out=DIR for this one, or add overwrite=true to replace it"
        )
