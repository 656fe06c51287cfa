"""Firmware image decisions, word for word (phone-behaviour.md items 36-39).

The status texts ("Auth Fail", "Load rejected HC", "Version error", "Checksum Error") are the
phone's own (items 37 and 39, [S13]); the rule names are the items of phone-behaviour.md; the
reasons are what a person reads in the trace and the CLI, so they are compared whole. The
payload parser's errors end up inside the "Version error" reason (step 5) and are pinned too,
with the byte offset of the offending line.
"""

from __future__ import annotations

import pytest

from phone.catalog.loads import CATALOGUE, Load, build_image, image_filename, sign_payload
from phone.catalog.models import ImageFormat
from phone.errors import FormatError, StructureError, ValueFormatError
from phone.trust.images import ImageDecision, LoadInfo, evaluate_image, parse_load_info
from phone.vendor import image_signing_key

LEGACY = "SCCP42.9-4-2SR3-1S"  # 7962, signed with image-key-2010, knows both keys
CONTAINER = "sip88xx.14-1-1"
KEEPS = "the phone keeps running its resident load"  # item 37: the resident image keeps booting

# Status texts: items 37 and 39, phone-behaviour.md ([S13]).
AUTH_FAIL = "Auth Fail"
LOAD_REJECTED_HC = "Load rejected HC"
VERSION_ERROR = "Version error"
CHECKSUM_ERROR = "Checksum Error"


def install(
    requested: str,
    *,
    running: str,
    data: bytes | None = None,
    known: tuple[str, ...] | None = None,
    family: str | None = None,
) -> ImageDecision:
    resident = CATALOGUE[running]
    return evaluate_image(
        build_image(CATALOGUE[requested]) if data is None else data,
        requested=requested,
        model_family=resident.family if family is None else family,
        image_format=resident.image_format,
        known_key_ids=resident.known_key_ids if known is None else known,
    )


def refused(decision: ImageDecision, status: str, rule: str, reason: str) -> None:
    assert (decision.accepted, decision.status, decision.rule) == (False, status, rule)
    assert decision.reason == reason


def signed_legacy(payload: bytes, *, name: str = LEGACY, key_id: str = "image-key-2010") -> bytes:
    return sign_payload(
        payload, image_filename(name), ImageFormat.LEGACY, image_signing_key(key_id)
    )


# --- accepted (item 37) ------------------------------------------------------------------------


def test_item37_accepted_image_names_its_key_family_and_built_in_keys() -> None:
    decision = install(CONTAINER, running="sip88xx.12-0-1")
    assert (decision.accepted, decision.status, decision.rule) == (True, None, "item 37")
    assert decision.reason == (
        "sip88xx.14-1-1.loads verifies with image-key-2010, which the running firmware knows, "
        "and is built for 88xx; once it runs, the phone accepts images signed with: "
        "image-key-2010"
    )


def test_item37_accepted_load_that_knows_no_image_key_says_so() -> None:
    data = signed_legacy(b"LOAD_ID=SCCP42.9-4-2SR3-1S\nFAMILY=SCCP42\nKNOWN_IMAGE_KEYS=\n")
    decision = install(LEGACY, running=LEGACY, data=data)
    assert decision.accepted and decision.rule == "item 37"
    assert decision.load == LoadInfo(LEGACY, "SCCP42", ())
    assert decision.reason == (
        "SCCP42.9-4-2SR3-1S.loads verifies with image-key-2010, which the running firmware "
        "knows, and is built for SCCP42; once it runs, the phone accepts images signed with: "
        "no image keys"
    )


# --- refused: the order of the checks and their reasons (items 37-39) --------------------------


def test_item39_another_load_under_the_requested_name_is_version_error() -> None:
    decision = install(LEGACY, running=LEGACY, data=build_image(CATALOGUE["SCCP42.8-5-2S"]))
    refused(
        decision,
        VERSION_ERROR,
        "item 39",
        "the phone asked for 'SCCP42.9-4-2SR3-1S.loads' but the image names itself "
        "'SCCP42.8-5-2S.loads': the server holds another load under this name; put the real "
        f"SCCP42.9-4-2SR3-1S.loads on the TFTP server or set loadInformation to the load you "
        f"mean; {KEEPS}",
    )


