"""Certificate fields as Cisco trust files spell them (trust-file-formats.md sections 2 and 4).

Serial numbers: "the minimal unsigned big-endian magnitude, with no DER 0x00 sign byte" (section
2). Names: CUCM's ``CN=..;OU=..;O=..;L=..;ST=..;C=..``; attributes outside the six are kept after
them as ``oid-name=value`` (section 2: what CUCM does with them is unknown [G]).
"""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID

from phone.formats.certfields import cucm_name, public_key_bytes, serial_bytes


@pytest.mark.parametrize(
    ("serial", "expected"),
    [
        (0, "00"),  # one byte even for zero
        (1, "01"),
        (0x7F, "7f"),
        (0xFF, "ff"),  # high bit set: no 00 sign byte (section 2)
        (0x100, "0100"),
        (0x24491F10703FEA9B, "24491f10703fea9b"),  # section 2, tag 5 example (S2)
    ],
)
def test_section2_serial_is_the_minimal_big_endian_magnitude(serial: int, expected: str) -> None:
    assert serial_bytes(serial).hex() == expected


def test_section2_etoken_serial_keeps_its_high_bit_without_a_sign_byte() -> None:
    # The Cisco doc's eToken serial "83:E9:08:00:00:00:55:45:AF:31": 10 bytes, no leading 00.
    serial = 0x83E9080000005545AF31
    assert serial_bytes(serial) == bytes.fromhex("83 e9 08 00 00 00 55 45 af 31")


def test_section2_name_attribute_held_as_bytes_is_read_one_byte_one_character() -> None:
    # x500UniqueIdentifier is a BIT STRING: its value arrives as bytes, not str.
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "SAST-1"),
            x509.NameAttribute(
                NameOID.X500_UNIQUE_IDENTIFIER, b"caf\xe9", _type=_ASN1Type.BitString
            ),
        ]
    )
    assert cucm_name(name) == "CN=SAST-1;x500UniqueIdentifier=caf\u00e9"


def test_section4_record_key_of_an_unsupported_type_is_refused_by_name() -> None:
    # Tag 7 holds an RSA PKCS#1 key or an EC point (section 4); an Ed25519 key has no form there.
    key = ed25519.Ed25519PrivateKey.generate()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ed25519")])
    start = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=1))
        .sign(key, None)
    )
    with pytest.raises(ValueError) as caught:
        public_key_bytes(certificate)
    assert str(caught.value) == "unsupported key type Ed25519PublicKey in a trust-list record"
