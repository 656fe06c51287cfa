"""``vphone sgn show|verify|sign|strip``: signed files (``.sgn`` and ``.enc.sgn``).

A ``.sgn`` carries no certificate, so its signature is only checked with ``--cert``;
:func:`verify_signed` is shared with the legacy firmware images of :mod:`phone.cli.files_image`,
which use the same signed header.
"""

from __future__ import annotations

import argparse

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
    payload_block,
    report_verification,
    status_text,
)
from phone.errors import SignatureError
from phone.formats.certfields import serial_bytes
from phone.formats.signed import SignedFile, build_signed, parse_signed
from phone.formats.views import JSONDict, checksums, signed_view


def _parse_signed(path: str) -> tuple[bytes, SignedFile]:
    data = read_input(path)
    with about(path):
        return data, parse_signed(data)


def verify_signed(signed: SignedFile, cert_path: str | None) -> JSONDict:
    """The signature status of a signed header, checked with ``--cert`` if given."""
    if cert_path is None:
        return {
            "valid": None,
            "reason": "a .sgn carries no certificate to check it with (pass --cert)",
        }
    certificate = load_certificate(cert_path)
    try:
        signed.verify(certificate)
    except SignatureError as exc:
        return {"valid": False, "reason": str(exc)}
    return {
        "valid": True,
        "reason": f"signature verifies with {cert_path} "
        f"(serial {serial_bytes(certificate.serial_number).hex()})",
    }


def sgn_show(args: argparse.Namespace) -> int:
    """``vphone sgn show``: exit 0 whenever the file parses."""
    path: str = args.file
    data, signed = _parse_signed(path)
    view: JSONDict = {
        "file": {"path": path, **checksums(data)},
        **signed_view(signed),
        "signature": verify_signed(signed, args.cert),
    }
    if args.json:
        emit_json(view)
        return 0
    file_block(path, ".enc.sgn" if signed.encrypted else ".sgn", data)
    header_block(view["header"])
    payload_block(view, encrypted=signed.encrypted)
    out()
    out(f"Signature {status_text(view['signature'])}")
    return 0


def sgn_verify(args: argparse.Namespace) -> int:
    """``vphone sgn verify``: exit 0 if the signature verifies with ``--cert``, 1 if not."""
    path: str = args.file
    _data, signed = _parse_signed(path)
    return report_verification(path, verify_signed(signed, args.cert), args.json)


def sgn_sign(args: argparse.Namespace) -> int:
    """``vphone sgn sign``: sign ``FILE`` into a ``.sgn`` written to ``-o``."""
    payload = read_input(args.file)
    signer = load_signer(args)
    filename = header_filename(args)
    signed = build_signed(
        payload,
        signer,
        filename=filename,
        timestamp=header_timestamp(args.timestamp),
        digest=DIGESTS[args.digest],
    )
    data = signed.encode()
    write_output(args.output, data)
    out(
        f"wrote {args.output}: '{filename}', {len(data)} bytes "
        f"({len(payload)}-byte payload), {DIGESTS[args.digest].label}, "
        f"signed by {signer.name} (serial {signer.serial.hex()})"
    )
    return 0


def sgn_strip(args: argparse.Namespace) -> int:
    """``vphone sgn strip``: write the bytes after the signed header to ``-o``."""
    path: str = args.file
    _data, signed = _parse_signed(path)
    write_output(args.output, signed.payload)
    note = " (still encrypted: this is an .enc.sgn)" if signed.encrypted else ""
    out(f"wrote {args.output}: {len(signed.payload)} bytes{note}")
    return 0
