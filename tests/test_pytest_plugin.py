"""vphone's pytest plugin (``phone.pytest_plugin``, entry point ``pytest11: vphone``).

Each test runs a small test suite of its own with pytester, loading the plugin by module name
(``-p no:vphone`` first, so an installed entry point does not load it twice). The suites
override ``vphone_keys`` with the committed key pool except where the default is under test.
"""

from __future__ import annotations

import textwrap

import pytest

# Imported here so that the inner suites find them loaded: pytester forgets the modules an
# inner run imports, and importing the lab and its firmware catalogue again costs a second.
import phone.api
import phone.net.servers
import phone.scenario
from phone.pytest_plugin import SessionKeys

_PRELOADED = (phone.api, phone.net.servers, phone.scenario)

pytest_plugins = ["pytester"]

KEYPOOL_CONFTEST = textwrap.dedent(
    f"""
    import sys
    sys.path.insert(0, {str(__import__("pathlib").Path(__file__).parent)!r})
    import pytest
    from keypool import pooled_keys

    @pytest.fixture(scope="session")
    def vphone_keys():
        return pooled_keys()
    """
)

# --assert=plain: the plugin module is already imported here, so pytest could not rewrite it.
PLUGIN = (
    "-p",
    "no:vphone",
    "-p",
    "phone.pytest_plugin",
    "-p",
    "no:cacheprovider",
    "--assert=plain",
)


def run_suite(pytester: pytest.Pytester, tests: str, *, pooled: bool = True) -> pytest.RunResult:
    if pooled:
        pytester.makeconftest(KEYPOOL_CONFTEST)
    pytester.makepyfile(test_suite=textwrap.dedent(tests))
    return pytester.runpytest(*PLUGIN, "-W", "error")


def test_lab_phone_and_clock_fixtures(pytester: pytest.Pytester) -> None:
    result = run_suite(
        pytester,
        """
        import pytest
        from phone.api import ClusterSpec, State

        def test_first_boot(vphone_phone, vphone_lab, vphone_clock):
            assert vphone_phone.boot() is State.REGISTERED
            assert vphone_phone.registered_with in vphone_lab.cluster().tftp_hosts
            before = vphone_phone.itl_hash()
            vphone_clock.advance(60)
            assert vphone_phone.reset() is State.REGISTERED
            assert vphone_phone.itl_hash() == before
            assert vphone_phone.trace[-1].at == vphone_clock.now

        @pytest.mark.vphone_lab(ClusterSpec("old", release="8.x-11.5"), "new")
        @pytest.mark.vphone_phone(model="7962", mac="00:11:22:33:44:66", cluster="new")
        def test_markers(vphone_lab, vphone_phone):
            assert [c.name for c in vphone_lab.clusters] == ["old", "new"]
            assert vphone_lab.cluster("old").profile.name == "8.x-11.5"
            assert vphone_phone.model.name == "7962" and vphone_phone.mac == "001122334466"
            assert vphone_phone.tftp == vphone_lab.cluster("new").tftp_hosts[0]
        """,
    )
    result.assert_outcomes(passed=2)


def test_run_scenario_fixture(pytester: pytest.Pytester) -> None:
    result = run_suite(
        pytester,
        """
        def test_rollback(vphone_run_scenario):
            report = vphone_run_scenario("migration-rollback", count=2)
            assert report.ok
            assert report.summary[0].phones == 2
        """,
    )
    result.assert_outcomes(passed=1)


def test_served_lab_fixture_serves_on_loopback_and_stops(pytester: pytest.Pytester) -> None:
    result = run_suite(
        pytester,
        """
        import socket

        from phone.api import State, create_phone
        from phone.net.sockets import SocketBackend

        def test_served(vphone_served_lab, vphone_clock):
            server = vphone_served_lab
            host = server.lab.cluster().tftp_hosts[0]
            address = server.address(host, "http")
            assert address[0] == "127.0.0.1" and address[1] > 0
            with socket.create_connection(address, timeout=1):
                pass
            assert any(t.is_alive() for t in server.threads())
            # A phone boots through real sockets (docs/harness.md).
            with SocketBackend(server.host_map(), timeout=1.0) as backend:
                phone = create_phone(
                    server.lab, mac="001122334477", clock=vphone_clock, backend=backend
                )
                assert phone.boot() is State.REGISTERED
        """,
    )
    result.assert_outcomes(passed=1)


def test_markers_are_registered(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\naddopts = --strict-markers\n")
    result = run_suite(
        pytester,
        """
        import pytest

        @pytest.mark.vphone_lab("c1")
        def test_marked(vphone_lab):
            assert vphone_lab.cluster().name == "c1"
        """,
    )
    result.assert_outcomes(passed=1)


def test_session_keys_generate_once_then_cycle() -> None:
    keys = SessionKeys(limit=2)
    first, second = keys.rsa(1024), keys.rsa(1024)
    assert first is not second and first.key_size == 1024
    assert keys.rsa(1024) is first and keys.rsa(1024) is second
