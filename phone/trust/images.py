"""Firmware image decisions: will the running firmware install this image, and why not?

phone-behaviour.md section F. A phone whose configured load differs from the running one fetches
``<load>.loads`` (item 36); it refuses an image whose signature verifies with none of the
image-signing keys its *running* firmware knows, with "Auth Fail", and keeps booting the resident
image (item 37); a load signed with a newer key than the running firmware knows is therefore
refused until an intermediate load that knows the newer key is installed (item 38); the other
refusals are "Load rejected HC", "Version error" and "Checksum Error" (item 39, [S13]).

The checks run in this order; the first that fails decides (docs/firmware.md has the table):

1. the bytes parse as the model's image format, else "Load rejected HC" when they parse as the
   *other* family's format, else "Checksum Error" (item 39: the file is corrupt or truncated);
2. the file name inside the image is the requested one, else "Version error" (item 39);
3. container images: the payload's SHA-256 matches the header, else "Checksum Error" (item 39);
4. the signature verifies with a key the running firmware knows, else "Auth Fail" (item 37; item
   38 when another vendor key verifies it, with the intermediate loads that would help);
5. the authenticated payload describes a load, for this hardware family and with the requested
   name, else "Version error" / "Load rejected HC" (item 39).

Nothing from an image is reported as fact before step 4 succeeds: ``ImageDecision.load`` is set
only for authenticated payloads. :func:`evaluate_image` never raises for any input bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import rsa

from phone.catalog.loads import (
    CATALOGUE,
    LOADS_SUFFIX,
    PAYLOAD_FAMILY,
    PAYLOAD_KNOWN_KEYS,
    PAYLOAD_LOAD_ID,
    image_filename,
)
from phone.catalog.models import ImageFormat
from phone.errors import FormatError, SignatureError, StructureError, ValueFormatError
from phone.formats.firmware import ContainerImage, parse_container
from phone.formats.signature import verify_signature
from phone.formats.signed import SignedFile, parse_signed
from phone.trust.decision import Status
from phone.vendor import IMAGE_KEY_IDS, image_public_key

__all__ = [
    "AUTH_FAIL",
    "CHECKSUM_ERROR",
    "LOAD_REJECTED_HC",
    "VERSION_ERROR",
    "ImageDecision",
    "LoadInfo",
    "evaluate_image",
    "parse_load_info",
]

# Phone status texts (items 37 and 39, [S13]; item 47 keeps them in the status-message log).
# The texts live in one place, phone.trust.decision.Status; these names stay for readability.
AUTH_FAIL = Status.AUTH_FAIL
CHECKSUM_ERROR = Status.CHECKSUM_ERROR
LOAD_REJECTED_HC = Status.LOAD_REJECTED_HC
VERSION_ERROR = Status.VERSION_ERROR

_FORMAT_WORDS = {
    ImageFormat.LEGACY: "a legacy TLV-signed image (79xx format, section 10a)",
    ImageFormat.CONTAINER: "a CD 34 12 AB container image (78xx/88xx format, section 10b)",
}
_KEEPS = "the phone keeps running its resident load"

Image = SignedFile | ContainerImage


@dataclass(frozen=True)
class LoadInfo:
    """What an authenticated image says about itself (its payload, docs/firmware.md)."""

    name: str  # the load name, e.g. "SIP79xx.9-2-1"
    family: str  # the hardware family it is built for: "79xx", "88xx", "78xx"
    known_key_ids: tuple[str, ...]  # image-signing keys this firmware trusts once it runs


@dataclass(frozen=True)
class ImageDecision:
    """The verdict on one fetched image.

    ``status`` is the phone status text of a refusal (None when accepted: the device layer shows
    the progress messages); ``rule`` the phone-behaviour item that decided; ``reason`` says what
    happened and what to do. ``load`` is set whenever the payload was authenticated (always when
    accepted); ``key_id`` names the known key the signature verified with.
    """

    accepted: bool
    status: str | None
    rule: str
    reason: str
    load: LoadInfo | None
    key_id: str | None = None


def evaluate_image(
    data: bytes,
    *,
    requested: str,
    model_family: str,
    image_format: ImageFormat,
    known_key_ids: Sequence[str],
) -> ImageDecision:
    """Decide whether a phone accepts the image ``data`` it fetched for load ``requested``.

    Args:
        data: the fetched file's bytes (untrusted; any bytes are fine).
        requested: the load name from ``loadInformation`` (``"SIP79xx.9-2-1"``); a trailing
            ``.loads`` is tolerated.
        model_family: the phone's hardware family (``Model.family``).
        image_format: the image format the phone's model uses (``Model.image_format``).
        known_key_ids: the image-signing keys the *running* firmware knows (item 37), e.g.
            ``Load.known_key_ids`` of the resident load. Ids that are no vendor key are ignored
            and named in the reason.

    Returns:
        The decision; never raises for any ``data``.
    """
    load_name = requested.removesuffix(LOADS_SUFFIX)
    wanted = image_filename(load_name)

    # Step 1 (item 39): the bytes must be an image in this model's format.
    parsed = _parse(data, image_format)
    if isinstance(parsed, ImageDecision):
        return parsed

    # Step 2 (item 39, "bad load name"): the image must carry the requested file name.
    inside = parsed.header.filename if isinstance(parsed, SignedFile) else parsed.name
    if inside != wanted:
        return _reject(
            VERSION_ERROR,
            "item 39",
            f"the phone asked for {wanted!r} but the image names itself {inside!r}: the server "
            f"holds another load under this name; put the real {wanted} on the TFTP server or "
            f"set loadInformation to the load you mean; {_KEEPS}",
        )

    # Step 3 (item 39): a container carries the SHA-256 of its payload (section 10b, [C1]).
    if isinstance(parsed, ContainerImage) and not parsed.hash_matches():
        return _reject(
            CHECKSUM_ERROR,
            "item 39",
            f"the payload of {wanted} does not match the SHA-256 in its header: the file is "
            f"damaged or was changed; copy a fresh {wanted} to the server; {_KEEPS}",
        )

    # Step 4 (items 37-38): the signature must verify with a key the running firmware knows.
    known, ignored = _resolve(known_key_ids)
    key_id = next((kid for kid, key in known if _verifies(parsed, key)), None)
    if key_id is None:
        return _auth_fail(parsed, wanted, model_family, known, ignored)

    # Step 5 (item 39): only now is the payload's description of itself trusted.
    try:
        info = parse_load_info(parsed.payload)
    except FormatError as exc:
        return _reject(
            VERSION_ERROR,
            "item 39",
            f"{wanted} is signed with {key_id} but its payload does not describe a load ({exc}); "
            f"the load file is not a firmware load; {_KEEPS}",
            key_id=key_id,
        )
    if info.family != model_family:
        return _reject(
            LOAD_REJECTED_HC,
            "item 39",
            f"{info.name} is built for {info.family} hardware and this phone is a "
            f"{model_family}: set loadInformation to a {model_family} load; {_KEEPS}",
            load=info,
            key_id=key_id,
        )
    if info.name != load_name:
        return _reject(
            VERSION_ERROR,
            "item 39",
            f"the phone asked for load {load_name!r} but {wanted} holds load {info.name!r}: "
            f"the file was renamed; serve {image_filename(info.name)} under its own name or "
            f"fetch the right file; {_KEEPS}",
            load=info,
            key_id=key_id,
        )
    trusts = ", ".join(info.known_key_ids) or "no image keys"
    return ImageDecision(
        accepted=True,
        status=None,
        rule="item 37",
        reason=(
            f"{wanted} verifies with {key_id}, which the running firmware knows, and is built "
            f"for {model_family}; once it runs, the phone accepts images signed with: {trusts}"
        ),
        load=info,
        key_id=key_id,
    )


def parse_load_info(payload: bytes) -> LoadInfo:
    """Read the load name, family and built-in image keys from an image payload.

    The payload is the emulated ``.loads`` INI text of :func:`phone.catalog.loads.render_payload`:
    ``[section]`` lines, ``;``/``#`` comments and ``KEY=VALUE`` lines; unknown keys are ignored.

    Raises:
        FormatError: (a subclass) with the byte offset of the offending line.
    """
    try:
        text = payload.decode("ascii")
    except UnicodeDecodeError as exc:
        raise ValueFormatError(
            "payload is not ASCII text", offset=exc.start, expected="an ASCII .loads text"
        ) from None
    wanted = (PAYLOAD_LOAD_ID, PAYLOAD_FAMILY, PAYLOAD_KNOWN_KEYS)
    values: dict[str, str] = {}
    lines: dict[str, int] = {}  # where each wanted key's line starts
    offset = 0
    for raw in text.split("\n"):
        line = raw.strip()
        at = offset
        offset += len(raw) + 1
        if not line or line[0] in ";#" or (line.startswith("[") and line.endswith("]")):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ValueFormatError(
                f"line {line[:40]!r} is not KEY=VALUE",
                offset=at,
                expected="a [section], a comment or a KEY=VALUE line",
            )
        key = key.strip()
        if key not in wanted:
            continue
        if key in values:
            raise StructureError(f"{key} appears twice", offset=at, expected=f"one {key}= line")
        values[key] = value.strip()
        lines[key] = at
    for key in wanted:
        if key not in values:
            raise StructureError(
                f"no {key}= line", offset=len(payload), expected=f"a {key}= line in the payload"
            )
    for key in (PAYLOAD_LOAD_ID, PAYLOAD_FAMILY):
        if not values[key]:
            raise ValueFormatError(f"{key} is empty", offset=lines[key], expected=f"a {key} value")
    keys = tuple(k.strip() for k in values[PAYLOAD_KNOWN_KEYS].split(",") if k.strip())
    return LoadInfo(values[PAYLOAD_LOAD_ID], values[PAYLOAD_FAMILY], keys)


# --- helpers ---------------------------------------------------------------------------------


def _reject(
    status: str,
    rule: str,
    reason: str,
    *,
    load: LoadInfo | None = None,
    key_id: str | None = None,
) -> ImageDecision:
    return ImageDecision(False, status, rule, reason, load, key_id)


def _parse_as(data: bytes, image_format: ImageFormat) -> Image:
    if image_format is ImageFormat.CONTAINER:
        return parse_container(data)
    return parse_signed(data)


def _parse(data: bytes, image_format: ImageFormat) -> Image | ImageDecision:
    """Step 1: the parsed image, or the refusal (item 39)."""
    try:
        return _parse_as(data, image_format)
    except FormatError as exc:
        problem = exc
    other = ImageFormat.LEGACY if image_format is ImageFormat.CONTAINER else ImageFormat.CONTAINER
    try:
        _parse_as(data, other)
    except FormatError:
        pass
    else:
        # A well-formed image of the other format is for other hardware (item 39).
        return _reject(
            LOAD_REJECTED_HC,
            "item 39",
            f"the file is {_FORMAT_WORDS[other]} but this phone takes "
            f"{_FORMAT_WORDS[image_format]}: set loadInformation to a load for this model; "
            f"{_KEEPS}",
        )
    size = f"{len(data)}-byte file" if data else "empty file"
    return _reject(
        CHECKSUM_ERROR,
        "item 39",
        f"the {size} is not {_FORMAT_WORDS[image_format]} ({problem}): the download is damaged "
        f"or truncated, or the server holds something else under this name; copy the load "
        f"file to the server again; {_KEEPS}",
    )


def _resolve(key_ids: Sequence[str]) -> tuple[list[tuple[str, rsa.RSAPublicKey]], list[str]]:
    """The vendor public keys behind ``key_ids`` (in order, once each), and the unknown ids."""
    known: list[tuple[str, rsa.RSAPublicKey]] = []
    ignored: list[str] = []
    for key_id in dict.fromkeys(key_ids):
        if key_id in IMAGE_KEY_IDS:
            known.append((key_id, image_public_key(key_id)))
        else:
            ignored.append(key_id)
    return known, ignored


def _verifies(image: Image, key: rsa.RSAPublicKey) -> bool:
    try:
        if isinstance(image, ContainerImage):
            image.verify(key)
        else:
            verify_signature(image.header, image.signed_data(), key)
    except SignatureError:
        return False
    return True


def _auth_fail(
    image: Image,
    wanted: str,
    model_family: str,
    known: list[tuple[str, rsa.RSAPublicKey]],
    ignored: list[str],
) -> ImageDecision:
    """Step 4 failed: "Auth Fail" (item 37), explained as a key rollover when it is one (38)."""
    tried = ", ".join(kid for kid, _ in known) or "none: the running firmware knows no image key"
    note = f" (ignored ids that are no vendor image key: {', '.join(ignored)})" if ignored else ""
    known_ids = {kid for kid, _ in known}
    # Diagnosis only, not the decision: the emulator knows every vendor key, the phone does not.
    newer = next(
        (
            kid
            for kid in IMAGE_KEY_IDS
            if kid not in known_ids and _verifies(image, image_public_key(kid))
        ),
        None,
    )
    if newer is not None:
        bridges = sorted(
            load.name
            for load in CATALOGUE.values()
            if load.family == model_family
            and load.signing_key_id in known_ids
            and newer in load.known_key_ids
        )
        via = (
            f"install an intermediate load first ({', '.join(bridges)}): it is signed with a key "
            f"this firmware knows and knows {newer}"
            if bridges
            else f"install an intermediate load that is signed with a key this firmware knows "
            f"and knows {newer} first"
        )
        return _reject(
            AUTH_FAIL,
            "item 38",
            f"{wanted} is signed with {newer}, which the running firmware does not know "
            f"(it knows: {tried}){note}; {via}, then upgrade; {_KEEPS}",
        )
    return _reject(
        AUTH_FAIL,
        "item 37",
        f"the signature of {wanted} verifies with none of the image keys the running firmware "
        f"knows (tried: {tried}){note}: the file was changed or damaged after signing, or it "
        f"was signed by a key this phone does not know; copy the vendor's original {wanted} to "
        f"the server; {_KEEPS}",
    )
