"""Certificate fields as Cisco trust files spell them (trust-file-formats.md sections 2 and 4)."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

# CUCM writes these six attributes, in this order, whatever the certificate's DER order [C1].
_CUCM_ORDER = (
    (NameOID.COMMON_NAME, "CN"),
    (NameOID.ORGANIZATIONAL_UNIT_NAME, "OU"),
    (NameOID.ORGANIZATION_NAME, "O"),
    (NameOID.LOCALITY_NAME, "L"),
    (NameOID.STATE_OR_PROVINCE_NAME, "ST"),
    (NameOID.COUNTRY_NAME, "C"),
)
_KNOWN = {oid for oid, _ in _CUCM_ORDER}


def cucm_name(name: x509.Name) -> str:
    """``CN=..;OU=..;O=..;L=..;ST=..;C=..`` as CUCM writes a subject or issuer.

    What CUCM does with other attributes (email, DC, serialNumber) is unknown [G]; we append them
    after the six, in DER order, as ``oid-name=value``, so no information is lost.
    """
    parts: list[str] = []
    for oid, label in _CUCM_ORDER:
        for attribute in name.get_attributes_for_oid(oid):
            parts.append(f"{label}={_text(attribute.value)}")
    for attribute in name:
        if attribute.oid not in _KNOWN:
            label = attribute.oid._name
            parts.append(f"{label}={_text(attribute.value)}")
    return ";".join(parts)


def _text(value: str | bytes) -> str:
    return value if isinstance(value, str) else value.decode("latin-1")


def serial_bytes(serial: int) -> bytes:
    """A serial number as minimal unsigned big-endian bytes, no DER sign byte (section 2)."""
    return serial.to_bytes(max(1, (serial.bit_length() + 7) // 8), "big")


def public_key_bytes(certificate: x509.Certificate) -> bytes:
    """Record tag 7: RSA as DER PKCS#1 RSAPublicKey; EC as the X9.62 uncompressed point."""
    # Imported here: only building a record needs it, and the serialization package (with its
    # SSH and cipher modules) is a tenth of ``vphone tlv show``'s start (issue 17 item 4).
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415

    key = certificate.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    if isinstance(key, ec.EllipticCurvePublicKey):
        return key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    raise ValueError(f"unsupported key type {type(key).__name__} in a trust-list record")
