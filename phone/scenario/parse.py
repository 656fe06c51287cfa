"""Scenario files: TOML in, a validated :class:`~phone.scenario.model.Scenario` out.

Pure: the text and the name to report it under come in; nothing is read from disk here
(:func:`phone.scenario.load_scenario` reads the file). Read with the standard library's
``tomllib``.

Every mistake is a :class:`~phone.scenario.model.ScenarioError` naming the line and the key:
``tomllib`` reports the line of a syntax error itself; for everything else (an unknown action,
a cluster that does not exist, a wrong type) this module keeps a map from each table and key
to the line it was written on, built by scanning the source (``tomllib`` returns plain dicts
without positions). The layout is documented in ``docs/scenarios.md``.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from phone.catalog.models import MODELS
from phone.cluster.capf import CapfAuth, CapfKeyType, CapfOperation, CapfPending
from phone.cluster.profiles import PROFILES, get_profile
from phone.cluster.records import PARAMETERS, parse_parameter
from phone.device.machine import State
from phone.errors import LabError
from phone.net.faults import FaultKind
from phone.scenario.model import (
    DEFAULT_START,
    DEFAULT_STEP_SECONDS,
    LAB_ACTIONS,
    PHONE_ACTIONS,
    Check,
    ClusterCheck,
    ClusterDef,
    ExpectDef,
    GroupDef,
    Quantity,
    QuantityKind,
    Scenario,
    ScenarioError,
    StepDef,
)
from phone.trust.decision import Verdict

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
_CLUSTER_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,28}[a-z0-9])?")  # the lab's own rule
_GROUP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")
_MAX_GROUPS = 256  # two hex digits of the MAC name the group (GroupDef.mac)
_MAX_PHONES = 10_000_000
_MAX_NODES = 64

CERT_KINDS = {
    "callmanager": "CallManager",
    "tvs": "TVS",
    "itlrecovery": "ITLRecovery",
    "capf": "CAPF",
    "tomcat": "Tomcat",
}
"""Certificate names a ``regenerate`` step and an ``itl_signer`` check accept."""

_VERDICTS = tuple(v.value for v in Verdict)
_STATES = tuple(s.value for s in State)

PHONE_CHECKS: Mapping[str, str] = {
    "state": "the phone's state: " + ", ".join(_STATES),
    "registered_with": "the cluster the phone is registered with, or none",
    "itl_signer": "who signed the installed ITL: CLUSTER:CERT, CLUSTER:CERT:previous, none, "
    "or text in the signer's name",
    "has_itl": "true when an ITL is installed",
    "has_ctl": "true when a CTL is installed",
    "itl_empty": "true when the installed ITL is the empty rollback ITL (item 16)",
    "itl_matches_cluster": "true when the phone's ITL hash is the one its TFTP server serves now "
    "(item 31)",
    "itl_matches": "the cluster one of whose TFTP nodes serves exactly the phone's ITL",
    "itl_status": "the phone's row in the ITL File Status report (item 30): match, mismatch "
    "or none",
    "status_contains": "text of one of the phone's last 30 status messages (item 47)",
    "trace_contains": "text in the reason of any decision the phone ever made",
    "last_ctl": "the verdict of the latest CTL decision, optionally 'by RULE'",
    "last_itl": "the verdict of the latest ITL decision, optionally 'by RULE'",
    "last_config": "the verdict of the latest config decision, optionally 'by RULE'",
    "last_image": "the verdict of the latest firmware image decision, optionally 'by RULE'",
    "last_register": "the verdict of the latest registration attempt, optionally 'by RULE'",
    "last_capf": "the verdict of the latest CAPF decision (trust in the server, or the "
    "session's outcome), optionally 'by RULE'",
    "load": "the firmware load the phone runs",
    "lsc": "true when the phone holds an LSC (a certificate CAPF issued)",
    "registered_over": "the transport of the phone's registration: tls or tcp (it must be "
    "registered)",
    "capf_result": "the last CAPF outcome on the phone's device record (cluster side): "
    "succeeded, failed, OPERATION succeeded, OPERATION failed, or none",
    "capf_pending": "the certificate operation pending on the phone's device record: "
    + ", ".join(o.value for o in CapfOperation)
    + " or none",
}
"""Every check a phone expectation accepts, with what it means."""

CLUSTER_CHECKS: Mapping[str, str] = {
    "itl_mismatches": "how many devices the ITL File Status report lists as mismatched (item 30)",
    "log_contains": "text of a line of the cluster's service log",
}
"""Every check a cluster expectation accepts."""

_BOOL_CHECKS = frozenset({"has_itl", "has_ctl", "itl_empty", "itl_matches_cluster", "lsc"})
_LAST_CHECKS = frozenset(
    {"last_ctl", "last_itl", "last_config", "last_image", "last_register", "last_capf"}
)
_OPERATIONS = tuple(o.value for o in CapfOperation)
_SECURITY_MODES = ("non-secure", "authenticated", "encrypted")

# --- the key -> line map -------------------------------------------------------------------------

_ARRAY_HEADER = re.compile(r"\s*\[\[\s*([A-Za-z0-9_.\- ]+?)\s*\]\]")
_TABLE_HEADER = re.compile(r"\s*\[\s*([A-Za-z0-9_.\- ]+?)\s*\]")
_KEY_LINE = re.compile(r"\s*([A-Za-z0-9_-]+|\"[^\"]*\")\s*(?:\.\s*[A-Za-z0-9_\"-]+\s*)*=")

Path = tuple[str | int, ...]


class _LineMap:
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


def _table_name(path: Path) -> str:
    """``[[step]] #3`` for ("step", 2); ``[scenario]`` for ("scenario",)."""
    if not path:
        return "top level"
    if isinstance(path[-1], int):
        name = ".".join(str(p) for p in path if isinstance(p, str))
        numbers = [p + 1 for p in path if isinstance(p, int)]
        return f"[[{name}]] #{'.'.join(map(str, numbers))}"
    return "[" + ".".join(str(p) for p in path) + "]"


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


