"""The virtual phone: the state machine of ``machine.py`` driving the pure trust rules.

Each state has one step method here. A step does the I/O of its state through the backend and
the flash, asks the pure rules in ``phone.trust`` what to make of the bytes, records the
decision in the trace (and the status log where a real phone shows a message), and returns the
trigger that ``machine.TRANSITIONS`` turns into the next state.

Nothing a step downloads reaches the flash before a rule has accepted it (item 13).
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from phone.catalog.loads import CATALOGUE, build_image, image_filename
from phone.catalog.models import DEFAULT_MODEL, Model, get_model
from phone.device import flash as names
from phone.device.capf import CapfClient, CapfServerTrust, ec_keys_allowed, pending_auth
from phone.device.flash import Flash, MemoryFlash
from phone.device.machine import TERMINAL, MachineMisuse, State, fire
from phone.device.port import Backend, ItlReport, RegisterRequest, Requester
from phone.errors import (
    FileNotFoundOnServer,
    FormatError,
    NetworkError,
    TransferTimeout,
    UsageError,
    VphoneError,
)
from phone.formats.configxml import DeviceConfig, parse_config
from phone.formats.signed import md5_hex
from phone.formats.trustlist import Role, TrustList
from phone.mac import normalize_mac
from phone.pki import (
    FreshKeys,
    Identity,
    KeySource,
    cert_from_pem,
    cert_to_pem,
    issue,
    key_from_pem,
    key_to_pem,
)
from phone.trust.config import ConfigOutcome, config_names, default_config_names, evaluate_config
from phone.trust.decision import Decision, Status, Verdict
from phone.trust.images import evaluate_image
from phone.trust.lists import ListKind, ListOutcome, evaluate_trust_list, parse_shared
from phone.trust.tvs import TlsRefused, TvsAnswer, TvsClient, TvsOutcome, TvsServer
from phone.vendor import manufacturing_ca
from phone.wire.capf import AuthType

STATUS_LOG_SIZE = 30  # item 47: the last ~30 status messages
_MAX_STEPS = 64  # a boot that takes more steps than this is looping: a bug, not a phone

Clock = Callable[[], datetime]


@functools.lru_cache(maxsize=64)
def _sha1_hex(data: bytes) -> str:
    # Every registration reports the ITL hash (item 30), and a fleet's phones hold the very
    # same few ITL byte strings: hash each of them once (a pure function of the bytes).
    return hashlib.sha1(data).hexdigest()


def utc_now() -> datetime:
    """The wall clock, read only at the edge (the CLI and default phones)."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class TraceEntry:
    """One step of a phone's life: what was fetched from where, which rule decided, and why."""

    step: str  # "boot", "ctl", "itl", "config", "image", "register", "erase", "tvs"
    decision: str  # a Verdict value: accepted, rejected, unchanged, not-found, timeout, ...
    rule: str
    reason: str
    file: str | None = None
    server: str | None = None
    at: datetime | None = None

    def as_dict(self) -> dict[str, str | None]:
        """The JSON form (``vphone boot --json``)."""
        return {
            "step": self.step,
            "file": self.file,
            "server": self.server,
            "decision": self.decision,
            "rule": self.rule,
            "reason": self.reason,
            "at": self.at.isoformat() if self.at else None,
        }


@dataclass(frozen=True, slots=True)
class StateChanged:
    """The phone moved from ``old`` to ``new`` on ``trigger``."""

    old: State
    new: State
    trigger: str


PhoneEvent = TraceEntry | StateChanged
EventHook = Callable[[PhoneEvent], None]


@dataclass
class _Volatile:
    """What every reboot forgets (item 23), upgrade reboots included."""

    tvs: TvsClient = field(default_factory=TvsClient)
    wants_encrypted: bool = False


@dataclass
class _Cycle:
    """Counters of one boot cycle started by power-on or reset; an upgrade reboot keeps them,
    so a load refused once is not fetched again in the same cycle."""

    ctl_attempts: int = 0
    failed_loads: set[str] = field(default_factory=set)
    capf_attempted: bool = False  # one CAPF session per cycle, whatever its outcome


