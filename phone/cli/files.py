"""``vphone tlv|sgn|image``: inspect, verify, build and sign trust files.

* ``vphone tlv show FILE [--json]``: every header field and record of an ITL/CTL, the file's MD5
  and SHA-1, and whether it verifies against its own SAST record (like CUCM's ``show itl``).
* ``vphone tlv verify FILE [--cert PEM]``: exit 1 unless the signature verifies (with ``--cert``
  or, without it, with the file's own SAST record matching the signer).
* ``vphone tlv build ... -o OUT``: build and sign an ITL/CTL in CUCM's element order.
* ``vphone sgn show|verify|sign|strip``: the same for ``.sgn`` (and ``.enc.sgn``) files.
* ``vphone image show FILE``: either firmware family (legacy TLV header, or the ``CD3412AB``
  container with its payload hash check).

``show`` exits 0 whenever the file parses: the signature status is reported, not an error. A file
that does not parse prints one line, ``vphone: FILE: at byte N: problem (expected X)``, and exits
1; usage errors (a missing file, a bad ``--record``) exit 2. The clock is read here, at the edge,
never in :mod:`phone.formats`.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeAlias

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from phone.errors import SignatureError, UsageError, VphoneError
from phone.formats.certfields import serial_bytes
from phone.formats.firmware import ContainerImage, parse_image
from phone.formats.header import Digest
from phone.formats.signature import Signer
from phone.formats.signed import SignedFile, build_signed, parse_signed
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
from phone.formats.views import (
    JSONDict,
    checksums,
    container_view,
    role_view,
    self_check_view,
    signed_view,
    trust_list_view,
)
from phone.pki.store import cert_from_pem, key_from_pem

__all__ = [
    "FileInputError",
    "image_show",
    "register",
    "sgn_show",
    "sgn_sign",
    "sgn_strip",
    "sgn_verify",
    "tlv_build",
    "tlv_show",
    "tlv_verify",
]

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

KEY_PASSWORD_ENV = "VPHONE_KEY_PASSWORD"  # noqa: S105 - the variable name, not a password
_DIGESTS = {"sha1": Digest.SHA1, "sha512": Digest.SHA512}


class FileInputError(VphoneError):
    """An error about the contents of a file named on the command line.

    Its message is the file name followed by the cause, so the CLI prints
    ``vphone: ITLFile.tlv: at byte 312: ...``; the exit code is the cause's.
    """

    def __init__(self, path: str, cause: VphoneError) -> None:
        self.path = path
        self.cause = cause
        self.exit_code = cause.exit_code
        super().__init__(f"{path}: {cause}")


@contextlib.contextmanager
def _about(path: str) -> Iterator[None]:
    """Prefix errors raised while handling ``path``'s contents with its name."""
    try:
        yield
    except (FileInputError, UsageError):
        raise
    except VphoneError as exc:
        raise FileInputError(path, exc) from exc


# --- registration ------------------------------------------------------------------------------


def register(sub: Subparsers) -> None:
    """Add the ``tlv``, ``sgn`` and ``image`` command groups."""
    _register_tlv(sub)
    _register_sgn(sub)
    _register_image(sub)


def _group(sub: Subparsers, name: str, help_text: str) -> Subparsers:
    parser = sub.add_parser(name, help=help_text, description=help_text)
    actions = parser.add_subparsers(dest=f"{name}_action", metavar="ACTION")
    actions.required = True
    return actions


def _add_signing_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--signer-cert", required=True, metavar="PEM", help="certificate of the signer"
    )
    parser.add_argument(
        "--signer-key", required=True, metavar="PEM", help="RSA private key of the signer"
    )
    parser.add_argument(
        "--key-password",
        metavar="PASSWORD",
        help=f"password of an encrypted signer key (default: ${KEY_PASSWORD_ENV}, if set)",
    )
    parser.add_argument(
        "--digest",
        type=str.lower,
        choices=tuple(_DIGESTS),
        default="sha1",
        help="signature digest (default sha1, as CUCM writes)",
    )
    parser.add_argument(
        "--timestamp",
        metavar="WHEN",
        help="header time: Unix seconds or ISO 8601 (UTC if no offset); default now",
    )
    parser.add_argument(
        "--filename",
        metavar="NAME",
        help="file name written in the header (default: the output file's name)",
    )
    parser.add_argument("-o", "--output", required=True, metavar="OUT", help="file to write")


