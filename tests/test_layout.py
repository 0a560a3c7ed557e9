"""The house rules the layout promises (README, Layout): commands on top, packages that
import downwards only, no module over 300 lines, no TensorFlow in the commands that never
train."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

SEARCH = REPO / "search"
COMMANDS = {"run", "train", "export", "sync", "ui", "lr_find", "report"}
# each package may import from the packages before it (and itself), never after
# (models: the builders, which know nothing of the rest of the harness; packs: fused
# trials, Keras alone)
LAYERS = ["models", "cli", "config", "data", "study", "tracking", "packs", "trial"]


def _modules(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def _search_imports(path: Path) -> set[str]:
    """The ``search.<package>`` names a module imports (module level or in functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
            if node.module == "search":
                names = [f"search.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        found |= {name.split(".")[1] for name in names if name.startswith("search.")}
    return found


def test_the_top_level_of_search_is_the_list_of_commands() -> None:
    top = {p.stem for p in SEARCH.glob("*.py")} - {"__init__"}
    packages = {p.name for p in SEARCH.iterdir() if (p / "__init__.py").is_file()}
    assert top | {"report"} == COMMANDS
    assert packages == set(LAYERS) | {"report", "api"}  # api: the commands from Python


def test_models_and_studies_live_at_the_top_and_install_inside_the_package() -> None:
    """The design card's layout (models/, studies/ at the top) installed as search.models
    and search/studies: a user's own models.py or studies/ never shadows them."""
    for name in ("models", "studies"):
        assert (SEARCH / name).is_symlink() and (SEARCH / name).resolve() == REPO / name


@pytest.mark.parametrize("package", LAYERS)
def test_packages_import_downwards_only(package: str) -> None:
    allowed = set(LAYERS[: LAYERS.index(package) + 1])
    for path in _modules(SEARCH / package):
        upward = _search_imports(path) - allowed
        assert not upward, f"{path.relative_to(REPO)} imports search.{sorted(upward)}"


def test_no_module_is_over_300_lines() -> None:
    long = {
        str(p.relative_to(REPO)): n
        for p in _modules(SEARCH) + _modules(REPO / "models")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > 300
    }
    assert not long


def test_the_commands_that_never_train_do_not_import_tensorflow() -> None:
    """TensorFlow's import costs ~9 s: export, report, sync and ui never pay it."""
    code = (
        "import sys, search.export, search.report.__main__, search.sync, search.ui; "
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert done.stdout.strip() == "[]"
