"""The emulated firmware loads: a catalogue, and the bytes of each load's image file.

phone-behaviour.md items 36-39: a phone fetches ``<load>.loads`` when the configured load differs
from the running one (item 36), refuses an image whose signature verifies with none of the
image-signing keys its running firmware knows (item 37) and so needs an *intermediate* load to
cross a vendor signing-key rollover (item 38: Java 79xx units shipped on 8.3(1) cannot take
8.5(2)SR1+ images directly [S28][S29]; the 7940/7960 take 8.1(2) only over 8.1(1)). Which loads
exist, for which hardware, is the model table's (:mod:`phone.catalog.table`).

What is Cisco's and what is emulated (docs/firmware.md):

* The header layouts are Cisco's (trust-file-formats.md section 10): legacy 79xx images carry
  the section-2 TLV header, version 1.1, the placeholder signer fields of Cisco's signing tool,
  SHA-1, a 256-byte signature, the file's own name and no timestamp (10a, [C2]); 88xx/78xx images
  use the little-endian ``CD 34 12 AB`` container with the payload's SHA-256 (10b, [C1]).
* What the signatures cover, the payload text and the keys are emulated: a legacy signature
  covers the file minus the signature element (as an ``.sgn`` does, section 3), a container
  signature covers the first 80 header bytes (:mod:`phone.formats.firmware`), the keys are
  vphone's own lab keys (:mod:`phone.vendor`), and a load "contains" its built-in public keys as
  a ``KNOWN_IMAGE_KEYS=`` line of its payload.

Everything here is pure and deterministic (RSA PKCS#1 v1.5 signatures are deterministic), so
``tools/make_firmware.py`` reproduces the committed ``firmware_images/`` byte for byte.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import padding, rsa

from phone.catalog.rows import ImageFormat
from phone.catalog.table import LOAD_ROWS
from phone.formats.firmware import build_container
from phone.formats.header import (
    Digest,
    HeaderSpec,
    sign_header,
)
from phone.formats.signed import SignedFile
from phone.vendor import image_signing_key

LOADS_SUFFIX = ".loads"

# Section 10a, [C2]: every real legacy image carries these literal placeholders from Cisco's
# signing tool instead of a real signer certificate's names and serial.
LEGACY_VERSION = (1, 1)
LEGACY_SIGNER_NAME = "CN=someSigner;OU=someOrgUnit;O=someOrg"
LEGACY_SIGNER_ISSUER = "CN=someCA;OU=someOrgUnit;O=someOrg"
LEGACY_SIGNER_SERIAL = bytes.fromhex("1234567890abcdef")
LEGACY_DIGEST = Digest.SHA1  # digest code 1 in every real firmware file (section 2, tag 8)

# Emulated payload keys (docs/firmware.md). The section names follow the 78xx ``.loads``
# payload's INI style (section 10b: "[CISCO-ID], [PLATFORM_n] sections"); the keys are ours.
PAYLOAD_LOAD_ID = "LOAD_ID"
PAYLOAD_FAMILY = "FAMILY"
PAYLOAD_KNOWN_KEYS = "KNOWN_IMAGE_KEYS"


@dataclass(frozen=True)
class Load:
    """One firmware load of the catalogue.

    ``signing_key_id`` is the vendor key its image is signed with; ``known_key_ids`` are the
    image-signing keys whose public halves this load's firmware has built in, i.e. the keys it
    accepts the *next* image with once it runs (items 37-38).
    """

    name: str
    family: str
    image_format: ImageFormat
    signing_key_id: str
    known_key_ids: tuple[str, ...]

    @property
    def filename(self) -> str:
        """The file a phone requests for this load (item 36)."""
        return image_filename(self.name)


CATALOGUE: dict[str, Load] = {
    row.name: Load(
        row.name, row.load_family, row.image_format, row.signing_key_id, row.known_key_ids
    )
    for row in LOAD_ROWS
}
"""Every load of the model table (:data:`phone.catalog.table.LOAD_ROWS`), by name."""


def image_filename(load_name: str) -> str:
    """``"<load_name>.loads"``: the name a phone requests and the name inside the image."""
    return f"{load_name}{LOADS_SUFFIX}"


def render_payload(load: Load) -> bytes:
    """The ``.loads``-like INI text of ``load``'s image (emulated, docs/firmware.md).

    The ``KNOWN_IMAGE_KEYS`` line is how an emulated firmware "contains" the public halves of the
    image-signing keys built into it (item 38).
    """
    lines = (
        "; vphone emulated firmware load - not Cisco firmware (docs/firmware.md)",
        "[CISCO-ID]",
        f"{PAYLOAD_LOAD_ID}={load.name}",
        f"{PAYLOAD_FAMILY}={load.family}",
        "[VPHONE-TRUST]",
        f"{PAYLOAD_KNOWN_KEYS}={','.join(load.known_key_ids)}",
    )
    return ("\n".join(lines) + "\n").encode("ascii")


def sign_payload(
    payload: bytes, filename: str, image_format: ImageFormat, key: rsa.RSAPrivateKey
) -> bytes:
    """Wrap ``payload`` in a signed image file named ``filename``, signed with ``key``.

    Legacy: the Cisco firmware header (section 10a) signed over the file minus the signature
    element (section 3 coverage, emulated for firmware). Container: section 10b, signed by
    :func:`phone.formats.firmware.build_container`.

    Raises:
        ValueError: ``key`` has a size no header can carry (container images need RSA-2048), or
            ``filename`` does not fit the container's name field.
    """
    if image_format is ImageFormat.CONTAINER:
        return build_container(payload, filename, key).encode()
    spec = HeaderSpec(
        version=LEGACY_VERSION,
        signer_name=LEGACY_SIGNER_NAME,
        signer_serial=LEGACY_SIGNER_SERIAL,
        signer_issuer=LEGACY_SIGNER_ISSUER,
        digest=LEGACY_DIGEST,
        modulus_bytes=key.key_size // 8,
        filename=filename,
        timestamp=None,  # section 10a: firmware headers have no tag 15 [C2]
    )
    header = sign_header(
        spec, payload, lambda data: key.sign(data, padding.PKCS1v15(), LEGACY_DIGEST.algorithm())
    )
    return SignedFile(header, payload).encode()


def sign_image(load: Load, key: rsa.RSAPrivateKey) -> bytes:
    """``load``'s image signed with an arbitrary ``key`` (tests: a key no phone knows)."""
    return sign_payload(render_payload(load), load.filename, load.image_format, key)


@functools.cache
def build_image(load: Load) -> bytes:
    """The image file of ``load``, signed with its vendor key (what firmware_images/ holds)."""
    return sign_image(load, image_signing_key(load.signing_key_id))


class CatalogueImages(Mapping[str, bytes]):
    """Every catalogue image by file name, built on first request (what a lab's TFTP serves).

    A lab serves these unless its own firmware folder holds a file of the same name.
    """

    def __getitem__(self, name: str) -> bytes:
        if not name.endswith(LOADS_SUFFIX):
            raise KeyError(name)
        load = CATALOGUE.get(name[: -len(LOADS_SUFFIX)])
        if load is None:
            raise KeyError(name)
        return build_image(load)

    def __iter__(self) -> Iterator[str]:
        return iter(image_filename(name) for name in CATALOGUE)

    def __len__(self) -> int:
        return len(CATALOGUE)


def catalogue_images() -> CatalogueImages:
    """The catalogue as a read-only mapping of file name to image bytes."""
    return CatalogueImages()
