"""What each trace entry of a boot records besides its decision: the TFTP server a file came
from and the phone's clock when the rule decided. ``vphone boot --json`` prints both (the
``server`` and ``at`` fields, docs/cli.md), and a migration report's per-phone trace reads them
to tell which node served the file the phone refused."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from keypool import pooled_keys

from phone.api import create_lab
from phone.cluster.lab import Lab
from phone.device.flash import MemoryFlash
from phone.device.phone import VirtualPhone
from phone.device.trace import TraceEntry
from phone.net.memory import MemoryBackend

NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


def _clock() -> datetime:
    return NOW


@pytest.fixture
def entries() -> list[TraceEntry]:
    # Per test, not per module: mutmut maps a function to the tests that call it, and a
    # module fixture's calls count for the first test only.
    lab: Lab = create_lab("cluster1", now=NOW, keys=pooled_keys())
    backend = MemoryBackend(lab, clock=_clock)
    phone = VirtualPhone(
        mac="001122334455",
        backend=backend,
        tftp="cucm1",
        flash=MemoryFlash(),
        clock=_clock,
        keys=pooled_keys(),
    )
    phone.boot()
    return list(phone.trace)


def test_a_file_decision_names_the_tftp_server_it_came_from(entries: list[TraceEntry]) -> None:
    decided = {e.file: e for e in entries if e.step in ("itl", "config") and e.file}
    # The first boot of the default lab's 8841: the per-phone ITL (item 2) and the signed
    # config, both fetched from the TFTP server the phone was given ("cucm1").
    assert decided["ITLSEP001122334455.tlv"].server == "cucm1"
    assert decided["SEP001122334455.cnf.xml.sgn"].server == "cucm1"
    assert decided["SEP001122334455.cnf.xml.sgn"].as_dict()["server"] == "cucm1"


def test_every_entry_is_stamped_with_the_phones_clock(entries: list[TraceEntry]) -> None:
    assert entries
    assert {e.at for e in entries} == {NOW}
    assert entries[0].as_dict()["at"] == "2026-06-01T09:00:00+00:00"
