"""Scenario files: what parses, and every malformed file naming its line and key (issue 7).

The messages are what a person reads at exit 2, so the tests check the line number and the
key, not only that parsing failed.
"""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime

import pytest

from phone.scenario import ScenarioError, parse_scenario
from phone.scenario.model import DEFAULT_START, Quantity, QuantityKind
from phone.scenario.parse import parse_quantity

HEAD = """\
[scenario]
name = "demo"
title = "A demo"

[[cluster]]
name = "old"

[[cluster]]
name = "new"
release = "8.x-11.5"
tvs_nodes = 2

[[group]]
name = "desk"
count = 3
cluster = "old"
"""
HEAD_LINES = HEAD.count("\n")


def parse(extra: str = "") -> object:
    return parse_scenario(HEAD + textwrap.dedent(extra), path="demo.toml")


def error_of(extra: str) -> ScenarioError:
    with pytest.raises(ScenarioError) as caught:
        parse(extra)
    return caught.value


def test_minimal_scenario_and_defaults() -> None:
    scenario = parse_scenario(HEAD, path="demo.toml")
    assert scenario.name == "demo" and scenario.start == DEFAULT_START
    assert [c.name for c in scenario.clusters] == ["old", "new"]
    old, new = scenario.clusters
    assert (old.release, old.tvs_nodes, old.mixed_mode) == ("14.x", 1, False)
    assert (new.release, new.tvs_nodes) == ("8.x-11.5", 2)
    (group,) = scenario.groups
    assert (group.model, group.powered, group.configured) == ("8841", True, True)
    assert scenario.phone_count == 3
    assert group.mac(0) == "020000000000" and group.mac(255) == "0200000000FF"


def test_steps_and_expectations_parse_with_their_lines() -> None:
    scenario = parse_scenario(
        HEAD
        + textwrap.dedent(
            """
            [[step]]
            do = "regenerate"
            cluster = "new"
            cert = "callmanager"
            node = "cucm2"

            [[step]]
            do = "reset"
            groups = ["desk"]

              [[step.expect]]
              count = "at least 50%"
              state = "registered"
              last_itl = ["accepted by item 12", "unchanged"]

            [[step]]
            do = "wait"
            hours = 2
            minutes = 30

            [[expect]]
            cluster = "old"
            itl_mismatches = "at most 1"

            [[expect]]
            group = "desk"
            itl_signer = "new:itlrecovery:previous"
            """
        ),
        path="demo.toml",
    )
    regenerate, reset, wait = scenario.steps
    assert regenerate.params == {"cluster": "new", "cert": "callmanager", "node": "cucm2.new.lab"}
    assert regenerate.line == HEAD_LINES + 2
    assert reset.groups == ("desk",)
    (expect,) = reset.expects
    assert expect.line == HEAD_LINES + 12 and expect.step == 2
    assert expect.count == Quantity(QuantityKind.AT_LEAST, 50, percent=True)
    assert [c.key for c in expect.checks] == ["state", "last_itl"]  # the order written
    assert expect.checks[1].value == ("accepted by item 12", "unchanged")
    assert wait.params["seconds"] == 2 * 3600 + 30 * 60
    final_cluster, final_group = scenario.expects
    assert final_cluster.cluster == "old" and final_cluster.step == 0
    assert final_group.groups == ("desk",)


def test_start_time_must_carry_a_time_zone() -> None:
    scenario = parse_scenario(
        HEAD.replace('title = "A demo"', 'title = "A demo"\nstart = 2030-01-02T03:04:05Z'),
        path="x.toml",
    )
    assert scenario.start == datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    with pytest.raises(ScenarioError, match=r"x\.toml:4: key 'start'.*time zone"):
        parse_scenario(
            HEAD.replace('title = "A demo"', 'title = "A demo"\nstart = 2030-01-02T03:04:05'),
            path="x.toml",
        )


def test_toml_syntax_error_names_the_line() -> None:
    error = error_of("\n[[step]]\ndo = reset\n")
    assert error.line == HEAD_LINES + 3
    assert str(error).startswith(f"demo.toml:{HEAD_LINES + 3}:")
    assert "not valid TOML" in str(error)


