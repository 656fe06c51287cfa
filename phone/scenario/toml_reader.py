"""Reading a scenario's TOML: where each table and key was written, and typed access to them.

``tomllib`` returns plain dicts without positions, so :class:`LineMap` scans the source for
the line each table and key starts on; a :class:`Reader` reads one table's values by type and
raises a :class:`~phone.scenario.model.ScenarioError` naming that line and the key. Nothing
here knows what a scenario contains (that is :mod:`phone.scenario.schema` and the parsers).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from typing import Any

from phone.scenario.model import ScenarioError

__all__ = ["LineMap", "Path", "Reader", "Source", "suggest", "table_name", "type_name"]

_ARRAY_HEADER = re.compile(r"\s*\[\[\s*([A-Za-z0-9_.\- ]+?)\s*\]\]")
_TABLE_HEADER = re.compile(r"\s*\[\s*([A-Za-z0-9_.\- ]+?)\s*\]")
_KEY_LINE = re.compile(r"\s*([A-Za-z0-9_-]+|\"[^\"]*\")\s*(?:\.\s*[A-Za-z0-9_\"-]+\s*)*=")

Path = tuple[str | int, ...]


class LineMap:
    """Where each table and key of the source starts (1-based lines).

    Tables are addressed like the parsed document: ``("step", 2)`` is the third ``[[step]]``,
    ``("step", 2, "expect", 0)`` its first ``[[step.expect]]``. A dotted key (``a.b = 1``) is
    filed under its first part. Lines inside multi-line strings are skipped.
    """

    def __init__(self, text: str) -> None:
        self.tables: dict[Path, int] = {(): 1}
        self.keys: dict[tuple[Path, str], int] = {}
        counters: dict[Path, int] = {}
        current: Path = ()
        in_string: str | None = None
        for number, line in enumerate(text.splitlines(), start=1):
            if in_string is not None:
                if line.count(in_string) % 2 == 1:
                    in_string = None
                continue
            if (match := _ARRAY_HEADER.match(line)) is not None:
                current = self._array(match[1], current, counters)
                self.tables[current] = number
                continue
            if (match := _TABLE_HEADER.match(line)) is not None:
                current = tuple(part.strip() for part in match[1].split("."))
                self.tables.setdefault(current, number)
                continue
            if (match := _KEY_LINE.match(line)) is not None:
                self.keys.setdefault((current, match[1].strip('"')), number)
            for quote in ('"""', "'''"):
                if line.count(quote) % 2 == 1:
                    in_string = quote
                    break

    def _array(self, name: str, current: Path, counters: dict[Path, int]) -> Path:
        parts = [part.strip() for part in name.split(".")]
        base: Path = ()
        if len(parts) > 1:
            # ``[[step.expect]]`` belongs to the latest ``[[step]]``.
            parent = parts[0]
            base = (parent, counters.get((parent,), 1) - 1)
            parts = parts[1:]
        path = (*base, *parts)
        index = counters.get(path, 0)
        counters[path] = index + 1
        return (*path, index)

    def line(self, path: Path, key: str | None = None) -> int:
        """The line of ``key`` in table ``path`` (the table's line when the key is absent)."""
        if key is not None and (path, key) in self.keys:
            return self.keys[(path, key)]
        while path:
            if path in self.tables:
                return self.tables[path]
            path = path[:-1]
        return 1


def table_name(path: Path) -> str:
    """``[[step]] #3`` for ("step", 2); ``[scenario]`` for ("scenario",)."""
    if not path:
        return "top level"
    if isinstance(path[-1], int):
        name = ".".join(str(p) for p in path if isinstance(p, str))
        numbers = [p + 1 for p in path if isinstance(p, int)]
        return f"[[{name}]] #{'.'.join(map(str, numbers))}"
    return "[" + ".".join(str(p) for p in path) + "]"


def suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


class Source:
    """A scenario file as its errors name it: the path given and the line of each table and key."""

    def __init__(self, text: str, path: str) -> None:
        self.path = path
        self.lines = LineMap(text)

    def error(self, problem: str, table: Path, key: str | None = None) -> ScenarioError:
        """An error about ``key`` of ``table`` (the table itself when ``key`` is None)."""
        return ScenarioError(
            problem, path=self.path, line=self.lines.line(table, key), key=key or ""
        )


class Reader:
    """Typed access to one table of the document, raising errors that name line and key."""

    def __init__(self, source: Source, table: Mapping[str, Any], path: Path) -> None:
        self.source = source
        self.table = table
        self.path = path
        self.used: set[str] = set()

    def error(self, problem: str, key: str | None = None) -> ScenarioError:
        return self.source.error(problem, self.path, key)

    def line(self, key: str | None = None) -> int:
        return self.source.lines.line(self.path, key)

    def has(self, key: str) -> bool:
        return key in self.table

    def raw(self, key: str) -> object:
        self.used.add(key)
        return self.table.get(key)

    def text(self, key: str, default: str | None = None) -> str:
        value = self.raw(key)
        if value is None:
            if default is None:
                raise self.error(f"{table_name(self.path)} needs {key!r}", key)
            return default
        if not isinstance(value, str):
            raise self.error(f"expected text (in quotes), got {type_name(value)}", key)
        return value

    def integer(self, key: str, default: int | None, *, low: int, high: int) -> int:
        value = self.raw(key)
        if value is None:
            if default is None:
                raise self.error(f"{table_name(self.path)} needs {key!r}", key)
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(f"expected a whole number, got {type_name(value)}", key)
        if not low <= value <= high:
            raise self.error(f"{value} is out of range ({low} to {high})", key)
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.raw(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.error(f"expected true or false, got {type_name(value)}", key)
        return value

    def choice(self, key: str, choices: Iterable[str], default: str | None = None) -> str:
        options = list(choices)
        value = self.text(key, default)
        if value not in options:
            raise self.error(
                f"{value!r} is not one of {', '.join(options)}{suggest(value, options)}", key
            )
        return value

    def strings(self, key: str) -> tuple[str, ...] | None:
        value = self.raw(key)
        if value is None:
            return None
        if isinstance(value, str):
            return (value,)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(f"expected text or a list of texts, got {type_name(value)}", key)
        return tuple(value)

    def finish(self, allowed: Iterable[str] | None = None) -> None:
        """Refuse keys nobody read (typos must not be ignored silently)."""
        known = set(allowed) if allowed is not None else self.used
        for key in self.table:
            if key not in known:
                options = sorted(known)
                raise self.error(
                    f"unknown key in {table_name(self.path)}{suggest(key, options)} "
                    f"(known: {', '.join(options) or 'none'})",
                    key,
                )


def type_name(value: object) -> str:
    names = {
        bool: "true/false",
        int: "a number",
        float: "a decimal number",
        str: "text",
        list: "a list",
        dict: "a table",
    }
    return names.get(type(value), type(value).__name__)
