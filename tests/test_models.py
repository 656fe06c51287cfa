"""The model table (issue 14): every model boots, and the documented outcomes per family.

Expected values are literals from Cisco's text and the spec, never the code's own constants:
changing a status text, a load name or a row's outcome in the code fails a test here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from keypool import pooled_keys

from phone.api import create_lab, create_phone
from phone.catalog.loads import CATALOGUE, build_image
from phone.catalog.models import FIELDS, MODELS, get_model
from phone.cli import main
from phone.cluster.lab import Lab
from phone.cluster.records import ClusterSpec
from phone.device.machine import State
from phone.device.phone import VirtualPhone
from phone.trust.images import evaluate_image

NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
MAC = "0011223344AA"

# Every model the issue names (issue 14, "Cover at least").
ISSUE_MODELS = [
    "7902",
    "7905",
    "7910",
    "7912",
    "7940",
    "7960",
    "7906",
    "7911",
    "7931",
    "7941",
    "7942",
    "7945",
    "7961",
    "7962",
    "7965",
    "7970",
    "7971",
    "7975",
    "6901",
    "6911",
    "6921",
    "6941",
    "6945",
    "6961",
    "7811",
    "7821",
    "7841",
    "7861",
    "8811",
    "8841",
    "8845",
    "8851",
    "8861",
    "8865",
    "8941",
    "8945",
    "8961",
    "9951",
    "9971",
    "7925G",
    "8821",
]

# Literal status texts, each with its source (item 47 keeps them in the status-message log).
STATUS_TEXTS = {
    "CTL and ITL installed": "item 10, item 47 [S13] 8800 admin guide",
    "CTL installed": "item 10 [S19][S20][S13]",
    "ITL installed": "item 9 [S3][S4][S50]",
    "Trust List updated": "item 13 [S13]",
    "Trust List update failed": "item 13 [S13]",
    "CTL update failed": "item 47 [S13]",
    "No Trust List installed": "item 47 [S13]",
    "Auth Fail": "items 37/38 [S28]; C4, C5, C7 (Java 79xx)",
    "File auth error": "C41 (7940, 8.1(2) without 8.1(1)); 79xx admin guides (config)",
    "Load rejected HC": "item 39 [S13]",
    "Version error": "item 39 [S13]",
    "Checksum Error": "item 39 [S13]",
    "Upgrade in Progress": "item 36 [S32][S13]",
    "Upgrade Failed": "item 36 [S32][S13]",
    "Erasing CTL and ITL files": "item 46 [S13]",
    "File not found": "item 47 [S13] (followed by the file name)",
    "invalid file {file}, authenticated fail. Reason:14": "item 14 [S21] (8945 log line)",
}

# The text each family shows when its running firmware cannot verify an image.
IMAGE_AUTH_TEXT = {
    "7940": "File auth error",  # C41
    "7960": "File auth error",  # C41
    "7942": "Auth Fail",  # C4
    "7962": "Auth Fail",  # C4
    "7970": "Auth Fail",  # C7
    "8841": "Auth Fail",  # item 37 [S13]
}

# The Java 79xx rollover: (model, shipped-on load, intermediate, first new-key load) [C4][C5][C6].
ROLLOVER = (
    ("7906", "SCCP11.8-3-1S", "SCCP11.8-5-2S", "SCCP11.8-5-2SR1S"),
    ("7941", "SCCP41.8-3-1S", "SCCP41.8-5-2S", "SCCP41.8-5-2SR1S"),
    ("7962", "SCCP42.8-3-1S", "SCCP42.8-5-2S", "SCCP42.8-5-2SR1S"),
    ("7965", "SCCP45.8-3-1S", "SCCP45.8-5-2S", "SCCP45.8-5-2SR1S"),
    ("7971", "SCCP70.8-3-1S", "SCCP70.8-5-2S", "SCCP70.8-5-2SR1S"),
    ("7975", "SCCP75.8-3-1S", "SCCP75.8-5-2S", "SCCP75.8-5-2SR1S"),
)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def labs() -> dict[str, Lab]:
    """One default (non-secure) lab and one mixed-mode lab, shared by every model's boot."""
    return {
        "non-secure": create_lab(ClusterSpec("c1"), now=NOW, keys=pooled_keys()),
        "mixed": create_lab(ClusterSpec("c1", mixed_mode=True), now=NOW, keys=pooled_keys()),
    }