class _Reader:
    """Typed access to one table of the document, raising errors that name line and key."""

    def __init__(self, parser: _Parser, table: Mapping[str, Any], path: Path) -> None:
        self.parser = parser
        self.table = table
        self.path = path
        self.used: set[str] = set()

    def error(self, problem: str, key: str | None = None) -> ScenarioError:
        return self.parser.error(problem, self.path, key)

    def line(self, key: str | None = None) -> int:
        return self.parser.lines.line(self.path, key)

    def has(self, key: str) -> bool:
        return key in self.table

    def raw(self, key: str) -> object:
        self.used.add(key)
        return self.table.get(key)

    def text(self, key: str, default: str | None = None) -> str:
        value = self.raw(key)
        if value is None:
            if default is None:
                raise self.error(f"{_table_name(self.path)} needs {key!r}", key)
            return default
        if not isinstance(value, str):
            raise self.error(f"expected text (in quotes), got {_type(value)}", key)
        return value

    def integer(self, key: str, default: int | None, *, low: int, high: int) -> int:
        value = self.raw(key)
        if value is None:
            if default is None:
                raise self.error(f"{_table_name(self.path)} needs {key!r}", key)
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(f"expected a whole number, got {_type(value)}", key)
        if not low <= value <= high:
            raise self.error(f"{value} is out of range ({low} to {high})", key)
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.raw(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.error(f"expected true or false, got {_type(value)}", key)
        return value

    def choice(self, key: str, choices: Iterable[str], default: str | None = None) -> str:
        options = list(choices)
        value = self.text(key, default)
        if value not in options:
            raise self.error(
                f"{value!r} is not one of {', '.join(options)}{_suggest(value, options)}", key
            )
        return value

    def strings(self, key: str) -> tuple[str, ...] | None:
        value = self.raw(key)
        if value is None:
            return None
        if isinstance(value, str):
            return (value,)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(f"expected text or a list of texts, got {_type(value)}", key)
        return tuple(value)

    def finish(self, allowed: Iterable[str] | None = None) -> None:
        """Refuse keys nobody read (typos must not be ignored silently)."""
        known = set(allowed) if allowed is not None else self.used
        for key in self.table:
            if key not in known:
                options = sorted(known)
                raise self.error(
                    f"unknown key in {_table_name(self.path)}{_suggest(key, options)} "
                    f"(known: {', '.join(options) or 'none'})",
                    key,
                )


def _type(value: object) -> str:
    names = {
        bool: "true/false",
        int: "a number",
        float: "a decimal number",
        str: "text",
        list: "a list",
        dict: "a table",
    }
    return names.get(type(value), type(value).__name__)


def parse_quantity(value: object, *, phones: bool = True) -> Quantity:
    """``"all"``, ``"none"``, ``"any"``, ``"at least N"``, ``"at most N%"``, ``"exactly N"``, N.

    ``phones=False`` (a count of mismatches, not of phones) refuses ``all`` and percentages.

    Raises:
        ValueError: not a quantity (the message says what is accepted).
    """
    if isinstance(value, bool):
        raise ValueError("expected a count such as 'all', 'none', 'at least 3' or a number")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"a count cannot be negative ({value})")
        return Quantity(QuantityKind.EXACTLY, value)
    if not isinstance(value, str):
        raise ValueError("expected a count such as 'all', 'none', 'at least 3' or a number")
    text = " ".join(value.lower().split())
    if text == "all" and phones:
        return Quantity(QuantityKind.ALL)
    if text == "none":
        return Quantity(QuantityKind.NONE)
    if text == "any":
        return Quantity(QuantityKind.AT_LEAST, 1)
    match = re.fullmatch(r"(at least|at most|exactly)?\s*(\d{1,9})(%?)", text)
    if match is None or (match[3] and not phones):
        accepted = "'all', 'none', 'any', " if phones else "'none', "
        raise ValueError(
            f"{value!r} is not a count: use {accepted}'at least N', 'at most N', 'exactly N' or N"
            + (" (N may be a percentage, '90%')" if phones else "")
        )
    kind = QuantityKind(match[1]) if match[1] else QuantityKind.EXACTLY
    number = int(match[2])
    if match[3] and number > 100:
        raise ValueError(f"{value!r} is not a count: {number}% is more than every phone")
    return Quantity(kind, number, bool(match[3]))


