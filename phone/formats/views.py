"""Plain-data views of parsed trust files, for JSON output and for tests.

Every function here is pure: it takes a parsed model and returns dicts, lists, strings, numbers,
booleans and None only, so ``json.dumps`` can print the result as is. The key names are part of
the CLI's contract (``vphone tlv show --json``): add keys, do not rename them.

Conventions: serial numbers and hashes are lowercase hex; roles are their ``show itl`` names
("SAST", "CCM+TFTP", ...) and unknown role codes stay numbers; record indexes count from 1 like
``show itl``; element layouts read like the spec, e.g. ``1,2,3{4,5,6},7{8,9{10,11}},12,14,15,pad``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from phone.formats.header import MODULUS_SIZES, RSA_PKCS1, EncryptionInfo, Header, Tag, digest_label
from phone.formats.tlv import Element
from phone.formats.trustlist import Record, RecordTag, Role, SelfCheck, TrustList

if TYPE_CHECKING:  # annotations only: `vphone tlv show` does not import the firmware codecs
    from phone.formats.firmware import ContainerImage
    from phone.formats.signed import SignedFile

__all__ = [
    "JSONDict",
    "checksums",
    "container_view",
    "element_layout",
    "header_view",
    "record_view",
    "role_view",
    "self_check_view",
    "signed_view",
    "timestamp_text",
    "trust_list_view",
]

JSONDict = dict[str, Any]
"""A JSON object as built here (values are JSON-compatible)."""

PADDING_LABEL = "pad"

_HEADER_TAGS = frozenset(int(tag) for tag in Tag)
_RECORD_TAGS = frozenset(int(tag) for tag in RecordTag)


def element_layout(elements: Iterable[Element]) -> str:
    """The tags of ``elements`` in file order, containers with their children in braces.

    Padding bytes read ``pad``, so CUCM's header reads ``1,2,3{4,5,6},7{8,9{10,11}},12,14,15,pad``.
    """
    parts: list[str] = []
    for element in elements:
        if element.single_byte:
            parts.append(PADDING_LABEL)
        elif element.children is not None:
            parts.append(f"{element.tag}{{{element_layout(element.children)}}}")
        else:
            parts.append(str(element.tag))
    return ",".join(parts)


def _unknown_tags(elements: Iterable[Element], known: frozenset[int]) -> list[int]:
    """Tags at any depth that no source describes, in file order, each once."""
    seen: list[int] = []
    for element in elements:
        if not element.single_byte and element.tag not in known and element.tag not in seen:
            seen.append(element.tag)
        if element.children is not None:
            for tag in _unknown_tags(element.children, known):
                if tag not in seen:
                    seen.append(tag)
    return seen


def timestamp_text(timestamp: int | None) -> str | None:
    """Unix time as ISO 8601 UTC (``2015-05-07T03:10:47Z``), or None."""
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def checksums(data: bytes) -> JSONDict:
    """Length, MD5 and SHA-1 of a whole file (the checksums ``show itl`` prints)."""
    return {
        "length": len(data),
        "md5": hashlib.md5(data).hexdigest(),
        "sha1": hashlib.sha1(data).hexdigest(),
    }


def _encryption_view(info: EncryptionInfo) -> JSONDict:
    return {
        "iv": info.iv.hex(),
        "padding_count": info.padding_count,
        "key_bits": info.key_bits,
        "key_algorithm": info.key_algorithm,
        "encrypted_key_bytes": len(info.encrypted_key),
        "plaintext_digest": digest_label(info.digest_code),
        "plaintext_digest_code": info.digest_code,
        "plaintext_digest_value": info.plaintext_digest.hex(),
    }


def header_view(header: Header) -> JSONDict:
    """The signed header: version, signer, digest, signature size, file name, time, layout."""
    index = header.modulus_index
    announced = MODULUS_SIZES[index] if index < len(MODULUS_SIZES) else None
    return {
        "version": header.version_text,
        "length": header.length,
        "signer_version": (
            None if header.signer_version is None else "{}.{}".format(*header.signer_version)
        ),
        "signer": {
            "name": header.signer_name,
            "serial": header.serial_hex,
            "issuer": header.signer_issuer,
        },
        "digest": digest_label(header.digest_code),
        "digest_code": header.digest_code,
        "signature_algorithm": (
            "RSA" if header.signature_algorithm == RSA_PKCS1 else header.signature_algorithm
        ),
        "modulus_index": index,
        "modulus_bytes": announced,
        "signature_bytes": len(header.signature),
        "filename": header.filename,
        "timestamp": header.timestamp,
        "timestamp_utc": timestamp_text(header.timestamp),
        "padding": sum(1 for e in header.elements if e.single_byte),
        "layout": element_layout(header.elements),
        "unknown_tags": _unknown_tags(header.elements, _HEADER_TAGS),
        "encryption": None if header.encryption is None else _encryption_view(header.encryption),
    }


def role_view(code: int) -> str | int:
    """A role's ``show itl`` name, or the bare number for a code no source names."""
    try:
        return Role(code).label
    except ValueError:
        return code


def record_view(record: Record, index: int) -> JSONDict:
    """One trust-list record; ``index`` counts from 1."""
    ip = record.ip_text
    if ip is None and record.ip is not None:
        ip = record.ip.hex()  # not 4 bytes: show what is there rather than hide it
    return {
        "index": index,
        "offset": record.offset,
        "length": record.size,
        "role": role_view(record.role),
        "role_code": record.role,
        "subject": record.subject,
        "issuer": record.issuer,
        "serial": record.serial_hex if record.serial is not None else None,
        "dns_name": record.dns_name,
        "ip": ip,
        "has_certificate": record.certificate_der is not None,
        "certificate_sha1": record.certificate_sha1,
        "layout": element_layout(record.elements),
        "unknown_tags": _unknown_tags(record.elements, _RECORD_TAGS),
    }


def self_check_view(check: SelfCheck, trust_list: TrustList) -> JSONDict:
    """The outcome of checking a list against its own SAST record.

    ``valid`` is True, False, or None when no record in the file matches the signer; ``record``
    is the 1-based index of the matching record, or None.
    """
    index: int | None = None
    if check.record is not None:
        for position, record in enumerate(trust_list.records, start=1):
            if record is check.record:
                index = position
                break
    return {"valid": check.valid, "reason": check.reason, "record": index}


def trust_list_view(trust_list: TrustList) -> JSONDict:
    """An ITL or CTL: its kind, header and every record (the signature is checked elsewhere)."""
    return {
        "kind": trust_list.kind,
        "header": header_view(trust_list.header),
        "certificates": trust_list.certificate_count(),
        "records": [
            record_view(record, index) for index, record in enumerate(trust_list.records, 1)
        ],
    }


def signed_view(signed: SignedFile) -> JSONDict:
    """A ``.sgn``, ``.enc.sgn`` or legacy signed firmware file: header and payload summary."""
    return {
        "header": header_view(signed.header),
        "encrypted": signed.encrypted,
        "payload": checksums(signed.payload),
    }


def container_view(image: ContainerImage) -> JSONDict:
    """A 78xx/88xx container image: its fixed header fields and the payload hash check."""
    computed = hashlib.sha256(image.payload).hexdigest()
    return {
        "name": image.name,
        "header_length": image.header_length,
        "payload_length": image.payload_length,
        "signature_bytes": len(image.signature),
        "hash": {
            "algorithm": "SHA-256",
            "stored": image.payload_sha256.hex(),
            "computed": computed,
            "ok": image.hash_matches(),
        },
        "payload": checksums(image.payload),
    }
