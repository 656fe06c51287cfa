"""The steps of a scenario: ``[[step]]`` tables, each an action and the keys it takes.

Each action's keys are checked as the lab would check them when the step runs (a parameter
value against the cluster's release, a CAPF authentication string as CUCM checks it when the
operation is saved), so that a mistake names its line at load time. Some steps depend on
earlier ones (``import-certs`` on an ``export-certs``, ``itl-reset remotekey`` on a
``regenerate`` of the ITLRecovery certificate): :class:`StepParser` remembers them, in file
order.
"""

from __future__ import annotations

from phone.cluster.capf import CapfAuth, CapfKeyType, CapfOperation, CapfPending
from phone.cluster.profiles import get_profile
from phone.cluster.records import PARAMETERS, parse_parameter
from phone.errors import LabError
from phone.scenario.model import PHONE_ACTIONS, StepDef
from phone.scenario.parse_expects import ExpectParser
from phone.scenario.parse_tables import Definitions
from phone.scenario.schema import (
    CAPF_STRING,
    CERT_KINDS,
    DEVICE_FLAGS,
    DEVICE_SETTINGS,
    FAULTS,
    OPERATIONS,
    SECURITY_MODES,
    STEP_KEYS,
)
from phone.scenario.toml_reader import Reader, suggest, type_name

__all__ = ["StepParser"]


class StepParser:
    """Parses ``[[step]]`` tables in file order, against the clusters and groups defined."""

    def __init__(self, defs: Definitions, expects: ExpectParser) -> None:
        self.defs = defs
        self.expects = expects
        self.exported = False
        self.regenerated: set[tuple[str, str]] = set()

    def step(self, r: Reader, index: int) -> StepDef:
        """The ``index``-th ``[[step]]`` table (1-based), with its expectations."""
        action = r.text("do")
        actions = sorted(STEP_KEYS)
        if action not in STEP_KEYS:
            raise r.error(
                f"unknown action {action!r}{suggest(action, actions)} (actions: "
                f"{', '.join(actions)})",
                "do",
            )
        text = r.text("text", "")
        groups: tuple[str, ...] = ()
        if action in PHONE_ACTIONS:
            groups = self.defs.group_refs(r)
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
            self.expects.expect(Reader(r.source, table, (*r.path, "expect", number)), index)
            for number, table in enumerate(expect_tables)
        )
        return StepDef(index, action, r.line(), groups, params, expects, text)

    def _params(self, r: Reader, action: str) -> dict[str, str | int | bool]:
        params: dict[str, str | int | bool] = {}
        if "cluster" in STEP_KEYS[action]:
            optional = action in ("export-certs", "import-certs")
            if r.has("cluster") or not optional:
                params["cluster"] = self.defs.cluster_ref(r)
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
                params["fault"] = r.choice("fault", FAULTS, "tamper")
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
                        f"expected text, a number or true/false, got {type_name(value)}", "value"
                    )
                try:
                    parse_parameter(
                        name, str(value), get_profile(self.defs.clusters[cluster].release)
                    )
                except LabError as exc:
                    raise r.error(str(exc), "value") from None
                params["name"] = name
                params["value"] = str(value)
            case "regenerate":
                cert = r.choice("cert", CERT_KINDS)
                params["cert"] = cert
                node = self.defs.node(r, cluster)
                if node is not None:
                    if (
                        cert in ("itlrecovery", "capf")
                        and node != self.defs.clusters[cluster].hostnames()[0]
                    ):
                        raise r.error(
                            f"the {cert} certificate belongs to the publisher "
                            f"({self.defs.clusters[cluster].hostnames()[0]})",
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
                node = self.defs.node(r, cluster)
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

    def _device_settings(self, r: Reader) -> dict[str, str | int | bool]:
        """The ``set-device`` keys given, checked as the device record would check them."""
        settings: dict[str, str | int | bool] = {}
        for key in DEVICE_SETTINGS:
            if not r.has(key):
                continue
            if key in DEVICE_FLAGS:
                settings[key] = r.boolean(key, False)
            elif key == "security_mode":
                settings[key] = r.choice(key, SECURITY_MODES)
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

    def _capf(self, r: Reader) -> dict[str, str | int | bool]:
        """A ``capf`` step: the pending operation (validated as CAPF would) and the typed string.

        ``operation = "none"`` cancels a pending operation and takes no ``auth``.
        """
        params: dict[str, str | int | bool] = {}
        operation = r.choice("operation", (*OPERATIONS, "none"))
        params["operation"] = operation
        if r.has("capf_string"):
            typed = r.text("capf_string")
            if not CAPF_STRING.fullmatch(typed):
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
