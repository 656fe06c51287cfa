"""What the emulated cluster puts in its trust lists, and its ITL hash database.

Pure: certificates and a signer in, records and file bytes out; the hash database is an
in-memory table. The codec itself is :mod:`phone.formats.trustlist`.

**ITL** (seed, "Initial Trust List"; phone-behaviour item 19), one per TFTP node, records in
this order:

1. ITLRecovery certificate, role SAST;
2. the TFTP node's CallManager certificate, role SAST (it authenticates ITL signatures);
3. the same certificate, role TFTP in non-secure mode or CCM+TFTP in mixed mode (it
   authenticates config signatures; trust-file-formats.md section 5);
4. the CAPF certificate, role CAPF;
5. every TVS certificate of the cluster, role TVS.

**Rollback ITL** (enterprise parameter "Prepare Cluster for Rollback to pre-8.0", item 16/33).
No byte sample is public (trust-file-formats.md section 11 [G]); our choice: the normal header
and signer, records 1, 2 and 4 unchanged, and the TFTP and TVS records replaced by
*certificateless* records holding only record length, DNS name, role and IP address, the
33-byte form CUCM writes for empty CTL entries (section 4). The DNS name is the node's IP
address in dotted form, as in that CUCM sample. So the TFTP and TVS sections are present but
empty ("empty entries appear where the old TVS and TFTP servers used to be"), the file still
verifies with the usual signer, and the signer still appears as a SAST record.

**Tokenless CTL** (mixed mode), CUCM record order as in the real sample S2: the publisher's
CallManager certificate as SAST, every CallManager/TFTP node's CallManager certificate as
CCM+TFTP (TFTP for a TFTP-only node), CAPF, then ITLRecovery as SAST. At most two SAST records,
as phones require (section 5). Never a TVS record.

**ITL hash database** (seed, "ITLRecovery Certificate" / ITL File Status; item 30): the hash of
each TFTP node's ITL, and per device the hash and timestamp its phone reported.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from cryptography import x509

from phone.errors import FormatError
from phone.formats.header import Digest
from phone.formats.signature import Signer
from phone.formats.trustlist import (
    Record,
    Role,
    build_trust_list,
    certificateless_record,
    parse_trust_list,
    record_from_certificate,
)

__all__ = [
    "CTL_FILENAME",
    "ITL_FILENAME",
    "ITL_MAX_BYTES",
    "ITL_MAX_CERTIFICATES",
    "DeviceHashRow",
    "HashOutcome",
    "ItlHashDatabase",
    "Member",
    "Mismatch",
    "TftpHashRow",
    "TrustListPlan",
    "content_key_of",
    "ctl_records",
    "itl_hash",
    "itl_records",
]

ITL_FILENAME = "ITLFile.tlv"
CTL_FILENAME = "CTLFile.tlv"
ITL_MAX_CERTIFICATES = 39
"""Seed, Interactions and Restrictions: more than 39 certificates push the ITL past 64 KB and
the phone cannot load it (item 18)."""
ITL_MAX_BYTES = 64 * 1024


@dataclass(frozen=True)
class Member:
    """A node as a trust list names it: host name, IPv4 address and one certificate."""

    host: str
    ip: str
    certificate: x509.Certificate


def _cert(member: Member, role: int) -> Record:
    return record_from_certificate(member.certificate, role, dns_name=member.host, ip=member.ip)


def itl_records(
    *,
    itlrecovery: Member,
    tftp: Member,
    tvs: Sequence[Member],
    capf: Member | None,
    mixed_mode: bool,
    rollback: bool = False,
) -> tuple[Record, ...]:
    """The records of the ITL of TFTP node ``tftp`` (see the module docstring for the order).

    ``tftp.certificate`` is that node's CallManager certificate; ``rollback`` builds the
    "empty" ITL of the rollback parameter instead.
    """
    tftp_role = Role.CCM_TFTP if mixed_mode else Role.TFTP
    records = [_cert(itlrecovery, Role.SAST), _cert(tftp, Role.SAST)]
    if rollback:
        records.append(certificateless_record(tftp_role, dns_name=tftp.ip, ip=tftp.ip))
    else:
        records.append(_cert(tftp, tftp_role))
    if capf is not None:
        records.append(_cert(capf, Role.CAPF))
    for member in tvs:
        if rollback:
            records.append(certificateless_record(Role.TVS, dns_name=member.ip, ip=member.ip))
        else:
            records.append(_cert(member, Role.TVS))
    return tuple(records)


def ctl_records(
    *,
    publisher: Member,
    nodes: Sequence[tuple[Member, bool]],
    capf: Member,
    itlrecovery: Member,
) -> tuple[Record, ...]:
    """The records of the tokenless CTL (module docstring).

    ``nodes`` pairs each node's CallManager certificate with whether the node runs the
    CallManager service (CCM+TFTP) or TFTP only (TFTP).
    """
    records = [_cert(publisher, Role.SAST)]
    records.extend(_cert(member, Role.CCM_TFTP if cm else Role.TFTP) for member, cm in nodes)
    records.append(_cert(capf, Role.CAPF))
    records.append(_cert(itlrecovery, Role.SAST))
    return tuple(records)


@dataclass(frozen=True)
class TrustListPlan:
    """Everything that decides a trust list's content except its timestamp.

    Two plans with the same :meth:`content_key` produce files that differ at most in their
    timestamp; the cluster keeps the existing file then, which is why its hash "changes only
    when the ITL file is modified" (seed, note on the ITL checksum).
    """

    records: tuple[Record, ...]
    signer: Signer
    filename: str
    digest: Digest

    def certificate_count(self) -> int:
        """Records that carry a certificate (what the 39-certificate limit counts)."""
        return sum(1 for record in self.records if record.certificate_der is not None)

    def content_key(self) -> bytes:
        """A digest of the records, the signer (issuer and serial), digest and file name."""
        return _key(
            (r.encode() for r in self.records),
            self.signer.issuer,
            self.signer.serial,
            int(self.digest),
            self.filename,
        )

    def build(self, timestamp: int) -> bytes:
        """Sign and encode the file with ``timestamp`` (Unix time)."""
        trust_list = build_trust_list(
            self.records,
            self.signer,
            filename=self.filename,
            timestamp=timestamp,
            digest=self.digest,
        )
        return trust_list.encode()

    def size_problem(self, size: int) -> str | None:
        """Why phones could not load this list (item 18), or None.

        The seed states the limit as a certificate count (more than 39); the byte size is
        checked too, so an ITL with fewer, bigger certificates is caught as well.
        """
        count = self.certificate_count()
        if count > ITL_MAX_CERTIFICATES:
            return (
                f"the ITL would hold {count} certificates (more than {ITL_MAX_CERTIFICATES}), "
                f"{size} bytes: past 64 KB phones cannot load it and fail to register"
            )
        if size > ITL_MAX_BYTES:
            return f"the ITL is {size} bytes, more than 64 KB: phones cannot load it"
        return None


def _key(records: Iterable[bytes], issuer: str, serial: bytes, digest: int, name: str) -> bytes:
    h = hashlib.sha256()
    for part in (issuer.encode(), serial, bytes((digest,)), name.encode()):
        h.update(len(part).to_bytes(4, "big"))
        h.update(part)
    for record in records:
        h.update(record)
    return h.digest()


def content_key_of(data: bytes) -> bytes | None:
    """:meth:`TrustListPlan.content_key` of an existing file, or None if it does not parse."""
    try:
        trust_list = parse_trust_list(data)
    except FormatError:
        return None
    header = trust_list.header
    if header.digest_code not in (1, 2, 3):
        return None
    return _key(
        (r.encode() for r in trust_list.records),
        header.signer_issuer,
        header.signer_serial,
        header.digest_code,
        header.filename,
    )


def itl_hash(data: bytes) -> str:
    """The ITL hash the cluster stores and phones report: lowercase hex SHA-1 of the file.

    The seed calls the checksum "SHA-1 or MD5"; SHA-1 is what phones display as the ITL
    signature and what the phone side reports (``phone.device.port.ItlReport``).
    """
    return hashlib.sha1(data).hexdigest()


# --- the ITL hash database (ITL File Status) -------------------------------------------------


class HashOutcome(StrEnum):
    """What a write to the ITL hash database did (the seed's ITLRecovery scenarios)."""

    INSERTED = "inserted"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    TIMESTAMP_UPDATED = "timestamp updated"
    MISMATCH_UPDATED = "mismatch updated"


@dataclass(frozen=True)
class TftpHashRow:
    """The hash of a TFTP node's current ITL, and when it was stored."""

    host: str
    hash: str
    updated_at: int


@dataclass(frozen=True)
class DeviceHashRow:
    """What a phone reported about its ITL when it registered."""

    mac: str
    tftp_host: str
    hash: str
    timestamp: int


@dataclass(frozen=True)
class Mismatch:
    """A phone whose reported ITL is not its TFTP node's current one."""

    device: DeviceHashRow
    expected: str | None  # None: the reported TFTP host has no ITL in this cluster


class ItlHashDatabase:
    """The ITL hash table per TFTP host and the per-device ITL File Status table.

    The rules are the seed's, one method each:

    * :meth:`store_tftp`: "the hash of the generated ITL file along with the server hostname is
      stored"; if the host is present the hashes are compared and the row updated when they
      differ; ``UNCHANGED`` is the caller's cue to log "Tftp Itl hash not changed".
    * :meth:`report`: at registration, a device row that does not exist is inserted; a reported
      hash equal to the stored one updates the timestamp; a different one updates the
      reported hash and timestamp against the device.
    * :meth:`delete_device`: "when the phone unregisters, the trust hash information of that
      device is deleted".
    """

    def __init__(
        self,
        tftp: Iterable[TftpHashRow] = (),
        devices: Iterable[DeviceHashRow] = (),
    ) -> None:
        self.tftp: dict[str, TftpHashRow] = {row.host: row for row in tftp}
        self.devices: dict[str, DeviceHashRow] = {row.mac: row for row in devices}

    def store_tftp(self, host: str, itl_hash_hex: str, now: int) -> HashOutcome:
        """Record the hash of ``host``'s freshly generated ITL."""
        row = self.tftp.get(host)
        if row is None:
            self.tftp[host] = TftpHashRow(host, itl_hash_hex, now)
            return HashOutcome.INSERTED
        if row.hash == itl_hash_hex:
            return HashOutcome.UNCHANGED
        self.tftp[host] = TftpHashRow(host, itl_hash_hex, now)
        return HashOutcome.UPDATED

    def report(self, mac: str, tftp_host: str, itl_hash_hex: str, timestamp: int) -> HashOutcome:
        """Apply a phone's ITL report (the SIP alarm sent at registration)."""
        row = DeviceHashRow(mac, tftp_host, itl_hash_hex.lower(), timestamp)
        if mac not in self.devices:
            self.devices[mac] = row
            return HashOutcome.INSERTED
        self.devices[mac] = row
        if self.matches(row):
            return HashOutcome.TIMESTAMP_UPDATED
        return HashOutcome.MISMATCH_UPDATED

    def delete_device(self, mac: str) -> bool:
        """Forget ``mac``'s row; True if there was one."""
        return self.devices.pop(mac, None) is not None

    def matches(self, row: DeviceHashRow) -> bool:
        """Whether ``row``'s hash is the current ITL hash of its TFTP host."""
        current = self.tftp.get(row.tftp_host)
        return current is not None and current.hash == row.hash

    def mismatches(self) -> list[Mismatch]:
        """The ITL File Status report: devices whose ITL is not their TFTP node's, by MAC."""
        found: list[Mismatch] = []
        for mac in sorted(self.devices):
            row = self.devices[mac]
            if not self.matches(row):
                current = self.tftp.get(row.tftp_host)
                found.append(Mismatch(row, None if current is None else current.hash))
        return found

    def snapshot(self) -> tuple[Mapping[str, TftpHashRow], Mapping[str, DeviceHashRow]]:
        """Copies of both tables."""
        return dict(self.tftp), dict(self.devices)