@pytest.mark.parametrize(
    ("extra", "offset", "key", "words"),
    [
        # An unknown action, with a suggestion.
        ('\n[[step]]\ndo = "rest"\n', 3, "do", "did you mean 'reset'"),
        # A typo in a key is refused, not ignored.
        ('\n[[step]]\ndo = "reset"\ngroup = "desk"\ncuont = 3\n', 5, "cuont", "unknown key"),
        # A step naming a group that does not exist.
        ('\n[[step]]\ndo = "reset"\ngroups = ["dsk"]\n', 4, "groups", "did you mean 'desk'"),
        # A lab step naming a cluster that does not exist.
        (
            '\n[[step]]\ndo = "regenerate"\ncluster = "od"\ncert = "tvs"\n',
            4,
            "cluster",
            "no cluster",
        ),
        # A certificate the cluster does not have.
        ('\n[[step]]\ndo = "regenerate"\ncluster = "old"\ncert = "tls"\n', 5, "cert", "is not one"),
        # A node the cluster does not have (old has one node).
        (
            '\n[[step]]\ndo = "stop-node"\ncluster = "old"\nnode = "cucm2"\n',
            5,
            "node",
            "no node 'cucm2'",
        ),
        # A parameter value the release refuses (ITLRecovery validity on 8.x-11.5).
        (
            '\n[[step]]\ndo = "set-param"\ncluster = "new"\n'
            'name = "itl-recovery-validity-years"\nvalue = 10\n',
            6,
            "value",
            "5 years",
        ),
        # A required key missing.
        ('\n[[step]]\ndo = "move"\n', 2, "cluster", "needs 'cluster'"),
        # A wrong type.
        ('\n[[step]]\ndo = "wait"\nseconds = "ten"\n', 4, "seconds", "whole number"),
        # Groups on a lab step.
        ('\n[[step]]\ndo = "ctl-update"\ncluster = "old"\ngroup = "desk"\n', 5, "group", "lab"),
        # import-certs before any export.
        ('\n[[step]]\ndo = "import-certs"\n', 2, "", "export-certs"),
        # remotekey without a regenerated ITLRecovery to take the previous key from.
        (
            '\n[[step]]\ndo = "itl-reset"\ncluster = "old"\nmode = "remotekey"\n',
            5,
            "mode",
            "previous ITLRecovery",
        ),
        # A bad verdict in an expectation.
        ('\n[[expect]]\nlast_itl = "acepted"\n', 3, "last_itl", "did you mean 'accepted'"),
        # A bad state.
        ('\n[[expect]]\nstate = "registred"\n', 3, "state", "did you mean 'registered'"),
        # A bad count.
        ('\n[[expect]]\ncount = "most"\nstate = "off"\n', 3, "count", "is not a count"),
        # An itl_signer naming an unknown certificate.
        ('\n[[expect]]\nitl_signer = "old:itlrecovry"\n', 3, "itl_signer", "itlrecovery"),
        # An expectation without a check.
        ('\n[[expect]]\ngroup = "desk"\n', 2, "", "at least one check"),
        # A cluster expectation with a phone check.
        ('\n[[expect]]\ncluster = "old"\nstate = "off"\n', 4, "state", "unknown key"),
        # A nested expectation is located inside its own step.
        (
            '\n[[step]]\ndo = "reset"\n\n[[step]]\ndo = "boot"\n  [[step.expect]]\n'
            '  text = "x"\n  has_itl = "yes"\n',
            9,
            "has_itl",
            "true or false",
        ),
    ],
)
def test_malformed_scenarios_name_line_and_key(
    extra: str, offset: int, key: str, words: str
) -> None:
    error = error_of(extra)
    assert error.line == HEAD_LINES + offset, str(error)
    assert error.key == key
    assert words in str(error)
    assert str(error).startswith(f"demo.toml:{HEAD_LINES + offset}:")
    if key:
        assert f"key {key!r}" in str(error)
    assert error.exit_code == 2  # a usage error


@pytest.mark.parametrize(
    ("text", "replacement", "line", "key"),
    [
        ('name = "demo"', 'name = "Demo Scenario"', 2, "name"),
        ("count = 3", "count = 0", 15, "count"),
        ('cluster = "old"\n', 'cluster = "gone"\n', 16, "cluster"),
        ("tvs_nodes = 2", "tvs_nodes = 2\ntftp_nodes = 3", 12, "tftp_nodes"),
        ('name = "new"', 'name = "old"', 9, "name"),
    ],
)
def test_bad_definitions_name_line_and_key(
    text: str, replacement: str, line: int, key: str
) -> None:
    source = (
        HEAD.replace(text, replacement, 1)
        if text != 'cluster = "old"\n'
        else (HEAD[: HEAD.rindex(text)] + replacement)
    )
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(source, path="demo.toml")
    assert (caught.value.line, caught.value.key) == (line, key), str(caught.value)


def test_missing_tables_are_named() -> None:
    with pytest.raises(ScenarioError, match="starts with a \\[scenario\\] table"):
        parse_scenario('[[cluster]]\nname = "a"\n')
    with pytest.raises(ScenarioError, match="at least one \\[\\[group\\]\\]"):
        parse_scenario(HEAD[: HEAD.index("[[group]]")])
    with pytest.raises(ScenarioError, match="unknown table or key") as caught:
        parse_scenario(HEAD + "\n[steps]\ndo = 1\n")
    assert caught.value.key == "steps"


