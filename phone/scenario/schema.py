"""What a scenario file may say: the actions and their keys, the checks, the certificate names.

One place for the vocabulary, so that the parser (:mod:`phone.scenario.parse` and the section
parsers it uses), the runner (which maps certificate names to the lab's) and the documentation
(``docs/scenarios.md``) agree. Also the one value syntax of scenarios' own, a count of phones
(:func:`parse_quantity`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from phone.cluster.capf import CapfOperation
from phone.device.machine import State
from phone.net.faults import FaultKind
from phone.scenario.model import LAB_ACTIONS, PHONE_ACTIONS, Quantity, QuantityKind
from phone.trust.decision import Verdict

__all__ = [
    "BOOL_CHECKS",
    "CAPF_STRING",
    "CERT_KINDS",
    "CLUSTER_CHECKS",
    "DEVICE_FLAGS",
    "DEVICE_SETTINGS",
    "FAULTS",
    "LAST_CHECKS",
    "OPERATIONS",
    "PHONE_CHECKS",
    "SECURITY_MODES",
    "STATES",
    "STEP_KEYS",
    "VERDICTS",
    "parse_quantity",
]

CERT_KINDS = {
    "callmanager": "CallManager",
    "tvs": "TVS",
    "itlrecovery": "ITLRecovery",
    "capf": "CAPF",
    "tomcat": "Tomcat",
}
"""Certificate names a ``regenerate`` step and an ``itl_signer`` check accept."""

# --- expectations --------------------------------------------------------------------------------

VERDICTS = tuple(v.value for v in Verdict)
STATES = tuple(s.value for s in State)

PHONE_CHECKS: Mapping[str, str] = {
    "state": "the phone's state: " + ", ".join(STATES),
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

BOOL_CHECKS = frozenset({"has_itl", "has_ctl", "itl_empty", "itl_matches_cluster", "lsc"})
LAST_CHECKS = frozenset(
    {"last_ctl", "last_itl", "last_config", "last_image", "last_register", "last_capf"}
)
OPERATIONS = tuple(o.value for o in CapfOperation)
SECURITY_MODES = ("non-secure", "authenticated", "encrypted")


# --- step schemas --------------------------------------------------------------------------------

FAULTS = tuple(k.value for k in FaultKind)

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

DEVICE_FLAGS = frozenset({"encrypt_config", "digest_auth", "exclude_digest_credentials"})
CAPF_STRING = re.compile(r"[0-9]{1,32}")  # what a phone's keypad lets a person type

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


# --- counts --------------------------------------------------------------------------------------


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
