"""docs/harness.md runs as written: every ```python block of the page is extracted and run.

A block is one of four kinds, told apart by its text:

* ``# <name>.py`` on its first line, no test in it: a module the other blocks import
  (``mytool.py``), written beside every run;
* ``# conftest.py``: the bring-your-own-keys conftest, run with a ``keys/`` folder of the
  committed test keys and a test that uses the fixtures it overrides;
* a block with ``def test_``: a pytest module, run with vphone's plugin (the session keys
  come from the committed key pool, as the page's conftest recipe shows);
* anything else: a script, run in its own process in an empty folder (the scenario block
  starts worker processes, which need a real ``__main__`` file).

Also here: the fixture phone is a device of its lab (issue 18: it fetched XMLDefault before),
``phone.api``'s promised names are exactly the page's list, and ``Lab.serve_file``'s rules.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import textwrap
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest
from keypool import KEY_DIR, pooled_keys

import phone.api
from phone.api import API_VERSION, State, create_lab, create_phone, decision_on
from phone.errors import LabError
from phone.net.servers import LabServer
from phone.net.sockets import SocketBackend

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
HARNESS = ROOT / "docs" / "harness.md"
NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
MAC = "001122334455"

_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
_FILE = re.compile(r"# (\w+\.py)\b")

PLUGIN = ("-p", "no:vphone", "-p", "phone.pytest_plugin", "-p", "no:cacheprovider")
KEYPOOL_CONFTEST = textwrap.dedent(
    f"""
    import sys
    sys.path.insert(0, {str(Path(__file__).parent)!r})
    import pytest
    from keypool import pooled_keys

    @pytest.fixture(scope="session")
    def vphone_keys():
        return pooled_keys()
    """
)


def blocks() -> list[str]:
    """Every ```python block of docs/harness.md, in order."""
    return _BLOCK.findall(HARNESS.read_text(encoding="utf-8"))


def file_name(block: str) -> str | None:
    match = _FILE.match(block)
    return None if match is None else match[1]


def modules() -> dict[str, str]:
    """The blocks that are modules other blocks import (``# mytool.py``)."""
    return {
        name: block
        for block in blocks()
        if (name := file_name(block)) not in (None, "conftest.py") and "def test_" not in block
    }


def scripts() -> list[str]:
    return [b for b in blocks() if file_name(b) is None and "def test_" not in b]


def test_the_page_has_the_recipes() -> None:
    found = blocks()
    tests = [b for b in found if "def test_" in b]
    # Literal counts: a block lost in an edit (or a fence the regex misses) fails here.
    assert (len(found), len(tests), len(scripts())) == (11, 6, 3)
    assert set(modules()) == {"mytool.py"}
    for recipe in ("test_my_config.py", "test_my_itl.py", "test_my_firmware.py"):
        assert any(file_name(b) == recipe for b in tests), recipe


def test_test_blocks_run_with_the_plugin(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(KEYPOOL_CONFTEST)
    for name, text in modules().items():
        pytester.makepyfile(**{name.removesuffix(".py"): text})
    # The plugin page's test runs a plan of the user's: a library scenario stands in for it.
    plans = pytester.path / "plans"
    plans.mkdir()
    shutil.copy(
        ROOT / "phone" / "scenario" / "library" / "migration-rollback.toml",
        plans / "migration.toml",
    )
    expected = 0
    for index, block in enumerate(b for b in blocks() if "def test_" in b):
        name = (file_name(block) or f"test_block_{index}.py").removesuffix(".py")
        pytester.makepyfile(**{name: block})
        expected += len(re.findall(r"^def test_", block, re.M))
    result = pytester.runpytest(*PLUGIN, "-W", "error")
    # test_my_firmware is parametrized over two models: one more than its one def.
    result.assert_outcomes(passed=expected + 1)


def test_the_conftest_block_brings_its_own_keys(pytester: pytest.Pytester) -> None:
    (conftest,) = [b for b in blocks() if file_name(b) == "conftest.py"]
    keys = pytester.path / "keys"
    keys.mkdir()
    for path in sorted(KEY_DIR.glob("rsa2048-*.pem"))[:6]:
        shutil.copy(path, keys / path.name)
    pytester.makeconftest(conftest)
    pytester.makepyfile(
        test_keys="""
        from phone.api import State
        from phone.pki import PooledKeys

        def test_boot(vphone_keys, vphone_phone):
            assert isinstance(vphone_keys, PooledKeys)
            assert vphone_phone.boot() is State.REGISTERED
        """
    )
    result = pytester.runpytest(*PLUGIN, "-W", "error")
    result.assert_outcomes(passed=1)


@pytest.mark.parametrize("index", range(3))
def test_script_blocks_run(tmp_path: Path, index: int) -> None:
    for name, text in modules().items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    script = tmp_path / "block.py"
    script.write_text(scripts()[index], encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]


# --- the surface -----------------------------------------------------------------------------


def test_the_promised_names_are_exactly_phone_api_all() -> None:
    text = HARNESS.read_text(encoding="utf-8")
    heading = re.search(r"^## The stable surface \(API version (\d+)\.(\d+)\)$", text, re.M)
    assert heading is not None
    assert (int(heading[1]), int(heading[2])) == API_VERSION == (1, 1)
    line = re.search(r"^\* `phone\.api` names \(its `__all__`\):(.*?)\n\* ", text, re.M | re.S)
    assert line is not None
    promised = re.findall(r"`(\w+)`", line[1])
    assert sorted(promised) == sorted(phone.api.__all__)
    assert all(hasattr(phone.api, name) for name in promised)


# --- the fixture phone is a device (issue 18 friction 1) -------------------------------------


def test_the_fixture_phone_fetches_its_own_config(pytester: pytest.Pytester) -> None:
    # Before issue 18 the phone had no device record: it fetched XMLDefault.cnf.xml.sgn, and a
    # harness serving SEP<MAC>.cnf.xml.sgn tested nothing.
    pytester.makeconftest(KEYPOOL_CONFTEST)
    pytester.makepyfile(
        test_device=f"""
        def test_device(vphone_lab, vphone_phone):
            assert "{MAC}" in vphone_lab.cluster().devices
            vphone_phone.boot()
            asked = [t.file for t in vphone_phone.trace if t.step == "config"]
            assert asked == ["SEP{MAC}.cnf.xml.sgn"]
        """
    )
    pytester.runpytest(*PLUGIN, "-W", "error").assert_outcomes(passed=1)


# --- Lab.serve_file --------------------------------------------------------------------------


def _lab_and_phone(*, provision: bool = True) -> tuple[phone.api.Lab, phone.api.VirtualPhone]:
    lab = create_lab("c1", now=NOW, keys=pooled_keys())
    lab.clock = lambda: NOW
    return lab, create_phone(lab, mac=MAC, clock=lambda: NOW, provision=provision)


def test_a_served_file_replaces_the_generated_one_until_unserved() -> None:
    lab, _ = _lab_and_phone()
    cluster = lab.cluster()
    service = lab.file_service(cluster.tftp_hosts[0])
    assert service is not None
    generated = service.get(f"SEP{MAC}.cnf.xml")
    assert generated is not None and generated.startswith(b"<?xml")
    lab.serve_file("c1", f"/sep{MAC.lower()}.CNF.xml", b"mine")  # any case, a leading /
    assert service.get(f"SEP{MAC}.cnf.xml") == b"mine"
    assert lab.unserve_file(cluster, f"SEP{MAC}.cnf.xml") is True
    assert service.get(f"SEP{MAC}.cnf.xml") == generated
    assert lab.unserve_file("c1", f"SEP{MAC}.cnf.xml") is False


def test_a_served_file_adds_a_name_and_is_listed() -> None:
    lab, _ = _lab_and_phone()
    service = lab.file_service(lab.cluster().tftp_hosts[0])
    assert service is not None
    assert service.get("Mine.bin") is None
    lab.serve_file("c1", "Mine.bin", b"\x00\x01")
    assert service.get("mine.BIN") == b"\x00\x01"
    assert service.names()[-1] == "Mine.bin"


def test_a_served_itlfile_answers_the_itlsep_name_and_a_node_file_wins() -> None:
    lab, _ = _lab_and_phone()
    host = lab.cluster().tftp_hosts[0]
    service = lab.file_service(host)
    assert service is not None
    lab.serve_file("c1", "ITLFile.tlv", b"cluster-wide")
    assert service.get(f"ITLSEP{MAC}.tlv") == b"cluster-wide"
    assert service.get("CTLFile.tlv") is None  # non-secure: still no CTL
    lab.serve_file("c1", "ITLFile.tlv", b"this node", host=host)
    assert service.get("ITLFile.tlv") == b"this node"


def test_a_stopped_node_serves_nothing_served() -> None:
    lab, _ = _lab_and_phone()
    host = lab.cluster().tftp_hosts[0]
    lab.serve_file("c1", "Mine.bin", b"x")
    lab.cluster().stop_node(host, now=NOW)
    assert lab.file_service(host) is None


def test_serve_file_refuses_bad_arguments() -> None:
    lab, _ = _lab_and_phone()
    with pytest.raises(LabError, match="the lab has no cluster 'nope'"):
        lab.serve_file("nope", "a", b"")
    with pytest.raises(LabError, match=r"a served file needs a name of 1 to 255 characters: '/'"):
        lab.serve_file("c1", "/", b"")
    with pytest.raises(LabError, match=r"x\.example is not a TFTP node of cluster c1"):
        lab.serve_file("c1", "a", b"", host="x.example")
    with pytest.raises(LabError, match="serve_file needs the file's bytes, got str"):
        lab.serve_file("c1", "a", "text")  # type: ignore[arg-type]


def test_a_phone_gets_the_served_config_and_decision_on_names_it() -> None:
    lab, phone_ = _lab_and_phone()
    name = f"SEP{MAC}.cnf.xml.sgn"
    lab.serve_file("c1", name, b"not a signed file")
    assert phone_.boot() is State.NO_CONFIG
    entry = decision_on(phone_, name)
    assert (entry.decision, entry.rule) == ("rejected", "item 14")
    assert entry.reason.startswith(f"{name} does not parse: ")


def test_decision_on_refuses_a_file_the_phone_never_asked_for() -> None:
    _, unknown = _lab_and_phone(provision=False)
    assert unknown.boot() is State.REGISTERED
    with pytest.raises(LookupError) as raised:
        decision_on(unknown, "RingList.xml.sgn")
    assert str(raised.value) == (
        f"phone {MAC} made no decision about RingList.xml.sgn; it decided about: "
        f"CTLFile.tlv, CTLSEP{MAC}.tlv, ITLSEP{MAC}.tlv, SEP{MAC}.cnf.xml.sgn, "
        "XMLDefault.cnf.xml.sgn"
    )


def test_create_phone_provision_keeps_an_existing_device() -> None:
    lab, phone_ = _lab_and_phone()
    device = lab.cluster().device(MAC)
    assert device is not None and device.model == phone_.model.name == "8841"
    create_phone(lab, mac=MAC, model="7841", clock=lambda: NOW, provision=True)
    assert lab.cluster().device(MAC) is device


def test_served_files_reach_the_socket_servers() -> None:
    # The TFTP and HTTP servers ask the same FileService: a served file needs nothing of them.
    lab, _ = _lab_and_phone()
    name = f"SEP{MAC}.cnf.xml.sgn"
    lab.serve_file("c1", name, b"not a signed file")
    lab.serve_file("c1", "Mine.bin", b"\x00mine")
    server = LabServer(lab, host="127.0.0.1", clock=lambda: NOW)
    server.start()
    try:
        address = server.address(lab.cluster().tftp_hosts[0], "http")
        url = f"http://{address[0]}:{address[1]}/Mine.bin"
        with urllib.request.urlopen(url, timeout=2) as answer:
            assert answer.read() == b"\x00mine"
        with SocketBackend(server.host_map(), timeout=1.0) as backend:
            over_sockets = create_phone(lab, mac=MAC, clock=lambda: NOW, backend=backend)
            assert over_sockets.boot() is State.NO_CONFIG
        entry = decision_on(over_sockets, name)
        assert (entry.decision, entry.rule) == ("rejected", "item 14")
    finally:
        server.stop()