def test_a_multiline_description_does_not_confuse_the_line_map() -> None:
    source = HEAD.replace(
        'title = "A demo"',
        'title = "A demo"\ndescription = """\ndo = "this is text"\n[[step]]\n"""',
    )
    error = None
    try:
        parse_scenario(source + '\n[[step]]\ndo = "nope"\n', path="d.toml")
    except ScenarioError as exc:
        error = exc
    assert error is not None
    assert error.line == source.count("\n") + 3


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("all", Quantity(QuantityKind.ALL)),
        ("none", Quantity(QuantityKind.NONE)),
        ("any", Quantity(QuantityKind.AT_LEAST, 1)),
        ("at least 3", Quantity(QuantityKind.AT_LEAST, 3)),
        ("At  most 10%", Quantity(QuantityKind.AT_MOST, 10, percent=True)),
        ("exactly 0", Quantity(QuantityKind.EXACTLY, 0)),
        (7, Quantity(QuantityKind.EXACTLY, 7)),
        ("7", Quantity(QuantityKind.EXACTLY, 7)),
    ],
)
def test_quantities(value: object, expected: Quantity) -> None:
    assert parse_quantity(value) == expected


@pytest.mark.parametrize("value", ["most", "at least -1", "150%", True, 1.5, -1, "lots"])
def test_bad_quantities(value: object) -> None:
    with pytest.raises(ValueError, match="count"):
        parse_quantity(value)


def test_mismatch_counts_are_not_percentages() -> None:
    with pytest.raises(ValueError):
        parse_quantity("all", phones=False)
    with pytest.raises(ValueError):
        parse_quantity("10%", phones=False)
    assert parse_quantity("none", phones=False).holds(0, 0)


@pytest.mark.parametrize(
    ("quantity", "matched", "total", "holds"),
    [
        (Quantity(QuantityKind.ALL), 10, 10, True),
        (Quantity(QuantityKind.ALL), 9, 10, False),
        (Quantity(QuantityKind.NONE), 0, 10, True),
        (Quantity(QuantityKind.NONE), 1, 10, False),
        (Quantity(QuantityKind.AT_LEAST, 3), 3, 10, True),
        (Quantity(QuantityKind.AT_LEAST, 3), 2, 10, False),
        (Quantity(QuantityKind.AT_MOST, 3), 3, 10, True),
        (Quantity(QuantityKind.AT_MOST, 3), 4, 10, False),
        (Quantity(QuantityKind.EXACTLY, 3), 3, 10, True),
        (Quantity(QuantityKind.AT_LEAST, 90, percent=True), 9, 10, True),
        (Quantity(QuantityKind.AT_LEAST, 90, percent=True), 8, 10, False),
        (Quantity(QuantityKind.AT_MOST, 10, percent=True), 1, 10, True),
        (Quantity(QuantityKind.AT_MOST, 10, percent=True), 2, 10, False),
    ],
)
def test_quantity_boundaries(quantity: Quantity, matched: int, total: int, holds: bool) -> None:
    assert quantity.holds(matched, total) is holds


def test_with_count_scales_every_group() -> None:
    scenario = parse_scenario(HEAD)
    assert scenario.with_count(10_000).phone_count == 10_000
    with pytest.raises(ScenarioError):
        scenario.with_count(0)


# --- device settings, CAPF steps and their expectations (issue 8) --------------------------------


def test_set_device_capf_steps_and_capf_checks_parse() -> None:
    scenario = parse_scenario(
        HEAD
        + textwrap.dedent(
            """
            [[step]]
            do = "set-device"
            group = "desk"
            encrypt_config = true
            security_mode = "encrypted"
            digest_user = "alice"
            digest_password = "secret"
            digest_auth = true

            [[step]]
            do = "capf"
            operation = "install"
            auth = "string:2468"
            key_type = "ec"
            capf_string = "2468"

              [[step.expect]]
              capf_pending = "install"
              capf_result = "none"

            [[step]]
            do = "capf"
            operation = "none"

            [[expect]]
            lsc = true
            registered_over = "tls"
            capf_result = "Install  Succeeded"
            last_capf = "accepted by seed"
            """
        ),
        path="demo.toml",
    )
    device, install, cancel = scenario.steps
    assert device.groups == ("desk",)
    assert device.params == {
        "security_mode": "encrypted",
        "encrypt_config": True,
        "digest_user": "alice",
        "digest_password": "secret",
        "digest_auth": True,
    }
    # The password never reaches a report line.
    assert "secret" not in device.describe() and "digest_password = ***" in device.describe()
    assert install.params == {
        "operation": "install",
        "auth": "string:2468",
        "key_type": "ec-p256",  # the alias, normalized
        "capf_string": "2468",
    }
    assert install.groups == ("desk",)  # no group: every group
    assert "2468" not in install.describe()
    assert install.describe() == "capf install (string, ec-p256), string typed on the phones"
    assert cancel.params == {"operation": "none"}
    (final,) = scenario.expects
    assert [(c.key, c.value) for c in final.checks] == [
        ("lsc", True),
        ("registered_over", "tls"),
        ("capf_result", "install succeeded"),  # case and spaces normalized
        ("last_capf", "accepted by seed"),
    ]


