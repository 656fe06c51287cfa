"""The registrar's nonce store holds 20,000 outstanding nonces (item 40): the oldest of more is
forgotten, and an answer to it gets a fresh challenge (not stale). Kept apart: it issues 20,000
challenges (about 3 s)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from clusterlab import NOW, make_lab
from registrarkit import MAC, PASSWORD, PHONE, USER, answer, make_registrar, request, reset

from phone.cluster.cluster import Cluster
from phone.cluster.lab import Lab
from phone.cluster.records import Device
from phone.wire.sip import parse_challenge


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    lab: Lab = make_lab()
    yield from reset(lab.cluster())


def test_item40_the_registrar_remembers_20000_nonces(cluster: Cluster) -> None:
    cluster.add_device(
        Device(MAC, digest_user=USER, digest_password=PASSWORD, digest_authentication=True),
        now=NOW,
        replace=True,
    )
    reg = make_registrar(cluster)
    first = request(cluster)
    challenge = reg.handle(first, PHONE, NOW)
    assert challenge is not None
    for n in range(2, 20_001):  # 20,000 nonces outstanding: all remembered
        reg.handle(request(cluster, n=n), PHONE, NOW)
    accepted = reg.handle(answer(first, challenge, n=30_000, nc=1), PHONE, NOW)
    assert accepted is not None and accepted.status == 200
    reg.handle(request(cluster, n=20_001), PHONE, NOW)  # the 20,001st: the oldest goes
    response = reg.handle(answer(first, challenge, n=30_001, nc=2), PHONE, NOW)
    assert response is not None and response.status == 401
    assert not parse_challenge(response.header("WWW-Authenticate")).stale
