"""Write every catalogue load's image to firmware_images/<name>.loads (items 36-39).

The images are emulated firmware signed with vphone's emulated vendor image-signing keys
(phone/vendor_data/, see docs/firmware.md). The output is deterministic, so running this again
rewrites the same bytes; tests/test_images.py fails when the committed files drift from
phone.catalog.loads.build_image(). Use ``--check`` to compare without writing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from phone.catalog.loads import CATALOGUE, LOADS_SUFFIX, build_image

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "firmware_images"


def main(argv: list[str] | None = None) -> int:
    """Write (or with ``--check`` compare) the catalogue's images; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="image folder")
    parser.add_argument(
        "--check", action="store_true", help="only report files that differ; exit 1 if any"
    )
    args = parser.parse_args(argv)
    out: Path = args.out
    drift: list[str] = []
    if not args.check:
        out.mkdir(parents=True, exist_ok=True)
    for load in CATALOGUE.values():
        path = out / load.filename
        data = build_image(load)
        if args.check:
            if not path.is_file() or path.read_bytes() != data:
                drift.append(f"{path} differs from build_image({load.name!r})")
            continue
        path.write_bytes(data)
        print(f"wrote {path} ({len(data)} bytes, {load.family}, signed with {load.signing_key_id})")
    expected = {load.filename for load in CATALOGUE.values()}
    if out.is_dir():
        for stray in sorted(out.glob(f"*{LOADS_SUFFIX}")):
            if stray.name not in expected:
                drift.append(f"{stray} is not in the catalogue (phone/catalog/loads.py)")
    for line in drift:
        print(line, file=sys.stderr)
    return 1 if args.check and drift else 0


if __name__ == "__main__":
    sys.exit(main())
