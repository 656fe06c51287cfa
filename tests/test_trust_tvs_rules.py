"""The phone's TVS client (items 21-24 of phone-behaviour.md; tvs-capf-wire.md 1.3, 1.6, 1.7).

What it caches and under which key, which servers it goes on to, and the words of each outcome.
"""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from trustkit import NOW, Kit, key_of

from phone.errors import NetworkError
from phone.formats.certfields import serial_bytes
from phone.pki import self_signed
from phone.trust.tvs import (
    QueryNotAnswered,
    ServerCheck,
    TvsAnswer,
    TvsClient,
    TvsOutcome,
    TvsServer,
)

# The subject attributes of every vphone lab certificate (phone.pki defaults), CUCM-style.
LAB = "OU=VTG;O=vphone lab;L=SJ;ST=CA;C=US"


@pytest.fixture(scope="module")
def kit() -> Kit:
    return Kit.make("tvsr1")


@pytest.fixture(scope="module")
def other() -> Kit:
    return Kit.make("tvsr2")


class Network:
    """Scripted TVS members: per host a list of answers (or exceptions), used in turn."""

    def __init__(
        self,
        answers: dict[str, list[TvsAnswer | Exception]],
        server_cert: x509.Certificate,
    ) -> None:
        self.answers = answers
        self.server_cert = server_cert
        self.calls: list[tuple[str, bytes | None]] = []  # (host, DER of a VERIFY or None)

    def __call__(
        self,
        server: TvsServer,
        issuer: str,
        serial: bytes,
        check_server: ServerCheck,
        certificate: bytes | None,
    ) -> TvsAnswer:
        self.calls.append((server.host, certificate))
        problem = check_server(self.server_cert)
        if problem is not None:
            raise NetworkError(f"TLS refused: {problem}")
        answer = self.answers[server.host].pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(Encoding.DER)


def vouch(
    certificate: x509.Certificate, ttl: int = 600, roles: tuple[int, ...] = (0,)
) -> TvsAnswer:
    return TvsAnswer(True, roles, ttl, (der(certificate),))


def test_item23_two_queries_about_different_signers_are_two_questions(kit: Kit, other: Kit) -> None:
    """A QUERY's cached answer is about its issuer and serial: another signer is asked anew."""
    first, second = other.itlrecovery.certificate, other.callmanager.certificate
    network = Network({"tvs1": [vouch(first), vouch(second)]}, kit.tvs.certificate)
    client = TvsClient()
    servers = [TvsServer("tvs1")]
    a = client.ask(
        *key_of(other.itlrecovery), itl=kit.itl(), servers=servers, exchange=network, now=NOW
    )
    b = client.ask(
        *key_of(other.callmanager), itl=kit.itl(), servers=servers, exchange=network, now=NOW
    )
    assert (a.certificate, b.certificate) == (first, second)
    assert not b.cached
    assert network.calls == [("tvs1", None), ("tvs1", None)]  # two QUERYs
    assert len(client) == 2
    # Each is now answered from its own entry.
    again = client.ask(
        *key_of(other.callmanager), itl=kit.itl(), servers=servers, exchange=network, now=NOW
    )
    assert again.cached and again.certificate == second


def test_item23_verify_answers_are_cached_per_certificate(kit: Kit, other: Kit) -> None:
    held = other.itlrecovery.certificate
    network = Network({"tvs1": [vouch(held)]}, kit.tvs.certificate)
    client = TvsClient()
    servers = [TvsServer("tvs1")]
    issuer, serial = key_of(other.itlrecovery)
    client.ask(
        issuer, serial, itl=kit.itl(), servers=servers, exchange=network, now=NOW, certificate=held
    )
    again = client.ask(
        issuer, serial, itl=kit.itl(), servers=servers, exchange=network, now=NOW, certificate=held
    )
    assert again.cached and again.certificate == held
    assert network.calls == [("tvs1", der(held))]


def test_item22_vouching_answer_word_for_word(kit: Kit, other: Kit) -> None:
    wanted = other.itlrecovery.certificate
    network = Network({"tvs1": [vouch(wanted, ttl=86400, roles=(3, 1))]}, kit.tvs.certificate)
    outcome = TvsClient().ask(
        *key_of(other.itlrecovery),
        itl=kit.itl(),
        servers=[TvsServer("tvs1")],
        exchange=network,
        now=NOW,
    )
    # Item 23: CUCM answered a TTL of 86 400 s; roles 3 (TFTP) and 1 (CCM), section 5.
    assert outcome == TvsOutcome(
        True,
        frozenset({1, 3}),
        wanted,
        "tvs1:2445",
        "TVS tvs1:2445 vouched (TTL 86400 s)",
        "item 22",
    )


def test_item23_a_ttl_of_zero_is_not_cached(kit: Kit, other: Kit) -> None:
    wanted = other.itlrecovery.certificate
    network = Network({"tvs1": [vouch(wanted, ttl=0), vouch(wanted, ttl=0)]}, kit.tvs.certificate)
    client = TvsClient()
    servers = [TvsServer("tvs1")]
    issuer, serial = key_of(other.itlrecovery)
    first = client.ask(issuer, serial, itl=kit.itl(), servers=servers, exchange=network, now=NOW)
    assert first.reason == "TVS tvs1:2445 vouched (TTL 0 s)"
    assert len(client) == 0
    second = client.ask(issuer, serial, itl=kit.itl(), servers=servers, exchange=network, now=NOW)
    assert not second.cached
    assert network.calls == [("tvs1", None), ("tvs1", None)]