def _register_tlv(sub: Subparsers) -> None:
    actions = _group(sub, "tlv", "ITL and CTL trust lists (.tlv)")

    show = actions.add_parser(
        "show", help="print header, records, checksums and signature status (show itl)"
    )
    show.add_argument("file", help="ITL or CTL file")
    show.add_argument("--json", action="store_true", help="print JSON instead of text")
    show.set_defaults(handler=tlv_show)

    verify = actions.add_parser("verify", help="exit 0 if the signature verifies, 1 if it does not")
    verify.add_argument("file", help="ITL or CTL file")
    verify.add_argument(
        "--cert",
        metavar="PEM",
        help="verify with this certificate (default: the file's SAST record matching the signer)",
    )
    verify.add_argument("--json", action="store_true", help="print JSON instead of text")
    verify.set_defaults(handler=tlv_verify)

    build = actions.add_parser(
        "build",
        help="build and sign an ITL/CTL in CUCM's element order",
        description=(
            "Build and sign an ITL or CTL. Records are written in the order given, each with "
            "CUCM's element order 1..10; the header is version 1.2 without tag 28."
        ),
    )
    build.add_argument(
        "--record",
        action="append",
        required=True,
        metavar="ROLE:CERT.pem[:DNSNAME[:IP]]",
        help=(
            "add a record (repeatable). ROLE is a name (SAST, CCM, CCM+TFTP, TFTP, CAPF, SRST, "
            "APP-SERVER, TVS) or a number; an empty CERT makes a certificateless record"
        ),
    )
    _add_signing_options(build)
    build.set_defaults(handler=tlv_build)


def _register_sgn(sub: Subparsers) -> None:
    actions = _group(sub, "sgn", "signed files (.sgn, .enc.sgn)")

    show = actions.add_parser("show", help="print the signed header and the payload checksums")
    show.add_argument("file", help=".sgn or .enc.sgn file")
    show.add_argument("--cert", metavar="PEM", help="also check the signature with this cert")
    show.add_argument("--json", action="store_true", help="print JSON instead of text")
    show.set_defaults(handler=sgn_show)

    verify = actions.add_parser(
        "verify", help="exit 0 if the signature verifies with --cert, 1 if it does not"
    )
    verify.add_argument("file", help=".sgn or .enc.sgn file")
    verify.add_argument("--cert", required=True, metavar="PEM", help="signer certificate")
    verify.add_argument("--json", action="store_true", help="print JSON instead of text")
    verify.set_defaults(handler=sgn_verify)

    sign = actions.add_parser("sign", help="sign a file into a .sgn (header version 1.0)")
    sign.add_argument("file", help="file to sign (e.g. SEP<MAC>.cnf.xml)")
    _add_signing_options(sign)
    sign.set_defaults(handler=sgn_sign)

    strip = actions.add_parser("strip", help="write the original file inside a .sgn")
    strip.add_argument("file", help=".sgn file")
    strip.add_argument("-o", "--output", required=True, metavar="OUT", help="file to write")
    strip.set_defaults(handler=sgn_strip)


def _register_image(sub: Subparsers) -> None:
    actions = _group(sub, "image", "phone firmware images")
    show = actions.add_parser(
        "show", help="print the image header (legacy TLV or CD3412AB container) and hash check"
    )
    show.add_argument("file", help="firmware file (.loads, .sbn, .sb2, .zz.sgn, ...)")
    show.add_argument(
        "--cert", metavar="PEM", help="also check the (emulated) signature with this cert"
    )
    show.add_argument("--json", action="store_true", help="print JSON instead of text")
    show.set_defaults(handler=image_show)


# --- input and output --------------------------------------------------------------------------