def test_item39_container_payload_not_matching_its_sha256_is_checksum_error() -> None:
    data = build_image(CATALOGUE[CONTAINER])
    decision = install(CONTAINER, running="sip88xx.12-0-1", data=data[:-1] + b"X")
    refused(
        decision,
        CHECKSUM_ERROR,
        "item 39",
        "the payload of sip88xx.14-1-1.loads does not match the SHA-256 in its header: the file "
        f"is damaged or was changed; copy a fresh sip88xx.14-1-1.loads to the server; {KEEPS}",
    )


def test_item37_signature_no_known_key_verifies_is_auth_fail() -> None:
    data = build_image(CATALOGUE[LEGACY])
    decision = install(LEGACY, running=LEGACY, data=data[:-1] + b"X")
    refused(
        decision,
        AUTH_FAIL,
        "item 37",
        "the signature of SCCP42.9-4-2SR3-1S.loads verifies with none of the image keys the "
        "running firmware knows (tried: image-key-2009, image-key-2010): the file was changed "
        "or damaged after signing, or it was signed by a key this phone does not know; copy "
        f"the vendor's original SCCP42.9-4-2SR3-1S.loads to the server; {KEEPS}",
    )
    assert decision.key_id is None and decision.load is None


def test_item37_unknown_key_ids_are_named_once_each_and_known_ones_tried_once() -> None:
    data = build_image(CATALOGUE[LEGACY])
    decision = install(
        LEGACY,
        running=LEGACY,
        data=data[:-1] + b"X",
        known=("bogus", "image-key-2010", "bogus2", "image-key-2010", "bogus"),
    )
    refused(
        decision,
        AUTH_FAIL,
        "item 37",
        "the signature of SCCP42.9-4-2SR3-1S.loads verifies with none of the image keys the "
        "running firmware knows (tried: image-key-2010) (ignored ids that are no vendor image "
        "key: bogus, bogus2): the file was changed or damaged after signing, or it was signed "
        "by a key this phone does not know; copy the vendor's original "
        f"SCCP42.9-4-2SR3-1S.loads to the server; {KEEPS}",
    )


def test_item38_rollover_names_the_intermediate_load() -> None:
    # 7962 shipped on 8.3(1) (image-key-2009 only): 9.4 is signed with the newer key [S28].
    decision = install(LEGACY, running="SCCP42.8-3-1S")
    refused(
        decision,
        AUTH_FAIL,
        "item 38",
        "SCCP42.9-4-2SR3-1S.loads is signed with image-key-2010, which the running firmware "
        "does not know (it knows: image-key-2009); install an intermediate load first "
        "(SCCP42.8-5-2S): it is signed with a key this firmware knows and knows "
        f"image-key-2010, then upgrade; {KEEPS}",
    )
    assert decision.key_id is None and decision.load is None


def test_item38_rollover_without_an_intermediate_load_in_the_catalogue() -> None:
    decision = install("SCCP31.9-2-1S", running="SCCP31.9-2-1S", known=("image-key-2009",))
    refused(
        decision,
        AUTH_FAIL,
        "item 38",
        "SCCP31.9-2-1S.loads is signed with image-key-2010, which the running firmware does "
        "not know (it knows: image-key-2009); install an intermediate load that is signed with "
        f"a key this firmware knows and knows image-key-2010 first, then upgrade; {KEEPS}",
    )


def test_item38_bridges_are_the_family_loads_signed_with_a_known_key_that_know_the_new_one() -> (
    None
):
    # 7940/7960: 8.1(2) (image-key-2010) only over 8.1(1), signed with 2009 and knowing 2010.
    decision = install("P00308010200", running="P00308000500")
    assert decision.rule == "item 38"
    assert "install an intermediate load first (P00308010100): " in decision.reason
    # The same family: the SCCP42 bridges, sorted by name, are not offered to a 7940.
    decision = install("SCCP42.9-4-2SR3-1S", running="SCCP42.8-3-1S", family="SCCP41")
    assert "install an intermediate load first (SCCP41.8-5-2S): " in decision.reason


def test_item38_firmware_knowing_no_image_key() -> None:
    decision = install(CONTAINER, running="sip88xx.12-0-1", known=())
    refused(
        decision,
        AUTH_FAIL,
        "item 38",
        "sip88xx.14-1-1.loads is signed with image-key-2010, which the running firmware does "
        "not know (it knows: none: the running firmware knows no image key); install an "
        "intermediate load that is signed with a key this firmware knows and knows "
        f"image-key-2010 first, then upgrade; {KEEPS}",
    )


