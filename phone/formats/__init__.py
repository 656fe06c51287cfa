"""Pure codecs for Cisco trust files: bytes in, typed immutable models out, and back.

Nothing in this package opens files, sockets or reads the clock.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

# Each name is imported from its module on first use (PEP 562), so a command that needs one
# codec does not import them all: `vphone tlv show` starts near the cost of importing
# cryptography.x509 (issue 17 item 4).
_HOMES = {
    "ContainerImage": "phone.formats.firmware",
    "build_container": "phone.formats.firmware",
    "parse_container": "phone.formats.firmware",
    "parse_image": "phone.formats.firmware",
    "Digest": "phone.formats.header",
    "EncryptionInfo": "phone.formats.header",
    "Header": "phone.formats.header",
    "Tag": "phone.formats.header",
    "digest_label": "phone.formats.header",
    "parse_header": "phone.formats.header",
    "Signer": "phone.formats.signature",
    "verify_signature": "phone.formats.signature",
    "SignedFile": "phone.formats.signed",
    "build_encrypted": "phone.formats.signed",
    "build_signed": "phone.formats.signed",
    "decrypt": "phone.formats.signed",
    "parse_signed": "phone.formats.signed",
    "strip_signature": "phone.formats.signed",
    "Element": "phone.formats.tlv",
    "Record": "phone.formats.trustlist",
    "Role": "phone.formats.trustlist",
    "SelfCheck": "phone.formats.trustlist",
    "TrustList": "phone.formats.trustlist",
    "build_trust_list": "phone.formats.trustlist",
    "certificateless_record": "phone.formats.trustlist",
    "find_by_signer": "phone.formats.trustlist",
    "find_sast": "phone.formats.trustlist",
    "parse_trust_list": "phone.formats.trustlist",
    "record_from_certificate": "phone.formats.trustlist",
    "role_label": "phone.formats.trustlist",
    "verify_self_signed": "phone.formats.trustlist",
    "verify_with_certificate": "phone.formats.trustlist",
}


def __getattr__(name: str) -> Any:  # noqa: ANN401 - whatever the module holds
    module = _HOMES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


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