class VirtualPhone:
    """An emulated Cisco IP phone.

    Args:
        mac: the phone's MAC address (12 hex digits; separators are removed).
        backend: the network the phone talks to (see :mod:`phone.net`).
        tftp: the TFTP server host the phone's option 150 points to.
        model: a model number from :data:`phone.catalog.models.MODELS`.
        flash: the phone's storage; in memory when omitted.
        clock: returns the current UTC time; tests pass a fixed clock.
        keys: where the phone's RSA keys for CAPF come from (tests pass pooled keys).

    ``capf_string`` is the authentication string typed on the phone's keypad for a CAPF
    operation "by authentication string" (docs/capf.md); None when nobody typed one.
    """

    def __init__(
        self,
        *,
        mac: str,
        backend: Backend,
        tftp: str,
        model: str = DEFAULT_MODEL,
        flash: Flash | None = None,
        clock: Clock = utc_now,
        keys: KeySource | None = None,
    ) -> None:
        self.mac = normalize_mac(mac)
        self.model: Model = get_model(model)
        self.backend = backend
        self.flash: Flash = flash if flash is not None else MemoryFlash()
        self.clock = clock
        self.state = State.OFF
        self.tftp = tftp
        self._status: deque[str] = deque(maxlen=STATUS_LOG_SIZE)
        self.trace: list[TraceEntry] = []
        self._hooks: list[EventHook] = []
        self._volatile = _Volatile()
        self._cycle = _Cycle()
        self.ctl: TrustList | None = None
        self.itl: TrustList | None = None
        self.config: DeviceConfig | None = None
        self._parsed_config: tuple[bytes, DeviceConfig] | None = None
        self.registered_with: str | None = None
        self._settings: dict[str, object] = self._load_settings()
        self.keys: KeySource = keys if keys is not None else FreshKeys()
        self.capf_string: str | None = None
        self._capf_announced: DeviceConfig | None = None
        self._lsc_cache: tuple[bytes, bytes, Identity | None] | None = None

    # --- public API ----------------------------------------------------------------------

    @property
    def status(self) -> list[str]:
        """The status-message log, oldest first (at most 30, item 47)."""
        return list(self._status)

    @property
    def running_load(self) -> str:
        """The firmware load the phone runs."""
        return str(self._settings["load"])

    @property
    def requester(self) -> Requester:
        """How the phone identifies itself to servers."""
        return Requester(mac=self.mac, model=self.model.name)

    def subscribe(self, hook: EventHook) -> None:
        """Call ``hook`` with every trace entry and state change, as they happen."""
        self._hooks.append(hook)

    def boot(self) -> State:
        """Power on (or reset a running phone) and run until the boot ends; return the state."""
        if self.state is State.OFF:
            return self.power_on()
        return self.reset()

    def power_on(self) -> State:
        """Power on a phone that is off and run the boot."""
        if self.state is not State.OFF:
            raise UsageError("the phone is already on; use reset()")
        self._cycle = _Cycle()
        self._fire("power_on")
        return self._run()

    def reset(self) -> State:
        """Restart a running phone (item 3: trust lists are fetched again)."""
        if self.state is State.OFF:
            raise UsageError("the phone is off; use power_on()")
        self._cycle = _Cycle()
        self._fire("reset")
        return self._run()

    def power_off(self) -> None:
        """Cut power: volatile memory (the TVS cache, item 23) is lost, flash is kept."""
        if self.state is not State.OFF:
            self._fire("power_off")
        self._volatile = _Volatile()

    def erase_trust(self) -> None:
        """Security settings reset: erase the CTL and the ITL (item 46)."""
        self.flash.delete(names.CTL)
        self.flash.delete(names.ITL)
        self.ctl = self.itl = None
        self._settings.pop("itl_applied_at", None)
        self._save_settings()
        self._say(Status.ERASING_TRUST)
        self._record("erase", Verdict.ACCEPTED, "item 46", f"erased via {self.model.erase_path}")

    def factory_reset(self) -> None:
        """Erase everything but the resident image and the MIC (item 46)."""
        keep = {names.IMAGE, names.MIC_CERT, names.MIC_KEY}
        for name in self.flash.names():
            if name not in keep:
                self.flash.delete(name)
        self.ctl = self.itl = None
        self.config = None
        self._settings = self._load_settings()
        self._record("erase", Verdict.ACCEPTED, "item 46", "factory reset")

    def itl_hash(self) -> str | None:
        """Lowercase hex SHA-1 of the installed ITL (item 31: what the phone shows)."""
        data = self.flash.read(names.ITL)
        return _sha1_hex(data) if data is not None else None

    def identity(self) -> Identity:
        """The certificate the phone presents in TLS: its LSC when it has one, else its MIC."""
        lsc = self.lsc()
        return lsc if lsc is not None else self.mic()

    def lsc(self) -> Identity | None:
        """The locally significant certificate CAPF issued, or None (docs/capf.md)."""
        blob = self.flash.read(names.LSC_CERT)
        if blob is None:
            return None
        # lsc.pem holds the certificate and its key (one atomic write, :meth:`_store_lsc`); a
        # separate lsc.key is read for flash written before that.
        key_pem = blob if b"PRIVATE KEY-----" in blob else self.flash.read(names.LSC_KEY)
        if key_pem is None:
            return None
        # Loading an RSA key checks it (about 50 ms): remember the last one loaded.
        cached = self._lsc_cache
        if cached is not None and cached[0] == blob and cached[1] == key_pem:
            return cached[2]
        try:
            found: Identity | None = Identity(cert_from_pem(blob), key_from_pem(key_pem, None))
        except VphoneError:
            found = None  # damaged from outside vphone: the phone falls back to its MIC
        self._lsc_cache = (blob, key_pem, found)
        return found

    def mic(self) -> Identity:
        """The manufacturer-installed certificate, created on first use and kept on flash.

        Real MICs are RSA; these are P-256 because a fleet of 10,000 phones must be creatable in
        seconds. Encrypted configs need an RSA key, so they are encrypted to the (RSA) LSC that
        CAPF issues instead (docs/capf.md, "Decision").
        """
        existing = self._load_identity(names.MIC_CERT, names.MIC_KEY)
        if existing is not None:
            return existing
        key = ec.generate_private_key(ec.SECP256R1())
        certificate = issue(
            manufacturing_ca(self.model.family),
            f"{self.model.device_prefix}-SEP{self.mac}",
            key.public_key(),
            now=self.clock(),
            days=365 * 20,
        )
        self.flash.write(names.MIC_KEY, key_to_pem(key, None, allow_unencrypted=True))
        self.flash.write(names.MIC_CERT, cert_to_pem(certificate))
        return Identity(certificate, key)

    # --- the machine ---------------------------------------------------------------------

    def _fire(self, trigger: str) -> None:
        old = self.state
        new = fire(self, trigger)
        self._emit(StateChanged(old, new, trigger))

    def _run(self) -> State:
        steps: dict[State, Callable[[], str]] = {
            State.BOOTING: self._step_boot,
            State.TRUST_LISTS: self._step_trust_lists,
            State.CONFIGURING: self._step_configure,
            State.UPGRADING: self._step_upgrade,
            State.CAPF: self._step_capf,
            State.REGISTERING: self._step_register,
        }
        for _ in range(_MAX_STEPS):
            if self.state in TERMINAL:
                return self.state
            self._fire(steps[self.state]())
        raise MachineMisuse(f"boot did not settle after {_MAX_STEPS} steps (last: {self.state})")

    # --- steps ---------------------------------------------------------------------------

    def _step_boot(self) -> str:
        # A reboot clears volatile memory (item 23); the boot-cycle counters stay.
        self._volatile = _Volatile()
        self.registered_with = None
        self.ctl = self._stored_list(names.CTL)
        self.itl = self._stored_list(names.ITL)
        self.config = self._stored_config()
        self._record(
            "boot",
            Verdict.ACCEPTED,
            "item 1",
            f"{self.model.device_prefix} running {self.running_load}; TFTP server {self.tftp}",
        )
        return "image_ok"

    def _step_trust_lists(self) -> str:
        # Item 2: per-MAC names first, then the cluster-wide file; both stored under the
        # cluster-wide name. Item 3: fetched again on every boot.
        ctl_outcome = self._fetch_list(ListKind.CTL, (f"CTLSEP{self.mac}.tlv", "CTLFile.tlv"))
        itl_outcome: ListOutcome | None = None
        if self.model.security_by_default:
            itl_outcome = self._fetch_list(ListKind.ITL, (f"ITLSEP{self.mac}.tlv", "ITLFile.tlv"))
        else:
            # Seed, Autoregistration: phones that do not support Security by Default know no
            # ITL (they still take a CTL, which predates 8.0).
            self._record(
                "itl",
                Verdict.SKIPPED,
                "seed",
                f"CP-{self.model.name} predates Security by Default: it does not use an ITL",
            )
        if self.ctl is None and self.itl is None:
            self._say(Status.NO_TRUST_LIST)
        if (ctl_outcome and ctl_outcome.fatal) or (itl_outcome and itl_outcome.fatal):
            return "trust_fatal"
        return "trust_done"

    def _fetch_list(self, kind: ListKind, candidates: tuple[str, ...]) -> ListOutcome | None:
        step = kind.value.lower()
        for index, name in enumerate(candidates):
            data = self._fetch(step, name, quiet_not_found=index < len(candidates) - 1)
            if data is None:
                continue
            outcome = evaluate_trust_list(
                data,
                name=name,
                kind=kind,
                installed_ctl=self.ctl,
                installed_itl=self.itl,
                tvs=self._ask_tvs,
            )
            self._decide(step, outcome.decision, name)
            if outcome.decision.verdict is Verdict.ACCEPTED and outcome.trust_list is not None:
                self._install(kind, outcome.trust_list, data)
            return outcome
        return None

    def _install(self, kind: ListKind, trust_list: TrustList, data: bytes) -> None:
        if kind is ListKind.CTL:
            self.flash.write(names.CTL, data)
            self.ctl = trust_list
        else:
            self.flash.write(names.ITL, data)
            self.itl = trust_list
            self._settings["itl_applied_at"] = int(self.clock().timestamp())
            self._save_settings()

    def _step_configure(self) -> str:
        outcome = self._fetch_config(
            config_names(
                self.mac, ctl=self.ctl, itl=self.itl, encrypted=self._volatile.wants_encrypted
            )
        )
        if outcome is None:
            # Item 6: a device the cluster does not know falls back to the default config.
            outcome = self._fetch_config(default_config_names(ctl=self.ctl, itl=self.itl))
        config = self._accept_config(outcome)
        stub: DeviceConfig | None = None
        if config is not None and config.encrypted_config and not config.full_config:
            # The plain .sgn of an encrypted device is a stub (trust-file-formats.md section 8):
            # ask for the encrypted file.
            stub = config
            self._volatile.wants_encrypted = True
            outcome = self._fetch_config(
                config_names(self.mac, ctl=self.ctl, itl=self.itl, encrypted=True)
            )
            config = self._accept_config(outcome)
            if config is None:
                self._encrypted_config_unreadable(stub)
        if config is not None:
            self.config = config  # before CAPF: its TVS members may be asked about the server
        announced = config if config is not None else stub
        if pending_auth(announced) is not None and not self._cycle.capf_attempted:
            # The config (or the stub, which carries capfAuthMode and capfList for exactly
            # this) announces a certificate operation: CAPF comes first (docs/capf.md).
            self._capf_announced = announced
            return "capf_pending"
        if config is None:
            if self.config is None:
                self._record(
                    "config",
                    Verdict.FAILED,
                    "item 14",
                    "no configuration accepted and none kept from before: the phone cannot "
                    "register",
                )
                return "config_failed"
            self._record(
                "config",
                Verdict.SKIPPED,
                "item 14",
                "keeping the last good configuration; changed settings are ignored",
            )
        self._fetch_static_files()
        return self._after_config()

    def _fetch_static_files(self) -> None:
        """Item 8: other signed TFTP files (here the ring list) are verified like the config.

        The seed has the TFTP server sign static files such as the ring list in mixed mode, so
        a phone holding a CTL asks for ``RingList.xml.sgn`` [G: which static files a phone
        fetches without a CTL is not documented; it fetches none here]. A rejected or missing
        file is not fatal: the phone keeps the ring list it had (item 13's rule for lists).
        """
        if self.ctl is None:
            return
        name = "RingList.xml.sgn"
        data = self._fetch("ringlist", name, quiet_not_found=True)
        if data is None:
            return
        outcome = evaluate_config(
            data, name=name, ctl=self.ctl, itl=self.itl, tvs=self._ask_tvs, what="file"
        )
        self._decide("ringlist", outcome.decision, name)
        xml = outcome.xml
        if (
            outcome.decision.accepted
            and xml is not None
            and xml != self.flash.read(names.RING_LIST)
        ):
            self.flash.write(names.RING_LIST, xml)

    def _encrypted_config_unreadable(self, stub: DeviceConfig) -> None:
        # Section 8: the stub's certHash is the MD5 of the certificate the config is encrypted
        # to; say which one, and which this phone holds, so the fix is obvious.
        lsc = self.lsc()
        mine = None if lsc is None else md5_hex(lsc.certificate.public_bytes(Encoding.DER))
        if stub.cert_hash is None:
            why = "to no certificate: CAPF knows none for this phone"
        elif mine is not None and mine != stub.cert_hash.lower():
            why = f"to the certificate with MD5 {stub.cert_hash}, not to this phone's LSC"
        else:
            why = f"to the certificate with MD5 {stub.cert_hash}"
        holds = "this phone has no LSC" if mine is None else f"its LSC has MD5 {mine}"
        self._record(
            "config",
            Verdict.FAILED,
            "item 14",
            f"the configuration is encrypted (encrConfig) {why} ({holds}): the phone cannot "
            "read its configuration (enroll an LSC through CAPF)",
        )

    def _after_config(self) -> str:
        assert self.config is not None
        wanted = self.config.load_information
        if wanted and wanted != self.running_load and wanted not in self._cycle.failed_loads:
            return "load_differs"
        return "config_ok"

    def _fetch_config(self, candidates: Iterable[str]) -> ConfigOutcome | None:
        for name in candidates:
            data = self._fetch("config", name)
            if data is None:
                continue
            outcome = evaluate_config(
                data,
                name=name,
                ctl=self.ctl,
                itl=self.itl,
                tvs=self._ask_tvs,
                private_key=self._decryption_key(),
            )
            self._decide("config", outcome.decision, name)
            return outcome
        return None

    def _accept_config(self, outcome: ConfigOutcome | None) -> DeviceConfig | None:
        if outcome is None or not outcome.decision.accepted or outcome.xml is None:
            return None
        try:
            config = self._parse_config(outcome.xml)
        except FormatError as exc:
            self._record("config", Verdict.REJECTED, "item 14", f"config XML is malformed: {exc}")
            return None
        if config.full_config and outcome.xml != self.flash.read(names.CONFIG):
            # The stub of an encrypted config is not a configuration to keep: the last good
            # one stays on flash until the real one is read (item 14). An unchanged config is
            # not written again.
            self.flash.write(names.CONFIG, outcome.xml)
        return config

    def _parse_config(self, xml: bytes) -> DeviceConfig:
        """Parse a config, reusing the last parse when the bytes are the same (most boots)."""
        if self._parsed_config is not None and xml == self._parsed_config[0]:
            return self._parsed_config[1]
        config = parse_config(xml)
        self._parsed_config = (xml, config)
        return config

    def _step_upgrade(self) -> str:
        assert self.config is not None
        wanted = self.config.load_information
        name = image_filename(wanted)
        self._say(Status.UPGRADE_IN_PROGRESS)
        data = self._fetch("image", name)
        if data is None:
            self._cycle.failed_loads.add(wanted)
            self._say(Status.UPGRADE_FAILED)
            return "upgrade_failed"
        decision = evaluate_image(
            data,
            requested=wanted,
            model_family=self.model.family,
            image_format=self.model.image_format,
            known_key_ids=self.known_image_keys,
        )
        verdict = Verdict.ACCEPTED if decision.accepted else Verdict.REJECTED
        self._record("image", verdict, decision.rule, decision.reason, file=name)
        if decision.status:
            self._say(decision.status)
        if not decision.accepted or decision.load is None:
            # Item 37: keep booting the resident image.
            self._cycle.failed_loads.add(wanted)
            self._say(Status.UPGRADE_FAILED)
            return "upgrade_failed"
        self.flash.write(names.IMAGE, data)
        self._settings["load"] = decision.load.name
        self._settings["known_image_keys"] = list(decision.load.known_key_ids)
        self._save_settings()
        return "upgraded"

    def _step_capf(self) -> str:
        self._cycle.capf_attempted = True
        # Whatever happens, the config is read again from its stub: CAPF changed capfAuthMode
        # and, after an install or delete, the certificate the config is encrypted to.
        self._volatile.wants_encrypted = False
        announced = self._capf_announced
        auth = pending_auth(announced)
        assert announced is not None and announced.capf_host is not None and auth is not None
        where = f"{announced.capf_host}:{announced.capf_port}"
        if auth is AuthType.PASSWORD and not self.capf_string:
            self._record(
                "capf",
                Verdict.FAILED,
                "seed",
                f"CAPF {where} has an operation that needs the authentication string, and none "
                "was entered on the phone",
                server=announced.capf_host,
            )
            return "capf_failed"
        trust = CapfServerTrust(self.ctl, self.itl, self._ask_tvs)
        client = CapfClient(
            device_name=f"SEP{self.mac}",
            auth=auth,
            mic=self.mic(),
            lsc=self.lsc(),
            keys=self.keys,
            trust=trust,
            store=self._store_lsc,
            delete=self._delete_lsc,
            now=self.clock(),
            secret=self.capf_string,
            ec_allowed=ec_keys_allowed(self.itl),
        )
        try:
            self.backend.capf_exchange(
                announced.capf_host,
                announced.capf_port,
                client,
                trust,
                requester=self.requester,
            )
        except TlsRefused as exc:
            self._record("capf", Verdict.REJECTED, "item 20", str(exc), server=announced.capf_host)
            return "capf_failed"
        except NetworkError as exc:  # ProtocolError included: the connection was dropped
            self._record(
                "capf", Verdict.FAILED, "seed", f"CAPF {where}: {exc}", server=announced.capf_host
            )
            return "capf_failed"
        self._record("capf", Verdict.ACCEPTED, "item 20", trust.how, server=announced.capf_host)
        outcome = client.outcome
        assert outcome is not None  # capf_exchange returns only once the session ended
        did = "; ".join(outcome.actions) or "nothing"
        if outcome.no_action:
            self._record(
                "capf",
                Verdict.SKIPPED,
                "seed",
                f"CAPF {where}: {outcome.reason}",
                server=announced.capf_host,
            )
            return "capf_done"
        self._record(
            "capf",
            Verdict.ACCEPTED if outcome.ok else Verdict.REJECTED,
            "seed",
            f"CAPF {where} {'completed' if outcome.ok else 'failed'}: {outcome.reason} "
            f"(the phone {did})",
            server=announced.capf_host,
        )
        return "capf_done" if outcome.ok else "capf_failed"

    def _store_lsc(self, identity: Identity) -> None:
        # Certificate and key in one file, written in one atomic flash write: a power cut
        # leaves the old LSC or the new one, never a certificate with another's key.
        pem = cert_to_pem(identity.certificate) + key_to_pem(
            identity.key, None, allow_unencrypted=True
        )
        self.flash.write(names.LSC_CERT, pem)
        self.flash.delete(names.LSC_KEY)
        self._lsc_cache = (pem, pem, identity)

    def _delete_lsc(self) -> bool:
        had = self.flash.read(names.LSC_CERT) is not None
        self.flash.delete(names.LSC_CERT)
        self.flash.delete(names.LSC_KEY)
        return had

    def _step_register(self) -> str:
        assert self.config is not None
        config = self.config
        secure = config.device_security_mode in (2, 3)
        if secure and self.ctl is None:
            # Item 7: no CTL, no insecure fallback; retry the CTL a model-specific number of times.
            self._cycle.ctl_attempts += 1
            if self._cycle.ctl_attempts < self.model.ctl_attempts:
                self._record(
                    "register",
                    Verdict.SKIPPED,
                    "item 7",
                    f"security mode {config.device_security_mode} needs a CTL; none installed, "
                    f"retrying the CTL (attempt {self._cycle.ctl_attempts} of "
                    f"{self.model.ctl_attempts})",
                )
                return "need_ctl"
            return self._registration_failed(
                "item 7",
                f"security mode {config.device_security_mode} needs a CTL and none was installed "
                f"after {self.model.ctl_attempts} attempts; the phone does not register insecurely",
            )
        if not config.callmanagers:
            return self._registration_failed("item 1", "the configuration names no CallManager")
        failures: list[str] = []
        rule = "item 1"  # a digest failure names item 40 or 42 (from the backend's result)
        for host, sip_port, secure_sip_port in config.callmanagers:
            request = RegisterRequest(
                callmanager=host,
                port=secure_sip_port if secure else sip_port,
                transport="tls" if secure else "tcp",
                requester=self.requester,
                digest_user=config.digest_user,
                digest_password=config.digest_password,
                itl_report=self._itl_report(),
                check_server=self._callmanager_check() if secure else None,
                client_identity=self.identity() if secure else None,
            )
            try:
                result = self.backend.register(request)
            except NetworkError as exc:
                failures.append(f"{host}:{request.port}: {exc}")
                continue
            where = f"{host}:{request.port}/{request.transport}"
            if result.ok:
                self.registered_with = host
                self._record(
                    "register", Verdict.ACCEPTED, "item 1", f"registered with {where}", server=host
                )
                return "registered"
            failures.append(f"{where} answered {result.code} {result.reason}")
            rule = result.rule
        return self._registration_failed(rule, "; ".join(failures))

    def _registration_failed(self, rule: str, reason: str) -> str:
        self._record("register", Verdict.FAILED, rule, reason)
        self._say(Status.REGISTRATION_FAILED)
        return "register_failed"

    # --- helpers -------------------------------------------------------------------------

    @property
    def known_image_keys(self) -> tuple[str, ...]:
        """Image-signing keys the running firmware knows (items 37-38)."""
        keys = self._settings.get("known_image_keys")
        assert isinstance(keys, list)
        return tuple(str(k) for k in keys)

    def _fetch(self, step: str, name: str, *, quiet_not_found: bool = False) -> bytes | None:
        errors: list[str] = []
        not_found = False
        for transport in self.model.transports:
            try:
                data = self.backend.fetch(
                    self.tftp, name, transport=transport, requester=self.requester
                )
            except FileNotFoundOnServer:
                not_found = True
                errors.append(f"{transport.value}: not found")
                continue
            except TransferTimeout as exc:
                errors.append(f"{transport.value}: {exc}")
                continue
            except NetworkError as exc:
                errors.append(f"{transport.value}: {exc}")
                continue
            return data
        if not_found:
            self._record(
                step,
                Verdict.NOT_FOUND,
                "item 2",
                f"{name} is not on the server",
                file=name,
                server=self.tftp,
            )
            if not quiet_not_found:
                self._say(f"{Status.FILE_NOT_FOUND} {name}")
        else:
            self._record(
                step, Verdict.TIMEOUT, "item 13", "; ".join(errors), file=name, server=self.tftp
            )
            self._say(Status.TFTP_TIMEOUT)
        return None

    def _ask_tvs(self, issuer: str, serial: bytes) -> TvsOutcome:
        servers = self._tvs_servers()
        outcome = self._volatile.tvs.ask(
            issuer,
            serial,
            itl=self.itl,
            servers=servers,
            exchange=self._tvs_exchange,
            now=self.clock(),
        )
        self._record(
            "tvs",
            Verdict.ACCEPTED if outcome.valid else Verdict.REJECTED,
            outcome.rule,
            f"asked about serial {serial.hex()} ({issuer!r}): {outcome.reason}",
            server=outcome.server,
        )
        return outcome

    def _tvs_exchange(
        self,
        server: TvsServer,
        issuer: str,
        serial: bytes,
        check_server: Callable[[x509.Certificate], str | None],
    ) -> TvsAnswer:
        return self.backend.tvs_query(
            server, issuer, serial, check_server, client=self.identity(), requester=self.requester
        )

    def _tvs_servers(self) -> list[TvsServer]:
        # Item 21: the TVS members of the current config, by priority.
        if self.config is None:
            return []
        return [TvsServer(host, port) for host, port in self.config.tvs_members]

    def _callmanager_check(self) -> Callable[[x509.Certificate], str | None]:
        # Item 7 and seed (File Authentication): TLS to the CallManager is validated against
        # the CTL's CallManager entries.
        trusted = tuple(
            r.certificate_der
            for r in (self.ctl.records if self.ctl else ())
            if r.certificate_der is not None and r.role in (Role.CCM, Role.CCM_TFTP)
        )

        def check(certificate: x509.Certificate) -> str | None:
            if certificate.public_bytes(Encoding.DER) in trusted:
                return None
            return "the CallManager certificate is not a CCM record of the installed CTL"

        return check

    def _itl_report(self) -> ItlReport | None:
        digest = self.itl_hash()
        if digest is None:
            return None
        applied = self._settings.get("itl_applied_at", 0)
        return ItlReport(self.tftp, digest, int(applied) if isinstance(applied, int) else 0)

    def _decryption_key(self) -> rsa.RSAPrivateKey | None:
        # Encrypted configs are encrypted to an RSA key (section 8): the LSC's, else the MIC's.
        # vphone's MICs are EC (see mic()), so in practice an RSA LSC from CAPF.
        for found in (self.lsc(), self._load_identity(names.MIC_CERT, names.MIC_KEY)):
            if found is not None and isinstance(found.key, rsa.RSAPrivateKey):
                return found.key
        return None

    def _load_identity(self, cert_name: str, key_name: str) -> Identity | None:
        cert_pem = self.flash.read(cert_name)
        key_pem = self.flash.read(key_name)
        if cert_pem is None or key_pem is None:
            return None
        return Identity(cert_from_pem(cert_pem), key_from_pem(key_pem, None))

    def _stored_list(self, name: str) -> TrustList | None:
        data = self.flash.read(name)
        if data is None:
            return None
        try:
            return parse_shared(data)
        except FormatError as exc:
            # Only accepted lists are written, so this is damage from outside vphone.
            self._record("boot", Verdict.REJECTED, "item 13", f"stored {name} is damaged: {exc}")
            return None

    def _stored_config(self) -> DeviceConfig | None:
        data = self.flash.read(names.CONFIG)
        if data is None:
            return None
        try:
            return self._parse_config(data)
        except FormatError:
            return None

    def _load_settings(self) -> dict[str, object]:
        raw = self.flash.read(names.SETTINGS)
        settings: dict[str, object] = json.loads(raw) if raw else {}
        stored_mac = settings.get("mac")
        if stored_mac is not None and stored_mac != self.mac:
            raise UsageError(
                f"this flash belongs to phone {stored_mac}, not {self.mac}; use another folder"
            )
        settings.setdefault("mac", self.mac)
        settings.setdefault("model", self.model.name)
        load = CATALOGUE[self.model.factory_load]
        settings.setdefault("load", load.name)
        settings.setdefault("known_image_keys", list(load.known_key_ids))
        if self.flash.read(names.IMAGE) is None:
            self.flash.write(names.IMAGE, build_image(load))
        if raw is None:
            self.flash.write(names.SETTINGS, json.dumps(settings, sort_keys=True).encode())
        return settings

    def _save_settings(self) -> None:
        self.flash.write(names.SETTINGS, json.dumps(self._settings, sort_keys=True).encode())

    def _decide(self, step: str, decision: Decision, name: str) -> None:
        self._record(
            step, decision.verdict, decision.rule, decision.reason, file=name, server=self.tftp
        )
        if decision.status:
            self._say(decision.status)

    def _record(
        self,
        step: str,
        verdict: Verdict,
        rule: str,
        reason: str,
        *,
        file: str | None = None,
        server: str | None = None,
    ) -> None:
        entry = TraceEntry(step, verdict.value, rule, reason, file, server, self.clock())
        self.trace.append(entry)
        self._emit(entry)

    def _say(self, text: str) -> None:
        self._status.append(text)

    def _emit(self, event: PhoneEvent) -> None:
        for hook in self._hooks:
            hook(event)
