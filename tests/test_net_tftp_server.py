"""The lab's TFTP server (phone/net/tftp_server.py) under malformed and hostile packets, and
its RFC 1350/2347/2348/2349/7440 behaviour, on loopback with ephemeral ports.

The rule tested: one datagram affects at most its own transfer. Each malformed kind is sent
while a good transfer is half-way (a raw client holding block 1), which must then complete.
Every server is stopped by its fixture, which asserts its thread ended.
"""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import MappingProxyType

import pytest

from phone.cluster.files import ClientInfo
from phone.net.tftp import TftpFileServer, fetch_tftp

BIG = os.urandom(5_000)  # ten 512-byte blocks and a short one
FILES = {"big.bin": BIG, "small.txt": b"line one\nline two\r\n", "empty.bin": b""}
Address = tuple[str, int]


def provide(name: str, client: ClientInfo) -> bytes | None:
    return FILES.get(name)


@pytest.fixture
def server() -> Iterator[TftpFileServer]:
    srv = TftpFileServer(provide, timeout=0.2, retries=3, max_per_source=8, label="test")
    srv.start()
    thread = srv.thread
    yield srv
    srv.stop()
    assert thread is not None and not thread.is_alive()


def rrq(name: bytes, mode: bytes = b"octet", **options: object) -> bytes:
    body = name + b"\x00" + mode + b"\x00"
    for key, value in options.items():
        body += key.encode() + b"\x00" + str(value).encode() + b"\x00"
    return b"\x00\x01" + body


class RawClient:
    """A TFTP client by hand: requests, holds a transfer half-way, finishes it."""

    def __init__(self, server: Address) -> None:
        self.server = server
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(2.0)
        self.tid: Address | None = None
        self.blksize = 512
        self.window = 1
        self.block = 0
        self.data = bytearray()
        self.oack: dict[str, str] = {}
        self.done = False

    def close(self) -> None:
        self.sock.close()

    def send(self, datagram: bytes, to: Address | None = None) -> None:
        self.sock.sendto(datagram, to or self.tid or self.server)

    def receive(self) -> bytes:
        datagram, peer = self.sock.recvfrom(70_000)
        if self.tid is None:
            self.tid = peer
        assert peer == self.tid, f"a packet from {peer}, not the transfer's TID {self.tid}"
        return datagram

    def start(
        self,
        name: str,
        *,
        mode: bytes = b"octet",
        options: Mapping[str, object] = MappingProxyType({}),
        **more: object,
    ) -> bytes:
        """Request ``name``; return the first answer (after OACK/ACK 0, DATA 1)."""
        self.send(rrq(name.encode(), mode, **options, **more), self.server)
        first = self.receive()
        if first[:2] == b"\x00\x06":
            fields = first[2:-1].split(b"\x00")
            self.oack = {
                fields[i].decode(): fields[i + 1].decode() for i in range(0, len(fields), 2)
            }
            self.blksize = int(self.oack.get("blksize", 512))
            self.window = int(self.oack.get("windowsize", 1))
            self.send(struct.pack("!HH", 4, 0))
            first = self.receive()
        if first[:2] == b"\x00\x03":
            self._take(first)
        return first

    def _take(self, datagram: bytes) -> bool:
        """Keep a DATA packet if it is the next block; True when it was the last."""
        assert datagram[:2] == b"\x00\x03", datagram[:60]
        number = struct.unpack("!H", datagram[2:4])[0]
        if number == (self.block + 1) & 0xFFFF:
            self.block += 1
            self.data += datagram[4:]
            if len(datagram) - 4 < self.blksize:
                self.done = True
        return self.done

    def finish(self) -> bytes:
        """Acknowledge and receive until the last block; return the file."""
        received = 1
        while True:
            if self.done or received >= self.window:
                self.send(struct.pack("!HH", 4, self.block & 0xFFFF))
                received = 0
                if self.done:
                    return bytes(self.data)
            self._take(self.receive())
            received += 1


@pytest.fixture
def raw(server: TftpFileServer) -> Iterator[RawClient]:
    client = RawClient(server.address)
    yield client
    client.close()


def reply(sock: socket.socket, timeout: float = 0.3) -> bytes | None:
    sock.settimeout(timeout)
    try:
        return sock.recv(70_000)
    except TimeoutError:
        return None