def test_encrypt_config_of_a_group_defaults_to_its_security_mode() -> None:
    encrypted = parse_scenario(HEAD + 'security_mode = "encrypted"\n')
    assert encrypted.groups[0].encrypts_config
    plain = parse_scenario(HEAD + 'security_mode = "encrypted"\nencrypt_config = false\n')
    assert not plain.groups[0].encrypts_config
    authenticated = parse_scenario(
        HEAD + 'security_mode = "authenticated"\nencrypt_config = true\n'
    )
    assert authenticated.groups[0].encrypts_config


@pytest.mark.parametrize(
    ("extra", "offset", "key", "words"),
    [
        # set-device with nothing to set.
        ('\n[[step]]\ndo = "set-device"\n', 2, "", "at least one of"),
        (
            '\n[[step]]\ndo = "set-device"\nsecurity_mode = "secure"\n',
            4,
            "security_mode",
            "not one",
        ),
        ('\n[[step]]\ndo = "set-device"\nencrypt_config = "yes"\n', 4, "encrypt_config", "true or"),
        ('\n[[step]]\ndo = "set-device"\ndigest_user = " bob"\n', 4, "digest_user", "spaces"),
        ('\n[[step]]\ndo = "set-device"\nencrypt = true\n', 4, "encrypt", "encrypt_config"),
        # A set-device step on a cluster rather than on groups.
        ('\n[[step]]\ndo = "set-device"\nload = "x"\ncluster = "old"\n', 5, "cluster", "unknown"),
        # capf: the operation, the authentication, the key type and the typed string.
        ('\n[[step]]\ndo = "capf"\nauth = "null"\n', 2, "operation", "needs 'operation'"),
        (
            '\n[[step]]\ndo = "capf"\noperation = "instal"\nauth = "null"\n',
            4,
            "operation",
            "'install'",
        ),
        ('\n[[step]]\ndo = "capf"\noperation = "install"\n', 2, "auth", "needs 'auth'"),
        (
            '\n[[step]]\ndo = "capf"\noperation = "install"\nauth = "pin"\n',
            5,
            "auth",
            "string:SECRET",
        ),
        (
            '\n[[step]]\ndo = "capf"\noperation = "install"\nauth = "string:12"\n',
            5,
            "auth",
            "4 to 10 digits",
        ),
        (
            '\n[[step]]\ndo = "capf"\noperation = "install"\nauth = "string"\n',
            5,
            "auth",
            "needs the",
        ),
        ('\n[[step]]\ndo = "capf"\noperation = "install"\nauth = "mic:1"\n', 5, "auth", "only"),
        (
            '\n[[step]]\ndo = "capf"\noperation = "delete"\nauth = "null"\nkey_type = "ec"\n',
            6,
            "key_type",
            "generates no key",
        ),
        (
            '\n[[step]]\ndo = "capf"\noperation = "install"\nauth = "null"\nkey_type = "dsa"\n',
            6,
            "key_type",
            "rsa-2048, ec-p256 or ec-p384",
        ),
        (
            '\n[[step]]\ndo = "capf"\noperation = "install"\nauth = "null"\ncapf_string = "12a4"\n',
            6,
            "capf_string",
            "digits only",
        ),
        ('\n[[step]]\ndo = "capf"\noperation = "none"\nauth = "null"\n', 5, "auth", "cancels"),
        # The new checks.
        ('\n[[expect]]\nlsc = "yes"\n', 3, "lsc", "true or false"),
        ('\n[[expect]]\nregistered_over = "udp"\n', 3, "registered_over", "tls, tcp"),
        ('\n[[expect]]\ncapf_pending = "instal"\n', 3, "capf_pending", "'install'"),
        ('\n[[expect]]\ncapf_result = "install ok"\n', 3, "capf_result", "not a CAPF outcome"),
        ('\n[[expect]]\nlast_capf = "acepted"\n', 3, "last_capf", "'accepted'"),
    ],
)
def test_malformed_device_and_capf_steps_name_line_and_key(
    extra: str, offset: int, key: str, words: str
) -> None:
    error = error_of(extra)
    assert (error.line, error.key) == (HEAD_LINES + offset, key), str(error)
    assert words in str(error)
