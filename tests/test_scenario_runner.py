"""The scenario runner: what each step does to phones and lab, the checks, and the outputs.

Scenarios here are small (a few phones) and run in this process on the committed key pool.
"""

from __future__ import annotations

import json
import textwrap
import xml.etree.ElementTree as ET
from datetime import timedelta

import pytest
from keypool import pooled_keys

from phone.cluster import TrustStore
from phone.cluster.records import SecurityMode
from phone.device.machine import State
from phone.errors import UsageError
from phone.scenario import (
    ScenarioError,
    ScenarioRunner,
    junit_xml,
    parse_scenario,
    render_text,
    run_scenario,
)
from phone.scenario.model import Scenario
from phone.scenario.report import REPORT_FORMAT, REPORT_VERSION, Report, merge
from phone.scenario.runner import mask

ONE_CLUSTER = """\
[scenario]
name = "t"
title = "test"

[[cluster]]
name = "c1"

[[group]]
name = "a"
count = 3
cluster = "c1"

[[group]]
name = "b"
count = 2
cluster = "c1"
power = "off"
"""

TWO_CLUSTERS = ONE_CLUSTER.replace(
    '[[group]]\nname = "a"',
    '[[cluster]]\nname = "c2"\nrelease = "8.x-11.5"\n\n[[group]]\nname = "a"',
)


def scenario_of(head: str, extra: str) -> Scenario:
    return parse_scenario(head + textwrap.dedent(extra), path="t.toml")


def runner_of(head: str, extra: str) -> tuple[ScenarioRunner, Report]:
    scenario = scenario_of(head, extra)
    runner = ScenarioRunner(scenario, keys=pooled_keys())
    return runner, merge(scenario, [runner.run()])


def test_setup_boots_powered_groups_and_adds_configured_devices() -> None:
    runner, report = runner_of(ONE_CLUSTER, "")
    assert [p.state for p in runner.phones("a")] == [State.REGISTERED] * 3
    assert [p.state for p in runner.phones("b")] == [State.OFF] * 2
    cluster = runner.lab.cluster("c1")
    assert all(cluster.device(p.mac) is not None for p in runner.phones("b"))
    setup = report.steps[0]
    assert setup.action == "setup" and setup.groups["a"].states == {"registered": 3}
    assert setup.groups["b"].states == {"off": 2}
    # Every phone of the group shares the one backend object: no per-phone copies.
    assert len({id(p.backend) for p in runner.phones("a")}) == 1


def test_reset_does_not_reach_phones_that_are_off() -> None:
    runner, report = runner_of(ONE_CLUSTER, '[[step]]\ndo = "reset"\n')
    step = report.steps[1]
    assert (step.groups["a"].acted, step.groups["a"].skipped) == (3, 0)
    assert (step.groups["b"].acted, step.groups["b"].skipped) == (0, 2)
    assert all(p.state is State.OFF and not p.trace for p in runner.phones("b"))


def test_power_cycle_and_boot() -> None:
    runner, report = runner_of(
        ONE_CLUSTER,
        """
        [[step]]
        do = "power-off"
        group = "a"

        [[step]]
        do = "power-on"

        [[step]]
        do = "boot"
        group = "b"
        """,
    )
    on, boot = report.steps[2], report.steps[3]
    assert (on.groups["a"].acted, on.groups["b"].acted) == (3, 2)
    assert boot.groups["b"].acted == 2  # boot resets phones already on
    assert all(p.state is State.REGISTERED for g in "ab" for p in runner.phones(g))


def test_the_clock_moves_by_step_seconds_and_by_waits() -> None:
    runner, report = runner_of(
        ONE_CLUSTER.replace('title = "test"', 'title = "test"\nstep_seconds = 10'),
        '[[step]]\ndo = "reset"\n\n[[step]]\ndo = "wait"\ndays = 2\n\n[[step]]\ndo = "reset"\n',
    )
    start = runner.scenario.start
    assert runner.clock.now == start + timedelta(days=2, seconds=20)
    assert [s.at for s in report.steps[:2]] == [
        start.isoformat(),
        (start + timedelta(seconds=10)).isoformat(),
    ]
    # Phones and lab share the simulated clock.
    assert runner.phones("a")[0].trace[-1].at == runner.clock.now
    assert runner.lab.clock is runner.clock


