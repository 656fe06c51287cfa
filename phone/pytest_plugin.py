"""vphone's pytest plugin: labs, phones and served labs as fixtures (``docs/harness.md``).

Installed with vphone (entry point ``pytest11: vphone``), so any test suite in an environment
where vphone is installed can write::

    def test_reboot_keeps_the_itl(vphone_phone, vphone_clock):
        vphone_phone.boot()
        before = vphone_phone.itl_hash()
        vphone_clock.advance(60)
        vphone_phone.reset()
        assert vphone_phone.itl_hash() == before

Fixtures:

``vphone_keys`` (session)
    The RSA keys of every lab of the session: generated once, on first use, and reused (RSA
    key generation would dominate the run time otherwise). Override it in a ``conftest.py``
    to bring your own (a :class:`phone.pki.PooledKeys` over keys stored with your tests).
``vphone_clock``
    A hand-driven clock shared by the lab and its phones: ``clock.now``, ``clock.advance(s)``.
``vphone_lab``
    An in-memory lab with one 14.x cluster ``cluster1``; ``@pytest.mark.vphone_lab(...)``
    passes cluster names or :class:`phone.api.ClusterSpec` objects instead.
``vphone_phone``
    A CP-8841 (MAC ``001122334455``) whose TFTP option names the lab's first cluster, and a
    device of that cluster (so it fetches ``SEP<MAC>.cnf.xml.sgn``, not ``XMLDefault``);
    ``@pytest.mark.vphone_phone(model="7962", mac=..., cluster=..., provisioned=False)``
    changes that (``provisioned=False``: no device record, the phone autoregisters).
``vphone_served_lab``
    ``vphone_lab`` served on loopback ports (TFTP, HTTP 6970, TVS, SIP, CAPF) by
    :class:`phone.net.servers.LabServer`; stopped, and its threads joined, at teardown.
``vphone_run_scenario``
    ``vphone_run_scenario(name_or_path, count=None)`` runs a scenario with the session keys and
    returns its :class:`phone.scenario.Report`.

Nothing heavy is imported until a fixture is used, so the plugin costs nothing to suites that
do not use it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

    from phone.api import Lab, VirtualPhone
    from phone.net.servers import LabServer
    from phone.scenario import Report
    from phone.scenario.runner import SimClock

__all__ = [
    "DEFAULT_MAC",
    "KEYS_PER_SIZE",
    "START",
    "SessionKeys",
    "pytest_configure",
    "vphone_clock",
    "vphone_keys",
    "vphone_lab",
    "vphone_phone",
    "vphone_run_scenario",
    "vphone_served_lab",
]

START = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
"""Where ``vphone_clock`` starts."""

DEFAULT_MAC = "001122334455"
KEYS_PER_SIZE = 12
"""Distinct keys per size in the session pool: two clusters of one node each (5 keys each)
plus two regenerations get distinct keys; after that they repeat (harmless in a lab)."""


class SessionKeys:
    """A key source that generates at most ``limit`` RSA keys per size, on demand, then cycles.

    A :class:`phone.pki.KeySource` for one test session (not shared between threads). Keys
    repeat after ``limit`` requests of one size: fine for tests, never for anything real.
    """

    def __init__(self, limit: int = KEYS_PER_SIZE) -> None:
        self.limit = limit
        self._keys: dict[int, list[RSAPrivateKey]] = {}
        self._cursor: dict[int, int] = {}

    def rsa(self, bits: int) -> RSAPrivateKey:
        """The next key of ``bits`` bits (generated the first ``limit`` times)."""
        from cryptography.hazmat.primitives.asymmetric.rsa import (  # noqa: PLC0415
            generate_private_key,
        )

        keys = self._keys.setdefault(bits, [])
        cursor = self._cursor.get(bits, 0)
        self._cursor[bits] = (cursor + 1) % self.limit
        if cursor == len(keys):
            keys.append(generate_private_key(public_exponent=65537, key_size=bits))
        return keys[cursor]


def pytest_configure(config: pytest.Config) -> None:
    """Register the plugin's markers."""
    config.addinivalue_line(
        "markers",
        "vphone_lab(*clusters): the clusters of the vphone_lab fixture (names or "
        "phone.api.ClusterSpec objects)",
    )
    config.addinivalue_line(
        "markers",
        "vphone_phone(model='8841', mac='001122334455', cluster=None, provisioned=True): "
        "the vphone_phone fixture",
    )


