"""Where the configs are found, first match wins: a ``studies/`` folder in the current
directory, then the folders given with ``search_path=DIR`` (a list: ``search_path=[a,b]``),
then the harness's own (installed inside the package), then Hydra's ``--config-dir``.

A user's project needs no flag: ``studies/study/my_cnn.yaml`` next to their code is found
by ``python -m search.run study=my_cnn``, and a file there with the name of one of ours
(``dataset/npz.yaml``, ``study/deep_dnn.yaml``) replaces ours. The order is a Hydra
``SearchPathPlugin`` registered with Hydra's own plugin registry; it touches only the
harness's commands (a search path whose main folder is ours), never another Hydra app.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hydra.core.config_search_path import ConfigSearchPath, SearchPathQuery
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.errors import OverrideParseException
from hydra.plugins.search_path_plugin import SearchPathPlugin
from omegaconf import OmegaConf

__all__ = ["CONFIG_DIR", "SEARCH_PATH_KEY", "config_folders", "set_search_path", "use_search_path"]

CONFIG_DIR = Path(__file__).resolve().parents[1] / "studies"  # the harness's own configs
SEARCH_PATH_KEY = "search_path"
PROVIDER = "search-harness"
_given: list[Path] = []  # from search_path=..., for the command being composed


def config_folders() -> list[Path]:
    """Every config folder, in search order (``--config-dir`` aside)."""
    return [*_user_folders(), CONFIG_DIR.resolve()]


def _user_folders() -> list[Path]:
    ours = CONFIG_DIR.resolve()
    here = Path.cwd() / "studies"
    found = [here.resolve()] if here.is_dir() else []
    found += [folder for folder in _given if folder not in found]
    return [folder for folder in found if folder != ours]


def set_search_path(folders: Sequence[str | Path]) -> str | None:
    """Use ``folders`` (relative to the current directory) for the next composition; what
    is wrong with them in one line (a folder that is not there), or None."""
    resolved = [Path(str(folder)).expanduser().resolve() for folder in folders]
    for given, folder in zip(folders, resolved, strict=True):
        if not folder.is_dir():
            return (
                f"{SEARCH_PATH_KEY}: {given} "
                f"{'is a file, not a folder' if folder.exists() else 'does not exist'}; "
                "give a folder of config files "
                "(like ./studies: study/<name>.yaml, dataset/<name>.yaml)"
            )
    _given[:] = resolved
    return None


def use_search_path(overrides: Sequence[str]) -> str | None:
    """Read ``search_path=...`` among command-line ``overrides`` (a folder or a list) and
    use it; a problem in one line, or None. Other overrides are left to the caller."""
    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except OverrideParseException:
        return set_search_path([])  # the caller's check says what does not parse
    value: object = None
    for override in parsed:
        if override.get_key_element().lstrip("+~") == SEARCH_PATH_KEY:
            value = override.value()
    if value is None:
        return set_search_path([])
    folders = value if isinstance(value, list) else [value]
    if not all(isinstance(folder, str) for folder in folders):
        return f"{SEARCH_PATH_KEY}: give a folder or a list of folders, got {value}"
    return set_search_path([str(folder) for folder in folders])


class UserConfigsFirst(SearchPathPlugin):
    """Puts ./studies and ``search_path`` before the harness's own configs."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        ours = CONFIG_DIR.resolve()
        mains = [e for e in search_path.get_path() if e.provider == "main" and e.path]
        if not any(_folder(str(e.path)) == ours for e in mains):
            return
        for folder in reversed(_user_folders()):
            search_path.prepend(PROVIDER, f"file://{folder}", anchor=SearchPathQuery("main"))


def _folder(path: str) -> Path | None:
    """The folder of a search path element (``file://DIR`` or a bare path), else None."""
    if "://" in path and not path.startswith("file://"):
        return None
    return Path(path.removeprefix("file://")).resolve()


def _describe() -> str:
    """The folders for ``--help``: which are searched, first match wins."""
    user = _user_folders()
    lines = [f"  {folder}" for folder in user] or ["  (none: no ./studies here)"]
    return "\n".join(
        ["Your configs (searched first; ./studies and search_path=DIR):", *lines]
        + [f"The harness's own configs:\n  {CONFIG_DIR.resolve()}"]
    )


Plugins.instance().register(UserConfigsFirst)
if not OmegaConf.has_resolver("search_folders"):
    OmegaConf.register_new_resolver("search_folders", _describe, use_cache=False)
