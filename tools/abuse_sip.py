"""Abuse probe: guessing SIP digest passwords, then a phone from another source registers.

Creates a lab folder (one 14.x cluster, one phone with digest on), loads it and serves its
publisher's registrar on 127.0.0.1 with :class:`phone.net.sip.SipRegistrar` (what ``vphone
lab serve`` runs), with the throttle parameters given (default: the lab's, 10 failures within
300 s). Then, over UDP on loopback:

1. from 127.0.0.3, one wrong password and one unknown user, the same request bytes but the
   credentials: are the answers identical (status line and every header but the To tag)?
2. from 127.0.0.2, ``--guesses`` wrong passwords for the phone's digest user (each a REGISTER,
   and when challenged, the REGISTER with credentials), then the right password;
3. from 127.0.0.1, the phone registers (``sip_register``, as ``vphone boot --server``).

``--target HOST:PORT`` aims the probe at a registrar already listening on loopback (``vphone
lab serve``'s SIP port; ``--registrar``, ``--mac``, ``--user``, ``--password`` name a phone
of that lab whose digest is on): ``tools/abuse.py`` runs it so.

Bounded: at most ``--guesses`` + 1 guesses, each waiting at most 2 s for an answer; loopback
only (Linux answers all of 127.0.0.0/8). Prints one line:

    sip abuse: 10000 wrong passwords from 127.0.0.2 in 1.2 s: 10 checked, 9990 throttled ...

    python tools/abuse_sip.py [--guesses 10000] [--failures N] [--lockout S]
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import random
import socket
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from phone.cluster.records import ClusterSpec, Device
from phone.cluster.store import edit_lab, init_lab, load_lab
from phone.device.port import RegisterRequest, Requester
from phone.net.sip import SipRegistrar, sip_register
from phone.vendor import manufacturing_cas
from phone.wire.sip import (
    RegisterClient,
    SipRequest,
    SipResponse,
    answer_challenge,
    encode_message,
    parse_challenge,
    parse_message,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from keypool import pooled_keys

NOW = datetime(2026, 6, 1, tzinfo=UTC)
HOST = "cucm1.cluster1.lab"
MAC, USER, PASSWORD = "001122334455", "alice", "s3cret-pw"


def make_lab(folder: Path, failures: int | None, lockout: int | None) -> None:
    """A lab folder with one phone whose digest is on, and the throttle parameters given."""
    init_lab(folder, ClusterSpec(), now=NOW, keys=pooled_keys(), capf_trust=manufacturing_cas())
    with edit_lab(folder) as lab:
        cluster = lab.cluster()
        cluster.add_device(
            Device(MAC, digest_user=USER, digest_password=PASSWORD, digest_authentication=True),
            now=NOW,
        )
        if failures is not None:
            cluster.set_parameter("sip-auth-failures", str(failures), now=NOW)
        if lockout is not None:
            cluster.set_parameter("sip-auth-lockout", str(lockout), now=NOW)


class Guesser:
    """A third-party client (no MAC: identified by its digest user) on one loopback address."""

    def __init__(
        self,
        local: str,
        server: tuple[str, int],
        *,
        host: str = HOST,
        mac: str = MAC,
        user: str = USER,
        password: str = PASSWORD,
    ) -> None:
        self.host, self.mac, self.user, self.password = host, mac, user, password
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((local, 0))
        self.sock.connect(server)
        self.sock.settimeout(2.0)
        self.local = local
        self.port = int(self.sock.getsockname()[1])
        self.calls = 0

    def close(self) -> None:
        self.sock.close()

    def exchange(self, request: SipRequest) -> SipResponse:
        self.sock.send(encode_message(request))
        answer = parse_message(self.sock.recv(65535))
        assert isinstance(answer, SipResponse)
        return answer

    def register(self) -> SipRequest:
        self.calls += 1
        request = RegisterClient(
            registrar=self.host,
            transport="udp",
            local=(self.local, self.port),
            mac=self.mac,
            model="8841",
            user=self.user,
            password=self.password,
            random=random.Random(self.calls).randbytes,
        ).start()
        contact = f"<sip:{self.user}@{self.local}:{self.port}>"
        return request.replace_headers(("Contact", contact), drop=("Contact",))

    def answered(
        self, request: SipRequest, challenge: SipResponse, user: str, password: str
    ) -> SipRequest:
        credentials = answer_challenge(
            parse_challenge(challenge.header("WWW-Authenticate")),
            username=user,
            password=password,
            method="REGISTER",
            uri=request.uri,
            cnonce="0a4f113b",
            nc=1,
        )
        self.calls += 1
        return request.replace_headers(
            ("Via", f"SIP/2.0/UDP {self.local}:{self.port};branch=z9hG4bKg{self.calls}"),
            ("CSeq", "2 REGISTER"),
            ("Authorization", credentials.render()),
            drop=("Via", "CSeq", "Authorization"),
        )

    def guess(self, user: str, password: str) -> SipResponse:
        """One whole guess; the last answer (a 403 before any challenge when throttled)."""
        request = self.register()
        first = self.exchange(request)
        if first.status != 401:
            return first
        return self.exchange(self.answered(request, first, user, password))


def comparable(response: SipResponse) -> tuple[object, ...]:
    headers = tuple(
        (n, v.split(";tag=")[0] if n == "To" else v) for n, v in response.headers if n != "Via"
    )
    return (response.status, response.reason, headers)


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What the probe saw (module docstring)."""

    guesses: int
    elapsed: float
    checked: int
    throttled: int
    accepted: int
    right: SipResponse
    phone_ok: bool
    phone_text: str
    identical: bool

    def guessing(self) -> str:
        right = (
            "ACCEPTED"
            if self.right.status == 200
            else f"refused ({self.right.status}"
            f"{' Retry-After' if self.right.get('Retry-After') else ''})"
        )
        return (
            f"{self.guesses} wrong passwords from 127.0.0.2 in {self.elapsed:.1f} s: "
            f"{self.checked} checked, {self.throttled} throttled (403 Retry-After), "
            f"{self.accepted} accepted; right password then {right}; phone from 127.0.0.1 "
            f"{self.phone_text}"
        )

    def throttled_ok(self) -> bool:
        """The throttle's target: no guess accepted, guesses throttled, the right password
        refused from the guessing source, the phone from another source registered."""
        return (
            self.accepted == 0 and self.throttled > 0 and self.right.status != 200 and self.phone_ok
        )


