"""The scenario library (package data in ``phone/scenario/library/``) and loading files.

This module reads files: scenario files named on the command line and the library's TOML
files shipped inside the package (so ``vphone scenario list`` works from an installed wheel).
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from phone.errors import UsageError
from phone.scenario.model import Scenario
from phone.scenario.parse import parse_scenario

__all__ = ["library_names", "library_scenarios", "library_text", "load_scenario"]

_SUFFIX = ".toml"


def _folder() -> Traversable:
    return resources.files("phone.scenario").joinpath("library")


def library_names() -> list[str]:
    """The names of the library's scenarios, sorted."""
    return sorted(
        entry.name.removesuffix(_SUFFIX)
        for entry in _folder().iterdir()
        if entry.is_file() and entry.name.endswith(_SUFFIX)
    )


def library_text(name: str) -> str:
    """The TOML source of library scenario ``name``.

    Raises:
        UsageError: no library scenario has that name.
    """
    names = library_names()
    if name not in names:
        raise UsageError(
            f"no library scenario called {name!r} (see `vphone scenario list`: {', '.join(names)})"
        )
    return _folder().joinpath(name + _SUFFIX).read_text(encoding="utf-8")


def library_scenarios() -> list[Scenario]:
    """Every library scenario, parsed (sorted by name)."""
    return [
        parse_scenario(library_text(name), path=f"library/{name}{_SUFFIX}")
        for name in library_names()
    ]


def load_scenario(spec: str | Path) -> Scenario:
    """A scenario from a file path, or from the library by name (``migration-rollback``).

    Raises:
        UsageError: neither a readable file nor a library name.
        ScenarioError: the file is malformed (names the line and the key).
    """
    path = Path(spec)
    if path.is_file():
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read {path}: {exc}") from None
        return parse_scenario(text, path=str(path))
    name = str(spec).removesuffix(_SUFFIX)
    if path.suffix == _SUFFIX and name not in library_names():
        raise UsageError(f"no such file: {path}")
    return parse_scenario(library_text(name), path=f"library/{name}{_SUFFIX}")