def test_move_points_phones_at_the_other_cluster_and_provisions_them() -> None:
    runner, _ = runner_of(
        TWO_CLUSTERS,
        '[[step]]\ndo = "move"\ncluster = "c2"\ngroup = "a"\n',
    )
    c2 = runner.lab.cluster("c2")
    for phone in runner.phones("a"):
        assert phone.tftp == c2.tftp_hosts[0]
        assert c2.device(phone.mac) is not None  # configured groups are added there too
    assert all(p.tftp != c2.tftp_hosts[0] for p in runner.phones("b"))


def test_unconfigured_groups_autoregister() -> None:
    runner, _ = runner_of(ONE_CLUSTER.replace('power = "off"', "configured = false"), "")
    cluster = runner.lab.cluster("c1")
    devices = [cluster.device(p.mac) for p in runner.phones("b")]
    assert all(d is not None and d.autoregistered for d in devices)


def test_lab_steps_change_the_lab() -> None:
    runner, report = runner_of(
        TWO_CLUSTERS,
        """
        [[step]]
        do = "set-param"
        cluster = "c1"
        name = "tvs-ttl"
        value = 600

        [[step]]
        do = "set-mode"
        cluster = "c1"
        mode = "mixed"

        [[step]]
        do = "ctl-update"
        cluster = "c1"

        [[step]]
        do = "stop-node"
        cluster = "c2"
        node = "cucm1"

        [[step]]
        do = "export-certs"
        cluster = "c1"

        [[step]]
        do = "import-certs"
        cluster = "c2"
        """,
    )
    c1, c2 = runner.lab.cluster("c1"), runner.lab.cluster("c2")
    assert c1.parameters.tvs_ttl == 600 and c1.mixed_mode and c1.ctl_file is not None
    assert not c2.publisher.running
    sources = [e.source for e in c2.trust(TrustStore.PHONE_SAST)]
    assert "c1 ITLRecovery (bulk import)" in sources
    notes = [n for s in report.steps for n in s.notes]
    assert "c1: cluster security mode mixed" in notes
    assert any(n.startswith("c2: ") and "imported from c1" in n for n in notes)


def test_regenerate_every_node_and_the_previous_signer() -> None:
    head = ONE_CLUSTER.replace('name = "c1"', 'name = "c1"\nrelease = "8.x-11.5"\ntvs_nodes = 2')
    _, report = runner_of(
        head,
        """
        [[step]]
        do = "regenerate"
        cluster = "c1"
        cert = "callmanager"

        [[step]]
        do = "reset"
        group = "a"

        [[expect]]
        group = "a"
        itl_signer = "c1:callmanager"
        last_itl = "accepted by items 12, 20"

        [[expect]]
        group = "b"
        itl_signer = "none"

        [[expect]]
        group = "a"
        count = "none"
        itl_signer = "c1:callmanager:previous"
        """,
    )
    notes = report.steps[1].notes
    # A per-node certificate without a node: every node's is regenerated.
    assert sum(n.endswith("regenerated") for n in notes) == 2
    assert any("WARNING" in n and "item 27" in n for n in notes)
    assert report.ok, [e.expect for e in report.failed]


def test_upgrade_firmware_sets_the_load_of_each_phones_device() -> None:
    head = ONE_CLUSTER.replace("count = 3", 'count = 2\nmodel = "7962"')
    runner, report = runner_of(
        head,
        """
        [[step]]
        do = "upgrade-firmware"
        group = "a"
        load = "SCCP42.8-5-2S"

        [[step]]
        do = "reset"
        group = "a"

        [[expect]]
        group = "a"
        load = "SCCP42.8-5-2S"
        last_image = "accepted"
        """,
    )
    assert report.ok
    cluster = runner.lab.cluster("c1")
    assert all(cluster.device(p.mac).load == "SCCP42.8-5-2S" for p in runner.phones("a"))  # type: ignore[union-attr]