# --- step schemas --------------------------------------------------------------------------------

_FAULTS = tuple(k.value for k in FaultKind)

DEVICE_SETTINGS = (
    "security_mode",
    "encrypt_config",
    "digest_user",
    "digest_password",
    "digest_auth",
    "exclude_digest_credentials",
    "load",
)
"""The device-record settings a ``set-device`` step may change (at least one of them)."""

_DEVICE_FLAGS = frozenset({"encrypt_config", "digest_auth", "exclude_digest_credentials"})
_CAPF_STRING = re.compile(r"[0-9]{1,32}")  # what a phone's keypad lets a person type

STEP_KEYS: Mapping[str, tuple[str, ...]] = {
    "boot": (),
    "reset": (),
    "power-off": (),
    "power-on": (),
    "erase-trust": (),
    "factory-reset": (),
    "heal": (),
    "move": ("cluster",),
    "upgrade-firmware": ("load",),
    "set-device": DEVICE_SETTINGS,
    "capf": ("operation", "auth", "key_type", "capf_string"),
    "tamper": ("file", "fault", "data"),
    "set-param": ("cluster", "name", "value"),
    "regenerate": ("cluster", "cert", "node"),
    "export-certs": ("cluster", "password"),
    "import-certs": ("cluster", "password"),
    "itl-reset": ("cluster", "mode", "key"),
    "restart-tftp": ("cluster", "node"),
    "stop-node": ("cluster", "node"),
    "start-node": ("cluster", "node"),
    "set-mode": ("cluster", "mode"),
    "ctl-update": ("cluster",),
    "wait": ("seconds", "minutes", "hours", "days"),
}
"""The keys each step action takes besides ``do``, ``groups`` (phone actions) and ``text``."""

