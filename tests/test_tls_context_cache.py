"""The TLS server context cache (issue 17 item 5): a server asks for its context on every new
connection, so the same certificate objects must find their context without fingerprinting
them again, and a regenerated certificate (a new object) must get a context of its own."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from phone.net import tvs_tls
from phone.net.tvs_tls import server_context
from phone.pki import Identity, self_signed

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def _identity(name: str) -> Identity:
    return self_signed(name, now=NOW, key=ec.generate_private_key(ec.SECP256R1()))


def test_the_same_objects_skip_the_fingerprints(monkeypatch: pytest.MonkeyPatch) -> None:
    identity = _identity("tvs1.c.lab")
    anchor = _identity("CAPF-c")
    first = server_context(identity, (anchor.certificate,))
    fingerprinted: list[x509.Certificate] = []
    original = tvs_tls._fingerprint

    def counting(certificate: x509.Certificate) -> bytes:
        fingerprinted.append(certificate)
        return original(certificate)

    monkeypatch.setattr(tvs_tls, "_fingerprint", counting)
    for _ in range(3):  # three more connections
        assert server_context(identity, (anchor.certificate,)) is first
    assert fingerprinted == []


def test_a_new_certificate_object_gets_its_own_context() -> None:
    old = _identity("tvs1.c.lab")
    regenerated = _identity("tvs1.c.lab")
    assert server_context(old, ()) is not server_context(regenerated, ())
    # Other anchors (the CAPF-trust store changed) are another context too.
    anchor = _identity("CAPF-c")
    assert server_context(old, ()) is not server_context(old, (anchor.certificate,))


def test_an_equal_certificate_in_another_object_shares_the_context() -> None:
    # The fingerprint path still applies: the same certificate loaded again (a lab reloaded
    # from its folder) is the same context, found by its SHA-256.
    identity = _identity("tvs1.c.lab")
    again = Identity(
        x509.load_der_x509_certificate(identity.certificate.public_bytes(Encoding.DER)),
        identity.key,
    )
    assert again.certificate is not identity.certificate
    assert server_context(again, ()) is server_context(identity, ())