def test_tamper_then_heal() -> None:
    runner, report = runner_of(
        ONE_CLUSTER,
        """
        [[step]]
        do = "tamper"
        group = "a"
        file = "ITLSEP*.tlv"
        fault = "replace"
        data = "not an ITL"

        [[step]]
        do = "reset"
        group = "a"

          [[step.expect]]
          group = "a"
          last_itl = "rejected by item 17"
          status_contains = "Trust List update failed"

        [[step]]
        do = "heal"
        group = "a"

        [[step]]
        do = "reset"
        group = "a"

        [[expect]]
        group = "a"
        last_itl = "unchanged"
        """,
    )
    assert report.ok, [(e.expect, e.examples) for e in report.failed]
    assert runner.phones("a")[0].backend is runner.phones("b")[0].backend


def test_failed_expectation_shows_example_phones_sorted_by_index() -> None:
    _, report = runner_of(
        ONE_CLUSTER,
        """
        [[expect]]
        state = "registered"

        [[expect]]
        count = "none"
        group = "a"
        state = "registered"

        [[expect]]
        count = "at least 60%"
        state = "registered"
        """,
    )
    all_registered, none_registered, most = report.expectations
    assert not all_registered.ok and (all_registered.matched, all_registered.total) == (3, 5)
    # Too few match: the examples are the phones that do not.
    assert [e.mac for e in all_registered.examples] == ["020100000000", "020100000001"]
    assert "state is off" in all_registered.examples[0].detail
    assert "never powered on" in all_registered.examples[0].detail
    # Too many match: the examples are phones that do.
    assert not none_registered.ok
    assert [e.index for e in none_registered.examples] == [0, 1, 2]
    assert most.ok and most.matched == 3  # 3 of 5 is 60%


def test_cluster_expectations() -> None:
    _, report = runner_of(
        ONE_CLUSTER,
        """
        [[expect]]
        cluster = "c1"
        itl_mismatches = 0
        log_contains = "SEP020000000000 registered"

        [[expect]]
        cluster = "c1"
        log_contains = "no such line"
        """,
    )
    good, bad = report.expectations
    assert good.ok and good.values == {"itl_mismatches": 0, "itl_reports": 3, "log_contains": 1}
    assert not bad.ok and bad.outcome == "log_contains=0"


def test_a_step_the_lab_refuses_names_its_line() -> None:
    scenario = scenario_of(
        TWO_CLUSTERS,
        '\n[[step]]\ndo = "export-certs"\npassword = "one"\n\n'
        '[[step]]\ndo = "import-certs"\npassword = "two"\n',
    )
    with pytest.raises(ScenarioError) as caught:
        run_scenario(scenario, keys=pooled_keys())
    assert caught.value.line == TWO_CLUSTERS.count("\n") + 6
    assert "step 2 (import-certs every cluster) failed" in str(caught.value)


def test_mask_hides_serials_hashes_and_the_mac() -> None:
    text = "SEP001122334455.cnf.xml.sgn: serial 5f3a9c0d1e2b4a6f7788 hash 0123456789abcdef"
    assert mask(text, "001122334455") == "SEP<MAC>.cnf.xml.sgn: serial <hex> hash <hex>"
    assert mask("serial 1f, cucm1.c1.lab", "001122334455") == "serial 1f, cucm1.c1.lab"


# --- outputs ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rollback_report() -> Report:
    from phone.scenario import load_scenario

    return run_scenario(load_scenario("migration-rollback").with_count(4), keys=pooled_keys())


