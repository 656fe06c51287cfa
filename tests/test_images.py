"""Firmware images and the phone's decision on them (phone-behaviour.md items 36-39).

Tests are grouped by item number. Images come from phone.catalog.loads (the same bytes as the
committed firmware_images/), keys a phone does not know from the test key pool.
"""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from keypool import pooled_keys

from phone.catalog.loads import (
    CATALOGUE,
    LEGACY_SIGNER_ISSUER,
    LEGACY_SIGNER_NAME,
    LEGACY_SIGNER_SERIAL,
    Load,
    build_image,
    image_filename,
    render_payload,
    sign_image,
    sign_payload,
)
from phone.catalog.models import MODELS, ImageFormat, get_model
from phone.errors import FormatError, StructureError, ValueFormatError
from phone.formats.firmware import CONTAINER_HEADER_LENGTH, MAGIC, parse_container
from phone.formats.header import Digest
from phone.formats.signed import parse_signed
from phone.trust.images import (
    AUTH_FAIL,
    CHECKSUM_ERROR,
    LOAD_REJECTED_HC,
    VERSION_ERROR,
    ImageDecision,
    LoadInfo,
    evaluate_image,
    parse_load_info,
)
from phone.vendor import IMAGE_KEY_IDS, image_signing_key

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "firmware_images"
STATUSES = {AUTH_FAIL, CHECKSUM_ERROR, LOAD_REJECTED_HC, VERSION_ERROR}
LEGACY = "SCCP42.9-4-2SR3-1S"
CONTAINER = "sip88xx.14-1-1"


def install(
    requested: str, *, running: str, data: bytes | None = None, known: tuple[str, ...] | None = None
) -> ImageDecision:
    """What a phone running load ``running`` decides on ``data`` (default: the real image)."""
    resident = CATALOGUE[running]
    return evaluate_image(
        build_image(CATALOGUE[requested]) if data is None else data,
        requested=requested,
        model_family=resident.family,
        image_format=resident.image_format,
        known_key_ids=resident.known_key_ids if known is None else known,
    )


def flip(data: bytes, offset: int) -> bytes:
    """``data`` with one bit of byte ``offset`` changed."""
    return data[:offset] + bytes((data[offset] ^ 0x01,)) + data[offset + 1 :]


def assert_refused(decision: ImageDecision, status: str, rule: str) -> None:
    assert not decision.accepted, decision
    assert decision.status == status, decision
    assert decision.rule == rule, decision
    assert "resident load" in decision.reason  # the phone keeps booting its old image (item 37)


# --- item 36: the images the phone fetches -----------------------------------------------------


def test_item36_committed_images_equal_build_image() -> None:
    """firmware_images/ never drifts from what tools/make_firmware.py would write."""
    for load in CATALOGUE.values():
        assert (IMAGES / load.filename).read_bytes() == build_image(load), load.name
    assert {p.name for p in IMAGES.glob("*.loads")} == {
        load.filename for load in CATALOGUE.values()
    }
    assert (IMAGES / "README.md").is_file()


def _make_firmware() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_firmware", ROOT / "tools/make_firmware.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_item36_tool_writes_the_same_bytes(tmp_path: Path) -> None:
    tool = _make_firmware()
    assert tool.main(["--out", str(tmp_path)]) == 0
    for load in CATALOGUE.values():
        assert (tmp_path / load.filename).read_bytes() == build_image(load)
    assert tool.main(["--out", str(tmp_path), "--check"]) == 0
    (tmp_path / image_filename(LEGACY)).write_bytes(b"changed")
    assert tool.main(["--out", str(tmp_path), "--check"]) == 1


def test_item36_image_filename_and_determinism() -> None:
    assert image_filename(LEGACY) == "SCCP42.9-4-2SR3-1S.loads"
    load = CATALOGUE[LEGACY]
    assert load.filename == "SCCP42.9-4-2SR3-1S.loads"
    # RSA PKCS#1 v1.5 is deterministic: signing again gives the same bytes.
    assert sign_image(load, image_signing_key(load.signing_key_id)) == build_image(load)


def test_item36_models_ship_catalogue_loads() -> None:
    assert get_model("7962").factory_load == "SCCP42.8-3-1S"  # shipped before the rollover [C4]
    assert get_model("7962").default_load == "SCCP42.9-4-2SR3-1S"  # [C23]
    for model in MODELS.values():
        load = CATALOGUE[model.factory_load]
        assert load.family == model.load_family
        assert load.image_format is model.image_format


