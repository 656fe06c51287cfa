"""``vphone tlv show|verify|build``: ITL and CTL trust lists (``.tlv``).

``show`` prints every header field and record, the file's checksums and whether the file
verifies against its own SAST record (like CUCM's ``show itl``); ``verify`` exits 1 unless the
signature verifies; ``build`` writes and signs a list in CUCM's element order from
``--record ROLE:CERT.pem[:DNSNAME[:IP]]`` specs.
"""

from __future__ import annotations

import argparse
import ipaddress

from phone.cli.files_input import (
    DIGESTS,
    about,
    header_filename,
    header_timestamp,
    load_certificate,
    load_signer,
    read_input,
    write_output,
)
from phone.cli.files_output import (
    emit_json,
    file_block,
    header_block,
    out,
    print_rows,
    report_verification,
    status_text,
)
from phone.errors import SignatureError, UsageError
from phone.formats.certfields import serial_bytes
from phone.formats.trustlist import (
    Record,
    TrustList,
    build_trust_list,
    certificateless_record,
    parse_role,
    parse_trust_list,
    record_from_certificate,
    verify_self_signed,
    verify_with_certificate,
)
from phone.formats.views import JSONDict, checksums, role_view, self_check_view, trust_list_view


def _records_block(view: JSONDict) -> None:
    records = view["records"]
    total = len(records)
    for record in records:
        role = record["role"]
        known = not isinstance(role, int)
        role_text = f"{role} ({record['role_code']})" if known else f"{role} (unknown role)"
        out()
        out(
            f"{view['kind']} Record #{record['index']} of {total}  "
            f"(offset {record['offset']}, {record['length']} bytes)"
        )
        rows: list[tuple[str, object]] = [
            ("Role", role_text),
            ("Subject", record["subject"]),
            ("Issuer", record["issuer"]),
            ("Serial", record["serial"]),
            ("Cert SHA-1", record["certificate_sha1"]),
            ("DNS name", record["dns_name"]),
            ("IP address", record["ip"]),
            ("Layout", record["layout"]),
        ]
        if record["unknown_tags"]:
            rows.append(("Unknown tags", ", ".join(str(t) for t in record["unknown_tags"])))
        print_rows(rows)


def _parse_trust_list(path: str) -> tuple[bytes, TrustList]:
    data = read_input(path)
    with about(path):
        return data, parse_trust_list(data)


def _tlv_view(path: str, data: bytes, trust_list: TrustList) -> JSONDict:
    view = trust_list_view(trust_list)
    check = verify_self_signed(trust_list)
    return {
        "file": {"path": path, **checksums(data)},
        **view,
        "signature": self_check_view(check, trust_list),
    }


def tlv_show(args: argparse.Namespace) -> int:
    """``vphone tlv show``: exit 0 whenever the file parses."""
    path: str = args.file
    data, trust_list = _parse_trust_list(path)
    view = _tlv_view(path, data, trust_list)
    if args.json:
        emit_json(view)
        return 0
    file_block(path, view["kind"], data)
    header_block(view["header"])
    _records_block(view)
    out()
    out(
        f"{len(view['records'])} records, {view['certificates']} certificates. "
        f"Signature {status_text(view['signature'])}"
    )
    return 0


def _verify_trust_list(trust_list: TrustList, cert_path: str | None) -> JSONDict:
    if cert_path is None:
        return self_check_view(verify_self_signed(trust_list), trust_list)
    certificate = load_certificate(cert_path)
    try:
        verify_with_certificate(trust_list, certificate)
    except SignatureError as exc:
        return {"valid": False, "reason": str(exc), "record": None}
    return {
        "valid": True,
        "reason": f"signature verifies with {cert_path} "
        f"(serial {serial_bytes(certificate.serial_number).hex()})",
        "record": None,
    }


def tlv_verify(args: argparse.Namespace) -> int:
    """``vphone tlv verify``: exit 0 if the signature verifies, 1 if not (or not checkable)."""
    path: str = args.file
    _data, trust_list = _parse_trust_list(path)
    return report_verification(path, _verify_trust_list(trust_list, args.cert), args.json)


def _parse_record_spec(spec: str) -> Record:
    """``ROLE:CERT.pem[:DNSNAME[:IP]]`` into a record; an empty CERT means no certificate."""
    parts = spec.split(":", 3)
    if len(parts) < 2:
        raise UsageError(f"--record {spec!r}: use ROLE:CERT.pem[:DNSNAME[:IP]]")
    role_text, cert_path = parts[0], parts[1]
    dns_name = parts[2] if len(parts) > 2 else ""
    ip = parts[3] if len(parts) > 3 and parts[3] else None
    try:
        role = parse_role(role_text)
    except ValueError:
        raise UsageError(
            f"--record {spec!r}: unknown role {role_text!r} "
            "(SAST, CCM, CCM+TFTP, TFTP, CAPF, SRST, APP-SERVER, TVS or a number)"
        ) from None
    if not 0 <= role <= 0xFFFF:
        raise UsageError(f"--record {spec!r}: role code {role} does not fit in 16 bits")
    if ip is not None:
        try:
            ipaddress.IPv4Address(ip)
        except ValueError:
            raise UsageError(f"--record {spec!r}: {ip!r} is not an IPv4 address") from None
    try:
        dns_name.encode("ascii")
    except UnicodeEncodeError:
        raise UsageError(f"--record {spec!r}: the DNS name must be ASCII") from None
    if not cert_path:
        if not dns_name and ip is None:
            raise UsageError(
                f"--record {spec!r}: a record without a certificate needs a DNS name or an IP"
            )
        return certificateless_record(role, dns_name=dns_name, ip=ip)
    return record_from_certificate(load_certificate(cert_path), role, dns_name=dns_name, ip=ip)


def tlv_build(args: argparse.Namespace) -> int:
    """``vphone tlv build``: write a signed ITL/CTL to ``-o``."""
    records = [_parse_record_spec(spec) for spec in args.record]
    signer = load_signer(args)
    filename = header_filename(args)
    try:
        trust_list = build_trust_list(
            records,
            signer,
            filename=filename,
            timestamp=header_timestamp(args.timestamp),
            digest=DIGESTS[args.digest],
        )
        data = trust_list.encode()
    except ValueError as exc:  # e.g. a record or header too big for its 16-bit length
        raise UsageError(f"cannot build {args.output}: {exc}") from None
    write_output(args.output, data)
    check = verify_self_signed(trust_list)
    roles = ", ".join(str(role_view(r.role)) for r in trust_list.records)
    out(
        f"wrote {args.output}: {trust_list.kind} '{filename}', {len(data)} bytes, "
        f"{len(trust_list.records)} records ({roles}), {DIGESTS[args.digest].label}, "
        f"signed by {signer.name} (serial {signer.serial.hex()})"
    )
    if check.valid is None:
        out(
            "note: no SAST record in the file matches the signer; phones will check this file "
            "against the trust list they already hold, or ask TVS"
        )
    return 0