def test_json_report_layout(rollback_report: Report) -> None:
    document = json.loads(rollback_report.to_json())
    assert document["format"] == REPORT_FORMAT and document["version"] == REPORT_VERSION
    assert set(document) == {
        "format",
        "version",
        "scenario",
        "ok",
        "phones",
        "expectations",
        "steps",
        "summary",
    }
    assert document["ok"] is True and document["phones"] == 4
    assert document["scenario"]["name"] == "migration-rollback"
    assert document["scenario"]["items"] == [16, 33]
    steps = document["steps"]
    assert [s["action"] for s in steps] == ["setup", "set-param", "reset", "move", "reset", "final"]
    reset = steps[2]
    assert set(reset) == {
        "index",
        "line",
        "action",
        "description",
        "at",
        "notes",
        "groups",
        "expectations",
    }
    assert reset["groups"]["desk"] == {"acted": 4, "skipped": 0, "states": {"registered": 4}}
    (expect,) = reset["expectations"]
    assert set(expect) == {
        "line",
        "step",
        "subject",
        "expect",
        "text",
        "ok",
        "matched",
        "total",
        "examples",
    }
    assert (expect["matched"], expect["total"], expect["step"]) == (4, 4, 2)
    final_cluster = steps[-1]["expectations"][-1]
    assert final_cluster["values"] == {"itl_mismatches": 0, "itl_reports": 4}
    assert document["summary"] == [
        {
            "group": "desk",
            "state": "registered",
            "cluster": "new",
            "cause": "no problem in the latest boot",
            "reason": "no problem in the latest boot",
            "phones": 4,
        }
    ]
    assert document["expectations"] == {"total": 3, "failed": 0}


def test_json_report_is_deterministic(rollback_report: Report) -> None:
    from phone.scenario import load_scenario

    again = run_scenario(load_scenario("migration-rollback").with_count(4), keys=pooled_keys())
    assert again.to_json() == rollback_report.to_json()


def test_text_report_is_per_step_and_per_group(rollback_report: Report) -> None:
    text = render_text(rollback_report)
    lines = text.splitlines()
    assert lines[0].startswith("scenario migration-rollback: ")
    assert any(line.startswith("step  2  line ") and line.endswith("reset") for line in lines)
    assert "      desk: 4 acted -> 4 registered" in lines
    assert "      . old: prepare-cluster-for-rollback = true" in lines
    assert "final states by cause (-v: whole reasons):" in lines
    assert lines[-1] == "PASS: 3 of 3 expectations hold"


def test_junit_report(rollback_report: Report) -> None:
    broken = run_scenario(
        scenario_of(ONE_CLUSTER, '[[expect]]\nstate = "registered"\n'), keys=pooled_keys()
    )
    root = ET.fromstring(junit_xml([rollback_report, broken]))
    assert root.tag == "testsuites" and root.get("tests") == "4" and root.get("failures") == "1"
    first, second = root.findall("testsuite")
    assert first.get("name") == "migration-rollback" and first.get("failures") == "0"
    cases = first.findall("testcase")
    assert len(cases) == 3
    assert cases[0].get("classname") == "vphone.scenario.migration-rollback"
    assert cases[0].get("name", "").startswith("line ")
    (failure,) = second.findall("testcase/failure")
    assert "3/5" in failure.get("message", "")
    assert "SEP020100000000" in (failure.text or "")


def test_power_off_unregisters_and_drops_the_itl_status_row() -> None:
    """Seed (ITLRecovery): 'When the phone unregisters, the trust hash information of that
    device is deleted'; the row comes back when the phone registers again."""
    runner, report = runner_of(
        ONE_CLUSTER,
        """
        [[step]]
        do = "power-off"
        group = "a"

          [[step.expect]]
          cluster = "c1"
          log_contains = "SEP020000000000 unregistered"

        [[step]]
        do = "power-on"
        group = "a"
        """,
    )
    assert report.ok
    cluster = runner.lab.cluster("c1")
    rows = cluster.hashes.devices
    assert {p.mac for p in runner.phones("a")} <= set(rows)
    assert not {p.mac for p in runner.phones("b")} & set(rows)