def probe(
    address: tuple[str, int],
    *,
    guesses: int,
    host: str = HOST,
    mac: str = MAC,
    user: str = USER,
    password: str = PASSWORD,
) -> Outcome:
    """The three steps of the module docstring against the registrar at ``address`` (UDP)."""
    who = {"host": host, "mac": mac, "user": user, "password": password}
    # 1. Identical answers, from a third address (so the guesses below start at 0).
    third = Guesser("127.0.0.3", address, **who)
    request = third.register()
    answers = []
    for name in (user, "nobody"):
        challenge = third.exchange(request)
        answer = third.exchange(third.answered(request, challenge, name, "wrong"))
        answers.append(comparable(answer))
        request = request.replace_headers(
            ("Via", f"SIP/2.0/UDP 127.0.0.3:{third.port};branch=z9hG4bKagain"),
            drop=("Via",),
        )
    third.close()
    identical = answers[0] == answers[1]
    # 2. The guesses.
    attacker = Guesser("127.0.0.2", address, **who)
    checked = throttled = accepted = 0
    started = time.perf_counter()
    for i in range(guesses):
        answer = attacker.guess(user, f"guess{i}")
        if answer.status == 200:
            accepted += 1
        elif answer.get("Retry-After") is not None:
            throttled += 1
        else:
            checked += 1
    elapsed = time.perf_counter() - started
    right = attacker.guess(user, password)
    attacker.close()
    # 3. The phone, from another source.
    phone = RegisterRequest(
        callmanager=host,
        port=address[1],
        transport="udp",
        requester=Requester(mac=mac, model="8841"),
        digest_user=user,
        digest_password=password,
    )
    began = time.perf_counter()
    result = sip_register(address, phone, timeout=2.0)
    took = (time.perf_counter() - began) * 1000
    phone_text = (
        f"registered first time in {took:.0f} ms"
        if result.ok
        else f"FAILED ({result.code} {result.reason})"
    )
    return Outcome(
        guesses, elapsed, checked, throttled, accepted, right, result.ok, phone_text, identical
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--guesses", type=int, default=10_000)
    parser.add_argument("--failures", type=int, default=None, help="sip-auth-failures")
    parser.add_argument("--lockout", type=int, default=None, help="sip-auth-lockout")
    parser.add_argument(
        "--target", help="HOST:PORT of a running registrar (UDP, loopback only), e.g. lab serve's"
    )
    parser.add_argument("--registrar", default=HOST, help="its host name (with --target)")
    parser.add_argument("--mac", default=MAC, help="the phone's MAC (with --target)")
    parser.add_argument("--user", default=USER, help="its digest user (with --target)")
    parser.add_argument("--password", default=PASSWORD, help="its digest password (--target)")
    args = parser.parse_args(argv)
    if args.target:
        host, _, port = args.target.rpartition(":")
        if not ipaddress.ip_address(host).is_loopback:
            parser.error("--target must be a loopback address")
        outcome = probe(
            (host, int(port)),
            guesses=args.guesses,
            host=args.registrar,
            mac=args.mac,
            user=args.user,
            password=args.password,
        )
        setting = "the served lab's throttle"
        throttle_on = True
    else:
        with tempfile.TemporaryDirectory(prefix="abuse-sip-") as tmp:
            folder = Path(tmp) / "lab"
            make_lab(folder, args.failures, args.lockout)
            lab = load_lab(folder)
            server = SipRegistrar(lab, HOST, listen=("127.0.0.1", 0))
            server.start()
            try:
                outcome = probe(server.udp_address, guesses=args.guesses)
            finally:
                server.stop()
            params = lab.cluster().parameters
        throttle_on = bool(params.sip_auth_failures and params.sip_auth_lockout)
        setting = (
            f"throttle {params.sip_auth_failures} failures/{params.sip_auth_lockout} s"
            if throttle_on
            else "throttle off"
        )
    print(
        f"sip abuse ({setting}): {outcome.guessing()}; unknown-user and wrong-password answers "
        f"{'identical' if outcome.identical else 'DIFFERENT'}",
        flush=True,
    )
    ok = outcome.identical and outcome.phone_ok and outcome.accepted == 0
    if throttle_on:
        ok = ok and outcome.throttled_ok()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