def test_item21_server_certificate_outside_the_itl_word_for_word(kit: Kit, other: Kit) -> None:
    presented = other.tvs.certificate  # another cluster's TVS (e.g. regenerated, item 27)
    network = Network({"tvs1": [vouch(other.itlrecovery.certificate)]}, presented)
    outcome = TvsClient().ask(
        *key_of(other.itlrecovery),
        itl=kit.itl(),
        servers=[TvsServer("tvs1")],
        exchange=network,
        now=NOW,
    )
    serial = serial_bytes(presented.serial_number).hex()
    assert outcome.reason == (
        f"TVS tvs1:2445: TLS refused: server certificate CN=tvs1.tvsr2.lab;{LAB} (serial "
        f"{serial}) is not a TVS record of the installed ITL (fail closed)"
    )
    assert (outcome.valid, outcome.rule) == (False, "item 24")


def test_item24_query_dropped_by_a_verify_only_server_goes_on_to_the_next(
    kit: Kit, other: Kit
) -> None:
    """tvsd drops a QUERY unanswered (tvs-capf-wire.md 1.7): the phone asks the next member, and
    later QUERYs skip that server until a reboot; a VERIFY still goes to it."""
    wanted = other.itlrecovery.certificate
    dropped = QueryNotAnswered("connection closed without an answer")
    network = Network(
        {"tvs1": [dropped, vouch(wanted, ttl=0)], "tvs2": [vouch(wanted, ttl=0)] * 2},
        kit.tvs.certificate,
    )
    client = TvsClient()
    servers = [TvsServer("tvs1"), TvsServer("tvs2")]
    issuer, serial = key_of(other.itlrecovery)
    first = client.ask(issuer, serial, itl=kit.itl(), servers=servers, exchange=network, now=NOW)
    assert (first.valid, first.server) == (True, "tvs2:2445")
    second = client.ask(issuer, serial, itl=kit.itl(), servers=servers, exchange=network, now=NOW)
    assert (second.valid, second.server) == (True, "tvs2:2445")
    assert network.calls == [("tvs1", None), ("tvs2", None), ("tvs2", None)]
    verify = client.ask(
        issuer,
        serial,
        itl=kit.itl(),
        servers=servers,
        exchange=network,
        now=NOW,
        certificate=wanted,
    )
    assert verify.server == "tvs1:2445"


def test_item24_no_server_answering_a_query_fails_closed_word_for_word(
    kit: Kit, other: Kit
) -> None:
    network = Network(
        {"tvs1": [QueryNotAnswered("connection closed without an answer")]}, kit.tvs.certificate
    )
    client = TvsClient()
    issuer, serial = key_of(other.itlrecovery)
    servers = [TvsServer("tvs1")]
    outcome = client.ask(issuer, serial, itl=kit.itl(), servers=servers, exchange=network, now=NOW)
    assert outcome == TvsOutcome(
        False,
        frozenset(),
        None,
        None,
        "TVS tvs1:2445: connection closed without an answer: it answers VERIFY only, and the "
        "phone holds no certificate for this signer to VERIFY (fail closed)",
        "item 24",
    )
    again = client.ask(issuer, serial, itl=kit.itl(), servers=servers, exchange=network, now=NOW)
    assert again.reason == (
        "TVS tvs1:2445 answers VERIFY only (it dropped a QUERY before) (fail closed)"
    )


def test_item22_query_answer_never_takes_a_certificate_matching_the_issuer_alone(
    kit: Kit, other: Kit
) -> None:
    """tvs-capf-wire.md 1.6: of the certificates a QUERY answer carries, the phone takes the one
    whose serial and issuer are both the ones asked about."""
    wanted = other.itlrecovery.certificate
    namesake = self_signed(  # same subject, so the same issuer (self-signed); another serial
        "ITLRECOVERY_cucm1.tvsr2.lab", now=NOW, key=kit.capf.key, serial=wanted.serial_number + 1
    ).certificate
    assert namesake.issuer == wanted.issuer
    issuer, serial = key_of(other.itlrecovery)
    answers: list[TvsAnswer | Exception] = [
        TvsAnswer(True, (0,), 600, (der(namesake), der(wanted))),
        TvsAnswer(True, (0,), 600, (der(namesake),)),
    ]
    network = Network({"tvs1": answers}, kit.tvs.certificate)
    servers = [TvsServer("tvs1")]
    outcome = TvsClient().ask(
        issuer, serial, itl=kit.itl(), servers=servers, exchange=network, now=NOW
    )
    assert outcome.certificate == wanted
    outcome = TvsClient().ask(
        issuer, serial, itl=kit.itl(), servers=servers, exchange=network, now=NOW
    )
    assert (outcome.valid, outcome.certificate, outcome.rule) == (False, None, "item 24")