def test_phones_share_immutable_lab_data() -> None:
    """Issue 7 (fleets): one parsed ITL, one ITL byte string, one firmware image for all."""
    runner, _ = runner_of(ONE_CLUSTER, "")
    first, *others = runner.phones("a")
    for phone in others:
        assert phone.itl is first.itl  # parse_shared: one parsed trust list
        assert phone.flash.read("ITLFile.tlv") is first.flash.read("ITLFile.tlv")
        assert phone.flash.read("image.loads") is first.flash.read("image.loads")


def test_itl_status_match_mismatch_none() -> None:
    """Item 30: a phone that missed an ITL change reports its old hash: a mismatch row."""
    _, report = runner_of(
        ONE_CLUSTER,
        """
        [[step]]
        do = "tamper"
        group = "a"
        file = "ITL*.tlv"
        fault = "drop"

        [[step]]
        do = "regenerate"
        cluster = "c1"
        cert = "tvs"

        [[step]]
        do = "reset"

        [[expect]]
        group = "a"
        itl_status = "mismatch"
        itl_matches_cluster = false

        [[expect]]
        group = "b"
        itl_status = "none"

        [[expect]]
        cluster = "c1"
        itl_mismatches = 3
        """,
    )
    assert report.ok, [(e.expect, e.examples) for e in report.failed]


def test_a_runner_runs_once() -> None:
    runner, _ = runner_of(ONE_CLUSTER, "")
    with pytest.raises(UsageError, match="already ran"):
        runner.run()


# --- device settings and CAPF (issue 8) ----------------------------------------------------------

MIXED = ONE_CLUSTER.replace('name = "c1"', 'name = "c1"\nmode = "mixed"', 1)


def test_set_device_changes_the_records_of_the_groups_phones_only() -> None:
    runner, report = runner_of(
        ONE_CLUSTER,
        """
        [[step]]
        do = "set-device"
        group = "a"
        security_mode = "authenticated"
        encrypt_config = true
        digest_user = "alice"
        digest_password = "pa55"
        digest_auth = true
        exclude_digest_credentials = true
        load = "sip88xx.12-0-1"

        [[step]]
        do = "set-device"
        group = "a"
        digest_user = ""
        """,
    )
    cluster = runner.lab.cluster("c1")
    for phone in runner.phones("a"):
        device = cluster.device(phone.mac)
        assert device is not None
        assert device.security_mode is SecurityMode.AUTHENTICATED and device.encrypt_config
        assert device.digest_user is None  # the empty text of the second step cleared it
        assert device.digest_password == "pa55" and device.digest_authentication
        assert device.exclude_digest_credentials and device.load == "sip88xx.12-0-1"
    untouched = [cluster.device(p.mac) for p in runner.phones("b")]
    assert all(d is not None and not d.encrypt_config for d in untouched)
    assert report.steps[1].groups["a"].acted == 3 and "b" not in report.steps[1].description
    assert "pa55" not in report.steps[1].description


def test_set_device_adds_a_record_for_a_phone_that_has_none() -> None:
    runner, _ = runner_of(
        ONE_CLUSTER.replace('power = "off"', 'power = "off"\nconfigured = false'),
        '\n[[step]]\ndo = "set-device"\ngroup = "b"\nencrypt_config = true\n',
    )
    cluster = runner.lab.cluster("c1")
    devices = [cluster.device(p.mac) for p in runner.phones("b")]
    assert all(d is not None and d.encrypt_config and not d.autoregistered for d in devices)