def test_section10a_legacy_header_is_cisco_shaped() -> None:
    for load in CATALOGUE.values():
        if load.image_format is not ImageFormat.LEGACY:
            continue
        header = parse_signed(build_image(load)).header
        assert header.version == (1, 1)
        assert header.timestamp is None
        assert header.filename == load.filename
        assert header.signer_name == LEGACY_SIGNER_NAME == "CN=someSigner;OU=someOrgUnit;O=someOrg"
        assert header.signer_issuer == LEGACY_SIGNER_ISSUER
        assert header.signer_serial == LEGACY_SIGNER_SERIAL == bytes.fromhex("1234567890abcdef")
        assert header.digest is Digest.SHA1
        assert header.modulus_index == 2 and len(header.signature) == 256
        # 404-412 on the real files; the 790x names (CP7902...A.loads) are longer [G].
        assert header.length % 4 == 0 and header.length in (404, 408, 412, 416)


def test_section10b_container_header_is_cisco_shaped() -> None:
    for load in CATALOGUE.values():
        if load.image_format is not ImageFormat.CONTAINER:
            continue
        data = build_image(load)
        image = parse_container(data)
        assert data[:4] == MAGIC
        assert image.header_length == CONTAINER_HEADER_LENGTH
        assert image.name == load.filename
        assert image.hash_matches()


def test_payload_names_the_load_and_its_keys() -> None:
    for load in CATALOGUE.values():
        payload = render_payload(load)
        assert f"KNOWN_IMAGE_KEYS={','.join(load.known_key_ids)}\n".encode() in payload
        assert parse_load_info(payload) == LoadInfo(load.name, load.family, load.known_key_ids)


# --- item 37: authentication -------------------------------------------------------------------


def test_item37_accepts_the_vendor_image() -> None:
    decision = install(CONTAINER, running="sip88xx.12-0-1")
    assert decision.accepted and decision.status is None
    assert decision.rule == "item 37"
    assert decision.key_id == "image-key-2010"
    assert decision.load == LoadInfo(CONTAINER, "88xx", ("image-key-2010",))


def test_item37_tampered_legacy_payload_is_auth_fail() -> None:
    data = build_image(CATALOGUE[LEGACY])
    decision = install(LEGACY, running=LEGACY, data=data[:-1] + b"X")
    assert_refused(decision, AUTH_FAIL, "item 37")
    assert "image-key-2009, image-key-2010" in decision.reason  # the keys tried
    assert decision.load is None and decision.key_id is None


def test_item37_tampered_container_payload_is_checksum_error() -> None:
    data = build_image(CATALOGUE[CONTAINER])
    decision = install(CONTAINER, running="sip88xx.12-0-1", data=data[:-1] + b"X")
    assert_refused(decision, CHECKSUM_ERROR, "item 39")
    assert "SHA-256" in decision.reason
    assert decision.load is None


def test_item37_tampered_container_header_is_auth_fail() -> None:
    # Offset 8 is a reserved zero field: no parse check covers it, only the signature.
    data = flip(build_image(CATALOGUE[CONTAINER]), 8)
    assert_refused(install(CONTAINER, running="sip88xx.12-0-1", data=data), AUTH_FAIL, "item 37")


@pytest.mark.parametrize(("name", "running"), [(LEGACY, LEGACY), (CONTAINER, "sip88xx.12-0-1")])
def test_item37_every_changed_byte_is_refused(name: str, running: str) -> None:
    data = build_image(CATALOGUE[name])
    for offset in range(len(data)):
        decision = install(name, running=running, data=flip(data, offset))
        assert not decision.accepted, offset
        assert decision.status in STATUSES, offset
        assert decision.load is None, offset


@pytest.mark.parametrize("name", [LEGACY, CONTAINER, "SCCP42.8-5-2S"])
def test_item37_image_signed_by_an_unknown_key_is_auth_fail(name: str) -> None:
    load = CATALOGUE[name]
    stranger = sign_image(load, pooled_keys().rsa(2048))  # well formed, foreign key
    decision = install(name, running=name, data=stranger)
    assert_refused(decision, AUTH_FAIL, "item 37")
    assert ", ".join(load.known_key_ids) in decision.reason
    assert decision.load is None


def test_item37_unknown_key_ids_are_ignored_and_named() -> None:
    decision = install(LEGACY, running=LEGACY, known=("image-key-1999", "image-key-2010"))
    assert decision.accepted and decision.key_id == "image-key-2010"
    refused = install(LEGACY, running=LEGACY, known=("image-key-1999",))
    assert_refused(refused, AUTH_FAIL, "item 38")
    assert "image-key-1999" in refused.reason