def test_item39_signed_payload_that_is_no_load_names_the_parse_error() -> None:
    decision = install(LEGACY, running=LEGACY, data=signed_legacy(b"#!/bin/sh\n"))
    refused(
        decision,
        VERSION_ERROR,
        "item 39",
        "SCCP42.9-4-2SR3-1S.loads is signed with image-key-2010 but its payload does not "
        "describe a load (at byte 10: no LOAD_ID= line (expected a LOAD_ID= line in the "
        f"payload)); the load file is not a firmware load; {KEEPS}",
    )
    assert decision.key_id == "image-key-2010" and decision.load is None


def test_item39_authenticated_load_for_other_hardware_is_load_rejected_hc() -> None:
    decision = install("sip78xx.11-0-1-11", running="sip88xx.12-0-1")
    refused(
        decision,
        LOAD_REJECTED_HC,
        "item 39",
        "sip78xx.11-0-1-11 is built for 78xx hardware and this phone is a 88xx: set "
        f"loadInformation to a 88xx load; {KEEPS}",
    )


def test_item39_renamed_load_is_version_error() -> None:
    other = Load("SCCP42.9-9-9S", "SCCP42", ImageFormat.LEGACY, "image-key-2010", ())
    payload = b"LOAD_ID=SCCP42.9-9-9S\nFAMILY=SCCP42\nKNOWN_IMAGE_KEYS=image-key-2010\n"
    decision = install(LEGACY, running=LEGACY, data=signed_legacy(payload))
    refused(
        decision,
        VERSION_ERROR,
        "item 39",
        "the phone asked for load 'SCCP42.9-4-2SR3-1S' but SCCP42.9-4-2SR3-1S.loads holds load "
        "'SCCP42.9-9-9S': the file was renamed; serve SCCP42.9-9-9S.loads under its own name "
        f"or fetch the right file; {KEEPS}",
    )
    assert decision.key_id == "image-key-2010"
    assert decision.load == LoadInfo(other.name, "SCCP42", ("image-key-2010",))


def test_item39_image_of_the_other_format_is_load_rejected_hc() -> None:
    refused(
        install(CONTAINER, running=LEGACY),
        LOAD_REJECTED_HC,
        "item 39",
        "the file is a CD 34 12 AB container image (78xx/88xx format, section 10b) but this "
        "phone takes a legacy TLV-signed image (79xx format, section 10a): set loadInformation "
        f"to a load for this model; {KEEPS}",
    )
    refused(
        install(LEGACY, running=CONTAINER),
        LOAD_REJECTED_HC,
        "item 39",
        "the file is a legacy TLV-signed image (79xx format, section 10a) but this phone takes "
        "a CD 34 12 AB container image (78xx/88xx format, section 10b): set loadInformation to "
        f"a load for this model; {KEEPS}",
    )


@pytest.mark.parametrize(
    ("data", "what"),
    [
        (
            b"",
            "the empty file is not a legacy TLV-signed image (79xx format, section 10a) (at byte "
            "0: file is empty (expected a header version element))",
        ),
        (
            bytes(10),
            "the 10-byte file is not a legacy TLV-signed image (79xx format, section 10a) (at "
            "byte 9: file ends inside element with tag 0 (expected a 3-byte tag and length))",
        ),
    ],
)
def test_item39_corrupt_or_truncated_file_is_checksum_error(data: bytes, what: str) -> None:
    refused(
        install(LEGACY, running=LEGACY, data=data),
        CHECKSUM_ERROR,
        "item 39",
        f"{what}: the download is damaged or truncated, or the server holds something else "
        f"under this name; copy the load file to the server again; {KEEPS}",
    )


def test_item39_corrupt_container_names_the_container_format() -> None:
    decision = install(CONTAINER, running=CONTAINER, data=b"\0")
    assert decision.status == CHECKSUM_ERROR
    assert decision.reason.startswith(
        "the 1-byte file is not a CD 34 12 AB container image (78xx/88xx format, section 10b) ("
    )


# --- the payload parser (docs/firmware.md: the emulated .loads text) ----------------------------

GOOD = b"LOAD_ID=x\nFAMILY=79xx\nKNOWN_IMAGE_KEYS=a\n"


def _error(payload: bytes) -> FormatError:
    with pytest.raises(FormatError) as caught:
        parse_load_info(payload)
    return caught.value


def test_payload_not_ascii_names_the_first_bad_byte() -> None:
    error = _error(b"LOAD_ID=x\nFAMILY=79xx\nKNOWN_IMAGE_KEYS=\xff\n")
    assert isinstance(error, ValueFormatError)
    assert str(error) == ("at byte 39: payload is not ASCII text (expected an ASCII .loads text)")


