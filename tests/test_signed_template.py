"""encode_signed (a ``.sgn`` from a per-signer header template, issue 17) is build_signed.

The TFTP service signs one config per phone with ``encode_signed``, which lays a header out once
per signer, version, digest, timestamp presence and file-name length and writes the name, the
timestamp and the signature into it. Every byte must be the one ``build_signed(...).encode()``
gives, and the signature must cover the same bytes (section 3: the header without the signature
element, then the payload). RSA PKCS#1 v1.5 is deterministic, so equal files prove both.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phone.formats import signed
from phone.formats.header import Digest, HeaderSpec, layout_header
from phone.formats.signature import Signer
from phone.formats.signed import build_signed, encode_signed, parse_signed
from phone.formats.tlv import Element

PAYLOAD = b'<?xml version="1.0" encoding="UTF-8"?>\n<device><macAddress>0011223344AA</macAddress>'


def both(signer: Signer, payload: bytes, **kwargs: object) -> tuple[bytes, bytes]:
    built = build_signed(payload, signer, **kwargs).encode()  # type: ignore[arg-type]
    return encode_signed(payload, signer, **kwargs), built  # type: ignore[arg-type]


@pytest.mark.parametrize("size", range(1, 13))
@pytest.mark.parametrize("timestamp", [None, 0, 1_700_000_000, 2**32 - 1])
def test_every_name_length_around_the_padding_and_every_timestamp(
    small_signer: Signer, size: int, timestamp: int | None
) -> None:
    # The header is padded to a multiple of 4 (section 3): 12 name lengths reach every padding
    # size with and without the 4-byte timestamp, twice.
    name = ("SEP0011223344AA.cnf.xml.sgn" * 2)[:size]
    fast, built = both(small_signer, PAYLOAD, filename=name, timestamp=timestamp)
    assert fast == built
    parsed = parse_signed(fast)
    assert parsed.header.filename == name
    assert parsed.header.timestamp == timestamp
    assert parsed.payload == PAYLOAD
    parsed.verify(small_signer.certificate)


@pytest.mark.parametrize("digest", [Digest.SHA1, Digest.SHA512])
@pytest.mark.parametrize("version", [(1, 0), (1, 2)])
def test_2048_bit_signer_each_digest_and_version(
    rsa_signer: Signer, digest: Digest, version: tuple[int, int]
) -> None:
    fast, built = both(
        rsa_signer,
        PAYLOAD,
        filename="SEP0011223344AA.cnf.xml.sgn",
        timestamp=1_767_225_600,
        digest=digest,
        version=version,
    )
    assert fast == built
    header = parse_signed(fast).header
    assert header.digest is digest
    assert header.version == version
    assert len(header.signature) == 256


def test_templates_of_two_signers_with_one_name_length_stay_apart(
    rsa_signer: Signer, small_signer: Signer
) -> None:
    # One template per signer: the second signer's file names the second signer and carries
    # its signature size, though every other key of the template is the same.
    kwargs = {"filename": "SEP0011223344AA.cnf.xml.sgn", "timestamp": 5}
    first, _ = both(rsa_signer, PAYLOAD, **kwargs)
    second, built = both(small_signer, PAYLOAD, **kwargs)
    assert second == built
    assert parse_signed(first).header.signer_name.startswith("CN=ITLRECOVERY_cucm-pub;")
    assert parse_signed(second).header.signer_name.startswith("CN=small-signer;")
    assert len(parse_signed(second).header.signature) == 128


def test_the_same_template_serves_names_of_one_length(small_signer: Signer) -> None:
    # Two phones' names of one length: one template, each file its own name and signature.
    a, built_a = both(small_signer, PAYLOAD, filename="SEP0011223344AA.cnf.xml.sgn", timestamp=9)
    b, built_b = both(small_signer, PAYLOAD, filename="SEP0011223344BB.cnf.xml.sgn", timestamp=9)
    assert (a, b) == (built_a, built_b)
    assert parse_signed(b).header.filename == "SEP0011223344BB.cnf.xml.sgn"
    assert parse_signed(a).header.signature != parse_signed(b).header.signature


def test_a_name_that_is_not_ascii_is_refused_as_build_signed_refuses_it(
    small_signer: Signer,
) -> None:
    with pytest.raises(UnicodeEncodeError):
        build_signed(PAYLOAD, small_signer, filename="SEPé.cnf.xml.sgn", timestamp=1)
    with pytest.raises(UnicodeEncodeError):
        encode_signed(PAYLOAD, small_signer, filename="SEPé.cnf.xml.sgn", timestamp=1)


def test_a_timestamp_beyond_32_bits_is_refused_as_build_signed_refuses_it(
    small_signer: Signer,
) -> None:
    with pytest.raises(struct.error):
        build_signed(PAYLOAD, small_signer, filename="a.sgn", timestamp=2**32)
    with pytest.raises(struct.error):
        encode_signed(PAYLOAD, small_signer, filename="a.sgn", timestamp=2**32)


@settings(max_examples=60, deadline=None)
@given(
    name=st.text(st.characters(min_codepoint=1, max_codepoint=127), min_size=0, max_size=70),
    payload=st.binary(max_size=300),
    timestamp=st.one_of(st.none(), st.integers(0, 2**32 - 1)),
)
def test_any_ascii_name_payload_and_timestamp(
    small_signer: Signer, name: str, payload: bytes, timestamp: int | None
) -> None:
    fast, built = both(small_signer, payload, filename=name, timestamp=timestamp)
    assert fast == built


def test_the_templates_kept_are_bounded(small_signer: Signer) -> None:
    for size in range(1, 300):
        encode_signed(PAYLOAD, small_signer, filename="n" * size, timestamp=None)
        assert len(signed._TEMPLATES) <= 256
    fast, built = both(small_signer, PAYLOAD, filename="n" * 299, timestamp=None)
    assert fast == built


def test_one_layout_per_signer_and_size_of_name_and_timestamp(
    small_signer: Signer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The point of the template: a fleet's configs (one name length, one timestamp) are laid
    # out once; a name or a timestamp of another size gets its own template.
    laid: list[str] = []
    real = layout_header

    def counting(spec: HeaderSpec, signature: bytes) -> tuple[Element, ...]:
        laid.append(spec.filename)
        return real(spec, signature)

    monkeypatch.setattr(signed, "layout_header", counting)
    monkeypatch.setattr(signed, "_TEMPLATES", {})
    for mac in ("0011223344AA", "0011223344BB", "0011223344CC"):
        fast, built = both(small_signer, PAYLOAD, filename=f"SEP{mac}.cnf.xml.sgn", timestamp=7)
        assert fast == built
    assert laid == ["SEP0011223344AA.cnf.xml.sgn"]  # build_signed lays out in header.py
    laid.clear()
    encode_signed(PAYLOAD, small_signer, filename="SEP0011223344AA.cnf.xml.sgn", timestamp=None)
    encode_signed(PAYLOAD, small_signer, filename="XMLDefault.cnf.xml.sgn", timestamp=7)
    assert laid == ["SEP0011223344AA.cnf.xml.sgn", "XMLDefault.cnf.xml.sgn"]