def test_item37_firmware_that_knows_no_key_refuses_everything() -> None:
    decision = install(CONTAINER, running="sip88xx.12-0-1", known=())
    assert decision.status == AUTH_FAIL
    assert "knows no image key" in decision.reason


# --- item 38: signing-key rollover -------------------------------------------------------------


def test_item38_old_firmware_refuses_the_new_key() -> None:
    decision = install("SCCP42.9-4-2SR3-1S", running="SCCP42.8-3-1S")
    assert_refused(decision, AUTH_FAIL, "item 38")
    assert "image-key-2010" in decision.reason
    assert "SCCP42.8-5-2S" in decision.reason  # the intermediate load to install first
    assert decision.load is None


def test_item38_intermediate_load_bridges_the_rollover() -> None:
    running = get_model("7962").factory_load
    assert running == "SCCP42.8-3-1S"
    step = install("SCCP42.8-5-2S", running=running)
    assert step.accepted and step.key_id == "image-key-2009"
    assert step.load is not None
    assert step.load.known_key_ids == ("image-key-2009", "image-key-2010")
    # Now running 8.5(2): its built-in keys, read from the payload, decide the next image.
    final = evaluate_image(
        build_image(CATALOGUE["SCCP42.9-4-2SR3-1S"]),
        requested="SCCP42.9-4-2SR3-1S",
        model_family=step.load.family,
        image_format=ImageFormat.LEGACY,
        known_key_ids=step.load.known_key_ids,
    )
    assert final.accepted and final.key_id == "image-key-2010"
    assert final.load == LoadInfo("SCCP42.9-4-2SR3-1S", "SCCP42", IMAGE_KEY_IDS)


def test_item38_new_firmware_still_takes_old_key_loads() -> None:
    assert install("SCCP42.8-5-2S", running="SCCP42.9-4-2SR3-1S").accepted


def test_every_catalogue_transition() -> None:
    """Accepted iff same family and signed with a key the running load knows; and then the
    decision carries the authenticated load info."""
    for running, requested in itertools.product(CATALOGUE.values(), repeat=2):
        decision = install(requested.name, running=running.name)
        same_format = running.image_format is requested.image_format
        expected = (
            running.family == requested.family and requested.signing_key_id in running.known_key_ids
        )
        assert decision.accepted is expected, (running.name, requested.name, decision)
        if decision.accepted:
            assert decision.status is None
            assert decision.key_id == requested.signing_key_id
            assert decision.load == LoadInfo(
                requested.name, requested.family, requested.known_key_ids
            )
        else:
            assert decision.status in STATUSES
            if not same_format:
                assert decision.status == LOAD_REJECTED_HC


# --- item 39: other image statuses -------------------------------------------------------------


def test_item39_other_hardware_same_format_is_load_rejected_hc() -> None:
    decision = install("sip78xx.11-0-1-11", running="sip88xx.12-0-1")
    assert_refused(decision, LOAD_REJECTED_HC, "item 39")
    # The image authenticated, so what it says about itself is reported.
    assert decision.load == LoadInfo("sip78xx.11-0-1-11", "78xx", ("image-key-2010",))
    assert decision.key_id == "image-key-2010"


@pytest.mark.parametrize(("requested", "running"), [(CONTAINER, LEGACY), (LEGACY, CONTAINER)])
def test_item39_other_image_format_is_load_rejected_hc(requested: str, running: str) -> None:
    decision = install(requested, running=running)
    assert_refused(decision, LOAD_REJECTED_HC, "item 39")
    assert decision.load is None


def test_item39_wrong_file_under_the_requested_name_is_version_error() -> None:
    data = build_image(CATALOGUE["SCCP42.9-4-2SR3-1S"])
    decision = install("SCCP42.8-5-2S", running="SCCP42.8-3-1S", data=data)
    assert_refused(decision, VERSION_ERROR, "item 39")
    assert "SCCP42.9-4-2SR3-1S.loads" in decision.reason
    data88 = build_image(CATALOGUE["sip88xx.12-0-1"])
    assert install(CONTAINER, running=CONTAINER, data=data88).status == VERSION_ERROR


def test_item39_payload_load_name_differs_is_version_error() -> None:
    other = Load("SCCP42.9-9-9S", "SCCP42", ImageFormat.LEGACY, "image-key-2010", IMAGE_KEY_IDS)
    data = sign_payload(
        render_payload(other),
        image_filename(LEGACY),
        ImageFormat.LEGACY,
        image_signing_key("image-key-2010"),
    )
    decision = install(LEGACY, running=LEGACY, data=data)
    assert_refused(decision, VERSION_ERROR, "item 39")
    assert decision.load is not None and decision.load.name == "SCCP42.9-9-9S"