_macs: Iterator[int] = iter(range(0x020000001000, 0x020000002000))


def boot(lab: Lab, model: str) -> VirtualPhone:
    phone = create_phone(lab, mac=f"{next(_macs):012X}", model=model, clock=Clock())
    phone.boot()
    return phone


# --- the table ------------------------------------------------------------------------------


def test_the_table_has_every_model_of_the_issue() -> None:
    assert len(MODELS) >= 30
    assert sorted(ISSUE_MODELS) == sorted(MODELS)


@pytest.mark.parametrize("name", ISSUE_MODELS)
def test_every_field_is_sourced_or_marked_a_guess(name: str) -> None:
    model = MODELS[name]
    sources = dict(model.sources)
    for field in FIELDS:
        assert sources.get(field) or field in model.guesses, f"{name}.{field}: no source, no [G]"
    assert model.factory_load in CATALOGUE and model.default_load in CATALOGUE


def test_cli_model_list_json_lists_every_row_with_its_sources(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["model", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) >= 30
    for row in rows:
        assert row["sources"] and row["citations"], row["model"]
        for key in ("security_by_default", "ctl", "tvs", "protocols", "loads", "image_format"):
            assert key in row


def test_cli_model_show(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["model", "show", "cp-8845", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["loads"] == ["sip8845_65.14-1-1"]  # [C28]: the 8845/8865 run sip8845_65
    assert main(["model", "show", "7940"]) == 0
    assert "File auth error" in capsys.readouterr().out
    assert main(["model", "show", "7999"]) == 2


def test_load_names_follow_cisco() -> None:
    """[C23][C28]: real load names per family, not the old invented SIP79xx.*."""
    assert get_model("7962").default_load == "SCCP42.9-4-2SR3-1S"
    assert get_model("7945").default_load == "SCCP45.9-4-2SR4-3S"
    assert get_model("8945").default_load == "SCCP894x.9-4-2SR1-2"
    assert get_model("8941").image_format.value == "legacy"
    assert get_model("8845").default_load == "sip8845_65.14-1-1"
    assert get_model("8841").default_load.startswith("sip88xx.")
    assert get_model("9951").default_load == "sip9951.9-4-2SR4-1"
    assert get_model("7925G").default_load == "CP7925G-1.4.8.4"
    assert not any(name.startswith("SIP79xx") for name in CATALOGUE)


@pytest.mark.parametrize("name", sorted({m.default_load for m in MODELS.values()}))
def test_vphone_image_show_reads_every_family_format(
    name: str, tmp_path: object, capsys: pytest.CaptureFixture[str]
) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / f"{name}.loads"
    path.write_bytes(build_image(CATALOGUE[name]))
    assert main(["image", "show", str(path)]) == 0
    assert name in capsys.readouterr().out


# --- every model boots, in a default and a mixed-mode lab ------------------------------------


@pytest.mark.parametrize("mode", ["non-secure", "mixed"])
@pytest.mark.parametrize("name", ISSUE_MODELS)
def test_every_model_boots_with_its_family_outcome(
    labs: dict[str, Lab], mode: str, name: str
) -> None:
    model = MODELS[name]
    phone = boot(labs[mode], name)
    assert phone.state is State.REGISTERED, phone.status
    # Pre-SBD phones ignore the ITL (seed); the others install it.
    assert (phone.itl is not None) == model.security_by_default
    # A CTL is served in mixed mode only (item 2); a phone that takes one installs it.
    assert (phone.ctl is not None) == (mode == "mixed" and model.ctl)
    config = [t for t in phone.trace if t.step == "config" and t.decision == "accepted"][-1]
    signed = model.security_by_default or (mode == "mixed" and model.ctl)
    if model.security_by_default:
        assert config.file == "XMLDefault.cnf.xml.sgn"
    else:
        # Seed: "Cisco IP Phones that do not support Security by Default will be served a
        # nonsigned default configuration file."
        assert config.file == "XMLDefault.cnf.xml"
    del signed
    if mode == "mixed" and model.ctl and model.security_by_default:
        both = "CTL and ITL installed" in phone.status
        # Item 10 [S13]: the 8800 series shows one text for a first boot installing both.
        assert both == (model.family in ("8800", "8845/8865"))


# --- autoregistration (seed) -----------------------------------------------------------------


@pytest.mark.parametrize("mode", ["non-secure", "mixed"])
def test_seed_a_7940_autoregisters_in_both_modes(labs: dict[str, Lab], mode: str) -> None:
    """Seed: "The system supports autoregistration in both mixed mode and nonsecure mode."."""
    phone = boot(labs[mode], "7940")
    assert phone.state is State.REGISTERED
    assert phone.itl is None
    accepted = [t.file for t in phone.trace if t.step == "config" and t.decision == "accepted"]
    assert accepted == ["XMLDefault.cnf.xml"]


@pytest.mark.parametrize("mode", ["non-secure", "mixed"])
def test_seed_an_8841_gets_the_signed_default_config_in_both_modes(
    labs: dict[str, Lab], mode: str
) -> None:
    """Seed: "The default configuration file will also be signed."."""
    phone = boot(labs[mode], "8841")
    assert phone.state is State.REGISTERED
    accepted = [t.file for t in phone.trace if t.step == "config" and t.decision == "accepted"]
    assert accepted == ["XMLDefault.cnf.xml.sgn"]


def test_the_tftp_server_serves_by_name_not_by_model(labs: dict[str, Lab]) -> None:
    """A TFTP server cannot know a phone's model: the .sgn goes to whoever asks for it."""
    from phone.cluster.files import ClientInfo

    lab = labs["mixed"]
    service = lab.file_service(lab.cluster().tftp_hosts[0])
    assert service is not None
    assert service.get("XMLDefault.cnf.xml.sgn", ClientInfo("10.1.1.5", model="7940"))
    assert service.get("XMLDefault.cnf.xml", ClientInfo("10.1.1.5", model="8841"))


# --- first boot: "CTL and ITL installed" ------------------------------------------------------


def test_item10_an_8841_first_boot_in_mixed_mode_shows_ctl_and_itl_installed(
    labs: dict[str, Lab],
) -> None:
    phone = boot(labs["mixed"], "8841")
    assert phone.status[0] == "CTL and ITL installed"  # [S13]
    assert "CTL installed" not in phone.status and "Trust List updated" not in phone.status


# --- the image-key rollover and the 7940/7960 step ---------------------------------------------


def _install(model: str, requested: str, running: str) -> tuple[bool, str]:
    row = get_model(model)
    decision = evaluate_image(
        build_image(CATALOGUE[requested]),
        requested=requested,
        model_family=row.load_family,
        image_format=row.image_format,
        known_key_ids=CATALOGUE[running].known_key_ids,
    )
    return decision.accepted, decision.reason


@pytest.mark.parametrize(("model", "shipped", "intermediate", "sr1"), ROLLOVER)
def test_item38_java_79xx_need_852_without_sr1(
    model: str, shipped: str, intermediate: str, sr1: str
) -> None:
    """C4: "Do NOT download the SR1 version as the SR1 version uses the new signature"."""
    assert get_model(model).factory_load == shipped  # C4: new units shipped on 8.3(1)
    ok, reason = _install(model, sr1, shipped)
    assert not ok and intermediate in reason
    assert _install(model, get_model(model).default_load, shipped)[0] is False
    assert _install(model, intermediate, shipped)[0]
    assert _install(model, sr1, intermediate)[0]
    assert _install(model, get_model(model).default_load, intermediate)[0]


@pytest.mark.parametrize("model", ["7940", "7960"])
def test_c41_7940_7960_take_812_only_over_811(model: str) -> None:
    """C41: "trying to upgrade the firmware to version 8.1.2 ... you need to be in 8.1.1 first"."""
    row = get_model(model)
    assert row.loads == ("P00308000500", "P00308010100", "P00308010200")
    assert "8-5-2" not in " ".join(row.loads)  # the 7940/7960 never ran 8.5(2)
    assert not _install(model, "P00308010200", "P00308000500")[0]
    assert _install(model, "P00308010100", "P00308000500")[0]
    assert _install(model, "P00308010200", "P00308010100")[0]


@pytest.mark.parametrize(("model", "text"), sorted(IMAGE_AUTH_TEXT.items()))
def test_image_auth_text_per_family(model: str, text: str) -> None:
    """The refused-image text a phone shows is its family's (C41 vs C4/[S13])."""
    from phone.cluster.records import Device

    clock = Clock()
    lab = create_lab(ClusterSpec("c1"), now=NOW, keys=pooled_keys())
    row = get_model(model)
    newest = row.default_load
    lab.cluster().add_device(Device(MAC, model=model, load=newest), now=clock())
    phone = create_phone(lab, mac=MAC, model=model, clock=clock)
    phone.boot()
    if row.key_rollover:
        assert text in phone.status
        assert phone.running_load == row.factory_load
    else:
        assert phone.running_load == newest  # no rollover: the newest load installs
    assert text in STATUS_TEXTS


def test_status_texts_in_code_are_the_documented_literals() -> None:
    """Every text the code can show is one of the literal, sourced texts of this table."""
    from phone.trust.decision import Status

    shown = {v for k, v in vars(Status).items() if k.isupper()}
    assert shown - {"Registered", "Registration failed", "TFTP timeout"} <= set(STATUS_TEXTS)
    texts = {t for m in MODELS.values() for _, t in m.statuses}
    assert texts <= set(STATUS_TEXTS)


# --- unprepared migration (C2, item 32) --------------------------------------------------------


def _moved(*, new_runs_callmanager: bool) -> VirtualPhone:
    import dataclasses

    from phone.cluster.records import Device

    clock = Clock()
    lab = create_lab(ClusterSpec("old"), ClusterSpec("new"), now=NOW, keys=pooled_keys())
    for name in ("old", "new"):
        lab.cluster(name).add_device(Device(MAC, model="8841"), now=clock())
    phone = create_phone(lab, mac=MAC, model="8841", cluster="old", clock=clock)
    assert phone.boot() is State.REGISTERED and phone.registered_with == "cucm1.old.lab"
    new = lab.cluster("new")
    if not new_runs_callmanager:
        nodes = new.state.nodes
        nodes[0] = dataclasses.replace(nodes[0], runs_callmanager=False)
    phone.tftp = new.tftp_hosts[0]  # DHCP option 150 now names the new cluster
    phone.reset()
    return phone


def test_c2_unprepared_move_registers_to_the_configured_tftp_server() -> None:
    """C2: "Any changes that phones receive through TFTP or HTTP of configuration files will not
    be honored" and (quoted in issue 14) the phone "very likely will register, it registers to
    configured TFTP server by default"."""
    phone = _moved(new_runs_callmanager=True)
    assert [t.decision for t in phone.trace if t.step == "itl"][-1] == "rejected"
    assert "rejected" in [t.decision for t in phone.trace if t.step == "config"]
    assert phone.state is State.REGISTERED
    assert phone.registered_with == "cucm1.new.lab"


def test_c2_no_registration_where_the_new_tftp_server_runs_no_callmanager() -> None:
    """C2 (quoted in issue 14): "The phone likely will not register if the new TFTP server is
    not running the CallManager service"."""
    phone = _moved(new_runs_callmanager=False)
    assert phone.state is not State.REGISTERED
    assert "Registration failed" in phone.status


# --- item 14/47: the family's words for a config it cannot authenticate --------------------------


@pytest.mark.parametrize(
    ("model", "text"),
    [
        # [S21]: the 8945 logs "invalid file SEP....cnf.xml.sgn, authenticated fail. Reason:14".
        ("8945", "invalid file {name}, authenticated fail. Reason:14"),
        ("8941", "invalid file {name}, authenticated fail. Reason:14"),
        # The 79xx/88xx show "File auth error" followed by the file's name (item 47).
        ("8841", "File auth error {name}"),
        ("7962", "File auth error {name}"),
    ],
)
def test_item14_a_tampered_config_is_refused_in_the_familys_words(model: str, text: str) -> None:
    from phone.net.faults import FaultyBackend, parse_fault
    from phone.net.memory import MemoryBackend

    clock = Clock()
    lab = create_lab("cluster1", now=NOW, keys=pooled_keys())
    phone = create_phone(lab, mac="0011223344B1", model=model, clock=clock)
    assert phone.boot() is State.REGISTERED  # the ITL is installed: configs must be signed
    tampered = FaultyBackend(MemoryBackend(lab, clock=clock), [parse_fault("tamper:*.cnf.xml.sgn")])
    phone.backend = tampered
    phone.boot()
    refused = [e for e in phone.trace if e.step == "config" and e.decision == "rejected"]
    assert refused, phone.trace
    name = refused[-1].file
    assert text.format(name=name) in phone.status