assert set(STEP_KEYS) == PHONE_ACTIONS | LAB_ACTIONS


class _Parser:
    def __init__(self, text: str, path: str) -> None:
        self.text = text
        self.path = path
        self.lines = _LineMap(text)
        self.clusters: dict[str, ClusterDef] = {}
        self.groups: dict[str, GroupDef] = {}
        self.exported = False
        self.regenerated: set[tuple[str, str]] = set()

    def error(self, problem: str, table: Path, key: str | None = None) -> ScenarioError:
        return ScenarioError(
            problem, path=self.path, line=self.lines.line(table, key), key=key or ""
        )

    def parse(self) -> Scenario:
        try:
            document = tomllib.loads(self.text)
        except tomllib.TOMLDecodeError as exc:
            # tomllib's message ends in "(at line L, column C)": keep it, it names the place.
            match = re.search(r"at line (\d+)", str(exc))
            raise ScenarioError(
                f"not valid TOML: {exc}", path=self.path, line=int(match[1]) if match else 0
            ) from None
        top = _Reader(self, document, ())
        for key, value in document.items():
            if key not in ("scenario", "cluster", "group", "step", "expect"):
                known = ["scenario", "cluster", "group", "step", "expect"]
                raise self.error(f"unknown table or key{_suggest(key, known)}", (), key)
            wants_list = key != "scenario"
            if wants_list and not (
                isinstance(value, list) and all(isinstance(v, dict) for v in value)
            ):
                raise self.error(f"write [[{key}]] tables (an array of tables)", (), key)
            if not wants_list and not isinstance(value, dict):
                raise self.error("write a [scenario] table", (), key)
        head = top.raw("scenario")
        if not isinstance(head, dict):
            raise ScenarioError(
                "a scenario file starts with a [scenario] table (name, title)",
                path=self.path,
                line=1,
            )
        scenario = _Reader(self, head, ("scenario",))
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
            cluster = self._cluster(_Reader(self, table, ("cluster", index)))
            self.clusters[cluster.name] = cluster
        groups = document.get("group", [])
        if not groups:
            raise ScenarioError(
                "a scenario needs at least one [[group]] table", path=self.path, line=1
            )
        if len(groups) > _MAX_GROUPS:
            raise ScenarioError(f"at most {_MAX_GROUPS} groups", path=self.path, line=1)
        for index, table in enumerate(groups):
            group = self._group(_Reader(self, table, ("group", index)), index)
            self.groups[group.name] = group
        steps = tuple(
            self._step(_Reader(self, table, ("step", index)), index + 1)
            for index, table in enumerate(document.get("step", []))
        )
        expects = tuple(
            self._expect(_Reader(self, table, ("expect", index)), 0)
            for index, table in enumerate(document.get("expect", []))
        )
        return Scenario(
            name=name,
            title=title,
            clusters=tuple(self.clusters.values()),
            groups=tuple(self.groups.values()),
            steps=steps,
            expects=expects,
            description=description.strip(),
            sources=sources,
            items=items,
            start=start,
            step_seconds=step_seconds,
            path=self.path,
        )

    def _items(self, reader: _Reader) -> tuple[int, ...]:
        value = reader.raw("items")
        if value is None:
            return ()
        if not isinstance(value, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 99 for v in value
        ):
            raise reader.error("expected a list of behaviour item numbers, e.g. [16, 33]", "items")
        return tuple(value)

    def _start(self, reader: _Reader) -> datetime:
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

    # --- tables ----------------------------------------------------------------------------

    def _cluster(self, r: _Reader) -> ClusterDef:
        name = r.text("name")
        if not _CLUSTER_NAME.fullmatch(name):
            raise r.error(
                f"{name!r} is not a cluster name: 1 to 30 lower-case letters, digits and '-'",
                "name",
            )
        if name in self.clusters:
            raise r.error(f"a cluster called {name!r} is already defined", "name")
        release = r.text("release", "14.x")
        try:
            release = get_profile(release).name
        except LabError:
            raise r.error(
                f"unknown release {release!r} (known: {', '.join(PROFILES)})", "release"
            ) from None
        tvs_nodes = r.integer("tvs_nodes", 1, low=1, high=_MAX_NODES)
        tftp_nodes = r.integer("tftp_nodes", 1, low=1, high=tvs_nodes)
        mode = r.choice("mode", ("non-secure", "mixed"), "non-secure")
        key_size = r.integer("key_size", 2048, low=1024, high=4096)
        if key_size not in (1024, 2048, 4096):
            raise r.error("key_size is 1024, 2048 or 4096", "key_size")
        r.finish()
        return ClusterDef(
            name, release, tvs_nodes, tftp_nodes, mode == "mixed", key_size, line=r.line()
        )

    def _cluster_ref(self, r: _Reader, key: str = "cluster", default: str | None = None) -> str:
        name = r.text(key, default)
        if name not in self.clusters:
            raise r.error(
                f"no cluster called {name!r} (clusters: {', '.join(self.clusters)})"
                + _suggest(name, self.clusters),
                key,
            )
        return name

    def _group(self, r: _Reader, index: int) -> GroupDef:
        name = r.text("name")
        if not _GROUP_NAME.fullmatch(name):
            raise r.error(f"{name!r} is not a group name: letters, digits, '-' and '_'", "name")
        if name in self.groups:
            raise r.error(f"a group called {name!r} is already defined", "name")
        count = r.integer("count", None, low=1, high=_MAX_PHONES)
        cluster = self._cluster_ref(r)
        model = r.text("model", "8841").upper().removeprefix("CP-")
        if model not in MODELS:
            raise r.error(f"unknown model {model!r} (known: {', '.join(sorted(MODELS))})", "model")
        power = r.choice("power", ("on", "off"), "on")
        configured = r.boolean("configured", True)
        security = r.choice("security_mode", _SECURITY_MODES, "non-secure")
        load = r.text("load", "")
        encrypt = r.boolean("encrypt_config", security == "encrypted")
        r.finish()
        return GroupDef(
            name=name,
            count=count,
            cluster=cluster,
            model=model,
            powered=power == "on",
            configured=configured,
            security_mode=security,
            load=load,
            encrypt_config=encrypt,
            index=index,
            line=r.line(),
        )

    def _group_refs(self, r: _Reader) -> tuple[str, ...]:
        if r.has("group") and r.has("groups"):
            raise r.error("give 'group' or 'groups', not both", "groups")
        key = "group" if r.has("group") else "groups"
        names = r.strings(key)
        if names is None:
            return tuple(self.groups)
        if not names:
            raise r.error("name at least one group", key)
        for name in names:
            if name not in self.groups:
                raise r.error(
                    f"no group called {name!r} (groups: {', '.join(self.groups)})"
                    + _suggest(name, self.groups),
                    key,
                )
        return tuple(dict.fromkeys(names))

    def _node(self, r: _Reader, cluster: str) -> str | None:
        if not r.has("node"):
            return None
        text = r.text("node").strip().lower()
        hosts = self.clusters[cluster].hostnames()
        for host in hosts:
            if text in (host, host.split(".", 1)[0]):
                return host
        raise r.error(f"cluster {cluster} has no node {text!r} (nodes: {', '.join(hosts)})", "node")

    def _step(self, r: _Reader, index: int) -> StepDef:
        action = r.text("do")
        actions = sorted(STEP_KEYS)
        if action not in STEP_KEYS:
            raise r.error(
                f"unknown action {action!r}{_suggest(action, actions)} (actions: "
                f"{', '.join(actions)})",
                "do",
            )
        text = r.text("text", "")
        groups: tuple[str, ...] = ()
        if action in PHONE_ACTIONS:
            groups = self._group_refs(r)
        elif r.has("group") or r.has("groups"):
            key = "group" if r.has("group") else "groups"
            raise r.error(f"{action!r} acts on the lab, not on phone groups", key)
        allowed = {"do", "text", "expect", *STEP_KEYS[action]}
        if action in PHONE_ACTIONS:
            allowed |= {"group", "groups"}
        # Unknown keys first: a misspelt key is a better explanation than the required key it
        # then seems to be missing ("encrypt = true" in a set-device step).
        r.finish(allowed)
        params = self._params(r, action)
        expect_tables = r.table.get("expect", [])
        if not isinstance(expect_tables, list) or not all(
            isinstance(e, dict) for e in expect_tables
        ):
            raise r.error("write [[step.expect]] tables under the step", "expect")
        expects = tuple(
            self._expect(_Reader(self, table, (*r.path, "expect", number)), index)
            for number, table in enumerate(expect_tables)
        )
        return StepDef(index, action, r.line(), groups, params, expects, text)

    def _params(self, r: _Reader, action: str) -> dict[str, str | int | bool]:
        params: dict[str, str | int | bool] = {}
        if "cluster" in STEP_KEYS[action]:
            optional = action in ("export-certs", "import-certs")
            if r.has("cluster") or not optional:
                params["cluster"] = self._cluster_ref(r)
        cluster = str(params.get("cluster", ""))
        match action:
            case "move":
                pass
            case "upgrade-firmware":
                params["load"] = r.text("load")
            case "set-device":
                params.update(self._device_settings(r))
            case "capf":
                params.update(self._capf(r))
            case "tamper":
                params["file"] = r.text("file")
                params["fault"] = r.choice("fault", _FAULTS, "tamper")
                if params["fault"] == "replace":
                    params["data"] = r.text("data")
                elif r.has("data"):
                    raise r.error("'data' goes with fault = \"replace\" only", "data")
            case "set-param":
                name = r.choice("name", PARAMETERS)
                value = r.raw("value")
                if value is None:
                    raise r.error("set-param needs 'value'", "value")
                if isinstance(value, bool):
                    value = "true" if value else "false"
                if not isinstance(value, str | int):
                    raise r.error(
                        f"expected text, a number or true/false, got {_type(value)}", "value"
                    )
                try:
                    parse_parameter(name, str(value), get_profile(self.clusters[cluster].release))
                except LabError as exc:
                    raise r.error(str(exc), "value") from None
                params["name"] = name
                params["value"] = str(value)
            case "regenerate":
                cert = r.choice("cert", CERT_KINDS)
                params["cert"] = cert
                node = self._node(r, cluster)
                if node is not None:
                    if (
                        cert in ("itlrecovery", "capf")
                        and node != self.clusters[cluster].hostnames()[0]
                    ):
                        raise r.error(
                            f"the {cert} certificate belongs to the publisher "
                            f"({self.clusters[cluster].hostnames()[0]})",
                            "node",
                        )
                    params["node"] = node
                self.regenerated.add((cluster, cert))
            case "export-certs" | "import-certs":
                params["password"] = r.text("password", "scenario")
                if action == "export-certs":
                    self.exported = True
                elif not self.exported:
                    raise r.error("import-certs needs an earlier export-certs step")
            case "itl-reset":
                mode = r.choice("mode", ("localkey", "remotekey"))
                params["mode"] = mode
                if mode == "remotekey":
                    params["key"] = r.choice(
                        "key", ("previous-itlrecovery",), "previous-itlrecovery"
                    )
                    if (cluster, "itlrecovery") not in self.regenerated:
                        raise r.error(
                            "remotekey with the previous ITLRecovery key needs an earlier "
                            f"'regenerate' of {cluster}'s itlrecovery",
                            "mode",
                        )
                elif r.has("key"):
                    raise r.error("localkey uses the cluster's own keys: drop 'key'", "key")
            case "restart-tftp" | "stop-node" | "start-node":
                node = self._node(r, cluster)
                if node is not None:
                    params["node"] = node
            case "set-mode":
                params["mode"] = r.choice("mode", ("mixed", "non-secure"))
            case "wait":
                total = 0
                for key, unit in (
                    ("seconds", 1),
                    ("minutes", 60),
                    ("hours", 3600),
                    ("days", 86400),
                ):
                    total += unit * r.integer(key, 0, low=0, high=10 * 365 * 86400)
                if total <= 0:
                    raise r.error("wait needs seconds, minutes, hours or days")
                params["seconds"] = total
        return params

    def _device_settings(self, r: _Reader) -> dict[str, str | int | bool]:
        """The ``set-device`` keys given, checked as the device record would check them."""
        settings: dict[str, str | int | bool] = {}
        for key in DEVICE_SETTINGS:
            if not r.has(key):
                continue
            if key in _DEVICE_FLAGS:
                settings[key] = r.boolean(key, False)
            elif key == "security_mode":
                settings[key] = r.choice(key, _SECURITY_MODES)
            else:
                value = r.text(key)
                # Device records refuse these (phone.cluster.records.Device); say so here, with
                # the line, rather than when the step runs.
                if value != value.strip() or not value.isprintable():
                    raise r.error("must be printable text without surrounding spaces", key)
                settings[key] = value
        if not settings:
            raise r.error(f"set-device needs at least one of {', '.join(DEVICE_SETTINGS)}")
        return settings

    def _capf(self, r: _Reader) -> dict[str, str | int | bool]:
        """A ``capf`` step: the pending operation (validated as CAPF would) and the typed string.

        ``operation = "none"`` cancels a pending operation and takes no ``auth``.
        """
        params: dict[str, str | int | bool] = {}
        operation = r.choice("operation", (*_OPERATIONS, "none"))
        params["operation"] = operation
        if r.has("capf_string"):
            typed = r.text("capf_string")
            if not _CAPF_STRING.fullmatch(typed):
                raise r.error(
                    f"{typed!r} cannot be typed on a phone's keypad for CAPF: digits only",
                    "capf_string",
                )
            params["capf_string"] = typed
        if operation == "none":
            for key in ("auth", "key_type"):
                if r.has(key):
                    raise r.error(
                        f'operation "none" cancels the pending operation: drop {key!r}', key
                    )
            return params
        auth_text = r.text("auth")
        try:
            auth, secret = CapfAuth.parse(auth_text)
        except LabError as exc:
            raise r.error(str(exc), "auth") from None
        key_type = CapfKeyType.RSA_2048
        if r.has("key_type"):
            if operation not in (CapfOperation.INSTALL, CapfOperation.UPGRADE):
                raise r.error(
                    f"{operation} generates no key: 'key_type' goes with install or upgrade",
                    "key_type",
                )
            try:
                key_type = CapfKeyType.parse(r.text("key_type"))
            except LabError as exc:
                raise r.error(str(exc), "key_type") from None
            params["key_type"] = key_type.value
        try:
            # The checks CUCM makes when the operation is saved (a 4-10 digit string ...).
            CapfPending(CapfOperation(operation), auth, secret, key_type)
        except LabError as exc:
            raise r.error(str(exc), "auth") from None
        params["auth"] = auth.value if secret is None else f"{auth.value}:{secret}"
        return params

    def _expect(self, r: _Reader, step: int) -> ExpectDef:
        text = r.text("text", "")
        if r.has("cluster"):
            if r.has("group") or r.has("groups"):
                raise r.error(
                    "an expectation is about a cluster or about groups, not both", "cluster"
                )
            cluster = self._cluster_ref(r)
            checks: list[ClusterCheck] = []
            for key in [k for k in r.table if k in CLUSTER_CHECKS]:
                value = r.raw(key)
                if key == "itl_mismatches":
                    try:
                        quantity = parse_quantity(value, phones=False)
                    except ValueError as exc:
                        raise r.error(str(exc), key) from None
                    checks.append(ClusterCheck(key, quantity=quantity, line=r.line(key)))
                else:
                    checks.append(ClusterCheck(key, text=r.text(key), line=r.line(key)))
            r.finish({"cluster", "text", *CLUSTER_CHECKS})
            if not checks:
                raise r.error(
                    f"a cluster expectation needs one of {', '.join(CLUSTER_CHECKS)}", "cluster"
                )
            return ExpectDef(
                r.line(), cluster=cluster, cluster_checks=tuple(checks), step=step, text=text
            )
        groups = self._group_refs(r)
        count = Quantity()
        if r.has("count"):
            try:
                count = parse_quantity(r.raw("count"))
            except ValueError as exc:
                raise r.error(str(exc), "count") from None
        # In the order written: a report lists the checks as the author did.
        phone_checks = [self._check(r, key) for key in r.table if key in PHONE_CHECKS]
        r.finish({"group", "groups", "count", "text", *PHONE_CHECKS})
        if not phone_checks:
            raise r.error(
                "an expectation needs at least one check ("
                + ", ".join(PHONE_CHECKS)
                + ") or a cluster"
            )
        return ExpectDef(
            r.line(), groups=groups, count=count, checks=tuple(phone_checks), step=step, text=text
        )

    def _check(self, r: _Reader, key: str) -> Check:
        line = r.line(key)
        if key in _BOOL_CHECKS:
            return Check(key, r.boolean(key, False), line)
        if key == "state":
            return Check(key, r.choice(key, _STATES), line)
        if key == "itl_status":
            return Check(key, r.choice(key, ("match", "mismatch", "none")), line)
        if key == "registered_over":
            return Check(key, r.choice(key, ("tls", "tcp")), line)
        if key == "capf_pending":
            return Check(key, r.choice(key, (*_OPERATIONS, "none")), line)
        if key == "capf_result":
            return Check(key, self._capf_result(r), line)
        if key in ("registered_with", "itl_matches"):
            name = r.text(key)
            if not (key == "registered_with" and name == "none"):
                self._cluster_ref(r, key)
            return Check(key, name, line)
        if key == "itl_signer":
            return Check(key, self._signer(r), line)
        if key in _LAST_CHECKS:
            values = r.strings(key) or ()
            if not values:
                raise r.error("name at least one verdict", key)
            for value in values:
                verdict = value.split(" by ", 1)[0].strip()
                if verdict not in _VERDICTS:
                    raise r.error(
                        f"{verdict!r} is not a verdict ({', '.join(_VERDICTS)}), "
                        "optionally followed by 'by RULE' (e.g. 'accepted by item 16')"
                        + _suggest(verdict, _VERDICTS),
                        key,
                    )
            return Check(key, values if len(values) > 1 else values[0], line)
        return Check(key, r.text(key), line)

    def _capf_result(self, r: _Reader) -> str:
        """``none``, ``succeeded``, ``failed`` or ``OPERATION succeeded|failed``."""
        value = " ".join(r.text("capf_result").lower().split())
        outcomes = ("succeeded", "failed")
        accepted = ["none", *outcomes, *(f"{o} {w}" for o in _OPERATIONS for w in outcomes)]
        if value not in accepted:
            raise r.error(
                f"{value!r} is not a CAPF outcome: none, succeeded, failed, or an operation "
                f"and an outcome ('install succeeded'){_suggest(value, accepted)}",
                "capf_result",
            )
        return value

    def _signer(self, r: _Reader) -> str:
        value = r.text("itl_signer")
        if ":" not in value:
            return value
        parts = value.split(":")
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "previous"):
            raise r.error(
                "write CLUSTER:CERT or CLUSTER:CERT:previous (e.g. 'new:itlrecovery')",
                "itl_signer",
            )
        if parts[0] not in self.clusters:
            raise r.error(
                f"no cluster called {parts[0]!r}{_suggest(parts[0], self.clusters)}", "itl_signer"
            )
        if parts[1] not in CERT_KINDS:
            raise r.error(
                f"{parts[1]!r} is not a certificate ({', '.join(CERT_KINDS)})"
                + _suggest(parts[1], CERT_KINDS),
                "itl_signer",
            )
        return value


def parse_scenario(text: str, *, path: str = "scenario.toml") -> Scenario:
    """Parse and validate a scenario file's text; ``path`` is how errors name the file.

    Raises:
        ScenarioError: malformed TOML or an invalid scenario, naming the line and the key.
    """
    return _Parser(text, path).parse()
