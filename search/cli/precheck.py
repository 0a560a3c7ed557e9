"""The command line checked before Hydra runs a command: Hydra's own parser and composer
find what is wrong (unknown study, group option or key, an override that does not parse,
an unset ``???`` value, a config file that is not YAML) and it is said in one line (with a
"did you mean" for typos). Hydra's flags are read by Hydra's own argument parser: the
check composes from the same place Hydra will (``--config-dir``, ``--config-path``,
``--config-name``)."""

from __future__ import annotations

import argparse
import contextlib
import difflib
import io
import re
from pathlib import Path

import yaml
from hydra import compose, initialize_config_dir
from hydra._internal.utils import get_args_parser
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import (
    ConfigCompositionException,
    HydraException,
    MissingConfigException,
    OverrideParseException,
)
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from search.cli.errors import first_line
from search.cli.searchpath import CONFIG_DIR, config_folders, use_search_path

__all__ = ["command_line_problem"]


def command_line_problem(config_name: str, argv: list[str]) -> str | None:
    """Compose ``config_name`` with the command line as Hydra will; what is wrong with it
    in one line, or None. Flags that compose nothing (``--help``, ``--info``, ``-m``) and
    overrides of Hydra's own settings are left to Hydra."""
    flags = _flags(argv)
    if isinstance(flags, str):
        return flags
    problem = use_search_path(flags.overrides)  # for this check and for the command
    if problem:
        return problem
    if flags.help or flags.hydra_help or flags.info or flags.shell_completion:
        return None
    if flags.multirun or flags.experimental_rerun:
        return None
    args = list(flags.overrides)
    try:
        if any(o.is_hydra_override() for o in OverridesParser.create().parse_overrides(args)):
            return None
    except OverrideParseException as exc:
        return _parse_problem(exc)
    primary, extra = _config_dirs(flags)
    for flag, folder in (("--config-path", primary), ("--config-dir", extra)):
        if folder is not None and not folder.is_dir():
            what = "is a file, not a folder" if folder.exists() else "does not exist"
            return f"{flag}: {folder} {what}; give a folder of config files"
    if extra is not None:
        args.append(f"hydra.searchpath=[file://{extra}]")
    problem = _compose_problem(str(primary), flags.config_name or config_name, args)
    if problem and flags.config_path and "Cannot find primary config" in problem:
        return (
            f"--config-path: {primary} has no {flags.config_name or config_name}.yaml "
            "(--config-path replaces the harness's own configs); to add your studies to "
            "them, use --config-dir DIR"
        )
    return problem


def _flags(argv: list[str]) -> argparse.Namespace | str:
    """Hydra's own reading of the command line, or what it could not read (one line)."""
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            return get_args_parser().parse_args(argv)
    except SystemExit:
        said = [line for line in stderr.getvalue().splitlines() if line.strip()]
        reason = said[-1].split("error: ", 1)[-1] if said else "unknown flag"
        if "unrecognized arguments" in reason and "=" in reason:
            return f"cannot read the command line: {reason}; put every key=value before the flags"
        return f"cannot read the command line: {reason}; see --help"


def _config_dirs(flags: argparse.Namespace) -> tuple[Path, Path | None]:
    """The primary config folder (``--config-path``, relative to the command's module as
    in Hydra, or ours) and the extra one (``--config-dir``, relative to the cwd)."""
    primary = CONFIG_DIR
    if flags.config_path:
        primary = (CONFIG_DIR.parent / flags.config_path).resolve()
    extra = Path(flags.config_dir).expanduser().resolve() if flags.config_dir else None
    return primary, extra


def _compose_problem(config_dir: str, config_name: str, args: list[str]) -> str | None:
    with initialize_config_dir(config_dir=config_dir, version_base="1.3"):
        try:
            cfg = compose(config_name, overrides=args, return_hydra_config=True)
        except MissingConfigException as exc:
            return _missing_option(exc)
        except OverrideParseException as exc:
            return _parse_problem(exc)
        except ConfigCompositionException as exc:
            return _composition_problem(exc, config_name, args)
        except OmegaConfBaseException as exc:
            return _omegaconf_problem(exc)
        except yaml.YAMLError as exc:
            return _yaml_problem(exc)
        except (HydraException, ValueError) as exc:
            return f"cannot apply the command line ({_one_line(str(exc))})"
        return _resolve_problem(cfg)


def _parse_problem(exc: OverrideParseException) -> str:
    lines = [
        line
        for line in str(exc.message).splitlines()
        if line.strip() and not line.startswith(("Error parsing override", "See http"))
    ]
    return (
        f"cannot parse override '{exc.override}': {_one_line(' '.join(lines))}; "
        "write key=value (quote values with special characters)"
    )


def _missing_option(exc: MissingConfigException) -> str:
    group, _, name = str(exc.missing_cfg_file or "").rpartition("/")
    if not group:
        return _one_line(str(exc))
    options = exc.options or GlobalHydra.instance().config_loader().get_group_options(group)
    return f"unknown {group} '{name}'; available: {', '.join(options) or 'none'}"


_ABSENT = object()
# Hydra 1.3's wording for a key the config lacks; any other wording is passed on as is
_NESTED_STUDY = re.compile(r"In 'study/(?P<study>[^']+)': Could not override '[^']*@study\.")
_NOT_A_KEY = re.compile(r"Could not override '(?P<key>[^']+)'\.\nTo append to your config use \+")


