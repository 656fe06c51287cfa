"""The emulated phone vendor: manufacturing CAs and firmware image-signing keys.

A real phone ships with a manufacturer-installed certificate (MIC) issued by the vendor's
manufacturing CA, and with the public halves of the vendor's image-signing keys built into its
firmware (phone-behaviour items 37-38). Those secrets are not public, so vphone ships keys of its
own in ``phone/vendor_data/`` (made once by ``tools/make_vendor_keys.py``). They are lab keys:
they protect nothing, they make the emulated trust chain complete and reproducible.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from phone.pki import Identity, cert_from_pem, key_from_pem

MIC_FAMILIES = ("79xx", "88xx")
# Image-signing keys in the order the vendor introduced them. A load signed with a key that
# the running firmware does not know is refused with "Auth Fail" (item 38).
IMAGE_KEY_IDS = ("image-key-2009", "image-key-2010")


def _read(name: str) -> bytes:
    return resources.files("phone").joinpath("vendor_data", name).read_bytes()


@cache
def manufacturing_ca(family: str) -> Identity:
    """The manufacturing CA (certificate and key) that issues MICs for a model family."""
    if family not in MIC_FAMILIES:
        raise KeyError(f"no manufacturing CA for model family {family!r}")
    key = key_from_pem(_read(f"mic-ca-{family}.key"), None)
    return Identity(cert_from_pem(_read(f"mic-ca-{family}.pem")), key)


def manufacturing_cas() -> tuple[x509.Certificate, ...]:
    """Every manufacturing CA certificate: what a cluster's CAPF-trust store starts with."""
    return tuple(manufacturing_ca(family).certificate for family in MIC_FAMILIES)


@cache
def image_signing_key(key_id: str) -> rsa.RSAPrivateKey:
    """The vendor's private image-signing key ``key_id`` (used by tools/make_firmware.py)."""
    if key_id not in IMAGE_KEY_IDS:
        raise KeyError(f"unknown image-signing key {key_id!r}")
    key = key_from_pem(_read(f"{key_id}.key"), None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise TypeError(f"{key_id} is not an RSA key")
    return key


def image_public_key(key_id: str) -> rsa.RSAPublicKey:
    """The public half of ``key_id``, as built into phone firmware."""
    return image_signing_key(key_id).public_key()
