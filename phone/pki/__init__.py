"""Lab PKI: the certificates and keys of emulated CUCM nodes, and their serialization.

:mod:`phone.pki.keys` says where keys come from, :mod:`phone.pki.certs` builds certificates
(pure: no I/O, no clock), and :mod:`phone.pki.store` serializes them and writes private files.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
        is_temporary,
        key_from_pem,
        key_to_pem,
        private_folder,
        sweep_temporaries,
        write_private_file,
    )

# Each name is imported from its module on first use (PEP 562), so a command that needs one
# codec does not import them all: `vphone tlv show` starts near the cost of importing
# cryptography.x509 (issue 17 item 4).
_HOMES = {
    "DEFAULT_ATTRIBUTES": "phone.pki.certs",
    "DEFAULT_DAYS": "phone.pki.certs",
    "ITLRECOVERY_YEARS": "phone.pki.certs",
    "NODE_KEY_SIZES": "phone.pki.certs",
    "CertKind": "phone.pki.certs",
    "Identity": "phone.pki.certs",
    "NameAttributes": "phone.pki.certs",
    "NodeCertificates": "phone.pki.certs",
    "PrivateKey": "phone.pki.certs",
    "PublicKey": "phone.pki.certs",
    "add_years": "phone.pki.certs",
    "generate_node": "phone.pki.certs",
    "issue": "phone.pki.certs",
    "make_ca": "phone.pki.certs",
    "node_certificate": "phone.pki.certs",
    "node_common_name": "phone.pki.certs",
    "self_signed": "phone.pki.certs",
    "PUBLIC_EXPONENT": "phone.pki.keys",
    "FreshKeys": "phone.pki.keys",
    "KeySource": "phone.pki.keys",
    "PooledKeys": "phone.pki.keys",
    "cert_from_der": "phone.pki.store",
    "cert_from_pem": "phone.pki.store",
    "cert_to_der": "phone.pki.store",
    "cert_to_pem": "phone.pki.store",
    "certs_from_pem": "phone.pki.store",
    "certs_from_pkcs12": "phone.pki.store",
    "certs_to_pem": "phone.pki.store",
    "certs_to_pkcs12": "phone.pki.store",
    "identity_from_pkcs12": "phone.pki.store",
    "identity_to_pkcs12": "phone.pki.store",
    "is_temporary": "phone.pki.store",
    "key_from_pem": "phone.pki.store",
    "key_to_pem": "phone.pki.store",
    "private_folder": "phone.pki.store",
    "sweep_temporaries": "phone.pki.store",
    "write_private_file": "phone.pki.store",
}


def __getattr__(name: str) -> Any:  # noqa: ANN401 - whatever the module holds
    module = _HOMES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


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
    "is_temporary",
    "issue",
    "key_from_pem",
    "key_to_pem",
    "make_ca",
    "node_certificate",
    "node_common_name",
    "private_folder",
    "self_signed",
    "sweep_temporaries",
    "write_private_file",
]