@pytest.fixture(scope="session")
def vphone_keys() -> SessionKeys:
    """RSA keys for every lab of the session, generated once and reused."""
    return SessionKeys()


@pytest.fixture
def vphone_clock() -> SimClock:
    """A hand-driven clock starting at 2026-06-01 09:00 UTC; ``advance(seconds)`` moves it."""
    from phone.scenario.runner import SimClock  # noqa: PLC0415

    return SimClock(START)


@pytest.fixture
def vphone_lab(
    request: pytest.FixtureRequest, vphone_keys: SessionKeys, vphone_clock: SimClock
) -> Lab:
    """An in-memory lab (one 14.x cluster, or the clusters of ``@pytest.mark.vphone_lab``)."""
    from phone.api import ClusterSpec, create_lab  # noqa: PLC0415

    marker = request.node.get_closest_marker("vphone_lab")
    clusters: tuple[ClusterSpec | str, ...] = ("cluster1",)
    if marker is not None and marker.args:
        clusters = tuple(marker.args)
    lab = create_lab(*clusters, now=vphone_clock.now, keys=vphone_keys)
    lab.clock = vphone_clock
    return lab


@pytest.fixture
def vphone_phone(
    request: pytest.FixtureRequest, vphone_lab: Lab, vphone_clock: SimClock
) -> VirtualPhone:
    """A phone (CP-8841 by default) on ``vphone_lab``'s first cluster, powered off.

    The cluster has a device record for it unless the marker says ``provisioned=False``: a
    harness that serves its own ``SEP<MAC>.cnf.xml.sgn`` must not be answered with
    ``XMLDefault.cnf.xml.sgn`` instead (issue 18).
    """
    from phone.api import create_phone  # noqa: PLC0415

    marker = request.node.get_closest_marker("vphone_phone")
    options = dict(marker.kwargs) if marker is not None else {}
    return create_phone(
        vphone_lab,
        mac=str(options.get("mac", DEFAULT_MAC)),
        model=str(options.get("model", "8841")),
        cluster=options.get("cluster"),
        clock=vphone_clock,
        provision=bool(options.get("provisioned", True)),
    )


@pytest.fixture
def vphone_served_lab(vphone_lab: Lab, vphone_clock: SimClock) -> Iterator[LabServer]:
    """``vphone_lab`` served on loopback (free ports); stopped and joined at teardown."""
    try:
        from phone.net.servers import LabServer  # noqa: PLC0415
    except ImportError as exc:  # pragma: no cover - only before the socket backends exist
        pytest.skip(f"phone.net.servers.LabServer is not available: {exc}")
    server = LabServer(vphone_lab, host="127.0.0.1", clock=vphone_clock)
    server.start()
    try:
        yield server
    finally:
        threads = server.threads()
        server.stop()
        alive = [t.name for t in threads if t.is_alive()]
        assert not alive, f"LabServer threads still running after stop(): {alive}"


@pytest.fixture
def vphone_run_scenario(vphone_keys: SessionKeys) -> Callable[..., Report]:
    """``run(name_or_path, count=None, workers=1)``: run a scenario, return its report."""
    from phone.scenario import load_scenario, run_scenario  # noqa: PLC0415

    def run(source: str | Path, count: int | None = None, workers: int = 1) -> Report:
        scenario = load_scenario(source)
        if count is not None:
            scenario = scenario.with_count(count)
        return run_scenario(scenario, keys=vphone_keys, workers=workers)

    return run