@pytest.mark.parametrize(("name", "running"), [(LEGACY, LEGACY), (CONTAINER, CONTAINER)])
def test_item39_signed_payload_that_is_no_load_is_version_error(name: str, running: str) -> None:
    load = CATALOGUE[name]
    data = sign_payload(
        b"#!/bin/sh\necho hello\n",
        load.filename,
        load.image_format,
        image_signing_key(load.signing_key_id),
    )
    decision = install(name, running=running, data=data)
    assert_refused(decision, VERSION_ERROR, "item 39")
    assert decision.key_id == load.signing_key_id and decision.load is None


def test_item39_requested_name_may_carry_the_suffix() -> None:
    decision = evaluate_image(
        build_image(CATALOGUE[LEGACY]),
        requested="SCCP42.9-4-2SR3-1S.loads",
        model_family="SCCP42",
        image_format=ImageFormat.LEGACY,
        known_key_ids=IMAGE_KEY_IDS,
    )
    assert decision.accepted


@pytest.mark.parametrize(("name", "running"), [(LEGACY, LEGACY), (CONTAINER, CONTAINER)])
def test_item39_truncated_images(name: str, running: str) -> None:
    data = build_image(CATALOGUE[name])
    header_length = (
        parse_signed(data).header.length
        if CATALOGUE[name].image_format is ImageFormat.LEGACY
        else len(data) + 1  # the container's lengths catch any truncation
    )
    for size in range(len(data)):
        decision = install(name, running=running, data=data[:size])
        assert not decision.accepted, size
        # A legacy payload has no length or hash of its own: only the signature notices.
        expected = CHECKSUM_ERROR if size < header_length else AUTH_FAIL
        assert decision.status == expected, (size, decision)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\0",
        b"\0" * 4096,
        b"<html><body>404 Not Found</body></html>",
        MAGIC,
        MAGIC + bytes(400),
        b"\x01\x00\x02\x01\x01",
    ],
)
@pytest.mark.parametrize("running", [LEGACY, CONTAINER])
def test_item39_garbage_is_checksum_error(data: bytes, running: str) -> None:
    decision = install(LEGACY, running=running, data=data)
    assert_refused(decision, CHECKSUM_ERROR, "item 39")
    assert decision.load is None


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=2048), running=st.sampled_from([LEGACY, CONTAINER]))
def test_never_raises_on_random_bytes(data: bytes, running: str) -> None:
    decision = install(running, running=running, data=data)
    assert not decision.accepted
    assert decision.status in STATUSES


@settings(max_examples=200, deadline=None)
@given(
    name=st.sampled_from([LEGACY, CONTAINER]),
    cuts=st.lists(st.tuples(st.integers(0, 700), st.binary(max_size=8)), max_size=4),
)
def test_never_raises_on_mangled_images(name: str, cuts: list[tuple[int, bytes]]) -> None:
    data = build_image(CATALOGUE[name])
    mangled = data
    for at, junk in cuts:
        mangled = mangled[:at] + junk + mangled[at + len(junk) :]
    decision = install(name, running=name, data=mangled)
    assert decision.accepted is (mangled == data)


# --- the payload parser ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (b"LOAD_ID=x\nFAMILY=79xx\nKNOWN_IMAGE_KEYS=\xff\n", ValueFormatError),
        (b"LOAD_ID=x\nFAMILY=79xx\n", StructureError),
        (b"LOAD_ID=x\nLOAD_ID=y\nFAMILY=79xx\nKNOWN_IMAGE_KEYS=a\n", StructureError),
        (b"LOAD_ID=x\nFAMILY=79xx\nthis is no setting\nKNOWN_IMAGE_KEYS=a\n", ValueFormatError),
        (b"LOAD_ID=\nFAMILY=79xx\nKNOWN_IMAGE_KEYS=a\n", ValueFormatError),
    ],
)
def test_payload_parser_refuses(payload: bytes, error: type[FormatError]) -> None:
    with pytest.raises(error):
        parse_load_info(payload)


def test_payload_parser_tolerates_ini_noise() -> None:
    text = b"# c\r\n[A]\r\nOTHER=1\r\n LOAD_ID = x \r\nFAMILY=88xx\r\nKNOWN_IMAGE_KEYS=a, ,b\r\n"
    assert parse_load_info(text) == LoadInfo("x", "88xx", ("a", "b"))