def _read(path: str) -> bytes:
    """The bytes of ``path``; a file that cannot be read is a usage error."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read ({exc.strerror or exc})") from None


def _write(path: str, data: bytes) -> None:
    try:
        Path(path).write_bytes(data)
    except OSError as exc:
        raise UsageError(f"{path}: cannot write ({exc.strerror or exc})") from None


def _certificate(path: str) -> x509.Certificate:
    data = _read(path)
    with _about(path):
        return cert_from_pem(data)


def _password(args: argparse.Namespace) -> bytes | None:
    password: str | None = args.key_password
    if password is None:
        password = os.environ.get(KEY_PASSWORD_ENV)
    return None if password is None else password.encode()


def _signer(args: argparse.Namespace) -> Signer:
    certificate = _certificate(args.signer_cert)
    data = _read(args.signer_key)
    with _about(args.signer_key):
        key = key_from_pem(data, _password(args))
    if not isinstance(key, rsa.RSAPrivateKey):
        raise UsageError(
            f"{args.signer_key}: Cisco signed headers are RSA-signed; the signer key must be RSA"
        )
    try:
        return Signer(certificate, key)
    except ValueError:
        raise UsageError(
            f"{args.signer_key}: this private key does not belong to {args.signer_cert}"
        ) from None


def _timestamp(text: str | None) -> int:
    """Unix time from ``--timestamp``; now (read here, at the edge) when absent."""
    if text is None:
        return int(time.time())
    if text.isdigit():
        value = int(text)
    else:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise UsageError(
                f"--timestamp {text!r}: use Unix seconds or ISO 8601 (2015-05-07T03:10:47Z)"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        value = int(moment.timestamp())
    if not 0 <= value <= 0xFFFFFFFF:
        raise UsageError(f"--timestamp {text!r} does not fit the header's 32-bit Unix time")
    return value


def _emit_json(view: JSONDict) -> None:
    print(json.dumps(view, indent=2))


def _out(line: str = "") -> None:
    print(line)


def _rows(rows: Sequence[tuple[str, object]], indent: str = "  ") -> None:
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        shown = "-" if value is None or value == "" else value
        _out(f"{indent}{label.ljust(width)}  {shown}")


def _file_block(path: str, kind: str, data: bytes) -> None:
    sums = checksums(data)
    _out(f"{path}  ({kind})")
    _rows(
        [
            ("Length", f"{sums['length']} bytes"),
            ("MD5", sums["md5"]),
            ("SHA-1", sums["sha1"]),
        ]
    )


def _header_block(view: JSONDict) -> None:
    signer = view["signer"]
    announced = view["modulus_bytes"]
    size = f"{view['signature_bytes']} bytes"
    if announced is None:
        size += f" (modulus index {view['modulus_index']} is unknown)"
    elif announced != view["signature_bytes"]:
        size += f" (header announces {announced})"
    else:
        size += f" (RSA-{announced * 8})"
    timestamp = view["timestamp"]
    rows: list[tuple[str, object]] = [
        ("Version", view["version"]),
        ("Header length", view["length"]),
    ]
    if view["signer_version"] is not None:
        rows.append(("Signer version", view["signer_version"]))
    rows += [
        ("Signer", signer["name"]),
        ("Signer serial", signer["serial"]),
        ("Signer issuer", signer["issuer"]),
        ("Digest", view["digest"]),
        ("Signature", f"{view['signature_algorithm']}, {size}"),
        ("File name", view["filename"]),
        (
            "Timestamp",
            None if timestamp is None else f"{timestamp} ({view['timestamp_utc']})",
        ),
        ("Layout", view["layout"]),
    ]
    if view["unknown_tags"]:
        rows.append(("Unknown tags", ", ".join(str(t) for t in view["unknown_tags"])))
    encryption = view["encryption"]
    if encryption is not None:
        rows += [
            ("Encrypted", f"AES-128-CBC, key wrapped for an RSA-{encryption['key_bits']} key"),
            ("Pad bytes", encryption["padding_count"]),
            (
                "Plain digest",
                f"{encryption['plaintext_digest']} {encryption['plaintext_digest_value']}",
            ),
        ]
    _out()
    _out("Header")
    _rows(rows)


def _records_block(view: JSONDict) -> None:
    records = view["records"]
    total = len(records)
    for record in records:
        role = record["role"]
        known = not isinstance(role, int)
        role_text = f"{role} ({record['role_code']})" if known else f"{role} (unknown role)"
        _out()
        _out(
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
        _rows(rows)


def _status_text(signature: JSONDict) -> str:
    valid = signature["valid"]
    word = "valid" if valid is True else "INVALID" if valid is False else "not checked"
    return f"{word}: {signature['reason']}"


# --- tlv ---------------------------------------------------------------------------------------


def _parse_trust_list(path: str) -> tuple[bytes, TrustList]:
    data = _read(path)
    with _about(path):
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
        _emit_json(view)
        return 0
    _file_block(path, view["kind"], data)
    _header_block(view["header"])
    _records_block(view)
    _out()
    _out(
        f"{len(view['records'])} records, {view['certificates']} certificates. "
        f"Signature {_status_text(view['signature'])}"
    )
    return 0


def _verify_trust_list(trust_list: TrustList, cert_path: str | None) -> JSONDict:
    if cert_path is None:
        return self_check_view(verify_self_signed(trust_list), trust_list)
    certificate = _certificate(cert_path)
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


def _report_verification(path: str, signature: JSONDict, as_json: bool) -> int:
    if as_json:
        _emit_json({"file": path, "signature": signature})
    else:
        _out(f"{path}: signature {_status_text(signature)}")
    return 0 if signature["valid"] is True else 1


def tlv_verify(args: argparse.Namespace) -> int:
    """``vphone tlv verify``: exit 0 if the signature verifies, 1 if not (or not checkable)."""
    path: str = args.file
    _data, trust_list = _parse_trust_list(path)
    return _report_verification(path, _verify_trust_list(trust_list, args.cert), args.json)


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
    return record_from_certificate(_certificate(cert_path), role, dns_name=dns_name, ip=ip)


def _header_filename(args: argparse.Namespace) -> str:
    name: str = args.filename if args.filename is not None else Path(args.output).name
    try:
        name.encode("ascii")
    except UnicodeEncodeError:
        raise UsageError(f"--filename {name!r}: the header file name must be ASCII") from None
    return name


def tlv_build(args: argparse.Namespace) -> int:
    """``vphone tlv build``: write a signed ITL/CTL to ``-o``."""
    records = [_parse_record_spec(spec) for spec in args.record]
    signer = _signer(args)
    filename = _header_filename(args)
    try:
        trust_list = build_trust_list(
            records,
            signer,
            filename=filename,
            timestamp=_timestamp(args.timestamp),
            digest=_DIGESTS[args.digest],
        )
        data = trust_list.encode()
    except ValueError as exc:  # e.g. a record or header too big for its 16-bit length
        raise UsageError(f"cannot build {args.output}: {exc}") from None
    _write(args.output, data)
    check = verify_self_signed(trust_list)
    roles = ", ".join(str(role_view(r.role)) for r in trust_list.records)
    _out(
        f"wrote {args.output}: {trust_list.kind} '{filename}', {len(data)} bytes, "
        f"{len(trust_list.records)} records ({roles}), {_DIGESTS[args.digest].label}, "
        f"signed by {signer.name} (serial {signer.serial.hex()})"
    )
    if check.valid is None:
        _out(
            "note: no SAST record in the file matches the signer; phones will check this file "
            "against the trust list they already hold, or ask TVS"
        )
    return 0


# --- sgn ---------------------------------------------------------------------------------------


def _parse_signed(path: str) -> tuple[bytes, SignedFile]:
    data = _read(path)
    with _about(path):
        return data, parse_signed(data)


def _verify_signed(signed: SignedFile, cert_path: str | None) -> JSONDict:
    if cert_path is None:
        return {
            "valid": None,
            "reason": "a .sgn carries no certificate to check it with (pass --cert)",
        }
    certificate = _certificate(cert_path)
    try:
        signed.verify(certificate)
    except SignatureError as exc:
        return {"valid": False, "reason": str(exc)}
    return {
        "valid": True,
        "reason": f"signature verifies with {cert_path} "
        f"(serial {serial_bytes(certificate.serial_number).hex()})",
    }


def _payload_block(view: JSONDict, *, encrypted: bool) -> None:
    payload = view["payload"]
    _out()
    _out("Payload" + (" (encrypted)" if encrypted else ""))
    _rows(
        [
            ("Length", f"{payload['length']} bytes"),
            ("MD5", payload["md5"]),
            ("SHA-1", payload["sha1"]),
        ]
    )


def sgn_show(args: argparse.Namespace) -> int:
    """``vphone sgn show``: exit 0 whenever the file parses."""
    path: str = args.file
    data, signed = _parse_signed(path)
    view: JSONDict = {
        "file": {"path": path, **checksums(data)},
        **signed_view(signed),
        "signature": _verify_signed(signed, args.cert),
    }
    if args.json:
        _emit_json(view)
        return 0
    _file_block(path, ".enc.sgn" if signed.encrypted else ".sgn", data)
    _header_block(view["header"])
    _payload_block(view, encrypted=signed.encrypted)
    _out()
    _out(f"Signature {_status_text(view['signature'])}")
    return 0


def sgn_verify(args: argparse.Namespace) -> int:
    """``vphone sgn verify``: exit 0 if the signature verifies with ``--cert``, 1 if not."""
    path: str = args.file
    _data, signed = _parse_signed(path)
    return _report_verification(path, _verify_signed(signed, args.cert), args.json)


def sgn_sign(args: argparse.Namespace) -> int:
    """``vphone sgn sign``: sign ``FILE`` into a ``.sgn`` written to ``-o``."""
    payload = _read(args.file)
    signer = _signer(args)
    filename = _header_filename(args)
    signed = build_signed(
        payload,
        signer,
        filename=filename,
        timestamp=_timestamp(args.timestamp),
        digest=_DIGESTS[args.digest],
    )
    data = signed.encode()
    _write(args.output, data)
    _out(
        f"wrote {args.output}: '{filename}', {len(data)} bytes "
        f"({len(payload)}-byte payload), {_DIGESTS[args.digest].label}, "
        f"signed by {signer.name} (serial {signer.serial.hex()})"
    )
    return 0


def sgn_strip(args: argparse.Namespace) -> int:
    """``vphone sgn strip``: write the bytes after the signed header to ``-o``."""
    path: str = args.file
    _data, signed = _parse_signed(path)
    _write(args.output, signed.payload)
    note = " (still encrypted: this is an .enc.sgn)" if signed.encrypted else ""
    _out(f"wrote {args.output}: {len(signed.payload)} bytes{note}")
    return 0


# --- image -------------------------------------------------------------------------------------


def _verify_container(image: ContainerImage, cert_path: str | None) -> JSONDict:
    if cert_path is None:
        return {
            "valid": None,
            "reason": "Cisco's image key is unknown (pass --cert for a lab image)",
        }
    key = _certificate(cert_path).public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        return {"valid": False, "reason": f"{cert_path} does not hold an RSA key"}
    try:
        image.verify(key)
    except SignatureError as exc:
        return {"valid": False, "reason": str(exc)}
    return {"valid": True, "reason": f"payload hash and signature verify with {cert_path}"}


def image_show(args: argparse.Namespace) -> int:
    """``vphone image show``: exit 0 whenever the image parses."""
    path: str = args.file
    data = _read(path)
    with _about(path):
        image = parse_image(data)
    if isinstance(image, ContainerImage):
        view: JSONDict = {
            "file": {"path": path, **checksums(data)},
            "family": "container",
            **container_view(image),
            "signature": _verify_container(image, args.cert),
        }
    else:
        signature = _verify_signed(image, args.cert)
        if args.cert is None:
            signature["reason"] = (
                "Cisco's firmware key and signature coverage are unknown "
                "(pass --cert for a lab image)"
            )
        view = {
            "file": {"path": path, **checksums(data)},
            "family": "legacy",
            **signed_view(image),
            "signature": signature,
        }
    if args.json:
        _emit_json(view)
        return 0
    if isinstance(image, ContainerImage):
        _show_container(path, data, view)
    else:
        _file_block(path, "legacy signed image", data)
        _header_block(view["header"])
        _payload_block(view, encrypted=False)
    _out()
    _out(f"Signature {_status_text(view['signature'])}")
    return 0


def _show_container(path: str, data: bytes, view: JSONDict) -> None:
    check = view["hash"]
    _file_block(path, "CD3412AB container image", data)
    _out()
    _out("Header")
    _rows(
        [
            ("Name", view["name"]),
            ("Header length", view["header_length"]),
            ("Payload length", view["payload_length"]),
            ("Signature", f"{view['signature_bytes']} bytes"),
            ("Stored SHA-256", check["stored"]),
            ("Payload SHA-256", check["computed"]),
            ("Hash check", "ok" if check["ok"] else "MISMATCH (Checksum Error)"),
        ]
    )
    _payload_block(view, encrypted=False)
