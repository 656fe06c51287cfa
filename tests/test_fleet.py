"""Fleets over worker processes: the same report for any number of workers (issue 7).

Workers are spawned processes, so these tests cost a second or two each; they use small
fleets and check what only a multi-process run can get wrong: merging, determinism, errors
raised in a worker, progress and clean-up.
"""

from __future__ import annotations

import multiprocessing
import textwrap

import pytest
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from keypool import pooled_key_lists, pooled_keys

from phone.errors import UsageError
from phone.pki import PooledKeys
from phone.scenario import ScenarioError, fleet, load_scenario, parse_scenario, run_scenario
from phone.scenario.fleet import planned_operations
from phone.scenario.report import Report

# Two groups of different sizes on two clusters, a regeneration (keys drawn in advance for the
# workers) and an ITL File Status count that each worker sees a part of.
FLEET = textwrap.dedent(
    """\
    [scenario]
    name = "fleet"
    title = "fleet"

    [[cluster]]
    name = "old"
    release = "14.x"

    [[cluster]]
    name = "new"

    [[group]]
    name = "online"
    count = 7
    cluster = "old"

    [[group]]
    name = "offline"
    count = 4
    cluster = "old"

    [[step]]
    do = "power-off"
    group = "offline"

    [[step]]
    do = "regenerate"
    cluster = "old"
    cert = "itlrecovery"

    [[step]]
    do = "regenerate"
    cluster = "old"
    cert = "tvs"

    [[step]]
    do = "reset"

    [[step]]
    do = "power-on"
    group = "offline"

    [[expect]]
    group = "online"
    count = "none"
    itl_matches_cluster = true

    [[expect]]
    cluster = "old"
    itl_mismatches = 11

    [[expect]]
    state = "registered"
    """
)


@pytest.fixture(scope="module")
def in_process() -> Report:
    return run_scenario(parse_scenario(FLEET), keys=pooled_keys(), workers=1)


@pytest.fixture(scope="module")
def three_workers() -> Report:
    report = run_scenario(parse_scenario(FLEET), keys=pooled_keys(), workers=3)
    assert not multiprocessing.active_children()  # every worker was joined
    return report


def test_workers_give_the_same_report(in_process: Report, three_workers: Report) -> None:
    assert three_workers.to_json() == in_process.to_json()
    assert three_workers.ok, [e.expect for e in three_workers.failed]


def test_counts_from_every_worker_add_up(three_workers: Report) -> None:
    # Phone counts: every phone in exactly one shard.
    setup = three_workers.steps[0]
    assert setup.groups["online"].states == {"registered": 7}
    assert setup.groups["offline"].states == {"registered": 4}
    reset = three_workers.steps[4]
    assert (reset.groups["offline"].acted, reset.groups["offline"].skipped) == (0, 4)
    # The ITL File Status count and the reports it is out of: device rows of every worker's
    # lab copy, added up.
    cluster_expect = three_workers.expectations[1]
    assert cluster_expect.values == {"itl_mismatches": 11, "itl_reports": 11}
    assert sum(row.phones for row in three_workers.summary) == 11
    # Examples are the lowest phone indexes, whichever worker ran them.
    assert [e.index for e in three_workers.expectations[0].examples] == [0, 1, 2]


def test_a_failing_expectation_fails_the_same_way_in_workers() -> None:
    scenario = parse_scenario(FLEET.replace("itl_mismatches = 11", "itl_mismatches = 10"))
    one = run_scenario(scenario, keys=pooled_keys(), workers=1)
    two = run_scenario(scenario, keys=pooled_keys(), workers=2)
    assert not one.ok and not two.ok
    assert one.to_json() == two.to_json()


def test_an_error_in_a_worker_reaches_the_caller_with_its_line() -> None:
    scenario = parse_scenario(
        FLEET
        + '\n[[step]]\ndo = "export-certs"\npassword = "a"\n'
        + '\n[[step]]\ndo = "import-certs"\npassword = "b"\n',
        path="fleet.toml",
    )
    with pytest.raises(ScenarioError) as caught:
        run_scenario(scenario, keys=pooled_keys(), workers=2)
    assert caught.value.path == "fleet.toml"
    assert caught.value.line == FLEET.count("\n") + 6
    assert not multiprocessing.active_children()


