"""(Re)create the emulated vendor material shipped in phone/vendor_data/.

The real vendor's manufacturing CAs and image-signing keys are secret, so vphone emulates them
with keys of its own, fixed once and committed so that every installation (and every phone's
built-in trust) agrees. Running this again replaces them and invalidates every image in
firmware_images/ and every MIC on existing virtual phones' flash: rebuild both afterwards.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa

from phone.pki import NameAttributes, make_ca
from phone.pki.store import cert_to_pem, key_to_pem
from phone.vendor import IMAGE_KEY_IDS, MIC_FAMILIES

# Fixed so that regenerating yields certificates with the same validity window.
EPOCH = datetime(2020, 1, 1, tzinfo=UTC)
VENDOR = NameAttributes(
    unit="vphone emulated vendor", organization="vphone", locality="SJ", state="CA", country="US"
)


def main() -> None:
    """Write the manufacturing CAs and image-signing keys."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("phone/vendor_data"))
    args = parser.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    for family in MIC_FAMILIES:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        ca = make_ca(
            f"vphone Manufacturing CA {family}",
            now=EPOCH,
            key=key,
            days=365 * 40,
            attributes=VENDOR,
        )
        (out / f"mic-ca-{family}.pem").write_bytes(cert_to_pem(ca.certificate))
        (out / f"mic-ca-{family}.key").write_bytes(key_to_pem(key, None, allow_unencrypted=True))
    for key_id in IMAGE_KEY_IDS:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        (out / f"{key_id}.key").write_bytes(key_to_pem(key, None, allow_unencrypted=True))
    print(f"wrote vendor material to {out}")


if __name__ == "__main__":
    main()
