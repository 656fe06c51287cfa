"""The CONFIGURING step: fetch the device config, verify it, and decide what comes next.

The names to ask for and what a signed or encrypted config must satisfy are decided in
``phone.trust.config`` (items 5, 6, 14; section 8 for encrypted configs); this step fetches,
keeps the last good config on flash, asks for the encrypted file when the plain one is a stub,
fetches the other signed files (item 8), and returns the trigger: CAPF first when the config
announces a certificate operation, then an upgrade when the load differs (item 36), else
registration.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from cryptography.hazmat.primitives.serialization import Encoding

from phone.catalog.rows import StatusKey
from phone.device import flash as names
from phone.device.capf import pending_auth
from phone.device.core import PhoneCore
from phone.errors import FormatError
from phone.formats.configxml import DeviceConfig
from phone.formats.signed import md5_hex
from phone.trust.config import ConfigOutcome, config_names, default_config_names, evaluate_config
from phone.trust.decision import Decision, Status, Verdict


class ConfigStep(PhoneCore):
    """The phone's CONFIGURING state (a part of ``VirtualPhone``)."""

    def _family_text(self, decision: Decision, name: str) -> Decision:
        """The decision with the family's own text for a config it cannot authenticate
        (item 47: families word the same event differently; the 8945's is [S21])."""
        family = self.model.status(StatusKey.CONFIG_AUTH)
        if family is None or decision.status != f"{Status.FILE_AUTH_ERROR} {name}":
            return decision
        return dataclasses.replace(decision, status=family.format(file=name))

    def _step_configure(self) -> str:
        # Every boot asks for the unencrypted name first: only its stub says "encrConfig".
        outcome = self._fetch_config(
            config_names(self.mac, ctl=self.ctl, itl=self.itl, encrypted=False)
        )
        if outcome is None:
            # Item 6: a device the cluster does not know falls back to the default config.
            sbd = self.model.security_by_default
            outcome = self._fetch_config(
                default_config_names(ctl=self.ctl, itl=self.itl, security_by_default=sbd),
                pre_sbd_default=not sbd,
            )
        config = self._accept_config(outcome)
        stub: DeviceConfig | None = None
        if config is not None and config.encrypted_config and not config.full_config:
            # The plain .sgn of an encrypted device is a stub (trust-file-formats.md section 8):
            # ask for the encrypted file.
            stub = config
            outcome = self._fetch_config(
                config_names(self.mac, ctl=self.ctl, itl=self.itl, encrypted=True)
            )
            config = self._accept_config(outcome)
            if config is None:
                self._encrypted_config_unreadable(stub)
        self._volatile.config_refused = config is None
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

    def _fetch_config(
        self, candidates: Iterable[str], *, pre_sbd_default: bool = False
    ) -> ConfigOutcome | None:
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
                pre_sbd_default=pre_sbd_default,
            )
            self._decide("config", self._family_text(outcome.decision, name), name)
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
