"""Lab PKI: the certificates and keys of emulated CUCM nodes, and their serialization.

:mod:`phone.pki.keys` says where keys come from, :mod:`phone.pki.certs` builds certificates
(pure: no I/O, no clock), and :mod:`phone.pki.store` serializes them and writes private files.
"""

from __future__ import annotations

from phone.pki.certs import (
    DEFAULT_ATTRIBUTES,
    DEFAULT_DAYS,
    ITLRECOVERY_YEARS,
    NODE_KEY_SIZES,
    CertKind,
    Identity,
    NameAttributes,
    NodeCertificates,
    PrivateKey,
    PublicKey,
    add_years,
    generate_node,
    issue,
    make_ca,
    node_certificate,
    node_common_name,
    self_signed,
)
from phone.pki.keys import PUBLIC_EXPONENT, FreshKeys, KeySource, PooledKeys
from phone.pki.store import (
    cert_from_der,
    cert_from_pem,
    cert_to_der,
    cert_to_pem,
    certs_from_pem,
    certs_from_pkcs12,
    certs_to_pem,
    certs_to_pkcs12,
    identity_from_pkcs12,
    identity_to_pkcs12,
    key_from_pem,
    key_to_pem,
    write_private_file,
)

__all__ = [
    "DEFAULT_ATTRIBUTES",
    "DEFAULT_DAYS",
    "ITLRECOVERY_YEARS",
    "NODE_KEY_SIZES",
    "PUBLIC_EXPONENT",
    "CertKind",
    "FreshKeys",
    "Identity",
    "KeySource",
    "NameAttributes",
    "NodeCertificates",
    "PooledKeys",
    "PrivateKey",
    "PublicKey",
    "add_years",
    "cert_from_der",
    "cert_from_pem",
    "cert_to_der",
    "cert_to_pem",
    "certs_from_pem",
    "certs_from_pkcs12",
    "certs_to_pem",
    "certs_to_pkcs12",
    "generate_node",
    "identity_from_pkcs12",
    "identity_to_pkcs12",
    "issue",
    "key_from_pem",
    "key_to_pem",
    "make_ca",
    "node_certificate",
    "node_common_name",
    "self_signed",
    "write_private_file",
]
