"""(Re)create the RSA test keys in tests/data/keys/ that tests/keypool.py loads.

Usage: python tools/make_test_keys.py [--out DIR] [--rsa2048 N] [--rsa1024 N]

Existing ``rsa<bits>-NN.pem`` files in the output folder are replaced; the keys are written
unencrypted (PKCS#8 PEM) because they are test fixtures, never real credentials.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "keys"
README = """\
TEST-ONLY KEYS. DO NOT USE FOR ANYTHING ELSE.

These RSA private keys are unencrypted on purpose: tests/keypool.py loads them so that the
test suite does not spend its time generating RSA keys. They are public, so they protect
nothing. Regenerate them with:

    python tools/make_test_keys.py
"""


def write_keys(out: Path, bits: int, count: int) -> None:
    """Replace the ``rsa<bits>-NN.pem`` files in ``out`` by ``count`` fresh keys."""
    for old in out.glob(f"rsa{bits}-*.pem"):
        old.unlink()
    for index in range(count):
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        (out / f"rsa{bits}-{index:02d}.pem").write_bytes(pem)


def main() -> None:
    """Parse the command line and write the keys and the README."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    parser.add_argument("--rsa2048", type=int, default=24, help="number of RSA-2048 keys")
    parser.add_argument("--rsa1024", type=int, default=4, help="number of RSA-1024 keys")
    args = parser.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    write_keys(out, 2048, args.rsa2048)
    write_keys(out, 1024, args.rsa1024)
    (out / "README.txt").write_text(README)
    print(f"wrote {args.rsa2048} RSA-2048 and {args.rsa1024} RSA-1024 keys to {out}")


if __name__ == "__main__":
    main()