def _composition_problem(exc: ConfigCompositionException, config_name: str, args: list[str]) -> str:
    nested = _NESTED_STUDY.match(str(exc))
    if nested:
        return _not_global(nested["study"])
    match = _NOT_A_KEY.match(str(exc))
    if not match:
        return _one_line(str(exc))
    key = match["key"]
    line = str(exc)[match.end() :].strip()
    if _exists(config_name, [a for a in args if a != line], key):
        cause = first_line(exc.__cause__, 200) if exc.__cause__ else "the values do not merge"
        value = line.split("=", 1)[-1]
        return (
            f"cannot set {key} from {line} ({cause}); a mapping merges into the one there: "
            f"to replace it write ~{key} '+{key}={value}'"
        )
    hint = f"see --cfg job for the keys, or +{key}=... to add one"
    if key.startswith("dataset.") and not key.startswith("dataset.args."):  # refused later
        hint = "see --cfg job for the set's keys; your own arrays: dataset=npz dataset.path=FILE"
    guess = _did_you_mean(config_name, [a for a in args if a != line], key)
    if guess:
        return f"unknown config key '{key}' (from {line}); did you mean {guess}? ({hint})"
    return f"unknown config key '{key}' (from {line}); {hint}"


def _exists(config_name: str, args: list[str], key: str) -> bool:
    try:
        cfg = compose(config_name, overrides=args)
    except (HydraException, OmegaConfBaseException, ValueError):
        return False
    return (
        OmegaConf.select(cfg, key, default=_ABSENT, throw_on_resolution_failure=False)
        is not _ABSENT
    )


def _did_you_mean(config_name: str, args: list[str], key: str) -> str:
    """The existing key that a typo in one part of ``key`` most likely meant, or ""."""
    try:
        cfg = compose(config_name, overrides=args)
        parts = key.split(".")
        for i, part in enumerate(parts):
            node = _mapping_at(cfg, parts[:i])
            if node is None:
                return ""
            if part in node:
                continue
            for close in difflib.get_close_matches(part, [str(k) for k in node], n=3):
                guess = [*parts[:i], close, *parts[i + 1 :]]
                parent = _mapping_at(cfg, guess[:-1])
                if parent is not None and guess[-1] in parent:
                    return ".".join(guess)
            return ""
    except (HydraException, OmegaConfBaseException, ValueError):
        return ""
    return ""


def _mapping_at(cfg: DictConfig, parts: list[str]) -> DictConfig | None:
    """The mapping at a dotted path (values are not resolved: Hydra's are not set yet)."""
    if not parts:
        return cfg
    node = OmegaConf.select(cfg, ".".join(parts), throw_on_resolution_failure=False)
    return node if isinstance(node, DictConfig) else None


def _resolve_problem(cfg: DictConfig) -> str | None:
    """Interpolations that do not resolve, mandatory values (``???``) left unset."""
    HydraConfig.instance().set_config(cfg)
    study = OmegaConf.select(cfg, "hydra.runtime.choices.study")
    with open_dict(cfg):
        del cfg["hydra"]
    problem = _study_problem(cfg, str(study)) if study else None  # search.train: no study
    if problem:
        return problem
    try:
        plain = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    except OmegaConfBaseException as exc:
        if "hydra." in str(exc):  # Hydra's run-time settings (output dir): set by the run
            return None
        return _omegaconf_problem(exc)
    missing = sorted(OmegaConf.missing_keys(plain))
    if missing:
        return f"{missing[0]} needs a value; add {missing[0]}=... to the command line"
    return None


def _study_problem(cfg: DictConfig, study: str) -> str | None:
    """A study file whose keys did not land at the top (no ``# @package _global_``) or
    that names no model."""
    nested = cfg.get("study")
    if isinstance(nested, DictConfig) and {"model", "space", "optimizer"} & set(nested):
        return _not_global(study)
    if OmegaConf.select(cfg, "model.builder", throw_on_resolution_failure=False) is None:
        return (
            f"{_study_file(study)} sets no model.builder; add a model: section with "
            "builder: dense (or module:function, your own) and its arguments"
        )
    return None


def _not_global(study: str) -> str:
    where = _study_file(study)
    lines = Path(where).read_text(errors="replace").splitlines() if Path(where).is_file() else []
    late = [i for i, line in enumerate(lines) if line.strip().startswith("# @package")]
    said = f" (it is on line {late[0] + 1}: Hydra reads it on the first line only)" if late else ""
    return (
        f"{where}: its keys land under study.* instead of the top; make its first line "
        f"'# @package _global_'{said}"
    )


def _study_file(study: str) -> str:
    """Where study ``study`` was read from (the first config folder that has it)."""
    for folder in config_folders():
        if (folder / "study" / f"{study}.yaml").is_file():
            return str(folder / "study" / f"{study}.yaml")
    return f"study {study}"


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    if mark is None:
        return f"a config file is not valid YAML ({_one_line(problem)})"
    return (
        f"{mark.name} is not valid YAML (line {mark.line + 1}, column {mark.column + 1}: "
        f"{_one_line(problem)}); fix the file (plain YAML only, no !!python tags)"
    )


def _omegaconf_problem(exc: OmegaConfBaseException) -> str:
    key = getattr(exc, "full_key", None)
    return f"{key}: {first_line(exc, 300)}" if key else first_line(exc, 300)


def _one_line(text: str, limit: int = 300) -> str:
    return "; ".join(part.strip() for part in text.splitlines() if part.strip())[:limit]
