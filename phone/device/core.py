"""What every step of the phone shares: its state, its records, and the way it reads the world.

:class:`PhoneCore` is the base of ``VirtualPhone`` and of the step classes (``step_*.py``), so
each step module sees the same attributes and helpers, checked by mypy, without importing the
phone itself. It holds:

* the phone's state: identity (MAC, model), backend, flash, clock, the installed trust lists
  and config, what a reboot forgets (:class:`Volatile`) and what a boot cycle counts
  (:class:`BootCycle`);
* the records: the trace, the status log (item 47), the hooks, and :meth:`PhoneCore._decide`
  which turns a rule's :class:`Decision` into both;
* the I/O every step needs: fetching a file over the model's transports, asking TVS, reading
  what is on flash (settings, trust lists, config, the MIC and the LSC).
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from phone.catalog.loads import CATALOGUE, build_image
from phone.catalog.models import Model, get_model
from phone.device import flash as names
from phone.device.config_memo import parse_config_memo
from phone.device.flash import Flash, MemoryFlash
from phone.device.machine import State
from phone.device.port import Backend, Requester
from phone.device.trace import Clock, EventHook, PhoneEvent, TraceEntry
from phone.errors import (
    FileNotFoundOnServer,
    FormatError,
    NetworkError,
    TransferTimeout,
    UsageError,
    VphoneError,
)
from phone.formats.configxml import DeviceConfig
from phone.formats.trustlist import TrustList
from phone.mac import normalize_mac
from phone.pki import (
    Identity,
    KeySource,
    cert_from_pem,
    cert_to_pem,
    issue,
    key_from_pem,
    key_to_pem,
)
from phone.trust.decision import Decision, Status, Verdict
from phone.trust.lists import parse_shared
from phone.trust.tvs import TvsAnswer, TvsClient, TvsOutcome, TvsServer
from phone.vendor import manufacturing_ca

STATUS_LOG_SIZE = 30  # item 47: the last ~30 status messages


@functools.lru_cache(maxsize=64)
def _sha1_hex(data: bytes) -> str:
    # Every registration reports the ITL hash (item 30), and a fleet's phones hold the very
    # same few ITL byte strings: hash each of them once (a pure function of the bytes).
    return hashlib.sha1(data).hexdigest()


@dataclass
class Volatile:
    """What every reboot forgets (item 23), upgrade reboots included."""

    tvs: TvsClient = field(default_factory=TvsClient)
    wants_encrypted: bool = False
    config_refused: bool = False  # this boot's config was refused: the last good one is in use


@dataclass
class BootCycle:
    """Counters of one boot cycle started by power-on or reset; an upgrade reboot keeps them,
    so a load refused once is not fetched again in the same cycle."""

    ctl_attempts: int = 0
    failed_loads: set[str] = field(default_factory=set)
    capf_attempted: bool = False  # one CAPF session per cycle, whatever its outcome


class PhoneCore:
    """The state and shared helpers of a phone; ``VirtualPhone`` documents the arguments.

    ``keys`` is resolved by the caller (``VirtualPhone`` defaults it to fresh keys).
    """

    def __init__(
        self,
        *,
        mac: str,
        backend: Backend,
        tftp: str,
        model: str,
        flash: Flash | None,
        clock: Clock,
        keys: KeySource,
        protocol: str | None = None,
    ) -> None:
        self.mac = normalize_mac(mac)
        self.model: Model = get_model(model)
        try:
            self.protocol = self.model.protocol(protocol)  # "SIP" or "SCCP" (issue 15)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        self.backend = backend
        self.flash: Flash = flash if flash is not None else MemoryFlash()
        self.clock = clock
        self.state = State.OFF
        self.tftp = tftp
        self._status: deque[str] = deque(maxlen=STATUS_LOG_SIZE)
        self.trace: list[TraceEntry] = []
        self._hooks: list[EventHook] = []
        self._volatile = Volatile()
        self._cycle = BootCycle()
        self.ctl: TrustList | None = None
        self.itl: TrustList | None = None
        self.config: DeviceConfig | None = None
        self._parsed_config: tuple[bytes, DeviceConfig] | None = None
        self.registered_with: str | None = None
        self._settings: dict[str, object] = self._load_settings()
        self.keys: KeySource = keys
        self.capf_string: str | None = None
        self._capf_announced: DeviceConfig | None = None
        self._lsc_cache: tuple[bytes, bytes, Identity | None] | None = None
        self._requester: Requester | None = None

    # --- what the phone shows ------------------------------------------------------------

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
        # Asked on every request (18 per boot in a migration): made once, as mac and model
        # never change (Requester is frozen).
        requester = self._requester
        if requester is None:
            requester = self._requester = Requester(mac=self.mac, model=self.model.name)
        return requester

    def subscribe(self, hook: EventHook) -> None:
        """Call ``hook`` with every trace entry and state change, as they happen."""
        self._hooks.append(hook)

    @property
    def known_image_keys(self) -> tuple[str, ...]:
        """Image-signing keys the running firmware knows (items 37-38)."""
        keys = self._settings.get("known_image_keys")
        assert isinstance(keys, list)
        return tuple(str(k) for k in keys)

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
            manufacturing_ca(self.model.mic_family),
            f"{self.model.device_prefix}-SEP{self.mac}",
            key.public_key(),
            now=self.clock(),
            days=365 * 20,
        )
        self.flash.write(names.MIC_KEY, key_to_pem(key, None, allow_unencrypted=True))
        self.flash.write(names.MIC_CERT, cert_to_pem(certificate))
        return Identity(certificate, key)

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

    # --- reading the world ---------------------------------------------------------------

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

    def _ask_tvs(
        self, issuer: str, serial: bytes, certificate: x509.Certificate | None = None
    ) -> TvsOutcome:
        # With the certificate in hand the phone sends VERIFY, else the emulated QUERY [G]
        # (phone.trust.tvs, tvs-capf-wire.md 1.3).
        servers = self._tvs_servers()
        outcome = self._volatile.tvs.ask(
            issuer,
            serial,
            itl=self.itl,
            servers=servers,
            exchange=self._tvs_exchange,
            now=self.clock(),
            certificate=certificate,
        )
        how = "verify" if certificate is not None else "query"
        self._record(
            "tvs",
            Verdict.ACCEPTED if outcome.valid else Verdict.REJECTED,
            outcome.rule,
            f"asked ({how}) about serial {serial.hex()} ({issuer!r}): {outcome.reason}",
            server=outcome.server,
        )
        return outcome

    def _tvs_exchange(
        self,
        server: TvsServer,
        issuer: str,
        serial: bytes,
        check_server: Callable[[x509.Certificate], str | None],
        certificate: bytes | None,
    ) -> TvsAnswer:
        if certificate is None:
            return self.backend.tvs_query(
                server,
                issuer,
                serial,
                check_server,
                client=self.identity(),
                requester=self.requester,
            )
        return self.backend.tvs_query(
            server,
            issuer,
            serial,
            check_server,
            client=self.identity(),
            requester=self.requester,
            certificate=certificate,
        )

    def _tvs_servers(self) -> list[TvsServer]:
        # Item 21: the TVS members of the current config, by priority.
        if self.config is None:
            return []
        return [TvsServer(host, port) for host, port in self.config.tvs_members]

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

    def _parse_config(self, xml: bytes) -> DeviceConfig:
        """Parse a config, reusing the last parse when the bytes are the same (most boots)."""
        if self._parsed_config is not None and xml == self._parsed_config[0]:
            return self._parsed_config[1]
        config = parse_config_memo(xml)  # a fleet's phones share the parse: config_memo.py
        self._parsed_config = (xml, config)
        return config

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

    # --- the records ---------------------------------------------------------------------

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