def test_capf_step_sets_the_pending_operation_and_types_the_string() -> None:
    runner, report = runner_of(
        MIXED,
        """
        [[step]]
        do = "capf"
        group = "a"
        operation = "install"
        auth = "string:2468"
        key_type = "ec-p256"
        capf_string = "2468"

          [[step.expect]]
          group = "a"
          capf_pending = "install"
          capf_result = "none"

          [[step.expect]]
          group = "b"
          capf_pending = "none"

        [[step]]
        do = "capf"
        group = "a"
        operation = "troubleshoot"
        auth = "null"

        [[step]]
        do = "capf"
        group = "a"
        operation = "none"

          [[step.expect]]
          group = "a"
          capf_pending = "none"
        """,
    )
    assert report.ok, [(e.expect, e.examples) for e in report.failed]
    assert all(p.capf_string == "2468" for p in runner.phones("a"))
    assert all(p.capf_string is None for p in runner.phones("b"))
    # The lab's CAPF log names each device and never the string.
    log = [str(entry) for entry in runner.lab.cluster("c1").log]
    assert sum("pending install (string, ec-p256)" in line for line in log) == 3
    assert sum("pending operation cancelled" in line for line in log) == 3
    assert not any("2468" in line for line in log)


def test_lsc_install_makes_encrypted_configs_readable() -> None:
    _, report = runner_of(
        MIXED,
        """
        [[step]]
        do = "set-device"
        encrypt_config = true
        security_mode = "encrypted"

        [[step]]
        do = "boot"
        group = "b"

          [[step.expect]]
          group = "b"
          state = "no-config"
          lsc = false

        [[step]]
        do = "capf"
        operation = "install"
        auth = "null"

        [[step]]
        do = "boot"

        [[expect]]
        state = "registered"
        registered_over = "tls"
        lsc = true
        last_capf = "accepted by seed"
        capf_result = "install succeeded"
        capf_pending = "none"
        last_config = "accepted by item 14"
        """,
    )
    assert report.ok, [(e.expect, e.examples) for e in report.failed]
    # The boot that enrolled the LSC read the config again from its stub: the summary does not
    # blame the config it could not read before the CAPF session.
    assert {row.reason for row in report.summary} == {"no problem in the latest boot"}


def test_capf_failures_are_named_and_leave_the_operation_pending() -> None:
    _, report = runner_of(
        MIXED,
        """
        [[step]]
        do = "capf"
        operation = "install"
        auth = "string:2468"

        [[step]]
        do = "capf"
        group = "a"
        operation = "install"
        auth = "string:2468"
        capf_string = "1357"

        [[step]]
        do = "boot"

          [[step.expect]]
          group = "a"
          text = "the wrong string: CAPF refuses, the operation stays for the next boot"
          last_capf = "rejected by seed"
          capf_result = "install failed"
          capf_pending = "install"
          lsc = false
          state = "registered"

          [[step.expect]]
          group = "b"
          text = "no string typed: the phone does not even connect"
          last_capf = "failed by seed"
          capf_result = "none"
          capf_pending = "install"

        [[expect]]
        group = "a"
        capf_result = "succeeded"
        """,
    )
    wrong_string, no_string, final = report.expectations
    assert wrong_string.ok and no_string.ok
    assert not final.ok
    assert "CAPF last: install failed: authentication failed: wrong authentication string" in (
        final.examples[0].detail
    )
    reasons = {row.group: row.reason for row in report.summary}
    assert (
        reasons["a"].startswith("capf rejected by seed")
        and "CAPF refused the session (reason 7)" in (reasons["a"])
    )
    assert "none was entered on the phone" in reasons["b"]


def test_registered_over_reads_the_transport_the_phone_used() -> None:
    _, report = runner_of(
        ONE_CLUSTER,
        """
        [[expect]]
        group = "a"
        registered_over = "tcp"
        lsc = false

        [[expect]]
        group = "a"
        registered_over = "tls"

        [[expect]]
        group = "b"
        count = "none"
        registered_over = "tcp"
        """,
    )
    tcp, tls, off = report.expectations
    assert tcp.ok and off.ok
    assert not tls.ok and tls.examples[0].detail.startswith("registered over tcp")
