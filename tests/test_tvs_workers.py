"""TVS on every core (issue 17 item 5): worker processes on one port follow the lab and stop.

Loopback, ephemeral ports, every pool stopped; timings are bounds, never assertions on speed
(tools/bench_tvs.py measures that).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from clusterlab import NOW, make_lab
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from phone.cli import main
from phone.cluster.lab import Lab
from phone.cluster.records import ClusterSpec, Device, TrustStore
from phone.errors import NetworkError
from phone.net.servers import LabServer
from phone.net.tvs_tls import client_context
from phone.net.tvs_workers import TvsWorkerPool, lab_from_view, tvs_view
from phone.wire.tvs import FrameReader, decode_answer, encode_frame, verify_request

DEVICE = "CP-8845-SEP001122334455"


def _verify(address: tuple[str, int], certificate: x509.Certificate) -> bool:
    """One VERIFY on a new TLS connection: whether TVS vouched for ``certificate``."""
    der = certificate.public_bytes(Encoding.DER)
    raw = socket.create_connection(address, timeout=5)
    with client_context(None).wrap_socket(raw) as tls:
        tls.sendall(encode_frame(verify_request(7, DEVICE, der)))
        reader = FrameReader()
        while True:
            data = tls.recv(65536)
            assert data, "the server closed without answering"
            for frame in reader.feed(data):
                assert frame.session == 7
                return decode_answer(frame).valid


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _zombie(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" in status


@pytest.fixture(scope="module")
def stranger() -> x509.Certificate:
    """A CallManager certificate of another cluster: unknown to the served one."""
    other = make_lab(ClusterSpec("cluster2"))
    return other.cluster().publisher.callmanager.certificate


@pytest.fixture
def lab() -> Lab:
    return make_lab()


@pytest.fixture
def pool(lab: Lab) -> Iterator[TvsWorkerPool]:
    tvs = TvsWorkerPool(lab, lab.cluster().publisher.hostname, processes=2)
    tvs.start()
    try:
        yield tvs
    finally:
        tvs.stop()


def test_the_view_carries_what_tvs_reads_and_nothing_else(lab: Lab) -> None:
    cluster = lab.cluster()
    rebuilt = lab_from_view(tvs_view(lab)).cluster()
    assert [n.hostname for n in rebuilt.nodes] == [n.hostname for n in cluster.nodes]
    assert rebuilt.publisher.tvs.certificate == cluster.publisher.tvs.certificate
    assert rebuilt.trust(TrustStore.CALLMANAGER) == cluster.trust(TrustStore.CALLMANAGER)
    assert rebuilt.state.devices == {}
    assert rebuilt.state.log == []


def test_two_processes_answer_on_one_port_and_count_every_request(
    pool: TvsWorkerPool, lab: Lab
) -> None:
    assert len(set(pool.pids)) == 2
    assert os.getpid() not in pool.pids
    known = lab.cluster().publisher.callmanager.certificate
    assert [_verify(pool.address, known) for _ in range(6)] == [True] * 6
    assert pool.counts() == (6, 0)


def test_counts_skip_a_worker_that_died(pool: TvsWorkerPool, lab: Lab) -> None:
    known = lab.cluster().publisher.callmanager.certificate
    assert [_verify(pool.address, known) for _ in range(6)] == [True] * 6
    dead = pool.pids[0]
    os.kill(dead, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while not _gone(dead) and not _zombie(dead):  # the pool reaps it when it looks
        assert time.monotonic() < deadline
        time.sleep(0.05)
    # The dead worker took its count with it; the live one still answers (this raised a
    # broken pipe before).
    requests, dropped = pool.counts()
    assert 0 <= requests <= 6
    assert dropped == 0


def test_a_change_in_place_reaches_every_worker(
    pool: TvsWorkerPool, lab: Lab, stranger: x509.Certificate
) -> None:
    assert _verify(pool.address, stranger) is False
    with pool.lock:
        lab.cluster().add_trusted(TrustStore.CALLMANAGER, stranger, source="test", now=NOW)
    deadline = time.monotonic() + 10
    while pool.views_sent == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pool.views_sent == 1
    # Both workers hold the new view: every answer vouches now, whichever worker accepts.
    assert [_verify(pool.address, stranger) for _ in range(6)] == [True] * 6


def test_a_change_tvs_does_not_read_sends_nothing(pool: TvsWorkerPool, lab: Lab) -> None:
    with pool.lock:
        before = lab.cluster().revision
        lab.cluster().add_device(Device("001122334455"), now=NOW)  # TVS reads no device
        assert lab.cluster().revision == before + 1
    time.sleep(0.6)  # two looks of the watcher
    assert pool.views_sent == 0


def test_lab_server_swap_returns_once_every_worker_serves_the_new_lab(
    stranger: x509.Certificate,
) -> None:
    first = make_lab()
    server = LabServer(first, tvs_workers=2)
    with server:
        host = first.cluster().publisher.hostname
        address = server.address(host, "tvs")
        pool = server.server_for(host, "tvs")
        assert isinstance(pool, TvsWorkerPool)
        assert _verify(address, stranger) is False
        second = make_lab()
        second.cluster().add_trusted(TrustStore.CALLMANAGER, stranger, source="test", now=NOW)
        server.swap(second)
        # No wait: the swap returned after every worker switched.
        assert [_verify(address, stranger) for _ in range(4)] == [True] * 4
        pids = pool.pids
    assert all(_gone(pid) for pid in pids)
    assert not any(t.is_alive() for t in server.threads())


def test_stop_ends_every_worker_and_frees_the_port(lab: Lab) -> None:
    pool = TvsWorkerPool(lab, lab.cluster().publisher.hostname, processes=2)
    pool.start()
    address, pids = pool.address, pool.pids
    pool.stop()
    assert all(_gone(pid) for pid in pids)
    with pytest.raises(OSError):
        socket.create_connection(address, timeout=1).close()


def test_workers_end_when_their_parent_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "parent.py"
    script.write_text(
        "import sys, time\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from clusterlab import make_lab\n"
        "from phone.net.tvs_workers import TvsWorkerPool\n"
        "if __name__ == '__main__':\n"
        "    lab = make_lab()\n"
        "    pool = TvsWorkerPool(lab, lab.cluster().publisher.hostname, processes=2)\n"
        "    pool.start()\n"
        "    print(*pool.pids, flush=True)\n"
        "    time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        pids = [int(p) for p in parent.stdout.readline().split()]
        assert len(pids) == 2
    finally:
        parent.kill()
        parent.wait(10)
        if parent.stdout is not None:
            parent.stdout.close()
    deadline = time.monotonic() + 10
    while not all(_gone(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    # Not our children: reaped by init; gone means no process with that id answers.
    assert all(_gone(pid) for pid in pids)


def test_a_clock_the_workers_cannot_import_is_refused(lab: Lab) -> None:
    with pytest.raises(NetworkError, match="a clock they can import"):
        TvsWorkerPool(lab, "cucm1", processes=2, clock=lambda: NOW)


def test_a_node_the_lab_lacks_is_refused_before_any_process_starts(lab: Lab) -> None:
    pool = TvsWorkerPool(lab, "nowhere.lab", processes=2)
    with pytest.raises(NetworkError, match=r"no node 'nowhere\.lab'"):
        pool.start()
    assert pool.pids == []


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "--tvs-workers must be between 1 and 64, not 0"),
        ("65", "--tvs-workers must be between 1 and 64, not 65"),
        ("two", "'two' is not a number of processes"),
    ],
)
def test_lab_serve_refuses_a_bad_number_of_tvs_workers(
    tmp_path: Path, value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["lab", "serve", str(tmp_path), "--tvs-workers", value])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err