def wait_for(condition: Callable[[], bool], seconds: float = 2.0) -> bool:
    """The server thread updates its counters just after it answers: poll briefly."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def error_code(datagram: bytes | None) -> int | None:
    if datagram is None:
        return None
    assert datagram[:2] == b"\x00\x05", datagram[:40]
    return int(struct.unpack("!H", datagram[2:4])[0])


# --- each malformed kind, sent to the request port while a transfer is half-way -------------

MALFORMED = {
    "short packet": (b"\x00", None),
    "empty datagram": (b"", None),
    "unknown opcode": (b"\x00\x09hello\x00", 4),
    "non-ASCII file name": (b"\x00\x01\xff\xfe\x00octet\x00", 4),
    "unterminated file name": (b"\x00\x01big.bin", 4),
    "no mode": (b"\x00\x01big.bin\x00", 4),
    "bad mode": (b"\x00\x01big.bin\x00mail\x00", 4),
    "option without a value": (b"\x00\x01big.bin\x00octet\x00blksize\x00", 4),
    "DATA to the request port": (b"\x00\x03\x00\x01hello", None),
    "DATA cut short": (b"\x00\x03\x00", None),
    "ACK from an unknown TID": (b"\x00\x04\x00\x01", None),
    "ERROR packet": (b"\x00\x05\x00\x01boom\x00", None),
    "OACK to a server": (b"\x00\x06blksize\x00512\x00", None),
    "oversized datagram": (b"\x00\x01" + b"A" * 60_000 + b"\x00octet\x00", 4),
    "write request": (b"\x00\x02big.bin\x00octet\x00", 2),
    "traversal": (b"\x00\x01../../etc/passwd\x00octet\x00", 2),
}


@pytest.mark.parametrize("kind", list(MALFORMED))
def test_malformed_request_leaves_a_concurrent_transfer_alone(
    server: TftpFileServer, raw: RawClient, kind: str
) -> None:
    datagram, expected = MALFORMED[kind]
    raw.start("big.bin")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as attacker:
        attacker.bind(("127.0.0.1", 0))
        attacker.sendto(datagram, server.address)
        assert error_code(reply(attacker)) == expected
    assert raw.finish() == BIG
    host, port = server.address
    assert fetch_tftp(host, port, "big.bin", timeout=0.5, retries=2) == BIG
    assert server.thread is not None and server.thread.is_alive()


@pytest.mark.parametrize(
    ("options", "negotiated"),
    [
        ({"blksize": "zz"}, {}),  # non-numeric: ignored, the transfer uses 512
        ({"blksize": "7"}, {}),  # under RFC 2348's 8
        ({"blksize": "9" * 30}, {}),  # absurdly long
        ({"blksize": "+512"}, {}),  # int() would take it; the RFC's decimal does not
        ({"blksize": "70000"}, {}),  # over 65464
        ({"blksize": "65464"}, {"blksize": "65464"}),
        ({"timeout": "200"}, {}),  # within RFC 2349 but over our 10 s: omitted
        ({"timeout": "0"}, {}),
        ({"windowsize": "0"}, {}),
        ({"windowsize": "1000"}, {"windowsize": "32"}),  # answered smaller (RFC 7440)
        ({"tsize": "x"}, {}),
        ({"unknown": "1"}, {}),  # unknown options are ignored (RFC 2347)
    ],
)
def test_bad_option_values_are_ignored_not_fatal(
    server: TftpFileServer, raw: RawClient, options: dict[str, str], negotiated: dict[str, str]
) -> None:
    first = raw.start("big.bin", options=options)
    assert raw.oack == negotiated
    assert first[:2] == b"\x00\x03"
    assert raw.finish() == BIG


# --- packets on a transfer's own port ---------------------------------------------------------


@pytest.mark.parametrize(
    "datagram",
    [b"\x00\x04\x00\x02", b"\x00\x03\x00\x01evil", b"\x00\x05\x00\x00stop\x00", b"\x00"],
)
def test_packets_from_an_unknown_tid_get_error_5_and_leave_the_transfer(
    server: TftpFileServer, raw: RawClient, datagram: bytes
) -> None:
    raw.start("big.bin")
    assert raw.tid is not None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as intruder:
        intruder.bind(("127.0.0.1", 0))
        intruder.sendto(datagram, raw.tid)
        answer = reply(intruder)
        if datagram[:2] == b"\x00\x05":
            assert answer is None  # an ERROR is never answered
        else:
            assert error_code(answer) == 5
    assert raw.finish() == BIG


@pytest.mark.parametrize(
    "datagram", [b"\x00\x04\x00", b"\x00\x03\x00\x01data", b"\x00\x09", b"\x00\x06x\x00"]
)
def test_a_malformed_packet_from_the_client_ends_its_own_transfer_only(
    server: TftpFileServer, raw: RawClient, datagram: bytes
) -> None:
    other = RawClient(server.address)
    try:
        other.start("big.bin")
        raw.start("big.bin")
        raw.send(datagram)
        assert error_code(raw.receive()) == 4
        assert other.finish() == BIG
    finally:
        other.close()
    assert wait_for(lambda: server.stats.failed == 1)


def test_an_error_from_the_client_ends_its_transfer_silently(
    server: TftpFileServer, raw: RawClient
) -> None:
    raw.start("big.bin")
    raw.send(b"\x00\x05\x00\x00cancelled\x00")
    assert reply(raw.sock) is None
    assert server.transfers == 0 and server.stats.failed == 1


def test_a_bug_while_handling_a_datagram_costs_that_transfer_only(
    server: TftpFileServer, raw: RawClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from phone.net import tftp_server

    other = RawClient(server.address)
    try:
        other.start("big.bin")
        raw.start("big.bin")
        original = tftp_server._Transfer.acknowledged
        victim = raw.sock.getsockname()

        def broken(self: tftp_server._Transfer, wire: int) -> bool:
            if self.peer == victim:
                raise RuntimeError("a bug")
            return original(self, wire)

        monkeypatch.setattr(tftp_server._Transfer, "acknowledged", broken)
        raw.send(struct.pack("!HH", 4, 1))
        assert error_code(raw.receive()) == 0
        assert other.finish() == BIG
    finally:
        other.close()


# --- floods and limits ---------------------------------------------------------------------


def test_a_flood_of_unacknowledged_requests_cannot_push_out_a_transfer_in_progress(
    server: TftpFileServer,
) -> None:
    host, port = server.address
    good = RawClient(server.address)
    flooders = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(10)]
    try:
        good.start("big.bin")
        good.send(struct.pack("!HH", 4, 1))  # progress: it acknowledged a block
        good._take(good.receive())
        for n in range(300):
            flooders[n % 10].sendto(rrq(b"big.bin"), (host, port))
            if n % 50 == 0:
                time.sleep(0.01)
        time.sleep(0.1)
        assert server.transfers <= server.max_per_source
        assert server.stats.evicted > 0
        assert good.finish() == BIG
        assert fetch_tftp(host, port, "big.bin", timeout=0.5, retries=3) == BIG
    finally:
        good.close()
        for s in flooders:
            s.close()


def test_when_every_slot_makes_progress_a_new_request_is_told_busy() -> None:
    with TftpFileServer(provide, max_per_source=2, timeout=0.5) as srv:
        clients = [RawClient(srv.address) for _ in range(3)]
        try:
            for client in clients[:2]:
                client.start("big.bin")
                client.send(struct.pack("!HH", 4, 1))
                client._take(client.receive())
            clients[2].send(rrq(b"big.bin"), srv.address)
            answer = clients[2].sock.recv(1000)
            assert error_code(answer) == 0 and b"busy" in answer
            assert [c.finish() for c in clients[:2]] == [BIG, BIG]
            assert srv.stats.busy == 1
        finally:
            for client in clients:
                client.close()


def test_retransmissions_are_bounded_and_a_silent_transfer_ends(
    server: TftpFileServer, raw: RawClient
) -> None:
    raw.start("big.bin")
    copies = 1
    while reply(raw.sock, timeout=0.5) is not None:
        copies += 1
    assert copies == 1 + server.retries
    assert server.transfers == 0 and server.stats.failed == 1


def test_a_transfer_has_a_deadline_however_it_is_acknowledged() -> None:
    with TftpFileServer(provide, max_duration=0.3) as srv:
        client = RawClient(srv.address)
        try:
            client.start("big.bin")
            answers = []
            for _ in range(10):
                time.sleep(0.1)
                client.send(struct.pack("!HH", 4, client.block))
                answer = client.receive()
                answers.append(answer[:2])
                if answer[:2] == b"\x00\x05":
                    break
                client._take(answer)
            assert answers[-1] == b"\x00\x05"
        finally:
            client.close()


def test_duplicate_acks_are_not_answered_sorcerers_apprentice(
    server: TftpFileServer, raw: RawClient
) -> None:
    raw.start("big.bin")
    raw.send(struct.pack("!HH", 4, 1))
    raw._take(raw.receive())
    raw.send(struct.pack("!HH", 4, 1))  # a duplicate of the ACK just sent
    assert reply(raw.sock, timeout=0.1) is None
    assert raw.finish() == BIG


def test_a_resent_request_does_not_start_a_second_transfer(
    server: TftpFileServer, raw: RawClient
) -> None:
    raw.start("big.bin")
    raw.send(rrq(b"big.bin"), server.address)
    time.sleep(0.05)
    assert server.transfers == 1
    assert raw.finish() == BIG


# --- the RFCs -----------------------------------------------------------------------------------


def test_options_blksize_tsize_timeout_windowsize(server: TftpFileServer, raw: RawClient) -> None:
    raw.start("big.bin", blksize=1428, tsize=0, timeout=2, windowsize=4)
    assert raw.oack == {
        "blksize": "1428",
        "tsize": str(len(BIG)),
        "timeout": "2",
        "windowsize": "4",
    }
    assert raw.finish() == BIG


@pytest.mark.parametrize("window", [1, 3, 32])
def test_windowsize_downloads(server: TftpFileServer, raw: RawClient, window: int) -> None:
    raw.start("big.bin", blksize=100, windowsize=window)
    assert raw.finish() == BIG


def test_block_numbers_roll_over(server: TftpFileServer, raw: RawClient) -> None:
    data = os.urandom(8 * 65_540)  # more than 65535 blocks of 8 bytes
    FILES["huge.bin"] = data
    try:
        raw.start("huge.bin", blksize=8, windowsize=32)
        assert raw.finish() == data
    finally:
        del FILES["huge.bin"]


def test_a_file_of_whole_blocks_ends_with_an_empty_block(
    server: TftpFileServer, raw: RawClient
) -> None:
    FILES["exact.bin"] = b"x" * 1024
    try:
        raw.start("exact.bin")
        assert raw.finish() == b"x" * 1024
        assert raw.block == 3
    finally:
        del FILES["exact.bin"]


def test_empty_file(server: TftpFileServer, raw: RawClient) -> None:
    assert raw.start("empty.bin") == b"\x00\x03\x00\x01"
    assert raw.finish() == b""


def test_netascii_mode_converts_line_ends(server: TftpFileServer, raw: RawClient) -> None:
    raw.start("small.txt", mode=b"NetASCII")
    assert raw.finish() == b"line one\r\nline two\r\x00\r\n"


def test_not_found_is_error_1(server: TftpFileServer, raw: RawClient) -> None:
    assert error_code(raw.start("missing.bin")) == 1


def test_stop_ends_transfers_and_closes_their_sockets() -> None:
    srv = TftpFileServer(provide)
    srv.start()
    client = RawClient(srv.address)
    try:
        client.start("big.bin")
        assert srv.transfers == 1
        srv.stop()
        assert srv.transfers == 0
        assert srv.thread is None
    finally:
        client.close()


@pytest.mark.skipif(shutil.which("tftp") is None, reason="tftp-hpa is not installed")
@pytest.mark.parametrize("mode", ["binary", "ascii"])
def test_tftp_hpa_client(server: TftpFileServer, tmp_path: Path, mode: str) -> None:
    host, port = server.address
    target = tmp_path / "out"
    subprocess.run(
        [
            "tftp",
            host,
            str(port),
            "-m",
            mode,
            "-c",
            "get",
            "big.bin" if mode == "binary" else "small.txt",
            str(target),
        ],
        check=True,
        timeout=10,
        capture_output=True,
    )
    # the client converts netascii back: CR LF -> LF, CR NUL -> CR
    expected = BIG if mode == "binary" else b"line one\nline two\r\n"
    assert target.read_bytes() == expected
