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

Bounded: at most ``--guesses`` + 1 guesses, each waiting at most 2 s for an answer; loopback
only (Linux answers all of 127.0.0.0/8). Prints one line:

    sip abuse: 10000 wrong passwords from 127.0.0.2 in 1.2 s: 10 checked, 9990 throttled ...

    python tools/abuse_sip.py [--guesses 10000] [--failures N] [--lockout S]
"""

from __future__ import annotations

import argparse
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

    def __init__(self, local: str, server: tuple[str, int]) -> None:
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
            registrar=HOST,
            transport="udp",
            local=(self.local, self.port),
            mac=MAC,
            model="8841",
            user=USER,
            password=PASSWORD,
            random=random.Random(self.calls).randbytes,
        ).start()
        contact = f"<sip:{USER}@{self.local}:{self.port}>"
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--guesses", type=int, default=10_000)
    parser.add_argument("--failures", type=int, default=None, help="sip-auth-failures")
    parser.add_argument("--lockout", type=int, default=None, help="sip-auth-lockout")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="abuse-sip-") as tmp:
        folder = Path(tmp) / "lab"
        make_lab(folder, args.failures, args.lockout)
        lab = load_lab(folder)
        server = SipRegistrar(lab, HOST, listen=("127.0.0.1", 0))
        server.start()
        try:
            address = server.udp_address
            # 1. Identical answers, from a third address (so the guesses below start at 0).
            probe = Guesser("127.0.0.3", address)
            request = probe.register()
            answers = []
            for user in (USER, "nobody"):
                challenge = probe.exchange(request)
                answer = probe.exchange(probe.answered(request, challenge, user, "wrong"))
                answers.append(comparable(answer))
                request = request.replace_headers(
                    ("Via", f"SIP/2.0/UDP 127.0.0.3:{probe.port};branch=z9hG4bKagain"),
                    drop=("Via",),
                )
            probe.close()
            identical = answers[0] == answers[1]
            # 2. The guesses.
            attacker = Guesser("127.0.0.2", address)
            checked = throttled = accepted = 0
            started = time.perf_counter()
            for i in range(args.guesses):
                answer = attacker.guess(USER, f"guess{i}")
                if answer.status == 200:
                    accepted += 1
                elif answer.get("Retry-After") is not None:
                    throttled += 1
                else:
                    checked += 1
            elapsed = time.perf_counter() - started
            right = attacker.guess(USER, PASSWORD)
            attacker.close()
            # 3. The phone, from another source.
            phone = RegisterRequest(
                callmanager=HOST,
                port=address[1],
                transport="udp",
                requester=Requester(mac=MAC, model="8841"),
                digest_user=USER,
                digest_password=PASSWORD,
            )
            began = time.perf_counter()
            result = sip_register(address, phone, timeout=2.0)
            took = (time.perf_counter() - began) * 1000
        finally:
            server.stop()
        params = lab.cluster().parameters
    setting = (
        f"throttle {params.sip_auth_failures} failures/{params.sip_auth_lockout} s"
        if params.sip_auth_failures and params.sip_auth_lockout
        else "throttle off"
    )
    right_text = (
        "ACCEPTED"
        if right.status == 200
        else f"refused ({right.status}{' Retry-After' if right.get('Retry-After') else ''})"
    )
    phone_text = (
        f"registered first time in {took:.0f} ms"
        if result.ok
        else f"FAILED ({result.code} {result.reason})"
    )
    print(
        f"sip abuse ({setting}): {args.guesses} wrong passwords from 127.0.0.2 in "
        f"{elapsed:.1f} s: {checked} checked, {throttled} throttled (403 Retry-After), "
        f"{accepted} accepted; right password then {right_text}; phone from 127.0.0.1 "
        f"{phone_text}; unknown-user and wrong-password answers "
        f"{'identical' if identical else 'DIFFERENT'}",
        flush=True,
    )
    ok = identical and result.ok and accepted == 0
    if params.sip_auth_failures and params.sip_auth_lockout:
        ok = ok and right.status != 200 and throttled > 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
