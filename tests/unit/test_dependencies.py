"""The runtime dependencies declared in pyproject.toml are exactly what glancesync imports.

An undeclared import works in the developer's venv and breaks `pip install glancesync`; a
declared but unused package is installed on every operator's machine for nothing.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[2]


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# The REST API (glancesync/api/) imports its own packages, declared as the "api" extra.
API_PACKAGE = ROOT / "glancesync" / "api"
# Loaded by SQLAlchemy from a postgresql:// URL, never imported by name.
DRIVER_EXTRAS = {"postgresql": {"psycopg"}}


def declared_dependencies(extra: str | None = None) -> dict[str, str]:
    """Canonical distribution name -> requirement string, from [project] dependencies
    (or from the optional dependencies ``extra``)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    result = {}
    listed = project["optional-dependencies"][extra] if extra else project["dependencies"]
    for requirement in listed:
        name = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement).group(0)
        result[_canonical(name)] = requirement
    return result


def imported_top_level_modules(api: bool = False) -> dict[str, str]:
    """Third-party top-level module -> one file importing it, over the whole package but
    the API (or over the API only)."""
    found: dict[str, str] = {}
    for path in sorted((ROOT / "glancesync").rglob("*.py")):
        if path.is_relative_to(API_PACKAGE) != api:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top != "glancesync" and top not in sys.stdlib_module_names:
                    found.setdefault(top, str(path.relative_to(ROOT)))
    return found


def test_every_import_is_declared_and_every_declaration_imported() -> None:
    modules = imported_top_level_modules()
    providers = importlib.metadata.packages_distributions()
    missing = [f"{m}" for m in modules if m not in providers]
    assert not missing, f"imported but not installed in this venv: {missing}"
    imported = {_canonical(dist): module for module in modules for dist in providers[module]}
    declared = declared_dependencies()
    undeclared = {dist: modules[m] for dist, m in imported.items() if dist not in declared}
    unused = sorted(set(declared) - set(imported))
    assert not undeclared, (
        f"imported (by these files) but not in [project] dependencies: {undeclared}"
    )
    assert not unused, f"in [project] dependencies but never imported: {unused}"


def test_api_imports_are_its_extra() -> None:
    modules = imported_top_level_modules(api=True)
    providers = importlib.metadata.packages_distributions()
    missing = [m for m in modules if m not in providers]
    assert not missing, f"imported but not installed in this venv: {missing}"
    imported = {_canonical(dist): module for module in modules for dist in providers[module]}
    available = {**declared_dependencies(), **declared_dependencies("api")}
    undeclared = {dist: modules[m] for dist, m in imported.items() if dist not in available}
    assert not undeclared, f"imported by the API but not in the api extra: {undeclared}"
    unused = sorted(set(declared_dependencies("api")) - set(imported))
    assert not unused, f"in the api extra but never imported by glancesync/api: {unused}"
    for extra, drivers in DRIVER_EXTRAS.items():
        assert set(declared_dependencies(extra)) == drivers


def test_runtime_dependencies_have_lower_bounds_only() -> None:
    # Upper bounds and pins in a library's metadata make it uninstallable next to other
    # tools; exact pins belong to the development extra.
    runtime = [declared_dependencies(), declared_dependencies("api")]
    runtime += [declared_dependencies(extra) for extra in DRIVER_EXTRAS]
    for requirement in (r for deps in runtime for r in deps.values()):
        assert ">=" in requirement, f"{requirement}: give a lower bound (>=)"
        assert not re.search(r"==|<|~=", requirement), f"{requirement}: lower bound only"


def test_development_tools_are_pinned_exactly() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    for extra, requirements in project["optional-dependencies"].items():
        if extra != "test":
            continue
        for requirement in requirements:
            assert re.fullmatch(r"[A-Za-z0-9._-]+==[0-9][0-9A-Za-z.]*", requirement), (
                f"[test] extra: {requirement} must be pinned exactly (name==version)"
            )
