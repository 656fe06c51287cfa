"""Scenario files: TOML in, a validated :class:`~phone.scenario.model.Scenario` out.

Pure: the text and the name to report it under come in; nothing is read from disk here
(:func:`phone.scenario.load_scenario` reads the file). Read with the standard library's
``tomllib``.

Every mistake is a :class:`~phone.scenario.model.ScenarioError` naming the line and the key:
``tomllib`` reports the line of a syntax error itself; for everything else (an unknown action,
a cluster that does not exist, a wrong type) the parser keeps a map from each table and key
to the line it was written on, built by scanning the source (``tomllib`` returns plain dicts
without positions). The layout is documented in ``docs/scenarios.md``.

This module reads the document and its ``[scenario]`` table; the rest is split by what it
parses: :mod:`~phone.scenario.toml_reader` (the line map and typed values),
:mod:`~phone.scenario.schema` (the vocabulary and counts), :mod:`~phone.scenario.parse_tables`
(clusters and groups), :mod:`~phone.scenario.parse_steps` (steps) and
:mod:`~phone.scenario.parse_expects` (expectations).
"""

from __future__ import annotations

import re
import tomllib
from datetime import datetime

from phone.scenario.model import DEFAULT_START, DEFAULT_STEP_SECONDS, Scenario, ScenarioError
from phone.scenario.parse_expects import ExpectParser
from phone.scenario.parse_steps import StepParser
from phone.scenario.parse_tables import Definitions
from phone.scenario.schema import (
    CERT_KINDS,
    CLUSTER_CHECKS,
    DEVICE_SETTINGS,
    PHONE_CHECKS,
    STEP_KEYS,
    parse_quantity,
)
from phone.scenario.toml_reader import Reader, Source, suggest

# The vocabulary and parse_quantity (phone.scenario.schema) are re-exported: phone.scenario.fleet
# and the tests import them from here.
__all__ = [
    "CERT_KINDS",
    "CLUSTER_CHECKS",
    "DEVICE_SETTINGS",
    "PHONE_CHECKS",
    "STEP_KEYS",
    "parse_quantity",
    "parse_scenario",
]

_SLUG = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?")
_MAX_GROUPS = 256  # two hex digits of the MAC name the group (GroupDef.mac)


class _Parser:
    """One parse of one file: the document and its ``[scenario]`` table; the sections are
    parsed by :class:`~phone.scenario.parse_tables.Definitions` (clusters, groups),
    :class:`~phone.scenario.parse_steps.StepParser` and
    :class:`~phone.scenario.parse_expects.ExpectParser`."""

    def __init__(self, text: str, path: str) -> None:
        self.text = text
        self.path = path
        self.source = Source(text, path)
        self.defs = Definitions()
        self.expects = ExpectParser(self.defs)
        self.steps = StepParser(self.defs, self.expects)

    def parse(self) -> Scenario:
        try:
            document = tomllib.loads(self.text)
        except tomllib.TOMLDecodeError as exc:
            # tomllib's message ends in "(at line L, column C)": keep it, it names the place.
            match = re.search(r"at line (\d+)", str(exc))
            raise ScenarioError(
                f"not valid TOML: {exc}", path=self.path, line=int(match[1]) if match else 0
            ) from None
        top = Reader(self.source, document, ())
        for key, value in document.items():
            if key not in ("scenario", "cluster", "group", "step", "expect"):
                known = ["scenario", "cluster", "group", "step", "expect"]
                raise self.source.error(f"unknown table or key{suggest(key, known)}", (), key)
            wants_list = key != "scenario"
            if wants_list and not (
                isinstance(value, list) and all(isinstance(v, dict) for v in value)
            ):
                raise self.source.error(f"write [[{key}]] tables (an array of tables)", (), key)
            if not wants_list and not isinstance(value, dict):
                raise self.source.error("write a [scenario] table", (), key)
        head = top.raw("scenario")
        if not isinstance(head, dict):
            raise ScenarioError(
                "a scenario file starts with a [scenario] table (name, title)",
                path=self.path,
                line=1,
            )
        scenario = Reader(self.source, head, ("scenario",))
        name = scenario.text("name")
        if not _SLUG.fullmatch(name):
            raise scenario.error(
                f"{name!r} is not a scenario name: lower-case letters, digits and '-'", "name"
            )
        title = scenario.text("title")
        description = scenario.text("description", "")
        sources = scenario.strings("sources") or ()
        items = self._items(scenario)
        start = self._start(scenario)
        step_seconds = scenario.integer(
            "step_seconds", DEFAULT_STEP_SECONDS, low=0, high=365 * 86400
        )
        scenario.finish()

        clusters = document.get("cluster", [])
        if not clusters:
            raise ScenarioError(
                "a scenario needs at least one [[cluster]] table", path=self.path, line=1
            )
        for index, table in enumerate(clusters):
            cluster = self.defs.cluster(Reader(self.source, table, ("cluster", index)))
            self.defs.clusters[cluster.name] = cluster
        groups = document.get("group", [])
        if not groups:
            raise ScenarioError(
                "a scenario needs at least one [[group]] table", path=self.path, line=1
            )
        if len(groups) > _MAX_GROUPS:
            raise ScenarioError(f"at most {_MAX_GROUPS} groups", path=self.path, line=1)
        for index, table in enumerate(groups):
            group = self.defs.group(Reader(self.source, table, ("group", index)), index)
            self.defs.groups[group.name] = group
        steps = tuple(
            self.steps.step(Reader(self.source, table, ("step", index)), index + 1)
            for index, table in enumerate(document.get("step", []))
        )
        expects = tuple(
            self.expects.expect(Reader(self.source, table, ("expect", index)), 0)
            for index, table in enumerate(document.get("expect", []))
        )
        return Scenario(
            name=name,
            title=title,
            clusters=tuple(self.defs.clusters.values()),
            groups=tuple(self.defs.groups.values()),
            steps=steps,
            expects=expects,
            description=description.strip(),
            sources=sources,
            items=items,
            start=start,
            step_seconds=step_seconds,
            path=self.path,
        )

    def _items(self, reader: Reader) -> tuple[int, ...]:
        value = reader.raw("items")
        if value is None:
            return ()
        if not isinstance(value, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 99 for v in value
        ):
            raise reader.error("expected a list of behaviour item numbers, e.g. [16, 33]", "items")
        return tuple(value)

    def _start(self, reader: Reader) -> datetime:
        value = reader.raw("start")
        if value is None:
            return DEFAULT_START
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value)
            except ValueError:
                raise reader.error(f"{value!r} is not a date and time", "start") from None
        if not isinstance(value, datetime):
            raise reader.error("expected a date and time, e.g. 2026-06-01T09:00:00Z", "start")
        if value.tzinfo is None:
            raise reader.error("give the time zone, e.g. 2026-06-01T09:00:00Z", "start")
        return value


def parse_scenario(text: str, *, path: str = "scenario.toml") -> Scenario:
    """Parse and validate a scenario file's text; ``path`` is how errors name the file.

    Raises:
        ScenarioError: malformed TOML or an invalid scenario, naming the line and the key.
    """
    return _Parser(text, path).parse()
