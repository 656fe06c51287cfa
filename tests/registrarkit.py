"""Helpers for the registrar rule tests (not a test module): hand-built SIP requests, a
recording random source and digest answers, so a test controls every header it sends."""

from __future__ import annotations

import random
from collections.abc import Iterator

from clusterlab import NOW

from phone.cluster.cluster import Cluster
from phone.cluster.registrar import Registrar, Source
from phone.wire.sip import (
    Challenge,
    SipRequest,
    SipResponse,
    answer_challenge,
    parse_challenge,
    parse_name_addr,
)

MAC = "001122334455"
USER, PASSWORD = "alice", "s3cret-pw"
PHONE = Source("10.1.2.3", 5060, "udp")
# The Contact of a Cisco phone: its MAC in +sip.instance (RFC 5626 instance ID, Cisco's form).
CONTACT = f'<sip:1000@10.1.2.3:5060>;+sip.instance="<urn:uuid:00000000-0000-0000-0000-{MAC}>"'


class Draws:
    """A seeded random source that records how many bytes each call drew."""

    def __init__(self, seed: int = 7) -> None:
        self.sizes: list[int] = []
        self.values: list[bytes] = []
        self._random = random.Random(seed)

    def __call__(self, n: int) -> bytes:
        value = self._random.randbytes(n)
        self.sizes.append(n)
        self.values.append(value)
        return value


def reset(cluster: Cluster) -> Iterator[Cluster]:
    """Yield ``cluster`` and undo what a test changed in it (the lab is shared by a module)."""
    yield cluster
    cluster.sip_auth_reset()
    for mac in list(cluster.devices):
        cluster.remove_device(mac, now=NOW)
    for name, value in (
        ("autoregistration", "true"),
        ("sip-station-realm", "ccmsipline"),
        ("nonce-validity", "600"),
        ("sip-auth-failures", "10"),
    ):
        cluster.set_parameter(name, value, now=NOW)


def make_registrar(cluster: Cluster, draws: Draws | None = None) -> Registrar:
    return Registrar(cluster, cluster.publisher.hostname, random=draws or Draws())


def request(
    cluster: Cluster,
    method: str = "REGISTER",
    *,
    contacts: tuple[str, ...] = (CONTACT,),
    n: int = 1,
    branch: str | None = None,
    extra: tuple[tuple[str, str], ...] = (),
    user: str = "1000",
) -> SipRequest:
    """A request from the phone at PHONE; ``n`` makes the transaction (branch, CSeq) distinct."""
    host = cluster.publisher.hostname
    headers: list[tuple[str, str]] = [
        ("Via", f"SIP/2.0/UDP 10.1.2.3:5060;branch={branch or f'z9hG4bKrules{n}'}"),
        ("From", f"<sip:{user}@{host}>;tag=from{n}"),
        ("To", f"<sip:{user}@{host}>"),
        ("Call-ID", f"rules-call@{host}"),
        ("CSeq", f"{n} {method}"),
    ]
    headers += [("Contact", c) for c in contacts]
    headers += extra
    return SipRequest(method, f"sip:{host}", tuple(headers))


def answer(
    req: SipRequest,
    challenge: SipResponse | Challenge,
    *,
    n: int,
    user: str = USER,
    password: str = PASSWORD,
    nc: int = 1,
    header: str = "Authorization",
) -> SipRequest:
    """``req`` again as transaction ``n``, with the digest answer to ``challenge``."""
    if isinstance(challenge, SipResponse):
        name = "WWW-Authenticate" if challenge.status == 401 else "Proxy-Authenticate"
        challenge = parse_challenge(challenge.header(name))
    credentials = answer_challenge(
        challenge,
        username=user,
        password=password,
        method=req.method,
        uri=req.uri,
        cnonce="0a4f113b",
        nc=nc,
    )
    return with_authorization(req, credentials.render(), n=n, header=header)


def with_authorization(
    req: SipRequest, value: str, *, n: int, header: str = "Authorization"
) -> SipRequest:
    via = req.header("Via")
    return req.replace_headers(
        ("Via", via.split(";branch=")[0] + f";branch=z9hG4bKrules{n}"),
        ("CSeq", f"{n} {req.method}"),
        (header, value),
        drop=("Via", "CSeq", header),
    )


def to_tag(response: SipResponse) -> str | None:
    return parse_name_addr(response.header("To")).tag


def names(response: SipResponse) -> list[str]:
    """The header names of ``response`` as they go on the wire."""
    return [name for name, _ in response.headers]
