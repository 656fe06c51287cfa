"""Pure codecs for Cisco trust files: bytes in, typed immutable models out, and back.

Nothing in this package opens files, sockets or reads the clock.
"""

from __future__ import annotations

from phone.formats.firmware import ContainerImage, build_container, parse_container, parse_image
from phone.formats.header import Digest, EncryptionInfo, Header, Tag, digest_label, parse_header
from phone.formats.signature import Signer, verify_signature
from phone.formats.signed import (
    SignedFile,
    build_encrypted,
    build_signed,
    decrypt,
    parse_signed,
    strip_signature,
)
from phone.formats.tlv import Element
from phone.formats.trustlist import (
    Record,
    Role,
    SelfCheck,
    TrustList,
    build_trust_list,
    certificateless_record,
    find_by_signer,
    find_sast,
    parse_trust_list,
    record_from_certificate,
    role_label,
    verify_self_signed,
    verify_with_certificate,
)

__all__ = [
    "ContainerImage",
    "Digest",
    "Element",
    "EncryptionInfo",
    "Header",
    "Record",
    "Role",
    "SelfCheck",
    "SignedFile",
    "Signer",
    "Tag",
    "TrustList",
    "build_container",
    "build_encrypted",
    "build_signed",
    "build_trust_list",
    "certificateless_record",
    "decrypt",
    "digest_label",
    "find_by_signer",
    "find_sast",
    "parse_container",
    "parse_header",
    "parse_image",
    "parse_signed",
    "parse_trust_list",
    "record_from_certificate",
    "role_label",
    "strip_signature",
    "verify_self_signed",
    "verify_signature",
    "verify_with_certificate",
]