def test_payload_line_that_is_no_setting_is_named_at_its_offset() -> None:
    error = _error(b"LOAD_ID=x\nFAMILY=79xx\nthis is no setting\nKNOWN_IMAGE_KEYS=a\n")
    assert isinstance(error, ValueFormatError)
    assert str(error) == (
        "at byte 22: line 'this is no setting' is not KEY=VALUE "
        "(expected a [section], a comment or a KEY=VALUE line)"
    )
    # The offset counts every line before it, whatever its kind and length.
    error = _error(b"# c\r\n[A]\r\n\r\nOTHER=1\r\nLOAD_ID=x\r\nnope\r\n")
    assert error.offset == 32


def test_payload_long_line_is_quoted_to_40_characters() -> None:
    line = "abcdefghij" * 5
    error = _error(f"{line}\n".encode())
    assert error.problem == f"line {line[:40]!r} is not KEY=VALUE"
    assert error.offset == 0


@pytest.mark.parametrize("line", [b"X marks the spot", b"[unclosed section", b"closed]"])
def test_payload_only_semicolon_hash_and_bracketed_lines_are_skipped(line: bytes) -> None:
    error = _error(GOOD + line + b"\n")
    assert error.offset == len(GOOD)
    assert error.expected == "a [section], a comment or a KEY=VALUE line"


def test_payload_value_may_hold_an_equals_sign() -> None:
    info = parse_load_info(b"LOAD_ID=x=1\nFAMILY=79xx\nKNOWN_IMAGE_KEYS=a\n")
    assert info == LoadInfo("x=1", "79xx", ("a",))


def test_payload_key_twice_is_named_at_the_second_line() -> None:
    error = _error(b"LOAD_ID=x\nLOAD_ID=y\nFAMILY=79xx\nKNOWN_IMAGE_KEYS=a\n")
    assert isinstance(error, StructureError)
    assert str(error) == "at byte 10: LOAD_ID appears twice (expected one LOAD_ID= line)"


def test_payload_missing_key_is_named_at_the_end() -> None:
    error = _error(b"LOAD_ID=x\nFAMILY=79xx\n")
    assert isinstance(error, StructureError)
    assert str(error) == (
        "at byte 22: no KNOWN_IMAGE_KEYS= line (expected a KNOWN_IMAGE_KEYS= line in the payload)"
    )


def test_payload_empty_value_is_named_at_its_own_line() -> None:
    error = _error(b"FAMILY=79xx\nLOAD_ID=\nKNOWN_IMAGE_KEYS=a\n")
    assert isinstance(error, ValueFormatError)
    assert str(error) == "at byte 12: LOAD_ID is empty (expected a LOAD_ID value)"
    # Not at an earlier mention of the key (a comment) nor at -1 (spaces around the "=").
    error = _error(b"# LOAD_ID=old\nFAMILY=79xx\n LOAD_ID = \nKNOWN_IMAGE_KEYS=a\n")
    assert error.offset == 26
    error = _error(b"LOAD_ID=x\nFAMILY=\nKNOWN_IMAGE_KEYS=a\n")
    assert str(error) == "at byte 10: FAMILY is empty (expected a FAMILY value)"


def test_item38_intermediate_load_lists_every_key_it_brings() -> None:
    decision = install("SCCP42.8-5-2S", running="SCCP42.8-3-1S")
    assert decision.accepted and decision.key_id == "image-key-2009"
    assert decision.reason == (
        "SCCP42.8-5-2S.loads verifies with image-key-2009, which the running firmware knows, "
        "and is built for SCCP42; once it runs, the phone accepts images signed with: "
        "image-key-2009, image-key-2010"
    )


def test_item38_several_intermediate_loads_are_listed_sorted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A second bridge of the 7962 family (signed with 2009, knowing 2010), named to sort first.
    bridge = Load(
        "SCCP42.8-4-1S",
        "SCCP42",
        ImageFormat.LEGACY,
        "image-key-2009",
        ("image-key-2009", "image-key-2010"),
    )
    monkeypatch.setitem(CATALOGUE, bridge.name, bridge)
    decision = install(LEGACY, running="SCCP42.8-3-1S")
    assert decision.rule == "item 38"
    assert (
        "; install an intermediate load first (SCCP42.8-4-1S, SCCP42.8-5-2S): it is signed with "
        in decision.reason
    )