def test_progress_reaches_the_plan() -> None:
    scenario = load_scenario("reboot-unchanged").with_count(70)
    seen: list[tuple[int, int]] = []
    run_scenario(scenario, keys=pooled_keys(), workers=2, progress=lambda d, t: seen.append((d, t)))
    total = planned_operations(scenario)
    assert total == 70 * 4  # setup boot, reset, power-off, power-on
    assert seen[-1] == (total, total)
    assert all(t == total and 0 <= d <= total for d, t in seen)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_workers_are_bounded() -> None:
    scenario = parse_scenario(FLEET)
    with pytest.raises(UsageError, match="between 1 and"):
        run_scenario(scenario, keys=pooled_keys(), workers=0)
    # More workers than phones: one per phone at most (here: runs in-process, 1 phone).
    tiny = scenario.with_count(1)
    assert run_scenario(tiny, keys=pooled_keys(), workers=1).steps[0].groups["online"].states


# --- CAPF over shards (issue 8) ------------------------------------------------------------------

# Two groups enroll (one with the right string, one with a wrong one), then TVS is regenerated:
# each worker sets the operations on its own phones' device records, its phones enroll against
# its own copy of the lab's CAPF, and the regeneration still draws the pre-drawn keys.
CAPF_FLEET = textwrap.dedent(
    """\
    [scenario]
    name = "capf-fleet"
    title = "capf fleet"

    [[cluster]]
    name = "c1"
    mode = "mixed"

    [[group]]
    name = "right"
    count = 5
    cluster = "c1"
    power = "off"

    [[group]]
    name = "wrong"
    count = 3
    cluster = "c1"
    security_mode = "authenticated"

    [[step]]
    do = "set-device"
    encrypt_config = true
    security_mode = "encrypted"

    [[step]]
    do = "capf"
    operation = "install"
    auth = "string:2468"
    capf_string = "2468"

    [[step]]
    do = "capf"
    group = "wrong"
    operation = "install"
    auth = "string:2468"
    capf_string = "1357"

    [[step]]
    do = "boot"

    [[step]]
    do = "regenerate"
    cluster = "c1"
    cert = "tvs"

    [[step]]
    do = "reset"

    [[expect]]
    group = "right"
    state = "registered"
    registered_over = "tls"
    lsc = true
    capf_result = "install succeeded"
    capf_pending = "none"

    [[expect]]
    group = "wrong"
    state = "registered"
    lsc = false
    capf_result = "install failed"
    capf_pending = "install"
    last_capf = "rejected by seed"

    [[expect]]
    cluster = "c1"
    log_contains = "install succeeded"
    """
)


class _NotAPool:
    """A key source that is not a :class:`PooledKeys`: workers' phones generate fresh keys."""

    def rsa(self, bits: int) -> RSAPrivateKey:
        return pooled_keys().rsa(bits)


def test_capf_state_and_lscs_are_the_same_for_any_number_of_workers() -> None:
    scenario = parse_scenario(CAPF_FLEET)
    one = run_scenario(scenario, keys=pooled_keys(), workers=1)
    assert one.ok, [(e.expect, e.examples) for e in one.failed]
    # Phones generate their keys in the workers here (the caller's source is no pool).
    three = run_scenario(scenario, keys=_NotAPool(), workers=3)
    assert three.to_json() == one.to_json()
    assert not multiprocessing.active_children()
    boot = three.steps[4]
    assert boot.groups["right"].states == {"registered": 5}


def test_the_library_capf_scenario_in_workers() -> None:
    scenario = load_scenario("encrypted-config-lsc").with_count(3)
    one = run_scenario(scenario, keys=pooled_keys(), workers=1)
    two = run_scenario(scenario, keys=pooled_keys(), workers=2)
    assert one.ok and two.ok, [e.expect for e in two.failed]
    assert two.to_json() == one.to_json()


def test_workers_get_pooled_phone_keys_only_from_a_pool() -> None:
    scenario = parse_scenario(CAPF_FLEET)
    pool = PooledKeys(pooled_key_lists())
    # 5 + 3 phones enroll, then the 3 "wrong" ones are asked again: 11 enrollments at most,
    # 4 for the busiest of 3 shards.
    keys = fleet._phone_keys(scenario, pool, 3)
    assert keys is not None and len(keys) == 4 and len({id(k) for k in keys}) == 4
    assert len(fleet._phone_keys(scenario, pool, 1) or ()) == 11
    # Never more than the pool holds: beyond that the keys would repeat anyway.
    big = fleet._phone_keys(scenario.with_count(40), pool, 1)
    assert big is not None and len(big) == pool.pool_size(2048)
    assert fleet._phone_keys(scenario, _NotAPool(), 3) is None
    assert fleet._phone_keys(parse_scenario(FLEET), pool, 3) is None  # nobody enrolls
